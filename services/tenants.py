"""Operator writes on tenants: create, budget, status, skills, promotion settings, flight
limits, governance settings and the egress allow-list (the CLI and the HTTP API share them).

Every change of what runs are held to (budget, skills) bumps the version running runs
compare against in their mid-execution policy check. Promotion settings concern
candidates, flight limits fairness, governance settings the runs that start after the
change (a run resolves them once, when it opens) and the allow-list each step's call: no
version bump.
Every change is written to the audit ledger with its before and after state, under an
id derived from the tenant, the states and the time of the change. The one writer of
``tenants``.
"""

from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import ValidationError
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session, sessionmaker

from db.engine import reading
from db.models import Tenant
from domain.egress import EgressRule, EgressRuleError, parse_rules
from domain.enums import TenantStatus
from domain.governance import TenantGovernance
from domain.promotion import FROZEN_POLICY_IDS
from domain.skill_discovery import installed_catalog
from domain.validation_errors import describe_first
from services.errors import AdminError
from services.ledger import audit_entry, utcnow

INT32_MAX = 2**31 - 1  # tenants.max_signal_count is an INTEGER column


class Keep:
    """A setting left as it is (``None`` means: back to the operator's default)."""


KEEP = Keep()


def _money(value: str | Decimal | None, name: str) -> Decimal | None:
    if value is None:
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise AdminError(f"{name}: {value!r} is not a number") from None
    if amount < 0 or not amount.is_finite():
        raise AdminError(f"{name}: must be a non-negative number, got {value}")
    return amount


def _known_skills(skills: list[str]) -> list[str]:
    unknown = sorted(set(skills) - set(installed_catalog().names))
    if unknown:
        raise AdminError(f"unknown skills: {', '.join(unknown)}")
    return skills


def tenant_of(session: Session, tenant_id: str) -> Tenant:
    """The tenant row; AdminError names an unknown tenant."""
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        raise AdminError(f"unknown tenant {tenant_id!r}")
    return tenant


def _audit_change(session: Session, tenant: Tenant, event: str, kind: str, actor: str,
                  before: Any, after: Any) -> None:  # fmt: skip
    """The entry of one change of ``kind``: a repeat at another time is another entry."""
    audit_entry(
        session,
        key=f"{kind}/{tenant.id}/{before}/{after}/{tenant.updated_at.isoformat()}",
        tenant_id=tenant.id,
        event_type=event,
        entity_type="tenant",
        entity_id=tenant.id,
        before_state=before,
        after_state=after,
        actor_id=actor,
        actor_authority="TENANT_ADMIN",
        source="admin",
    )


def add_tenant(sessions: sessionmaker[Session], tenant_id: str, *, name: str | None = None,
               budget: str | None = None, skills: list[str] | None = None,
               actor: str = "operator", exist_ok: bool = False) -> bool:  # fmt: skip
    """Create a tenant; returns False if it existed and ``exist_ok``."""
    limit = _money(budget, "budget")
    _known_skills(skills or [])
    with sessions.begin() as session:
        if session.get(Tenant, tenant_id) is not None:
            if exist_ok:
                return False
            raise AdminError(f"tenant {tenant_id!r} already exists")
        now = utcnow()
        session.add(Tenant(id=tenant_id, name=name or tenant_id, status=TenantStatus.ACTIVE,
                           budget_limit=limit, allowed_skills=skills, created_at=now,
                           updated_at=now))  # fmt: skip
        audit_entry(
            session,
            key=f"tenant/{tenant_id}/created",  # a tenant id is created once
            tenant_id=tenant_id,
            event_type="TENANT_CREATED",
            entity_type="tenant",
            entity_id=tenant_id,
            after_state={"budget_limit": str(limit) if limit is not None else None},
            actor_id=actor,
            actor_authority="TENANT_ADMIN",
            source="admin",
        )
    return True


def update_tenant(sessions: sessionmaker[Session], tenant_id: str, *, actor: str = "operator",
                  budget: str | None = None, clear_budget: bool = False,
                  status: TenantStatus | None = None,
                  skills: list[str] | None = None) -> dict[str, Any]:  # fmt: skip
    with sessions.begin() as session:
        tenant = tenant_of(session, tenant_id)
        before = tenant_view(tenant)
        if budget is not None or clear_budget:
            tenant.budget_limit = None if clear_budget else _money(budget, "budget")
            tenant.limits_version += 1
        if status is not None:
            tenant.status = status
        if skills is not None:
            tenant.allowed_skills = _known_skills(skills)
            tenant.limits_version += 1
        tenant.updated_at = utcnow()
        state = tenant_view(tenant)
        _audit_change(session, tenant, "TENANT_UPDATED", "tenant", actor, before, state)
        return state


def tenant_view(t: Tenant) -> dict[str, Any]:
    return (
        {
            "id": t.id,
            "status": t.status,
            "budget_limit": None if t.budget_limit is None else str(t.budget_limit),
            "allowed_skills": t.allowed_skills,
            "limits_version": t.limits_version,
        }
        | promotion_view(t)
        | flight_view(t)
    )


def list_tenants(sessions: sessionmaker[Session]) -> list[dict[str, Any]]:
    with sessions() as session:
        return [tenant_view(t) for t in session.scalars(select(Tenant).order_by(Tenant.id))]


def promotion_view(t: Tenant) -> dict[str, Any]:
    """A tenant's own promotion settings (null: the operator's default)."""
    return {"promotion_policies": t.promotion_policies, "max_signal_count": t.max_signal_count}


def _policy_ids(policies: list[str]) -> list[str]:
    unknown = sorted(set(policies) - set(FROZEN_POLICY_IDS))
    if unknown:
        raise AdminError(
            f"policies: unknown promotion policies {', '.join(unknown)} "
            f"(frozen policies: {', '.join(FROZEN_POLICY_IDS)})"
        )
    return list(dict.fromkeys(policies))


def _signal_bound(value: int) -> int:
    if not 1 <= value <= INT32_MAX:
        raise AdminError(f"max_signal_count: must be between 1 and {INT32_MAX}, got {value}")
    return value


def set_promotion_settings(sessions: sessionmaker[Session], tenant_id: str, *,
                           policies: list[str] | None | Keep = KEEP,
                           max_signal_count: int | None | Keep = KEEP,
                           actor: str = "operator") -> dict[str, Any]:  # fmt: skip
    """Set the promotion policies a tenant's candidates may name (None: every frozen
    policy) and their signal_count bound (None: the operator's MAX_SIGNAL_COUNT); a
    setting given as KEEP stays as it is."""
    if policies is KEEP and max_signal_count is KEEP:
        raise AdminError("nothing to change: give the policies, the max signal count or both")
    if isinstance(policies, list):
        policies = _policy_ids(policies)
    if isinstance(max_signal_count, int):
        max_signal_count = _signal_bound(max_signal_count)
    changes = {"promotion_policies": policies, "max_signal_count": max_signal_count}
    return _change_settings(sessions, tenant_id, promotion_view, changes, actor,
                            "TENANT_PROMOTION_SETTINGS_UPDATED", "tenant-promotion")  # fmt: skip


def flight_view(t: Tenant) -> dict[str, Any]:
    """A tenant's own limits on what it has in flight (null: the operator's default)."""
    return {
        "max_runs_in_flight": t.max_runs_in_flight,
        "max_steps_in_flight": t.max_steps_in_flight,
    }


def set_flight_limits(sessions: sessionmaker[Session], tenant_id: str, *,
                      runs: int | None | Keep = KEEP, steps: int | None | Keep = KEEP,
                      actor: str = "operator") -> dict[str, Any]:  # fmt: skip
    """Set how many runs and steps a tenant may have in flight (None: the operator's
    MAX_RUNS_IN_FLIGHT_PER_TENANT / MAX_STEPS_IN_FLIGHT_PER_TENANT). Fairness between
    tenants, not a policy runs are held to."""
    if runs is KEEP and steps is KEEP:
        raise AdminError("nothing to change: give the runs in flight, the steps in flight or both")
    for name, value in (("runs in flight", runs), ("steps in flight", steps)):
        if isinstance(value, int) and not 1 <= value <= INT32_MAX:
            raise AdminError(f"{name}: must be between 1 and {INT32_MAX}, got {value}")
    changes = {"max_runs_in_flight": runs, "max_steps_in_flight": steps}
    return _change_settings(sessions, tenant_id, flight_view, changes, actor,
                            "TENANT_FLIGHT_LIMITS_UPDATED", "tenant-flight-limits")  # fmt: skip


def _change_settings(sessions: sessionmaker[Session], tenant_id: str,
                     view: Callable[[Tenant], dict[str, Any]], changes: dict[str, Any],
                     actor: str, event: str, key: str) -> dict[str, Any]:  # fmt: skip
    """Set the tenant's columns named in ``changes`` (a KEEP value leaves its column as it
    is) and audit the change with the ``view`` before and after; returns the view after."""
    with sessions.begin() as session:
        tenant = tenant_of(session, tenant_id)
        before = view(tenant)
        for column, value in changes.items():
            if value is not KEEP:
                setattr(tenant, column, value)
        tenant.updated_at = utcnow()
        after = view(tenant)
        _audit_change(session, tenant, event, key, actor, before, after)
        return after


# ----- governance settings (domain.governance) ---------------------------------------------


def governance_view(t: Tenant) -> dict[str, Any]:
    return {"tenant_id": t.id, "governance": governance_of_row(t).model_dump(mode="json")}


def governance_of_row(t: Tenant) -> TenantGovernance:
    return TenantGovernance.model_validate(t.governance or {})


def checked_governance(raw: dict[str, Any]) -> TenantGovernance:
    """The settings as a TenantGovernance; AdminError names the first bad field."""
    try:
        return TenantGovernance.model_validate(raw)
    except ValidationError as exc:
        raise AdminError(f"governance: {describe_first(exc)}") from None


def set_governance(sessions: sessionmaker[Session], tenant_id: str, raw: dict[str, Any],
                   actor: str = "operator") -> dict[str, Any]:  # fmt: skip
    """Replace the tenant's governance settings (``{}``: the worker's defaults, nothing
    loosened); runs that open afterwards resolve against them. Audited."""
    settings = checked_governance(raw)
    stored = settings.model_dump(mode="json", exclude_none=True)
    if not stored.get("loosen"):
        stored.pop("loosen", None)
    changes = {"governance": stored or None}
    return _change_settings(sessions, tenant_id, governance_view, changes, actor,
                            "TENANT_GOVERNANCE_UPDATED", "tenant-governance")  # fmt: skip


def get_governance(sessions: sessionmaker[Session], tenant_id: str) -> TenantGovernance:
    with sessions() as session:
        return governance_of_row(tenant_of(session, tenant_id))


# ----- the egress allow-list (domain.egress rules) ----------------------------------------

_EGRESS_ALLOW = select(Tenant.egress_allow).where(Tenant.id == bindparam("tenant_id"))


def parse_allow(texts: list[str]) -> list[dict[str, Any]]:
    """Rules from the CLI's ``--allow`` values (scheme://host[:port] or JSON objects)."""
    try:
        return [EgressRule.parse_text(text).to_dict() for text in texts]
    except EgressRuleError as exc:
        raise AdminError(f"--allow: {exc}") from None


def get_egress_allow(sessions: sessionmaker[Session], tenant_id: str) -> list[dict] | None:
    with sessions() as session:
        return tenant_of(session, tenant_id).egress_allow


def egress_allow_of(sessions: sessionmaker[Session], tenant_id: str) -> list[dict] | None:
    """A step's read of its tenant's allow-list, as stored (without the write lock)."""
    with reading(sessions) as session:
        return session.execute(_EGRESS_ALLOW, {"tenant_id": tenant_id}).scalar_one_or_none()


def set_egress_allow(sessions: sessionmaker[Session], tenant_id: str,
                     rules: list[dict[str, Any]] | None,
                     actor: str = "operator") -> list[dict] | None:  # fmt: skip
    """Replace a tenant's allow-list (None: no entries of its own); returns it, normalized.
    The next step of every run that calls out reads it."""
    try:
        normalized = None if rules is None else [r.to_dict() for r in parse_rules(rules, "rules")]
    except EgressRuleError as exc:
        raise AdminError(str(exc)) from None
    with sessions.begin() as session:
        tenant = tenant_of(session, tenant_id)
        before = tenant.egress_allow
        tenant.egress_allow = normalized
        tenant.updated_at = utcnow()
        audit_entry(
            session,
            key=f"{tenant_id}/egress-allow/{tenant.updated_at.isoformat()}",
            tenant_id=tenant_id,
            event_type="TENANT_EGRESS_UPDATED",
            entity_type="tenant",
            entity_id=tenant_id,
            before_state={"egress_allow": before},
            after_state={"egress_allow": normalized},
            actor_id=actor,
            actor_authority="TENANT_ADMIN",
            source="admin",
        )
    return normalized
