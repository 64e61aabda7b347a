"""Runs facade: the run row, its phase transitions, authorization and finalization.

A phase change commits with the write it precedes wherever there is one (runs.open,
traces.start, policies.evaluate, runs.finalize): one transaction instead of two.
"""

from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity

from activities.events import emit
from activities.ledger import ack, audit_entry, run_once, utcnow
from activities.policy_checks import record_policy_check
from db.models import (
    AuditExpectation,
    PolicyRule,
    Run,
    RunPhaseTransition,
    StopRequest,
    Tenant,
)
from domain import contract
from domain.control import Baseline, LiveState, decide, effective_budget, find_violations
from domain.enums import (
    AuthorizationDecision,
    ObservabilityStatus,
    Phase,
    PolicyDecision,
    RunStatus,
    TenantStatus,
)
from domain.ids import derive_id, run_workflow_id
from domain.messages import (
    AuthorizeResult,
    DegradedRequest,
    Done,
    FinalizeRequest,
    FinalizeResult,
    OpenRunRequest,
    OpenRunResult,
    TransitionRequest,
)
from domain.models import RunConfig, RunOptions
from observability import metrics


def policy_version(session: Session, tenant_id: str) -> int:
    """Sum of the tenant's rule versions: any rule change or toggle moves it."""
    versions = session.scalars(select(PolicyRule.version).where(PolicyRule.tenant_id == tenant_id))
    return sum(versions)


class RunActivities:
    """Writes of the runs domain. ``resolve_config`` turns options into a RunConfig."""

    def __init__(self, sessions: sessionmaker[Session], resolve_config) -> None:  # noqa: ANN001
        self.sessions = sessions
        self.resolve_config = resolve_config

    @activity.defn(name="runs.open")
    def open(self, req: OpenRunRequest) -> OpenRunResult:
        """Insert the run, declare its audit expectations at T0 and authorize it; an allowed
        run enters AUTHORIZED in the same commit (``req.authorized``)."""

        def write(session: Session) -> OpenRunResult:
            now = utcnow()
            config: RunConfig = self.resolve_config(req.options or RunOptions())
            _insert_run(session, req, config, now)
            authorization = _authorize(session, req)
            if authorization.decision == AuthorizationDecision.ALLOWED:
                commit_transition(session, req.authorized)
            checked = req.first_check and _first_check(session, req, config, authorization)
            if checked:
                first_checks.append(req.tenant_id)
            return OpenRunResult(
                config=config,
                started_at=now,
                authorization=authorization,
                first_check_recorded=checked,
            )

        first_checks: list[str] = []  # set when this call did the write (not a ledger replay)
        opened = run_once(self.sessions, "runs.open", OpenRunResult, write)
        for tenant_id in first_checks:
            metrics.record_policy_decision(tenant_id, PolicyDecision.CONTINUE)
        return opened

    @activity.defn(name="runs.mark_degraded")
    def mark_degraded(self, req: DegradedRequest) -> None:
        """Observability guard, DEGRADED mode: the run goes on without a trace."""

        def write(session: Session) -> Done:
            run = session.get_one(Run, req.run_id)
            run.observability_status = ObservabilityStatus.DEGRADED
            run.observability_error = req.error
            run.updated_at = utcnow()
            return Done()

        run_once(self.sessions, "runs.mark_degraded", Done, write)

    @activity.defn(name="runs.transition")
    def transition(self, req: TransitionRequest) -> None:
        """Persist one phase change (run row + transition row), once per sequence number."""

        def write(session: Session) -> Done:
            commit_transition(session, req)
            return Done()

        run_once(self.sessions, f"runs.transition:{req.seq}", Done, write)

    @activity.defn(name="runs.finalize")
    def finalize(self, req: FinalizeRequest) -> FinalizeResult:
        """Terminal transition, finalize_run ack and the run's outbox events, in one commit."""

        def write(session: Session) -> FinalizeResult:
            now = utcnow()
            if req.enter is not None:
                commit_transition(session, req.enter)
            run = _apply_transition(session, req.run_id, req, req.reason)
            run.finalized_at = now
            run.failure_reason = req.reason if req.to_phase == Phase.FAILED else None
            ack(
                session,
                run_id=req.run_id,
                tenant_id=req.tenant_id,
                domain=contract.FINALIZE_RUN[0],
                action=contract.FINALIZE_RUN[1],
                result_id=req.status,
            )
            for topic, payload in req.events:
                emit(
                    session,
                    key=f"{req.run_id}/finalize",
                    topic=topic,
                    tenant_id=req.tenant_id,
                    run_id=req.run_id,
                    payload=payload,
                )
            audit_entry(
                session,
                key=f"{req.run_id}/finalized",
                tenant_id=req.tenant_id,
                event_type="RUN_FINALIZED",
                entity_type="run",
                entity_id=req.run_id,
                after_state={
                    "run_id": req.run_id,
                    "phase": req.to_phase,
                    "status": req.status,
                    "reason": req.reason,
                },
            )
            finished.append(
                session.execute(
                    select(RunPhaseTransition.to_phase, RunPhaseTransition.at)
                    .where(RunPhaseTransition.run_id == req.run_id)
                    .order_by(RunPhaseTransition.seq)
                ).all()
            )
            return FinalizeResult(phase=req.to_phase, status=req.status, reason=req.reason)

        finished: list = []  # the phase timeline, when this call did the write
        committed = run_once(self.sessions, "runs.finalize", FinalizeResult, write)
        if finished:
            metrics.record_run_finished(req.tenant_id, req.to_phase, req.status, finished[0])
        return committed


def plain(amount: Decimal) -> str:
    """1.000000 → 1, 0.000300 → 0.0003: amounts as people write them."""
    return format(amount.normalize(), "f")


def commit_transition(session: Session, req: TransitionRequest) -> None:
    """Persist one phase change (run row, transition row, its events) in the caller's
    transaction: alone in runs.transition, or with the write it precedes."""
    run = _apply_transition(session, req.run_id, req, None)
    for topic, payload in req.events:
        emit(
            session,
            key=f"{req.run_id}/transition/{req.seq}",
            topic=topic,
            tenant_id=run.tenant_id,
            run_id=req.run_id,
            payload=payload,
        )


def _insert_run(session: Session, req: OpenRunRequest, config: RunConfig, now: datetime) -> None:
    """The run (CREATED, queued), its first transition row and its expectations at T0."""
    session.add(
        Run(
            id=req.run_id,
            tenant_id=req.tenant_id,
            workflow_id=run_workflow_id(req.run_id),
            phase=Phase.CREATED,
            status=RunStatus.QUEUED,
            steps_total=len(req.steps),
            budget=req.budget,
            config=config.model_dump(mode="json"),
            created_at=now,
            updated_at=now,
        )
    )
    session.flush()
    session.add(_transition_row(req.run_id, 0, None, Phase.CREATED, RunStatus.QUEUED, now))
    expectations = contract.declare(
        len(req.steps),
        now,
        timedelta(seconds=config.run_timeout_seconds),
        timedelta(seconds=config.finalize_grace_seconds),
    )
    for exp in expectations:
        session.add(
            AuditExpectation(
                id=derive_id(req.run_id, "expectation", exp.domain, exp.action),
                run_id=req.run_id,
                tenant_id=req.tenant_id,
                domain=exp.domain,
                action=exp.action,
                deadline=exp.deadline,
                created_at=now,
            )
        )
    audit_entry(
        session,
        key=f"{req.run_id}/created",
        tenant_id=req.tenant_id,
        event_type="RUN_CREATED",
        entity_type="run",
        entity_id=req.run_id,
        after_state={"run_id": req.run_id, "phase": Phase.CREATED, "steps": len(req.steps)},
    )


def _authorize(session: Session, req: OpenRunRequest) -> AuthorizeResult:
    """Tenant known and active, every skill allowed, budget within the tenant's limit."""
    result = _decide(session, session.get(Tenant, req.tenant_id), req)
    run = session.get_one(Run, req.run_id)
    run.authorization_decision = result.decision
    run.authorization_reason = result.reason
    run.limits_version_at_start = result.limits_version
    run.policy_version_at_start = result.policy_version
    if run.budget is None and result.budget_limit is not None:
        run.budget = result.budget_limit
    run.updated_at = utcnow()
    ack(
        session,
        run_id=req.run_id,
        tenant_id=req.tenant_id,
        domain=contract.AUTHORIZE[0],
        action=contract.AUTHORIZE[1],
        result_id=result.decision,
        details={"reason": result.reason},
    )
    audit_entry(
        session,
        key=f"{req.run_id}/authorization",
        tenant_id=req.tenant_id,
        event_type="RUN_AUTHORIZATION",
        entity_type="run",
        entity_id=req.run_id,
        after_state={"run_id": req.run_id, **result.model_dump(mode="json")},
    )
    return result


def _first_check(
    session: Session, req: OpenRunRequest, config: RunConfig, auth: AuthorizeResult
) -> bool:
    """Record the policy check before step 0 from what the authorization just read: the
    run's baseline is that reading, so only a stop request or the budget could call for
    more than CONTINUE, and then the workflow checks on its own (False)."""
    if not config.policy_check_enabled or auth.decision != AuthorizationDecision.ALLOWED:
        return False
    enabled = frozenset(auth.enabled_rule_ids)
    state = LiveState(
        cost=Decimal(0),
        budget_limit=effective_budget(req.budget, auth.budget_limit),
        tenant_active=True,  # an allowed run's tenant is active: the authorization read it
        stop_requested=session.get(StopRequest, req.run_id) is not None,
        limits_version=auth.limits_version,
        policy_version=auth.policy_version,
        enabled_rule_ids=enabled,
    )
    violations = find_violations(state, Baseline(auth.limits_version, auth.policy_version, enabled))
    if decide(violations) != PolicyDecision.CONTINUE:
        return False
    record_policy_check(
        session,
        run_id=req.run_id,
        tenant_id=req.tenant_id,
        step_index=0,
        decision=PolicyDecision.CONTINUE,
        violations=[],
        cost=Decimal(0),
    )
    return True


def _decide(session: Session, tenant: Tenant | None, req: OpenRunRequest) -> AuthorizeResult:
    denied = AuthorizationDecision.DENIED
    if tenant is None:
        return AuthorizeResult(decision=denied, reason=f"tenant {req.tenant_id!r} is unknown")
    versions = {
        "budget_limit": tenant.budget_limit,
        "limits_version": tenant.limits_version,
        "policy_version": policy_version(session, tenant.id),
        "enabled_rule_ids": sorted(
            session.scalars(
                select(PolicyRule.id).where(
                    PolicyRule.tenant_id == tenant.id, PolicyRule.enabled.is_(True)
                )
            )
        ),
    }
    if tenant.status != TenantStatus.ACTIVE:
        return AuthorizeResult(
            decision=denied, reason=f"tenant {tenant.id!r} is {tenant.status}", **versions
        )
    if tenant.allowed_skills is not None:
        refused = sorted({s.skill for s in req.steps} - set(tenant.allowed_skills))
        if refused:
            return AuthorizeResult(
                decision=denied,
                reason=f"skills not allowed for tenant {tenant.id!r}: {', '.join(refused)}",
                **versions,
            )
    if (
        req.budget is not None
        and tenant.budget_limit is not None
        and req.budget > tenant.budget_limit
    ):
        return AuthorizeResult(
            decision=denied,
            reason=f"budget {plain(req.budget)} exceeds the tenant's limit "
            f"{plain(tenant.budget_limit)}",
            **versions,
        )
    return AuthorizeResult(decision=AuthorizationDecision.ALLOWED, reason="allowed", **versions)


def _transition_row(run_id, seq, from_phase, to_phase, status, at, reason=None):  # noqa: ANN001, ANN202
    return RunPhaseTransition(
        id=derive_id(run_id, "transition", seq),
        run_id=run_id,
        seq=seq,
        from_phase=from_phase,
        to_phase=to_phase,
        status=status,
        reason=reason,
        at=at,
    )


def _apply_transition(session: Session, run_id: str, req, reason: str | None) -> Run:  # noqa: ANN001
    """Move the run to ``req.to_phase`` and log it; a change already logged is kept as is
    (it committed with an earlier write whose completion the workflow did not see)."""
    now = utcnow()
    run = session.get_one(Run, run_id)
    if session.get(RunPhaseTransition, derive_id(run_id, "transition", req.seq)) is not None:
        return run
    run.phase = req.to_phase
    run.status = req.status
    if req.steps_done is not None:
        run.steps_done = req.steps_done
    if req.cost is not None:
        run.cost = req.cost
    run.updated_at = now
    session.add(
        _transition_row(
            run_id, req.seq, req.from_phase, req.to_phase, req.status, now, reason or req.reason
        )
    )
    return run
