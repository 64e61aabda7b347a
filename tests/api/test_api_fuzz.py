"""Schemathesis over the served OpenAPI document: no request, valid or not, gets a 5xx.

The API is served for real (uvicorn in the test's loop, ``api.server.serving``) and
schemathesis calls it from a thread. Its task queue has no worker, so runs and
candidates it starts are only recorded, never executed (a fuzzed ``http`` step must
not fetch anything). A second round aims every path at a real, finished run.
"""

import asyncio

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from api.app import create_app
from api.server import bound_port, serving
from tests.helpers import echo_steps, running_worker

pytestmark = pytest.mark.timeout(240)
EXAMPLES = 250  # over 20 operations: enough to reach each one's accepted answers


def fuzz(base_url: str, headers: dict[str, str], path_parameters: dict | None) -> list[int]:
    """Positive and negative cases over every operation; returns the statuses seen."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json", timeout=10)
    strategy = st.one_of(
        schema.as_strategy(GenerationMode.POSITIVE, path_parameters=path_parameters),
        schema.as_strategy(GenerationMode.NEGATIVE, path_parameters=path_parameters),
    )
    seen: list[int] = []

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case) -> None:
        response = case.call(base_url=base_url, headers=headers, timeout=30)
        seen.append(response.status_code)
        assert response.status_code < 500, (case.method, case.formatted_path, response.text)
        case.validate_response(response, checks=[not_a_server_error])

    run()
    return seen


async def test_no_5xx_anywhere(dev_env, settings, sessions, task_queue, tenant_keys):
    keys = tenant_keys("TENANT_ADMIN")
    worker_settings = settings.model_copy(update={"task_queue": task_queue})
    async with running_worker(dev_env.client, worker_settings, sessions, task_queue):
        handle = await dev_env.client.start_workflow(
            "RunWorkflow",
            {"tenant_id": keys.tenant, "steps": echo_steps(1)},
            id=f"run-fz-{task_queue}",
            task_queue=task_queue,
        )
        await handle.result()
    idle_queue = f"{task_queue}-idle"  # no worker polls it
    app = create_app(
        settings.model_copy(update={"task_queue": idle_queue}), sessions, dev_env.client
    )
    async with serving(app, "127.0.0.1", 0) as server:
        base_url = f"http://127.0.0.1:{bound_port(server)}"
        anywhere = await asyncio.to_thread(fuzz, base_url, keys.admin, None)
        finished_run = {"run_id": f"fz-{task_queue}", "candidate_id": "c-none"}
        at_a_run = await asyncio.to_thread(fuzz, base_url, keys.admin, finished_run)
    statuses = set(anywhere) | set(at_a_run)
    assert {200, 202, 404, 422} <= statuses, statuses
    async for started in dev_env.client.list_workflows(f'TaskQueue="{idle_queue}"'):
        await dev_env.client.get_workflow_handle(started.id).terminate("fuzzing is over")
