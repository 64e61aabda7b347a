"""The worker's settings and the Worker options built from them (runtime.worker_options,
runtime.worker_versioning), and the workflow task timeout runs are started with."""

import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from temporalio.common import VersioningBehavior
from temporalio.worker import PatchActivationInput

from clients.runs import workflow_task_timeout
from runtime.settings import Settings
from runtime.worker_options import activity_threads, worker_options
from runtime.worker_versioning import (
    CHECKOUT,
    WorkerConfigError,
    code_build_id,
    deployment_config,
    known_patches,
    patch_activation,
)
from workflows import patches


def settings(**values) -> Settings:
    return Settings(_env_file=None, **values)


def test_defaults():
    s = settings()
    assert (s.activity_threads, s.local_activity_threads) == (32, 16)
    assert s.graceful_shutdown_seconds == 30
    assert s.sticky_queue_timeout_seconds == 2
    assert s.workflow_task_slots == 16
    assert s.heartbeat_throttle_seconds == 1
    assert s.max_cached_workflows == 1000
    assert (s.worker_deployment_name, s.worker_build_id) == ("governed-runs", None)
    assert not s.worker_versioning and s.worker_versioning_behavior == "pinned"
    assert s.held_patches == []


def test_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("LOCAL_ACTIVITY_THREADS", "8")
    monkeypatch.setenv("GRACEFUL_SHUTDOWN_SECONDS", "90")
    monkeypatch.setenv("MAX_CACHED_WORKFLOWS", "12000")
    monkeypatch.setenv("WORKER_BUILD_ID", "git-1a2b3c")
    monkeypatch.setenv("WORKER_VERSIONING", "true")
    monkeypatch.setenv("WORKER_VERSIONING_BEHAVIOR", "auto_upgrade")
    monkeypatch.setenv("HELD_PATCHES", '["durable-writes"]')
    s = settings()
    assert s.local_activity_threads == 8 and s.graceful_shutdown_seconds == 90
    assert s.max_cached_workflows == 12000 and s.worker_build_id == "git-1a2b3c"
    assert s.worker_versioning and s.worker_versioning_behavior == "auto_upgrade"
    assert s.held_patches == ["durable-writes"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("local_activity_threads", 0),
        ("graceful_shutdown_seconds", -1),
        ("sticky_queue_timeout_seconds", 0),
        ("heartbeat_throttle_seconds", 0),
        ("max_cached_workflows", -1),
        ("workflow_task_slots", 1),
        ("worker_deployment_name", "governed.runs"),  # Temporal: no "." in the name
        ("worker_deployment_name", ""),
        ("worker_build_id", "has space"),
        ("worker_versioning_behavior", "sometimes"),
    ],
)
def test_bad_values_are_refused_naming_the_setting(field, value):
    with pytest.raises(ValidationError) as exc:
        settings(**{field: value})
    assert field in str(exc.value)


def test_every_slot_of_either_kind_has_a_thread():
    s = settings(activity_threads=32, local_activity_threads=16)
    options = worker_options(s)
    executor = options["activity_executor"]
    assert executor._max_workers == activity_threads(s) == 48
    assert options["max_concurrent_activities"] == 32
    assert options["max_concurrent_local_activities"] == 16
    # 32 steps in flight leave a thread for each of the 16 governance writes.
    assert executor._max_workers - options["max_concurrent_activities"] == 16


def test_timeouts_cache_and_version_come_from_the_settings():
    s = settings(graceful_shutdown_seconds=45, sticky_queue_timeout_seconds=1.5,
                 heartbeat_throttle_seconds=0.5, max_cached_workflows=10_500,
                 workflow_task_slots=24)  # fmt: skip
    options = worker_options(s)
    assert options["graceful_shutdown_timeout"] == timedelta(seconds=45)
    assert options["sticky_queue_schedule_to_start_timeout"] == timedelta(seconds=1.5)
    assert options["max_heartbeat_throttle_interval"] == timedelta(seconds=0.5)
    assert options["max_cached_workflows"] == 10_500
    assert options["max_concurrent_workflow_tasks"] == 24
    config = options["deployment_config"]
    assert config.version.deployment_name == "governed-runs"
    assert config.version.build_id == code_build_id()
    assert not config.use_worker_versioning
    assert config.default_versioning_behavior == VersioningBehavior.UNSPECIFIED
    assert options["patch_activation_callback"] is None


@pytest.mark.parametrize(
    ("behavior", "expected"),
    [("pinned", VersioningBehavior.PINNED), ("auto_upgrade", VersioningBehavior.AUTO_UPGRADE)],
)
def test_opting_into_worker_versioning(behavior, expected):
    s = settings(worker_versioning=True, worker_versioning_behavior=behavior,
                 worker_deployment_name="gr", worker_build_id="b7")  # fmt: skip
    config = deployment_config(s)
    assert config.use_worker_versioning
    assert config.default_versioning_behavior == expected
    assert (config.version.deployment_name, config.version.build_id) == ("gr", "b7")


def copy_of_the_workflow_code(root: Path) -> Path:
    for package in ("workflows", "domain"):
        shutil.copytree(CHECKOUT / package, root / package,
                        ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    return root


def test_the_default_build_id_follows_the_workflow_code(tmp_path):
    root = copy_of_the_workflow_code(tmp_path)
    first = code_build_id(root)
    assert first == code_build_id(root)  # the same code, the same id
    assert first.split("-")[-1] == code_build_id().split("-")[-1]  # as the checkout's
    (root / "activities").mkdir()
    (root / "activities" / "steps.py").write_text("# activities do not decide commands\n")
    assert code_build_id(root) == first
    patch_file = root / "workflows" / "patches.py"
    patch_file.write_text(patch_file.read_text() + '\nNEW_PATCH = "new-patch"\n')
    changed = code_build_id(root)
    assert changed != first
    (root / "workflows" / "patches.py").rename(root / "workflows" / "renamed.py")
    assert code_build_id(root) not in (first, changed)


def test_a_held_patch_is_not_taken_by_a_new_run():
    activate = patch_activation(settings(held_patches=[patches.DURABLE_WRITES]))
    assert activate is not None

    def asked(patch_id: str) -> bool:
        return activate(PatchActivationInput(workflow_info=None, patch_id=patch_id))

    assert not asked(patches.DURABLE_WRITES)
    assert asked(patches.FEWER_LOCAL_ACTIVITIES)


def test_every_patch_can_be_held():
    assert patches.DURABLE_WRITES in known_patches()
    assert "cross-check-open-runs" in known_patches()  # ReconcileWorkflow's own
    assert patch_activation(settings(held_patches=sorted(known_patches()))) is not None


def test_a_held_patch_that_does_not_exist_is_refused():
    with pytest.raises(WorkerConfigError, match="HELD_PATCHES names no patch: durable-write "):
        patch_activation(settings(held_patches=["durable-write"]))


def test_the_workflow_task_timeout_grows_with_the_run():
    assert workflow_task_timeout(1) == timedelta(seconds=2.016)
    assert workflow_task_timeout(8) == timedelta(seconds=2.128)
    assert workflow_task_timeout(100) == timedelta(seconds=3.6)
    assert workflow_task_timeout(500) == timedelta(seconds=10)  # Temporal's default, no more
    lengths = range(1, 501)
    assert all(workflow_task_timeout(a) <= workflow_task_timeout(a + 1) for a in lengths)
