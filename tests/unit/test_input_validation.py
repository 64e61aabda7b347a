"""Malformed run input and signals are refused with a message naming the field."""

import pytest

from clients.runs import RunRequestError, validate_run_input

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


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({**GOOD, "steps": [{"skill": "echo", "input": {"text": "a\x00b"}}]}, "NUL"),
        ({**GOOD, "budget": "1e30"}, "budget"),
        ({**GOOD, "budget": "0.0000001"}, "budget"),
        ({**GOOD, "options": {"pause_sla_seconds": 10**12}}, "pause_sla_seconds"),
    ],
)
def test_values_the_database_cannot_hold_are_refused_up_front(payload, field):
    with pytest.raises(RunRequestError, match=field):
        validate_run_input(payload)


def test_signal_payloads_refuse_nul():
    from pydantic import ValidationError

    from domain.models import StopRequest

    with pytest.raises(ValidationError, match="NUL"):
        StopRequest.model_validate({"actor": {"id": "a\x00", "authority": "TENANT_ADMIN"}})
