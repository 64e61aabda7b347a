"""A long run's histories with and without continue-as-new, side by side in one process.

    .venv/bin/python -m tools.bench.long_run [--steps 500] [--output-bytes 0]

On the embedded dev server with Temporal's default suggestion limits (or one that suggests
continue-as-new after ``--suggest-events`` events), the same run of
``--steps`` echo steps (each returning about ``--output-bytes`` of text) runs twice on one
worker: once as every new run does (patch ``continue-as-new-when-suggested``), once with
that patch held (HELD_PATCHES: one history for the whole run, as before it). Prints, for
each, the Temporal runs it took, the largest history's events and bytes, the total events
and the wall time, and the ratios.
"""

import argparse
import asyncio
import contextlib
import json
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from clients.runs import run_histories, run_result, start_run
from db import migrate
from db.engine import make_engine, make_session_factory
from domain.search_attributes import ALL as SEARCH_ATTRIBUTES
from runtime.embedded_temporal import SPEED_FLAGS, temporal_binary
from runtime.settings import Settings
from runtime.worker_factory import WORKFLOWS, build_activities, workflow_runner
from runtime.worker_options import worker_options
from tools.bench.harness import BenchEnv, bench_env
from tools.bench.probe import ActivityProbe
from tools.bench.runner import seed_tenant
from workflows.patches import CONTINUE_AS_NEW_WHEN_SUGGESTED


@dataclass
class LongRunFigures:
    temporal_runs: int
    largest_history_events: int
    largest_history_bytes: int
    total_events: int
    seconds: float
    status: str


async def one_run(env: BenchEnv, settings: Settings, tenant: str, steps: int,
                  output_bytes: int, task_queue: str) -> LongRunFigures:  # fmt: skip
    text = "x" * output_bytes
    plan = [{"skill": "echo", "input": {"text": f"{i} {text}"}} for i in range(steps)]
    run_id = f"long-{uuid.uuid4().hex[:8]}"
    with httpx.Client() as http:
        worker = Worker(
            env.client,
            task_queue=task_queue,
            workflows=WORKFLOWS,
            activities=build_activities(settings, env.sessions, http),
            workflow_runner=workflow_runner(),
            **worker_options(settings),
        )
        async with worker:
            started = time.perf_counter()
            payload = {"run_id": run_id, "tenant_id": tenant, "steps": plan}
            handle = await start_run(env.client, task_queue, payload)  # as clients start runs
            result = await run_result(handle)
            seconds = time.perf_counter() - started
    runs = [h.events for h in await run_histories(env.client, handle.id, handle.result_run_id)]
    return LongRunFigures(
        temporal_runs=len(runs),
        largest_history_events=max(len(events) for events in runs),
        largest_history_bytes=max(sum(e.ByteSize() for e in events) for events in runs),
        total_events=sum(len(events) for events in runs),
        seconds=round(seconds, 2),
        status=result.status,
    )


@contextlib.asynccontextmanager
async def long_env(suggest_events: int | None) -> AsyncIterator[BenchEnv]:
    """The benchmarks' environment, or one whose dev server suggests continue-as-new after
    ``suggest_events`` events (as a namespace an operator configured so)."""
    if suggest_events is None:
        async with bench_env(Settings(_env_file=None)) as env:
            yield env
        return
    with tempfile.TemporaryDirectory(prefix="governed-runs-long-") as tmp:
        settings = Settings(_env_file=None, data_dir=Path(tmp),
                            database_url=f"sqlite:///{tmp}/long.db")  # fmt: skip
        engine = make_engine(settings.resolved_database_url())
        migrate.upgrade(engine)
        limit = f"limit.historyCount.suggestContinueAsNew={suggest_events}"
        server = await WorkflowEnvironment.start_local(
            dev_server_existing_path=temporal_binary(),
            data_converter=pydantic_data_converter,
            search_attributes=SEARCH_ATTRIBUTES,
            dev_server_extra_args=[*SPEED_FLAGS, "--dynamic-config-value", limit],
        )
        try:
            yield BenchEnv(
                settings=settings,
                data_dir=Path(tmp),
                server=None,  # type: ignore[arg-type]  # the environment's own server
                client=server.client,
                engine=engine,
                sessions=make_session_factory(engine),
                probe=ActivityProbe(),
            )
        finally:
            await server.shutdown()
            engine.dispose()


async def main(steps: int, output_bytes: int, suggest_events: int | None) -> dict:
    async with long_env(suggest_events) as env:
        tenant = seed_tenant(env, f"long-{uuid.uuid4().hex[:6]}")
        held = env.settings.model_copy(update={"held_patches": [CONTINUE_AS_NEW_WHEN_SUGGESTED]})
        figures = {}
        for name, settings in (("continue-as-new", env.settings), ("one history", held)):
            figures[name] = asdict(await one_run(env, settings, tenant, steps, output_bytes,
                                                 f"long-{name.replace(' ', '-')}"))  # fmt: skip
    new, old = figures["continue-as-new"], figures["one history"]
    figures["ratios (continue-as-new / one history)"] = {
        "largest_history_events": round(new["largest_history_events"] /
                                        old["largest_history_events"], 3),
        "largest_history_bytes": round(new["largest_history_bytes"] /
                                       old["largest_history_bytes"], 3),
        "total_events": round(new["total_events"] / old["total_events"], 3),
        "seconds": round(new["seconds"] / old["seconds"], 3),
    }  # fmt: skip
    suggested = suggest_events or "Temporal's default (4096)"
    figures["config"] = {"steps": steps, "output_bytes": output_bytes,
                         "suggest_continue_as_new_events": suggested}  # fmt: skip
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--output-bytes", type=int, default=0)
    parser.add_argument("--suggest-events", type=int, default=None,
                        help="the namespace's limit.historyCount.suggestContinueAsNew")  # fmt: skip
    args = parser.parse_args()
    figures = asyncio.run(main(args.steps, args.output_bytes, args.suggest_events))
    print(json.dumps(figures, indent=2))
