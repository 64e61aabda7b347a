"""What one run costs Temporal, read from its history: tasks, activities, markers, events."""

from dataclasses import asdict, dataclass

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client


@dataclass(frozen=True)
class HistoryProfile:
    """Counts over one workflow history."""

    events: int
    workflow_tasks: int
    activities: int
    local_activities: int
    search_attribute_upserts: int
    timers: int
    history_bytes: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


async def history_profile(client: Client, workflow_id: str) -> HistoryProfile:
    """Workflow tasks completed, activities scheduled, local activities (markers) and more."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    kinds = [event.event_type for event in history.events]

    def n(kind: int) -> int:
        return sum(1 for k in kinds if k == kind)

    local = sum(
        1
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
        and event.marker_recorded_event_attributes.marker_name == "core_local_activity"
    )
    return HistoryProfile(
        events=len(kinds),
        workflow_tasks=n(EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED),
        activities=n(EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED),
        local_activities=local,
        search_attribute_upserts=n(EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES),
        timers=n(EventType.EVENT_TYPE_TIMER_STARTED),
        history_bytes=sum(event.ByteSize() for event in history.events),
    )
