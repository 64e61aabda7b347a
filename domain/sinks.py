"""Alert sinks (pure): what a tenant configures, which alerts reach which sink, and when a
sink is unhealthy.

A sink is a **webhook** (a signed JSON POST of the alert), a **slack** incoming webhook (a
signed ``{"text", "blocks"}`` POST) or an **email** sent over SMTP. ``SINK_REQUEST``
validates what the operator (CLI) or a TENANT_ADMIN key (HTTP) sends; each refusal names
its field. The secret parts — the URL (its path often is the credential: Slack's is), the
signing secret, the SMTP password — are ``SinkSecrets``: stored encrypted, never shown.

Routing: an alert goes to every sink of its tenant whose minimum severity it reaches and
whose alert types (none: every type) include its type — except that the alert a sink raises
about itself (SINK_UNHEALTHY) never goes back to that sink.
"""

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    SecretStr,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from domain.alert_fatigue import AlertType
from domain.enums import Severity
from domain.models import Strict

ALERT_RAISED = "alert.raised"  # outbox topic: an alert passed the fatigue controls
SINK_DELIVERY = "alert.sink_delivery"  # outbox topic: one alert for one sink
SINK_DOMAIN = "alert_sinks"  # the domain of the alerts sinks raise about themselves

MIN_SECRET_BYTES = 16
MAX_SECRET_BYTES = 1000
MAX_URL_CHARS = 2000
SEVERITIES = tuple(Severity)  # lowest first
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"
_DOMAIN = r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?"
_ADDRESS = re.compile(r"[^@\s\"<>,;:()\[\]\\]{1,64}@" + _DOMAIN)
_HOST = re.compile(_DOMAIN + r"|\[?[0-9A-Fa-f:.]{2,45}\]?")


class SinkKind(StrEnum):
    WEBHOOK = "webhook"
    SLACK = "slack"
    EMAIL = "email"


class Outcome(StrEnum):
    """How one delivery attempt ended."""

    DELIVERED = "DELIVERED"
    FAILED = "FAILED"  # the receiver answered an error, or could not be reached in time
    REFUSED = "REFUSED"  # the egress policy refused the target: nothing was sent


def _custom(kind: str, message: str, **context: Any) -> PydanticCustomError:
    return PydanticCustomError(kind, message, context)


def _url(value: str) -> str:
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in value):
        raise _custom("url_characters", "whitespace and control characters are not allowed")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https"):
        raise _custom("url_scheme", "must be an http or https URL, got scheme '{scheme}'",
                      scheme=parts.scheme)  # fmt: skip
    if not parts.hostname:
        raise _custom("url_host", "the URL has no host")
    try:
        port = parts.port  # urlsplit checks the port when it is read
    except ValueError:
        port = 0
    if port is not None and not 1 <= port <= 65535:
        raise _custom("url_port", "the URL's port is not between 1 and 65535")
    return value


def _secret(value: SecretStr) -> SecretStr:
    size = len(value.get_secret_value().encode("utf-8"))
    if not MIN_SECRET_BYTES <= size <= MAX_SECRET_BYTES:
        raise _custom("secret_length", "must be {low} to {high} bytes, got {size}",
                      low=MIN_SECRET_BYTES, high=MAX_SECRET_BYTES, size=size)  # fmt: skip
    return value


def _address(value: str) -> str:
    if _ADDRESS.fullmatch(value) is None:
        raise _custom("email_address", "not an e-mail address (name@domain)")
    return value


def _host(value: str) -> str:
    if _HOST.fullmatch(value) is None:
        raise _custom("smtp_host", "not a host name or an IP address")
    return value


Url = Annotated[str, Field(max_length=MAX_URL_CHARS), AfterValidator(_url)]
Secret = Annotated[SecretStr, AfterValidator(_secret)]
Address = Annotated[str, Field(max_length=254), AfterValidator(_address)]


class _Sink(Strict):
    name: str = Field(pattern=NAME_PATTERN, description="unique within the tenant")
    min_severity: Severity = Field(default=Severity.LOW, description="lowest severity sent")
    alert_types: list[AlertType] | None = Field(
        default=None, min_length=1, max_length=len(AlertType), description="none: every type"
    )


class WebhookSink(_Sink):
    """POST the alert as JSON, signed: ``X-Governed-Runs-Signature: t=<unix>,v1=<hex>``."""

    kind: Literal["webhook"]
    url: Url
    secret: Secret = Field(description=f"HMAC-SHA256 key, at least {MIN_SECRET_BYTES} bytes")


class SlackSink(WebhookSink):
    """A Slack-compatible incoming webhook: ``{"text", "blocks"}``, signed like a webhook."""

    kind: Literal["slack"]  # type: ignore[assignment]


class EmailSink(_Sink):
    """An e-mail per alert over SMTP (STARTTLS and a login when configured)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    kind: Literal["email"]
    host: Annotated[str, Field(max_length=253), AfterValidator(_host)]
    port: int = Field(default=587, ge=1, le=65535)
    sender: Address = Field(alias="from")
    to: list[Address] = Field(min_length=1, max_length=50)
    starttls: bool = True
    username: str | None = Field(default=None, min_length=1, max_length=200)
    password: SecretStr | None = Field(default=None, max_length=MAX_SECRET_BYTES)

    @model_validator(mode="after")
    def _login_needs_both(self) -> "EmailSink":
        missing = None
        if self.username is not None and self.password is None:
            missing = ("password", "required with a username")
        elif self.password is not None and self.username is None:
            missing = ("username", "required with a password")
        if missing is not None:
            error = _custom("login_incomplete", missing[1])
            details = [InitErrorDetails(type=error, loc=(missing[0],), input=None)]
            raise ValidationError.from_exception_data(type(self).__name__, details)
        return self


SinkRequest = Annotated[WebhookSink | SlackSink | EmailSink, Field(discriminator="kind")]
SINK_REQUEST: TypeAdapter[WebhookSink | SlackSink | EmailSink] = TypeAdapter(SinkRequest)


@dataclass(frozen=True)
class SinkSecrets:
    """What is stored encrypted: a webhook's URL and signing secret, an SMTP password."""

    url: str | None = None
    secret: str | None = None
    password: str | None = None

    def to_dict(self) -> dict[str, str]:
        return {k: v for k, v in vars(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SinkSecrets":
        return cls(data.get("url"), data.get("secret"), data.get("password"))


def origin(url: str) -> str:
    """scheme://host:port of a URL: what a sink shows of its URL (never path, query or
    credentials)."""
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}[parts.scheme]
    host = parts.hostname or ""
    return f"{parts.scheme}://{f'[{host}]' if ':' in host else host}:{port}"


def split_request(request: WebhookSink | SlackSink | EmailSink) -> tuple[dict, SinkSecrets]:
    """(the settings shown and stored in the clear, the secrets stored encrypted)."""
    if isinstance(request, EmailSink):
        shown = {"host": request.host, "port": request.port, "from": request.sender,
                 "to": list(request.to), "starttls": request.starttls,
                 "username": request.username}  # fmt: skip
        password = request.password.get_secret_value() if request.password else None
        return shown, SinkSecrets(password=password)
    return {"origin": origin(request.url)}, SinkSecrets(
        url=request.url, secret=request.secret.get_secret_value()
    )


# ----- routing ------------------------------------------------------------------------------


def severity_rank(severity: str) -> int:
    return SEVERITIES.index(Severity(severity))


@dataclass(frozen=True)
class SinkRoute:
    """What routing needs to know of a sink."""

    sink_id: str
    name: str
    min_severity: str
    alert_types: tuple[str, ...] | None


def receives(route: SinkRoute, alert_type: str, severity: str, about_sink: str | None) -> bool:
    """Whether an alert goes to this sink; ``about_sink``: the sink a SINK_UNHEALTHY alert
    is about (it never goes back to that sink: it cannot reach it anyway, and every failed
    attempt would feed its own alert)."""
    if about_sink is not None and about_sink == route.sink_id:
        return False
    if severity_rank(severity) < severity_rank(route.min_severity):
        return False
    return route.alert_types is None or alert_type in route.alert_types


# ----- health ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Health:
    healthy: bool
    consecutive_failures: int


@dataclass(frozen=True)
class HealthChange:
    after: Health
    became_unhealthy: bool = False
    recovered: bool = False


def after_attempt(before: Health, delivered: bool, unhealthy_after: int) -> HealthChange:
    """A sink is unhealthy from its ``unhealthy_after``-th failure in a row until it next
    delivers; the change of state is reported once."""
    if delivered:
        return HealthChange(Health(True, 0), recovered=not before.healthy)
    failures = before.consecutive_failures + 1
    healthy = before.healthy and failures < unhealthy_after
    return HealthChange(Health(healthy, failures), became_unhealthy=before.healthy and not healthy)
