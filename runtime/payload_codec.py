"""An optional encrypting payload codec: what Temporal stores of a run can be kept opaque.

Without it, a run's history holds its prompts, step inputs and outputs, HTTP headers and
model replies in clear, for anyone who can read the namespace. With
``PAYLOAD_ENCRYPTION_KEYS`` set (comma-separated Fernet keys; the first encrypts, every
one decrypts, so a key can be rotated by putting the new one first), every payload the
client and the worker exchange through Temporal — workflow input and result, activity
inputs and results, signals, updates, queries, failures' details — is encrypted with
Fernet (AES-128-CBC with HMAC-SHA256, from ``cryptography``) before it leaves the process,
with the metadata ``encoding: binary/encrypted``. Search attributes are not payloads of the
codec: they hold tenant, phase and status only.

Every process that talks to Temporal for runs must have the same keys: the worker, the
HTTP API, ``starter.py`` (runtime.stack, cli.context). A process without them sees
``binary/encrypted`` payloads and cannot decode a run's result; so do the Temporal Web UI
and CLI (they need a codec server, which this project does not provide).

``process_codec`` is the codec every process connects with: encryption (when keys are set)
and then the claim check (runtime.claim_check), so a payload too large for a history is
encrypted first and its blob in the database is ciphertext; decoding runs them in reverse.
"""

from collections.abc import Callable, Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy.orm import Session, sessionmaker
from temporalio.api.common.v1 import Payload
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.converter import PayloadCodec

from domain.retention import blob_ttl_floor
from runtime.claim_check import ClaimCheckCodec, DatabaseBlobStore
from runtime.embedded_temporal import TemporalConfigError
from runtime.settings import Settings

ENCODING = b"binary/encrypted"


class PayloadKeyError(TemporalConfigError):
    """A key that is not a Fernet key (its position is named, never its value)."""


class EncryptionCodec(PayloadCodec):
    """Fernet over each whole serialized payload (its metadata and data)."""

    def __init__(self, keys: Sequence[str]) -> None:
        fernets = []
        for position, key in enumerate(keys, 1):
            try:
                fernets.append(Fernet(key.strip().encode()))
            except (ValueError, TypeError):
                raise PayloadKeyError(
                    f"PAYLOAD_ENCRYPTION_KEYS: key {position} is not a Fernet key (32 url-safe "
                    "base64-encoded bytes)"
                ) from None
        if not fernets:
            raise PayloadKeyError("PAYLOAD_ENCRYPTION_KEYS: no key")
        self._box = MultiFernet(fernets)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [
            Payload(metadata={"encoding": ENCODING}, data=self._box.encrypt(p.SerializeToString()))
            for p in payloads
        ]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        decoded = []
        for payload in payloads:
            if payload.metadata.get("encoding") != ENCODING:
                decoded.append(payload)  # written before encryption was turned on
                continue
            try:
                clear = self._box.decrypt(payload.data)
            except InvalidToken:
                raise PayloadKeyError(
                    "an encrypted payload no key of PAYLOAD_ENCRYPTION_KEYS decrypts"
                ) from None
            decoded.append(Payload.FromString(clear))
        return decoded


def payload_codec(keys: str | None) -> EncryptionCodec | None:
    """The codec of the setting (None: payloads in clear)."""
    if not keys or not keys.strip():
        return None
    return EncryptionCodec([k for k in keys.split(",") if k.strip()])


class CodecChain(PayloadCodec):
    """Codecs applied in order when encoding, in reverse when decoding."""

    def __init__(self, codecs: Sequence[PayloadCodec]) -> None:
        self.codecs = list(codecs)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        encoded = list(payloads)
        for codec in self.codecs:
            encoded = await codec.encode(encoded)
        return encoded

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        decoded = list(payloads)
        for codec in reversed(self.codecs):
            decoded = await codec.decode(decoded)
        return decoded


def process_codec(
    settings: Settings, sessions: sessionmaker[Session] | Callable[[], sessionmaker[Session]]
) -> CodecChain:
    """The codec of a process that talks to Temporal for runs: encryption
    (PAYLOAD_ENCRYPTION_KEYS, when set), then the claim check in the database of
    ``sessions`` (payloads over CLAIM_CHECK_THRESHOLD_BYTES; with CLAIM_CHECK_ENABLED=false
    it stores nothing new and still reads the references histories hold)."""
    threshold = settings.claim_check_threshold_bytes if settings.claim_check_enabled else None
    claim_check = ClaimCheckCodec(DatabaseBlobStore(sessions), threshold)
    encryption = payload_codec(settings.payload_encryption_keys)
    return CodecChain([encryption, claim_check] if encryption else [claim_check])


async def check_blob_retention(client: Client, settings: Settings) -> None:
    """Refuse a RETENTION_PAYLOAD_BLOBS_SECONDS shorter than a history may reference a
    blob: the longest run, plus the namespace's history retention, plus a day (a blob's
    last use is refreshed once a day). 0 (keep forever) is always right."""
    ttl = settings.retention_payload_blobs_seconds
    if not ttl:
        return
    described = await client.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace=client.namespace)
    )
    retention = described.config.workflow_execution_retention_ttl.ToTimedelta().total_seconds()
    floor = blob_ttl_floor(settings.longest_run_seconds(), retention)
    if ttl < floor:
        raise TemporalConfigError(
            f"RETENTION_PAYLOAD_BLOBS_SECONDS={ttl} is shorter than claim-check blobs are "
            f"referenced: namespace {client.namespace} keeps histories {retention:g} s, a run "
            f"lasts up to {settings.longest_run_seconds():g} s (RUN_TIMEOUT_SECONDS + "
            f"FINALIZE_GRACE_SECONDS), plus a day: at least {floor:g} (or 0: keep forever)"
        )
