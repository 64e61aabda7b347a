"""Alert sink commands: add (or replace), list, remove, test. Secrets come from stdin, never
argv, and are never printed.

    printf %s "$SIGNING_SECRET" | python starter.py sinks add acme ops --kind webhook \\
        --url https://hooks.example.com/governed-runs --min-severity HIGH
    printf %s "$SIGNING_SECRET" | python starter.py sinks add acme chat --kind slack \\
        --url https://hooks.slack.com/services/T0/B0/XXXX --types STALE_RUN,DRIFT
    printf %s "$SMTP_PASSWORD" | python starter.py sinks add acme oncall --kind email \\
        --host smtp.example.com --port 587 --from alerts@example.com --to oncall@example.com \\
        --username alerts
    python starter.py sinks list acme
    python starter.py sinks test acme ops
    python starter.py sinks remove acme ops

Every attempt (``sinks test``'s too) is listed by ``starter.py alerts --deliveries``.
"""

import uuid
from typing import Annotated, Any

import typer

from activities.secret_store import SecretBox, SecretKeyError
from cli.context import CliError, Context, Json, command, output, tenant_hint
from cli.secrets import read_value
from domain.ids import derive_id
from domain.sink_messages import AlertMessage
from domain.sinks import SINK_DOMAIN
from events.senders import SendFailed, deployment_sender
from runtime.worker_factory import egress
from services import sinks
from services.errors import AdminError
from services.ledger import utcnow

app = typer.Typer(name="sinks", help="manage where a tenant's alerts are sent")

TenantId = Annotated[str, typer.Argument()]
Name = Annotated[str, typer.Argument()]
TEST_ALERT = "SINK_TEST"


def _guard(fn, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
    try:
        return fn(*args, **kwargs)
    except (AdminError, SecretKeyError) as exc:
        raise CliError(tenant_hint(str(exc))) from None


def _types(text: str | None) -> list[str] | None:
    return None if text is None else [t.strip() for t in text.split(",") if t.strip()]


def _where(s: dict[str, Any]) -> str:
    shown = s["settings"]
    if s["kind"] == "email":
        return f"{', '.join(shown['to'])} via {shown['host']}:{shown['port']}"
    return shown["origin"]


def _line(s: dict[str, Any]) -> str:
    types = ",".join(s["alert_types"]) if s["alert_types"] else "every type"
    failures = s["consecutive_failures"]
    health = "healthy" if s["healthy"] else f"UNHEALTHY ({failures} failures in a row)"
    return f"{s['name']} ({s['kind']} → {_where(s)}): {s['min_severity']} and above, {types}; " \
        f"{health}"  # fmt: skip


ADD_HELP = (
    "add a sink, or replace the tenant's sink of that name; the secret (webhook, "
    "slack) or the SMTP password (email with --username) is read from stdin"
)


@command(app, "add", help=ADD_HELP)
async def add(
    ctx: Context,
    tenant_id: TenantId,
    name: Name,
    kind: Annotated[str, typer.Option(help="webhook, slack or email")],
    url: Annotated[str | None, typer.Option(help="webhook, slack: where to POST")] = None,
    min_severity: Annotated[str, typer.Option(help="LOW, MEDIUM, HIGH or CRITICAL")] = "LOW",
    types: Annotated[
        str | None, typer.Option(help="comma-separated alert types (default: every type)")
    ] = None,
    host: Annotated[str | None, typer.Option(help="email: the SMTP server")] = None,
    port: Annotated[int, typer.Option(help="email: the SMTP port")] = 587,
    sender: Annotated[str | None, typer.Option("--from", help="email: the sender")] = None,
    to: Annotated[list[str] | None, typer.Option(help="email: a recipient (repeat)")] = None,
    starttls: Annotated[bool, typer.Option(help="email: STARTTLS before anything else")] = True,
    username: Annotated[str | None, typer.Option(help="email: SMTP login")] = None,
    as_json: Json = False,
) -> None:
    request: dict[str, Any] = {"kind": kind, "name": name, "min_severity": min_severity,
                               "alert_types": _types(types)}  # fmt: skip
    if kind == "email":
        request |= {"host": host, "port": port, "from": sender, "to": to or [],
                    "starttls": starttls, "username": username}  # fmt: skip
        if username is not None:
            request["password"] = read_value()
    else:
        request |= {"url": url, "secret": read_value()}
    box = SecretBox.of_deployment(ctx.settings.secrets_key, ctx.settings.data_dir)
    view, created = _guard(sinks.save_sink, ctx.sessions, box, tenant_id, request)
    done = "added" if created else "replaced"
    output(as_json, view.model_dump(mode="json"),
           lambda s: f"sink {done} for tenant {tenant_id}: {_line(s)}")  # fmt: skip


@command(app, "list", help="a tenant's sinks and their health (never a secret)")
async def list_sinks(ctx: Context, tenant_id: TenantId, as_json: Json = False) -> None:
    views = _guard(sinks.list_sinks, ctx.existing_sessions, tenant_id)
    listed = [v.model_dump(mode="json") for v in views]
    output(as_json, listed, lambda ss: "\n".join(_line(s) for s in ss)
           or f"no sinks for tenant {tenant_id}")  # fmt: skip


@command(app, "remove", help="remove a sink (its pending deliveries are dropped)")
async def remove(ctx: Context, tenant_id: TenantId, name: Name) -> None:
    _guard(sinks.delete_sink, ctx.sessions, tenant_id, name)
    print(f"sink {name} removed for tenant {tenant_id}")


@command(app, "test", help="send a test message to a sink now; exit 1 if it fails")
async def test(ctx: Context, tenant_id: TenantId, name: Name, as_json: Json = False) -> None:
    sessions = ctx.existing_sessions
    sink = sinks.stored_sink(sessions, tenant_id, name)
    if sink is None:
        raise CliError(f"unknown sink {name!r} for tenant {tenant_id!r}")
    now = utcnow()
    test_id = derive_id("alert-sink-test", sink.id, now.isoformat(), uuid.uuid4().hex)
    message = AlertMessage(test_id, tenant_id, TEST_ALERT, "LOW", SINK_DOMAIN, None,
                           f"test message to alert sink {name} from governed-runs",
                           {"test": True}, now.isoformat())  # fmt: skip
    sender = deployment_sender(ctx.settings, sessions, egress(ctx.settings))
    try:
        sent, failed = sender.send(sink, message, test_id, 1), None
    except SendFailed as exc:
        sent, failed = exc.sent, exc
    attempt = sinks.Attempt(sink, test_id, TEST_ALERT, test_id, 1, sent.outcome,
                            sent.status_code, sent.error, sent.duration_ms,
                            sent.started_at)  # fmt: skip
    sinks.record_test(ctx.sessions, attempt)
    result = {"sink": name, "outcome": sent.outcome, "status_code": sent.status_code,
              "error": sent.error, "duration_ms": sent.duration_ms}  # fmt: skip
    output(as_json, result, lambda r: f"sink {name}: {r['outcome']}"
           + (f" {r['status_code']}" if r["status_code"] else "")
           + (f" ({r['error']})" if r["error"] else "") + f" in {r['duration_ms']} ms")  # fmt: skip
    if failed is not None:
        raise CliError(f"the test message to sink {name} was not delivered")
