"""``python -m api``: serve only the HTTP API (a worker runs elsewhere).

Connects to TEMPORAL_ADDRESS (default 127.0.0.1:TEMPORAL_PORT, e.g. the worker's embedded
server) and DATABASE_URL, and serves on HTTP_HOST:HTTP_PORT until SIGINT/SIGTERM.
"""

import asyncio
import logging
import signal
import sys

from api.app import create_app
from api.server import ApiBindError, serving
from db.engine import DatabaseConfigError
from observability.setup import ObservabilityConfigError, configure
from runtime.embedded_temporal import TemporalConfigError
from runtime.process_exit import exit_process
from runtime.settings import Settings
from runtime.stack import open_stack
from runtime.temporal_client import with_plugins

log = logging.getLogger("governed_runs.api")


async def serve(settings: Settings, plugins: list) -> None:
    async with open_stack(settings, start_embedded=False) as stack:
        client = with_plugins(stack.client, plugins)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        app = create_app(settings, stack.sessions, client)
        async with serving(app, settings.http_host, settings.http_port):
            log.info("API on http://%s:%s, Temporal %s", settings.http_host, settings.http_port,
                     stack.address)  # fmt: skip
            await stop.wait()


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("temporalio").setLevel(logging.WARNING)
    telemetry = None
    try:
        telemetry = configure()
        asyncio.run(serve(Settings(), telemetry.plugins()))
    except (
        DatabaseConfigError,
        TemporalConfigError,
        ApiBindError,
        ObservabilityConfigError,
    ) as exc:
        print(f"error: {exc}", file=sys.stderr)  # noqa: T201 - the one-line operator error
        return 2
    finally:
        if telemetry is not None:
            telemetry.shutdown()
    return 0


if __name__ == "__main__":
    exit_process(main())
