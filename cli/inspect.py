"""Inspect commands: a run's evidence, the proof of its trace, its governance log."""

from collections.abc import Callable
from typing import Annotated, Any

import typer

from cli.context import CliError, Context, Json, command, output
from db.queries.evidence import UnknownRunError, governance_log, run_evidence, run_proof

app = typer.Typer()

RunId = Annotated[str, typer.Argument()]


def _read(ctx: Context, query: Callable[..., Any], run_id: str) -> Any:
    with ctx.existing_sessions() as session:
        try:
            return query(session, run_id)
        except UnknownRunError as exc:
            raise CliError(str(exc)) from None


def _mark(row: dict) -> str:
    return " [ROLLED BACK]" if row.get("rolled_back") else ""


def evidence_text(e: dict) -> str:
    lines = [f"run {e['run_id']} (tenant {e['tenant_id']}): {e['phase']} {e['status']}"]
    lines.append(f"incidents caused: {len(e['incidents'])}")
    lines += [
        f"  - {i['id']}: {i['title']} ({i['severity']}, {i['status']}){_mark(i)}"
        for i in e["incidents"]
    ]
    records = [(ev, r) for ev in e["policy_evaluations"] for r in ev["prevention_records"]]
    breaches = [b for ev in e["policy_evaluations"] for b in ev["limit_breaches"]]
    for ev in e["policy_evaluations"]:
        lines.append(f"policy evaluation {ev['id']}: {ev['outcome']} ({ev['status']}){_mark(ev)}")
    lines.append(f"policies evaluated: {len(records)}")
    lines += [
        f"  - {r['rule_name']} -> {r['outcome']}: {r['reason']}{_mark(r)}" for _, r in records
    ]
    lines.append(f"limits hit: {len(breaches)}")
    lines += [
        f"  - {b['limit_type']}: breach={b['value']}, threshold={b['threshold']}{_mark(b)}"
        for b in breaches
    ]
    d = e["decisions"]
    auth = d["authorization"]
    lines.append("decisions made:")
    lines.append(f"  - AUTHORIZATION -> {auth['decision']} ({auth['reason']})")
    lines += [
        f"  - POLICY_CHECK before step {c['step_index']} -> {c['decision']}"
        + (f" ({', '.join(c['violations'])})" if c["violations"] else "")
        for c in d["policy_checks"]
    ]
    lines += [
        f"  - PAUSE ({p['reason']}) by {p['paused_by']} ({p['paused_by_authority']}) -> "
        f"{p['resolution'] or 'unresolved'}"
        + (f" by {p['resolved_by']}" if p["resolved_by"] else "")
        for p in d["pauses"]
    ]
    lines += [
        f"  - {c['kind']} by {c['actor_id']} ({c['actor_authority']}): {c['reason']}"
        for c in d["control"]
    ]
    lines += [
        f"  - PROMOTION of candidate {p['candidate_id']} -> {p['decision']} "
        f"({p['policy']}, {p['authority_type']} {p['authority_id']})"
        for p in d["promotions"]
    ]
    lines += usage_lines(e.get("usage") or [])
    return "\n".join(lines)


def usage_lines(usage: list[dict]) -> list[str]:
    """The run's usage per model (db.queries.evidence.run_usage), one line each."""
    return [
        f"usage {u['model']}: {u['calls']} calls" + (f" ({u['failed']} failed)" if u["failed"]
                                                     else "")
        + f", {u['input_tokens']} input and {u['output_tokens']} output tokens, cost {u['cost']}"
        for u in usage
    ]  # fmt: skip


def proof_text(p: dict) -> str:
    line = f"run {p['run_id']}: {p['status']}"
    if p["method"]:
        line += f" (method {p['method']}"
        if p["step_count"] is not None:
            line += f", {p['step_count']} steps, head {p['head_hash']}"
        line += ")"
    if p["stored_head_matches"] is not None:
        matches = "match" if p["stored_head_matches"] else "MISMATCH"
        line += f"\n  stored trace head and step count: {matches}"
    if p["failed_step"] is not None:
        line += f"\n  first failing step: {p['failed_step']}"
    if p["reason"]:
        line += f"\n  reason: {p['reason']}"
    return line


def governance_text(g: dict) -> str:
    meta = g["metadata"]
    lines = [
        f"run {g['run_id']} (tenant {meta['tenant_id']}): {g['total_events']} events "
        f"from {meta['source_component']} (immutable)"
    ]
    lines += [
        f"  {e['seq']:>3} {e['created_at']} {e['event_type']} {e['entity_type']}/{e['entity_id']} "
        f"by {e['actor_id']} ({e['actor_authority']}) via {e['source']}"
        for e in g["events"]
    ]
    return "\n".join(lines)


@command(app, "evidence", help="incidents, policy outcomes, limit breaches and decisions of a run")
async def evidence(ctx: Context, run_id: RunId, as_json: Json = False) -> None:
    output(as_json, _read(ctx, run_evidence, run_id), evidence_text)


@command(app, "proof", help="verify a run's trace hash chain (VERIFIED / FAILED / UNSUPPORTED)")
async def proof(ctx: Context, run_id: RunId, as_json: Json = False) -> None:
    proved = _read(ctx, run_proof, run_id)
    output(as_json, proved, proof_text)
    if proved.status == "FAILED":
        raise CliError(f"run {run_id}: proof FAILED at step {proved.failed_step}")


@command(app, "governance", help="the audit-ledger entries of a run, in order")
async def governance(ctx: Context, run_id: RunId, as_json: Json = False) -> None:
    output(as_json, _read(ctx, governance_log, run_id), governance_text)
