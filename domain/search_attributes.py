"""Search attributes that tell operators each run's state (DESIGN.md, stable names)."""

from temporalio.common import SearchAttributeKey

TENANT_ID = SearchAttributeKey.for_keyword("TenantId")
RUN_PHASE = SearchAttributeKey.for_keyword("RunPhase")
RUN_STATUS = SearchAttributeKey.for_keyword("RunStatus")

ALL = (TENANT_ID, RUN_PHASE, RUN_STATUS)
