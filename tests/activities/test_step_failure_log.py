"""A skill attempt that fails as skills do (an endpoint down) logs one line, not the chained
traceback Temporal logs for an activity failure; the last attempt's failure is recorded."""

import logging

import pytest
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory
from temporalio.testing import ActivityEnvironment

from activities.skills.errors import SkillError
from activities.steps import NO_SECRETS, StepActivities


def test_a_retryable_skill_failure_is_one_benign_line(caplog):
    def attempt() -> None:
        try:
            raise ConnectionError("connection refused")
        except ConnectionError:
            StepActivities._failure(
                SkillError("llm endpoint unreachable: ConnectError", retryable=True), NO_SECRETS
            )

    with caplog.at_level(logging.WARNING), pytest.raises(ApplicationError) as raised:
        ActivityEnvironment().run(attempt)
    err = raised.value
    assert (err.type, err.category) == ("SkillError", ApplicationErrorCategory.BENIGN)
    assert err.__cause__ is None and err.__suppress_context__
    [record] = [r for r in caplog.records if r.name == "activities.steps"]
    assert record.exc_info is None
    assert record.getMessage().endswith("failed, retrying: llm endpoint unreachable: ConnectError")
