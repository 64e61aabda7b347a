"""Activity options, defined once and reused by every workflow."""

from datetime import timedelta
from typing import Any

from temporalio.common import RetryPolicy

from domain.skill_catalog import STEP_HEARTBEAT_SECONDS, STEP_MAX_ATTEMPTS

# Short database writes of the governance path run as local activities: same
# semantics (idempotent, retried), no task-queue round trip per write.
DB_WRITE: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=30),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(milliseconds=200),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=10),
        maximum_attempts=5,
    ),
}

# Compensations must eventually succeed: retried without limit.
COMPENSATION: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=30),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(milliseconds=200),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=30),
        maximum_attempts=0,
    ),
}

# Finalization and bookkeeping writes that the run cannot end without.
MUST_WRITE: dict[str, Any] = COMPENSATION

# Trace start: a few tries, then the observability guard decides.
TRACE_START: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=15),
    "retry_policy": RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_attempts=3),
}

# Skills may call slow endpoints; the activity records a final failure itself on
# its last attempt (activities.steps.MAX_ATTEMPTS), so the run sees a result.
STEP: dict[str, Any] = {
    "start_to_close_timeout": timedelta(minutes=5),
    "heartbeat_timeout": timedelta(seconds=STEP_HEARTBEAT_SECONDS),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(seconds=1),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=20),
        maximum_attempts=STEP_MAX_ATTEMPTS,
    ),
}

# A step of a run on patch durable-writes: the server retries it without limit, so that an
# outage of the database (its admission and its record are writes) never fails the run;
# the skill's own failures stay bounded by the activity (activities.steps: a retryable
# skill failure is raised only before its STEP_MAX_ATTEMPTS-th attempt, then recorded).
STEP_DURABLE: dict[str, Any] = {
    **STEP,
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(seconds=1),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=10),
        maximum_attempts=0,
    ),
}
