"""The Temporal Schedule ``reconcile-stale-runs``: created by a worker that finds none, and
changed only by an operator's explicit command (``starter.py reconcile --update-schedule``).

Every RECONCILE_INTERVAL_SECONDS it starts ``ReconcileWorkflow`` on the task queue;
overlap SKIP (a reconciliation still running makes the next one skip), and a short
catch-up window so a server that was down does not replay a backlog of reconciliations.
Each run of it has its own timeout (``run_timeout``: the workflow continues as new when it
runs long, so the timeout bounds one run, never the chain). A worker never rewrites an
existing schedule — two workers of different settings would take turns at it, and an
operator's pause or note would be lost — it logs when the schedule differs from its
settings; and a Temporal that cannot be asked just now does not stop the worker.
"""

import logging
from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError

from domain.reconcile_messages import ReconcileInput
from runtime.settings import Settings

log = logging.getLogger(__name__)

RECONCILE_SCHEDULE_ID = "reconcile-stale-runs"
MIN_CATCHUP = timedelta(seconds=10)  # the server refuses a shorter window


def reconcile_schedule(settings: Settings, task_queue: str | None = None) -> Schedule:
    interval = timedelta(seconds=settings.reconcile_interval_seconds)
    return Schedule(
        action=ScheduleActionStartWorkflow(
            "ReconcileWorkflow",
            ReconcileInput(
                page_size=settings.reconcile_page_size,
                ack_lookback_seconds=settings.reconcile_ack_lookback_seconds,
            ),
            id=RECONCILE_SCHEDULE_ID,
            task_queue=task_queue or settings.task_queue,
            run_timeout=max(interval * 10, timedelta(minutes=30)),
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=interval)]),
        policy=SchedulePolicy(
            overlap=ScheduleOverlapPolicy.SKIP,
            catchup_window=max(interval, MIN_CATCHUP),
        ),
    )


async def ensure_reconcile_schedule(
    client: Client,
    settings: Settings,
    *,
    schedule_id: str = RECONCILE_SCHEDULE_ID,
    task_queue: str | None = None,
) -> str:
    """Create the schedule if there is none; leave an existing one as it is.

    Returns "created", "exists" (and logs a warning if it differs from these settings) or
    "unavailable" (Temporal refused or did not answer: logged, the worker goes on). Safe to
    call from every worker at every start.
    """
    schedule = reconcile_schedule(settings, task_queue)
    try:
        await client.create_schedule(schedule_id, schedule)
        log.info("created schedule %s", schedule_id)
        return "created"
    except ScheduleAlreadyRunningError:
        pass
    except RPCError as exc:
        log.error("schedule %s could not be created (%s); the worker goes on without "
                  "ensuring it", schedule_id, exc)  # fmt: skip
        return "unavailable"
    try:
        current = (await client.get_schedule_handle(schedule_id).describe()).schedule
    except RPCError as exc:
        log.error("schedule %s could not be read (%s)", schedule_id, exc)
        return "unavailable"
    drift = differences(current, schedule)
    if drift:
        log.warning("schedule %s differs from this worker's settings (%s); it is left as "
                    "it is: `starter.py reconcile --update-schedule` applies them",
                    schedule_id, "; ".join(drift))  # fmt: skip
    return "exists"


def differences(current: Schedule, wanted: Schedule) -> list[str]:
    """What of the settings' schedule an existing one does not have (interval, task queue,
    timeout, page size, overlap)."""
    found = []
    now_every = [i.every for i in current.spec.intervals]
    if now_every != [i.every for i in wanted.spec.intervals]:
        found.append(f"interval {now_every} instead of {[i.every for i in wanted.spec.intervals]}")
    action, want = current.action, wanted.action
    if isinstance(action, ScheduleActionStartWorkflow) and isinstance(
        want, ScheduleActionStartWorkflow
    ):
        if action.task_queue != want.task_queue:
            found.append(f"task queue {action.task_queue!r} instead of {want.task_queue!r}")
        if action.run_timeout != want.run_timeout:
            found.append(f"run timeout {action.run_timeout} instead of {want.run_timeout}")
    if current.policy.overlap != wanted.policy.overlap:
        found.append(f"overlap {current.policy.overlap.name}")
    return found


async def update_reconcile_schedule(
    client: Client,
    settings: Settings,
    *,
    schedule_id: str = RECONCILE_SCHEDULE_ID,
    task_queue: str | None = None,
) -> str:
    """The operator's command: bring the schedule in line with these settings (creating it
    if there is none), keeping its state (paused, note). Returns "created" or "updated"."""
    schedule = reconcile_schedule(settings, task_queue)
    try:
        await client.create_schedule(schedule_id, schedule)
        return "created"
    except ScheduleAlreadyRunningError:
        pass

    def update(current: ScheduleUpdateInput) -> ScheduleUpdate:
        # Keep what an operator set (paused, note); replace spec, action and policy.
        schedule.state = current.description.schedule.state
        return ScheduleUpdate(schedule=schedule)

    await client.get_schedule_handle(schedule_id).update(update)
    log.info("updated schedule %s", schedule_id)
    return "updated"
