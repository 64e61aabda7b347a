"""A model to run against here: a real HTTP server that speaks the chat-completions API of
OpenAI (``POST /v1/chat/completions`` and ``/chat/completions``, ``GET /v1/models``) and
answers from scripts (runtime.chat_scripts), with no network and no model weights.

Tests start one per test; ``make run`` gets one from runtime.stack on the default
``LLM_BASE_URL`` (http://127.0.0.1:8081/v1) when the worker runs the embedded dev stack and
no ``LLM_BASE_URL`` is configured. Alone: ``python -m runtime.chat_completions --port 8081``.

- **Scripts** are registered by name (``server.script("triage", [Turn.calls(...),
  Turn.reply("done")])``) and chosen per request by the ``X-Chat-Script`` header, else by
  the request's ``model``. A request that names none is answered ``echo: <its last user
  message>``.
- **Failures on demand**: a script's turn may be a failure, a malformed body, a redirect or a
  slow reply; ``server.fail_next(Turn.failure(503), ...)`` answers the next requests (of any
  script) with those turns, once each — a failure and then the scripted reply, as a retry
  sees it.
- **What was sent**: every request is recorded (``server.requests``: path, headers, JSON
  body), the refused and failed ones too.
- A request that is not a chat completion the API would take (no model or messages, a tool
  that is not a function with a name, ``stream``) is answered 400 with an OpenAI error
  body naming the problem; with ``api_key`` set, a request without that bearer key is 401.
"""

import argparse
import json
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from runtime.chat_scripts import Turn, completion_body, default_turn, scripted_turn
from runtime.settings import Settings

log = logging.getLogger(__name__)

CHAT_PATHS = ("/v1/chat/completions", "/chat/completions")
MODELS_PATHS = ("/v1/models", "/models")
SCRIPT_HEADER = "X-Chat-Script"
ROLES = ("system", "developer", "user", "assistant", "tool")
TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


@dataclass(frozen=True)
class ChatRequest:
    """One request the server received."""

    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    body: Any  # the JSON body (None: none, or not JSON)

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self.body.get("messages", []) if isinstance(self.body, dict) else []

    @property
    def prompt(self) -> str | None:
        """The content of the last user message."""
        users = [m.get("content") for m in self.messages if m.get("role") == "user"]
        return users[-1] if users else None


class BadChatRequest(ValueError):
    """A request the chat-completions API would refuse (answered 400)."""


def check_chat_request(body: Any) -> None:
    """Refuse what the API refuses, naming the field."""
    if not isinstance(body, dict):
        raise BadChatRequest("the body must be a JSON object")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise BadChatRequest("model: a model name is required")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadChatRequest("messages: a non-empty list of messages is required")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise BadChatRequest(f"messages[{i}].role: one of {', '.join(ROLES)} is required")
    if body.get("stream"):
        raise BadChatRequest("stream: streaming is not supported by this server")
    tools = body.get("tools")
    if tools is None:
        return
    if not isinstance(tools, list):
        raise BadChatRequest("tools: a list of tools is required")
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type") != "function":
            raise BadChatRequest(f"tools[{i}].type: 'function' is required")
        if not isinstance(function, dict) or not TOOL_NAME.match(str(function.get("name", ""))):
            raise BadChatRequest(
                f"tools[{i}].function.name: a name of 1 to 64 letters, digits, _ or - is required"
            )
        parameters = function.get("parameters")
        if parameters is not None and not (
            isinstance(parameters, dict) and parameters.get("type", "object") == "object"
        ):
            raise BadChatRequest(
                f"tools[{i}].function.parameters: a JSON schema object is required"
            )


def error_body(message: str, kind: str = "invalid_request_error", code: str | None = None) -> dict:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


class _Handler(BaseHTTPRequestHandler):
    server: "ChatCompletionsServer"

    def log_message(self, *args: Any) -> None:  # quiet: a prompt may hold a secret
        return

    def _read(self) -> ChatRequest:
        length = int(self.headers.get("Content-Length", 0) or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        headers = {k.lower(): v for k, v in self.headers.items()}
        request = ChatRequest(self.command, self.path, headers, body)
        self.server.requests.append(request)
        return request

    def _send(self, status: int, body: dict | str, headers: Iterable[tuple[str, str]] = ()) -> None:
        data = (body if isinstance(body, str) else json.dumps(body)).encode()
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        request = self._read()
        if urlsplit(request.path).path in MODELS_PATHS:
            names = ["echo", *sorted(self.server.scripts)]
            models = [{"id": n, "object": "model", "owned_by": "local"} for n in names]
            self._send(200, {"object": "list", "data": models})
        else:
            self._not_found(request)

    def do_POST(self) -> None:  # noqa: N802
        request = self._read()
        if urlsplit(request.path).path not in CHAT_PATHS:
            self._not_found(request)
            return
        expected = self.server.api_key
        if expected is not None and request.headers.get("authorization") != f"Bearer {expected}":
            self._send(401, error_body("Incorrect API key provided", code="invalid_api_key"))
            return
        try:
            check_chat_request(request.body)
            turn = self.server.turn_for(request)
        except BadChatRequest as exc:
            self._send(400, error_body(str(exc)))
            return
        self._answer(request.body, turn)

    def _not_found(self, request: ChatRequest) -> None:
        message = f"Unknown request URL: {request.method} {urlsplit(request.path).path}"
        self._send(404, error_body(message, code="unknown_url"))

    def _answer(self, body: dict[str, Any], turn: Turn) -> None:
        if turn.delay:
            time.sleep(turn.delay)
        headers = list(turn.headers)
        if turn.location is not None:
            self._send(turn.status, {}, [*headers, ("Location", turn.location)])
        elif turn.error is not None:
            self._send(turn.status, {"error": turn.error}, headers)
        elif turn.raw is not None:
            self._send(turn.status, turn.raw, headers)
        else:
            reply = completion_body(body, turn, self.server.usage, int(time.time()))
            self._send(200, reply, headers)


class ChatCompletionsServer(ThreadingHTTPServer):
    """The server, bound on construction; ``start`` serves it from a daemon thread."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        scripts: dict[str, Sequence[Turn]] | None = None,
        usage: tuple[int, int] | None = None,
        api_key: str | None = None,
    ) -> None:
        super().__init__((host, port), _Handler)
        self.scripts: dict[str, tuple[Turn, ...]] = {}
        self.usage = usage  # (prompt, completion) tokens of every reply; None: counted
        self.api_key = api_key
        self.requests: list[ChatRequest] = []
        self._next: deque[Turn] = deque()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        for name, turns in (scripts or {}).items():
            self.script(name, turns)

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self.server_address[0]}:{self.port}"

    @property
    def base_url(self) -> str:
        """What LLM_BASE_URL is set to."""
        return f"{self.url}/v1"

    def script(self, name: str, turns: Sequence[Turn]) -> None:
        if not turns:
            raise ValueError(f"script {name!r} has no turns")
        self.scripts[name] = tuple(turns)

    def fail_next(self, *turns: Turn) -> None:
        """Answer the next requests with ``turns``, once each, before any script."""
        with self._lock:
            self._next.extend(turns)

    def turn_for(self, request: ChatRequest) -> Turn:
        with self._lock:
            if self._next:
                return self._next.popleft()
        named = request.headers.get(SCRIPT_HEADER.lower())
        if named is not None and named not in self.scripts:
            known = ", ".join(sorted(self.scripts)) or "none"
            raise BadChatRequest(f"{SCRIPT_HEADER}: no script named {named!r} (scripts: {known})")
        turns = self.scripts.get(named or request.body["model"])
        messages = request.messages
        return scripted_turn(turns, messages) if turns else default_turn(messages)

    def bodies(self) -> list[Any]:
        """The JSON bodies of the chat requests received, in order."""
        return [r.body for r in self.requests if urlsplit(r.path).path in CHAT_PATHS]

    def start(self) -> "ChatCompletionsServer":
        self._thread = threading.Thread(target=self.serve_forever, name="chat-server", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread is not None:
            self.shutdown()
            self._thread.join(timeout=5)
        self.server_close()


@contextmanager
def chat_server(**options: Any) -> Iterator[ChatCompletionsServer]:
    """A started server on a free loopback port, closed afterwards."""
    server = ChatCompletionsServer(**options).start()
    try:
        yield server
    finally:
        server.close()


def embedded_chat_server(settings: Settings) -> ChatCompletionsServer | None:
    """The model of the embedded dev stack (``make run``): a started server on the host and
    port of the default LLM_BASE_URL. None when LLM_BASE_URL is configured, or when that
    port is taken (logged: the llm steps then reach whatever listens there)."""
    if "llm_base_url" in settings.model_fields_set:
        return None
    url = urlsplit(settings.llm_base_url)
    try:
        server = ChatCompletionsServer(url.hostname or "127.0.0.1", url.port or 80)
    except OSError as exc:
        reason = exc.strerror or exc
        log.warning("the local chat server cannot listen on %s:%s (%s); llm steps go to "
                    "whatever answers there", url.hostname, url.port, reason)  # fmt: skip
        return None
    log.info("llm: the local scripted chat server on %s (set LLM_BASE_URL for a real model)",
             server.base_url)  # fmt: skip
    return server.start()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    server = ChatCompletionsServer(args.host, args.port)
    log.info("chat completions on %s (LLM_BASE_URL)", server.base_url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
