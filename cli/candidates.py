"""Candidate commands: submit, promote (manual, human authority), show, list.

These are the operator's own tools: they talk to the database and to Temporal directly,
so ``promote --authority`` is the operator's word (the HTTP API takes the authority from
the API key instead). ``submit`` is held to the tenant's promotion limits like the API.
"""

import json
import sys
from typing import Annotated, Any, Literal

import typer
from temporalio.client import WorkflowFailureError

from cli.context import CliError, Context, Json, command, output
from clients.candidates import (
    list_candidates,
    promote_candidate,
    show_candidate,
    submit_candidate,
)
from domain.candidates import HUMAN_AUTHORITIES, AuthorityType, CandidateStatus
from services.errors import CandidateRequestError

app = typer.Typer(name="candidate", help="incident candidates")

CandidateId = Annotated[str, typer.Argument()]
HumanAuthority = Literal[tuple(a.value for a in HUMAN_AUTHORITIES)]


def read_payload(source: str) -> Any:
    try:
        text = sys.stdin.read() if source == "-" else open(source, encoding="utf-8").read()  # noqa: SIM115
    except OSError as exc:
        raise CliError(f"{source}: {exc.strerror}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"{source}: not JSON ({exc.msg} at line {exc.lineno})") from None


def _decision_line(r: dict[str, Any]) -> str:
    line = f"candidate {r['candidate_id']}: {r['decision']} (decision {r['decision_id']})"
    if r.get("incident_id"):
        line += f", incident {r['incident_id']}"
    return f"{line}\n  {r['reason']}"


@command(app, "submit", help="submit a candidate (CandidateCreated JSON) for promotion")
async def submit(
    ctx: Context,
    file: Annotated[str, typer.Argument(help="JSON file with the candidate, or - for stdin")],
    wait: Annotated[bool, typer.Option("--wait", help="wait for the promotion decision")] = False,
    as_json: Json = False,
) -> None:
    payload = read_payload(file)
    try:
        submitted, handle = await submit_candidate(
            await ctx.client(), ctx.sessions, ctx.settings.task_queue, payload,
            default_max_signal_count=ctx.settings.max_signal_count,
        )  # fmt: skip
    except CandidateRequestError as exc:
        raise CliError(str(exc)) from None
    if not wait:
        verb = "already submitted; joined" if submitted.duplicate else "submitted:"
        output(
            as_json, submitted, lambda s: f"candidate {s['candidate_id']} {verb} {s['workflow_id']}"
        )
        return
    try:
        result = await handle.result()
    except WorkflowFailureError as exc:
        raise CliError(
            f"candidate {submitted.candidate_id}: promotion failed: {exc.cause}"
        ) from None
    output(as_json, result, _decision_line)


@command(app, "promote", help="promote a DEFERRED candidate manually (operator: trusted authority)")
async def promote(
    ctx: Context,
    candidate_id: CandidateId,
    actor: Annotated[str, typer.Option(help="who promotes (a person)")],
    authority: Annotated[
        HumanAuthority,
        typer.Option(
            help="the human authority the operator promotes with (default HUMAN_OPERATOR)",
            show_default=False,
        ),
    ] = AuthorityType.HUMAN_OPERATOR,
    justification: Annotated[
        str | None, typer.Option(help="why (default: 'manual promotion by ACTOR')")
    ] = None,
    as_json: Json = False,
) -> None:
    try:
        result = await promote_candidate(
            await ctx.client(),
            ctx.sessions,
            ctx.settings.task_queue,
            candidate_id,
            actor=actor,
            authority_type=authority,
            justification=justification,
        )
    except CandidateRequestError as exc:
        raise CliError(str(exc)) from None
    output(as_json, result, _decision_line)


def _show_text(v: dict[str, Any]) -> str:
    lines = [
        f"candidate {v['candidate_id']} (tenant {v['tenant_id']}): {v['status']}",
        f"  {v['severity']} on {v['service']}, {v['signal_count']} signal(s), "
        f"rule {v['correlation_rule']}, policy {v['policy'] or '(none)'}",
    ]
    if v["incident_id"]:
        lines.append(f"  incident {v['incident_id']}")
    for d in v["decisions"]:
        lines.append(
            f"  decision {d['id']}: {d['decision']} by {d['authority_id']} "
            f"({d['authority_type']}) — {d['reason']}"
        )
    for a in v["attempts"]:
        lines.append(
            f"  attempt {a['started_at']}: {a['status']} {a['decision'] or ''} "
            f"{a['error'] or ''} ({a['duration_ms']} ms)".rstrip()
        )
    return "\n".join(lines)


@command(app, "show", help="a candidate, its decisions and orchestration attempts")
async def show(ctx: Context, candidate_id: CandidateId, as_json: Json = False) -> None:
    try:
        view = show_candidate(ctx.existing_sessions, candidate_id)
    except CandidateRequestError as exc:
        raise CliError(str(exc)) from None
    output(as_json, view, _show_text)


@command(app, "list", help="list candidates (newest first)")
async def list_(
    ctx: Context,
    status: Annotated[CandidateStatus | None, typer.Option()] = None,
    as_json: Json = False,
) -> None:
    views = [v.model_dump(mode="json") for v in list_candidates(ctx.existing_sessions, status)]
    output(as_json, views, lambda vs: "\n".join(
        f"{v['candidate_id']}: {v['status']} {v['severity']} {v['service']} "
        f"policy {v['policy'] or '(none)'} incident {v['incident_id'] or '-'}" for v in vs)
        or "no candidates")  # fmt: skip
