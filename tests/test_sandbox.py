"""Every workflow class passes the sandbox's validation offline (no server needed)."""

import pytest
from temporalio.workflow import _Definition

from runtime.worker_factory import WORKFLOWS, workflow_runner


@pytest.mark.parametrize("cls", WORKFLOWS, ids=lambda c: c.__name__)
async def test_workflow_is_sandbox_safe(cls):
    workflow_runner().prepare_workflow(_Definition.must_from_class(cls))
