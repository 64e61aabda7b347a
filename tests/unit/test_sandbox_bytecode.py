"""The worker caches bytecode for the modules the sandbox imports again for every run."""

import importlib.util
import os
import sys
from importlib.machinery import SourceFileLoader

import pytest

from runtime.sandbox_bytecode import cache_workflow_bytecode
from runtime.worker_factory import WORKFLOWS

MODULE = "class Flow:\n    def run(self) -> int:\n        return 1\n"


@pytest.fixture
def load_class(tmp_path, monkeypatch):
    def load(name="flow_module"):
        path = tmp_path / f"{name}.py"
        path.write_text(MODULE)
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        monkeypatch.setitem(sys.modules, name, module)
        spec.loader.exec_module(module)
        return module.Flow, path

    return load


def test_the_cached_bytecode_is_what_the_loader_uses(load_class, monkeypatch):
    cls, path = load_class()
    cached = importlib.util.cache_from_source(str(path))
    assert cache_workflow_bytecode([cls]) == []
    assert os.path.exists(cached)

    def no_compiling(*args, **kwargs):
        raise AssertionError("compiled from source although the cache is current")

    monkeypatch.setattr(SourceFileLoader, "source_to_code", no_compiling)
    code = SourceFileLoader("flow_module", str(path)).get_code("flow_module")
    assert "Flow" in code.co_names


def test_a_current_cache_is_left_alone_and_a_changed_source_recompiled(load_class):
    cls, path = load_class()
    cached = importlib.util.cache_from_source(str(path))
    cache_workflow_bytecode([cls])
    first = os.stat(cached).st_mtime_ns
    os.utime(cached, ns=(first - 10**9, first - 10**9))  # an old file time on the cache
    cache_workflow_bytecode([cls])
    assert os.stat(cached).st_mtime_ns == first - 10**9  # not rewritten

    path.write_text(MODULE + "VALUE = 2\n")
    os.utime(path, ns=(first + 2 * 10**9, first + 2 * 10**9))
    cache_workflow_bytecode([cls])
    code = SourceFileLoader("flow_module", str(path)).get_code("flow_module")
    assert "VALUE" in code.co_names


def test_a_cache_that_cannot_be_written_is_reported_not_fatal(load_class, tmp_path):
    cls, path = load_class()
    (tmp_path / "__pycache__").write_text("a file where the cache directory would go")
    assert cache_workflow_bytecode([cls]) == [str(path)]


def test_every_workflow_module_of_the_worker_gets_a_cache():
    assert cache_workflow_bytecode(WORKFLOWS) == []
    for cls in WORKFLOWS:
        source = sys.modules[cls.__module__].__file__
        assert os.path.exists(importlib.util.cache_from_source(source))
