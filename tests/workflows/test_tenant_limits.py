"""Fair limits on every start path: a tenant at its runs-in-flight limit is refused when a
run opens (the HTTP API answers 429 before starting: tests/api/test_api_limits.py); a run
of a tenant at its steps-in-flight limit waits for a slot while other tenants go on."""

import asyncio
import json

import pytest
from sqlalchemy import update

from db.models import AuditLedgerEntry, Run, StepSlot, Tenant
from domain.enums import AuthorizationDecision, RunStatus
from tests.helpers import count, echo_steps, new_tenant, rows, running_worker, start_run
from tests.local_servers import local_server
from tests.security_servers import allow_egress

pytestmark = pytest.mark.timeout(120)

ADMIN = {"id": "ops-1", "authority": "TENANT_ADMIN"}


def set_limits(sessions, tenant_id: str, **limits: int | None) -> None:
    with sessions.begin() as session:
        session.execute(update(Tenant).where(Tenant.id == tenant_id).values(**limits))


async def wait_status(handle, status: str) -> None:
    for _ in range(200):
        if (await handle.query("status"))["status"] == status:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{handle.id} never reached {status}")


async def test_a_tenant_at_its_runs_in_flight_limit_is_refused_at_open(
    dev_env, settings, sessions, task_queue, run_id
):
    tenant = new_tenant(sessions)
    set_limits(sessions, tenant, max_runs_in_flight=1)
    payload = {"tenant_id": tenant, "steps": echo_steps(1)}
    async with running_worker(dev_env.client, settings, sessions, task_queue):
        first = await start_run(
            dev_env.client, task_queue, run_id, {**payload, "run_id": run_id},
            start_signal="pause", start_signal_args=[{"actor": ADMIN}],
        )  # fmt: skip
        await wait_status(first, "paused")
        second_id = f"{run_id}-2"
        second = await start_run(
            dev_env.client, task_queue, second_id, {**payload, "run_id": second_id}
        )
        refused = await second.result()
        assert refused.status == RunStatus.FAILED_POLICY
        assert f"tenant {tenant!r} has 1 runs in flight, its limit is 1" in refused.reason
        (row,) = rows(sessions, Run, id=second_id)
        assert row.authorization_decision == AuthorizationDecision.DENIED
        await first.signal("resume", {"actor": ADMIN})
        assert (await first.result()).status == RunStatus.SUCCEEDED
        third_id = f"{run_id}-3"
        third = await start_run(
            dev_env.client, task_queue, third_id, {**payload, "run_id": third_id}
        )
        assert (await third.result()).status == RunStatus.SUCCEEDED


async def test_cli_tenant_set_limits_is_audited_and_refuses_bad_values(
    dev_env, settings, sessions, monkeypatch, capsys
):
    from cli.main import main

    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("TEMPORAL_ADDRESS", dev_env.client.service_client.config.target_host)
    tenant = new_tenant(sessions)

    def cli(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    code, out, err = await asyncio.to_thread(
        cli, "tenant", "set-limits", tenant, "--runs-in-flight", "5", "--steps-in-flight", "2"
    )
    assert (code, err) == (0, "")
    assert out == f"tenant {tenant}: runs in flight 5; steps in flight 2\n"
    (audit,) = rows(
        sessions, AuditLedgerEntry, tenant_id=tenant, event_type="TENANT_FLIGHT_LIMITS_UPDATED"
    )
    assert audit.before_state == {"max_runs_in_flight": None, "max_steps_in_flight": None}
    assert audit.after_state == {"max_runs_in_flight": 5, "max_steps_in_flight": 2}
    assert rows(sessions, Tenant, id=tenant)[0].max_steps_in_flight == 2
    for argv, needle in (
        (["--runs-in-flight", "0"], "runs in flight: must be between 1 and"),
        (["--steps-in-flight", "many"], "--steps-in-flight: 'many' is not a whole number"),
        ([], "nothing to change"),
    ):
        code, out, err = await asyncio.to_thread(cli, "tenant", "set-limits", tenant, *argv)
        assert (code, out) == (1, "") and needle in err, err
    code, _, err = await asyncio.to_thread(
        cli, "tenant", "set-limits", "nobody", "--runs-in-flight", "1"
    )
    hint = "(create it: starter.py tenant add nobody)"
    assert (code, err) == (1, f"error: unknown tenant 'nobody' {hint}\n")
    code, out, _ = await asyncio.to_thread(
        cli, "tenant", "set-limits", tenant, "--runs-in-flight", "default", "--json"
    )
    assert json.loads(out) == {"max_runs_in_flight": None, "max_steps_in_flight": 2}


async def timers_started(handle) -> int:
    events = [e async for e in handle.fetch_history_events()]
    return sum(1 for e in events if e.HasField("timer_started_event_attributes"))


async def test_a_tenant_at_its_steps_in_flight_limit_waits_and_others_go_on(
    dev_env, settings, sessions, task_queue, run_id
):
    busy, other = new_tenant(sessions), new_tenant(sessions)
    set_limits(sessions, busy, max_steps_in_flight=1)
    with local_server() as server:
        allow_egress(sessions, busy, server.url)
        slow = [{"skill": "http", "input": {"url": f"{server.url}/slow/1.0"}}]
        async with running_worker(dev_env.client, settings, sessions, task_queue):
            handles = [
                await start_run(
                    dev_env.client,
                    task_queue,
                    f"{run_id}-b{i}",
                    {"run_id": f"{run_id}-b{i}", "tenant_id": busy, "steps": slow},
                )  # fmt: skip
                for i in range(3)
            ]
            held: list[int] = []

            async def watch_slots() -> None:
                while True:
                    held.append(count(sessions, StepSlot, tenant_id=busy))
                    await asyncio.sleep(0.05)

            watcher = asyncio.create_task(watch_slots())
            try:
                other_id = f"{run_id}-a"
                quick = await start_run(
                    dev_env.client, task_queue, other_id,
                    {"run_id": other_id, "tenant_id": other, "steps": echo_steps(1)},
                )  # fmt: skip
                assert (await quick.result()).status == RunStatus.SUCCEEDED
                # The other tenant finished while the busy tenant still waits for its slot.
                open_busy = [h for h in handles if (await h.describe()).status.name == "RUNNING"]
                assert open_busy, "every run of the busy tenant ended before the other's"
                results = [await h.result() for h in handles]
            finally:
                watcher.cancel()
    assert [r.status for r in results] == [RunStatus.SUCCEEDED] * 3
    assert max(held) == 1, held  # never two steps of the tenant in flight at once
    waited = [await timers_started(h) for h in handles]
    assert sum(1 for n in waited if n > 0) >= 2, waited  # two of three runs had to wait
    assert count(sessions, StepSlot, tenant_id=busy) == 0  # every slot given back
    assert server.hits.count("/slow/1.0") == 3  # each step ran once
