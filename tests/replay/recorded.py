"""Recorded histories under tests/histories/<kind>/ and the replayer the worker would use."""

import json
from functools import cached_property
from pathlib import Path

from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from runtime.worker_factory import workflow_runner

ROOT = Path(__file__).resolve().parents[1] / "histories"


class Recorded:
    """One folder of histories with its ``scenarios.json`` manifest."""

    def __init__(self, kind: str) -> None:
        self.folder = ROOT / kind

    @cached_property
    def manifest(self) -> dict:
        return json.loads((self.folder / "scenarios.json").read_text())

    def history(self, name: str) -> WorkflowHistory:
        return WorkflowHistory.from_json(
            self.manifest[name]["workflow_id"], (self.folder / f"{name}.json").read_text()
        )


def replayer(workflow_class: type, runner=None) -> Replayer:  # noqa: ANN001
    """A Replayer configured like the worker: same sandbox runner, same data converter."""
    return Replayer(
        workflows=[workflow_class],
        workflow_runner=runner or workflow_runner(),
        data_converter=pydantic_data_converter,
    )
