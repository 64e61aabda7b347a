"""Writes that must happen survive any outage of the database, and grow no history while
they wait (patch ``durable-writes``).

A write first runs as a local activity with a few quick attempts (``WRITE_LOCAL``: no
task-queue round trip — the common case costs what it did). What those attempts could not
do becomes a regular activity that the server retries without limit (``WRITE_DURABLE``):
its retries are no history events, so an outage of a minute or of a day costs the same
three events — where a local activity retried without end costs a workflow-task heartbeat
every ~8 s (~1,350 events an hour) until Temporal's event limit terminates the run.

- ``must``: the writes a run cannot end without (open, phase changes, contract amendments,
  incidents, pause records, finalize, compensations): any retryable failure goes on to
  ``WRITE_DURABLE``.
- ``guarded``: the trace start: its failure is the observability guard's to decide, but an
  outage of the database is waited out (the trace store is that database).
- ``saga``: a governance write (and the policy check): its local attempts as before
  (``DB_WRITE``); one that failed because the database did not answer
  (``DatabaseUnavailable``, activities.database_outages) waits for it in ``WRITE_DURABLE``
  instead of rolling back a run that succeeded; any other failure is the saga's to
  compensate, as before. Its activities wait for a cancellation to be confirmed
  (``WAIT_CANCELLATION_COMPLETED``), so a compensation never runs before the write it
  undoes has finished.

A failure of a type that only a bug raises (``BUG_TYPES``) is not retried locally: it fails
the workflow *task* (``WriteBug``), which Temporal retries without history events, and the
run waits, open, for a fixed worker to be deployed, instead of failing unfinalized (on
replay the local write runs again, on the fixed code). In ``WRITE_DURABLE`` everything is
retried — a bug too, server-side and without events, until a fixed worker takes the next
attempt (``temporal workflow describe`` shows the pending activity, its attempt and last
failure). A business rejection (a non-retryable ApplicationError such as RunIdInUse)
reaches the caller as before. Runs started before the patch keep their local activities
retried without end.
"""

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from domain.outcome import DATABASE_UNAVAILABLE
    from workflows.errors import is_cancellation
    from workflows.options import COMPENSATION, DB_WRITE, MUST_WRITE

# Exception types only a bug raises: retrying them cannot help.
BUG_TYPES = [
    "AttributeError", "AssertionError", "ImportError", "IndexError", "KeyError",
    "ModuleNotFoundError", "NameError", "NotImplementedError", "PhaseInvariantError",
    "TypeError", "UnboundLocalError", "ValidationError", "ValueError",
]  # fmt: skip

WRITE_LOCAL: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=30),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(milliseconds=200),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=2),
        maximum_attempts=4,
        non_retryable_error_types=BUG_TYPES,
    ),
}

WRITE_DURABLE: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=30),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(seconds=1),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=10),
        maximum_attempts=0,  # bugs too: the next attempt after a fix is deployed succeeds
    ),
    "cancellation_type": ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
}

SAGA_LOCAL: dict[str, Any] = {
    **DB_WRITE,
    "retry_policy": RetryPolicy(
        initial_interval=DB_WRITE["retry_policy"].initial_interval,
        backoff_coefficient=DB_WRITE["retry_policy"].backoff_coefficient,
        maximum_interval=DB_WRITE["retry_policy"].maximum_interval,
        maximum_attempts=DB_WRITE["retry_policy"].maximum_attempts,
        non_retryable_error_types=BUG_TYPES,
    ),
    "cancellation_type": ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
}


class WriteBug(Exception):
    """A write failed with a bug's exception: raised from workflow code, it fails the
    workflow task (not the workflow), to be retried once a fixed worker runs it."""


def _cause(exc: BaseException) -> BaseException:
    while isinstance(exc, ActivityError) and exc.cause is not None:
        exc = exc.cause
    return exc


def _type_of(exc: BaseException) -> str:
    cause = _cause(exc)
    return cause.type or "" if isinstance(cause, ApplicationError) else type(cause).__name__


def _rejected(exc: BaseException) -> bool:
    """A business rejection: the activity said not to retry it."""
    cause = _cause(exc)
    return isinstance(cause, ApplicationError) and cause.non_retryable


def _name(method: Callable[..., Any]) -> str:
    return getattr(method, "__name__", str(method))


def _bug(method: Callable[..., Any], exc: BaseException) -> WriteBug:
    return WriteBug(f"write {_name(method)} failed with a bug ({_type_of(exc)}): {_cause(exc)}")


async def must(method: Callable[..., Any], arg: Any, durable: bool) -> Any:
    """A write the run cannot end without (``durable``: the run is on patch durable-writes)."""
    if not durable:
        return await workflow.execute_local_activity_method(method, arg, **MUST_WRITE)
    try:
        return await workflow.execute_local_activity_method(method, arg, **WRITE_LOCAL)
    except (ActivityError, ApplicationError) as exc:  # a local activity may raise the cause
        if is_cancellation(exc):
            raise
        if _type_of(exc) in BUG_TYPES:
            raise _bug(method, exc) from exc
        if _rejected(exc):
            raise
    return await workflow.execute_activity_method(method, arg, **WRITE_DURABLE)


async def compensation(method: Callable[..., Any], arg: Any, durable: bool) -> Any:
    """An undo: it must eventually succeed, as a must-write."""
    if not durable:
        return await workflow.execute_local_activity_method(method, arg, **COMPENSATION)
    return await must(method, arg, durable)


async def saga(method: Callable[..., Any], arg: Any, durable: bool) -> Any:
    """A governance write: failures roll the saga back, except an outage, which it waits out."""
    if not durable:
        return await workflow.execute_local_activity_method(method, arg, **DB_WRITE)
    return await outlasting_outages(method, arg, SAGA_LOCAL)


async def guarded(method: Callable[..., Any], arg: Any, options: dict[str, Any],
                  durable: bool) -> Any:  # fmt: skip
    """A write whose failure the caller decides on (the trace start: the observability
    guard) — but not an outage of the database, which it waits out: the trace store is that
    database, and a run can do nothing else while it is down."""
    if not durable:
        return await workflow.execute_local_activity_method(method, arg, **options)
    return await outlasting_outages(method, arg, options)


async def outlasting_outages(method: Callable[..., Any], arg: Any, first: dict[str, Any]) -> Any:
    """``first`` (local attempts); if they failed because the database did not answer,
    ``WRITE_DURABLE``. Any other failure is raised."""
    try:
        return await workflow.execute_local_activity_method(method, arg, **first)
    except (ActivityError, ApplicationError) as exc:  # a local activity may raise the cause
        if is_cancellation(exc) or _type_of(exc) != DATABASE_UNAVAILABLE:
            raise
        workflow.logger.warning("database unavailable for %s; waiting for it", _name(method))
    return await workflow.execute_activity_method(method, arg, **WRITE_DURABLE)
