"""Serve the API with uvicorn inside an asyncio loop that someone else owns (the worker's).

The socket is bound before serving, so a busy port is a one-line ``ApiBindError`` rather
than uvicorn's ``sys.exit``; signal handling stays with the host process.
"""

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Iterator

import uvicorn
from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from runtime.settings import Settings

log = logging.getLogger(__name__)


class ApiBindError(RuntimeError):
    """HTTP_HOST:HTTP_PORT cannot be bound."""


class EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves SIGINT/SIGTERM to its host (the worker stops it)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ApiBindError(
            f"HTTP_HOST:HTTP_PORT {host}:{port} cannot be bound: {exc.strerror}"
        ) from None
    sock.listen(128)
    sock.setblocking(False)
    return sock


@contextlib.asynccontextmanager
async def serving(app: FastAPI, host: str, port: int) -> AsyncIterator[EmbeddedServer]:
    """Serve ``app`` on host:port until the block ends (port 0: any free port)."""
    sock = bind(host, port)
    config = uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False)
    server = EmbeddedServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
                raise ApiBindError("the HTTP API stopped while starting")
            await asyncio.sleep(0.02)
        bound = sock.getsockname()
        log.info("HTTP API on http://%s:%s (OpenAPI at /docs)", bound[0], bound[1])
        yield server
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sock.close()


def bound_port(server: EmbeddedServer) -> int:
    """The port a server listens on (useful with port 0)."""
    return server.servers[0].sockets[0].getsockname()[1]


@contextlib.asynccontextmanager
async def api_beside_worker(
    settings: Settings, sessions: sessionmaker[Session], client: Client
) -> AsyncIterator[EmbeddedServer | None]:
    """The API inside the worker process; a busy port leaves the worker running without it."""
    from api.app import create_app

    async with contextlib.AsyncExitStack() as stack:
        server = None
        if settings.http_enabled:
            app = create_app(settings, sessions, client)
            try:
                server = await stack.enter_async_context(
                    serving(app, settings.http_host, settings.http_port)
                )
            except ApiBindError as exc:
                log.warning("HTTP API not started: %s (set HTTP_PORT or HTTP_ENABLED=false)", exc)
        yield server
