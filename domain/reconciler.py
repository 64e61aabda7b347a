"""The pure reconciler over a run's expectations and acks (DESIGN.md, "Reconciliation").

missing = expected − acked (HIGH), drift = acked − expected (MEDIUM), stale =
finalize_run expected but not acked by its deadline (HIGH), invalid = an expectation
without deadline (HIGH). A rollback ack is not an ack of the action: it records that an
acked action was undone, and is reported as rolled back.
"""

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from domain.contract import FINALIZE_RUN

Action = tuple[str, str]


class ReconciliationStatus(StrEnum):
    COMPLETE = "COMPLETE"
    INCOMPLETE = "INCOMPLETE"
    STALE = "STALE"


@dataclass(frozen=True)
class ExpectationRow:
    domain: str
    action: str
    deadline: datetime | None
    withdrawn: bool = False


@dataclass(frozen=True)
class AckRow:
    domain: str
    action: str
    rolled_back: bool = False


@dataclass(frozen=True)
class Reconciliation:
    status: ReconciliationStatus
    missing: list[Action] = field(default_factory=list)
    drift: list[Action] = field(default_factory=list)
    invalid: list[Action] = field(default_factory=list)
    rolled_back: list[Action] = field(default_factory=list)
    stale: bool = False
    finalize_overdue: bool = False

    @property
    def clean(self) -> bool:
        return self.status == ReconciliationStatus.COMPLETE


def reconcile(
    expectations: list[ExpectationRow], acks: list[AckRow], now: datetime
) -> Reconciliation:
    """Four-way check of one run. ``now`` decides whether finalize_run is overdue."""
    expected = {(e.domain, e.action) for e in expectations if not e.withdrawn}
    counts = Counter((a.domain, a.action) for a in acks if not a.rolled_back)
    acked = set(counts)
    rolled_back = sorted({(a.domain, a.action) for a in acks if a.rolled_back})
    missing = sorted(expected - acked)
    # An action acked twice is drift as much as one nobody declared.
    drift = sorted((acked - expected) | {k for k, n in counts.items() if n > 1})
    invalid = sorted(
        (e.domain, e.action) for e in expectations if e.deadline is None and not e.withdrawn
    )
    finalize = [e for e in expectations if (e.domain, e.action) == FINALIZE_RUN]
    stale = bool(finalize) and FINALIZE_RUN not in acked
    overdue = stale and any(e.deadline is not None and e.deadline <= now for e in finalize)
    if stale:
        status = ReconciliationStatus.STALE
    elif missing or drift or invalid:
        status = ReconciliationStatus.INCOMPLETE
    else:
        status = ReconciliationStatus.COMPLETE
    return Reconciliation(status, missing, drift, invalid, rolled_back, stale, overdue)


def reconcile_before_finalize(
    expectations: list[ExpectationRow], acks: list[AckRow], now: datetime
) -> Reconciliation:
    """A run's own check before it finalizes: finalize_run is the one ack it cannot have yet."""
    return reconcile(expectations, [*acks, AckRow(*FINALIZE_RUN)], now)
