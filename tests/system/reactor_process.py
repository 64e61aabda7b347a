"""A reactor in its own process, for the crash test (tests/system/test_reactor_crash.py).

    python tests/system/reactor_process.py DATABASE_URL GROUP TOPIC_RECORD TOPIC_SLOW LOG_DIR

Handler ``crash.record`` appends each event id to LOG_DIR/record.log; ``crash.slow``
appends "start <id>", blocks while LOG_DIR/block exists (for events with "block": true),
then appends "done <id>". Runs until SIGTERM/SIGINT (or SIGKILL, which is the point).
"""
# ruff: noqa: E402

import asyncio
import logging
import signal
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from db.engine import make_engine, make_session_factory
from events.reactor import Reactor, ReactorConfig
from events.registry import Event, HandlerContext, Handlers


def append(path: Path, line: str) -> None:
    with path.open("a") as f:
        f.write(line + "\n")
        f.flush()


async def main(url: str, group: str, record_topic: str, slow_topic: str, logs: Path) -> None:
    handlers = Handlers()

    @handlers.on(record_topic, name="crash.record")
    def record(ctx: HandlerContext, event: Event) -> None:
        append(logs / "record.log", event.id)

    @handlers.on(slow_topic, name="crash.slow")
    def slow(ctx: HandlerContext, event: Event) -> None:
        append(logs / "slow.log", f"start {event.id}")
        while event.payload.get("block") and (logs / "block").exists():
            time.sleep(0.05)
        append(logs / "slow.log", f"done {event.id}")

    engine = make_engine(url)
    config = ReactorConfig(group=group, poll_interval=0.05, lease=2.0, heartbeat_interval=1.0)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await Reactor(make_session_factory(engine), handlers, config).run(stop)
    engine.dispose()


if __name__ == "__main__":
    # On stderr, which the test sends to a file it shows when it fails.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    url, group, record_topic, slow_topic, logs = sys.argv[1:6]
    asyncio.run(main(url, group, record_topic, slow_topic, Path(logs)))
