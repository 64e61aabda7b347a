"""Handlers of outbox events, registered by topic with a decorator (see events.reactor);
and effects, handlers whose work is I/O outside the database (``Handlers.effect``)."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

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


class Effect(Protocol):
    """A handler whose work is I/O outside the database (sending a notification).

    ``perform`` runs outside any transaction while the reactor holds the delivery's lease
    (so a slow receiver holds no lock); it raises when the attempt failed. Then
    ``succeeded`` runs in the transaction that marks the delivery delivered, or ``failed``
    in the one that schedules its retry. An attempt may be repeated (at least once): a
    receiver dedupes on the event id."""

    def perform(self, event: Event, attempt: int) -> Any: ...

    def succeeded(self, ctx: HandlerContext, event: Event, result: Any) -> None: ...

    def failed(self, ctx: HandlerContext, event: Event, error: Exception) -> None: ...


class Handlers:
    """A registry of handlers by topic (``"*"`` receives every topic)."""

    def __init__(self) -> None:
        self._by_name: dict[str, tuple[tuple[str, ...], Handler]] = {}
        self._effects: dict[str, Effect] = {}

    def on(self, *topics: str, name: str | None = None) -> Callable[[Handler], Handler]:
        def register(fn: Handler) -> Handler:
            key = name or f"{fn.__module__}.{fn.__qualname__}"
            if key in self._by_name:
                raise ValueError(f"handler {key!r} is registered twice")
            self._by_name[key] = (topics, fn)
            return fn

        return register

    def effect(self, *topics: str, name: str, effect: Effect) -> None:
        """Register ``effect`` for ``topics`` under ``name`` (see Effect)."""

        def in_transaction(ctx: HandlerContext, event: Event) -> None:
            raise TypeError(f"{name} is an effect: the reactor performs it outside a transaction")

        self.on(*topics, name=name)(in_transaction)
        self._effects[name] = effect

    def effect_of(self, name: str) -> Effect | None:
        return self._effects.get(name)

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
