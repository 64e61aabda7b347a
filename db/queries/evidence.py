"""Run evidence, run proof and the governance log: read queries keyed by run id.

Each part comes from its own table (incidents, policy evaluations with their prevention
records and limit breaches, policy checks, pause records, promotion decisions of the
candidates the run caused, the audit ledger, traces — the usage per model is its llm
trace steps).
Rolled-back rows are returned with their status, never hidden. Given a ``tenant_id``, a
run of another tenant is reported exactly like an unknown run.
"""

from collections.abc import Sequence
from decimal import Decimal

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from db.models import (
    AuditLedgerEntry,
    Candidate,
    Incident,
    LimitBreach,
    PauseRecord,
    PolicyCheck,
    PolicyEvaluation,
    PreventionRecord,
    PromotionDecisionRecord,
    Run,
    Trace,
    TraceStep,
)
from domain.enums import AuthorizationDecision, ObservabilityStatus, RecordStatus
from domain.evidence import (
    AuthorizationEvidence,
    ControlEvidence,
    DecisionsEvidence,
    GovernanceEvent,
    GovernanceLog,
    GovernanceMetadata,
    IncidentEvidence,
    LimitBreachEvidence,
    ModelUsage,
    PauseEvidence,
    PolicyCheckEvidence,
    PolicyEvaluationEvidence,
    PreventionEvidence,
    PromotionEvidence,
    ProofStatus,
    RunEvidence,
    RunProof,
)
from domain.hashchain import GENESIS_HASH, first_broken_link, step_content

ROLLED_BACK = RecordStatus.ROLLED_BACK.value


class UnknownRunError(LookupError):
    """No run with this id (or none visible to the asking tenant)."""

    def __init__(self, run_id: str) -> None:
        super().__init__(f"unknown run {run_id!r}")
        self.run_id = run_id


def get_run(session: Session, run_id: str, tenant_id: str | None = None) -> Run:
    run = session.get(Run, run_id)
    if run is None or (tenant_id is not None and run.tenant_id != tenant_id):
        raise UnknownRunError(run_id)
    return run


# ----- evidence ---------------------------------------------------------------------------


def run_evidence(session: Session, run_id: str, tenant_id: str | None = None) -> RunEvidence:
    """Incidents, policy evaluations (records, breaches) and decisions of one run."""
    run = get_run(session, run_id, tenant_id)
    incidents = session.scalars(
        select(Incident)
        .where(Incident.source_run_id == run_id)
        .order_by(Incident.created_at, Incident.id)
    )
    return RunEvidence(
        run_id=run.id,
        tenant_id=run.tenant_id,
        phase=run.phase,
        status=run.status,
        incidents=[
            IncidentEvidence(
                id=i.id,
                title=i.title,
                category=i.category,
                severity=i.severity,
                status=i.status,
                created_at=i.created_at,
                rolled_back=i.status == ROLLED_BACK,
                rollback_reason=i.rollback_reason,
            )
            for i in incidents
        ],
        policy_evaluations=_evaluations(session, run_id),
        usage=run_usage(session, run_id),
        decisions=DecisionsEvidence(
            authorization=AuthorizationEvidence(
                decision=run.authorization_decision, reason=run.authorization_reason
            ),
            policy_checks=_policy_checks(session, run_id),
            step_judgements=_step_judgements(session, run_id),
            pauses=_pauses(session, run_id),
            control=_control(ledger_entries(session, run_id)),
            promotions=_promotions(session, run_id),
        ),
    )


LLM_SKILL = "llm"
DEFAULT_MODEL = "(the worker's LLM_MODEL)"  # a failed call that named no model


def run_usage(session: Session, run_id: str) -> list[ModelUsage]:
    """The run's usage per model, by name: its ``llm`` trace steps (planned ones and an
    agent's model calls alike), the tokens their outputs report and their cost."""
    steps = session.execute(
        select(TraceStep.input, TraceStep.output, TraceStep.cost, TraceStep.status)
        .where(TraceStep.run_id == run_id, TraceStep.skill == LLM_SKILL)
    ).all()  # fmt: skip
    found: dict[str, dict] = {}
    for sent, got, cost, status in steps:
        model = str((got or {}).get("model") or (sent or {}).get("model") or DEFAULT_MODEL)
        usage = (got or {}).get("usage") or {}
        row = found.setdefault(model, {"model": model, "calls": 0, "failed": 0,
                                       "input_tokens": 0, "output_tokens": 0,
                                       "cost": Decimal(0)})  # fmt: skip
        row["calls"] += 1
        row["failed"] += status != "OK"
        row["input_tokens"] += int(usage.get("prompt_tokens") or 0)
        row["output_tokens"] += int(usage.get("completion_tokens") or 0)
        row["cost"] += cost
    return [ModelUsage(**found[m]) for m in sorted(found)]


def _prevention(r: PreventionRecord) -> PreventionEvidence:
    return PreventionEvidence(
        id=r.id,
        rule_id=r.rule_id,
        rule_name=r.rule_name,
        outcome=r.outcome,
        reason=r.reason,
        status=r.status,
        rolled_back=r.status == ROLLED_BACK,
        step_index=r.step_index,
    )


def _step_judgements(session: Session, run_id: str) -> list[PreventionEvidence]:
    records = session.scalars(
        select(PreventionRecord)
        .where(PreventionRecord.run_id == run_id, PreventionRecord.step_index.is_not(None))
        .order_by(PreventionRecord.step_index, PreventionRecord.id)
    ).all()
    return [_prevention(r) for r in records]


def _evaluations(session: Session, run_id: str) -> list[PolicyEvaluationEvidence]:
    records = session.scalars(
        select(PreventionRecord)
        .where(PreventionRecord.run_id == run_id)
        .order_by(PreventionRecord.created_at, PreventionRecord.id)
    ).all()
    breaches = session.scalars(
        select(LimitBreach)
        .where(LimitBreach.run_id == run_id)
        .order_by(LimitBreach.created_at, LimitBreach.id)
    ).all()
    evaluations = session.scalars(
        select(PolicyEvaluation).where(PolicyEvaluation.run_id == run_id)
    ).all()
    return [
        PolicyEvaluationEvidence(
            id=e.id,
            outcome=e.outcome,
            status=e.status,
            rolled_back=e.status == ROLLED_BACK,
            rollback_reason=e.rollback_reason,
            created_at=e.created_at,
            prevention_records=[_prevention(r) for r in records if r.evaluation_id == e.id],
            limit_breaches=[
                LimitBreachEvidence(
                    id=b.id,
                    limit_type=b.limit_type,
                    value=b.value,
                    threshold=b.threshold,
                    status=b.status,
                    rolled_back=b.status == ROLLED_BACK,
                )
                for b in breaches
                if b.evaluation_id == e.id
            ],
        )
        for e in evaluations
    ]


def _policy_checks(session: Session, run_id: str) -> list[PolicyCheckEvidence]:
    checks = session.scalars(
        select(PolicyCheck).where(PolicyCheck.run_id == run_id).order_by(PolicyCheck.step_index)
    )
    return [
        PolicyCheckEvidence(
            id=c.id,
            step_index=c.step_index,
            decision=c.decision,
            violations=[str(v) for v in c.violations],
            cost_so_far=c.cost_so_far,
            checked_at=c.checked_at,
        )
        for c in checks
    ]


def _pauses(session: Session, run_id: str) -> list[PauseEvidence]:
    pauses = session.scalars(
        select(PauseRecord).where(PauseRecord.run_id == run_id).order_by(PauseRecord.paused_at)
    )
    return [
        PauseEvidence(
            id=p.id,
            reason=p.reason,
            paused_by=p.paused_by,
            paused_by_authority=p.paused_by_authority,
            paused_at=p.paused_at,
            sla_deadline=p.sla_deadline,
            resumable_by=[str(a) for a in p.resumable_by],
            timeout_behavior=p.timeout_behavior,
            warned_at=p.warned_at,
            escalated_at=p.escalated_at,
            resolution=p.resolution,
            resolved_by=p.resolved_by,
            resolved_at=p.resolved_at,
        )
        for p in pauses
    ]


def _promotions(session: Session, run_id: str) -> list[PromotionEvidence]:
    decisions = session.scalars(
        select(PromotionDecisionRecord)
        .join(Candidate, Candidate.id == PromotionDecisionRecord.candidate_id)
        .where(Candidate.source_run_id == run_id)
        .order_by(PromotionDecisionRecord.decided_at, PromotionDecisionRecord.id)
    )
    return [
        PromotionEvidence(
            id=d.id,
            candidate_id=d.candidate_id,
            decision=d.decision,
            reason=d.reason,
            policy=f"{d.policy_id} v{d.policy_version}",
            authority_type=d.authority_type,
            authority_id=d.authority_id,
            incident_id=d.incident_id,
            decided_at=d.decided_at,
        )
        for d in decisions
    ]


def _control(entries: Sequence[AuditLedgerEntry]) -> list[ControlEvidence]:
    """Refused signals and stops: what the control tables do not hold on their own."""
    found = []
    for e in entries:
        state = e.after_state or {}
        if e.event_type == "SIGNAL_REFUSED":
            kind = f"{str(state.get('signal', 'signal')).upper()}_REFUSED"
        elif e.event_type == "STOP_REQUESTED":
            kind = "STOP_REQUESTED"
        elif e.event_type == "RUN_FINALIZED" and state.get("status") == "cancelled":
            kind = "STOPPED"
        else:
            continue
        found.append(
            ControlEvidence(
                id=e.id,
                kind=kind,
                actor_id=e.actor_id,
                actor_authority=e.actor_authority,
                reason=state.get("reason"),
                at=e.created_at,
            )
        )
    return found


# ----- governance log ---------------------------------------------------------------------


def ledger_entries(session: Session, run_id: str) -> list[AuditLedgerEntry]:
    """Audit-ledger entries whose after_state or before_state carries the run id, in order."""
    stmt = (
        select(AuditLedgerEntry)
        .where(
            or_(
                AuditLedgerEntry.after_state["run_id"].as_string() == run_id,
                AuditLedgerEntry.before_state["run_id"].as_string() == run_id,
            )
        )
        .order_by(AuditLedgerEntry.created_at, AuditLedgerEntry.id)
    )
    return list(session.scalars(stmt))


def governance_log(session: Session, run_id: str, tenant_id: str | None = None) -> GovernanceLog:
    run = get_run(session, run_id, tenant_id)
    events = [
        GovernanceEvent(
            id=e.id,
            seq=seq,
            event_type=e.event_type,
            entity_type=e.entity_type,
            entity_id=e.entity_id,
            tenant_id=e.tenant_id,
            actor_id=e.actor_id,
            actor_authority=e.actor_authority,
            source=e.source,
            before_state=e.before_state,
            after_state=e.after_state,
            created_at=e.created_at,
        )
        for seq, e in enumerate(ledger_entries(session, run_id), start=1)
    ]
    return GovernanceLog(
        run_id=run.id,
        total_events=len(events),
        events=events,
        metadata=GovernanceMetadata(tenant_id=run.tenant_id, run_id=run.id),
    )


# ----- proof ------------------------------------------------------------------------------


def run_proof(session: Session, run_id: str, tenant_id: str | None = None) -> RunProof:
    """Verify the trace's sha256 hash chain step by step against the rows as stored now."""
    run = get_run(session, run_id, tenant_id)
    base = {"run_id": run.id, "tenant_id": run.tenant_id}
    trace = session.scalars(select(Trace).where(Trace.run_id == run_id)).first()
    if trace is None:
        return RunProof(**base, status=ProofStatus.UNSUPPORTED, reason=_no_trace_reason(run))
    steps = session.scalars(
        select(TraceStep).where(TraceStep.trace_id == trace.id).order_by(TraceStep.step_index)
    ).all()
    traced = {
        **base,
        "method": "HASH_CHAIN",
        "trace_id": trace.id,
        "trace_status": trace.status,
        "stored_head_hash": trace.head_hash,
        "stored_step_count": trace.step_count,
    }
    broken = first_broken_link((s.step_index, s.prev_hash, s.hash, _content(s)) for s in steps)
    if broken is not None:
        return RunProof(
            **traced,
            status=ProofStatus.FAILED,
            failed_step=broken,
            reason=_broken_reason(steps, broken),
        )
    head = steps[-1].hash if steps else GENESIS_HASH
    count = len(steps)
    proof = RunProof(**traced, status=ProofStatus.VERIFIED, step_count=count, head_hash=head)
    if trace.head_hash is None:
        return proof.model_copy(
            update={"reason": f"trace not completed (status {trace.status}); chain verified"}
        )
    if (trace.head_hash, trace.step_count) == (head, count):
        return proof.model_copy(update={"stored_head_matches": True})
    stored_count = trace.step_count or 0
    return proof.model_copy(
        update={
            "status": ProofStatus.FAILED,
            "stored_head_matches": False,
            "failed_step": min(stored_count, count) if stored_count != count else None,
            "reason": (
                f"the trace stores head {trace.head_hash} over {trace.step_count} steps, "
                f"the chain has head {head} over {count} steps (steps removed or trace altered)"
            ),
        }
    )


def _content(step: TraceStep) -> dict:
    """Exactly what the step's hash covers (see activities/steps.py)."""
    return step_content(
        run_id=step.run_id,
        step_index=step.step_index,
        skill=step.skill,
        input=step.input,
        output=step.output,
        cost=step.cost,
        status=step.status,
        error=step.error,
    )


def _broken_reason(steps: Sequence[TraceStep], index: int) -> str:
    position = next(i for i, s in enumerate(steps) if s.step_index == index)
    expected_prev = steps[position - 1].hash if position else GENESIS_HASH
    step = steps[position]
    if step.prev_hash != expected_prev:
        after = f"step {steps[position - 1].step_index}" if position else "the genesis hash"
        return f"step {index}: prev_hash does not link to {after} (a step is missing or altered)"
    return f"step {index}: stored hash does not match the step's content (the row was altered)"


def _no_trace_reason(run: Run) -> str:
    mode = (run.config or {}).get("observability_mode")
    if run.observability_status == ObservabilityStatus.DEGRADED:
        return (
            f"no trace: the run ran without one (OBSERVABILITY_MODE=DEGRADED): "
            f"{run.observability_error or 'trace start failed'}"
        )
    if run.authorization_decision == AuthorizationDecision.DENIED:
        return f"no trace: the run was not authorized ({run.authorization_reason})"
    if run.phase in ("CREATED", "AUTHORIZED"):
        return f"no trace yet: the run is in phase {run.phase}"
    if mode == "PERMISSIVE":
        return "no trace: trace start failed and the run went on (OBSERVABILITY_MODE=PERMISSIVE)"
    if run.phase == "FAILED":
        return f"no trace: the run failed before tracing ({run.failure_reason})"
    return "no trace found for the run"
