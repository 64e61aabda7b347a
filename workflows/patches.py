"""Patch ids of RunWorkflow (``workflow.patched``): a run started before a change replays
on the code before it; a new run takes the new path and records the patch marker.

Once no run started before a change can still be open or replayed (the retention
period of the namespace has passed since the last such run closed), its branch goes
and the call becomes ``workflow.deprecate_patch`` for one more release.
"""

# runs.open records the policy check before step 0 from the authorization's reading of
# the live state (one local activity fewer per run); before it, control.check_policy ran
# before step 0 of every run.
FIRST_CHECK_AT_OPEN = "first-check-at-open"
