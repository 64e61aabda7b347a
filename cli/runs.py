"""Run commands: start, status, pause, resume, stop, demo."""

import json
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.context import CliError, Context, Json, command, output, tenant_hint
from cli.inspect import usage_lines
from clients.runs import (
    ControlRefusedError,
    RunRequestError,
    control_run,
    run_result,
    run_status,
    start_run,
)
from db.queries.evidence import run_usage
from domain.enums import Authority, PauseReason, Phase
from domain.models import RunStatusView
from services import control as control_service
from services import tenants
from services.errors import AdminError

app = typer.Typer()


def parse_step(text: str) -> dict[str, Any]:
    """[ID=]SKILL[:JSON-INPUT], e.g. echo:'{"text":"hi"}' or greet=echo:'{"text":"hi"}' (an
    id that later steps' references name: {"$ref": "steps.greet.output.text"})."""
    head, _, raw = text.partition(":")
    step_id, _, skill = head.rpartition("=")
    try:
        data = json.loads(raw) if raw else {}
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"step {text!r}: input is not JSON ({exc.msg})") from None
    return {"skill": skill, "input": data, **({"id": step_id} if step_id else {})}


RunId = Annotated[str, typer.Argument()]
Steps = Annotated[list[dict] | None, typer.Option(parser=parse_step, metavar="SKILL:JSON")]
Actor = Annotated[str, typer.Option(help="who acts (default: operator)", show_default=False)]
ActorAuthority = Annotated[Authority, typer.Option()]


@command(app, "start", help="start a run (steps from --step flags or --file)")
async def start(
    ctx: Context,
    tenant: Annotated[str | None, typer.Option(help="tenant id")] = None,
    run_id: Annotated[str | None, typer.Option(help="run id (default: generated)")] = None,
    step: Steps = None,
    file: Annotated[Path | None, typer.Option(help="JSON file with the whole run input")] = None,
    budget: Annotated[str | None, typer.Option(help="budget for this run")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="wait for the run to end")] = False,
    as_json: Json = False,
) -> None:
    payload = build_payload(tenant, run_id, step or [], file, budget)
    require_tenant(ctx, payload.get("tenant_id"))
    client = await ctx.client()
    try:
        handle = await start_run(client, ctx.settings.task_queue, payload)
    except RunRequestError as exc:
        raise CliError(str(exc)) from None
    started = handle.id.removeprefix("run-")
    if not wait:
        output(as_json, {"run_id": started, "workflow_id": handle.id},
               lambda d: f"started run {started}")  # fmt: skip
        return
    result = await run_result(handle)
    output(as_json, result,
           lambda r: f"run {started}: {r['phase']} {r['status']} {r['reason'] or ''}")  # fmt: skip
    if result.phase != Phase.COMPLETED:
        raise CliError(f"run {started} ended {result.phase} {result.status}: {result.reason}")


def build_payload(
    tenant: str | None, run_id: str | None, steps: list[dict], file: Path | None,
    budget: str | None,
) -> dict[str, Any]:  # fmt: skip
    if file:
        try:
            payload = json.loads(file.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise CliError(f"--file {file}: {exc}") from None
        if not isinstance(payload, dict):
            raise CliError(f"--file {file}: expected a JSON object")
    else:
        payload = {}
    if tenant:
        payload["tenant_id"] = tenant
    if steps:
        payload["steps"] = steps
    if budget is not None:
        payload["budget"] = budget
    if run_id:
        payload["run_id"] = run_id
    return payload


def require_tenant(ctx: Context, tenant_id: Any) -> None:
    """Refuse a run of an unknown tenant before anything is started."""
    if not isinstance(tenant_id, str):
        return  # validation names the field
    with ctx.existing_sessions() as session:
        try:
            tenants.tenant_of(session, tenant_id)
        except AdminError as exc:
            raise CliError(tenant_hint(str(exc))) from None


@command(app, "status", help="a run's phase, status, step and pause state")
async def status(ctx: Context, run_id: RunId, as_json: Json = False) -> None:
    try:
        view = await run_status(await ctx.client(), run_id)
    except RunRequestError as exc:
        raise CliError(str(exc)) from None
    shown = {**view.model_dump(mode="json"), "usage": _usage(ctx, run_id)}

    def text(v: dict) -> str:
        line = (
            f"run {v['run_id']} (tenant {v['tenant_id']}): {v['phase']} {v['status']}, "
            f"step {v['step_index']}/{v['steps_total']}, cost {v['cost']}"
        )
        if v["pause"]:
            p = v["pause"]
            line += (
                f"\n  paused ({p['reason']}) by {p['paused_by']}, SLA until {p['sla_deadline']}, "
                f"resumable by {', '.join(p['resumable_by'])}"
            )
        if v["failure_reason"]:
            line += f"\n  reason: {v['failure_reason']}"
        return "\n  ".join([line, *usage_lines(v["usage"])])

    output(as_json, shown, text)


def _usage(ctx: Context, run_id: str) -> list[dict]:
    """The run's usage per model so far, from its trace (none without a database here)."""
    try:
        with ctx.existing_sessions() as session:
            return [u.model_dump(mode="json") for u in run_usage(session, run_id)]
    except CliError:
        return []


@command(app, "pause", help="pause a run")
async def pause(
    ctx: Context,
    run_id: RunId,
    actor: Actor = "operator",
    authority: ActorAuthority = Authority.TENANT_ADMIN,
    reason: Annotated[PauseReason, typer.Option()] = PauseReason.MANUAL_PAUSE,
) -> None:
    await control(ctx, "pause", run_id, actor, authority, reason)


@command(app, "resume", help="resume a paused run")
async def resume(
    ctx: Context,
    run_id: RunId,
    actor: Actor = "operator",
    authority: ActorAuthority = Authority.TENANT_ADMIN,
) -> None:
    await control(ctx, "resume", run_id, actor, authority, None)


@command(app, "stop", help="stop a run")
async def stop(
    ctx: Context,
    run_id: RunId,
    actor: Actor = "operator",
    authority: ActorAuthority = Authority.TENANT_ADMIN,
    reason: Annotated[str, typer.Option()] = "stopped by operator",
) -> None:
    await control(ctx, "stop", run_id, actor, authority, reason)


@command(app, "approve", help="approve the step a run holds (APPROVAL_REQUIRED; its digest: "
         "starter.py status RUN_ID)")  # fmt: skip
async def approve(
    ctx: Context,
    run_id: RunId,
    digest: Annotated[str, typer.Option(help="the digest of the step awaited (64 hex)")],
    actor: Actor = "operator",
    authority: ActorAuthority = Authority.TENANT_ADMIN,
) -> None:
    await control(ctx, "approve", run_id, actor, authority, None, digest=digest)


async def control(
    ctx: Context,
    signal: str,
    run_id: str,
    actor: str,
    authority: str,
    reason: str | None,
    digest: str | None = None,
) -> None:
    """The run's control Update: its answer, or its refusal with the reason (audited; exit
    1; nothing reaches the run's history)."""
    payload: dict[str, Any] = {"actor": {"id": actor, "authority": authority}}
    if signal in ("pause", "stop"):
        payload["reason"] = reason
    if digest is not None:
        payload["digest"] = digest
    client = await ctx.client()
    update_id = f"{signal}-{uuid.uuid4().hex}"
    try:
        view = await control_run(client, run_id, signal, payload, update_id=update_id)
    except ControlRefusedError as exc:
        control_service.record_refused_update(ctx.sessions, run_id, update_id, signal, actor,
                                              authority, str(exc))  # fmt: skip
        raise CliError(f"run {run_id} refuses the {signal}: {exc}") from None
    except RunRequestError as exc:
        raise CliError(str(exc)) from None
    if view is None:
        print(f"sent {signal} to run {run_id} as a signal (no worker has run it yet: it "
              "applies at its next step)")  # fmt: skip
    else:
        print(f"{signal} accepted by run {run_id}: {_state(view)}")


def _state(view: RunStatusView) -> str:
    state = f"{view.phase} {view.status}"
    if view.pause_requested:
        state += ", pauses at its next step"
    if view.stop_requested:
        state += ", stops at its next step"
    return state


@command(app, "demo", help="run the demo scenario against a running worker")
async def demo(ctx: Context, as_json: Json = False) -> None:
    from cli.demo import run_demo_with

    results = await run_demo_with(await ctx.client(), ctx.sessions, ctx.settings)
    output(as_json, results, lambda rs: "\n".join(f"{k}: {v}" for k, v in rs.items()))
