"""A reactor process SIGKILLed mid-delivery: nothing is lost, nothing succeeded twice.

The process (tests/system/reactor_process.py) delivers five events to ``crash.record``,
then blocks inside ``crash.slow`` (its delivery transaction open) while a sixth event,
written before the kill, waits behind it. After SIGKILL and a restart: the sixth event
is delivered, the blocked one is delivered again (it never succeeded), and none of the
five is delivered a second time.
"""

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, select

from db.models import EventDelivery
from domain.ids import derive_id
from services.events import emit
from tests.process_output import ProcessOutput, processes_fixture  # noqa: F401
from tests.reconcile_support import wait_until

pytestmark = pytest.mark.timeout(90)

SCRIPT = Path(__file__).with_name("reactor_process.py")


def write(sessions, topic: str, **payload) -> str:  # noqa: ANN001, ANN003
    key = f"crash/{uuid.uuid4().hex}"
    with sessions.begin() as session:
        emit(session, key=key, topic=topic, tenant_id="t-crash", run_id=None, payload=payload)
    return derive_id("event", key, topic)


def delivered(reader: Engine, event_ids: list[str]) -> dict[str, int]:
    """event id → attempts, for the deliveries of these events that have committed."""
    with reader.connect() as conn:
        found = conn.execute(
            select(EventDelivery.event_id, EventDelivery.attempts).where(
                EventDelivery.event_id.in_(event_ids), EventDelivery.delivered_at.is_not(None)
            )
        )
        return dict(found.all())


@pytest.fixture
def reader(db_engine: Engine) -> Iterator[Engine]:
    """A plain engine: on SQLite its reads do not take the write lock (WAL readers never
    wait), so the test can look while the reactor's blocked handler holds that lock."""
    engine = create_engine(db_engine.url)
    yield engine
    engine.dispose()


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def start(  # noqa: ANN001
    processes: ProcessOutput, db_engine, group: str, record: str, slow: str, logs: Path
) -> subprocess.Popen:
    url = db_engine.url.render_as_string(hide_password=False)
    return processes.popen(
        SCRIPT.name,
        [sys.executable, str(SCRIPT), url, group, record, slow, str(logs)],
        cwd=SCRIPT.parents[2],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


async def test_event_written_before_sigkill_is_delivered_after_restart_once(
    db_engine, sessions, reader, processes, tmp_path
):
    record, slow = f"crash.{uuid.uuid4().hex[:8]}.a", f"crash.{uuid.uuid4().hex[:8]}.b"
    group = f"crash-{uuid.uuid4().hex[:8]}"
    first_five = [write(sessions, record, n=i) for i in range(5)]
    blocked = write(sessions, slow, block=True)
    sixth = write(sessions, record, n=6)
    (tmp_path / "block").touch()
    processes.watch("record.log (crash.record deliveries)", tmp_path / "record.log")
    processes.watch("slow.log (crash.slow deliveries)", tmp_path / "slow.log")

    proc = start(processes, db_engine, group, record, slow, tmp_path)
    try:
        await wait_until(
            lambda: (
                len(delivered(reader, first_five)) == 5
                and f"start {blocked}" in lines(tmp_path / "slow.log")
            ),
            timeout=30,
            what="the first five deliveries and the blocked handler",
        )
        await asyncio.sleep(0.3)
        assert sixth not in delivered(reader, [sixth])  # written, not delivered yet
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    assert blocked not in delivered(reader, [blocked])

    (tmp_path / "block").unlink()
    proc = start(processes, db_engine, group, record, slow, tmp_path)
    try:
        await wait_until(
            lambda: len(delivered(reader, [*first_five, sixth, blocked])) == 7,
            timeout=30,
            what="every delivery after the restart",
        )
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    recorded = lines(tmp_path / "record.log")
    assert sorted(recorded) == sorted([*first_five, sixth])  # each exactly once
    assert recorded[-1] == sixth
    assert lines(tmp_path / "slow.log") == [
        f"start {blocked}",
        f"start {blocked}",
        f"done {blocked}",
    ]
    assert set(delivered(reader, [*first_five, sixth, blocked]).values()) == {1}
