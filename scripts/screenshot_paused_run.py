"""Screenshot of the demo's paused run in the Temporal Web UI, from a real headless browser.

    apt-get update && apt-get install -y chromium      # once
    .venv/bin/python scripts/screenshot_paused_run.py [--out docs/img/paused-run.png]

Starts the embedded stack with the demo (``python worker.py --demo`` in a temporary data
dir, no HTTP API), waits for the demo's paused run, opens its page
(http://127.0.0.1:8233/namespaces/default/workflows/run-<id>) in headless Chromium
(driven over the DevTools protocol on a pipe) and saves a PNG, plus one of the workflow
list filtered by ``RunStatus="paused"``. Then stops the worker, which stops its embedded
server. Run by hand, not in CI.
"""

import argparse
import base64
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAUSED_LINE = re.compile(r"demo paused: run (\S+): EXECUTING paused")


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_stack(data_dir: Path, port: int, ui_port: int) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("TEMPORAL_ADDRESS", "DATABASE_URL")}
    env.update(DATA_DIR=str(data_dir), TEMPORAL_PORT=str(port), TEMPORAL_UI_PORT=str(ui_port),
               HTTP_ENABLED="false")  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "worker.py", "--demo"], cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def wait_for_paused_run(worker: subprocess.Popen, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    for line in worker.stdout:
        sys.stderr.write(line)
        found = PAUSED_LINE.search(line)
        if found:
            return found.group(1)
        if time.monotonic() > deadline:
            break
    raise SystemExit(f"no paused demo run within {timeout:.0f}s (worker exit {worker.poll()})")


class DevToolsPipe:
    """The Chrome DevTools protocol over ``--remote-debugging-pipe``: JSON messages ending
    in NUL, written to the browser's fd 3 and read from its fd 4 (stdlib only)."""

    def __init__(self, browser: str, profile: str, width: int, height: int) -> None:
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def wire_fds() -> None:  # in the child: the pipe ends become fds 3 and 4
            read_end, write_end = os.dup(to_browser_r), os.dup(from_browser_w)
            os.dup2(read_end, 3)
            os.dup2(write_end, 4)

        self.process = subprocess.Popen(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={profile}", f"--window-size={width},{height}",
             "--remote-debugging-pipe", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=wire_fds, pass_fds=(3, 4),  # noqa: PLW1509
        )  # fmt: skip
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._next_id = 0
        self._buffer = b""

    def call(self, method: str, session: str | None = None, **params: object) -> dict:
        self._next_id += 1
        message: dict = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self._buffer:
                chunk = os.read(self._from_browser, 1 << 20)
                if not chunk:
                    raise SystemExit(f"the browser closed the pipe during {method}")
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise SystemExit(f"{method}: {reply['error']}")
                return reply["result"]

    def close(self) -> None:
        with contextlib.suppress(SystemExit, OSError):
            self.call("Browser.close")
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def screenshot(url: str, out: Path, width: int = 1400, height: int = 900, wait: float = 8) -> None:
    """Open ``url`` in headless Chromium, let the page run ``wait`` seconds, save a PNG.

    (``chromium --screenshot --virtual-time-budget=...`` never returns on this page: the
    UI keeps polling, so virtual time never runs out; real time is waited instead.)
    """
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise SystemExit("chromium is missing: apt-get update && apt-get install -y chromium")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        devtools = DevToolsPipe(browser, profile, width, height)
        try:
            target = devtools.call("Target.createTarget", url="about:blank")["targetId"]
            session = devtools.call("Target.attachToTarget", targetId=target, flatten=True)[
                "sessionId"
            ]
            devtools.call("Emulation.setDeviceMetricsOverride", session, width=width,
                          height=height, deviceScaleFactor=1, mobile=False)  # fmt: skip
            devtools.call("Page.navigate", session, url=url)
            time.sleep(wait)
            png = devtools.call("Page.captureScreenshot", session, format="png")["data"]
            out.write_bytes(base64.b64decode(png))
        finally:
            devtools.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "paused-run.png")
    parser.add_argument(
        "--list-out",
        type=Path,
        default=ROOT / "docs" / "img" / "paused-runs-list.png",
        help='also the workflow list filtered by RunStatus="paused"',
    )
    args = parser.parse_args()
    port = 7233 if port_free(7233) else free_port()
    ui_port = 8233 if port_free(8233) else free_port()
    data_dir = Path(tempfile.mkdtemp(prefix="governed-runs-screenshot-"))
    worker = start_stack(data_dir, port, ui_port)
    try:
        run_id = wait_for_paused_run(worker)
        base = f"http://127.0.0.1:{ui_port}/namespaces/default/workflows"
        url = f"{base}/run-{run_id}"
        time.sleep(2)  # let the UI's first poll of the run settle
        screenshot(url, args.out, height=1100)
        screenshot(f"{base}?query=RunStatus%3D%22paused%22", args.list_out, height=600)
        print(f"paused run {run_id}: {url}\nscreenshots: {args.out} {args.list_out}")  # noqa: T201 - script output
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
        shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
