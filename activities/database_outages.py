"""Database outages told apart from every other failure of an activity.

An activity whose database does not answer — a connection refused or lost, a pool that
times out, an SQLite file locked past its busy timeout — fails with an ApplicationError of
type ``DatabaseUnavailable`` (retryable) and a one-line message, instead of the driver's
exception with its SQL and parameters. Workflows wait such a failure out
(workflows.durable_writes) where they would roll back or fail on any other. A worker
interceptor, so that every activity of the worker is covered, whatever it reads or writes.
"""

from typing import Any

from sqlalchemy import exc as sa
from temporalio.exceptions import ApplicationError
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

from domain.outcome import DATABASE_UNAVAILABLE

_OUTAGES = (sa.OperationalError, sa.InterfaceError, sa.TimeoutError, sa.DisconnectionError)


def is_outage(error: BaseException) -> bool:
    """The database did not answer (not: it answered with an error)."""
    if isinstance(error, sa.DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, _OUTAGES)


def outage_message(error: BaseException) -> str:
    """The driver's first line, without the statement and its parameters."""
    original = getattr(error, "orig", None) or error
    first = (str(original).strip().splitlines() or [""])[0]
    return f"database unavailable: {type(original).__name__}: {first}"[:500]


class DatabaseOutages(Interceptor):
    """Worker interceptor: an outage of the database fails the activity as
    ``DatabaseUnavailable``."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _Inbound(next)


class _Inbound(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        try:
            return await self.next.execute_activity(input)
        except Exception as error:
            if not is_outage(error):
                raise
            raise ApplicationError(outage_message(error), type=DATABASE_UNAVAILABLE) from None
