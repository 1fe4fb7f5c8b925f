"""The engine with real host processes, through the real CLI and daemon."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import psutil
import pytest

from .conftest import Instance

pytestmark = pytest.mark.integration

CHECK = """
    healthcheck:
      test: ["CMD-SHELL", "test -f \\"$$MARKER_DIR/$$UNISTACK_SERVICE.ready\\" && test ! -f \\"$$MARKER_DIR/sick\\""]
      interval: 200ms
      timeout: 2s
      retries: 2
      start_period: 20s
      start_interval: 100ms
"""

HEALTHY_DB = "    depends_on:\n      db:\n        condition: service_healthy\n"


def svc(name: str, *, env: str = "", deps: str = "", extra: str = "", check: bool = True) -> str:
    return f"""
  {name}:
    x-unistack:
      process:
        command: ["${{PYTHON}}", "${{SERVICE_PY}}"]
    environment:
      MARKER_DIR: ${{UNISTACK_STATE_DIR}}
{env}{deps}{extra}{CHECK if check else ""}"""


def by_service(events: list[dict], kind: str) -> dict[str, float]:
    return {e["service"]: e["at"] for e in events if e["kind"] == kind}


def test_chain_starts_in_order_gated_on_health(instance: Instance) -> None:
    instance.write(
        "services:"
        + svc("db", env="      READY_AFTER: '0.8'\n")
        + svc(
            "api",
            env="      READY_AFTER: '0.3'\n",
            deps="    depends_on:\n      db:\n        condition: service_healthy\n",
        )
        + svc("web", deps="    depends_on: [api]\n", check=False)
    )
    result = instance.run("up", "--wait", "--wait-timeout", "30")
    assert result.returncode == 0, result.stdout + result.stderr
    events = instance.events()
    healthy, started = by_service(events, "healthy"), by_service(events, "started")
    assert healthy["db"] <= started["api"]
    assert started["api"] <= started["web"]
    ps = instance.ps()
    assert ps["db"]["health"] == "healthy" and ps["web"]["state"] == "running"
    assert ps["db"]["last_check"]["ok"] is True and ps["db"]["last_check"]["at"].endswith("Z")
    assert psutil.pid_exists(ps["db"]["pid"])


def test_the_daemon_started_ahead_is_an_ordinary_daemon_of_the_instance(instance: Instance) -> None:
    """``up`` starts a daemon's interpreter before it loads the configuration; once told to go it is a daemon
    like any other: its command line names the module and the state folder (the title it takes then), it logs
    to daemon.log, and no other process started ahead is left (a second ``up`` finds the daemon, and the one it
    started ahead is gone when it exits)."""
    instance.write("services:" + svc("db"))
    for _ in range(2):
        result = instance.run("up", "--wait", "--wait-timeout", "30")
        assert result.returncode == 0, result.stdout + result.stderr
    state_dir = instance.state_dir()
    pid = json.loads((state_dir / "state.json").read_text())["daemon_pid"]
    words = " ".join(psutil.Process(pid).cmdline()).split()
    assert words[1:] == ["-m", "unistack.control.daemon", str(state_dir)]
    assert (state_dir / "logs" / "daemon.log").is_file()
    ours = [p for p in psutil.process_iter(["cmdline"]) if str(state_dir) in " ".join(p.info["cmdline"] or [])]
    assert [p.pid for p in ours] == [pid]
    assert not [p for p in psutil.process_iter(["cmdline"]) if "--standby" in (p.info["cmdline"] or [])]


def test_unhealthy_service_is_restarted_and_heals(instance: Instance) -> None:
    instance.write(
        "services:"
        + svc(
            "api",
            env="      SICK_FILE: ${UNISTACK_STATE_DIR}/sick\n      HEAL_ON_START: '1'\n",
            extra="    restart: always\n",
        )
    )
    instance.run("up", "--wait", "--wait-timeout", "30", check=True)
    first_pid = instance.ps()["api"]["pid"]
    (instance.state_dir() / "sick").write_text("")
    healed = instance.wait_for(
        lambda: (row := instance.ps()["api"])["restarts"] >= 1 and row["health"] == "healthy" and row,
        message="api restarted and healthy again",
    )
    assert healed["pid"] != first_pid
    assert not psutil.pid_exists(first_pid)
    kinds = [e["kind"] for e in instance.events() if e["service"] == "api"]
    assert "unhealthy" in kinds and "restarting" in kinds


def test_crash_loop_goes_fatal_and_notifies(instance: Instance) -> None:
    instance.write(
        """
x-unistack:
  notify:
    - command: ["sh", "-c", "cat >> alerts.jsonl"]
services:
  flaky:
    restart: on-failure:2
    x-unistack:
      process:
        command: ["sh", "-c", "echo about to fail; echo really failing >&2; exit 3"]
      restart:
        backoff_initial: 0.1
  after:
    depends_on: [flaky]
    x-unistack:
      process:
        command: ["sleep", "60"]
"""
    )
    result = instance.run("up", "--wait", "--wait-timeout", "20")
    assert result.returncode == 1
    alerts = instance.folder / "alerts.jsonl"
    instance.wait_for(alerts.exists, message="the notify command ran")
    event = json.loads(alerts.read_text().splitlines()[0])
    assert event["event"] == "service_fatal" and event["service"] == "flaky"
    assert event["project"] == "demo" and event["attempts"] == 2 and event["exit_code"] == 3
    assert "really failing" in event["last_logs"]
    assert "last_check" in event
    assert "flaky" in result.stdout and "fatal" in result.stdout
    assert instance.ps()["flaky"]["state"] == "fatal"


def test_stop_in_reverse_order_with_grace_then_kill(instance: Instance) -> None:
    instance.write(
        "services:"
        + svc("db", extra="    stop_grace_period: 1s\n", env="      IGNORE_TERM: '1'\n")
        + svc("api", deps="    depends_on: [db]\n")
    )
    instance.run("up", "--wait", "--wait-timeout", "30", check=True)
    pids = {name: row["pid"] for name, row in instance.ps().items()}
    instance.run("down", check=True)
    events = instance.events()
    stopping = [e["service"] for e in events if e["kind"] == "stopping"]
    assert stopping == ["api", "db"]
    killed = [e for e in events if e["kind"] == "killed"]
    assert [e["service"] for e in killed] == ["db"] and "killed" in killed[0]["message"]
    for pid in pids.values():
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_killed_daemon_is_replaced_and_services_readopted(instance: Instance) -> None:
    instance.write("services:" + svc("db") + svc("api", deps="    depends_on: [db]\n"))
    instance.run("up", "--wait", "--wait-timeout", "30", check=True)
    state = json.loads((instance.state_dir() / "state.json").read_text())
    before = {name: row["pid"] for name, row in instance.ps().items()}
    os.kill(state["daemon_pid"], signal.SIGKILL)
    instance.wait_for(lambda: not psutil.pid_exists(state["daemon_pid"]), message="daemon gone")
    # an incarnation the dead daemon started but never recorded: the new daemon must not leave it untracked
    stray_env = {**instance.env, "UNISTACK_STATE_DIR": str(instance.state_dir()), "UNISTACK_SERVICE": "db"}
    stray = subprocess.Popen(["sleep", "300"], env=stray_env, start_new_session=True)
    after = instance.ps()  # the next command brings a new daemon that adopts the live services
    assert {name: row["pid"] for name, row in after.items()} == before
    assert all(row["state"] in {"running", "healthy", "starting"} for row in after.values())
    assert stray.wait(timeout=15) != 0  # stopped by the new daemon
    new_state = json.loads((instance.state_dir() / "state.json").read_text())
    assert new_state["daemon_pid"] != state["daemon_pid"]
    instance.wait_for(lambda: instance.ps()["db"]["health"] == "healthy", message="adopted db probed healthy")
    instance.run("down", "-t", "2", check=True)
    for pid in before.values():
        instance.wait_for(lambda pid=pid: not _alive(pid), timeout=10, message=f"pid {pid} stopped")


def test_two_instances_side_by_side(instance: Instance) -> None:
    instance.write(
        "services:"
        + svc("web", env="      PORT: ${WEB_PORT}\n", extra='    ports: ["127.0.0.1:${WEB_PORT}:${WEB_PORT}"]\n')
    )
    for name, port in (("a", "18471"), ("b", "18472")):
        instance.env["WEB_PORT"] = port
        result = instance.run("up", "--wait", "--wait-timeout", "30", check=True, project=name)
        assert f"web is reachable at http://127.0.0.1:{port}" in result.stdout
    a, b = instance.ps(project="a"), instance.ps(project="b")
    assert a["web"]["pid"] != b["web"]["pid"]
    assert a["web"]["health"] == b["web"]["health"] == "healthy"
    instance.run("down", check=True, project="a")
    assert instance.ps(project="a") == {}
    assert instance.ps(project="b")["web"]["state"] in {"healthy", "running"}


def test_unavailable_dependency_is_named_with_its_last_check(instance: Instance) -> None:
    instance.write("services:" + svc("db", env="      READY_AFTER: '600'\n") + svc("api", deps=HEALTHY_DB))
    result = instance.run("up", "--wait", "--wait-timeout", "2")
    assert result.returncode == 1
    assert "db" in result.stdout and "starting" in result.stdout
    assert "api" in result.stdout and "waits for db" in (instance.state_dir() / "logs" / "events.jsonl").read_text()


def test_service_that_exits_at_once_shows_its_last_lines(instance: Instance) -> None:
    instance.write(
        """
services:
  broken:
    x-unistack:
      process:
        command: ["sh", "-c", "echo 'config file /etc/x missing'; exit 4"]
"""
    )
    result = instance.run("up", "--wait", "--wait-timeout", "10")
    assert result.returncode == 1
    assert "config file /etc/x missing" in result.stdout
    assert "code 4" in result.stdout


def test_logs_follow_across_restarts(instance: Instance) -> None:
    instance.write(
        """
services:
  ticker:
    restart: always
    x-unistack:
      process:
        command: ["sh", "-c", "echo tick $$$$; sleep 0.3; exit 1"]
      restart:
        backoff_initial: 0.1
        backoff_max: 0.2
"""
    )
    instance.run("up", "-d", check=True)
    instance.wait_for(lambda: instance.ps()["ticker"]["restarts"] >= 3, message="three restarts")
    out = instance.run("logs", "--tail", "all", "ticker", check=True).stdout
    ticks = {line.split()[-1] for line in out.splitlines() if "tick" in line}
    assert len(ticks) >= 3  # one line from each incarnation, each with its own pid
    assert out.splitlines()[0].startswith("ticker")


def test_restart_and_stop_commands(instance: Instance) -> None:
    instance.write("services:" + svc("db") + svc("api", deps="    depends_on: [db]\n"))
    instance.run("up", "--wait", "--wait-timeout", "30", check=True)
    pid = instance.ps()["api"]["pid"]
    instance.run("restart", "api", check=True)
    assert instance.ps()["api"]["pid"] != pid
    instance.run("stop", "api", check=True)
    assert instance.ps()["api"]["state"] == "stopped"
    assert instance.ps()["db"]["state"] in {"healthy", "running"}
    instance.run("start", "api", check=True)
    instance.wait_for(lambda: instance.ps()["api"]["health"] == "healthy", message="api back")


def test_up_reconciles_a_running_instance(instance: Instance) -> None:
    instance.write("services:" + svc("db") + svc("old", check=False))
    instance.run("up", "--wait", "--wait-timeout", "30", check=True)
    db_pid = instance.ps()["db"]["pid"]
    instance.write("services:" + svc("db") + svc("new", check=False))
    result = instance.run("up", "--wait", "--wait-timeout", "30", check=True)
    assert "old: removed" in result.stdout and "new: started" in result.stdout
    ps = instance.ps()
    assert set(ps) == {"db", "new"} and ps["db"]["pid"] == db_pid


def test_racing_commands_are_serialised(instance: Instance) -> None:
    instance.write("services:" + svc("db", env="      READY_AFTER: '0.5'\n"))
    argv = [sys.executable, "-m", "unistack", "up", "--wait", "--wait-timeout", "30"]
    procs = [
        subprocess.Popen(argv, cwd=instance.folder, env=instance.env, stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    instance.projects.add(None)
    outs = [p.communicate(timeout=60)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    starts = [e for e in instance.events() if e["kind"] == "started" and e["service"] == "db"]
    assert len(starts) == 1  # one started db; the others found it running


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def test_state_folders_and_volumes_survive_down_but_not_down_v(instance: Instance) -> None:
    instance.write(
        "services:"
        + svc("db", check=False, env="      DATA: ${UNISTACK_VOLUMES_DIR}/data\n")
        + "\nvolumes:\n  data: {}\n"
    )
    instance.run("up", "-d", check=True)
    state_dir = instance.state_dir()
    assert (state_dir / "run").stat().st_mode & 0o777 == 0o700
    data = state_dir / "volumes" / "data"
    assert data.is_dir()
    (data / "row").write_text("kept")
    instance.run("down", check=True)
    instance.run("up", "-d", check=True)
    assert (data / "row").read_text() == "kept"
    instance.run("down", "-v", check=True)
    assert not data.exists()
    assert (state_dir / "logs" / "db.log").exists()


@contextlib.contextmanager
def _attached_up(instance: Instance) -> Iterator[subprocess.Popen[str]]:
    argv = [sys.executable, "-m", "unistack", "up"]
    proc = subprocess.Popen(argv, cwd=instance.folder, env=instance.env, stdout=subprocess.PIPE, text=True)
    instance.projects.add(None)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def _read_until(proc: subprocess.Popen[str], needle: str, timeout: float = 30) -> list[str]:
    assert proc.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line.rstrip("\n"))
        if needle in line:
            return seen
    raise AssertionError(f"{needle!r} not printed; got:\n" + "\n".join(seen))


def test_attached_up_interleaves_logs_and_stops_on_ctrl_c(instance: Instance) -> None:
    instance.write("services:" + svc("db") + svc("api", deps="    depends_on: [db]\n"))
    with _attached_up(instance) as proc:
        # api waits only for db to start (service_started): on a busy machine it can print before db does
        seen = _read_until(proc, "api ready")
        while not any(line.startswith("db ") and "| db starting" in line for line in seen):
            seen += _read_until(proc, "db starting")  # the engine's event "db starting" matches too: go on
        assert any(line.startswith("db ") and "| db starting" in line for line in seen), seen
        assert any(line.startswith("api ") and "| api ready" in line for line in seen), seen
        pids = {name: row["pid"] for name, row in instance.ps().items()}
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0
        assert "Gracefully stopping" in out
        for pid in pids.values():
            instance.wait_for(lambda pid=pid: not _alive(pid), timeout=10, message=f"pid {pid} stopped")


def test_second_ctrl_c_forces(instance: Instance) -> None:
    instance.write(
        "services:" + svc("stubborn", env="      IGNORE_TERM: '1'\n", extra="    stop_grace_period: 60s\n", check=False)
    )
    with _attached_up(instance) as proc:
        _read_until(proc, "stubborn ready")
        pid = instance.ps()["stubborn"]["pid"]
        proc.send_signal(signal.SIGINT)
        _read_until(proc, "ignores SIGTERM")
        began = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
        assert "Forcing stop" in out and "killed" in out
        assert time.monotonic() - began < 10  # far less than the 60 s grace period
        instance.wait_for(lambda: not _alive(pid), timeout=10, message="stubborn killed")


def test_setup_step_runs_before_start_and_its_failure_is_reported(instance: Instance) -> None:
    instance.write(
        """
services:
  app:
    x-unistack:
      process:
        setup: ["sh", "-c", "echo installing; echo done > installed.txt"]
        command: ["sh", "-c", "cat installed.txt; sleep 60"]
  broken:
    x-unistack:
      process:
        setup: "echo 'npm ERR! 404 left-pad'; exit 7"
        command: ["sleep", "60"]
  proxy:
    depends_on: [broken]
    x-unistack:
      process:
        command: ["sleep", "60"]
"""
    )
    result = instance.run("up", "--wait", "--wait-timeout", "20")
    assert result.returncode == 1
    assert "setup failed with exit code 7" in result.stdout and "left-pad" in result.stdout
    ps = instance.ps()
    assert ps["app"]["state"] == "running" and ps["broken"]["state"] == "fatal" and ps["proxy"]["state"] == "blocked"
    logs = instance.run("logs", "app", check=True).stdout
    assert "installing" in logs and "done" in logs


def test_daemon_hands_over_to_a_newer_one_without_stopping_services(instance: Instance) -> None:
    from unistack.control.client import DaemonClient

    instance.write("services:" + svc("db"))
    instance.run("up", "--wait", "--wait-timeout", "30", check=True)
    old_daemon = json.loads((instance.state_dir() / "state.json").read_text())["daemon_pid"]
    pid = instance.ps()["db"]["pid"]
    assert DaemonClient(instance.state_dir()).call("handover") == {"handed_over": True}
    instance.wait_for(lambda: not _alive(old_daemon), timeout=10, message="old daemon gone")
    assert instance.ps()["db"]["pid"] == pid
    assert json.loads((instance.state_dir() / "state.json").read_text())["daemon_pid"] != old_daemon


def test_a_new_daemon_stops_incarnations_nobody_tracks(instance: Instance) -> None:
    instance.write("services:" + svc("db", check=False))
    stray_env = {**instance.env, "UNISTACK_STATE_DIR": str(instance.state_dir()), "UNISTACK_SERVICE": "db"}
    stray = subprocess.Popen(["sleep", "300"], env=stray_env, start_new_session=True)
    instance.run("up", "-d", check=True)
    assert stray.wait(timeout=15) != 0
    events = [e for e in instance.events() if e["kind"] == "stopped"]
    assert any("untracked" in e["message"] for e in events)


def test_a_replacement_daemon_does_not_rerun_finished_one_shots(instance: Instance) -> None:
    instance.write(
        """
services:
  init:
    restart: "no"
    x-unistack:
      process:
        command: ["sh", "-c", "date +%s.%N >> runs.txt"]
  app:
    depends_on:
      init: {condition: service_completed_successfully}
    x-unistack:
      process:
        command: ["sleep", "300"]
"""
    )
    instance.run("up", "--wait", "--wait-timeout", "30", check=True)
    daemon = json.loads((instance.state_dir() / "state.json").read_text())["daemon_pid"]
    os.kill(daemon, signal.SIGKILL)
    instance.wait_for(lambda: not _alive(daemon), message="daemon gone")
    ps = instance.ps()
    assert ps["init"]["state"] == "exited" and ps["app"]["state"] == "running"
    assert len((instance.folder / "runs.txt").read_text().splitlines()) == 1


def test_a_published_port_in_use_is_refused(instance: Instance) -> None:
    import socket

    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # as Caddy does: sharing must still fail
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        instance.write(
            f"""
services:
  web:
    ports: ["127.0.0.1:{port}:{port}"]
    x-unistack:
      process:
        command: ["sleep", "300"]
"""
        )
        result = instance.run("up", "--wait", "--wait-timeout", "10")
    assert result.returncode == 2  # found before anything starts (tests/integration/test_ports.py: the holder named)
    assert f"web cannot publish 127.0.0.1:{port}/tcp: process {os.getpid()} (" in result.stderr
