"""A daemon that holds its instance but does not answer (SIGSTOP, hung) is named with the way out, never waited
for forever; once it answers again everything works as before."""

from __future__ import annotations

import json
import os
import signal

from tests.integration.conftest import Instance

COMPOSE = """
services:
  web:
    x-unistack:
      process:
        command: ["sleep", "300"]
"""


def test_ps_names_a_stopped_daemon_and_how_to_recover(instance: Instance) -> None:
    instance.write(COMPOSE)
    instance.run("up", "-d", check=True)
    pid = int(json.loads((instance.state_dir() / "state.json").read_text())["daemon_pid"])
    os.kill(pid, signal.SIGSTOP)
    try:
        result = instance.run("ps", timeout=60)  # raises if ps waited for the daemon instead
    finally:
        os.kill(pid, signal.SIGCONT)
    assert result.returncode == 1, result.stderr
    assert f"(pid {pid}) does not answer within 10 s" in result.stderr
    assert f"kill -CONT {pid}" in result.stderr and "re-adopts the services" in result.stderr
    assert instance.ps()["web"]["state"] == "running"
