"""What a RunWorkflow carries into its next run when it continues as new.

Temporal suggests continue-as-new when a history grows large (its event count or size);
a long run then continues as a new run of the same workflow id between two planned steps
(patch ``continue-as-new-when-suggested``). The new run gets the run's input again and
this continuation: what the run had committed and decided so far, so that it goes on at
``next_index`` as if nothing happened — no second open, trace or check at step 0.

Accepted only by a run Temporal itself continued from the run the continuation names
(``continued_from`` is ``workflow.info().continued_run_id``; not a cron run, not a retry):
a continuation handed to a fresh start, to a cron schedule or to a retried start is
refused, so that nobody can start a run past its open with a cost, a phase or approvals
of their own making (a forger cannot know the Temporal run id it would have to name).
"""

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from domain.chat_tools import ToolDefinition
from domain.enums import Phase, RunStatus
from domain.models import RunConfig, Strict


class RunContinuation(Strict):
    """One run's committed state and control decisions at a step boundary."""

    version: Literal[1] = 1  # of this model: a later one must still read what it wrote
    continued_from: str  # the Temporal run id of the run that continued as new
    next_index: int  # the planned step the continued run starts with
    segment: int  # 1 for the first continued run, 2 for the next, ...
    # workflows.run_state.RunState
    phase: Phase
    status: RunStatus
    seq: int
    steps_done: int
    steps_total: int  # the declared steps: the planned ones and an agent's calls so far
    cost: Decimal
    budget: Decimal | None
    prev_hash: str
    traced: bool
    patches: dict[str, bool]  # the patches the run took when it opened, by RunState field
    skills_used: list[str]
    outputs: dict[str, Any]  # the outputs later steps reference
    config: RunConfig
    # workflows.control.RunControl
    consumed_digests: list[str]
    pauses: int
    refusals_recorded: int
    started_at: datetime | None
    run_deadline: datetime | None
    baseline: dict[str, Any]
    last_check_at: datetime | None
    checked_at_open: bool
    steps_since_check: int
    forced: bool
    budget_warned: bool
    # workflows.agent_loop.AgentLoop: the tools the run's agent steps may offer
    agent_tools: list[ToolDefinition]
