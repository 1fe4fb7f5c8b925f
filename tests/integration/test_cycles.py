"""`up` / `down` cycles leak nothing, and a daemon that stays across `restart` cycles keeps its descriptors, threads
and children (a few cycles here; bench/cycles.py runs 50 with PostgreSQL and measures the slopes)."""

from __future__ import annotations

import json
from pathlib import Path

import psutil
import pytest

from tests.loopback import free_port, port_free

from .conftest import Instance

pytestmark = pytest.mark.integration

CYCLES = 3


def compose(port: int) -> str:
    return f"""
services:
  db:
    x-unistack:
      process:
        command: ["${{PYTHON}}", "${{SERVICE_PY}}"]
    environment:
      MARKER_DIR: ${{UNISTACK_STATE_DIR}}
      READY_AFTER: "0.2"
    healthcheck:
      test: ["CMD-SHELL", "test -f \\"$$MARKER_DIR/db.ready\\""]
      interval: 30s
      start_period: 20s
      start_interval: 100ms
  web:
    depends_on: {{db: {{condition: service_healthy}}}}
    ports: ["127.0.0.1:{port}:{port}"]
    x-unistack:
      process:
        command: ["sh", "-c", "echo web; exec \\"$$PYTHON\\" \\"$$SERVICE_PY\\""]
    environment:
      PORT: "{port}"
"""


def instance_processes(folder: Path) -> list[psutil.Process]:
    """Daemons, services, log writers and probes of instances under ``folder``."""
    mark, found = str(folder), []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if mark in " ".join(proc.info["cmdline"] or []) or proc.environ().get("UNISTACK_STATE_DIR", "").startswith(
                mark
            ):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def test_up_down_cycles_leave_nothing_behind(instance: Instance) -> None:
    port = free_port()
    instance.write(compose(port))
    state = instance.state_dir()
    for _ in range(CYCLES):
        instance.run("up", "--wait", "--wait-timeout", "30", check=True)
        assert not port_free(port)
        writers = [p for p in instance_processes(instance.folder) if "logwriter.py" in " ".join(p.cmdline())]
        assert sorted(p.cmdline()[-1] for p in writers) == ["db.log", "web.log"]  # one per service
        instance.run("down", check=True)
        instance.wait_for(lambda: not instance_processes(instance.folder), timeout=5, message="no process left")
        assert port_free(port)
        assert not (state / "state.json").exists() and not list((state / "run").iterdir())
    lines = (state / "logs" / "web.log").read_text().splitlines()
    assert lines.count("web") == CYCLES  # every incarnation's output reached the file through its writer


def test_a_daemon_that_stays_keeps_its_descriptors_threads_and_children(instance: Instance) -> None:
    instance.write(compose(free_port()))
    instance.run("up", "--wait", "--wait-timeout", "30", check=True)
    daemon = psutil.Process(json.loads((instance.state_dir() / "state.json").read_text())["daemon_pid"])
    samples = []
    for _ in range(CYCLES + 1):
        instance.run("restart", check=True)
        instance.run("up", "--wait", "--wait-timeout", "30", check=True)
        # two services, each with its log writer; no probe due (interval 30 s) while sampling
        instance.wait_for(lambda: len(daemon.children()) == 4, timeout=5, message="the old writers reaped")
        samples.append((daemon.num_fds(), daemon.num_threads()))
    assert (
        daemon.is_running()
        and daemon.pid == json.loads((instance.state_dir() / "state.json").read_text())["daemon_pid"]
    )
    first_fds = samples[0][0]
    assert all(fds <= first_fds + 2 for fds, _ in samples), samples  # + 2: a probe or a request in flight
    assert max(threads for _, threads in samples) <= samples[0][1] + 2, samples  # the spawn pool may grow by one
