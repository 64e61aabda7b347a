"""Tenant secrets at rest: Fernet encryption (cryptography) and the read a step does.

The key is ``SECRETS_KEY`` (a Fernet key), else the key file ``DATA_DIR/secrets.key``,
created on first use with mode 0600 (atomically: a second process reads the first one's
key). A key file that others may read is refused. The rows (the operator's writes, the
ciphertexts a step reads) are services.secrets'; values never leave this module except to
the skill being called.
"""

import contextlib
import os
import stat
import threading
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy.orm import Session, sessionmaker

from activities.skills.errors import SkillError
from services.secrets import ciphertexts

KEY_FILE_NAME = "secrets.key"


class SecretKeyError(RuntimeError):
    """The secrets key is missing, malformed or unsafe; the message says which."""


def _create_key_file(path: Path) -> None:
    """Write a new key to ``path`` unless it exists: a private temp file, then a link."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(Fernet.generate_key())
        with contextlib.suppress(FileExistsError):
            os.link(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def read_key_file(path: Path) -> bytes:
    """The key in ``path``, created on first use; refused if group or others may read it."""
    if not path.exists():
        _create_key_file(path)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise SecretKeyError(f"secrets key file {path} has mode {mode:04o}; chmod 600 it")
    return path.read_bytes().strip()


class SecretBox:
    """Encrypts and decrypts secret values with the deployment's key (loaded on first use)."""

    def __init__(self, key: str | None, key_file: Path) -> None:
        self._key = key
        self._key_file = key_file
        self._fernet: Fernet | None = None
        self._lock = threading.Lock()

    @classmethod
    def of_deployment(cls, key: str | None, data_dir: Path) -> "SecretBox":
        """The deployment's box: SECRETS_KEY (``key``), else DATA_DIR/secrets.key (the
        worker and the CLI must share one of them)."""
        return cls(key, data_dir / KEY_FILE_NAME)

    def _cipher(self) -> Fernet:
        with self._lock:
            if self._fernet is None:
                key = self._key.encode() if self._key else read_key_file(self._key_file)
                try:
                    self._fernet = Fernet(key)
                except ValueError:
                    source = "SECRETS_KEY" if self._key else f"key file {self._key_file}"
                    raise SecretKeyError(f"{source} is not a Fernet key") from None
            return self._fernet

    def encrypt(self, value: str) -> str:
        return self._cipher().encrypt(value.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        """The value of ``token``; raises InvalidToken if this key did not encrypt it."""
        return self._cipher().decrypt(token.encode("ascii")).decode("utf-8")


def load_secrets(
    sessions: sessionmaker[Session], box: SecretBox, tenant_id: str, names: list[str]
) -> dict[str, str]:
    """The decrypted values of ``names`` for the tenant (one SELECT); an unknown name or a
    value this key cannot decrypt fails the step, not retryably, naming the secret."""
    found = ciphertexts(sessions, tenant_id, names)
    unknown = [n for n in names if n not in found]
    if unknown:
        listed = ", ".join(repr(n) for n in unknown)
        raise SkillError(f"unknown secret {listed} for tenant {tenant_id}", retryable=False)
    values = {}
    for name in names:
        try:
            values[name] = box.decrypt(found[name])
        except (InvalidToken, SecretKeyError) as exc:
            reason = str(exc) or "it was encrypted with another key"
            raise SkillError(
                f"secret {name!r} cannot be decrypted: {reason}", retryable=False
            ) from None
    return values
