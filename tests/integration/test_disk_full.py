"""A full disk under the instance's state folder (a 1 MiB tmpfs): services keep running, the daemon survives,
the state file stays whole, events stay whole lines, and logging resumes (saying what was dropped) when space
returns. Needs root (mount); skipped otherwise."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from unistack.control.state import code_fingerprint

from .conftest import Instance

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root"),
]

CHATTY = "import time\\ni = 0\\nwhile True:\\n    print('line', i, 'x' * 200)\\n    i += 1\\n    time.sleep(0.001)"
COMPOSE = f"""
services:
  chatty:
    x-unistack:
      process:
        command: ["${{PYTHON}}", "-u", "-c", "{CHATTY}"]
  flaky:
    restart: always
    x-unistack:
      process:
        command: ["sh", "-c", "echo flaky runs; sleep 0.3; exit 1"]
      restart: {{backoff_initial: 100ms, backoff_max: 200ms}}
  steady:
    healthcheck:
      test: ["CMD-SHELL", "echo probed"]
      interval: 200ms
    x-unistack:
      process:
        command: ["sh", "-c", "while true; do echo tick; sleep 0.1; done"]
"""


@pytest.fixture
def small_disk(instance: Instance) -> Iterator[Path]:
    """The instance's state folder on a 1 MiB tmpfs, unmounted after the instance is down."""
    folder = instance.state_dir()
    folder.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        instance.teardown()
        instance.projects.clear()
        subprocess.run(["umount", "-l", str(folder)], check=False)


BALLAST = 384 * 1024  # bytes of the 1 MiB tmpfs held by the test until it gives space back


def free_bytes(folder: Path) -> int:
    st = os.statvfs(folder)
    return st.f_bavail * st.f_frsize


def test_a_full_disk_drops_log_lines_and_nothing_else(instance: Instance, small_disk: Path) -> None:
    # space is given back by removing this file: truncating chatty.log could remove a marker written in a moment
    # when a failed state write freed a page, and chatty then need not drop (nor mark) anything again
    ballast = small_disk / "ballast"
    ballast.write_bytes(b"\0" * BALLAST)
    instance.write(COMPOSE)
    instance.run("up", "-d", check=True)
    before = instance.ps()
    daemon = psutil.Process(json.loads((small_disk / "state.json").read_text())["daemon_pid"])
    code = code_fingerprint.__wrapped__()
    instance.wait_for(lambda: free_bytes(small_disk) == 0, timeout=60, message="the tmpfs to fill up")
    restarts = instance.ps()["flaky"]["restarts"]
    # flaky keeps exiting and restarting while the disk is full: each one is a state file write that fails
    instance.wait_for(lambda: instance.ps()["flaky"]["restarts"] >= restarts + 3, message="flaky to restart 3 times")

    rows = instance.ps()
    # the same daemon, unless the code changed meanwhile (then it handed over to a new one: edits in this tree)
    assert daemon.is_running() or code_fingerprint.__wrapped__() != code
    for name in ("chatty", "steady"):  # the same incarnations: a failed write never reached them
        assert rows[name]["state"] in {"running", "healthy"}, rows[name]
        assert rows[name]["pid"] == before[name]["pid"] and rows[name]["restarts"] == 0
    assert rows["steady"]["health"] == "healthy"
    saved = json.loads((small_disk / "state.json").read_text())  # whole, never truncated: the old one is kept
    assert set(saved["services"]) == {"chatty", "flaky", "steady"}
    assert not (small_disk / "state.tmp").exists()
    stop = instance.run("stop", "steady")  # a command while full is answered (its state write fails quietly)
    assert stop.returncode == 0, stop.stderr

    logs = small_disk / "logs"
    ballast.unlink()  # space returns
    try:
        marker = instance.wait_for(
            lambda: _marker_then_lines(logs / "chatty.log", 10),
            message="the line that says what was dropped, and chatty's lines after it",
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}; chatty.log: {_around_markers(logs / 'chatty.log')}") from None
    assert "lines of output" in marker and "dropped between" in marker and "No space left on device" in marker
    (logs / "chatty.log").write_bytes(b"")  # more room, for the state file's next write
    instance.wait_for(
        lambda: json.loads((small_disk / "state.json").read_text())["services"]["steady"]["state"] == "stopped",
        timeout=30,
        message="the state file written again (after the next change or housekeeping round)",
    )
    events = [json.loads(line) for line in (logs / "events.jsonl").read_text().splitlines()]  # every line whole
    instance.run("start", "steady", check=True)
    instance.wait_for(lambda: any("events" in e["message"] and "dropped" in e["message"] for e in _events(logs)))
    assert events and psutil.Process(before["chatty"]["pid"]).is_running()


def _marker_then_lines(path: Path, count: int) -> str | None:
    """The first line that says what was dropped and is followed by ``count`` of the service's own lines before the
    next such line. (Not necessarily at once: the writer copies the pipe's reads, which need not end at a line's
    end, so the line after a marker may be the rest of one whose start was dropped, or empty.)"""
    lines = _lines(path)
    for at, line in enumerate(lines):
        if not line.startswith("[unistack] "):
            continue
        after = 0
        for following in lines[at + 1 :]:
            if following.startswith("[unistack] "):
                break
            after += following.startswith("line ")
        if after >= count:
            return line
    return None


def _around_markers(path: Path) -> str:
    """What the log holds around each marker, for a failure's message."""
    lines = _lines(path)
    found = [at for at, line in enumerate(lines) if line.startswith("[unistack] ")]
    shown = [repr(lines[max(0, at - 1) : at + 3]) for at in found[:5]]
    return f"{len(lines)} lines, {len(found)} markers: " + ("; ".join(shown) or "none")


def _lines(path: Path) -> list[str]:
    with contextlib.suppress(OSError):
        return path.read_text(errors="replace").splitlines()
    return []


def _events(logs: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in _lines(logs / "events.jsonl")]
