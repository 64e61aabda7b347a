"""The gates a request passes before any route reads its body (pure ASGI middleware).

In order: ``BodyLimitMiddleware`` refuses a body over HTTP_MAX_BODY_BYTES (413) without
reading it; ``AuthenticationMiddleware`` checks the X-API-Key header (401) from the
headers alone; ``StrictJsonMiddleware`` reads the bounded JSON body and refuses what no
store can hold (422, ``api.json_body``). ``api.app.create_app`` installs them.
"""

from collections.abc import Collection

from fastapi import status
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import INVALID_KEY, KEY_CHALLENGE, PRINCIPAL_SCOPE_KEY
from api.errors import error_response, validation_response
from api.json_body import body_faults
from services.api_keys import authenticate


class BodyTooLarge(Exception):
    """Raised into the app when a streamed body passes the limit (the 413 is already sent)."""


def _content_length(scope: Scope) -> int | None:
    try:
        return int(Headers(scope=scope)["content-length"])
    except (KeyError, ValueError):
        return None


def too_large(limit: int) -> Response:
    detail = f"request body is larger than {limit} bytes (HTTP_MAX_BODY_BYTES)"
    return error_response(
        status.HTTP_413_CONTENT_TOO_LARGE, detail, headers={"Connection": "close"}
    )


class _CountedBody:
    """The receive/send pair of one request: counts the body, answers 413 at the limit."""

    def __init__(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        self.scope, self._receive, self._send, self.limit = scope, receive, send, limit
        self.received = 0
        self.response_started = False
        self.refused = False

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.limit:
                await self._refuse()
                raise BodyTooLarge(f"body passed {self.limit} bytes")
        return message

    async def send(self, message: Message) -> None:
        if self.refused:
            return  # the 413 was the answer; whatever the app sends after it is dropped
        if message["type"] == "http.response.start":
            self.response_started = True
        await self._send(message)

    async def _refuse(self) -> None:
        if not self.response_started:
            self.refused = True
            await too_large(self.limit)(self.scope, self._receive, self._send)


class BodyLimitMiddleware:
    """413 for a body over ``max_body_bytes``: a larger Content-Length is answered before
    anything is read; a streamed (chunked) body is counted as it arrives and cut at the limit."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await too_large(self.max_body_bytes)(scope, receive, send)
            return
        body = _CountedBody(scope, receive, send, self.max_body_bytes)
        try:
            await self.app(scope, body.receive, body.send)
        except BodyTooLarge:
            if not body.refused:
                raise


class AuthenticationMiddleware:
    """401 for a request without a valid X-API-Key (but on ``public_paths``), from its
    headers only: the body of an unauthenticated request is never read. The principal
    goes to the routes in the scope (``api.deps.require_key``)."""

    def __init__(
        self, app: ASGIApp, sessions: sessionmaker[Session], public_paths: Collection[str]
    ) -> None:
        self.app = app
        self.sessions = sessions
        self.public_paths = frozenset(public_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.public_paths:
            await self.app(scope, receive, send)
            return
        key = Headers(scope=scope).get("x-api-key")
        principal = await run_in_threadpool(authenticate, self.sessions, key) if key else None
        if principal is None:
            refusal = error_response(status.HTTP_401_UNAUTHORIZED, INVALID_KEY, KEY_CHALLENGE)
            await refusal(scope, receive, send)
            return
        await self.app({**scope, PRINCIPAL_SCOPE_KEY: principal}, receive, send)


def _declares_json(scope: Scope) -> bool:
    """The content types FastAPI parses as JSON: application/json and application/*+json."""
    media = Headers(scope=scope).get("content-type", "").split(";")[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


async def _read_body(receive: Receive) -> bytes | None:
    """The whole body (bounded by BodyLimitMiddleware); None when the client went away."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands over ``body`` once, then waits on the client (disconnect)."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return replay


INLINE_CHECK_BYTES = 64 * 1024
"""Bodies up to this size are checked on the event loop; larger ones in a thread."""


async def _faults_of(body: bytes) -> list[dict]:
    if len(body) <= INLINE_CHECK_BYTES:
        return body_faults(body) if body else []
    return await run_in_threadpool(body_faults, body)


class StrictJsonMiddleware:
    """422 naming each field for a JSON body holding NaN/Infinity, an overflowing number,
    a lone surrogate, an overlong string or too deep a nesting (``api.json_body``); an
    acceptable body goes on to the app unchanged."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _declares_json(scope):
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        if body is None:
            return
        faults = await _faults_of(body)
        if faults:
            await validation_response(faults)(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)
