"""What the Temporal Web UI shows about a run while it runs: its current details.

Rendered from the run's state and control (markdown, as the UI shows it) and set with
``workflow.set_current_details`` whenever the phase, the status or the step changes, so an
operator sees why a run waits — the pause, its SLA, who may lift it, the approval it
awaits — without reading the history. Not a command: changing it never affects replay.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from temporalio import workflow

if TYPE_CHECKING:
    from workflows.control import RunControl


def render(control: RunControl) -> str:
    s = control.state
    budget = "no budget" if s.budget is None else f"budget {s.budget}"
    lines = [f"**{s.phase} {s.status}** · step {s.steps_done}/{s.steps_total} · "
             f"cost {s.cost} ({budget}) · tenant {s.tenant_id}"]  # fmt: skip
    pause = control.pause
    if pause is not None:
        lines.append(
            f"**paused** ({pause.reason}) by {pause.actor.id} at {pause.paused_at:%H:%M:%S}Z; "
            f"SLA deadline {pause.sla_deadline:%Y-%m-%d %H:%M:%S}Z, then {pause.behavior}"
        )
        lines.append(f"**may resume**: {', '.join(pause.resumable_by)}")
        if pause.approval is not None:
            a = pause.approval
            lines.append(
                f"**awaits the approval** of step {a.step_index} ({a.skill}) for rule "
                f"{a.rule_name}: `starter.py approve {s.run_id} --digest {a.digest}`"
            )
    elif control.pending_pause is not None:
        lines.append(f"pause requested ({control.pending_pause.reason}): at the next step")
    if control.stop is not None:
        lines.append(f"stop requested by {control.stop.actor.id}: {control.stop.reason}")
    if s.failure_reason:
        lines.append(f"**reason**: {s.failure_reason}")
    return "\n\n".join(lines)


def publish(control: RunControl) -> None:
    workflow.set_current_details(render(control))
