"""A tenant's limits and what it has in flight (read by the API and the CLI before a start).

``tenant_limits`` gives the tenant's own settings (null: the worker's default applies,
``TenantLimits.or_defaults``); ``runs_in_flight`` counts its runs not yet COMPLETED or
FAILED.
"""

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.models import Run, Tenant
from domain.enums import Phase
from domain.phases import ALLOWED_STATUSES

ENDED_PHASES = (Phase.COMPLETED, Phase.FAILED)
OPEN_STATUSES = sorted(
    {
        status
        for phase, statuses in ALLOWED_STATUSES.items()
        if phase not in ENDED_PHASES
        for status in statuses
    }
)


@dataclass(frozen=True)
class TenantLimits:
    """A tenant's bounds on what it has in flight; None: no bound of its own."""

    max_runs_in_flight: int | None = None
    max_steps_in_flight: int | None = None

    def or_defaults(self, max_runs: int | None, max_steps: int | None) -> "TenantLimits":
        """These limits with each unset one taken from the defaults (None there: no limit)."""
        return TenantLimits(
            max_runs if self.max_runs_in_flight is None else self.max_runs_in_flight,
            max_steps if self.max_steps_in_flight is None else self.max_steps_in_flight,
        )


def tenant_limits(session: Session, tenant_id: str) -> TenantLimits:
    """The tenant's own max_runs_in_flight / max_steps_in_flight (unknown tenant: none)."""
    row = session.execute(
        select(Tenant.max_runs_in_flight, Tenant.max_steps_in_flight).where(Tenant.id == tenant_id)
    ).first()
    return TenantLimits(*row) if row is not None else TenantLimits()


def runs_in_flight(session: Session, tenant_id: str) -> int:
    """The tenant's runs whose phase is not COMPLETED or FAILED.

    The phase→status invariant (``domain.phases``) lets the open statuses narrow the scan
    to ``ix_runs_tenant_status``; the phase test then states the rule itself.
    """
    stmt = (
        select(func.count())
        .select_from(Run)
        .where(
            Run.tenant_id == tenant_id,
            Run.status.in_(OPEN_STATUSES),
            Run.phase.not_in(ENDED_PHASES),
        )
    )
    return session.scalar(stmt) or 0
