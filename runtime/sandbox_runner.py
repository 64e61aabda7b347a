"""The workflow runner: the SDK's sandbox, without a per-payload detour into it that
buys nothing when the data converter has neither a payload codec nor external storage.

Around every workflow activation the SDK worker walks each payload of the activation
and of its completion six times (decode: references, external storage, codec; encode:
codec, external storage, references) and, per payload sequence, asks the workflow
instance for that command's serialization context (activity, child workflow, ...) and
external-store context. With the sandbox, each question is an ``exec`` of a source
string inside the sandbox with its import guards applied (``_Instance._run_code``):
on a governed run it was a sixth of the worker's CPU. Only a payload codec and
external storage ever use those contexts; with neither configured, the answer does not
change a byte (``DataConverter._encode_payload_sequence`` and its siblings return the
payloads as they are), so this runner answers "no context" without entering the
sandbox. Everything else — activations, the workflow's own payload conversion (with
its contexts, inside the sandbox), deadlock detection — is the sandbox's, unchanged.

With a codec or external storage configured, :func:`sandboxed_runner` returns the
plain :class:`SandboxedWorkflowRunner` and every context is asked for as before.
"""

from collections.abc import Sequence

import temporalio.workflow
from temporalio.bridge.proto.workflow_activation import WorkflowActivation
from temporalio.bridge.proto.workflow_completion import WorkflowActivationCompletion
from temporalio.converter import DataConverter, StorageDriverStoreContext
from temporalio.worker import (
    WorkflowInstance,
    WorkflowInstanceDetails,
    WorkflowRunner,
)
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

NO_STORE_CONTEXT = StorageDriverStoreContext(target=None)


def contexts_unused(converter: DataConverter) -> bool:
    """Whether the worker-level serialization contexts can change nothing: no codec to
    hand them to, no external storage to store or fetch with them."""
    return converter.payload_codec is None and converter.external_storage is None


class _WithoutContexts(WorkflowInstance):
    """A sandboxed instance, asked for no serialization or store context."""

    def __init__(self, sandboxed: WorkflowInstance) -> None:
        self.sandboxed = sandboxed

    def activate(self, act: WorkflowActivation) -> WorkflowActivationCompletion:
        return self.sandboxed.activate(act)

    def get_serialization_context(self, command_info: object) -> None:
        return None

    def get_external_store_context(self, command_info: object) -> StorageDriverStoreContext:
        return NO_STORE_CONTEXT

    def get_info(self) -> temporalio.workflow.Info:
        return self.sandboxed.get_info()

    def get_thread_id(self) -> int | None:
        return self.sandboxed.get_thread_id()


class ContextFreeSandboxRunner(WorkflowRunner):
    """:class:`SandboxedWorkflowRunner`, whose instances are not asked for the contexts
    that only a payload codec or external storage would use (see the module doc)."""

    def __init__(self, sandbox: SandboxedWorkflowRunner) -> None:
        self.sandbox = sandbox

    def prepare_workflow(self, defn: temporalio.workflow._Definition) -> None:
        self.sandbox.prepare_workflow(defn)

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        return _WithoutContexts(self.sandbox.create_instance(det))

    def set_worker_level_failure_exception_types(
        self, types: Sequence[type[BaseException]]
    ) -> None:
        self.sandbox.set_worker_level_failure_exception_types(types)


def sandboxed_runner(restrictions: SandboxRestrictions, converter: DataConverter) -> WorkflowRunner:
    """The sandbox with ``restrictions``; context-free when ``converter`` cannot use the
    contexts (:func:`contexts_unused`)."""
    sandbox = SandboxedWorkflowRunner(restrictions=restrictions)
    return ContextFreeSandboxRunner(sandbox) if contexts_unused(converter) else sandbox
