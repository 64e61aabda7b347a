"""Incident commands: list, ack, resolve.

    python starter.py incidents list --tenant acme --status OPEN
    python starter.py incidents ack INCIDENT_ID --actor ops-1 --note "looking into it"
    python starter.py incidents resolve INCIDENT_ID --actor ops-1 --note "budget raised"

The operator's own tools: ``--actor`` is taken as written (the HTTP API acts as its key).
OPEN → ACKNOWLEDGED → RESOLVED, or OPEN → RESOLVED; every change is an audit-ledger entry
and an outbox event, and a refused one (unknown id, already resolved, rolled back) writes
nothing.
"""

from typing import Annotated, Any

import typer

from cli.context import CliError, Context, Json, command, output
from domain.enums import IncidentStatus, Severity
from services import incidents
from services.errors import AdminError

app = typer.Typer(name="incidents", help="incidents and their lifecycle (acknowledge, resolve)")

IncidentId = Annotated[str, typer.Argument()]
Actor = Annotated[str, typer.Option(help="who acts (a person)")]
Note = Annotated[str | None, typer.Option(help="why, or what was done")]


def _guard(fn, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
    try:
        return fn(*args, **kwargs)
    except AdminError as exc:
        raise CliError(str(exc)) from None


def _change_lines(v: dict[str, Any]) -> list[str]:
    lines = []
    for change, at, by, note in (
        ("acknowledged", v["acknowledged_at"], v["acknowledged_by"], v["acknowledgement_note"]),
        ("resolved", v["resolved_at"], v["resolved_by"], v["resolution_note"]),
        ("rolled back", v["rolled_back_at"], None, v["rollback_reason"]),
    ):
        if at is not None:
            by_whom = f" by {by}" if by else ""
            lines.append(f"  {change} {at}{by_whom}" + (f": {note}" if note else ""))
    return lines


def _incident_text(v: dict[str, Any]) -> str:
    head = (
        f"{v['id']} {v['status']:12} {v['severity']:8} [{v['tenant_id']}] "
        f"run {v['source_run_id'] or '-'} {v['category']}: {v['title']}"
    )
    return "\n".join([head, *_change_lines(v)])


@command(app, "list", help="incidents, newest first")
async def list_(
    ctx: Context,
    tenant: Annotated[str | None, typer.Option(help="only this tenant's")] = None,
    status: Annotated[IncidentStatus | None, typer.Option()] = None,
    severity: Annotated[Severity | None, typer.Option()] = None,
    run_id: Annotated[str | None, typer.Option("--run", help="only this run's")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 50,
    as_json: Json = False,
) -> None:
    views = _guard(incidents.list_incidents, ctx.existing_sessions, tenant_id=tenant,
                   status=status, severity=severity, run_id=run_id, limit=limit)  # fmt: skip
    dumped = [v.model_dump(mode="json") for v in views]
    output(as_json, dumped, lambda vs: "\n".join(map(_incident_text, vs)) or "no incidents")


def _changed(change: str, by: str, note: str | None) -> Any:
    return lambda v: f"incident {v['id']}: {change} by {by}" + (f" ({note})" if note else "")


@command(app, "ack", help="acknowledge an OPEN incident")
async def ack(
    ctx: Context, incident_id: IncidentId, actor: Actor, note: Note = None, as_json: Json = False
) -> None:
    view = _guard(incidents.acknowledge, ctx.existing_sessions, incident_id, actor=actor,
                  note=note)  # fmt: skip
    output(as_json, view, _changed("ACKNOWLEDGED", view.acknowledged_by, view.acknowledgement_note))


@command(app, "resolve", help="resolve an OPEN or ACKNOWLEDGED incident")
async def resolve(
    ctx: Context, incident_id: IncidentId, actor: Actor, note: Note = None, as_json: Json = False
) -> None:
    view = _guard(incidents.resolve, ctx.existing_sessions, incident_id, actor=actor, note=note)
    output(as_json, view, _changed("RESOLVED", view.resolved_by, view.resolution_note))
