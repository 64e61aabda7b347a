"""Real receivers for the alert sink tests: a webhook server that verifies signatures the
way a receiver would, and an SMTP server (aiosmtpd) that keeps what it receives.

``receiver(secret)``: every POST is read raw; its ``X-Governed-Runs-Signature`` is checked
here, independently of the product's code (HMAC-SHA256 with the receiver's own copy of the
secret over ``"<t>.<raw body>"``, and ``t`` within 300 s of the receiver's clock); a bad one
is answered 401. Each path answers the statuses scripted for it (``answer("/a", 500,
500)``), then 200; ``hold("/slow")`` makes that path's next request wait until released.

``smtp_server(tls, logins)``: STARTTLS required when ``tls`` is given, AUTH checked against
``logins``; ``refuse(address, times)`` answers 550 to that recipient that many times.
"""

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

TOLERANCE_SECONDS = 300
HOLD_AT_MOST_SECONDS = 30


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool
    timestamp: int | None
    answered: int

    @property
    def json(self) -> dict:
        return json.loads(self.body)


def _verified(header: str, secret: str, body: bytes) -> tuple[bool, int | None]:
    fields = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False, None
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    fresh = abs(time.time() - timestamp) <= TOLERANCE_SECONDS
    return fresh and hmac.compare_digest(expected.hexdigest(), fields.get("v1", "")), timestamp


class _Handler(BaseHTTPRequestHandler):
    server: "SignedReceiver"

    def log_message(self, *args) -> None:  # quiet
        return

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
        headers = {k.lower(): v for k, v in self.headers.items()}
        verified, timestamp = _verified(
            headers.get("x-governed-runs-signature", ""), self.server.secret, body
        )
        release = self.server.take_hold(self.path)
        if release is not None:
            release.wait(HOLD_AT_MOST_SECONDS)
        status = self.server.next_status(self.path) if verified else 401
        with self.server.changed:
            self.server.received.append(
                Received(self.path, headers, body, verified, timestamp, status)
            )
            self.server.changed.notify_all()
        data = b'{"ok": true}' if status < 300 else b'{"ok": false}'
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the client gave up waiting (a timeout test)
            pass


class SignedReceiver(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, secret: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.secret = secret
        self.received: list[Received] = []
        self.changed = threading.Condition()
        self._script: dict[str, list[int]] = {}
        self._holds: dict[str, threading.Event] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def answer(self, path: str, *statuses: int) -> None:
        with self.changed:
            self._script.setdefault(path, []).extend(statuses)

    def next_status(self, path: str) -> int:
        with self.changed:
            script = self._script.get(path) or []
            return script.pop(0) if script else 200

    def hold(self, path: str) -> threading.Event:
        """The next request to ``path`` waits (at most HOLD_AT_MOST_SECONDS) for the event."""
        release = threading.Event()
        with self.changed:
            self._holds[path] = release
        return release

    def take_hold(self, path: str) -> threading.Event | None:
        with self.changed:
            return self._holds.pop(path, None)

    def at(self, path: str) -> list[Received]:
        with self.changed:
            return [r for r in self.received if r.path == path]


@contextmanager
def receiver(secret: str) -> Iterator[SignedReceiver]:
    server = SignedReceiver(secret)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        with server.changed:
            holds = list(server._holds.values())
        for release in holds:
            release.set()
        server.shutdown()
        server.server_close()


# ----- SMTP -------------------------------------------------------------------------------------


@dataclass
class Mail:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    login: str | None
    tls: bool


class Inbox:
    """The aiosmtpd handler: keeps each message, refuses recipients when told to."""

    def __init__(self, logins: dict[str, str]) -> None:
        self.logins = logins
        self.mails: list[Mail] = []
        self.refusals: dict[str, int] = {}
        self.lock = threading.Lock()

    def refuse(self, address: str, times: int) -> None:
        with self.lock:
            self.refusals[address] = times

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:  # noqa: ANN001, N802
        with self.lock:
            if self.refusals.get(address, 0) > 0:
                self.refusals[address] -= 1
                return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: ANN001, N802
        message = message_from_bytes(envelope.original_content, policy=policy.default)
        login = session.auth_data.decode() if isinstance(session.auth_data, bytes) else None
        with self.lock:
            self.mails.append(Mail(envelope.mail_from, list(envelope.rcpt_tos), message, login,
                                   session.ssl is not None))  # fmt: skip
        return "250 Message accepted for delivery"

    def authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:  # noqa: ANN001
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user, password = auth_data.login.decode(), auth_data.password.decode()
        ok = self.logins.get(user) == password
        return AuthResult(success=ok, handled=False, auth_data=auth_data.login if ok else None)


class _AnyPortController(Controller):
    """aiosmtpd's Controller on a port the system picks (port 0): the port is read from
    the bound socket before the server is first reached."""

    def _trigger_server(self) -> None:
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


@contextmanager
def smtp_server(tls=None, logins: dict[str, str] | None = None) -> Iterator[tuple[Inbox, int]]:  # noqa: ANN001
    inbox = Inbox(logins or {})
    options = {"authenticator": inbox.authenticate, "auth_require_tls": tls is not None}
    if tls is not None:
        options |= {"tls_context": tls, "require_starttls": True}
    controller = _AnyPortController(inbox, hostname="127.0.0.1", port=0, **options)
    controller.start()
    try:
        yield inbox, controller.port
    finally:
        controller.stop()
