"""What an activity hands the services from its Temporal context: the execution its write
belongs to, and business rejections as non-retryable ApplicationErrors."""

import contextlib
from collections.abc import Iterator

from temporalio import activity
from temporalio.exceptions import ApplicationError

from services.errors import Rejected
from services.ledger import Execution


def current_execution() -> Execution:
    """(workflow id, Temporal run id) of the calling activity's workflow execution."""
    info = activity.info()
    return Execution(info.workflow_id or "no-workflow", info.workflow_run_id or "")


@contextlib.contextmanager
def rejections_not_retried() -> Iterator[None]:
    """A service's Rejected becomes ApplicationError(type=..., non_retryable=True)."""
    try:
        yield
    except Rejected as exc:
        raise ApplicationError(str(exc), type=exc.type, non_retryable=True) from None
