"""The Worker options every worker of governed-runs runs with, from the settings.

README "Reliability" has the figures each one was sized with.

- Activity threads. The SDK runs the sync activities of both kinds in one executor: the
  steps (regular activities, a skill may take minutes) and the governance writes (local
  activities, one short transaction each, run inside the run's workflow task). The
  executor has a thread for every slot of either kind, ACTIVITY_THREADS +
  LOCAL_ACTIVITY_THREADS, so steps in every step slot still leave a thread for each
  governance write (with one pool as large as either limit, long steps held every thread
  and every run's governance writes queued behind them).
- Shutdown. On SIGTERM the worker stops polling and gives the activities in flight
  GRACEFUL_SHUTDOWN_SECONDS to finish and report their results; only then are the rest
  cancelled (and retried by another worker). The runs go on on the next worker.
- Recovery from a worker that died without shutting down (SIGKILL, a lost host): its
  sticky queue hands a run's next workflow task to any worker after
  STICKY_QUEUE_TIMEOUT_SECONDS (by the time a restarted worker polls again); its workflow
  task in flight times out after the run's workflow task timeout (clients.runs); its step
  in flight after the step's heartbeat timeout. Heartbeats reach the server at least every
  HEARTBEAT_THROTTLE_SECONDS (the SDK would wait 80 % of the heartbeat timeout), so a
  healthy step misses its heartbeat timeout only if the worker stalls for most of it.
- Workflow tasks. At most WORKFLOW_TASK_SLOTS at once: their activations share one
  interpreter, so more of them in flight only makes each take longer, and a task must
  finish within the run's short workflow task timeout (with the SDK's 100, a burst of 64
  run starts at once on 2 cores timed tasks out and never recovered).
- Cache. MAX_CACHED_WORKFLOWS runs stay in memory between their workflow tasks (~0.23 MB
  each); an evicted one is replayed from its history at its next task.
"""

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from runtime.settings import Settings
from runtime.worker_versioning import deployment_config, patch_activation


def activity_threads(settings: Settings) -> int:
    """Threads of the activity executor: one for every slot of either kind."""
    return settings.activity_threads + settings.local_activity_threads


def activity_executor(settings: Settings) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(activity_threads(settings), thread_name_prefix="activity")


def worker_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments of ``temporalio.worker.Worker`` (besides the client, the task
    queue, what it runs, its runner and interceptors): slots, shutdown, sticky queue,
    heartbeats, cache, deployment version and held patches (see the module doc)."""
    return {
        "activity_executor": activity_executor(settings),
        "max_concurrent_activities": settings.activity_threads,
        "max_concurrent_local_activities": settings.local_activity_threads,
        "graceful_shutdown_timeout": timedelta(seconds=settings.graceful_shutdown_seconds),
        "sticky_queue_schedule_to_start_timeout": timedelta(
            seconds=settings.sticky_queue_timeout_seconds
        ),
        "max_heartbeat_throttle_interval": timedelta(seconds=settings.heartbeat_throttle_seconds),
        "max_cached_workflows": settings.max_cached_workflows,
        "max_concurrent_workflow_tasks": settings.workflow_task_slots,
        "deployment_config": deployment_config(settings),
        "patch_activation_callback": patch_activation(settings),
    }
