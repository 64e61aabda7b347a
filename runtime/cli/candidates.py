"""Candidate commands: submit, promote (manual, human authority), show, list.

These are the operator's own tools: they talk to the database and to Temporal directly,
so ``promote --authority`` is the operator's word (the HTTP API takes the authority from
the API key instead). ``submit`` is held to the tenant's promotion limits like the API.
"""

import argparse
import json
import sys
from typing import Any

from temporalio.client import WorkflowFailureError

from clients.candidates import (
    list_candidates,
    promote_candidate,
    show_candidate,
    submit_candidate,
)
from domain.candidates import HUMAN_AUTHORITIES, AuthorityType, CandidateStatus
from runtime.cli.context import CliError, Context, add_json_flag, output
from services.errors import CandidateRequestError


def register(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("candidate", help="incident candidates").add_subparsers(
        dest="candidate_command", required=True
    )
    p = group.add_parser("submit", help="submit a candidate (CandidateCreated JSON) for promotion")
    p.add_argument("file", help="JSON file with the candidate, or - for stdin")
    p.add_argument("--wait", action="store_true", help="wait for the promotion decision")
    add_json_flag(p)
    p.set_defaults(handler=submit)

    p = group.add_parser(
        "promote", help="promote a DEFERRED candidate manually (operator: trusted authority)"
    )
    p.add_argument("candidate_id")
    p.add_argument("--actor", required=True, help="who promotes (a person)")
    p.add_argument(
        "--authority",
        default=AuthorityType.HUMAN_OPERATOR,
        choices=[a.value for a in HUMAN_AUTHORITIES],
        help="the human authority the operator promotes with (default HUMAN_OPERATOR)",
    )
    p.add_argument("--justification", help="why (default: 'manual promotion by ACTOR')")
    add_json_flag(p)
    p.set_defaults(handler=promote)

    p = group.add_parser("show", help="a candidate, its decisions and orchestration attempts")
    p.add_argument("candidate_id")
    add_json_flag(p)
    p.set_defaults(handler=show)

    p = group.add_parser("list", help="list candidates (newest first)")
    p.add_argument("--status", choices=[s.value for s in CandidateStatus])
    add_json_flag(p)
    p.set_defaults(handler=list_)


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


async def submit(ctx: Context, args: argparse.Namespace) -> None:
    payload = read_payload(args.file)
    try:
        submitted, handle = await submit_candidate(
            await ctx.client(), ctx.sessions, ctx.settings.task_queue, payload,
            default_max_signal_count=ctx.settings.max_signal_count,
        )  # fmt: skip
    except CandidateRequestError as exc:
        raise CliError(str(exc)) from None
    if not args.wait:
        verb = "already submitted; joined" if submitted.duplicate else "submitted:"
        output(
            args, submitted, lambda s: f"candidate {s['candidate_id']} {verb} {s['workflow_id']}"
        )
        return
    try:
        result = await handle.result()
    except WorkflowFailureError as exc:
        raise CliError(
            f"candidate {submitted.candidate_id}: promotion failed: {exc.cause}"
        ) from None
    output(args, result, _decision_line)


async def promote(ctx: Context, args: argparse.Namespace) -> None:
    try:
        result = await promote_candidate(
            await ctx.client(),
            ctx.sessions,
            ctx.settings.task_queue,
            args.candidate_id,
            actor=args.actor,
            authority_type=args.authority,
            justification=args.justification,
        )
    except CandidateRequestError as exc:
        raise CliError(str(exc)) from None
    output(args, result, _decision_line)


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


async def show(ctx: Context, args: argparse.Namespace) -> None:
    try:
        view = show_candidate(ctx.existing_sessions, args.candidate_id)
    except CandidateRequestError as exc:
        raise CliError(str(exc)) from None
    output(args, view, _show_text)


async def list_(ctx: Context, args: argparse.Namespace) -> None:
    views = [v.model_dump(mode="json") for v in list_candidates(ctx.existing_sessions, args.status)]
    output(args, views, lambda vs: "\n".join(
        f"{v['candidate_id']}: {v['status']} {v['severity']} {v['service']} "
        f"policy {v['policy'] or '(none)'} incident {v['incident_id'] or '-'}" for v in vs)
        or "no candidates")  # fmt: skip
