"""The composition root: settings → metrics endpoint → database → Temporal → activities → Worker.

    python worker.py            # embedded Temporal + SQLite unless configured otherwise
    python worker.py --demo     # the same, plus the demo scenario once the worker is up

Stops gracefully on SIGINT/SIGTERM: the worker stops polling, the activities in flight get
GRACEFUL_SHUTDOWN_SECONDS (30) to finish and report, the rest are cancelled and retried
elsewhere, and the runs go on on the next worker; then the embedded server stops.
"""

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable, Iterator

from activities.skills.egress import quiet_http_client_logs
from api.server import api_beside_worker
from db.engine import DatabaseConfigError
from events.handlers import AUDIT_GROUP, audit_reactor, default_fatigue
from events.notifications import SINK_GROUP, sink_reactor
from events.reactor import Reactor
from events.senders import deployment_sender
from events.watchdog import watched
from observability.prometheus import MetricsServer, MetricsServerError, start_metrics_server
from observability.setup import ObservabilityConfigError, Telemetry, configure
from runtime.embedded_temporal import TemporalConfigError
from runtime.process_exit import exit_process
from runtime.schedules import ensure_reconcile_schedule
from runtime.settings import Settings
from runtime.stack import open_stack
from runtime.temporal_client import with_plugins
from runtime.worker_factory import build_worker, egress
from runtime.worker_versioning import WorkerConfigError, build_id, held_patches

log = logging.getLogger("governed_runs.worker")


@contextlib.contextmanager
def metrics_endpoint(settings: Settings, telemetry: Telemetry) -> Iterator[MetricsServer | None]:
    """The Prometheus /metrics endpoint while the block runs (None: METRICS_ENABLED=false).
    Bound before anything else starts: a busy METRICS_PORT ends the worker at once."""
    if not settings.metrics_enabled or telemetry.prometheus_registry is None:
        yield None
        return
    server = start_metrics_server(
        telemetry.prometheus_registry, settings.metrics_host, settings.metrics_port
    )
    try:
        yield server
    finally:
        server.close()


async def serve(settings: Settings, demo: bool, telemetry: Telemetry | None = None) -> None:
    async with open_stack(settings) as stack:
        client = with_plugins(stack.client, telemetry.plugins() if telemetry else [])
        worker = build_worker(client, settings, stack.sessions)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        ui = f"http://127.0.0.1:{settings.temporal_ui_port}" if stack.embedded else "(external)"
        log.info(
            "worker on task queue %s, Temporal %s (UI %s), database %s, build %s/%s%s",
            settings.task_queue,
            stack.address,
            ui,
            stack.engine.url.render_as_string(hide_password=True),
            settings.worker_deployment_name,
            build_id(settings),
            " (versioned)" if settings.worker_versioning else "",
        )
        if settings.metrics_enabled:
            log.info("Prometheus metrics on http://%s:%s/metrics", settings.metrics_host,
                     settings.metrics_port)  # fmt: skip
        async with worker, api_beside_worker(settings, stack.sessions, client):
            if demo:
                from cli.demo import run_demo

                asyncio.create_task(run_demo(stack, settings))
            if settings.reconcile_schedule_enabled:
                await ensure_reconcile_schedule(client, settings)
            groups: dict[str, Callable[[], Reactor]] = {}  # each under its watchdog
            if settings.event_reactor_enabled:
                groups[AUDIT_GROUP] = lambda: audit_reactor(settings, stack.sessions)
                if settings.alert_sinks_enabled:  # sends alerts to the tenants' sinks
                    sender = deployment_sender(settings, stack.sessions, egress(settings))
                    groups[SINK_GROUP] = lambda: sink_reactor(settings, stack.sessions, sender)
            fatigue = default_fatigue(settings)
            tasks = [
                asyncio.create_task(
                    watched(settings, stack.sessions, group, start, fatigue).run(stop)
                )  # fmt: skip
                for group, start in groups.items()
            ]
            await stop.wait()
            log.info("shutting down: activities in flight get %g s to finish",
                     settings.graceful_shutdown_seconds)  # fmt: skip
            await asyncio.gather(*tasks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", action="store_true", help="run the demo scenario once up")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("temporalio").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    quiet_http_client_logs()  # httpx logs each request's URL at INFO: a URL may hold a secret
    telemetry = None
    try:
        settings = Settings()
        held_patches(settings)  # before anything starts: an unknown id ends the worker here
        telemetry = configure(prometheus=settings.metrics_enabled)
        with metrics_endpoint(settings, telemetry) as metrics_server:
            if metrics_server is not None:  # METRICS_PORT=0: egress protects the port taken
                settings = settings.model_copy(update={"metrics_port": metrics_server.port})
            asyncio.run(serve(settings, args.demo, telemetry))
    except (
        DatabaseConfigError,
        TemporalConfigError,
        ObservabilityConfigError,
        MetricsServerError,
        WorkerConfigError,
    ) as exc:
        print(f"error: {exc}", file=sys.stderr)  # noqa: T201 - the one-line operator error
        return 2
    finally:
        if telemetry is not None:
            telemetry.shutdown()
    return 0


if __name__ == "__main__":
    exit_process(main())
