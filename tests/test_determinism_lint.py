"""A determinism lint over the code that runs inside workflows.

The sandbox catches a non-deterministic call in a workflow module, but not in the modules
passed through it (``workflow.unsafe.imports_passed_through``): ``workflows/`` helpers and
all of ``domain/`` run there unrestricted. This test reads their source (AST) and refuses
what would make a replay differ: wall clocks, sleeps, randomness, fresh uuids, the
environment, files, threads, sockets, subprocesses and I/O clients. Use ``workflow.now()``,
``workflow.random()``, ``workflow.uuid4()``, ``asyncio.sleep`` (a durable timer in a
workflow), or pass the value in.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("workflows", "domain")  # code that runs in workflows, sandboxed or passed through

CALLS = {
    ("datetime", "now"), ("datetime", "utcnow"), ("datetime", "today"), ("date", "today"),
    ("time", "time"), ("time", "time_ns"), ("time", "monotonic"), ("time", "monotonic_ns"),
    ("time", "perf_counter"), ("time", "sleep"), ("uuid", "uuid1"), ("uuid", "uuid4"),
    ("os", "getenv"), ("os", "urandom"), ("os", "getpid"),
}  # fmt: skip
ATTRIBUTES = {("os", "environ")}
BUILTINS = {"open", "input", "breakpoint"}
MODULES = {"random", "secrets", "socket", "subprocess", "threading", "multiprocessing",
           "httpx", "requests", "openai", "sqlalchemy", "psycopg", "smtplib"}  # fmt: skip


def problems_in(source: str, name: str) -> list[str]:
    """``name:line: what`` for each non-deterministic construct in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        where = f"{name}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import | ast.ImportFrom):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [
                node.module or ""]  # fmt: skip
            for module in modules:
                if module.split(".")[0] in MODULES:
                    found.append(f"{where}: imports {module}")
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            pair = (node.value.id, node.attr)
            if pair in CALLS or pair in ATTRIBUTES:
                found.append(f"{where}: {pair[0]}.{pair[1]}")
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in BUILTINS):  # fmt: skip
            found.append(f"{where}: {node.func.id}()")
    return found


def sources() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_workflow_code_is_deterministic(path):
    assert problems_in(path.read_text(), str(path.relative_to(ROOT))) == []


def test_the_lint_finds_what_it_is_for():
    planted = """
import random
from datetime import datetime
import time, uuid, os

def decide():
    when = datetime.now()
    time.sleep(1)
    token = uuid.uuid4()
    home = os.environ["HOME"]
    return open("/etc/hostname").read(), random.random()
"""
    found = problems_in(planted, "planted.py")
    assert found == [
        "planted.py:2: imports random",
        "planted.py:7: datetime.now",
        "planted.py:8: time.sleep",
        "planted.py:9: uuid.uuid4",
        "planted.py:10: os.environ",
        "planted.py:11: open()",
    ]
