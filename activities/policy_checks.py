"""What a policy check reads of a tenant's rules, and the record of one check
(control.check_policy, or runs.open for the check before step 0, which the
authorization's reading of the live state answers)."""

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from activities.ledger import execute_core, insert_row, utcnow
from db.models import PolicyCheck, PolicyRule
from domain.enums import PolicyDecision, ViolationType
from domain.ids import derive_id

_RULES = PolicyRule.__table__
_TENANT_RULES = select(_RULES.c.id, _RULES.c.version, _RULES.c.enabled).where(
    _RULES.c.tenant_id == bindparam("tenant_id")
)


@dataclass(frozen=True)
class RuleState:
    policy_version: int  # sum of the tenant's rule versions: any change or toggle moves it
    enabled_rule_ids: list[str]  # sorted


def rule_state(session: Session, tenant_id: str) -> RuleState:
    """The tenant's policy version and enabled rules, in one read."""
    rules = execute_core(session, _TENANT_RULES, {"tenant_id": tenant_id}).all()
    return RuleState(
        policy_version=sum(rule.version for rule in rules),
        enabled_rule_ids=sorted(rule.id for rule in rules if rule.enabled),
    )


def record_policy_check(
    session: Session,
    *,
    run_id: str,
    tenant_id: str,
    step_index: int,
    decision: PolicyDecision,
    violations: list[ViolationType],
    cost: Decimal,
) -> None:
    insert_row(
        session,
        PolicyCheck,
        id=derive_id(run_id, "policy-check", step_index),
        run_id=run_id,
        tenant_id=tenant_id,
        step_index=step_index,
        decision=decision,
        violations=list(violations),
        cost_so_far=cost,
        checked_at=utcnow(),
    )
