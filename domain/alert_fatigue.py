"""Alert fatigue controls (pure): dedup window, per-domain cooldowns, per-tenant hourly cap.

``check_alert`` decides whether one alert is sent or suppressed, and why, from the
alerts already SENT to the tenant (suppressed ones do not count). Checks in order:
DISABLED (alerts off for the tenant), DUPLICATE (same dedup key within the window),
DOMAIN_COOLDOWN (an alert of the same domain within that domain's cooldown),
TENANT_RATE_LIMIT (the cap of alerts in the last hour is reached).
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

HOUR = timedelta(hours=1)


class AlertType(StrEnum):
    MISSING_ACK = "MISSING_ACK"  # an expected operation was not acknowledged
    DRIFT = "DRIFT"  # an operation nobody expected was performed
    STALE_RUN = "STALE_RUN"  # a run never finalized
    RECONCILIATION_FAILED = "RECONCILIATION_FAILED"  # a run's contract does not reconcile
    SINK_UNHEALTHY = "SINK_UNHEALTHY"  # an alert sink failed too many times in a row
    RUN_FAILED = "RUN_FAILED"  # a run failed without an incident (rollback, cancellation)
    INCIDENT_OPENED = "INCIDENT_OPENED"  # an incident was opened (its category in details)
    PAUSE_EXPIRING = "PAUSE_EXPIRING"  # a paused run nears its SLA deadline
    PAUSE_ESCALATION = "PAUSE_ESCALATION"  # a paused run passed its SLA: it needs a human
    TRACE_DEGRADED = "TRACE_DEGRADED"  # a run goes on without its trace (DEGRADED)
    REACTOR_DOWN = "REACTOR_DOWN"  # an event reactor died or stalled (the system tenant's)


class SuppressionReason(StrEnum):
    DUPLICATE = "DUPLICATE"
    DOMAIN_COOLDOWN = "DOMAIN_COOLDOWN"
    TENANT_RATE_LIMIT = "TENANT_RATE_LIMIT"
    DISABLED = "DISABLED"


@dataclass(frozen=True)
class FatigueSettings:
    """Effective settings of one tenant (defaults overlaid with its own row)."""

    alerts_enabled: bool = True
    fatigue_enabled: bool = True
    max_alerts_per_hour: int = 100
    dedup_window_seconds: int = 60
    domain_cooldowns: Mapping[str, int] = field(default_factory=dict)

    def horizon(self) -> timedelta:
        """How far back the sent alerts matter to ``check_alert``."""
        longest = max([self.dedup_window_seconds, *self.domain_cooldowns.values()], default=0)
        return max(HOUR, timedelta(seconds=longest))


@dataclass(frozen=True)
class TenantOverrides:
    """A tenant's own settings; None keeps the default."""

    alerts_enabled: bool = True
    max_alerts_per_hour: int | None = None
    dedup_window_seconds: int | None = None
    domain_cooldowns: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class SentAlert:
    dedup_key: str
    domain: str
    at: datetime


@dataclass(frozen=True)
class Candidate:
    alert_type: AlertType
    domain: str
    dedup_key: str


@dataclass(frozen=True)
class Decision:
    send: bool
    reason: SuppressionReason | None = None
    detail: str = ""


SEND = Decision(True)


def effective_settings(defaults: FatigueSettings, own: TenantOverrides | None) -> FatigueSettings:
    if own is None:
        return defaults
    return FatigueSettings(
        alerts_enabled=own.alerts_enabled,
        fatigue_enabled=defaults.fatigue_enabled,
        max_alerts_per_hour=(
            defaults.max_alerts_per_hour
            if own.max_alerts_per_hour is None
            else own.max_alerts_per_hour
        ),
        dedup_window_seconds=(
            defaults.dedup_window_seconds
            if own.dedup_window_seconds is None
            else own.dedup_window_seconds
        ),
        domain_cooldowns={**defaults.domain_cooldowns, **own.domain_cooldowns},
    )


def check_alert(
    candidate: Candidate, settings: FatigueSettings, sent: Iterable[SentAlert], now: datetime
) -> Decision:
    """Send, or suppress with the first reason that applies."""
    if not settings.alerts_enabled:
        return Decision(False, SuppressionReason.DISABLED, "alerts are disabled for the tenant")
    if not settings.fatigue_enabled:
        return SEND
    recent = [s for s in sent if s.at <= now]
    window = timedelta(seconds=settings.dedup_window_seconds)
    if any(s.dedup_key == candidate.dedup_key and now - s.at < window for s in recent):
        return Decision(
            False,
            SuppressionReason.DUPLICATE,
            f"{candidate.dedup_key} already sent within {settings.dedup_window_seconds}s",
        )
    cooldown = settings.domain_cooldowns.get(candidate.domain, 0)
    if cooldown > 0 and any(
        s.domain == candidate.domain and now - s.at < timedelta(seconds=cooldown) for s in recent
    ):
        return Decision(
            False,
            SuppressionReason.DOMAIN_COOLDOWN,
            f"domain {candidate.domain} is in its {cooldown}s cooldown",
        )
    last_hour = sum(1 for s in recent if now - s.at < HOUR)
    if last_hour >= settings.max_alerts_per_hour:
        return Decision(
            False,
            SuppressionReason.TENANT_RATE_LIMIT,
            f"{last_hour} alerts in the last hour (cap {settings.max_alerts_per_hour})",
        )
    return SEND
