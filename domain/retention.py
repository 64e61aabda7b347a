"""Retention: how long the rows that only bookkeep are kept, and when one may go.

Pure code. A TTL of 0 keeps a table's rows forever. ``cutoff`` is the instant before which
a row is expired; ``outbox_cutoff`` also keeps every event a reactor group may still read:
the events in its sweep window behind its cursor (it re-reads them for late commits), and
those a group starting now would sweep (its cursor starts ``overlap`` back, its first
sweep reaches ``overlap`` further). The rows (services.retention) are purged in pages.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

DAY = 86_400
DEFAULT_TTL_SECONDS = 30 * DAY
DEFAULT_PAGE_SIZE = 500
DEFAULT_MAX_PAGES = 20  # per purge call: a bounded activity; the workflow calls again
# A claim-check blob's last_used_at is moved forward when it is stored or read again and is
# older than this (services.payload_blobs): at most one write a day per blob, so a blob's
# last use may be this much older than its last reference in a history.
BLOB_REFRESH_SECONDS = DAY


class RetentionError(ValueError):
    """A retention setting that would lose what may still be needed."""


@dataclass(frozen=True)
class RetentionPolicy:
    """TTLs in seconds (0: keep forever) and the size of one purge transaction."""

    outbox_events_seconds: int = DEFAULT_TTL_SECONDS  # the events and their delivery rows
    findings_seconds: int = DEFAULT_TTL_SECONDS
    suppressed_alerts_seconds: int = DEFAULT_TTL_SECONDS
    idempotency_ledger_seconds: int = DEFAULT_TTL_SECONDS  # of finalized runs only
    payload_blobs_seconds: int = DEFAULT_TTL_SECONDS  # claim-check blobs, from their last use
    sweep_overlap_seconds: float = 300.0  # the reactor's (REACTOR_SWEEP_OVERLAP_SECONDS)
    page_size: int = DEFAULT_PAGE_SIZE
    max_pages: int = DEFAULT_MAX_PAGES

    def __post_init__(self) -> None:
        for name in ("outbox_events_seconds", "findings_seconds", "suppressed_alerts_seconds",
                     "idempotency_ledger_seconds", "payload_blobs_seconds"):  # fmt: skip
            if getattr(self, name) < 0:
                raise RetentionError(f"{name}: must be >= 0 (0 keeps forever), got "
                                     f"{getattr(self, name)}")  # fmt: skip
        if self.page_size < 1 or self.max_pages < 1:
            raise RetentionError(
                f"page_size and max_pages: at least 1, got {self.page_size}, {self.max_pages}"
            )
        if self.outbox_events_seconds and self.outbox_events_seconds <= self.sweep_overlap_seconds:
            raise RetentionError(outbox_ttl_problem(self.outbox_events_seconds,
                                                    self.sweep_overlap_seconds))  # fmt: skip


def outbox_ttl_problem(ttl_seconds: float, overlap_seconds: float) -> str:
    return (
        f"the outbox-event TTL ({ttl_seconds:g} s) must exceed the reactor's sweep overlap "
        f"({overlap_seconds:g} s), or be 0 (keep forever): the reactor re-reads events that "
        "recent for late commits"
    )


def blob_ttl_floor(longest_run_seconds: float, history_retention_seconds: float = 0) -> float:
    """The least TTL a claim-check blob may have: a history references it for as long as its
    workflow is open and then the namespace's history retention, and its last use may be
    BLOB_REFRESH_SECONDS older than the reference."""
    return longest_run_seconds + history_retention_seconds + BLOB_REFRESH_SECONDS


def cutoff(now: datetime, ttl_seconds: int) -> datetime | None:
    """Rows created (found, finalized) before this are expired; None: kept forever."""
    return now - timedelta(seconds=ttl_seconds) if ttl_seconds else None


def outbox_cutoff(
    now: datetime, ttl_seconds: int, overlap_seconds: float, cursors: Iterable[datetime]
) -> datetime | None:
    """Events created before this are expired and out of every reactor group's reach:
    behind each group's cursor by more than its sweep window, and older than what a group
    starting now would sweep (2 × overlap). None: kept forever."""
    expired = cutoff(now, ttl_seconds)
    if expired is None:
        return None
    overlap = timedelta(seconds=overlap_seconds)
    return min([expired, now - 2 * overlap, *(position - overlap for position in cursors)])
