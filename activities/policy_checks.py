"""The record of one mid-execution policy check (control.check_policy, or runs.open for
the check before step 0, which the authorization's reading of the live state answers)."""

from decimal import Decimal

from sqlalchemy.orm import Session

from activities.ledger import insert_row, utcnow
from db.models import PolicyCheck
from domain.enums import PolicyDecision, ViolationType
from domain.ids import derive_id


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
