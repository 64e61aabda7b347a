"""Gating: recorded PromoteCandidateWorkflow histories replay without non-determinism,
and the decision and incident ids in them are the ones the engine derives today.

Histories: tests/histories/promote_candidate (tests/replay/record_candidate_histories.py).
"""

import json

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner
from temporalio.workflow import NondeterminismError

from domain.candidates import (
    CandidateSubmission,
    PromoteCandidateInput,
    PromotionResult,
    auto_engine_authority,
)
from domain.promotion import build_request, decide
from tests.replay.recorded import Recorded
from tests.replay.recorded import replayer as recorded_replayer
from workflows.promote_candidate import PromoteCandidateWorkflow

pytestmark = pytest.mark.timeout(60)

RECORDED = Recorded("promote_candidate")
MANIFEST: dict = RECORDED.manifest
SUCCEEDED = sorted(n for n, s in MANIFEST.items() if not s["outcome"]["failed"])
FAILED = sorted(n for n, s in MANIFEST.items() if s["outcome"]["failed"])
CONVERTER = pydantic_data_converter.payload_converter


history = RECORDED.history


def attributes(hist: WorkflowHistory, field: str):  # noqa: ANN201 - a protobuf message
    [found] = [getattr(e, field) for e in hist.events if e.HasField(field)]
    return found


def replayer(workflow_class: type = PromoteCandidateWorkflow, runner=None) -> Replayer:  # noqa: ANN001
    return recorded_replayer(workflow_class, runner)


def test_every_outcome_has_a_recorded_history():
    decisions = {MANIFEST[n]["outcome"]["decision"] for n in SUCCEEDED}
    assert decisions == {"PROMOTE", "DEFER", "SUPPRESS"}
    assert {MANIFEST[n]["outcome"]["error_type"] for n in FAILED} >= {
        "MissingPolicyId",
        "UnknownCandidate",
    }


@pytest.mark.parametrize("name", sorted(MANIFEST))
async def test_history_replays_without_nondeterminism(name):
    result = await replayer().replay_workflow(history(name))
    assert result.replay_failure is None


@pytest.mark.parametrize("name", SUCCEEDED)
def test_recorded_decision_and_incident_ids_match_the_engine(name):
    """Same candidate + same policy + same authority → the ids in history, recomputed."""
    hist = history(name)
    [recorded] = CONVERTER.from_payloads(
        attributes(hist, "workflow_execution_completed_event_attributes").result.payloads,
        [PromotionResult],
    )
    [raw] = CONVERTER.from_payloads(
        attributes(hist, "workflow_execution_started_event_attributes").input.payloads, [dict]
    )
    facts = CandidateSubmission.model_validate(MANIFEST[name]["candidate"]).facts()
    authority = PromoteCandidateInput.model_validate(raw).authority or auto_engine_authority(
        facts.candidate_id
    )
    expected = decide(build_request(facts, authority))
    assert recorded.decision == expected.decision == MANIFEST[name]["outcome"]["decision"]
    assert recorded.decision_id == expected.decision_id
    assert recorded.incident_id == expected.incident_id
    assert (recorded.incident_id is not None) == (recorded.decision == "PROMOTE")
    assert recorded.authority == expected.authority


@pytest.mark.parametrize("name", FAILED)
def test_failed_histories_failed_closed_and_non_retryable(name):
    failure = attributes(history(name), "workflow_execution_failed_event_attributes").failure
    assert failure.application_failure_info.type == MANIFEST[name]["outcome"]["error_type"]
    assert failure.application_failure_info.non_retryable
    assert failure.message == MANIFEST[name]["outcome"]["error"]


@workflow.defn(name="PromoteCandidateWorkflow")
class DriftedWorkflow:
    """A 'refactor' that skips loading the candidate: replay must refuse it."""

    @workflow.run
    async def run(self, raw: dict) -> None:
        await workflow.sleep(1)


async def test_a_changed_workflow_is_caught_by_replay():
    with pytest.raises(NondeterminismError):
        await replayer(DriftedWorkflow, UnsandboxedWorkflowRunner()).replay_workflow(
            history("promote")
        )


# Recorded before patch record-local-activity-failures: a failed local activity failed the
# workflow without recording the failure; such a history replays on that branch.
BEFORE_RECORDING = Recorded("promote_candidate-before-record-local-activity-failures")


@pytest.mark.parametrize("name", sorted(BEFORE_RECORDING.manifest))
async def test_history_from_before_recording_local_failures_replays(name):
    hist = BEFORE_RECORDING.history(name)
    result = await replayer().replay_workflow(hist, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure
    markers = [e.marker_recorded_event_attributes.marker_name for e in hist.events
               if e.HasField("marker_recorded_event_attributes")]  # fmt: skip
    assert "core_patch" not in markers  # the old branch: nothing recorded the failure


def test_a_failed_local_activity_is_recorded_since_the_patch():
    paths = Recorded("promote_candidate-paths")
    hist = paths.history("promote_activity_error")
    markers = [e.marker_recorded_event_attributes for e in hist.events]
    local = [json.loads(m.details["data"].payloads[0].data)["activity_type"]
             for m in markers if m.marker_name == "core_local_activity"]  # fmt: skip
    assert local == ["candidates.load", "candidates.apply_decision", "candidates.record_failure"]
    assert paths.manifest["promote_activity_error"]["outcome"]["error_type"] == "ActivityFailed"
