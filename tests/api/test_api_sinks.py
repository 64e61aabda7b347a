"""GET/POST/DELETE /sinks and GET /sinks/{name}/deliveries (both databases): a key sees and
changes only its tenant's sinks (another tenant's is a 404 like an unknown one), only a
TENANT_ADMIN key changes them (audited as the key), no answer holds a secret, and a
refused body is a 422 naming the field with nothing stored."""

import uuid

import pytest

from db.models import AlertSink, AuditLedgerEntry
from domain.sinks import Outcome
from services import sinks
from services.ledger import utcnow
from tests.helpers import count, rows

pytestmark = pytest.mark.timeout(120)

SECRET = "whsec-api-0123456789"
TOKEN_PATH = "/services/T0/B0/t0ken-in-path"


def webhook(name: str = "hook", **over) -> dict:  # noqa: ANN003
    return {"kind": "webhook", "name": name, "url": f"https://hooks.example.com{TOKEN_PATH}",
            "secret": SECRET, **over}  # fmt: skip


EMAIL = {"kind": "email", "name": "oncall", "host": "smtp.example.com", "port": 587,
         "from": "alerts@example.com", "to": ["oncall@example.com"], "username": "alerts",
         "password": "smtp-password-api"}  # fmt: skip


def no_secret(text: str) -> bool:
    return SECRET not in text and "t0ken-in-path" not in text and "smtp-password-api" not in text


async def test_sinks_over_http_are_admin_only_audited_and_never_show_a_secret(
    api, sessions, tenant_keys
):
    keys = tenant_keys("TENANT_USER", "TENANT_ADMIN")
    user, admin = keys.headers["TENANT_USER"], keys.admin
    refused = await api.post("/sinks", json=webhook(), headers=user)
    assert refused.status_code == 403 and "TENANT_ADMIN" in refused.json()["detail"]
    assert count(sessions, AlertSink, tenant_id=keys.tenant) == 0

    created = await api.post("/sinks", json=webhook(min_severity="HIGH"), headers=admin)
    assert created.status_code == 201, created.text
    view = created.json()
    assert (view["name"], view["kind"], view["min_severity"], view["healthy"]) == (
        "hook", "webhook", "HIGH", True)  # fmt: skip
    assert view["settings"] == {"origin": "https://hooks.example.com:443"}
    assert no_secret(created.text) and "secret" not in view and "url" not in view
    replaced = await api.post("/sinks", json=webhook(alert_types=["DRIFT"]), headers=admin)
    assert replaced.status_code == 200 and replaced.json()["alert_types"] == ["DRIFT"]
    mail = await api.post("/sinks", json=EMAIL, headers=admin)
    assert mail.status_code == 201, mail.text
    assert mail.json()["settings"]["to"] == ["oncall@example.com"] and no_secret(mail.text)

    listed = await api.get("/sinks", headers=user)
    assert listed.status_code == 200 and [s["name"] for s in listed.json()] == ["hook", "oncall"]
    assert no_secret(listed.text)
    assert (await api.get("/sinks/hook/deliveries", headers=user)).json() == []

    assert (await api.delete("/sinks/hook", headers=user)).status_code == 403
    assert (await api.delete("/sinks/hook", headers=admin)).status_code == 204
    assert (await api.delete("/sinks/hook", headers=admin)).status_code == 404
    entries = sorted(rows(sessions, AuditLedgerEntry, tenant_id=keys.tenant,
                          entity_type="alert_sink"), key=lambda e: e.created_at)  # fmt: skip
    assert [e.event_type for e in entries] == [
        "SINK_CREATED", "SINK_UPDATED", "SINK_CREATED", "SINK_DELETED"]  # fmt: skip
    actor = f"apikey:{keys.ids['TENANT_ADMIN']}"
    assert {(e.actor_id, e.actor_authority) for e in entries} == {(actor, "TENANT_ADMIN")}
    assert all(no_secret(str([e.before_state, e.after_state])) for e in entries)


BAD_BODIES = [
    (webhook(url="ftp://hooks.example.com/x"), "url"),
    (webhook(secret="fifteen-bytes!!"), "secret"),
    (webhook(min_severity="URGENT"), "min_severity"),
    (webhook(alert_types=["NOPE"]), "alert_types"),
    ({**webhook(), "kind": "sms"}, "kind"),
    ({**webhook(), "extra": 1}, "extra"),
    ({**EMAIL, "port": 70000}, "port"),
    ({**EMAIL, "username": "a\x00b"}, "username"),
    ({**EMAIL, "to": []}, "to"),
    ({k: v for k, v in EMAIL.items() if k != "password"}, "password"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "field"), BAD_BODIES, ids=[f for _, f in BAD_BODIES])
async def test_a_bad_body_is_a_422_naming_the_field_and_stores_nothing(
    api, sessions, tenant_keys, body, field
):
    keys = tenant_keys("TENANT_ADMIN")
    response = await api.post("/sinks", json=body, headers=keys.admin)
    assert response.status_code == 422, response.text
    assert field in response.json()["error"], response.json()
    assert no_secret(response.text)
    assert count(sessions, AlertSink, tenant_id=keys.tenant) == 0
    assert count(sessions, AuditLedgerEntry, tenant_id=keys.tenant, entity_type="alert_sink") == 0


async def test_another_tenants_sink_is_a_404_like_an_unknown_one(api, sessions, tenant_keys):
    ours, theirs = tenant_keys("TENANT_ADMIN"), tenant_keys("TENANT_ADMIN")
    assert (await api.post("/sinks", json=webhook(), headers=theirs.admin)).status_code == 201
    stored = sinks.stored_sink(sessions, theirs.tenant, "hook")
    test_id = str(uuid.uuid4())
    attempt = sinks.Attempt(stored, test_id, "SINK_TEST", test_id, 1, Outcome.DELIVERED, 200,
                            None, 12, utcnow())  # fmt: skip
    sinks.record_test(sessions, attempt)
    for name in ("hook", "no-such-sink"):
        deleted = await api.delete(f"/sinks/{name}", headers=ours.admin)
        assert (deleted.status_code, deleted.json()) == (404, {"detail": f"unknown sink {name!r}"})
        read = await api.get(f"/sinks/{name}/deliveries", headers=ours.admin)
        assert (read.status_code, read.json()) == (404, {"detail": f"unknown sink {name!r}"})
    assert (await api.get("/sinks", headers=ours.admin)).json() == []
    [seen] = (await api.get("/sinks/hook/deliveries", headers=theirs.admin)).json()
    assert (seen["sink_name"], seen["outcome"], seen["status_code"], seen["attempt"]) == (
        "hook", "DELIVERED", 200, 1)  # fmt: skip
    assert [s["name"] for s in (await api.get("/sinks", headers=theirs.admin)).json()] == ["hook"]
    sinks.delete_sink(sessions, theirs.tenant, "hook")
