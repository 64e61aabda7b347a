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
        self._undo: list[tuple[str, Callable[[], Awaitable[Any]]]] = []

    def register(self, name: str, undo: Callable[[], Awaitable[Any]]) -> None:
        self._undo.append((name, undo))

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self._undo]

    async def compensate(self) -> bool:
        """Run every compensation in reverse; True if a cancellation was held back."""
        held = False
        for name, undo in reversed(self._undo):
            workflow.logger.info("compensating %s", name)
            _, cancelled = await shielded(undo)
            held = held or cancelled
        self._undo.clear()
        return held
