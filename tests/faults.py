"""Fault injection: replace an activity by another registered under the same name.

The wrapper calls the real activity, and fails before its write, after its write
(completion lost), or on its first attempt only; or, after a successful write, leaves
the run's audit contract with an expectation no domain will meet (so that the run's own
reconciliation, the last governance check, finds it INCOMPLETE).
"""

import functools
import time

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError, CancelledError

from db.engine import make_engine
from db.models import AuditExpectation
from domain.ids import derive_id
from runtime.worker_factory import build_activities
from services.ledger import utcnow

BEFORE = "fails before its write"
AFTER_ONCE = "completion lost once"
AFTER = "fails after its write"
FIRST_ATTEMPT = "fails on its first attempt"
SLOW_AFTER = "slow after its write"
LEAVES_UNMET = "leaves an expectation nobody meets"
UNMET = ("test", "never_met")


def name_of(fn) -> str:
    return activity._Definition.must_from_callable(fn).name


def inject(real, mode: str):
    @functools.wraps(real)
    def wrapper(*args):
        attempt = activity.info().attempt
        if mode == BEFORE:
            raise ApplicationError(f"injected: {name_of(real)} {mode}", non_retryable=True)
        if mode == FIRST_ATTEMPT and attempt == 1:
            raise RuntimeError(f"injected: {name_of(real)} {mode}")
        result = real(*args)
        if mode == AFTER_ONCE and attempt == 1:
            raise RuntimeError(f"injected: {name_of(real)} {mode}")
        if mode == AFTER:
            raise ApplicationError(f"injected: {name_of(real)} {mode}", non_retryable=True)
        if mode == LEAVES_UNMET:
            declare_unmet(real.__self__.sessions, args[0])
        if mode == SLOW_AFTER:  # a long write that notices cancellation
            for _ in range(100):
                if activity.is_cancelled():
                    raise CancelledError("injected: cancelled while slow")
                time.sleep(0.05)
        return result

    wrapper.__dict__.pop("__temporal_activity_definition", None)
    return activity.defn(name=name_of(real))(wrapper)


def database_down(real, seconds: float, bug: str | None = None):
    """``real``, whose database refuses connections for ``seconds`` from its first call:
    each attempt meanwhile raises the OperationalError of a real connection refused (a closed
    port). ``bug``: the exception type to raise instead, on every attempt (a bug)."""
    refusing = make_engine("postgresql+psycopg://postgres@127.0.0.1:1/test?connect_timeout=2")
    first: list[float] = []

    @functools.wraps(real)
    def wrapper(*args):
        if bug is not None:
            raise {"ValueError": ValueError, "TypeError": TypeError}[bug](
                f"injected bug in {name_of(real)}"
            )
        first[:] = first or [time.monotonic()]
        if time.monotonic() - first[0] < seconds:
            with refusing.connect():  # raises: nothing listens there
                pass
        return real(*args)

    wrapper.__dict__.pop("__temporal_activity_definition", None)
    return activity.defn(name=name_of(real))(wrapper)


def activities_with_outages(settings, sessions, outages: dict[str, float],
                            bugs: dict[str, str] | None = None) -> list:  # fmt: skip
    """All real activities; those in ``outages`` see the database down for that many seconds
    from their first call, those in ``bugs`` raise that bug's exception."""
    with httpx.Client() as http:
        real = build_activities(settings, sessions, http)
    bugs = bugs or {}
    return [database_down(fn, outages.get(name_of(fn), 0), bugs.get(name_of(fn)))
            if name_of(fn) in outages or name_of(fn) in bugs else fn for fn in real]  # fmt: skip


def declare_unmet(sessions, req) -> None:
    run_id, tenant_id = req.facts.run_id, req.facts.tenant_id  # an EvaluateRequest
    with sessions.begin() as session:
        session.add(
            AuditExpectation(
                id=derive_id(run_id, "expectation", *UNMET),
                run_id=run_id,
                tenant_id=tenant_id,
                domain=UNMET[0],
                action=UNMET[1],
                deadline=utcnow(),
                created_at=utcnow(),
            )
        )


def activities_with_faults(settings, sessions, faults: dict[str, str]) -> list:
    """All real activities, those named in ``faults`` wrapped with their fault."""
    with httpx.Client() as http:
        real = build_activities(settings, sessions, http)
    return [inject(fn, faults[name_of(fn)]) if name_of(fn) in faults else fn for fn in real]
