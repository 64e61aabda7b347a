"""Operator writes on a tenant's policy rules: add, change, enable and disable.

Every change bumps the rule's version (and so the tenant's policy version, which running
runs compare against in their mid-execution policy check) and is written to the audit
ledger under an id derived from the rule and its version. The one writer of
``policy_rules``.
"""

from decimal import InvalidOperation
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from db.models import PolicyRule
from domain.enums import PolicyOutcome, RuleKind
from domain.ids import derive_id
from domain.policy_rules import validate_params
from services.errors import AdminError
from services.ledger import audit_entry, utcnow
from services.tenants import tenant_of


def rule_view(r: PolicyRule) -> dict[str, Any]:
    return {"id": r.id, "tenant_id": r.tenant_id, "name": r.name, "kind": r.kind,
            "params": r.params, "outcome": r.outcome, "enabled": r.enabled,
            "version": r.version}  # fmt: skip


def _checked_params(kind: RuleKind, params: dict[str, Any]) -> dict[str, Any]:
    try:
        validate_params(kind, params)
    except (ValueError, InvalidOperation) as exc:
        raise AdminError(f"params: {exc}") from None
    return params


def _audit(session: Session, rule: PolicyRule, event: str, state: dict[str, Any],
           actor: str) -> None:  # fmt: skip
    audit_entry(
        session,
        key=f"rule/{rule.id}/v{rule.version}",  # each change is a new version of the rule
        tenant_id=rule.tenant_id,
        event_type=event,
        entity_type="policy_rule",
        entity_id=rule.id,
        after_state=state,
        actor_id=actor,
        actor_authority="TENANT_ADMIN",
        source="admin",
    )


def add_rule(sessions: sessionmaker[Session], tenant_id: str, name: str, kind: str,
             params: dict[str, Any], outcome: str, actor: str = "operator") -> str:  # fmt: skip
    try:
        rule_kind, rule_outcome = RuleKind(kind), PolicyOutcome(outcome)
    except ValueError as exc:
        raise AdminError(str(exc)) from None
    _checked_params(rule_kind, params)
    with sessions.begin() as session:
        tenant_of(session, tenant_id)
        rule_id = derive_id(tenant_id, "rule", name)
        if session.get(PolicyRule, rule_id) is not None:
            raise AdminError(f"rule {name!r} already exists for tenant {tenant_id!r}")
        rule = PolicyRule(id=rule_id, tenant_id=tenant_id, name=name, kind=rule_kind,
                          params=params, outcome=rule_outcome, enabled=True, version=1,
                          updated_at=utcnow())  # fmt: skip
        session.add(rule)
        created = {"name": name, "kind": kind, "params": params, "outcome": outcome}
        _audit(session, rule, "POLICY_RULE_CREATED", created, actor)
    return rule_id


def update_rule(sessions: sessionmaker[Session], tenant_id: str, name: str, *,
                enabled: bool | None = None, params: dict[str, Any] | None = None,
                outcome: str | None = None, actor: str = "operator") -> dict[str, Any]:  # fmt: skip
    with sessions.begin() as session:
        rule = session.get(PolicyRule, derive_id(tenant_id, "rule", name))
        if rule is None:
            raise AdminError(f"unknown rule {name!r} for tenant {tenant_id!r}")
        if params is not None:
            rule.params = _checked_params(RuleKind(rule.kind), params)
        if outcome is not None:
            try:
                rule.outcome = PolicyOutcome(outcome)
            except ValueError as exc:
                raise AdminError(str(exc)) from None
        if enabled is not None:
            rule.enabled = enabled
        rule.version += 1
        rule.updated_at = utcnow()
        state = rule_view(rule)
        _audit(session, rule, "POLICY_RULE_UPDATED", state, actor)
        return state


def list_rules(sessions: sessionmaker[Session], tenant_id: str | None) -> list[dict[str, Any]]:
    with sessions() as session:
        stmt = select(PolicyRule).order_by(PolicyRule.tenant_id, PolicyRule.name)
        if tenant_id:
            stmt = stmt.where(PolicyRule.tenant_id == tenant_id)
        return [rule_view(r) for r in session.scalars(stmt)]
