"""Claim-check blobs: the large Temporal payloads kept out of workflow histories.

runtime.claim_check stores a serialized payload larger than CLAIM_CHECK_THRESHOLD_BYTES here,
keyed by the sha256 of its bytes, and puts a small reference in its place; it reads the
payload back when a history (or a result, a query answer) is decoded. The one writer of
``payload_blobs``:

- ``store`` is insert-if-absent: the same content is one row however often it is stored,
  and two processes storing it at the same time both succeed (``ON CONFLICT`` on
  PostgreSQL and SQLite). A blob already there is not written again, unless its
  ``last_used_at`` is older than BLOB_REFRESH_SECONDS: then that moves forward.
- ``load`` reads blobs by key, and moves a stale ``last_used_at`` forward the same way: a
  workflow that is still replayed keeps its blobs.
- ``delete_blobs`` deletes, in the caller's transaction, the blobs services.retention chose
  (unused for RETENTION_PAYLOAD_BLOBS_SECONDS), rechecking their age: a blob stored again
  meanwhile stays.

Synchronous, like every service; the codec calls it in a thread.
"""

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from db.engine import reading
from db.models import PayloadBlob
from domain.retention import BLOB_REFRESH_SECONDS
from services.ledger import UNSYNCED, utcnow

_REFRESH = timedelta(seconds=BLOB_REFRESH_SECONDS)


def store(
    sessions: sessionmaker[Session], blobs: Mapping[str, bytes], now: datetime | None = None
) -> int:
    """Keep each blob (sha256 hex → bytes; the caller computed the keys). Returns how many
    rows were written: inserted, or found with a stale ``last_used_at`` and refreshed."""
    if not blobs:
        return 0
    now = now or utcnow()
    with reading(sessions) as session:  # no write lock when every blob is there and fresh
        used = dict(
            session.execute(
                select(PayloadBlob.sha256, PayloadBlob.last_used_at).where(
                    PayloadBlob.sha256.in_(list(blobs))
                )
            ).all()
        )
    due = [key for key in blobs if key not in used or used[key] < now - _REFRESH]
    if not due:
        return 0
    rows = [
        {"sha256": key, "data": blobs[key], "size": len(blobs[key]), "created_at": now,
         "last_used_at": now}
        for key in due
    ]  # fmt: skip
    with sessions.begin() as session:
        dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
        stmt = dialect.insert(PayloadBlob).values(rows)
        stmt = stmt.on_conflict_do_update(
            index_elements=[PayloadBlob.sha256],
            set_={"last_used_at": stmt.excluded.last_used_at},
            where=PayloadBlob.last_used_at < stmt.excluded.last_used_at,
        )
        session.execute(stmt)
    return len(due)


def load(
    sessions: sessionmaker[Session], keys: Iterable[str], now: datetime | None = None
) -> dict[str, bytes]:
    """The blobs of these keys that are there (sha256 hex → bytes)."""
    keys = list(dict.fromkeys(keys))
    if not keys:
        return {}
    now = now or utcnow()
    with reading(sessions) as session:
        found = session.execute(
            select(PayloadBlob.sha256, PayloadBlob.data, PayloadBlob.last_used_at).where(
                PayloadBlob.sha256.in_(keys)
            )
        ).all()
    stale = [key for key, _, used in found if used < now - _REFRESH]
    if stale:
        with sessions.begin() as session:
            session.execute(
                update(PayloadBlob)
                .where(PayloadBlob.sha256.in_(stale), PayloadBlob.last_used_at < now)
                .values(last_used_at=now),
                execution_options=UNSYNCED,
            )
    return {key: bytes(data) for key, data, _ in found}


def delete_blobs(session: Session, keys: list[str], unused_since: datetime) -> int:
    """Delete these blobs (services.retention chose them) in the caller's transaction, if
    they are still unused since ``unused_since``; returns how many went."""
    if not keys:
        return 0
    stmt = delete(PayloadBlob).where(
        PayloadBlob.sha256.in_(keys), PayloadBlob.last_used_at < unused_since
    )
    return session.execute(stmt, execution_options=UNSYNCED).rowcount
