"""Search attributes that tell operators each run's state (DESIGN.md, stable names)."""

from temporalio.common import SearchAttributeKey

from domain.enums import Phase

TENANT_ID = SearchAttributeKey.for_keyword("TenantId")
RUN_PHASE = SearchAttributeKey.for_keyword("RunPhase")
RUN_STATUS = SearchAttributeKey.for_keyword("RunStatus")

ALL = (TENANT_ID, RUN_PHASE, RUN_STATUS)

# RunPhase is upserted when a run enters one of these: the phases a run stays in and
# operators filter on. The passing phases (AUTHORIZED, GOVERNANCE_CHECK, FINALIZING) last
# one write each; they are in the runs table, the transition log and the status query.
# RunStatus is upserted with them and whenever a run pauses or resumes.
MIRRORED_PHASES = frozenset({Phase.EXECUTING, Phase.COMPLETED, Phase.FAILED})
