"""The encrypting payload codec (PAYLOAD_ENCRYPTION_KEYS) on the real dev server: a run's
prompts and outputs are opaque in its history, the run works end to end, it replays with
the keys, a rotated key still decrypts, and a bad key or an oversized input is refused."""

import pytest
from cryptography.fernet import Fernet
from temporalio.client import Client
from temporalio.worker import Replayer

from clients.runs import RunRequestError, validate_run_input
from domain.models import MAX_RUN_INPUT_BYTES
from runtime.payload_codec import ENCODING, PayloadKeyError, payload_codec
from runtime.temporal_client import data_converter
from tests.helpers import new_tenant, running_worker, start_run
from workflows.run_workflow import RunWorkflow

pytestmark = pytest.mark.timeout(90)

SECRET_PROMPT = "the quarterly numbers nobody may read in the Web UI"


def client_with(client: Client, keys: str | None) -> Client:
    return Client(**{**client.config(), "data_converter": data_converter(payload_codec(keys))})


async def test_a_run_with_encrypted_payloads_is_opaque_in_history_and_replays(
    dev_env, settings, sessions, task_queue, run_id
):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    encrypted = client_with(dev_env.client, old)
    tenant = new_tenant(sessions)
    payload = {"tenant_id": tenant, "steps": [{"skill": "echo", "input": {"text": SECRET_PROMPT}}]}
    async with running_worker(encrypted, settings, sessions, task_queue):
        handle = await start_run(encrypted, task_queue, run_id, payload)
        result = await handle.result()
    assert (result.phase, result.status) == ("COMPLETED", "succeeded")
    # What the server stores: every payload encrypted, the prompt nowhere in clear.
    history = await dev_env.client.get_workflow_handle(handle.id).fetch_history()
    raw = history.to_json()
    assert SECRET_PROMPT not in raw and "quarterly" not in raw
    started = history.events[0].workflow_execution_started_event_attributes
    assert [p.metadata["encoding"] for p in started.input.payloads] == [ENCODING]
    # It replays with the keys — also once the key was rotated (new first, old still read).
    for keys in (old, f"{new},{old}"):
        replayer = Replayer(workflows=[RunWorkflow], data_converter=data_converter(
            payload_codec(keys)))  # fmt: skip
        assert (await replayer.replay_workflow(history, raise_on_replay_failure=False)
                ).replay_failure is None  # fmt: skip
    # Without the key the result cannot be read (and says why).
    with pytest.raises(PayloadKeyError, match="no key of PAYLOAD_ENCRYPTION_KEYS decrypts"):
        await client_with(dev_env.client, new).get_workflow_handle(handle.id).result()


def test_a_key_that_is_not_a_fernet_key_is_refused_naming_its_position_not_its_value():
    good = Fernet.generate_key().decode()
    with pytest.raises(PayloadKeyError, match="key 2 is not a Fernet key") as refused:
        payload_codec(f"{good},not-a-key")
    assert "not-a-key" not in str(refused.value)
    assert payload_codec(None) is None and payload_codec("  ") is None


def test_a_run_input_over_the_cap_is_refused_before_anything_is_started():
    big = "x" * MAX_RUN_INPUT_BYTES
    with pytest.raises(RunRequestError, match=f"at most {MAX_RUN_INPUT_BYTES}"):
        validate_run_input({"tenant_id": "t", "steps": [{"skill": "echo", "input": {"text": big}}]})
