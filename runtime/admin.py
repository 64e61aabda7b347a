"""Operator writes on tenants, policy rules and stop requests (CLI and HTTP share them).

Every change of what runs are held to bumps the version that running runs compare
against in their mid-execution policy check, and is written to the audit ledger. A
tenant's promotion settings (the policies its candidates may name, their signal_count
bound) concern candidates, not runs: audited, with no version bump.
"""

import uuid
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from db.models import AuditLedgerEntry, PolicyRule, Run, StopRequest, Tenant
from domain.enums import PolicyOutcome, RuleKind, TenantStatus
from domain.ids import derive_id
from domain.policy_rules import validate_params
from domain.promotion import FROZEN_POLICY_IDS
from domain.skill_catalog import SKILL_INPUTS

INT32_MAX = 2**31 - 1  # tenants.max_signal_count is an INTEGER column


class AdminError(ValueError):
    """A refused admin change; nothing was written."""


def _now() -> datetime:
    return datetime.now(UTC)


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


def _audit(session: Session, tenant_id: str, event: str, entity: str, entity_id: str,
           after: dict[str, Any], actor: str, *, entry_id: str | None = None,
           before: dict[str, Any] | None = None) -> None:  # fmt: skip
    session.add(
        AuditLedgerEntry(
            id=entry_id or str(uuid.uuid4()),
            tenant_id=tenant_id,
            event_type=event,
            entity_type=entity,
            entity_id=entity_id,
            actor_id=actor,
            actor_authority="TENANT_ADMIN",
            source="admin",
            before_state=before,
            after_state=after,
            created_at=_now(),
        )
    )


def _tenant(session: Session, tenant_id: str) -> Tenant:
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        raise AdminError(f"unknown tenant {tenant_id!r}")
    return tenant


def add_tenant(sessions: sessionmaker[Session], tenant_id: str, *, name: str | None = None,
               budget: str | None = None, skills: list[str] | None = None,
               actor: str = "operator", exist_ok: bool = False) -> bool:  # fmt: skip
    """Create a tenant; returns False if it existed and ``exist_ok``."""
    limit = _money(budget, "budget")
    unknown = sorted(set(skills or []) - set(SKILL_INPUTS))
    if unknown:
        raise AdminError(f"unknown skills: {', '.join(unknown)}")
    with sessions.begin() as session:
        if session.get(Tenant, tenant_id) is not None:
            if exist_ok:
                return False
            raise AdminError(f"tenant {tenant_id!r} already exists")
        now = _now()
        session.add(Tenant(id=tenant_id, name=name or tenant_id, status=TenantStatus.ACTIVE,
                           budget_limit=limit, allowed_skills=skills, created_at=now,
                           updated_at=now))  # fmt: skip
        _audit(session, tenant_id, "TENANT_CREATED", "tenant", tenant_id,
               {"budget_limit": str(limit) if limit is not None else None}, actor)  # fmt: skip
    return True


def update_tenant(sessions: sessionmaker[Session], tenant_id: str, *, actor: str = "operator",
                  budget: str | None = None, clear_budget: bool = False,
                  status: TenantStatus | None = None,
                  skills: list[str] | None = None) -> dict[str, Any]:  # fmt: skip
    with sessions.begin() as session:
        tenant = _tenant(session, tenant_id)
        if budget is not None or clear_budget:
            tenant.budget_limit = None if clear_budget else _money(budget, "budget")
            tenant.limits_version += 1
        if status is not None:
            tenant.status = status
        if skills is not None:
            unknown = sorted(set(skills) - set(SKILL_INPUTS))
            if unknown:
                raise AdminError(f"unknown skills: {', '.join(unknown)}")
            tenant.allowed_skills = skills
            tenant.limits_version += 1
        tenant.updated_at = _now()
        state = tenant_view(tenant)
        _audit(session, tenant_id, "TENANT_UPDATED", "tenant", tenant_id, state, actor)
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


class Keep:
    """A setting left as it is (``None`` means: back to the operator's default)."""


KEEP = Keep()


def set_promotion_settings(sessions: sessionmaker[Session], tenant_id: str, *,
                           policies: list[str] | None | Keep = KEEP,
                           max_signal_count: int | None | Keep = KEEP,
                           actor: str = "operator") -> dict[str, Any]:  # fmt: skip
    """Set the promotion policies a tenant's candidates may name (None: every frozen
    policy) and their signal_count bound (None: the operator's MAX_SIGNAL_COUNT); a
    setting given as KEEP stays as it is. Audited with its before and after state."""
    if policies is KEEP and max_signal_count is KEEP:
        raise AdminError("nothing to change: give the policies, the max signal count or both")
    if isinstance(policies, list):
        policies = _policy_ids(policies)
    if isinstance(max_signal_count, int):
        max_signal_count = _signal_bound(max_signal_count)
    with sessions.begin() as session:
        tenant = _tenant(session, tenant_id)
        before = promotion_view(tenant)
        if policies is not KEEP:
            tenant.promotion_policies = policies
        if max_signal_count is not KEEP:
            tenant.max_signal_count = max_signal_count
        tenant.updated_at = _now()
        after = promotion_view(tenant)
        entry_id = derive_id("audit-ledger", "tenant-promotion", tenant_id, before, after,
                             tenant.updated_at.isoformat())  # fmt: skip
        _audit(session, tenant_id, "TENANT_PROMOTION_SETTINGS_UPDATED", "tenant", tenant_id,
               after, actor, entry_id=entry_id, before=before)  # fmt: skip
        return after


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
    tenants, not a policy runs are held to: audited, no version bump."""
    if runs is KEEP and steps is KEEP:
        raise AdminError("nothing to change: give the runs in flight, the steps in flight or both")
    for name, value in (("runs in flight", runs), ("steps in flight", steps)):
        if isinstance(value, int) and not 1 <= value <= INT32_MAX:
            raise AdminError(f"{name}: must be between 1 and {INT32_MAX}, got {value}")
    with sessions.begin() as session:
        tenant = _tenant(session, tenant_id)
        before = flight_view(tenant)
        if runs is not KEEP:
            tenant.max_runs_in_flight = runs
        if steps is not KEEP:
            tenant.max_steps_in_flight = steps
        tenant.updated_at = _now()
        after = flight_view(tenant)
        entry_id = derive_id("audit-ledger", "tenant-flight-limits", tenant_id, before, after,
                             tenant.updated_at.isoformat())  # fmt: skip
        _audit(session, tenant_id, "TENANT_FLIGHT_LIMITS_UPDATED", "tenant", tenant_id,
               after, actor, entry_id=entry_id, before=before)  # fmt: skip
        return after


def list_tenants(sessions: sessionmaker[Session]) -> list[dict[str, Any]]:
    with sessions() as session:
        return [tenant_view(t) for t in session.scalars(select(Tenant).order_by(Tenant.id))]


def add_rule(sessions: sessionmaker[Session], tenant_id: str, name: str, kind: str,
             params: dict[str, Any], outcome: str, actor: str = "operator") -> str:  # fmt: skip
    try:
        rule_kind, rule_outcome = RuleKind(kind), PolicyOutcome(outcome)
    except ValueError as exc:
        raise AdminError(str(exc)) from None
    try:
        validate_params(rule_kind, params)
    except (ValueError, InvalidOperation) as exc:
        raise AdminError(f"params: {exc}") from None
    with sessions.begin() as session:
        _tenant(session, tenant_id)
        rule_id = derive_id(tenant_id, "rule", name)
        if session.get(PolicyRule, rule_id) is not None:
            raise AdminError(f"rule {name!r} already exists for tenant {tenant_id!r}")
        session.add(PolicyRule(id=rule_id, tenant_id=tenant_id, name=name, kind=rule_kind,
                               params=params, outcome=rule_outcome, enabled=True, version=1,
                               updated_at=_now()))  # fmt: skip
        created = {"name": name, "kind": kind, "params": params, "outcome": outcome}
        _audit(session, tenant_id, "POLICY_RULE_CREATED", "policy_rule", rule_id, created, actor)
    return rule_id


def update_rule(sessions: sessionmaker[Session], tenant_id: str, name: str, *,
                enabled: bool | None = None, params: dict[str, Any] | None = None,
                outcome: str | None = None, actor: str = "operator") -> dict[str, Any]:  # fmt: skip
    with sessions.begin() as session:
        rule = session.get(PolicyRule, derive_id(tenant_id, "rule", name))
        if rule is None:
            raise AdminError(f"unknown rule {name!r} for tenant {tenant_id!r}")
        if params is not None:
            try:
                validate_params(RuleKind(rule.kind), params)
            except (ValueError, InvalidOperation) as exc:
                raise AdminError(f"params: {exc}") from None
            rule.params = params
        if outcome is not None:
            try:
                rule.outcome = PolicyOutcome(outcome)
            except ValueError as exc:
                raise AdminError(str(exc)) from None
        if enabled is not None:
            rule.enabled = enabled
        rule.version += 1
        rule.updated_at = _now()
        state = rule_view(rule)
        _audit(session, tenant_id, "POLICY_RULE_UPDATED", "policy_rule", rule.id, state, actor)
        return state


def rule_view(r: PolicyRule) -> dict[str, Any]:
    return {"id": r.id, "tenant_id": r.tenant_id, "name": r.name, "kind": r.kind,
            "params": r.params, "outcome": r.outcome, "enabled": r.enabled,
            "version": r.version}  # fmt: skip


def list_rules(sessions: sessionmaker[Session], tenant_id: str | None) -> list[dict[str, Any]]:
    with sessions() as session:
        stmt = select(PolicyRule).order_by(PolicyRule.tenant_id, PolicyRule.name)
        if tenant_id:
            stmt = stmt.where(PolicyRule.tenant_id == tenant_id)
        return [rule_view(r) for r in session.scalars(stmt)]


def request_stop(sessions: sessionmaker[Session], run_id: str, reason: str,
                 actor: str = "operator") -> None:  # fmt: skip
    """Ask a run to stop at its next policy check (MANUAL_STOP → TERMINATE)."""
    with sessions.begin() as session:
        run = session.get(Run, run_id)
        if run is None:
            raise AdminError(f"unknown run {run_id!r}")
        if session.get(StopRequest, run_id) is None:
            session.add(StopRequest(run_id=run_id, tenant_id=run.tenant_id, requested_by=actor,
                                    reason=reason, requested_at=_now()))  # fmt: skip
            _audit(session, run.tenant_id, "STOP_REQUESTED", "run", run_id,
                   {"run_id": run_id, "reason": reason}, actor)  # fmt: skip
