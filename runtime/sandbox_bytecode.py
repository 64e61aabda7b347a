"""Bytecode for the modules the workflow sandbox imports again for every run.

The sandbox gives each workflow run fresh copies of the workflow's own module (every
import outside ``imports_passed_through``). Python loads that module from its cached
bytecode when there is one; when bytecode caching is off (``PYTHONDONTWRITEBYTECODE``,
as on this project's machines) or the checkout is fresh, every run compiles the source
again: ~5.5 ms of CPU per RunWorkflow run on the first workflow task, which is on the
path from the start request to the first step. The worker writes the cache once at
start (what the interpreter does on a first import when caching is on); a module whose
cache is current is left alone, and a read-only checkout only costs the compile.
"""

import compileall
import logging
import sys
from collections.abc import Iterable

log = logging.getLogger(__name__)


def cache_workflow_bytecode(workflows: Iterable[type]) -> list[str]:
    """Compile the module of every workflow class to its ``__pycache__`` file unless the
    cached bytecode is current; returns the source files it could not cache."""
    failed = []
    for path in sorted({_source_file(cls) for cls in workflows} - {None}):
        try:
            ok = compileall.compile_file(path, quiet=2)
        except OSError:
            ok = False
        if not ok:
            failed.append(path)
            log.debug("no cached bytecode for %s: the sandbox compiles it for every run", path)
    return failed


def _source_file(cls: type) -> str | None:
    path = getattr(sys.modules.get(cls.__module__), "__file__", None)
    return path if path and path.endswith(".py") else None
