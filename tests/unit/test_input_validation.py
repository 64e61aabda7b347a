"""Malformed run input and signals are refused with a message naming the field."""

import pytest

from runtime.runs_client import RunRequestError, validate_run_input

GOOD = {"tenant_id": "acme", "steps": [{"skill": "echo", "input": {"text": "hi"}}]}


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"steps": GOOD["steps"]}, "tenant_id"),
        ({"tenant_id": "acme", "steps": []}, "steps"),
        ({**GOOD, "budget": "-1"}, "budget"),
        ({**GOOD, "colour": "red"}, "colour"),
        ({"tenant_id": "acme", "steps": [{"skill": "nope"}]}, "unknown skill 'nope'"),
        ({"tenant_id": "acme", "steps": [{"skill": "http", "input": {"url": "not a url"}}]},
         "url"),
        ({"tenant_id": "acme", "steps": [{"skill": "echo", "input": {}}]}, "text"),
        ({**GOOD, "options": {"observability_mode": "LOUD"}}, "observability_mode"),
        ({**GOOD, "tenant_id": "bad tenant!"}, "tenant_id"),
    ],
)  # fmt: skip
def test_refused_with_field_named(payload, field):
    with pytest.raises(RunRequestError, match=field):
        validate_run_input(payload)


def test_valid_input_gets_a_run_id():
    run = validate_run_input(GOOD)
    assert run.run_id and run.tenant_id == "acme"
