"""Worker deployment versions, Worker Versioning and held patches, on the real dev server
(Temporal 1.32 has Worker Deployments), with RunWorkflow on workers of build_worker.

- every worker reports its deployment version: Temporal records its build id on each
  workflow task it completes (and runs are started with the workflow task timeout of
  clients.runs);
- with WORKER_VERSIONING a new version gets no task until it is made current; a PINNED run
  stays on the build it started on through a deploy and a rollback, while new runs go to
  the current version;
- a held patch is not taken by a new run: no marker, the branch before it.
"""

import asyncio
import uuid

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.api.workflowservice.v1 import (
    DescribeWorkerDeploymentRequest,
    SetWorkerDeploymentCurrentVersionRequest,
)
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from clients.runs import run_result, start_run, workflow_task_timeout
from db.models import PauseRecord
from runtime.settings import Settings
from runtime.worker_versioning import code_build_id
from tests.helpers import count, echo_steps, markers, new_tenant, running_worker
from workflows.patches import FEWER_LOCAL_ACTIVITIES

pytestmark = pytest.mark.timeout(90)
ADMIN = {"id": "ops", "authority": "TENANT_ADMIN"}
PAUSE = {"reason": "MANUAL_PAUSE", "actor": ADMIN}


async def builds_of(handle: WorkflowHandle) -> list[str]:
    """The build id Temporal recorded on each completed workflow task of the run."""
    found = []
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            attrs = event.workflow_task_completed_event_attributes
            found.append(attrs.deployment_version.build_id or attrs.worker_version.build_id)
    return found


async def test_every_workflow_task_names_the_build_that_completed_it(
    dev_env, settings, sessions, task_queue
):
    tenant = new_tenant(sessions)
    async with running_worker(dev_env.client, settings, sessions, task_queue):
        payload = {"run_id": f"r-{uuid.uuid4().hex[:10]}", "tenant_id": tenant,
                   "steps": echo_steps(3)}  # fmt: skip
        handle = await start_run(dev_env.client, task_queue, payload)
        assert (await run_result(handle)).status == "succeeded"
    builds = await builds_of(handle)
    assert builds and set(builds) == {code_build_id()}
    described = await handle.describe()
    config = described.raw_description.execution_config
    assert config.default_workflow_task_timeout.ToTimedelta() == workflow_task_timeout(3)


def versioned(settings: Settings, deployment: str, build: str) -> Settings:
    return settings.model_copy(update={"worker_versioning": True, "worker_build_id": build,
                                       "worker_deployment_name": deployment})  # fmt: skip


async def registered(client: Client, deployment: str, builds: set[str]) -> None:
    """Until Temporal has seen a poller of every build of ``deployment``."""
    for _ in range(100):
        try:
            found = await client.workflow_service.describe_worker_deployment(
                DescribeWorkerDeploymentRequest(
                    namespace=client.namespace, deployment_name=deployment
                )  # fmt: skip
            )
            seen = {v.deployment_version.build_id
                    for v in found.worker_deployment_info.version_summaries}  # fmt: skip
            if builds <= seen:
                return
        except RPCError:  # not yet created
            pass
        await asyncio.sleep(0.1)
    raise AssertionError(f"deployment {deployment} never saw builds {builds}")


async def make_current(client: Client, deployment: str, build: str) -> None:
    """Set the current version, once Temporal has seen the build poll every task queue (and
    task type) of the current one; until then it refuses (FAILED_PRECONDITION)."""
    request = SetWorkerDeploymentCurrentVersionRequest(
        namespace=client.namespace, deployment_name=deployment, build_id=build
    )
    for _ in range(100):
        try:
            await client.workflow_service.set_worker_deployment_current_version(request)
            return
        except RPCError as exc:
            if exc.status != RPCStatusCode.FAILED_PRECONDITION:
                raise
        await asyncio.sleep(0.1)
    raise AssertionError(f"{build} never became the current version of {deployment}")


async def paused(sessions, run_id: str) -> None:  # noqa: ANN001
    for _ in range(200):
        if count(sessions, PauseRecord, run_id=run_id):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"run {run_id} never paused")


async def test_pinned_runs_stay_on_their_build_through_a_deploy_and_a_rollback(
    dev_env, settings, sessions, task_queue
):
    client, tenant = dev_env.client, new_tenant(sessions)
    deployment = f"gr-{uuid.uuid4().hex[:8]}"
    old, new = versioned(settings, deployment, "b1"), versioned(settings, deployment, "b2")

    async def start(paused_at_first_step: bool) -> tuple[str, WorkflowHandle]:
        run_id = f"r-{uuid.uuid4().hex[:10]}"
        payload = {"run_id": run_id, "tenant_id": tenant, "steps": echo_steps(2)}
        signal = ("pause", PAUSE) if paused_at_first_step else None
        return run_id, await start_run(client, task_queue, payload, start_signal=signal)

    async with running_worker(client, old, sessions, task_queue):
        await registered(client, deployment, {"b1"})
        _, waiting = await start(False)
        await asyncio.sleep(2)
        assert await builds_of(waiting) == []  # no version is current: no task for b1
        await make_current(client, deployment, "b1")
        assert (await run_result(waiting)).status == "succeeded"
        old_run, on_old = await start(True)  # open across the deploy: paused
        await paused(sessions, old_run)
        async with running_worker(client, new, sessions, task_queue):
            await registered(client, deployment, {"b1", "b2"})
            await make_current(client, deployment, "b2")  # the deploy
            _, on_new = await start(False)
            assert (await run_result(on_new)).status == "succeeded"
            new_run, still_new = await start(True)
            await paused(sessions, new_run)
            await make_current(client, deployment, "b1")  # the rollback
            _, after_rollback = await start(False)
            assert (await run_result(after_rollback)).status == "succeeded"
            for handle in (on_old, still_new):
                await handle.signal("resume", {"actor": ADMIN})
                assert (await run_result(handle)).status == "succeeded"
    assert set(await builds_of(waiting)) == {"b1"}
    assert set(await builds_of(on_old)) == {"b1"}  # started before the deploy, ended on b1
    assert set(await builds_of(on_new)) == {"b2"}
    assert set(await builds_of(still_new)) == {"b2"}  # started on b2, ended there after it
    assert set(await builds_of(after_rollback)) == {"b1"}
    pinned = (await on_old.describe()).raw_description.workflow_execution_info.versioning_info
    assert pinned.deployment_version.build_id == "b1"


async def test_a_held_patch_leaves_new_runs_on_the_branch_before_it(
    dev_env, settings, sessions, task_queue
):
    tenant = new_tenant(sessions)
    holding = settings.model_copy(update={"held_patches": [FEWER_LOCAL_ACTIVITIES]})
    handles = {}
    for name, worker_settings in (("held", holding), ("default", settings)):
        async with running_worker(dev_env.client, worker_settings, sessions, task_queue):
            payload = {"run_id": f"r-{uuid.uuid4().hex[:10]}", "tenant_id": tenant,
                       "steps": echo_steps(2)}  # fmt: skip
            handles[name] = await start_run(dev_env.client, task_queue, payload)
            assert (await run_result(handles[name])).status == "succeeded"
    held, default = (await markers(handles["held"])), (await markers(handles["default"]))
    assert ("core_patch", FEWER_LOCAL_ACTIVITIES) in default
    assert ("core_patch", FEWER_LOCAL_ACTIVITIES) not in held
    # The branch before the patch: the policy check before step 0 is its own local activity.
    check = ("core_local_activity", "control.check_policy")
    assert held.count(check) == default.count(check) + 1
