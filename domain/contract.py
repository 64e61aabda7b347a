"""The runtime audit contract: which (domain, action) pairs a run declares at T0."""

from dataclasses import dataclass
from datetime import datetime, timedelta

AUTHORIZE = ("runs", "authorize")
START_TRACE = ("traces", "start_trace")
EVALUATE_POLICY = ("policies", "evaluate_policy")
CREATE_INCIDENT = ("incidents", "create_incident")
COMPLETE_TRACE = ("traces", "complete_trace")
FINALIZE_RUN = ("orchestrator", "finalize_run")


def record_step(index: int) -> tuple[str, str]:
    return ("traces", f"record_step:{index}")


@dataclass(frozen=True)
class Expectation:
    domain: str
    action: str
    deadline: datetime | None


def planned_actions(step_count: int) -> list[tuple[str, str]]:
    """Actions of a run that goes the happy path; incidents are declared when needed."""
    steps = [record_step(i) for i in range(step_count)]
    return [AUTHORIZE, START_TRACE, *steps, EVALUATE_POLICY, COMPLETE_TRACE]


def declare(
    step_count: int, started_at: datetime, run_timeout: timedelta, grace: timedelta
) -> list[Expectation]:
    """Every planned action is due within the run timeout; finalize_run within timeout+grace."""
    due = started_at + run_timeout
    expectations = [Expectation(d, a, due) for d, a in planned_actions(step_count)]
    expectations.append(Expectation(*FINALIZE_RUN, started_at + run_timeout + grace))
    return expectations
