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
