"""The incident lifecycle table (domain.incidents): which change each status allows."""

import pytest

from domain.enums import IncidentStatus as S
from domain.incidents import refusal


@pytest.mark.parametrize(
    ("current", "target", "why"),
    [
        (S.OPEN, S.ACKNOWLEDGED, None),
        (S.OPEN, S.RESOLVED, None),
        (S.ACKNOWLEDGED, S.RESOLVED, None),
        (S.ACKNOWLEDGED, S.ACKNOWLEDGED, "incident 'i' is already ACKNOWLEDGED"),
        (S.RESOLVED, S.RESOLVED, "incident 'i' is already RESOLVED"),
        (S.RESOLVED, S.ACKNOWLEDGED,
         "incident 'i' is RESOLVED: only an OPEN incident can be acknowledged"),
        (S.ROLLED_BACK, S.ACKNOWLEDGED,
         "incident 'i' was rolled back with its run: it cannot be acknowledged"),
        (S.ROLLED_BACK, S.RESOLVED,
         "incident 'i' was rolled back with its run: it cannot be resolved"),
    ],
)  # fmt: skip
def test_each_status_allows_only_the_changes_of_the_lifecycle(current, target, why):
    assert refusal("i", current, target) == why
