"""Operator writes on a tenant's egress allow-list (domain.egress rules).

The allow-list is read by each step when it calls out, so a change applies to the next
step of every run; it bumps no version (it is not one of the limits a run's policy checks
compare) and is written to the audit ledger with its before and after state.
"""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from activities.ledger import audit_entry
from db.models import Tenant
from domain.egress import EgressRule, EgressRuleError, parse_rules
from runtime.admin import AdminError


def parse_allow(texts: list[str]) -> list[dict[str, Any]]:
    """Rules from the CLI's ``--allow`` values (scheme://host[:port] or JSON objects)."""
    try:
        return [EgressRule.parse_text(text).to_dict() for text in texts]
    except EgressRuleError as exc:
        raise AdminError(f"--allow: {exc}") from None


def _tenant(session: Session, tenant_id: str) -> Tenant:
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        raise AdminError(f"unknown tenant {tenant_id!r}")
    return tenant


def get_egress_allow(sessions: sessionmaker[Session], tenant_id: str) -> list[dict] | None:
    with sessions() as session:
        return _tenant(session, tenant_id).egress_allow


def set_egress_allow(sessions: sessionmaker[Session], tenant_id: str,
                     rules: list[dict[str, Any]] | None,
                     actor: str = "operator") -> list[dict] | None:  # fmt: skip
    """Replace a tenant's allow-list (None: no entries of its own); returns it, normalized."""
    try:
        normalized = None if rules is None else [r.to_dict() for r in parse_rules(rules, "rules")]
    except EgressRuleError as exc:
        raise AdminError(str(exc)) from None
    with sessions.begin() as session:
        tenant = _tenant(session, tenant_id)
        before = tenant.egress_allow
        tenant.egress_allow = normalized
        tenant.updated_at = datetime.now(UTC)
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
