"""One SQLite writer at a time per process, handed over at once.

SQLite allows one write transaction per database file. A connection that finds the lock
taken sleeps in its busy handler (1, 2, 5, 10, ... up to 100 ms between tries), so with
several writer threads the lock sits idle while they sleep. Within one process, writers
queue on a threading lock instead and the next one starts the moment the last commits;
other processes (API server, reactor) still meet at SQLite's own lock and busy timeout.
"""

import sqlite3
import threading
from pathlib import Path

WAIT_SECONDS = 30.0  # as long as the connection's busy timeout

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock_for(database: str) -> threading.Lock:
    if database == ":memory:":  # a private database: a lock of its own, not registered
        return threading.Lock()
    with _locks_guard:
        return _locks.setdefault(str(Path(database).resolve()), threading.Lock())


class _WriterConnection(sqlite3.Connection):
    """A sqlite3 connection that holds its process's write lock from BEGIN IMMEDIATE until
    the transaction ends (commit, rollback or close)."""

    write_lock: threading.Lock

    def begin_write(self) -> None:
        if not self.write_lock.acquire(timeout=WAIT_SECONDS):
            raise sqlite3.OperationalError(
                f"database is locked: no write lock after {WAIT_SECONDS:g} s in this process"
            )
        self._holds = True
        try:
            self.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._release()
            raise

    def _release(self) -> None:
        if getattr(self, "_holds", False):
            self._holds = False
            self.write_lock.release()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self._release()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self._release()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._release()


def connection_factory(database: str) -> type[_WriterConnection]:
    """The sqlite3 ``factory`` for connections to ``database`` (one lock per file)."""
    return type("WriterConnection", (_WriterConnection,), {"write_lock": _lock_for(database)})
