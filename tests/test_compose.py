"""The scale path's compose file: the services, and the settings the worker reads."""

from pathlib import Path

import yaml

from runtime.settings import Settings

COMPOSE = Path(__file__).resolve().parent.parent / "docker-compose.temporal.yml"


def test_compose_wires_temporal_ui_postgres_and_workers():
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    assert set(services) == {"postgresql", "temporal", "temporal-ui", "worker"}
    assert services["temporal"]["environment"]["DB"] == "postgres12"
    assert services["temporal-ui"]["environment"]["TEMPORAL_ADDRESS"] == "temporal:7233"
    worker_env = services["worker"]["environment"]
    settings = Settings(_env_file=None, **{k.lower(): v for k, v in worker_env.items()})
    assert settings.temporal_address == "temporal:7233"
    assert settings.resolved_database_url().startswith("postgresql+psycopg://")
    assert settings.task_queue == "governed-runs"
