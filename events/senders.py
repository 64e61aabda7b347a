"""Sending one alert to one sink: webhooks and Slack over the egress path, e-mail over SMTP.

- **webhook / slack**: a POST through ``activities.skills.egress`` — the tenant's egress
  policy, the host resolved and vetted, the request pinned to the vetted address, redirects
  re-checked — with the body signed (domain.sink_messages.signature) over the exact bytes
  sent: httpx encodes the body for the signature the way it encodes it for the request.
  2xx is delivered; anything else, a timeout or a network error is a failed attempt.
- **email**: ``smtplib`` to the vetted address of the SMTP host (the same policy: a target
  of scheme ``smtp`` that only ``*`` rules, e.g. ``*://mail.corp:587``, re-open), STARTTLS
  with the worker's TLS context (certificate checked against the host's name) and a login
  when configured. A reply code of 2xx is delivered, any other is failed with it.

What a refusal or an error says names the target's origin, never a URL path or a secret.
"""

import contextlib
import json
import smtplib
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage

import httpx
from sqlalchemy.orm import Session, sessionmaker

from activities.secret_store import SecretBox
from activities.skills.egress import Egress, EgressRefused, Outbound, resolve
from activities.skills.errors import SkillError
from domain.egress import EgressRuleError, Target, parse_rules
from domain.sink_messages import (
    ATTEMPT_HEADER,
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    AlertMessage,
    email_subject,
    email_text,
    signature,
    slack_body,
)
from domain.sinks import Outcome, SinkKind, SinkSecrets, origin
from runtime.settings import Settings
from services.sinks import StoredSink
from services.tenants import egress_allow_of

USER_AGENT = "governed-runs-alerts/1"


@dataclass(frozen=True)
class Sent:
    """How one attempt ended."""

    outcome: Outcome
    status_code: int | None
    error: str | None
    duration_ms: int
    started_at: datetime


class SendFailed(Exception):
    """An attempt that did not deliver (the delivery is retried)."""

    def __init__(self, sent: Sent) -> None:
        super().__init__(sent.error or sent.outcome)
        self.sent = sent


@dataclass(frozen=True)
class Sender:
    """Sends to sinks; ``outbound(tenant_id)`` is that tenant's egress path."""

    box: SecretBox
    outbound: Callable[[str], Outbound]
    timeout: float
    clock: Callable[[], float] = time.time

    def send(self, sink: StoredSink, alert: AlertMessage, delivery_id: str, attempt: int) -> Sent:
        """One attempt; returns it delivered, or raises SendFailed with how it failed."""
        started, began, url = datetime.now(UTC), time.monotonic(), ""
        try:
            secrets = SinkSecrets.from_dict(json.loads(self.box.decrypt(sink.ciphertext)))
            url = secrets.url or ""
            if sink.kind == SinkKind.EMAIL:
                code, error = self._email(sink, secrets, alert, delivery_id)
            else:
                code, error = self._post(sink, secrets, alert, delivery_id, attempt)
            outcome = Outcome.DELIVERED if error is None else Outcome.FAILED
        except EgressRefused as exc:
            outcome, code, error = Outcome.REFUSED, None, f"egress refused: {exc.reason}"
        except Exception as exc:  # noqa: BLE001 - every failure is an attempt on record
            outcome, code, error = Outcome.FAILED, None, _error_text(exc, sink)
        if url and error:  # a URL's path may be the credential (Slack's is)
            error = error.replace(url, origin(url))
        sent = Sent(outcome, code, error, int((time.monotonic() - began) * 1000), started)
        if outcome != Outcome.DELIVERED:
            raise SendFailed(sent)
        return sent

    # ----- webhook and slack ----------------------------------------------------------------

    def _post(self, sink: StoredSink, secrets: SinkSecrets, alert: AlertMessage,
              delivery_id: str, attempt: int) -> tuple[int | None, str | None]:  # fmt: skip
        url = secrets.url or ""
        payload = slack_body(alert) if sink.kind == SinkKind.SLACK else alert.to_dict()
        body = httpx.Request("POST", url, json=payload).content  # what the request will carry
        headers = {
            SIGNATURE_HEADER: signature(secrets.secret or "", int(self.clock()), body),
            DELIVERY_HEADER: delivery_id,
            ATTEMPT_HEADER: str(attempt),
            "User-Agent": USER_AGENT,
        }
        outbound = self.outbound(sink.tenant_id)
        try:
            response = outbound.request("POST", url, json=payload, headers=headers,
                                        timeout=self.timeout)  # fmt: skip
        except httpx.TimeoutException:
            return None, f"{origin(url)} did not answer within {self.timeout:g}s"
        code = response.status_code
        if 200 <= code < 300:
            return code, None
        return code, f"{origin(url)} answered {code}"

    # ----- email ------------------------------------------------------------------------------

    def _email(self, sink: StoredSink, secrets: SinkSecrets, alert: AlertMessage,
               delivery_id: str) -> tuple[int | None, str | None]:  # fmt: skip
        s = sink.settings
        host, port = s["host"], int(s["port"])
        outbound = self.outbound(sink.tenant_id)
        target = Target("smtp", host, port, resolve(host, port))
        reason = outbound.policy.refusal(target, schemes=("smtp",))
        if reason is not None:
            raise EgressRefused(reason, target)
        message = EmailMessage()
        message["Subject"] = email_subject(alert)
        message["From"] = s["from"]
        message["To"] = ", ".join(s["to"])
        message["Message-ID"] = f"<{delivery_id}@governed-runs>"  # the same on every retry
        message["X-Governed-Runs-Alert"] = alert.id
        message.set_content(email_text(alert))
        *others, last = target.addresses
        for address in others:  # each one vetted: the next one when a connection is refused
            with contextlib.suppress(ConnectionRefusedError):
                return self._smtp(address, host, port, s, secrets, message, outbound)
        return self._smtp(last, host, port, s, secrets, message, outbound)

    def _smtp(self, address: str, host: str, port: int, s: dict, secrets: SinkSecrets,
              message: EmailMessage, outbound: Outbound) -> tuple[int, str | None]:  # fmt: skip
        try:
            with _PinnedSMTP(address, host, port, timeout=self.timeout) as smtp:
                if s.get("starttls"):
                    smtp.starttls(context=outbound.tls)
                if s.get("username"):
                    smtp.login(s["username"], secrets.password or "")
                refused = smtp.send_message(message)  # raises unless the DATA reply is 250
        except smtplib.SMTPRecipientsRefused as exc:
            (code, reply), *_ = exc.recipients.values()
            return code, f"smtp {host}:{port} refused every recipient: {code} {_text(reply)}"
        except smtplib.SMTPResponseException as exc:
            return exc.smtp_code, f"smtp {host}:{port}: {exc.smtp_code} {_text(exc.smtp_error)}"
        if refused:  # delivered to the others: not retried, but on record
            listed = ", ".join(f"{r} ({c})" for r, (c, _) in sorted(refused.items()))
            return 250, f"smtp {host}:{port} refused some recipients: {listed}"
        return 250, None


class _PinnedSMTP(smtplib.SMTP):
    """An SMTP connection to a vetted address; EHLO, STARTTLS's server name (and so the
    certificate check) use the host's name."""

    def __init__(self, address: str, host: str, port: int, *, timeout: float) -> None:
        self._address = address
        super().__init__(host, port, local_hostname=socket.gethostname(), timeout=timeout)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return socket.create_connection((self._address, port), timeout, self.source_address)


def _text(reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    return " ".join(text.split())[:300]


def _error_text(exc: Exception, sink: StoredSink) -> str:
    """An attempt's error: its kind and message, naming the target's origin at most."""
    if isinstance(exc, SkillError):
        return str(exc)
    settings = sink.settings
    where = settings.get("origin") or f"smtp {settings.get('host')}:{settings.get('port')}"
    if isinstance(exc, TimeoutError):
        return f"{where} did not answer in time"
    return f"{where}: {type(exc).__name__}: {_text(str(exc))}"


def tenant_outbound(egress: Egress, sessions: sessionmaker[Session]) -> Callable[[str], Outbound]:
    """A tenant's egress path: the worker's settings with the tenant's allow-list (read at
    each attempt, like a step's)."""

    def outbound(tenant_id: str) -> Outbound:
        try:
            rules = parse_rules(egress_allow_of(sessions, tenant_id),
                                f"allow-list of tenant {tenant_id}")  # fmt: skip
        except EgressRuleError as exc:
            raise EgressRefused(str(exc)) from None
        return egress.for_tenant(tenant_id, rules)

    return outbound


def deployment_sender(
    settings: Settings, sessions: sessionmaker[Session], egress: Egress
) -> Sender:
    """The sender of the worker (and of ``starter.py sinks test``): the deployment's secrets
    key, its egress settings, ALERT_SINK_TIMEOUT_SECONDS."""
    box = SecretBox.of_deployment(settings.secrets_key, settings.data_dir)
    return Sender(box, tenant_outbound(egress, sessions), settings.alert_sink_timeout_seconds)
