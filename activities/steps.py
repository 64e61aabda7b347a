"""Step execution: run the skill, then record its trace step and ack in one transaction
(the write: services.steps).

The step is admitted in one transaction (services.steps.admit): the ledger is consulted
first, so a step whose result was recorded is never executed again, even if its activity
completion was lost; then the tenant's rules and budget are judged for it,
with what it may cost at most reserved (its skill's cost model:
activities.skills.registry.SkillRegistry.reserve) — a step they
stop is recorded as prevented and never runs — and it takes one of its tenant's
steps-in-flight slots (services.step_slots), or returns at once, having done nothing, when
there is none free; the slot goes back with the recorded result.

Around the skill, the step activity applies the tenant's security settings: the egress
policy of the skills that call out (activities.skills.egress; a refusal is also an
EGRESS_REFUSED audit-ledger entry in the step's transaction), and its secrets — the input
keeps its ``${secret:NAME}`` placeholders everywhere but in the skill's own call, what the
skill returns is redacted before it is stored or returned, and the trace step's hash
covers the digest of the values sent (domain.secret_refs, domain.hashchain).

An agent's tool call that the workflow refused (``StepRequest.refusal``: a tool the agent
may not call, arguments that are not a JSON object) is recorded as a failed step of skill
``agent`` at once — neither judged nor run.

The skill runs in a thread of its own (a daemon: one that hangs never holds up the
worker's exit) while the activity heartbeats, so a worker that dies mid-step is noticed
within the heartbeat timeout and a long healthy skill is not; past the skill's own time
limit (its ``timeout_seconds``) it counts as hung: the activity stops waiting and the step
fails, recorded, with the usual governance (an async skill is cancelled; Python cannot
stop a thread, so a hung sync skill's thread is left to end by itself, and logged).
"""

import contextvars
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory, CancelledError

from activities.database_outages import is_outage, outage_message
from activities.execution import current_execution
from activities.secret_store import SecretBox, load_secrets
from activities.skills.base import SkillContext, SkillOutput
from activities.skills.egress import Egress, EgressRefused, quiet_http_client_logs
from activities.skills.errors import SkillError
from activities.skills.registry import SkillRegistry
from domain.egress import EgressRule, EgressRuleError, parse_rules
from domain.messages import StepRequest, StepResult
from domain.secret_refs import redact, referenced_names, secrets_digest, substitute
from domain.skill_catalog import STEP_HEARTBEAT_SECONDS
from domain.skill_catalog import STEP_MAX_ATTEMPTS as MAX_ATTEMPTS
from observability import genai
from services import step_slots
from services.ledger import utcnow
from services.steps import Executed, admit, record_step
from services.tenants import egress_allow_of

HEARTBEAT_EVERY_SECONDS = STEP_HEARTBEAT_SECONDS / 4
# The slot lease (services.step_slots.LEASE_SECONDS) is renewed every 4th heartbeat.
SLOT_EXTEND_EVERY_BEATS = 4
# An async skill is cancelled at its time limit; this long more, it has not let go.
HUNG_GRACE_SECONDS = 1.0
WAITING_FOR_SLOT = StepResult(ok=False, output={}, cost=Decimal(0), waiting_for_slot=True)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepSecrets:
    """The secret values a step's input references, by name, and their digest."""

    values: dict[str, str] = field(default_factory=dict)
    digest: str | None = None

    def substitute(self, value: Any) -> Any:
        return substitute(value, self.values)

    def redact(self, value: Any) -> Any:
        return redact(value, self.values)


NO_SECRETS = StepSecrets()


def _failed(error: str) -> StepResult:
    return StepResult(ok=False, output={}, cost=Decimal(0), error=error)


def _in_own_thread(name: str, run: Callable[[], SkillOutput]) -> "Future[SkillOutput]":
    """``run()`` in a new daemon thread, in the activity's context (its span the parent of
    the skill's); its result or exception in the future."""
    future: Future[SkillOutput] = Future()
    context = contextvars.copy_context()

    def target() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(context.run(run))
        except BaseException as exc:  # handed to the step, which decides
            future.set_exception(exc)

    threading.Thread(target=target, name=f"skill-{name}", daemon=True).start()
    return future


def _hung(skill: str, limit: float) -> SkillError:
    log.error("skill %s hung: no result after %g s; its thread is left to end by itself",
              skill, limit)  # fmt: skip
    message = f"skill {skill!r} did not return within {limit:g} s (hung)"
    return SkillError(message, retryable=False)


class StepActivities:
    """Executes skills; holds the worker's skills (SkillRegistry), the shared SkillContext
    (LLM endpoint, base cost), the worker's egress settings and the secrets key."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        skills: SkillContext,
        *,
        egress: Egress,
        secret_box: SecretBox,
        max_steps_in_flight: int | None = None,
        registry: SkillRegistry | None = None,
    ) -> None:
        self.sessions = sessions
        self.max_steps_in_flight = max_steps_in_flight  # per tenant, unless its own is set
        self.skills = skills
        self.registry = registry if registry is not None else SkillRegistry()
        self.egress = egress
        self.secret_box = secret_box
        quiet_http_client_logs()

    def _run_heartbeating(
        self, skill: str, data: dict[str, Any], ctx: SkillContext, slot_id: str,
        reserved: Decimal,
    ) -> SkillOutput:  # fmt: skip
        """Run the skill in its own thread and heartbeat meanwhile, so that a worker that
        dies mid-step is noticed within the heartbeat timeout, not the step timeout; the
        step's slot lease is kept alive on the way. Past the skill's time limit, a final
        SkillError (hung)."""
        future = _in_own_thread(skill, lambda: self.registry.run(skill, data, ctx, reserved))
        limit = self.registry.time_limit(skill)
        started = time.monotonic()
        deadline = None if limit is None else started + limit + HUNG_GRACE_SECONDS
        beats = 0
        while True:
            wait = HEARTBEAT_EVERY_SECONDS
            if deadline is not None:
                wait = min(wait, max(deadline - time.monotonic(), 0))
            try:
                return future.result(timeout=wait)
            except FutureTimeout:
                if deadline is not None and time.monotonic() >= deadline:
                    raise _hung(skill, limit or 0) from None
                activity.heartbeat(f"{skill}: running {time.monotonic() - started:.0f} s")
                beats += 1
                if beats % SLOT_EXTEND_EVERY_BEATS == 0:
                    self._extend_slot(slot_id)

    def _extend_slot(self, slot_id: str) -> None:
        """Keep the slot's lease alive; a database that does not answer just now does not
        stop a skill that is running (the lease is renewed at the next try)."""
        try:
            step_slots.extend(self.sessions, slot_id, utcnow())
        except Exception as exc:
            if not is_outage(exc):
                raise
            log.warning("renewing the slot lease of %s failed: %s", slot_id, outage_message(exc))

    @activity.defn(name="steps.execute")
    def execute(self, req: StepRequest) -> StepResult:
        execution = current_execution()
        slot = step_slots.SlotRequest(
            tenant_id=req.tenant_id,
            slot_id=f"{execution.workflow_id}/{execution.run_id}/{req.index}",
            default_limit=self.max_steps_in_flight,
        )
        if req.refusal is not None:  # an agent's tool call refused: recorded, never run
            refused = Executed(_failed(req.refusal))
            return record_step(self.sessions, execution, req, refused, slot.slot_id)
        try:
            reserved, unreservable = self.registry.reserve(req.skill, req.input, self.skills), None
        except SkillError as exc:  # judged at the base cost; the step fails without running
            reserved, unreservable = self.skills.base_cost, exc
        admission = admit(self.sessions, execution, req, slot, reserved, utcnow())
        if admission.recorded is not None:  # recorded by an earlier attempt: never again
            return admission.recorded
        prevented = admission.prevented
        if prevented is not None:  # recorded as prevented; the skill never runs
            executed = Executed(prevented, verdict=admission.verdict)
            return record_step(self.sessions, execution, req, executed, slot.slot_id)
        awaiting = admission.awaiting_approval
        if awaiting is not None:  # nothing ran or was recorded: the run pauses for it
            return awaiting
        if not admission.slot_taken:
            return WAITING_FOR_SLOT  # returned at once: the worker slot goes to others
        if unreservable is not None:
            executed = Executed(_failed(str(unreservable)), verdict=admission.verdict)
        elif req.tool_call_id is None:
            executed = replace(self._execute(req, slot.slot_id, reserved),
                               verdict=admission.verdict)  # fmt: skip
        else:  # an agent's tool call: its execute_tool span (GenAI conventions)
            with genai.tool_call(req.skill, req.tool_call_id) as span:
                executed = replace(self._execute(req, slot.slot_id, reserved),
                                   verdict=admission.verdict)  # fmt: skip
                if not executed.result.ok:
                    genai.tool_failed(span, "tool_error")
        return record_step(self.sessions, execution, req, executed, slot.slot_id)

    def _execute(self, req: StepRequest, slot_id: str, reserved: Decimal) -> Executed:
        """Run the skill with the step's secrets and egress policy; a retryable failure
        before the last attempt is raised (redacted), every other outcome returned."""
        try:
            secrets = self._secrets_of(req)
        except SkillError as exc:
            return Executed(_failed(str(exc)))
        try:
            ctx = self._context_for(req)
            data = secrets.substitute(req.input)
            out = self._run_heartbeating(req.skill, data, ctx, slot_id, reserved)
        except SkillError as exc:
            return self._failure(exc, secrets)
        except CancelledError:
            raise
        except Exception as exc:  # a bug: retried by Temporal, its message redacted
            if not secrets.values:
                raise
            raise RuntimeError(secrets.redact(f"{type(exc).__name__}: {exc}")) from None
        result = StepResult(ok=True, output=secrets.redact(out.output), cost=out.cost)
        return Executed(result, secrets.digest)

    @staticmethod
    def _failure(exc: SkillError, secrets: StepSecrets) -> Executed:
        message = secrets.redact(str(exc))
        if exc.retryable and activity.info().attempt < MAX_ATTEMPTS:
            # An expected failure (an endpoint down, a timeout): one line, not the chained
            # traceback Temporal logs for an activity failure (BENIGN: logged at DEBUG).
            info = activity.info()
            log.warning("step %s attempt %d failed, retrying: %s",
                        info.activity_id, info.attempt, message)  # fmt: skip
            raise ApplicationError(
                message, type="SkillError", category=ApplicationErrorCategory.BENIGN
            ) from None
        refusal = None
        if isinstance(exc, EgressRefused):
            target = exc.target.to_dict() if exc.target is not None else None
            refusal = secrets.redact({"reason": exc.reason, "target": target})
        return Executed(_failed(message), secrets.digest, refusal)

    def _secrets_of(self, req: StepRequest) -> StepSecrets:
        names = referenced_names(req.input)
        if not names:
            return NO_SECRETS
        values = load_secrets(self.sessions, self.secret_box, req.tenant_id, names)
        return StepSecrets(values, secrets_digest(req.run_id, req.index, values))

    def _context_for(self, req: StepRequest) -> SkillContext:
        """The shared context, with the tenant's egress policy for a skill that calls out."""
        if not self.registry.calls_out(req.skill):
            return self.skills
        outbound = self.egress.for_tenant(req.tenant_id, self._tenant_rules(req.tenant_id))
        return replace(self.skills, outbound=outbound)

    def _tenant_rules(self, tenant_id: str) -> tuple[EgressRule, ...]:
        raw = egress_allow_of(self.sessions, tenant_id)
        try:
            return parse_rules(raw, f"allow-list of tenant {tenant_id}")
        except EgressRuleError as exc:
            raise EgressRefused(str(exc)) from None
