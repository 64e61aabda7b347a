"""Reconciliation and alert commands: reconcile, findings, alerts, alert-settings, events."""

import argparse
import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from db.queries.alerts import list_alerts, list_findings, list_suppressed
from db.queries.deliveries import delivery_stats, failing_deliveries
from domain.reconcile_messages import ReconcileInput, ReconcileSummary
from runtime.cli.context import CliError, Context, add_json_flag, output
from runtime.schedules import RECONCILE_SCHEDULE_ID
from services.alerts import save_tenant_settings
from services.ledger import utcnow


def cooldown(text: str) -> tuple[str, int]:
    domain, _, seconds = text.partition("=")
    if not domain or not seconds.isdigit():
        raise argparse.ArgumentTypeError(f"--cooldown {text!r}: expected DOMAIN=SECONDS")
    return domain, int(seconds)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reconcile", help="reconcile now (needs a worker) and print the findings")
    p.add_argument(
        "--trigger",
        action="store_true",
        help=f"trigger the schedule {RECONCILE_SCHEDULE_ID} instead of running once and waiting",
    )
    p.add_argument("--timeout", type=float, default=300, help="seconds to wait (default 300)")
    add_json_flag(p)
    p.set_defaults(handler=reconcile)

    p = sub.add_parser("findings", help="reconciliation findings, newest first")
    p.add_argument("--tenant", help="only this tenant")
    p.add_argument("--run", dest="run_id", help="only this run")
    p.add_argument("--limit", type=int, default=50)
    add_json_flag(p)
    p.set_defaults(handler=findings)

    p = sub.add_parser("alerts", help="alerts, newest first (--suppressed: held back, and why)")
    p.add_argument("--tenant", help="only this tenant")
    p.add_argument("--suppressed", action="store_true", help="list suppressed alerts")
    p.add_argument("--limit", type=int, default=50)
    add_json_flag(p)
    p.set_defaults(handler=alerts)

    p = sub.add_parser("alert-settings", help="set a tenant's alert settings")
    p.add_argument("--tenant", required=True)
    on_off = p.add_mutually_exclusive_group()
    on_off.add_argument("--enable", dest="enabled", action="store_true", default=None)
    on_off.add_argument("--disable", dest="enabled", action="store_false")
    p.add_argument("--max-per-hour", type=int, help="cap of alerts per hour")
    p.add_argument("--dedup-window", type=int, help="seconds within which a repeat is dropped")
    p.add_argument("--cooldown", type=cooldown, action="append", default=[], metavar="DOMAIN=S")
    add_json_flag(p)
    p.set_defaults(handler=alert_settings)

    p = sub.add_parser("events", help="event delivery latency, backlog and reactor health")
    p.add_argument("--window", type=int, default=3600, help="seconds of deliveries to measure")
    add_json_flag(p)
    p.set_defaults(handler=events)


def _run_line(r: dict) -> str:
    pairs = {k: ", ".join(f"{d}/{a}" for d, a in r[k]) for k in ("missing", "drift", "overdue")}
    line = f"  run {r['run_id']} (tenant {r['tenant_id']}): {r['verdict']}"
    line += f" (workflow {r['workflow_state']})"
    for key in ("missing", "drift", "overdue"):
        if pairs[key]:
            line += f"\n    {key}: {pairs[key]}"
    return line


def _summary_text(s: dict) -> str:
    t = s["totals"]
    head = (
        f"reconciled as of {s['as_of']}: {t['runs_checked']} runs checked, "
        f"{t['stale']} stale, {t['late']} late, {t['incomplete']} incomplete; "
        f"{t['findings_new']} new findings"
    )
    return "\n".join([head, *(_run_line(r) for r in s["reports"])])


async def reconcile(ctx: Context, args: argparse.Namespace) -> None:
    client = await ctx.client()
    if args.trigger:
        await client.get_schedule_handle(RECONCILE_SCHEDULE_ID).trigger()
        print(f"triggered schedule {RECONCILE_SCHEDULE_ID}")
        return
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    handle = await client.start_workflow(
        "ReconcileWorkflow",
        ReconcileInput(
            page_size=ctx.settings.reconcile_page_size,
            ack_lookback_seconds=ctx.settings.reconcile_ack_lookback_seconds,
        ),
        id=f"reconcile-manual-{stamp}-{uuid.uuid4().hex[:6]}",
        task_queue=ctx.settings.task_queue,
        result_type=ReconcileSummary,
    )
    try:
        summary = await asyncio.wait_for(handle.result(), args.timeout)
    except TimeoutError:
        raise CliError(
            f"{handle.id} did not finish within {args.timeout:g}s; is a worker running on "
            f"task queue {ctx.settings.task_queue}?"
        ) from None
    output(args, summary, _summary_text)


async def findings(ctx: Context, args: argparse.Namespace) -> None:
    with ctx.existing_sessions() as session:
        rows = list_findings(session, args.tenant, args.run_id, args.limit)

    def text(rs: list[dict]) -> str:
        lines = [
            f"{r['found_at']} {r['severity']:6} {r['kind']:8} run {r['run_id']} "
            f"{r['domain']}/{r['action']}" + (f" ({r['cause']})" if r["cause"] else "")
            for r in rs
        ]
        return "\n".join(lines) or "no findings"

    output(args, rows, text)


async def alerts(ctx: Context, args: argparse.Namespace) -> None:
    with ctx.existing_sessions() as session:
        reader = list_suppressed if args.suppressed else list_alerts
        rows = reader(session, args.tenant, args.limit)

    def text(rs: list[dict]) -> str:
        if args.suppressed:
            lines = [
                f"{r['created_at']} {r['alert_type']} run {r['run_id']}: {r['reason']} "
                f"({r['detail']})"
                for r in rs
            ]
        else:
            lines = [
                f"{r['created_at']} {r['severity']:6} {r['alert_type']:21} [{r['tenant_id']}] "
                f"{r['title']}"
                for r in rs
            ]
        return "\n".join(lines) or "no alerts"

    output(args, rows, text)


async def alert_settings(ctx: Context, args: argparse.Namespace) -> None:
    try:
        saved = save_tenant_settings(
            ctx.sessions,
            args.tenant,
            alerts_enabled=args.enabled,
            max_alerts_per_hour=args.max_per_hour,
            dedup_window_seconds=args.dedup_window,
            domain_cooldowns=dict(args.cooldown),
        )
    except ValueError as exc:
        raise CliError(str(exc)) from None
    output(args, saved, lambda s: f"alert settings of {s['tenant_id']}: {s}")


async def events(ctx: Context, args: argparse.Namespace) -> None:
    settings = ctx.settings
    max_age = timedelta(
        seconds=settings.reactor_heartbeat_interval_seconds
        * settings.reactor_heartbeat_miss_threshold
    )
    with ctx.existing_sessions() as session:
        stats = delivery_stats(session, utcnow(), timedelta(seconds=args.window), max_age)
        stats["failing"] = failing_deliveries(session, 20)

    def text(s: dict) -> str:
        lat = s["latency_ms"]
        lines = [
            f"delivered in the last {s['window_seconds']}s: {s['delivered']} "
            f"(latency p50 {lat['p50']} ms, p95 {lat['p95']} ms, max {lat['max']} ms)",
            f"pending: {s['pending']} (retrying {s['retrying']}, oldest event "
            f"{s['oldest_pending_event_at'] or '-'})",
        ]
        lines += [
            f"reactor {r['reactor_id']} ({r['group']}): last beat {r['beat_at']}, "
            f"{'healthy' if r['healthy'] else 'UNHEALTHY'}, delivered {r['delivered']}, "
            f"failed {r['failed']}"
            for r in s["reactors"]
        ]
        lines += [
            f"failing: {f['handler']} on {f['topic']} {f['event_id']}: {f['attempts']} attempts, "
            f"{f['last_error']}"
            for f in s["failing"]
        ]
        return "\n".join(lines)

    output(args, stats, text)
