"""Faults with real host processes, through the real CLI and daemon: a frozen service (SIGSTOP: it holds its port
and answers nothing) is replaced as soon as its healthcheck has failed, without waiting out its grace period; the
supervisor daemon SIGKILLed in the middle of an ``up``, a ``restart`` and a ``down`` is replaced by the next
command, which finishes the work; and never is a process of the instance left that nobody tracks."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.loopback import free_port

from .conftest import Instance

pytestmark = pytest.mark.integration

# the probe asks the service itself: a frozen one accepts the connection (the kernel does) and never answers, so
# the probe runs into its timeout, which counts as a failure
HTTP_CHECK = """
    healthcheck:
      test: ["CMD", "${PYTHON}", "-c", "import os, urllib.request as u; u.urlopen(os.environ['URL'])"]
      interval: 200ms
      timeout: 1s
      retries: 2
      start_period: 20s
      start_interval: 100ms
"""
MARKER_CHECK = """
    healthcheck:
      test: ["CMD-SHELL", "test -f \\"$$MARKER_DIR/$$UNISTACK_SERVICE.ready\\""]
      interval: 200ms
      timeout: 2s
      retries: 2
      start_period: 20s
      start_interval: 100ms
"""


def svc(name: str, *, env: str = "", extra: str = "", check: str = MARKER_CHECK, setup: str = "") -> str:
    return f"""
  {name}:
    x-unistack:
      process:
        command: ["${{PYTHON}}", "${{SERVICE_PY}}"]
{setup}    environment:
      MARKER_DIR: ${{UNISTACK_STATE_DIR}}
{env}{extra}{check}"""


def instance_processes(state_dir: Path) -> dict[int, str]:
    """Session leaders started for this instance (services, setup steps, probes): pid -> service."""
    found = {}
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getsid(proc.pid) != proc.pid or proc.status() == psutil.STATUS_ZOMBIE:
                continue
            env = proc.environ()
        except (psutil.Error, OSError):
            continue
        if env.get("UNISTACK_STATE_DIR") == str(state_dir) and env.get("UNISTACK_SERVICE"):
            found[proc.pid] = env["UNISTACK_SERVICE"]
    return found


def sessions(pids: set[int]) -> set[int]:
    found = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            found.add(os.getsid(pid))
    return found


def untracked(instance: Instance) -> dict[int, str]:
    """Processes of the instance that `ps` does not name (probes come and go: a few tries); a one-shot's keeper
    leads the session of the pid `ps` names."""
    left: dict[int, str] = {}
    for _ in range(20):
        tracked = {row["pid"] for row in instance.ps().values() if row.get("pid")}
        tracked |= sessions(tracked)
        left = {pid: svc for pid, svc in instance_processes(instance.state_dir()).items() if pid not in tracked}
        if not left:
            return {}
        time.sleep(0.1)
    return left


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def daemon_pid(instance: Instance) -> int:
    return int(json.loads((instance.state_dir() / "state.json").read_text())["daemon_pid"])


def kill_daemon(instance: Instance) -> None:
    pid = daemon_pid(instance)
    os.kill(pid, signal.SIGKILL)
    instance.wait_for(lambda: not alive(pid), 10, f"daemon {pid} gone")


def events_of(instance: Instance, kind: str, service: str | None) -> list[dict]:
    return [e for e in instance.events() if e["kind"] == kind and e["service"] == service]


def test_a_frozen_service_is_replaced_once_its_check_failed(instance: Instance) -> None:
    port = free_port()
    instance.write(
        "services:"
        + svc(
            "web",
            env=f"      PORT: '{port}'\n      URL: http://127.0.0.1:{port}/\n",
            extra="    restart: on-failure\n    stop_grace_period: 120s\n",
            check=HTTP_CHECK,
        )
    )
    instance.run("up", "--wait", "--wait-timeout", "30", check=True)
    pid = instance.ps()["web"]["pid"]
    os.kill(pid, signal.SIGSTOP)
    # within far less than the 120 s grace period: a stopped process cannot use it, so none is waited out
    instance.wait_for(
        lambda: (row := instance.ps()["web"])["pid"] != pid and row["state"] == "healthy",
        timeout=60,
        message="a new incarnation of web, healthy",
    )
    assert not alive(pid)
    killed = events_of(instance, "killed", "web")
    assert [e["message"] for e in killed] == ["web was frozen (stopped or paused) and was killed (SIGKILL) at once"]
    failures = [e["message"] for e in events_of(instance, "check_failed", "web")]
    assert any("timed out after 1s" in m for m in failures), failures  # the probe's timeout counted as a failure
    assert instance.ps()["web"]["restarts"] == 1


def test_daemon_killed_during_up_is_finished_by_the_next_command(instance: Instance) -> None:
    # db's setup step is still running when the daemon dies: the next daemon stops it (nobody tracks it), runs
    # it again, starts db, then api
    setup = '        setup: ["sh", "-c", "test -f setup-done || exec sleep 30"]\n'
    instance.write(
        "services:"
        + svc("db", setup=setup)
        + svc("api", extra="    depends_on:\n      db: {condition: service_healthy}\n")
    )
    instance.run("up", "-d", check=True)
    instance.wait_for(
        lambda: "db" in instance_processes(instance.state_dir()).values(), message="db's setup step running"
    )
    step = next(pid for pid, name in instance_processes(instance.state_dir()).items() if name == "db")
    kill_daemon(instance)
    (instance.folder / "setup-done").write_text("")
    instance.ps()  # the next command brings a new daemon
    instance.wait_for(lambda: not alive(step), message="the untracked setup step stopped")
    instance.wait_for(
        lambda: all(row["state"] == "healthy" for row in instance.ps().values()), message="db and api healthy"
    )
    assert untracked(instance) == {}
    assert [e["message"] for e in events_of(instance, "stopped", "db") if "untracked" in e["message"]]


ONE_SHOT = """
  {name}:
    x-unistack:
      process:
        command: ["sh", "-c", "for i in $$(seq 600); do test -f go && exit {code}; sleep 0.05; done; exit 9"]
  {name}-user:
    depends_on:
      {name}: {{condition: service_completed_successfully}}
    x-unistack:
      process:
        command: ["${{PYTHON}}", "-c", "import time; time.sleep(120)"]
"""


def test_daemon_killed_while_one_shots_run_their_exit_codes_still_decide(instance: Instance) -> None:
    # the next daemon re-adopts the one-shots, but is not their parent: their exit codes come from their keeper
    instance.write("services:" + ONE_SHOT.format(name="good", code=0) + ONE_SHOT.format(name="bad", code=3))
    instance.run("up", "-d", check=True)
    instance.wait_for(lambda: all(instance.ps()[s]["pid"] for s in ("good", "bad")), message="the one-shots running")
    kill_daemon(instance)
    assert instance.ps()["good"]["state"] == "running"  # a new daemon, which adopted them
    (instance.folder / "go").write_text("")
    rows = instance.wait_for(
        lambda: (r := instance.ps())["good-user"]["state"] == "running" and r["bad-user"]["state"] == "blocked" and r,
        message="good's user started, bad's refused",
    )
    assert (rows["good"]["state"], rows["good"]["exit_code"]) == ("exited", 0), rows["good"]
    assert (rows["bad"]["state"], rows["bad"]["exit_code"]) == ("exited", 3), rows["bad"]
    assert "bad exited with code 3" in rows["bad-user"]["reason"], rows["bad-user"]
    assert [e for e in instance.events() if e["kind"] == "adopted" and e["service"] == "good"]
    assert untracked(instance) == {}
    assert not list((instance.state_dir() / "run").glob("exit-*"))  # each code read once, then removed


def test_daemon_killed_during_restart_is_finished_by_the_next_command(instance: Instance) -> None:
    # the api ignores SIGTERM, so its restart waits out its grace period: the daemon dies meanwhile
    instance.write("services:" + svc("api", env="      IGNORE_TERM: '1'\n", extra="    stop_grace_period: 3s\n"))
    instance.run("up", "--wait", "--wait-timeout", "30", check=True)
    old = instance.ps()["api"]["pid"]
    restart = subprocess.Popen(
        [sys.executable, "-m", "unistack", "restart", "api"],
        cwd=instance.folder,
        env=instance.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        instance.wait_for(lambda: events_of(instance, "stopping", "api"), message="api stopping")
        kill_daemon(instance)
        assert restart.wait(timeout=30) != 0  # it lost its daemon
    finally:
        restart.kill()
        restart.communicate()
    row = instance.wait_for(
        lambda: (r := instance.ps()["api"])["pid"] not in (None, old) and r["state"] == "healthy" and r,
        message="a new incarnation of api, healthy",
    )
    assert not alive(old)
    assert row["pid"] != old
    assert untracked(instance) == {}


def test_daemon_killed_during_down_is_finished_by_the_next_command(instance: Instance) -> None:
    # dependents first: web waits out its grace period (it ignores SIGTERM) while db still runs, and the daemon
    # dies then; the next command must not keep db (or anything) running
    instance.write(
        "services:"
        + svc("db")
        + svc(
            "web",
            env="      IGNORE_TERM: '1'\n",
            extra="    stop_grace_period: 3s\n    depends_on:\n      db: {condition: service_healthy}\n",
        )
    )
    instance.run("up", "--wait", "--wait-timeout", "30", check=True)
    pids = {name: row["pid"] for name, row in instance.ps().items()}
    down = subprocess.Popen(
        [sys.executable, "-m", "unistack", "down"],
        cwd=instance.folder,
        env=instance.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        instance.wait_for(lambda: events_of(instance, "stopping", "web"), message="web stopping")
        kill_daemon(instance)
        assert down.wait(timeout=30) != 0
    finally:
        down.kill()
        down.communicate()
    assert instance.ps() == {}  # the next command finishes the down: nothing is up
    for name, pid in pids.items():
        instance.wait_for(
            lambda pid=pid: not alive(pid),
            timeout=15,
            message=f"{name} ({pid}) stopped",
        )
    assert instance_processes(instance.state_dir()) == {}
    assert not (instance.state_dir() / "state.json").exists()
    assert any("finishing the `down`" in e["message"] for e in instance.events())
