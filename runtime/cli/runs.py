"""Run commands: start, status, list, pause, resume, stop, demo."""

import argparse
import json
from pathlib import Path
from typing import Any

from clients.runs import RunRequestError, run_status, signal_run, start_run
from domain.enums import Authority, PauseReason, Phase
from domain.models import RunStatusView
from runtime.cli.context import CliError, Context, add_json_flag, output, tenant_hint
from services import tenants
from services.errors import AdminError


def parse_step(text: str) -> dict[str, Any]:
    """SKILL or SKILL:JSON-INPUT, e.g. echo:'{"text":"hi"}'."""
    skill, _, raw = text.partition(":")
    try:
        data = json.loads(raw) if raw else {}
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"step {text!r}: input is not JSON ({exc.msg})") from None
    return {"skill": skill, "input": data}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("start", help="start a run (steps from --step flags or --file)")
    p.add_argument("--tenant", help="tenant id")
    p.add_argument("--run-id", help="run id (default: generated)")
    p.add_argument("--step", action="append", type=parse_step, default=[], metavar="SKILL:JSON")
    p.add_argument("--file", type=Path, help="JSON file with the whole run input")
    p.add_argument("--budget", help="budget for this run")
    p.add_argument("--wait", action="store_true", help="wait for the run to end")
    add_json_flag(p)
    p.set_defaults(handler=start)

    p = sub.add_parser("status", help="a run's phase, status, step and pause state")
    p.add_argument("run_id")
    add_json_flag(p)
    p.set_defaults(handler=status)

    for name, helptext in (("pause", "pause a run"), ("resume", "resume a paused run"),
                           ("stop", "stop a run")):  # fmt: skip
        p = sub.add_parser(name, help=helptext)
        p.add_argument("run_id")
        p.add_argument("--actor", default="operator", help="who acts (default: operator)")
        p.add_argument(
            "--authority", default=Authority.TENANT_ADMIN, choices=[a.value for a in Authority]
        )
        if name == "pause":
            p.add_argument(
                "--reason", default=PauseReason.MANUAL_PAUSE, choices=[r.value for r in PauseReason]
            )
        if name == "stop":
            p.add_argument("--reason", default="stopped by operator")
        p.set_defaults(handler=control, signal=name)

    p = sub.add_parser("demo", help="run the demo scenario against a running worker")
    add_json_flag(p)
    p.set_defaults(handler=demo)


def build_payload(args: argparse.Namespace) -> dict[str, Any]:
    if args.file:
        try:
            payload = json.loads(args.file.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise CliError(f"--file {args.file}: {exc}") from None
        if not isinstance(payload, dict):
            raise CliError(f"--file {args.file}: expected a JSON object")
    else:
        payload = {}
    if args.tenant:
        payload["tenant_id"] = args.tenant
    if args.step:
        payload["steps"] = args.step
    if args.budget is not None:
        payload["budget"] = args.budget
    if args.run_id:
        payload["run_id"] = args.run_id
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


async def start(ctx: Context, args: argparse.Namespace) -> None:
    payload = build_payload(args)
    require_tenant(ctx, payload.get("tenant_id"))
    client = await ctx.client()
    try:
        handle = await start_run(client, ctx.settings.task_queue, payload)
    except RunRequestError as exc:
        raise CliError(str(exc)) from None
    run_id = handle.id.removeprefix("run-")
    if not args.wait:
        output(
            args, {"run_id": run_id, "workflow_id": handle.id}, lambda d: f"started run {run_id}"
        )
        return
    result = await handle.result()
    output(args, result, lambda r: f"run {run_id}: {r['phase']} {r['status']} {r['reason'] or ''}")
    if result.phase != Phase.COMPLETED:
        raise CliError(f"run {run_id} ended {result.phase} {result.status}: {result.reason}")


async def status(ctx: Context, args: argparse.Namespace) -> None:
    try:
        view = await run_status(await ctx.client(), args.run_id)
    except RunRequestError as exc:
        raise CliError(str(exc)) from None

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
        return line

    output(args, view, text)


async def control(ctx: Context, args: argparse.Namespace) -> None:
    actor = {"id": args.actor, "authority": args.authority}
    payload: dict[str, Any] = {"actor": actor}
    if args.signal in ("pause", "stop"):
        payload["reason"] = args.reason
    client = await ctx.client()
    refusal = None
    try:
        if args.signal == "resume":
            refusal = resume_refusal(await run_status(client, args.run_id), args.authority)
        await signal_run(client, args.run_id, args.signal, payload)
    except RunRequestError as exc:
        raise CliError(str(exc)) from None
    print(f"sent {args.signal} to run {args.run_id}")
    if refusal is not None:  # sent all the same: the run refuses it and audits the refusal
        raise CliError(f"run {args.run_id} refuses the resume: {refusal}")


def resume_refusal(view: RunStatusView, authority: str) -> str | None:
    """Why the run will refuse a resume from ``authority`` (as the HTTP API checks it)."""
    if view.pause is None:
        return None
    if authority not in view.pause.resumable_by:
        allowed = ", ".join(view.pause.resumable_by)
        return f"{authority} may not resume a {view.pause.reason} pause (allowed: {allowed})"
    return None


async def demo(ctx: Context, args: argparse.Namespace) -> None:
    from runtime.demo import run_demo_with

    results = await run_demo_with(await ctx.client(), ctx.sessions, ctx.settings)
    output(args, results, lambda rs: "\n".join(f"{k}: {v}" for k, v in rs.items()))
