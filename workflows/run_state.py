"""What a run knows about itself: the small state object RunWorkflow's helpers share.

Control (workflows.control, workflows.pausing) and governance (workflows.run_governance)
read and update this object and write through ``workflows.run_writes``; none of them
knows the workflow class.
"""

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from domain.continuation import RunContinuation
    from domain.enums import Phase, RunStatus
    from domain.hashchain import GENESIS_HASH
    from domain.messages import RunFacts
    from domain.models import RunConfig, RunInput
    from domain.outcome import Outcome


# The fields that hold a patch's answer: asked once when the run opens, carried across a
# continue-as-new (a continued run never asks again).
PATCH_FLAGS = (
    "fewer_local_activities",
    "refuse_late_resumes",
    "failed_runs_fail",
    "every_failure_published",
    "durable_writes",
    "late_control_refused",
    "run_timeout_enforced",
    "continue_as_new_when_suggested",
)


@dataclass
class RunState:
    """One run's identity, phase, progress and resolved configuration."""

    run_id: str
    tenant_id: str
    steps_total: int
    budget: Decimal | None = None
    phase: Phase = Phase.CREATED
    status: RunStatus = RunStatus.QUEUED
    seq: int = 0  # of the last committed phase change
    steps_done: int = 0
    cost: Decimal = Decimal(0)
    prev_hash: str = GENESIS_HASH
    traced: bool = False
    execution_over: bool = False  # the last step has run (or the run ended without one)
    fewer_local_activities: bool = False  # workflows.patches, decided when the run opens
    refuse_late_resumes: bool = False  # workflows.patches, decided when the run opens
    failed_runs_fail: bool = False  # workflows.patches, decided when the run opens
    every_failure_published: bool = False  # workflows.patches, decided when the run opens
    durable_writes: bool = False  # workflows.patches, decided when the run opens
    late_control_refused: bool = False  # workflows.patches, decided when the run opens
    run_timeout_enforced: bool = False  # workflows.patches, decided when the run opens
    continue_as_new_when_suggested: bool = False  # workflows.patches, decided when it opens
    skills_used: list[str] = field(default_factory=list)
    # The recorded outputs of the steps some later step references (domain.step_refs).
    outputs: dict[str, Any] = field(default_factory=dict)
    config_: RunConfig | None = None
    failure_reason: str | None = None

    @classmethod
    def of(cls, run_id: str, inp: RunInput | None) -> "RunState":
        return cls(
            run_id=run_id,
            tenant_id=inp.tenant_id if inp else "",
            steps_total=len(inp.steps) if inp else 0,
            budget=inp.budget if inp else None,
        )

    def carried(self) -> dict[str, Any]:
        """This state's part of a RunContinuation (domain.continuation)."""
        return {
            "phase": self.phase,
            "status": self.status,
            "seq": self.seq,
            "steps_done": self.steps_done,
            "steps_total": self.steps_total,
            "cost": self.cost,
            "budget": self.budget,
            "prev_hash": self.prev_hash,
            "traced": self.traced,
            "patches": {flag: getattr(self, flag) for flag in PATCH_FLAGS},
            "skills_used": list(self.skills_used),
            "outputs": dict(self.outputs),
            "config": self.config,
        }

    def restore(self, carried: RunContinuation) -> None:
        """Take over what the run before this continue-as-new had committed."""
        self.phase, self.status, self.seq = carried.phase, carried.status, carried.seq
        self.steps_done, self.steps_total = carried.steps_done, carried.steps_total
        self.cost, self.budget = carried.cost, carried.budget
        self.prev_hash, self.traced = carried.prev_hash, carried.traced
        for flag in PATCH_FLAGS:
            setattr(self, flag, carried.patches.get(flag, False))
        self.skills_used = list(carried.skills_used)
        self.outputs = dict(carried.outputs)
        self.config_ = carried.config

    @property
    def config(self) -> RunConfig:
        assert self.config_ is not None, "the run's config is known once it has opened"
        return self.config_

    @property
    def ended(self) -> bool:
        return self.phase in (Phase.COMPLETED, Phase.FAILED)

    @property
    def over_budget(self) -> bool:
        return self.budget is not None and self.cost > self.budget

    def facts(self, outcome: Outcome) -> RunFacts:
        """What governance judges once execution is over."""
        return RunFacts(
            run_id=self.run_id,
            tenant_id=self.tenant_id,
            status=outcome.status,
            skills_used=self.skills_used,
            steps_done=self.steps_done,
            cost=self.cost,
            budget=self.budget,
            failure_reason=outcome.reason,
            violations=outcome.violations,
        )
