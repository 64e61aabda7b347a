"""Fixtures of the API tests: the app on the real dev server and database, and API keys."""

from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from api.app import create_app
from services.api_keys import create_key
from tests.helpers import new_tenant


@pytest.fixture
def app_settings(settings, task_queue):
    """The session's settings on this test's own task queue."""
    return settings.model_copy(update={"task_queue": task_queue})


@pytest_asyncio.fixture
async def api(dev_env, app_settings, sessions) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(app_settings, sessions, dev_env.client)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        yield client


class Keys:
    """A tenant with an API key per authority."""

    def __init__(self, sessions, *authorities: str) -> None:
        self.tenant = new_tenant(sessions)
        self.ids: dict[str, str] = {}
        self.headers: dict[str, dict[str, str]] = {}
        for authority in authorities:
            key_id, key = create_key(sessions, self.tenant, authority)
            self.ids[authority] = key_id
            self.headers[authority] = {"X-API-Key": key}

    @property
    def admin(self) -> dict[str, str]:
        return self.headers["TENANT_ADMIN"]


@pytest.fixture
def tenant_keys(sessions):
    def make(*authorities: str) -> Keys:
        return Keys(sessions, *(authorities or ("TENANT_ADMIN",)))

    return make
