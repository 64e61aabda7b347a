"""A tenant may be allowed a plugin skill like a built-in one (the installed catalog's
names); a name no catalogued skill has is refused and nothing is written."""

import uuid

import pytest

from db.models import Tenant
from services.errors import AdminError
from services.tenants import add_tenant, update_tenant
from tests.helpers import count, rows


def test_a_tenant_may_be_allowed_plugin_skills(sessions):
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    add_tenant(sessions, tenant, skills=["echo", "word_count"])
    assert rows(sessions, Tenant, id=tenant)[0].allowed_skills == ["echo", "word_count"]
    update_tenant(sessions, tenant, skills=["slugify"])
    assert rows(sessions, Tenant, id=tenant)[0].allowed_skills == ["slugify"]
    with pytest.raises(AdminError, match="unknown skills: no_such_skill"):
        update_tenant(sessions, tenant, skills=["slugify", "no_such_skill"])
    assert rows(sessions, Tenant, id=tenant)[0].allowed_skills == ["slugify"]
    other = f"t-{uuid.uuid4().hex[:10]}"
    with pytest.raises(AdminError, match="unknown skills: tally"):
        add_tenant(sessions, other, skills=["tally"])
    assert count(sessions, Tenant, id=other) == 0
