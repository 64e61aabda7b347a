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
"""

from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from runtime.embedded_temporal import TemporalConfigError

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
