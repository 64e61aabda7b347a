"""Handlers of outbox events, registered by topic with a decorator (see events.reactor)."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

ANY_TOPIC = "*"


@dataclass(frozen=True)
class Event:
    id: str
    topic: str
    tenant_id: str
    run_id: str | None
    payload: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class HandlerContext:
    """What a handler gets: the transaction its delivery commits with, and the time."""

    session: Session
    now: datetime
    attempt: int


Handler = Callable[[HandlerContext, Event], None]


class Handlers:
    """A registry of handlers by topic (``"*"`` receives every topic)."""

    def __init__(self) -> None:
        self._by_name: dict[str, tuple[tuple[str, ...], Handler]] = {}

    def on(self, *topics: str, name: str | None = None) -> Callable[[Handler], Handler]:
        def register(fn: Handler) -> Handler:
            key = name or f"{fn.__module__}.{fn.__qualname__}"
            if key in self._by_name:
                raise ValueError(f"handler {key!r} is registered twice")
            self._by_name[key] = (topics, fn)
            return fn

        return register

    def names_for(self, topic: str) -> list[str]:
        return [n for n, (ts, _) in self._by_name.items() if topic in ts or ANY_TOPIC in ts]

    def get(self, name: str) -> Handler:
        return self._by_name[name][1]

    @property
    def names(self) -> list[str]:
        return list(self._by_name)

    @property
    def topics(self) -> set[str] | None:
        """The topics to read, or None for every topic."""
        topics = {t for ts, _ in self._by_name.values() for t in ts}
        return None if ANY_TOPIC in topics else topics
