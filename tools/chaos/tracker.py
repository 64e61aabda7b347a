"""Watches runs finish, from the database, through the faults (a failed read is retried).

A run has finished when its finalize transaction committed (``runs.finalized_at``).
"""

import asyncio
import time
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from db.models import Run


class CompletionTracker:
    """Reads which of the tenant's runs finished, and when."""

    def __init__(
        self, sessions: sessionmaker[Session], tenant_id: str, interval: float = 0.1
    ) -> None:
        self.sessions = sessions
        self.tenant_id = tenant_id
        self.interval = interval

    async def _read(self, query):  # noqa: ANN001, ANN202 - retried while the database restarts
        while True:
            try:
                return await asyncio.to_thread(query)
            except SQLAlchemyError:
                await asyncio.sleep(self.interval)

    async def finished(self, run_ids: list[str] | None = None) -> dict[str, datetime]:
        """{run id: finalized_at} of the finished runs among ``run_ids`` (None: all)."""

        def query() -> dict[str, datetime]:
            stmt = select(Run.id, Run.finalized_at).where(
                Run.tenant_id == self.tenant_id, Run.finalized_at.is_not(None)
            )
            if run_ids is not None:
                stmt = stmt.where(Run.id.in_(run_ids))
            with self.sessions() as session:
                return {run_id: at for run_id, at in session.execute(stmt)}

        return await self._read(query)

    async def first_finalized_after(self, since: datetime, timeout: float) -> datetime | None:
        """When the first run finalized after ``since`` (UTC); None if none within ``timeout``."""

        def query() -> datetime | None:
            stmt = select(func.min(Run.finalized_at)).where(
                Run.tenant_id == self.tenant_id, Run.finalized_at > since
            )
            with self.sessions() as session:
                return session.scalar(stmt)

        deadline = time.monotonic() + timeout
        while True:
            found = await self._read(query)
            if found is not None or time.monotonic() >= deadline:
                return found
            await asyncio.sleep(self.interval)

    async def all_finished(self, run_ids: list[str], timeout: float) -> datetime | None:
        """When the last of ``run_ids`` finalized; None if they did not all within ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = await self.finished(run_ids)
            if len(done) == len(run_ids):
                return max(done.values())
            await asyncio.sleep(self.interval * 5)
        return None
