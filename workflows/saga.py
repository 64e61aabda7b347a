"""Compensations registered before their step and run in reverse, shielded from cancellation."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from temporalio import workflow


async def shielded(make: Callable[[], Awaitable[Any]]) -> tuple[Any, bool]:
    """Await ``make()`` to the end even if the workflow is cancelled meanwhile.

    Returns (result, cancelled): ``cancelled`` tells the caller a cancellation arrived
    and was held back, so that it can re-raise once its cleanup is done.
    """
    task = asyncio.ensure_future(make())
    cancelled = False
    while True:
        try:
            return await asyncio.shield(task), cancelled
        except asyncio.CancelledError:
            if task.done() and task.cancelled():
                raise
            cancelled = True


class Saga:
    """An undo stack of idempotent compensations ("undo if present")."""

    def __init__(self) -> None:
        self._undo: list[tuple[str, Callable[[str], Awaitable[Any]]]] = []

    def register(self, name: str, undo: Callable[[str], Awaitable[Any]]) -> None:
        """``undo(reason)`` must be idempotent: it may find nothing to undo."""
        self._undo.append((name, undo))

    async def compensate(self, reason: str) -> bool:
        """Run every compensation in reverse; True if a cancellation was held back."""
        held = False
        for name, undo in reversed(self._undo):
            workflow.logger.info("compensating %s: %s", name, reason)
            _, cancelled = await shielded(lambda undo=undo: undo(reason))
            held = held or cancelled
        self._undo.clear()
        return held
