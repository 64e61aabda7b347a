"""How a run's execution outcome and its policy evaluation decide status and incident."""

from dataclasses import dataclass, field, replace

from domain.enums import EvaluationOutcome, IncidentCategory, RunStatus, Severity


@dataclass(frozen=True)
class IncidentSpec:
    category: IncidentCategory
    severity: Severity
    title: str


@dataclass(frozen=True)
class Outcome:
    """Where execution left the run; governance may still turn a success into a failure."""

    status: RunStatus
    reason: str | None = None
    incident: IncidentSpec | None = None
    violations: list[str] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        return self.status == RunStatus.SUCCEEDED


def after_evaluation(
    outcome: Outcome, evaluation: EvaluationOutcome, budget_breached: bool
) -> Outcome:
    """A BLOCKED or PREVENTED evaluation fails a successful run and calls for an incident."""
    if evaluation not in (EvaluationOutcome.BLOCKED, EvaluationOutcome.PREVENTED):
        return outcome
    if budget_breached:
        spec = IncidentSpec(IncidentCategory.BUDGET_BREACH, Severity.HIGH, "Budget exceeded")
    else:
        spec = IncidentSpec(IncidentCategory.POLICY_VIOLATION, Severity.HIGH, "Policy violation")
    if not outcome.succeeded:
        return outcome if outcome.incident else replace(outcome, incident=spec)
    return replace(
        outcome,
        status=RunStatus.FAILED_POLICY,
        reason=f"policy evaluation {evaluation}",
        incident=spec,
    )


RUN_FAILURE_TYPES: dict[str, str] = {
    RunStatus.FAILED: "RunFailed",
    RunStatus.FAILED_POLICY: "RunFailedPolicy",
    RunStatus.CANCELLED: "RunCancelled",
}
"""The ApplicationError type a FAILED run's workflow ends with, by run status (its details
hold the RunResult: clients.runs.run_result reads it back)."""

DATABASE_UNAVAILABLE = "DatabaseUnavailable"
"""The ApplicationError type of an activity whose database did not answer
(activities.database_outages): a workflow waits for the database instead of treating the
write as failed (workflows.durable_writes)."""
