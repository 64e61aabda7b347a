"""The claim check on the real dev server and both databases: a run whose step returns an
output larger than CLAIM_CHECK_THRESHOLD_BYTES, referenced by a later step, completes with
the data where it belongs, while its history holds only references and payloads under the
threshold — and replays with the same converter. A blob missing when the worker needs it
fails the workflow task (naming the hash), not the run, which goes on once it is back.
The history's size with and without the codec (and with encryption) is printed."""

import asyncio
import time

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select
from temporalio.api.enums.v1 import WorkflowExecutionStatus
from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Replayer

from db.models import PayloadBlob, TraceStep
from db.queries.evidence import run_proof
from domain.retention import blob_ttl_floor
from runtime.claim_check import ENCODING, parse_reference
from runtime.embedded_temporal import TemporalConfigError
from runtime.payload_codec import check_blob_retention, process_codec
from runtime.temporal_client import data_converter
from services import payload_blobs
from tests.claim_check_support import BIG, MARGIN, flow, payloads_in
from tests.helpers import new_tenant, rows, running_worker, start_run
from workflows.run_workflow import RunWorkflow

pytestmark = pytest.mark.timeout(180)


def client_with(client: Client, settings, sessions) -> Client:  # noqa: ANN001
    converter = data_converter(process_codec(settings, sessions))
    return Client(**{**client.config(), "data_converter": converter})


async def run_flow(client: Client, settings, sessions, task_queue, run_id):  # noqa: ANN001, ANN201
    tenant = new_tenant(sessions)
    async with running_worker(client, settings, sessions, task_queue):
        started = time.monotonic()
        handle = await start_run(client, task_queue, run_id, {"tenant_id": tenant,
                                                              "steps": flow(BIG)})  # fmt: skip
        result = await handle.result()
        elapsed = time.monotonic() - started
    history = await handle.fetch_history()
    described = await handle.describe()
    size = described.raw_description.workflow_execution_info.history_size_bytes
    return result, history, {"history_size_bytes": size, "run_seconds": round(elapsed, 2)}


def figures(history: WorkflowHistory, measured: dict) -> dict:
    found = [p for e in history.events for p in payloads_in(e)]
    refs = {parse_reference(p) for p in found if p.metadata.get("encoding") == ENCODING}
    return {**measured, "events": len(history.events), "payloads": len(found),
            "largest_payload": max(p.ByteSize() for p in found), "references": len(refs),
            "blob_bytes": sum(size for _, size in refs)}  # fmt: skip


async def test_a_large_output_flows_by_reference_and_the_history_stays_small(
    dev_env, settings, sessions, task_queue, run_id
):
    claim_checked = client_with(dev_env.client, settings, sessions)
    result, history, size = await run_flow(claim_checked, settings, sessions, task_queue, run_id)
    assert (result.phase, result.status, result.steps_done) == ("COMPLETED", "succeeded", 2)
    # The later step got the data, through the reference; the trace proves what was sent.
    steps = sorted(rows(sessions, TraceStep, run_id=run_id), key=lambda s: s.step_index)
    assert steps[0].output == {"text": BIG}
    assert steps[1].input["variables"] == {"t": BIG} and steps[1].output == {"text": BIG}
    with sessions() as session:
        assert run_proof(session, run_id).status == "VERIFIED"
    # The history: references, and no payload over the threshold.
    threshold = settings.claim_check_threshold_bytes
    seen = figures(history, size)
    assert seen["largest_payload"] <= threshold + MARGIN, seen
    assert seen["references"] >= 3, seen  # the run input, the output, the resolved input, ...
    started = history.events[0].workflow_execution_started_event_attributes
    [reference] = started.input.payloads
    assert reference.metadata["encoding"] == ENCODING
    sha256, blob_size = parse_reference(reference)
    with sessions() as session:
        assert session.get(PayloadBlob, sha256).size == blob_size > len(BIG)
    # It replays with the same converter (the blobs read back from the database).
    replayer = Replayer(workflows=[RunWorkflow], data_converter=claim_checked.data_converter)
    replayed = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert replayed.replay_failure is None, replayed.replay_failure

    # Side by side: the same run without the codec, with encryption, with both.
    keys = Fernet.generate_key().decode()
    encrypted = settings.model_copy(update={"payload_encryption_keys": keys})
    plain_only = settings.model_copy(update={"claim_check_enabled": False})
    measured = {"claim check": seen}
    variants = {
        "no codec": plain_only,
        "encryption": encrypted.model_copy(update={"claim_check_enabled": False}),
        "encryption + claim check": encrypted,
    }
    for name, variant in variants.items():
        client = client_with(dev_env.client, variant, sessions)
        other = f"{run_id}-{len(measured)}"
        r, h, s = await run_flow(client, variant, sessions, task_queue, other)
        assert (r.phase, r.status) == ("COMPLETED", "succeeded")
        measured[name] = figures(h, s)
    for name, numbers in measured.items():
        print(f"claim-check figures [{sessions.kw['bind'].dialect.name}] {name}: {numbers}")
    assert measured["no codec"]["largest_payload"] > len(BIG)
    assert measured["encryption + claim check"]["largest_payload"] <= threshold + MARGIN
    assert measured["claim check"]["history_size_bytes"] * 10 < measured["no codec"][
        "history_size_bytes"]  # fmt: skip


async def test_a_missing_blob_fails_the_workflow_task_not_the_run_until_it_is_back(
    dev_env, settings, sessions, task_queue, run_id
):
    client = client_with(dev_env.client, settings, sessions)
    tenant = new_tenant(sessions)
    # Started with no worker: the client stored the input's blob; it goes missing.
    handle = await start_run(client, task_queue, run_id, {"tenant_id": tenant,
                                                          "steps": flow(BIG)})  # fmt: skip
    history = await handle.fetch_history()
    [reference] = history.events[0].workflow_execution_started_event_attributes.input.payloads
    sha256, _ = parse_reference(reference)
    with sessions.begin() as session:
        row = session.get(PayloadBlob, sha256)
        data = bytes(row.data)
        session.delete(row)
    async with running_worker(client, settings, sessions, task_queue):
        deadline = time.monotonic() + 60
        failure = None
        while failure is None and time.monotonic() < deadline:
            async for event in handle.fetch_history_events():
                if event.HasField("workflow_task_failed_event_attributes"):
                    failure = event.workflow_task_failed_event_attributes.failure.message
            await asyncio.sleep(0.3)
        assert failure is not None, "no workflow task failed"
        assert f"payload blob sha256:{sha256}" in failure and "not in payload_blobs" in failure
        described = await handle.describe()
        assert described.status == WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING
        # Back (stored again, as any process storing that payload would): the run goes on.
        assert payload_blobs.store(sessions, {sha256: data}) == 1
        result = await asyncio.wait_for(handle.result(), 120)
    assert (result.phase, result.status, result.steps_done) == ("COMPLETED", "succeeded", 2)
    with sessions() as session:
        assert session.scalar(select(PayloadBlob.size).where(PayloadBlob.sha256 == sha256))


async def test_the_blob_ttl_must_cover_the_namespace_retention(dev_env, settings):
    # The dev server keeps histories a day; the settings alone only know the longest run.
    floor = blob_ttl_floor(settings.longest_run_seconds())
    short = settings.model_copy(update={"retention_payload_blobs_seconds": int(floor)})
    with pytest.raises(TemporalConfigError, match=(
            rf"RETENTION_PAYLOAD_BLOBS_SECONDS={int(floor)} is shorter than claim-check blobs "
            r"are referenced: namespace default keeps histories 86400 s")):  # fmt: skip
        await check_blob_retention(dev_env.client, short)
    await check_blob_retention(dev_env.client, settings)  # 30 days: fine
    forever = settings.model_copy(update={"retention_payload_blobs_seconds": 0})
    await check_blob_retention(dev_env.client, forever)
