"""Every domain write runs once per (workflow id, step key): a retry returns the first result.

Each activity is called twice with the same activity context (as Temporal does on a
retry whose first completion was lost); the second call writes nothing.
"""

import dataclasses
import uuid
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from temporalio.testing import ActivityEnvironment

from activities.incidents import IncidentActivities
from activities.policies import PolicyActivities
from activities.runs import RunActivities
from activities.traces import TraceActivities
from db.models import (
    AuditExpectation,
    AuditLedgerEntry,
    DomainAck,
    IdempotencyRecord,
    Incident,
    PolicyEvaluation,
    Run,
    RunPhaseTransition,
    Trace,
)
from domain.enums import IncidentCategory, RunStatus, Severity
from domain.messages import (
    EvaluateRequest,
    IncidentRequest,
    OpenRunRequest,
    RunFacts,
    TraceRequest,
    TransitionRequest,
)
from domain.models import RunOptions, StepSpec
from services.ledger import ack, utcnow
from tests.helpers import add_rule, new_tenant

pytestmark = pytest.mark.timeout(60)


def env_for(run_id: str) -> ActivityEnvironment:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, workflow_id=f"run-{run_id}", attempt=2)
    return env


def totals(sessions) -> dict[str, int]:
    with sessions() as session:
        return {
            model.__tablename__: session.scalar(select(func.count()).select_from(model))
            for model in (
                Run,
                AuditExpectation,
                DomainAck,
                AuditLedgerEntry,
                IdempotencyRecord,
                Incident,
                PolicyEvaluation,
                Trace,
                RunPhaseTransition,
            )  # fmt: skip
        }


def phase(run_id: str, seq: int, from_phase: str, to_phase: str, status: str) -> TransitionRequest:
    return TransitionRequest(
        run_id=run_id, seq=seq, from_phase=from_phase, to_phase=to_phase, status=status
    )


def test_each_write_twice_writes_once(sessions, settings):
    tenant = new_tenant(sessions)
    add_rule(sessions, tenant, "warn-echo", "SKILL_USED", {"skill": "echo"}, "WARNED")
    run_id = f"r-{uuid.uuid4().hex[:10]}"
    env = env_for(run_id)
    runs = RunActivities(sessions, settings.run_defaults())
    calls = [
        (runs.open, OpenRunRequest(run_id=run_id, tenant_id=tenant,
                                   steps=[StepSpec(skill="echo", input={"text": "x"})],
                                   budget=None, options=RunOptions(),
                                   authorized=phase(run_id, 1, "CREATED", "AUTHORIZED", "queued"))),
        (TraceActivities(sessions).start, TraceRequest(
            run_id=run_id, tenant_id=tenant,
            enter=phase(run_id, 2, "AUTHORIZED", "EXECUTING", "running"))),
        (PolicyActivities(sessions).evaluate, EvaluateRequest(facts=RunFacts(
            run_id=run_id, tenant_id=tenant, status=RunStatus.SUCCEEDED, skills_used=["echo"],
            steps_done=1, cost=Decimal("0.0001"), budget=None),
            enter=phase(run_id, 3, "EXECUTING", "GOVERNANCE_CHECK", "running"))),
        (IncidentActivities(sessions).create_for_run, IncidentRequest(
            run_id=run_id, tenant_id=tenant, category=IncidentCategory.RUN_FAILURE,
            severity=Severity.HIGH, title="t", description="d")),
    ]  # fmt: skip
    for fn, arg in calls:
        first = env.run(fn, arg)
        after_first = totals(sessions)
        again = env.run(fn, arg)
        assert again == first, fn
        assert totals(sessions) == after_first, f"{fn.__name__} wrote again on retry"


def test_an_ack_closes_an_expectation_declared_in_the_same_transaction(sessions):
    # The ack's Core statements run after the ORM rows the session still holds.
    tenant = new_tenant(sessions)
    run_id = f"r-{uuid.uuid4().hex[:10]}"
    with sessions.begin() as session:
        session.add(
            AuditExpectation(
                id=f"exp-{run_id}", run_id=run_id, tenant_id=tenant, domain="runs",
                action="authorize", deadline=utcnow(), created_at=utcnow(),
            )
        )  # fmt: skip
        ack(session, run_id=run_id, tenant_id=tenant, domain="runs", action="authorize",
            result_id="ALLOWED")  # fmt: skip
    with sessions() as session:
        [expectation] = session.scalars(
            select(AuditExpectation).where(AuditExpectation.run_id == run_id)
        ).all()
        assert expectation.acked_at is not None
