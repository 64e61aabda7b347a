"""Patch ids of RunWorkflow (``workflow.patched``): a run started before a change replays
on the code before it; a new run takes the new path and records the patch marker (and
Core adds the id to the run's ``TemporalChangeVersion`` search attribute, so
``temporal workflow list --query "TemporalChangeVersion='<id>'"`` finds the runs on it).

A run asks once per patch, when it opens, and keeps the answer for its whole life
(``RunState.fewer_local_activities``, ``RunState.refuse_late_resumes``): one marker and
one search-attribute upsert per run and patch, however many places the patch touches. Once
no run started before a change can be open or replayed any more (the namespace's retention
has passed since the last such run closed), its old branch goes and the call becomes
``workflow.deprecate_patch``.
"""

# Two local activities fewer per run:
# - runs.open records the policy check before step 0 from the authorization's reading
#   of the live state (before: control.check_policy before step 0 of every run);
# - traces.complete returns the run's own reconciliation, read in its transaction after
#   its ack (before: a separate audit.reconcile_run; still used when the run is untraced).
FEWER_LOCAL_ACTIVITIES = "fewer-local-activities"

# A resume that arrives in the same batch as the one that resolves a pause is refused
# (audited) instead of staying queued to resume the run's next pause by itself.
REFUSE_LATE_RESUMES = "refuse-late-resumes"

# A run that ends FAILED (failed, failed_policy, cancelled) ends its workflow as failed: a
# non-retryable ApplicationError of the run's status type (RUN_FAILURE_TYPES) with the
# RunResult in its details, so the Web UI's badge, its failure counts and Temporal's own
# workflow metrics tell the truth (before: every run's workflow COMPLETED).
FAILED_RUNS_FAIL = "failed-runs-fail-the-workflow"

# Every FAILED run publishes ``run.failed`` with its cause (the incident's category,
# GOVERNANCE_ROLLBACK or CANCELLED), also after a governance rollback and a cancellation
# (before: only when the run had an incident or other events to publish).
EVERY_FAILURE_PUBLISHED = "every-failure-published"

# ReconcileWorkflow (the ids above are RunWorkflow's; its own earlier one,
# ``cross-check-open-runs``, lives in workflows/reconcile.py). At the end of each
# reconciliation, expired rows are purged in pages (activity reconcile.purge_expired, the
# counts in the summary); before it, a reconciliation ended after the orchestration log.
PURGE_EXPIRED_ROWS = "purge-expired-rows"

# A ReconcileWorkflow run that fails (not one cancelled) first writes a
# ``reconciliation.failed`` event (activity reconcile.report_failure), then fails as before.
REPORT_RECONCILE_FAILURE = "report-reconciliation-failure"

# A run's skills are checked when it opens (runs.open, against the worker's catalog: an
# unknown skill or a bad input is InvalidRunInput, nothing written), no longer inside the
# workflow (before: against the built-in skills, when the input was parsed), so that which
# plugins a worker has never changes a replay.
SKILLS_CHECKED_AT_OPEN = "skills-checked-at-open"

# Writes survive any outage of the database without growing history (workflows.durable_writes):
# a few local attempts, then a regular activity retried without limit; a governance write
# waits out an outage (DatabaseUnavailable) instead of rolling back; a bug's exception fails
# the workflow task, not the run; a step is retried by the server without limit (its skill's
# own failures stay bounded by the activity) (before: local activities retried without
# end, governance rolled back after 5 attempts whatever the cause, a step failed the run
# after 3 attempts even when only the database was down).
DURABLE_WRITES = "durable-writes"

# ReconcileWorkflow: a continue-as-new carries at most ``max_seen_carried`` of the runs
# already reconciled, and a run continues as new after ``run_budget_seconds`` too,
# so its state is bounded and the schedule's per-run timeout bounds one run (before: every
# run reconciled was carried, and only Temporal's suggestion continued it).
BOUNDED_RECONCILE_STATE = "bounded-reconcile-state"

# A stop or a pause that arrives while a run's last step runs is refused once execution is
# over (audited SIGNAL_REFUSED, the status no longer says it is requested), and refusals
# that arrived then are recorded (before: both were dropped while the status query still
# said stop_requested).
LATE_CONTROL_REFUSED = "late-control-refused"

# A run's run_timeout_seconds is enforced: past it, the run fails (RUN_FAILURE incident) at
# the next step boundary or while paused — an ESCALATEd pause waits no longer than that
# (before: the setting only dated the finalize_run expectation, and ESCALATE waited forever).
RUN_TIMEOUT_ENFORCED = "run-timeout-enforced"

# A long run continues as new when Temporal suggests it (its history's event count or size
# passed the namespace's suggestContinueAsNew limits), at the next boundary between two
# planned steps with nothing in flight, carrying what it committed and decided
# (workflows.continuation) (before: one history for the whole run, whatever its length).
CONTINUE_AS_NEW_WHEN_SUGGESTED = "continue-as-new-when-suggested"

# PromoteCandidateWorkflow: a failure of one of its local activities (load, apply_decision)
# is recorded like any other (candidates.record_failure: an orchestration attempt with the
# error, candidate.orchestration_failed) before the workflow fails closed with its type
# (before: a local activity's failure, raised as its unwrapped cause rather than an
# ActivityError, failed the workflow with nothing recorded).
RECORD_LOCAL_ACTIVITY_FAILURES = "record-local-activity-failures"
