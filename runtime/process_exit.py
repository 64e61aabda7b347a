"""Ending a process that used a Temporal client.

The SDK's Rust bridge keeps native threads that can race CPython's finalization and abort
the process ("Fatal Python error: PyGILState_Release ... finalizing", temporalio/sdk-python
issue 300). Once everything is flushed and closed, the entry points skip interpreter
teardown instead: nothing is left to clean up by then.
"""

import contextlib
import logging
import os
import sys


def exit_process(code: int) -> None:
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BrokenPipeError):  # the reader of a pipe has gone
            stream.flush()
    os._exit(code)
