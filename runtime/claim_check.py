"""The claim check: large payloads stay out of workflow histories, a reference goes in.

Temporal keeps every payload a run exchanges — its input (up to MAX_RUN_INPUT_BYTES), each
activity's input and result (step inputs with resolved references, step outputs, tool
results, model replies), signals, results — in the workflow's history, which the server
stores and every replaying worker reads in full. ``ClaimCheckCodec`` is a PayloadCodec that
puts each payload larger than CLAIM_CHECK_THRESHOLD_BYTES (``payload.ByteSize()``, the
payload as the codecs before it left it: encrypted when encryption is on) in the
``payload_blobs`` table of the app database (services.payload_blobs), keyed by the sha256
of its serialized bytes, and hands Temporal a reference instead:

    metadata {"encoding": "binary/claim-check-v1"}, data {"sha256": "<hex>", "size": <bytes>}

Decoding loads the blob, checks its sha256 and size, and parses it back into the payload it
was. Every other payload passes through, both ways. A reference whose blob is missing (or
whose bytes do not hash to its key) raises ClaimCheckError — a RuntimeError, never an
ApplicationError: in a worker it fails the workflow task, which Temporal retries, and the
run waits rather than fails (an activity whose input cannot be decoded fails that attempt,
retried by the activity's retry policy).

Every process that talks to Temporal for runs needs the same database: the worker, the HTTP
API and ``starter.py`` (runtime.payload_codec builds the codec for each). Turned off
(CLAIM_CHECK_ENABLED=false) the codec stores nothing new but still reads references already
in histories.
"""

import asyncio
import hashlib
import json
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from google.protobuf.message import DecodeError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from services import payload_blobs

ENCODING = b"binary/claim-check-v1"


class ClaimCheckError(RuntimeError):
    """A reference that cannot be resolved: its blob is missing, does not match its hash,
    or the store did not answer. Not an ApplicationError, so a workflow task that meets it
    fails and is retried; the workflow does not fail."""


class BlobStore(Protocol):
    """Where the blobs live (sha256 hex → the serialized payload)."""

    async def put(self, blobs: Mapping[str, bytes]) -> None: ...

    async def get(self, keys: Sequence[str]) -> dict[str, bytes]: ...


class DatabaseBlobStore:
    """The ``payload_blobs`` table, through services.payload_blobs in a worker thread (the
    database layer is synchronous). ``sessions`` may be a callable that opens the database
    on first use (the CLI: a command that meets no large payload never opens it)."""

    def __init__(
        self, sessions: sessionmaker[Session] | Callable[[], sessionmaker[Session]]
    ) -> None:
        self._sessions = sessions if isinstance(sessions, sessionmaker) else None
        self._open = None if isinstance(sessions, sessionmaker) else sessions
        self._lock = threading.Lock()

    def _resolved(self) -> sessionmaker[Session]:
        with self._lock:
            if self._sessions is None:
                assert self._open is not None
                self._sessions = self._open()
            return self._sessions

    async def put(self, blobs: Mapping[str, bytes]) -> None:
        try:
            await asyncio.to_thread(lambda: payload_blobs.store(self._resolved(), blobs))
        except SQLAlchemyError as exc:
            raise ClaimCheckError(
                f"claim check: could not store payload blob(s) {_named(blobs)} in payload_blobs "
                f"(DATABASE_URL): {_reason(exc)}"
            ) from exc

    async def get(self, keys: Sequence[str]) -> dict[str, bytes]:
        try:
            return await asyncio.to_thread(lambda: payload_blobs.load(self._resolved(), keys))
        except SQLAlchemyError as exc:
            raise ClaimCheckError(
                f"claim check: could not read payload blob(s) {_named(keys)} from payload_blobs "
                f"(DATABASE_URL): {_reason(exc)}"
            ) from exc


def _named(keys: Sequence[str] | Mapping[str, bytes]) -> str:
    return ", ".join(f"sha256:{key}" for key in keys)


def _reason(exc: SQLAlchemyError) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def reference(sha256: str, size: int) -> Payload:
    """The payload a history holds instead of the blob."""
    data = json.dumps({"sha256": sha256, "size": size}, separators=(",", ":")).encode()
    return Payload(metadata={"encoding": ENCODING}, data=data)


def is_reference(payload: Payload) -> bool:
    return payload.metadata.get("encoding") == ENCODING


def parse_reference(payload: Payload) -> tuple[str, int]:
    """(sha256 hex, size) of a reference; ClaimCheckError if it is malformed."""
    try:
        ref = json.loads(payload.data)
        sha256, size = ref["sha256"], ref["size"]
    except (ValueError, TypeError, KeyError) as exc:
        raise ClaimCheckError(f"claim check: a malformed reference {payload.data[:200]!r}") from exc
    valid_hash = isinstance(sha256, str) and len(sha256) == 64
    if not valid_hash or not isinstance(size, int) or isinstance(size, bool):
        raise ClaimCheckError(f"claim check: a malformed reference {payload.data[:200]!r}")
    return sha256, size


class ClaimCheckCodec(PayloadCodec):
    """Payloads over ``threshold_bytes`` to the store, a reference in their place
    (``threshold_bytes`` None: nothing is stored, references are still read)."""

    def __init__(self, store: BlobStore, threshold_bytes: int | None) -> None:
        if threshold_bytes is not None and threshold_bytes < 1:
            raise ValueError(f"threshold_bytes must be positive, got {threshold_bytes}")
        self._store = store
        self._threshold = threshold_bytes

    @property
    def threshold_bytes(self) -> int | None:
        return self._threshold

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        encoded = list(payloads)
        if self._threshold is None:
            return encoded
        blobs: dict[str, bytes] = {}
        for index, payload in enumerate(payloads):
            if payload.ByteSize() <= self._threshold:
                continue
            data = payload.SerializeToString(deterministic=True)
            sha256 = hashlib.sha256(data).hexdigest()
            blobs[sha256] = data
            encoded[index] = reference(sha256, len(data))
        if blobs:
            await self._store.put(blobs)
        return encoded

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        refs = {i: parse_reference(p) for i, p in enumerate(payloads) if is_reference(p)}
        if not refs:
            return list(payloads)
        found = await self._store.get(list(dict.fromkeys(sha for sha, _ in refs.values())))
        decoded = list(payloads)
        for index, (sha256, size) in refs.items():
            decoded[index] = _verified(sha256, size, found.get(sha256))
        return decoded


def _verified(sha256: str, size: int, data: bytes | None) -> Payload:
    if data is None:
        raise ClaimCheckError(
            f"claim check: payload blob sha256:{sha256} ({size} bytes) is not in payload_blobs: "
            "purged (RETENTION_PAYLOAD_BLOBS_SECONDS shorter than the history needs it), or "
            "this process uses another DATABASE_URL than the one that stored it"
        )
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256 or len(data) != size:
        raise ClaimCheckError(
            f"claim check: payload blob sha256:{sha256} does not match its reference: its "
            f"{len(data)} bytes hash to sha256:{actual} (the row was changed)"
        )
    try:
        return Payload.FromString(data)
    except DecodeError as exc:
        raise ClaimCheckError(
            f"claim check: payload blob sha256:{sha256} is no serialized payload"
        ) from exc
