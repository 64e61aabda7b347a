"""The operator's writes on secrets and egress allow-lists, the key (file or SECRETS_KEY),
and the step's read of secrets, on both databases."""

import os

import pytest
from cryptography.fernet import Fernet

from activities.secret_store import SecretBox, SecretKeyError, load_secrets, read_key_file
from activities.skills.errors import SkillError
from db.models import AuditLedgerEntry, Tenant, TenantSecret
from services.errors import AdminError
from services.secrets import delete_secret, list_secrets, set_secret
from services.tenants import get_egress_allow, parse_allow, set_egress_allow
from tests.helpers import new_tenant, rows


@pytest.fixture
def box(tmp_path):
    return SecretBox(None, tmp_path / "secrets.key")


def test_key_file_is_created_once_with_mode_0600(tmp_path):
    path = tmp_path / "sub" / "secrets.key"
    first = read_key_file(path)
    assert read_key_file(path) == first and Fernet(first)
    assert path.stat().st_mode & 0o777 == 0o600
    os.chmod(path, 0o644)
    with pytest.raises(SecretKeyError, match="mode 0644; chmod 600"):
        read_key_file(path)


def test_a_bad_secrets_key_is_refused(tmp_path):
    with pytest.raises(SecretKeyError, match="SECRETS_KEY is not a Fernet key"):
        SecretBox("not-a-key", tmp_path / "unused").encrypt("x")
    assert not (tmp_path / "unused").exists()
    key = Fernet.generate_key().decode()
    assert SecretBox(key, tmp_path / "unused").decrypt(SecretBox(key, tmp_path).encrypt("v")) == "v"


def test_secrets_are_stored_encrypted_listed_by_name_and_audited(sessions, box):
    tenant = new_tenant(sessions)
    assert set_secret(sessions, box, tenant, "api-token", "first-value") is True
    assert set_secret(sessions, box, tenant, "api-token", "second-value") is False
    [stored] = rows(sessions, TenantSecret, tenant_id=tenant)
    assert (
        "second-value" not in stored.ciphertext and box.decrypt(stored.ciphertext) == "second-value"
    )
    listed = list_secrets(sessions, tenant)
    assert [(s["name"], s["reference"]) for s in listed] == [("api-token", "${secret:api-token}")]
    assert load_secrets(sessions, box, tenant, ["api-token"]) == {"api-token": "second-value"}
    delete_secret(sessions, tenant, "api-token")
    assert list_secrets(sessions, tenant) == []
    audit = rows(sessions, AuditLedgerEntry, tenant_id=tenant)
    assert sorted(e.event_type for e in audit) == ["SECRET_CREATED", "SECRET_DELETED",
                                                   "SECRET_UPDATED"]  # fmt: skip
    assert all("-value" not in str([e.before_state, e.after_state]) for e in audit)


def test_secret_refusals(sessions, box, tmp_path):
    tenant = new_tenant(sessions)
    for name in ("", "has space", "-leading", "x" * 101, "a/b"):
        with pytest.raises(AdminError, match="secret name"):
            set_secret(sessions, box, tenant, name, "v")
    with pytest.raises(AdminError, match="empty"):
        set_secret(sessions, box, tenant, "ok", "")
    with pytest.raises(AdminError, match="unknown tenant"):
        set_secret(sessions, box, "no-such-tenant", "ok", "v")
    with pytest.raises(AdminError, match="unknown secret 'ok'"):
        delete_secret(sessions, tenant, "ok")
    with pytest.raises(SkillError, match=f"unknown secret 'ok', 'zz' for tenant {tenant}") as e:
        load_secrets(sessions, box, tenant, ["ok", "zz"])
    assert not e.value.retryable
    set_secret(sessions, box, tenant, "ok", "v")
    other_key = SecretBox(None, tmp_path / "other.key")
    with pytest.raises(SkillError, match="secret 'ok' cannot be decrypted"):
        load_secrets(sessions, other_key, tenant, ["ok"])


def test_egress_allow_list_is_normalized_audited_and_bumps_nothing(sessions):
    tenant = new_tenant(sessions)
    with sessions() as session:
        version = session.get(Tenant, tenant).limits_version
    rules = parse_allow(["http://127.0.0.1:18080", "https://api.example.com", "*://10.0.0.0/8:*"])
    assert set_egress_allow(sessions, tenant, rules) == [
        {"scheme": "http", "host": "127.0.0.1", "port": 18080},
        {"scheme": "https", "host": "api.example.com", "port": 443},
        {"scheme": "*", "host": "10.0.0.0/8", "port": "*"},
    ]
    assert get_egress_allow(sessions, tenant) == rules
    assert set_egress_allow(sessions, tenant, None) is None
    with sessions() as session:
        assert session.get(Tenant, tenant).limits_version == version
    audit = rows(sessions, AuditLedgerEntry, tenant_id=tenant, event_type="TENANT_EGRESS_UPDATED")
    states = sorted((e.before_state["egress_allow"] is None, e.after_state["egress_allow"] is None)
                    for e in audit)  # fmt: skip
    assert states == [(False, True), (True, False)]
    with pytest.raises(AdminError, match="--allow"):
        parse_allow(["127.0.0.1:80"])
    with pytest.raises(AdminError, match=r"rules\[0\]: port"):
        set_egress_allow(sessions, tenant, [{"host": "x", "port": 70000}])
    with pytest.raises(AdminError, match="unknown tenant"):
        set_egress_allow(sessions, "no-such-tenant", [])
