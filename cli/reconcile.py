"""Reconciliation and alert commands: reconcile, findings, alerts (and their deliveries to
alert sinks), alert-settings, events."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

from cli.context import CliError, Context, Json, command, exclusive, output
from db.queries.alerts import list_alerts, list_findings, list_suppressed
from db.queries.deliveries import delivery_stats, failing_deliveries
from db.queries.sinks import list_attempts
from domain.reconcile_messages import ReconcileInput, ReconcileSummary
from runtime.schedules import RECONCILE_SCHEDULE_ID, update_reconcile_schedule
from services.alerts import save_tenant_settings
from services.ledger import utcnow

app = typer.Typer()


def parse_cooldown(text: str) -> tuple[str, int]:
    domain, _, seconds = text.partition("=")
    if not domain or not seconds.isdigit():
        raise typer.BadParameter(f"--cooldown {text!r}: expected DOMAIN=SECONDS")
    return domain, int(seconds)


Tenant = Annotated[str | None, typer.Option(help="only this tenant")]
Limit = Annotated[int, typer.Option()]


def _run_line(r: dict) -> str:
    pairs = {k: ", ".join(f"{d}/{a}" for d, a in r[k]) for k in ("missing", "drift", "overdue")}
    line = f"  run {r['run_id']} (tenant {r['tenant_id']}): {r['verdict']}"
    line += f" (workflow {r['workflow_state']})"
    if r.get("cause") and r["verdict"] == "STALE":
        line += f"\n    cause: {r['cause']}" + ("; run row failed" if r.get("run_failed") else "")
    for key in ("missing", "drift", "overdue"):
        if pairs[key]:
            line += f"\n    {key}: {pairs[key]}"
    return line


def _summary_text(s: dict) -> str:
    t = s["totals"]
    head = (
        f"reconciled as of {s['as_of']}: {t['runs_checked']} runs checked, "
        f"{t['stale']} stale, {t['late']} late, {t['incomplete']} incomplete; "
        f"{t['findings_new']} new findings; {t.get('open_runs_checked', 0)} open runs "
        f"cross-checked, {t.get('runs_failed', 0)} failed as stale"
    )
    return "\n".join([head, *(_run_line(r) for r in s["reports"])] + [_purge_line(s)])


def _purge_line(s: dict) -> str:
    """purged expired rows: outbox_events 3, event_deliveries 6, ... (in 4 pages); …"""
    purged = s.get("purged") or {}
    rows = ", ".join(f"{table} {n}" for table, n in purged.items())
    pages = s.get("purge_pages", 0)
    head = (f"purged expired rows: {rows} (in {pages} page{'' if pages == 1 else 's'})"
            if any(purged.values()) else "purged expired rows: none")  # fmt: skip
    return f"{head}; orchestration-log entries: {s.get('purged_log_entries', 0)}"


@command(app, "reconcile", help="reconcile now (needs a worker) and print the findings")
async def reconcile(
    ctx: Context,
    trigger: Annotated[
        bool,
        typer.Option(
            "--trigger",
            help=f"trigger the schedule {RECONCILE_SCHEDULE_ID} instead of running once and "
            "waiting",
        ),
    ] = False,
    timeout: Annotated[
        float, typer.Option(help="seconds to wait (default 300)", show_default=False)
    ] = 300,
    update_schedule: Annotated[
        bool,
        typer.Option(
            "--update-schedule",
            help=f"apply these settings to the schedule {RECONCILE_SCHEDULE_ID} (workers "
            "create it but never change it), keeping whether it is paused",
        ),
    ] = False,
    as_json: Json = False,
) -> None:
    client = await ctx.client()
    if update_schedule:
        done = await update_reconcile_schedule(client, ctx.settings)
        print(f"schedule {RECONCILE_SCHEDULE_ID} {done}: every "
              f"{ctx.settings.reconcile_interval_seconds:g} s on task queue "
              f"{ctx.settings.task_queue}")  # fmt: skip
        return
    if trigger:
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
        summary = await asyncio.wait_for(handle.result(), timeout)
    except TimeoutError:
        raise CliError(
            f"{handle.id} did not finish within {timeout:g}s; is a worker running on "
            f"task queue {ctx.settings.task_queue}?"
        ) from None
    output(as_json, summary, _summary_text)


@command(app, "findings", help="reconciliation findings, newest first")
async def findings(
    ctx: Context,
    tenant: Tenant = None,
    run_id: Annotated[str | None, typer.Option("--run", help="only this run")] = None,
    limit: Limit = 50,
    as_json: Json = False,
) -> None:
    with ctx.existing_sessions() as session:
        rows = list_findings(session, tenant, run_id, limit)

    def text(rs: list[dict]) -> str:
        lines = [
            f"{r['found_at']} {r['severity']:6} {r['kind']:8} run {r['run_id']} "
            f"{r['domain']}/{r['action']}" + (f" ({r['cause']})" if r["cause"] else "")
            for r in rs
        ]
        return "\n".join(lines) or "no findings"

    output(as_json, rows, text)


@command(app, "alerts", help="alerts, newest first (--suppressed: held back, and why; "
         "--deliveries: every attempt to send one to a sink)")  # fmt: skip
async def alerts(
    ctx: Context,
    tenant: Tenant = None,
    suppressed: Annotated[
        bool,
        typer.Option("--suppressed", help="list suppressed alerts",
                     callback=exclusive("suppressed", "deliveries")),
    ] = False,
    deliveries: Annotated[
        bool,
        typer.Option("--deliveries", help="list delivery attempts to alert sinks",
                     callback=exclusive("suppressed", "deliveries")),
    ] = False,
    sink: Annotated[str | None, typer.Option(help="with --deliveries: only this sink")] = None,
    limit: Limit = 50,
    as_json: Json = False,
) -> None:  # fmt: skip
    if sink is not None and not deliveries:
        raise CliError("--sink: only with --deliveries")
    with ctx.existing_sessions() as session:
        if deliveries:
            rows = [{**a.model_dump(), "attempted_at": a.attempted_at.isoformat()}
                    for a in list_attempts(session, tenant, sink, limit)]  # fmt: skip
        else:
            rows = (list_suppressed if suppressed else list_alerts)(session, tenant, limit)

    def text(rs: list[dict]) -> str:
        if deliveries:
            lines = [_attempt_line(r) for r in rs]
            return "\n".join(lines) or "no delivery attempts"
        if suppressed:
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

    output(as_json, rows, text)


def _attempt_line(r: dict) -> str:
    """time [tenant] sink (kind) ALERT_TYPE alert-id #attempt: OUTCOME status (error) ms"""
    status = f" {r['status_code']}" if r["status_code"] is not None else ""
    error = f" ({r['error']})" if r["error"] else ""
    return (
        f"{r['attempted_at']} [{r['tenant_id']}] {r['sink_name']} ({r['sink_kind']}) "
        f"{r['alert_type']} {r['alert_id'][:8]} #{r['attempt']}: {r['outcome']}{status}{error} "
        f"{r['duration_ms']} ms"
    )


@command(app, "alert-settings", help="set a tenant's alert settings")
async def alert_settings(
    ctx: Context,
    tenant: Annotated[str, typer.Option()],
    enable: Annotated[
        bool, typer.Option("--enable", callback=exclusive("enable", "disable"))
    ] = False,
    disable: Annotated[
        bool, typer.Option("--disable", callback=exclusive("enable", "disable"))
    ] = False,
    max_per_hour: Annotated[int | None, typer.Option(help="cap of alerts per hour")] = None,
    dedup_window: Annotated[
        int | None, typer.Option(help="seconds within which a repeat is dropped")
    ] = None,
    cooldown: Annotated[
        list[tuple] | None, typer.Option(parser=parse_cooldown, metavar="DOMAIN=S")
    ] = None,
    as_json: Json = False,
) -> None:
    try:
        saved = save_tenant_settings(
            ctx.sessions,
            tenant,
            alerts_enabled=True if enable else False if disable else None,
            max_alerts_per_hour=max_per_hour,
            dedup_window_seconds=dedup_window,
            domain_cooldowns=dict(cooldown or []),
        )
    except ValueError as exc:
        raise CliError(str(exc)) from None
    output(as_json, saved, lambda s: f"alert settings of {s['tenant_id']}: {s}")


@command(app, "events", help="event delivery latency, backlog and reactor health")
async def events(
    ctx: Context,
    window: Annotated[int, typer.Option(help="seconds of deliveries to measure")] = 3600,
    as_json: Json = False,
) -> None:
    settings = ctx.settings
    max_age = timedelta(
        seconds=settings.reactor_heartbeat_interval_seconds
        * settings.reactor_heartbeat_miss_threshold
    )
    with ctx.existing_sessions() as session:
        stats = delivery_stats(session, utcnow(), timedelta(seconds=window), max_age)
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

    output(as_json, stats, text)
