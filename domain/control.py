"""Pure control decisions: mid-execution policy checks and pause authority (FIX-005, 13.5)."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from domain.enums import Authority, PauseReason, PolicyDecision, ViolationType

DECISION_FOR: dict[ViolationType, PolicyDecision] = {
    ViolationType.BUDGET_EXCEEDED: PolicyDecision.TERMINATE,
    ViolationType.POLICY_DISABLED: PolicyDecision.PAUSE,
    ViolationType.MANUAL_STOP: PolicyDecision.TERMINATE,
    ViolationType.TENANT_SUSPENDED: PolicyDecision.TERMINATE,
    ViolationType.LIMIT_CHANGED: PolicyDecision.PAUSE,
    ViolationType.STEP_PREVENTED: PolicyDecision.TERMINATE,  # judged before a step
}

RESUMABLE_BY: dict[PauseReason, tuple[Authority, ...]] = {
    PauseReason.MANUAL_PAUSE: (
        Authority.TENANT_ADMIN,
        Authority.TENANT_USER,
        Authority.API_KEY_OWNER,
        Authority.FOUNDER_ONLY,
    ),
    PauseReason.POLICY_CHANGE: (Authority.TENANT_ADMIN, Authority.FOUNDER_ONLY),
    PauseReason.BUDGET_WARNING: (Authority.TENANT_ADMIN, Authority.FOUNDER_ONLY),
    PauseReason.APPROVAL_REQUIRED: (Authority.TENANT_ADMIN, Authority.FOUNDER_ONLY),
    PauseReason.RATE_LIMIT_SOFT: (
        Authority.SYSTEM_AUTO,
        Authority.TENANT_ADMIN,
        Authority.FOUNDER_ONLY,
    ),
}


def decide(violations: list[ViolationType], enabled: bool = True) -> PolicyDecision:
    """TERMINATE beats PAUSE beats CONTINUE; SKIP when the check is disabled."""
    if not enabled:
        return PolicyDecision.SKIP
    decisions = {DECISION_FOR[v] for v in violations}
    if PolicyDecision.TERMINATE in decisions:
        return PolicyDecision.TERMINATE
    if PolicyDecision.PAUSE in decisions:
        return PolicyDecision.PAUSE
    return PolicyDecision.CONTINUE


@dataclass(frozen=True)
class LiveState:
    """What the policy check activity read, compared against the run's start."""

    cost: Decimal
    budget_limit: Decimal | None
    tenant_active: bool
    stop_requested: bool
    limits_version: int | None
    policy_version: int | None
    enabled_rule_ids: frozenset[str]


@dataclass(frozen=True)
class Baseline:
    limits_version: int | None
    policy_version: int | None
    enabled_rule_ids: frozenset[str]


def find_violations(state: LiveState, baseline: Baseline) -> list[ViolationType]:
    found: list[ViolationType] = []
    if state.budget_limit is not None and state.cost > state.budget_limit:
        found.append(ViolationType.BUDGET_EXCEEDED)
    if baseline.enabled_rule_ids - state.enabled_rule_ids:
        found.append(ViolationType.POLICY_DISABLED)
    if state.stop_requested:
        found.append(ViolationType.MANUAL_STOP)
    if not state.tenant_active:
        found.append(ViolationType.TENANT_SUSPENDED)
    changed = (state.limits_version, state.policy_version) != (
        baseline.limits_version,
        baseline.policy_version,
    )
    if changed and ViolationType.POLICY_DISABLED not in found:
        found.append(ViolationType.LIMIT_CHANGED)
    return found


def check_due(
    *,
    step_index: int,
    forced: bool,
    last_check_at: datetime | None,
    now: datetime,
    steps_since_check: int,
    interval: timedelta,
    min_steps: int,
) -> bool:
    """Always on the first step and when forced (budget crossed); else interval AND steps."""
    if step_index == 0 or forced or last_check_at is None:
        return True
    return now - last_check_at >= interval and steps_since_check >= min_steps


def may_resume(reason: PauseReason, authority: Authority) -> bool:
    return authority in RESUMABLE_BY[reason]


def effective_budget(run_budget: Decimal | None, tenant_limit: Decimal | None) -> Decimal | None:
    limits = [b for b in (run_budget, tenant_limit) if b is not None]
    return min(limits) if limits else None
