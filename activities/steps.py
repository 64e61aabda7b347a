"""Step execution: run the skill, then write its trace step and ack in one transaction.

The ledger is consulted before the skill runs, so a step whose result was recorded is
never executed again, even if its activity completion was lost.
"""

from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from decimal import Decimal

from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity

from activities.ledger import ack, find_first_result, insert_row, run_once, utcnow
from activities.skills.base import SkillContext, SkillError
from activities.skills.registry import run_skill
from activities.traces import trace_id_for
from db.models import TraceStep
from domain import contract
from domain.enums import AckStatus
from domain.hashchain import step_content, step_hash
from domain.ids import derive_id
from domain.messages import StepRequest, StepResult
from domain.skill_catalog import STEP_HEARTBEAT_SECONDS
from domain.skill_catalog import STEP_MAX_ATTEMPTS as MAX_ATTEMPTS

HEARTBEAT_EVERY_SECONDS = STEP_HEARTBEAT_SECONDS / 4


def content_of(req: StepRequest, result: StepResult) -> dict:
    return step_content(
        run_id=req.run_id,
        step_index=req.index,
        skill=req.skill,
        input=req.input,
        output=result.output,
        cost=result.cost,
        status="OK" if result.ok else "FAILED",
        error=result.error,
    )


class StepActivities:
    """Executes skills; holds the shared SkillContext (HTTP client, LLM endpoint)."""

    def __init__(
        self, sessions: sessionmaker[Session], skills: SkillContext, threads: int = 32
    ) -> None:
        self.sessions = sessions
        self.skills = skills
        self._skill_threads = ThreadPoolExecutor(threads, thread_name_prefix="skill")

    def _run_heartbeating(self, req: StepRequest):  # noqa: ANN202 - a SkillOutput
        """Run the skill in a helper thread and heartbeat meanwhile, so that a worker that
        dies mid-step is noticed within the heartbeat timeout, not the step timeout."""
        future = self._skill_threads.submit(run_skill, req.skill, req.input, self.skills)
        while True:
            try:
                return future.result(timeout=HEARTBEAT_EVERY_SECONDS)
            except FutureTimeout:
                activity.heartbeat()

    @activity.defn(name="steps.execute")
    def execute(self, req: StepRequest) -> StepResult:
        key = f"steps.execute:{req.index}"
        first = find_first_result(self.sessions, key)
        if first is not None:
            return StepResult.model_validate(first)
        try:
            out = self._run_heartbeating(req)
            result = StepResult(ok=True, output=out.output, cost=out.cost)
        except SkillError as exc:
            if exc.retryable and activity.info().attempt < MAX_ATTEMPTS:
                raise
            result = StepResult(ok=False, output={}, cost=Decimal(0), error=str(exc))

        def write(session: Session) -> StepResult:
            recorded = result
            if req.traced:
                content = content_of(req, result)
                digest = step_hash(req.prev_hash, content)
                recorded = result.model_copy(update={"hash": digest})
                insert_row(
                    session,
                    TraceStep,
                    id=derive_id(req.run_id, "trace-step", req.index),
                    trace_id=trace_id_for(req.run_id),
                    run_id=req.run_id,
                    step_index=req.index,
                    skill=req.skill,
                    input=req.input,
                    output=result.output,
                    cost=result.cost,
                    status=content["status"],
                    error=result.error,
                    prev_hash=req.prev_hash,
                    hash=digest,
                    created_at=utcnow(),
                )
                domain, action = contract.record_step(req.index)
                ack(
                    session,
                    run_id=req.run_id,
                    tenant_id=req.tenant_id,
                    domain=domain,
                    action=action,
                    result_id=derive_id(req.run_id, "trace-step", req.index),
                    status=AckStatus.ACKED if result.ok else AckStatus.FAILED,
                    error=result.error,
                )
            return recorded

        return run_once(self.sessions, key, StepResult, write)
