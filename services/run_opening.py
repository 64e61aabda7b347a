"""The write of runs.open: the run, its contract and its authorization in one transaction.

Every run starts here, so the statements are Core statements built once (no unit of
work), and the run row is inserted in the state the transaction leaves it in (AUTHORIZED,
or CREATED when denied) instead of being inserted, loaded and updated. Nothing but this
transaction ever sees the run between its creation and its authorization. Part of the
runs domain: its rows are written through services.runs (the run) and services.ledger
(the contract, the ack, the audit-ledger entries).
"""

from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session, sessionmaker

from db.models import Run, StopRequest, Tenant
from db.queries.limits import runs_in_flight
from domain import contract
from domain.agent import planned_skills, tool_definitions
from domain.chat_tools import ToolDefinition
from domain.control import Baseline, LiveState, decide, effective_budget, find_violations
from domain.enums import AuthorizationDecision, Phase, PolicyDecision, RunStatus, TenantStatus
from domain.governance import LooseningRefused, TenantGovernance, resolve_config
from domain.ids import run_workflow_id
from domain.messages import AuthorizeResult, OpenRunRequest, OpenRunResult
from domain.models import PlannedStep, RunConfig, RunOptions, skill_problem
from domain.skill_catalog import SkillCatalog
from observability import metrics
from services.errors import Rejected
from services.ledger import (
    Execution,
    ack,
    audit_entry,
    declare_expectations,
    execute_core,
    run_once,
    utcnow,
)
from services.policies import record_policy_check, rule_state
from services.runs import emit_transition_events, insert_run, transition_row

_TENANTS = Tenant.__table__
_TENANT = select(
    _TENANTS.c.id,
    _TENANTS.c.status,
    _TENANTS.c.budget_limit,
    _TENANTS.c.allowed_skills,
    _TENANTS.c.limits_version,
    _TENANTS.c.max_runs_in_flight,
    _TENANTS.c.governance,
).where(_TENANTS.c.id == bindparam("tenant_id"))
_RUNS = Run.__table__
_RUN_HELD = select(_RUNS.c.id).where(_RUNS.c.id == bindparam("run_id"))
_STOPS = StopRequest.__table__
_STOP_FILED = select(_STOPS.c.run_id).where(_STOPS.c.run_id == bindparam("run_id"))


class OptionRefused(Rejected):
    """A run option loosens its tenant's governance setting without the tenant's leave: the
    run is refused before anything is written (domain.governance)."""

    def __init__(self, refusal: LooseningRefused) -> None:
        super().__init__(str(refusal), type="LooseningOptionRefused")


class SkillRefused(Rejected):
    """A step names a skill the worker's catalog does not have, or an input its skill
    refuses: the run is refused before anything is written, like a malformed input (the
    workflow does not check skills: its replay must not depend on a worker's plugins)."""

    def __init__(self, problem: str) -> None:
        super().__init__(f"invalid RunWorkflow input: {problem}", type="InvalidRunInput")


def refuse_unknown_skills(steps: list[PlannedStep], skills: SkillCatalog) -> None:
    for index, step in enumerate(steps):
        problem = skill_problem(skills, step.skill, step.input)
        if problem is not None:
            raise SkillRefused(f"steps.{index}: {problem}")


class RunIdInUse(Rejected):
    """Another workflow execution already opened a run with this id: a run id names one run,
    forever. The message is the same whoever holds the id."""

    def __init__(self, run_id: str) -> None:
        super().__init__(
            f"run id {run_id!r} is already in use; start the run under another id",
            type="RunIdInUse",
        )


def open_run(
    sessions: sessionmaker[Session],
    execution: Execution,
    req: OpenRunRequest,
    defaults: RunConfig,
    max_runs_in_flight: int | None = None,
    *,
    skills: SkillCatalog | None = None,
) -> OpenRunResult:
    """Insert the run, declare its audit expectations at T0 and authorize it, once per
    execution; an allowed run enters AUTHORIZED in the same commit (``req.authorized``).
    ``defaults``: the worker's governance settings (the tenant's own go over them, the
    run's options may only tighten: OptionRefused otherwise, nothing written);
    ``max_runs_in_flight``: a tenant's limit unless it has its own; ``skills``: the
    catalog every step must fit (SkillRefused otherwise, nothing written), whose input
    schemas become the tools the run's agent steps offer (``agent_tools``)."""

    def write(session: Session) -> OpenRunResult:
        tools: list[ToolDefinition] = []
        if skills is not None:
            refuse_unknown_skills(req.steps, skills)
            tools = tool_definitions(skills, [(s.skill, s.input) for s in req.steps])
        config = run_config(session, req, defaults)
        opened = _write_opening(session, req, config, utcnow(), execution.run_id,
                               max_runs_in_flight)  # fmt: skip
        opened = opened.model_copy(update={"agent_tools": tools})
        if opened.first_check_recorded:
            first_checks.append(req.tenant_id)
        return opened

    first_checks: list[str] = []  # set when this call did the write (not a ledger replay)
    opened = run_once(sessions, execution, "runs.open", OpenRunResult, write,
                      tenant_id=req.tenant_id)  # fmt: skip
    for tenant_id in first_checks:
        metrics.record_policy_decision(tenant_id, PolicyDecision.CONTINUE)
    return opened


def _write_opening(
    session: Session,
    req: OpenRunRequest,
    config: RunConfig,
    now: datetime,
    execution_id: str,
    max_runs_in_flight: int | None = None,
) -> OpenRunResult:
    """Authorize from the tenant's live state, then write the run, its transitions, its
    contract (expectations at T0), the authorization ack and the ledger entries.

    ``execution_id`` (the Temporal run id) becomes the run's owner. A run row that already
    exists belongs to another execution (this one's would have been found in the ledger):
    refused before anything is written, so nothing of the earlier run is touched."""
    if run_id_held(session, req.run_id):
        raise RunIdInUse(req.run_id)
    authorization = decide_authorization(session, req, max_runs_in_flight)
    allowed = authorization.decision == AuthorizationDecision.ALLOWED
    _insert_run(session, req, config, authorization, now, execution_id)
    _record_authorization(session, req, authorization)
    if allowed:
        emit_transition_events(session, req.authorized, req.tenant_id)
    checked = req.first_check and _first_check(session, req, config, authorization)
    return OpenRunResult(
        config=config, started_at=now, authorization=authorization, first_check_recorded=checked
    )


def run_config(session: Session, req: OpenRunRequest, defaults: RunConfig) -> RunConfig:
    """The run's settings: the worker's defaults, its tenant's over them, its options where
    they tighten (an unknown tenant has no settings: its run is denied anyway)."""
    tenant = execute_core(session, _TENANT, {"tenant_id": req.tenant_id}).one_or_none()
    governance = TenantGovernance.model_validate((tenant and tenant.governance) or {})
    submitter = req.submitted_by.authority if req.submitted_by else None
    try:
        return resolve_config(defaults, governance, req.options or RunOptions(), submitter)
    except LooseningRefused as exc:
        raise OptionRefused(exc) from None


def run_id_held(session: Session, run_id: str) -> bool:
    """Whether a run row with this id exists (whatever its tenant or state)."""
    return execute_core(session, _RUN_HELD, {"run_id": run_id}).first() is not None


def decide_authorization(
    session: Session, req: OpenRunRequest, max_runs: int | None = None
) -> AuthorizeResult:
    """Tenant known and active, every skill allowed, budget within the tenant's limit, and
    fewer runs in flight than its limit (the tenant's own, else ``max_runs_in_flight``)."""
    denied = AuthorizationDecision.DENIED
    tenant = execute_core(session, _TENANT, {"tenant_id": req.tenant_id}).one_or_none()
    if tenant is None:
        return AuthorizeResult(decision=denied, reason=f"tenant {req.tenant_id!r} is unknown")
    rules = rule_state(session, tenant.id)
    versions = {
        "budget_limit": tenant.budget_limit,
        "limits_version": tenant.limits_version,
        "policy_version": rules.policy_version,
        "enabled_rule_ids": rules.enabled_rule_ids,
    }
    if tenant.status != TenantStatus.ACTIVE:
        return AuthorizeResult(
            decision=denied, reason=f"tenant {tenant.id!r} is {tenant.status}", **versions
        )
    if tenant.allowed_skills is not None:  # an agent's tools are skills it uses
        used = {n for s in req.steps for n in planned_skills(s.skill, s.input)}
        refused = sorted(used - set(tenant.allowed_skills))
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
    limit = tenant.max_runs_in_flight if tenant.max_runs_in_flight is not None else max_runs
    busy = _runs_in_flight_refusal(session, tenant.id, limit)
    if busy is not None:
        return AuthorizeResult(decision=denied, reason=busy, **versions)
    return AuthorizeResult(decision=AuthorizationDecision.ALLOWED, reason="allowed", **versions)


def _runs_in_flight_refusal(session: Session, tenant_id: str, limit: int | None) -> str | None:
    """Why the tenant may not open another run now (at its runs-in-flight limit), if so.
    The HTTP API answers 429 before starting; this is the check every other path meets."""
    if limit is None:
        return None
    in_flight = runs_in_flight(session, tenant_id)
    if in_flight < limit:
        return None
    return f"tenant {tenant_id!r} has {in_flight} runs in flight, its limit is {limit}"


def plain(amount: Decimal) -> str:
    """1.000000 → 1, 0.000300 → 0.0003: amounts as people write them."""
    return format(amount.normalize(), "f")


def _insert_run(
    session: Session,
    req: OpenRunRequest,
    config: RunConfig,
    auth: AuthorizeResult,
    now: datetime,
    execution_id: str,
) -> None:
    """The run as this transaction leaves it, its transition rows and its expectations."""
    entered = req.authorized if auth.decision == AuthorizationDecision.ALLOWED else None
    budget = req.budget if req.budget is not None else auth.budget_limit
    row = dict(
        id=req.run_id,
        tenant_id=req.tenant_id,
        workflow_id=run_workflow_id(req.run_id),
        execution_id=execution_id,
        phase=entered.to_phase if entered else Phase.CREATED,
        status=entered.status if entered else RunStatus.QUEUED,
        steps_total=len(req.steps),
        steps_done=(entered.steps_done or 0) if entered else 0,
        cost=(entered.cost or Decimal(0)) if entered else Decimal(0),
        budget=budget,
        authorization_decision=auth.decision,
        authorization_reason=auth.reason,
        limits_version_at_start=auth.limits_version,
        policy_version_at_start=auth.policy_version,
        config=config.model_dump(mode="json"),
        created_at=now,
        updated_at=now,
    )
    transitions = [transition_row(req.run_id, 0, None, Phase.CREATED, RunStatus.QUEUED, now)]
    if entered:
        transitions.append(
            transition_row(
                req.run_id,
                entered.seq,
                entered.from_phase,
                entered.to_phase,
                entered.status,
                now,
                entered.reason,
            )
        )
    insert_run(session, row, transitions)
    expectations = contract.declare(
        len(req.steps),
        now,
        timedelta(seconds=config.run_timeout_seconds),
        timedelta(seconds=config.finalize_grace_seconds),
    )
    declare_expectations(
        session, req.run_id, req.tenant_id,
        ((exp.domain, exp.action, exp.deadline) for exp in expectations), now,
    )  # fmt: skip
    audit_entry(
        session,
        key=f"{req.run_id}/created",
        tenant_id=req.tenant_id,
        event_type="RUN_CREATED",
        entity_type="run",
        entity_id=req.run_id,
        after_state={"run_id": req.run_id, "phase": Phase.CREATED, "steps": len(req.steps)},
    )


def _record_authorization(session: Session, req: OpenRunRequest, auth: AuthorizeResult) -> None:
    ack(
        session,
        run_id=req.run_id,
        tenant_id=req.tenant_id,
        domain=contract.AUTHORIZE[0],
        action=contract.AUTHORIZE[1],
        result_id=auth.decision,
        details={"reason": auth.reason},
    )
    audit_entry(
        session,
        key=f"{req.run_id}/authorization",
        tenant_id=req.tenant_id,
        event_type="RUN_AUTHORIZATION",
        entity_type="run",
        entity_id=req.run_id,
        after_state={"run_id": req.run_id, **auth.model_dump(mode="json")},
    )


def _first_check(
    session: Session, req: OpenRunRequest, config: RunConfig, auth: AuthorizeResult
) -> bool:
    """Record the policy check before step 0 from what the authorization just read: the
    run's baseline is that reading, so only a stop request or the budget could call for
    more than CONTINUE, and then the workflow checks on its own (False)."""
    if not config.policy_check_enabled or auth.decision != AuthorizationDecision.ALLOWED:
        return False
    enabled = frozenset(auth.enabled_rule_ids)
    stop_filed = execute_core(session, _STOP_FILED, {"run_id": req.run_id}).first() is not None
    state = LiveState(
        cost=Decimal(0),
        budget_limit=effective_budget(req.budget, auth.budget_limit),
        tenant_active=True,  # an allowed run's tenant is active: the authorization read it
        stop_requested=stop_filed,
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
