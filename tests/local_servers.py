"""A local HTTP server the tests start for the ``http`` skill: plain routes over real TCP.

``GET /slow/<seconds>`` answers after that long, ``GET /status/<code>`` answers that status,
any other GET its path, and a POST its JSON body back. Every path is recorded in ``hits``.
The chat endpoint of the ``llm`` skill is runtime.chat_completions (a scripted model).
"""

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    server: "LocalServer"

    def log_message(self, *args) -> None:  # quiet
        return

    def _send(self, status: int, body: dict | str) -> None:
        data = (json.dumps(body) if isinstance(body, dict) else body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        self.server.hits.append(self.path)
        if self.path.startswith("/slow"):
            time.sleep(float(self.path.split("/")[-1]))
            self._send(200, {"slept": True})
        elif self.path.startswith("/status/"):
            code = int(self.path.split("/")[-1])
            self._send(code, {"status": code})
        else:
            self._send(200, {"path": self.path})

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length) or b"{}")
        self.server.hits.append(self.path)
        self._send(200, {"received": body})


class LocalServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.hits: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@contextmanager
def local_server() -> Iterator[LocalServer]:
    server = LocalServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
