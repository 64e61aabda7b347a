"""The Temporal Schedule ``reconcile-stale-runs``: created at worker start, updated if it exists.

Every RECONCILE_INTERVAL_SECONDS it starts ``ReconcileWorkflow`` on the task queue;
overlap SKIP (a reconciliation still running makes the next one skip), and a short
catch-up window so a server that was down does not replay a backlog of reconciliations.
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
            execution_timeout=max(interval * 10, timedelta(minutes=30)),
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
    """Create the schedule, or bring an existing one in line with the settings.

    Returns "created" or "updated". Safe to call from every worker at every start.
    """
    schedule = reconcile_schedule(settings, task_queue)
    try:
        await client.create_schedule(schedule_id, schedule)
        log.info("created schedule %s", schedule_id)
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
