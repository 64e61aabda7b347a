"""A tenant's steps in flight: leases in ``step_slots``, one per running step.

A step takes its slot before its skill runs (one short transaction, serialised per tenant:
the tenant row is locked on PostgreSQL; SQLite writers are serialised anyway), keeps it
alive while the skill runs (``extend``), and gives it back in the transaction that records
its result (``release``). A worker that dies mid-step leaves a lease that expires after
``LEASE_SECONDS``. A step that finds its tenant at its limit does not wait inside the
activity (that would hold a worker slot other tenants need): the activity returns at once
and the workflow waits (workflows: ``RunWorkflow._execute``). The one writer of
``step_slots``.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from db.models import StepSlot, Tenant
from services.ledger import execute_core

LEASE_SECONDS = 30.0

_SLOTS = StepSlot.__table__
_TENANTS = Tenant.__table__
_LIMIT = select(_TENANTS.c.max_steps_in_flight).where(_TENANTS.c.id == bindparam("tenant_id"))
_LIMIT_LOCKED = _LIMIT.with_for_update()
_OWN = select(_SLOTS.c.id).where(_SLOTS.c.id == bindparam("slot_id"))
_EXTEND = update(_SLOTS).where(_SLOTS.c.id == bindparam("slot_id"))
_EXPIRED = delete(_SLOTS).where(
    _SLOTS.c.tenant_id == bindparam("tenant_id"), _SLOTS.c.expires_at < bindparam("now")
)
_HELD = select(func.count()).select_from(_SLOTS).where(_SLOTS.c.tenant_id == bindparam("tenant_id"))
_RELEASE = delete(_SLOTS).where(_SLOTS.c.id == bindparam("slot_id"))


@dataclass(frozen=True)
class SlotRequest:
    tenant_id: str
    slot_id: str  # workflow id / Temporal run id / step index: one step of one execution
    default_limit: int | None  # the operator's MAX_STEPS_IN_FLIGHT_PER_TENANT


def acquire(sessions: sessionmaker[Session], req: SlotRequest, now: datetime) -> bool:
    """Take (or keep) the step's slot in a transaction of its own (``acquire_in``)."""
    with sessions.begin() as session:
        return acquire_in(session, req, now)


def acquire_in(session: Session, req: SlotRequest, now: datetime) -> bool:
    """Take (or keep) the step's slot, in the caller's transaction; False when the tenant
    is at its limit. A tenant without a limit (its own and the default unset) takes no
    slot at all."""
    expires = now + timedelta(seconds=LEASE_SECONDS)
    limit = _limit(session, req)
    if limit is None:
        return True
    if execute_core(session, _OWN, {"slot_id": req.slot_id}).first() is not None:
        execute_core(session, _EXTEND.values(expires_at=expires), {"slot_id": req.slot_id})
        return True
    execute_core(session, _EXPIRED, {"tenant_id": req.tenant_id, "now": now})
    held = execute_core(session, _HELD, {"tenant_id": req.tenant_id}).scalar_one()
    if held >= limit:
        return False
    execute_core(
        session,
        insert(_SLOTS),
        {"id": req.slot_id, "tenant_id": req.tenant_id, "expires_at": expires},
    )
    return True


def _limit(session: Session, req: SlotRequest) -> int | None:
    """The tenant's own limit, else the default; the tenant row stays locked (PostgreSQL)
    until the transaction ends, so two steps of one tenant never both take the last slot."""
    locked = _LIMIT_LOCKED if session.get_bind().dialect.name == "postgresql" else _LIMIT
    own = execute_core(session, locked, {"tenant_id": req.tenant_id}).scalar_one_or_none()
    return own if own is not None else req.default_limit


def extend(sessions: sessionmaker[Session], slot_id: str, now: datetime) -> None:
    """Keep a running step's lease alive."""
    expires = now + timedelta(seconds=LEASE_SECONDS)
    with sessions.begin() as session:
        execute_core(session, _EXTEND.values(expires_at=expires), {"slot_id": slot_id})


def release(session: Session, slot_id: str) -> None:
    """Give the slot back, in the caller's transaction (the one recording the result)."""
    execute_core(session, _RELEASE, {"slot_id": slot_id})
