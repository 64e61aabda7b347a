"""After the chaos: nothing lost, nothing duplicated, every contract kept, every chain intact.

1. every run ended: its workflow COMPLETED in Temporal, its row COMPLETED — or FAILED with
   every governance write it made rolled back (full compensation);
2. zero duplicate rows in every domain table, grouped by each table's natural key;
3. zero missing acks: the pure reconciler (domain.reconciler) over every run is COMPLETE;
4. every hash chain VERIFIED (db.queries.evidence.run_proof);
5. reconciliation clean: one ReconcileWorkflow with ``as_of`` past every deadline (so an
   expectation still open anywhere is overdue) finds nothing stale, late or incomplete.
"""

import asyncio
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

from sqlalchemy import String, cast, func, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from db import models as m
from db.queries.evidence import run_proof
from domain import contract
from domain.enums import AckStatus, RecordStatus
from domain.evidence import ProofStatus
from domain.ids import run_workflow_id
from domain.reconcile_messages import ReconcileInput, ReconcileSummary
from domain.reconciler import reconcile
from runtime.settings import Settings
from services.audit import load_contract

# (table, natural key): at most one row per key, whatever crashed and was retried.
NATURAL_KEYS = [
    (m.Run, ("workflow_id",)),
    (m.RunPhaseTransition, ("run_id", "to_phase")),
    (m.AuditExpectation, ("run_id", "domain", "action")),
    (m.DomainAck, ("run_id", "domain", "action", "status")),
    (m.AuditLedgerEntry, ("event_type", "entity_type", "entity_id", "after_state")),
    (m.IdempotencyRecord, ("workflow_id", "step_key")),
    (m.Trace, ("run_id",)),
    (m.TraceStep, ("run_id", "step_index")),
    (m.PolicyEvaluation, ("run_id",)),
    (m.PreventionRecord, ("run_id", "step_index", "rule_name")),
    (m.LimitBreach, ("run_id", "limit_type")),
    (m.Incident, ("source_run_id", "category")),
    (m.PolicyCheck, ("run_id", "step_index")),
    (m.PauseRecord, ("run_id", "paused_at")),
    (m.OutboxEvent, ("run_id", "topic")),
]
GOVERNANCE_ACTIONS = {contract.EVALUATE_POLICY, contract.CREATE_INCIDENT, contract.COMPLETE_TRACE}


def duplicates(session: Session) -> dict[str, int]:
    """Number of natural keys held by more than one row, per table."""
    found = {}
    for model, key in NATURAL_KEYS:
        columns = [
            cast(getattr(model, c), String) if c == "after_state" else getattr(model, c)
            for c in key
        ]
        groups = select(*columns).group_by(*columns).having(func.count() > 1).subquery()
        found[model.__tablename__] = session.scalar(select(func.count()).select_from(groups)) or 0
    return found


def compensation_gaps(session: Session, run_id: str) -> list[str]:
    """Governance writes of a rolled-back run that were not rolled back."""
    acks = session.scalars(select(m.DomainAck).where(m.DomainAck.run_id == run_id)).all()
    done = {(a.domain, a.action) for a in acks if a.status != AckStatus.ROLLED_BACK}
    undone = {(a.domain, a.action) for a in acks if a.status == AckStatus.ROLLED_BACK}
    gaps = [f"{d}/{a} not rolled back" for d, a in sorted((done & GOVERNANCE_ACTIONS) - undone)]
    evaluation = session.scalars(
        select(m.PolicyEvaluation).where(m.PolicyEvaluation.run_id == run_id)
    ).first()
    if evaluation is not None and evaluation.status != RecordStatus.ROLLED_BACK:
        gaps.append(f"policy evaluation {evaluation.status}")
    return gaps


def check_runs(sessions: sessionmaker[Session], run_ids: list[str]) -> dict:
    """Rows, contracts and chains of every run."""
    outcome: Counter[str] = Counter()
    problems: list[str] = []
    missing = drift = stale = 0
    chains: Counter[str] = Counter()
    far = datetime.now(UTC) + timedelta(days=365)
    with sessions() as session:
        for run_id in run_ids:
            run = session.get(m.Run, run_id)
            if run is None:
                outcome["missing"] += 1
                problems.append(f"run {run_id}: no row (lost)")
                continue
            outcome[f"{run.phase} {run.status}"] += 1
            if run.phase == "FAILED":
                gaps = compensation_gaps(session, run_id)
                if "governance rolled back" not in (run.failure_reason or "") or gaps:
                    problems.append(f"run {run_id}: FAILED ({run.failure_reason}) {gaps}")
            elif run.phase != "COMPLETED":
                problems.append(f"run {run_id}: did not end ({run.phase} {run.status})")
            result = reconcile(*load_contract(session, run_id), far)
            missing, drift = missing + len(result.missing), drift + len(result.drift)
            stale += result.stale
            if not result.clean:
                problems.append(
                    f"run {run_id}: contract {result.status} "
                    f"missing={result.missing} drift={result.drift}"
                )
            proof = run_proof(session, run_id)
            chains[proof.status] += 1
            if proof.status != ProofStatus.VERIFIED or proof.stored_head_matches is False:
                problems.append(f"run {run_id}: proof {proof.status} ({proof.reason})")
        dups = duplicates(session)
    problems += [f"{table}: {n} duplicated keys" for table, n in dups.items() if n]
    return {
        "outcomes": dict(outcome),
        "duplicates": dups,
        "missing_acks": missing,
        "drift_acks": drift,
        "stale_runs": stale,
        "chains": dict(chains),
        "problems": problems,
    }


async def workflows_closed(client: Client, run_ids: list[str]) -> Counter[str]:
    limit = asyncio.Semaphore(32)

    async def one(run_id: str) -> str:
        async with limit:
            description = await client.get_workflow_handle(run_workflow_id(run_id)).describe()
            return description.status.name if description.status else "UNKNOWN"

    return Counter(await asyncio.gather(*(one(r) for r in run_ids)))


async def reconciliation(client: Client, task_queue: str, settings: Settings) -> dict:
    """One ReconcileWorkflow as of a moment past every deadline, over every ack."""
    past_every_deadline = timedelta(
        seconds=settings.run_timeout_seconds + settings.finalize_grace_seconds + 3600
    )
    now = datetime.now(UTC)
    summary = await client.execute_workflow(
        "ReconcileWorkflow",
        ReconcileInput(as_of=now + past_every_deadline, ack_since=now - timedelta(days=1)),
        id=f"reconcile-chaos-{uuid.uuid4().hex[:8]}",
        task_queue=task_queue,
        result_type=ReconcileSummary,
        execution_timeout=timedelta(minutes=10),
    )
    return summary.totals.model_dump()


async def verify(
    client: Client,
    sessions: sessionmaker[Session],
    run_ids: list[str],
    task_queue: str,
    settings: Settings,
) -> dict:
    checks = await asyncio.to_thread(check_runs, sessions, run_ids)
    states = await workflows_closed(client, run_ids)
    checks["workflows"] = dict(states)
    if states.get("COMPLETED", 0) != len(run_ids):
        checks["problems"].append(f"workflows not COMPLETED: {dict(states)}")
    totals = await reconciliation(client, task_queue, settings)
    checks["reconciliation"] = totals
    if any(totals[k] for k in ("stale", "late", "incomplete", "findings_new")):
        checks["problems"].append(f"reconciliation not clean: {totals}")
    checks["verdict"] = {"passed": not checks["problems"], "problems": checks["problems"][:20]}
    return checks
