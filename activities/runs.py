"""Runs facade: open (authorize) a run, mark it degraded, change its phase, finalize it
(the writes: services.run_opening, services.runs)."""

from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity

from activities.execution import current_execution, rejections_not_retried
from domain.messages import (
    DegradedRequest,
    FinalizeRequest,
    FinalizeResult,
    OpenRunRequest,
    OpenRunResult,
    TransitionRequest,
)
from domain.models import RunConfig
from domain.skill_catalog import SkillCatalog
from domain.skill_discovery import installed_catalog
from services import run_opening, runs


class RunActivities:
    """Writes of the runs domain. ``defaults``: the worker's governance settings;
    ``skills``: the worker's skill catalog (default: the installed one)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        defaults: RunConfig,
        max_runs_in_flight: int | None = None,
        skills: SkillCatalog | None = None,
    ) -> None:
        self.sessions = sessions
        self.max_runs_in_flight = max_runs_in_flight  # per tenant, unless its own is set
        self.defaults = defaults
        self.skills = skills if skills is not None else installed_catalog()

    @activity.defn(name="runs.open")
    def open(self, req: OpenRunRequest) -> OpenRunResult:
        """Insert the run, declare its audit expectations at T0 and authorize it; an allowed
        run enters AUTHORIZED in the same commit (``req.authorized``). A run id another
        execution holds (RunIdInUse), an option that loosens the tenant's settings
        without its leave (LooseningOptionRefused) or a step this worker's skill catalog
        refuses (InvalidRunInput) is refused, non-retryable, and nothing is written."""
        with rejections_not_retried():
            return run_opening.open_run(self.sessions, current_execution(), req,
                                        self.defaults, self.max_runs_in_flight,
                                        skills=self.skills)  # fmt: skip

    @activity.defn(name="runs.mark_degraded")
    def mark_degraded(self, req: DegradedRequest) -> None:
        """Observability guard, DEGRADED mode: the run goes on without a trace."""
        runs.mark_degraded(self.sessions, current_execution(), req)

    @activity.defn(name="runs.transition")
    def transition(self, req: TransitionRequest) -> None:
        """Persist one phase change (run row + transition row), once per sequence number."""
        runs.transition(self.sessions, current_execution(), req)

    @activity.defn(name="runs.finalize")
    def finalize(self, req: FinalizeRequest) -> FinalizeResult:
        """Terminal transition, finalize_run ack and the run's outbox events, in one commit."""
        return runs.finalize(self.sessions, current_execution(), req)
