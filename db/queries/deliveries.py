"""Event delivery health: latency (created_at → delivered_at), backlog, reactor heartbeats."""

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.models import EventDelivery, ReactorHeartbeat

SAMPLE = 10_000


def _percentile(sorted_values: list[int], q: float) -> int | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


def delivery_stats(
    session: Session, now: datetime, window: timedelta, heartbeat_max_age: timedelta
) -> dict[str, Any]:
    """Latency percentiles of deliveries in the last ``window``, the backlog, and reactors."""
    d = EventDelivery
    latencies = sorted(
        session.scalars(
            select(d.latency_ms)
            .where(d.delivered_at >= now - window, d.latency_ms.is_not(None))
            .order_by(d.delivered_at.desc())
            .limit(SAMPLE)
        )
    )
    pending = d.delivered_at.is_(None)
    oldest = session.scalar(select(func.min(d.event_created_at)).where(pending))
    reactors = [
        {
            "reactor_id": r.reactor_id,
            "group": r.group_name,
            "beat_at": r.beat_at.isoformat(),
            "healthy": now - r.beat_at <= heartbeat_max_age,
            "delivered": r.delivered,
            "failed": r.failed,
        }
        for r in session.scalars(
            select(ReactorHeartbeat).where(ReactorHeartbeat.beat_at >= now - window)
        )
    ]
    return {
        "window_seconds": int(window.total_seconds()),
        "delivered": len(latencies),
        "latency_ms": {
            "p50": _percentile(latencies, 0.5),
            "p95": _percentile(latencies, 0.95),
            "max": latencies[-1] if latencies else None,
        },
        "pending": session.scalar(select(func.count()).where(pending)) or 0,
        "retrying": session.scalar(select(func.count()).where(pending, d.attempts > 0)) or 0,
        "oldest_pending_event_at": oldest.isoformat() if oldest else None,
        "reactors": reactors,
    }


def failing_deliveries(session: Session, limit: int) -> list[dict[str, Any]]:
    """Undelivered rows that have failed at least once, most attempts first."""
    d = EventDelivery
    rows = session.scalars(
        select(d)
        .where(d.delivered_at.is_(None), d.attempts > 0)
        .order_by(d.attempts.desc(), d.event_created_at)
        .limit(limit)
    )
    return [
        {
            "event_id": r.event_id,
            "handler": r.handler,
            "topic": r.topic,
            "attempts": r.attempts,
            "last_error": r.last_error,
            "next_attempt_at": r.next_attempt_at.isoformat(),
        }
        for r in rows
    ]
