"""What an alert sink is sent (pure): the alert as JSON, its Slack and e-mail renderings, and
the signature a receiver verifies.

Signature (webhook and slack): ``X-Governed-Runs-Signature: t=<unix>,v1=<hex>``, the hex
HMAC-SHA256, keyed with the sink's secret, of ``"<t>.<body>"`` — ``t`` the time of the
attempt (every retry is signed afresh), ``body`` the exact bytes of the request body. A
receiver recomputes it over the body it read, compares in constant time and rejects a
``t`` too far from its clock (a replay). ``verify`` is that check.
"""

import hashlib
import hmac
from dataclasses import asdict, dataclass
from typing import Any

from domain.alert_fatigue import AlertType

SIGNATURE_HEADER = "X-Governed-Runs-Signature"
DELIVERY_HEADER = "X-Governed-Runs-Delivery"  # the same for every attempt: dedupe on it
ATTEMPT_HEADER = "X-Governed-Runs-Attempt"
DEFAULT_TOLERANCE_SECONDS = 300
MAX_SUBJECT_CHARS = 200
SLACK_TEXT_CHARS = 2900  # a section block holds at most 3000


@dataclass(frozen=True)
class AlertMessage:
    """An alert as sinks receive it (the webhook body)."""

    id: str
    tenant_id: str
    alert_type: str
    severity: str
    domain: str
    run_id: str | None
    title: str
    details: dict[str, Any]
    created_at: str  # ISO 8601, UTC

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "AlertMessage":
        return cls(**{name: data.get(name) for name in cls.__dataclass_fields__})

    @property
    def about_sink(self) -> str | None:
        """The sink an alert about a sink concerns (it is not sent there)."""
        sink = self.details.get("sink_id") if self.alert_type == AlertType.SINK_UNHEALTHY else None
        return str(sink) if sink else None


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The header value: ``t=<timestamp>,v1=<hex HMAC-SHA256 of "<timestamp>.<body>">``."""
    signed = str(timestamp).encode("ascii") + b"." + body
    digest = hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(header: str, secret: str, body: bytes, now: int,
           tolerance: int = DEFAULT_TOLERANCE_SECONDS) -> bool:  # fmt: skip
    """A receiver's check: the header's ``v1`` matches and its ``t`` is within ``tolerance``
    seconds of ``now``."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance:
        return False
    expected = signature(secret, timestamp, body).rsplit("v1=", 1)[1]
    return hmac.compare_digest(expected, fields.get("v1", ""))


def one_line(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _slack_escaped(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _facts(alert: AlertMessage) -> list[tuple[str, str]]:
    facts = [("tenant", alert.tenant_id), ("domain", alert.domain)]
    if alert.run_id:
        facts.append(("run", alert.run_id))
    return [*facts, ("alert", alert.id), ("at", alert.created_at)]


def slack_body(alert: AlertMessage) -> dict[str, Any]:
    """A Slack incoming-webhook payload: ``text`` (notifications, fallbacks) and blocks."""
    head = f"[{alert.severity}] {alert.alert_type}: {one_line(alert.title, SLACK_TEXT_CHARS)}"
    context = " · ".join(f"{k} `{_slack_escaped(v)}`" for k, v in _facts(alert))
    return {
        "text": head,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": (
                f"*[{alert.severity}] {alert.alert_type}*\n"
                f"{_slack_escaped(one_line(alert.title, SLACK_TEXT_CHARS))}")}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": context}]},
        ],
    }  # fmt: skip


def email_subject(alert: AlertMessage) -> str:
    return one_line(f"[governed-runs] {alert.severity} {alert.alert_type}: {alert.title}",
                    MAX_SUBJECT_CHARS)  # fmt: skip


def email_text(alert: AlertMessage) -> str:
    lines = [alert.title, "", *(f"{k}: {v}" for k, v in _facts(alert))]
    lines += ["severity: " + alert.severity, "type: " + alert.alert_type]
    if alert.details:
        lines += ["", "details:", *(f"  {k}: {v}" for k, v in sorted(alert.details.items()))]
    return "\n".join(lines) + "\n"
