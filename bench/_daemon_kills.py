"""The supervisor daemon SIGKILLed in the middle of a command on the real stack, for ``chaos.py``: a ``restart``
of a seeded service, a ``down`` and an ``up``, each killed right after a seeded one of the command's events (a
restart: its service's ``stopping`` or ``stopped``; a down: a service's ``stopping`` or ``stopped``; an up: a
service's ``started``). The next command (``ps``, polled) brings
a new daemon; measured per kill: whether the command was still at work when its daemon died, whether the next
command finished the work (restart: a new incarnation of the service, everything healthy; down: nothing up, no
state file, no process, container or network of the instance left; up: everything healthy), the time from the
kill until then, and what of the instance nobody tracks (must be 0): a process of the instance (its session
leaders) or a container labelled with its project that the daemon's state does not record.

It never writes, reads or loses data: the write load of ``chaos.py`` is over by then; it leaves the stack up."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from _common import log

if TYPE_CHECKING:
    from chaos import Stack

FINISH_TIMEOUT = 300.0
TRIGGER_TIMEOUT = 120.0
KINDS = ("restart", "down", "up")


def run_daemon_kills(stack: Stack, rng: random.Random, per_kind: int) -> list[dict[str, Any]]:
    """``per_kind`` rounds of a killed restart, a killed down and a killed up (the stack is up before and after)."""
    rows = []
    for i in range(per_kind):
        for kind in KINDS:
            row = one_kill(stack, rng, kind)
            log(f"daemon kill {i + 1}/{per_kind} during {kind}: {row}")
            rows.append(row)
    return rows


def one_kill(stack: Stack, rng: random.Random, kind: str) -> dict[str, Any]:
    service = rng.choice(stack.services) if kind == "restart" else None
    if kind == "up":
        args = ["up", "--wait", "--wait-timeout", "900"]
    else:
        until(stack.all_healthy, FINISH_TIMEOUT, "every service healthy")
        args = ["restart", service] if service else ["down"]
    before = stack.ps().get(service or "", {}).get("started_at")
    events = stack.state_dir / "logs" / "events.jsonl"
    seen = EventTail(events, events.stat().st_size if events.exists() else 0)  # what the command writes from now
    command = subprocess.Popen(
        stack.argv(*args),
        cwd=stack.cwd,
        env=stack.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        step, of = rng.choice(steps(stack, kind, service))  # the seeded moment: right after this event
        until(lambda: seen.has(step, of), TRIGGER_TIMEOUT, f"{step} {of}", interval=0.005)
        running = command.poll() is None
        saved = json.loads((stack.state_dir / "state.json").read_text())
        pid = int(saved["daemon_pid"])
        # what the state file says began (a stop signal goes out only after it does): a kill before is a restart
        # the next daemon has nothing to finish of (the old incarnation is re-adopted as it runs)
        begun = bool(saved["down"]) if kind == "down" else kind == "up" or saved["services"][service]["restarting"]
        killed_at = time.time()
        os.kill(pid, signal.SIGKILL)
        until(lambda: not alive(pid), 10, f"daemon {pid} gone")
        try:
            exit_code: int | None = command.wait(timeout=60)
        except subprocess.TimeoutExpired:
            exit_code = None
    finally:
        command.kill()
        command.communicate()
    # mid-command: it was still at work, and lost its daemon (it ended with an error, not with the daemon's answer)
    mid_command = running and exit_code != 0
    row: dict[str, Any] = {
        "kind": kind,
        "after": f"{step} {of}",
        "mid_command": mid_command,
        "command_exit": exit_code,
        "begun_in_state": begun,
    }
    if service:
        row["service"] = service

    def done() -> bool:
        if kind == "down":
            return stack.ps() == {} and not (stack.state_dir / "state.json").exists()
        if kind == "restart" and stack.ps().get(service or "", {}).get("started_at") in (None, before):
            if begun or not seen.has("adopted", service or "") or not stack.all_healthy():
                return False  # the old incarnation still (or nothing yet)
            row["outcome"] = "not begun: the old incarnation re-adopted"
            return True
        return stack.all_healthy()

    try:
        until(done, FINISH_TIMEOUT, f"the {kind} finished")
    except TimeoutError:
        row.update(finished=False, left=left_behind(stack) if kind == "down" else untracked(stack))
        return row
    row.update(finished=True, finish_s=round(time.time() - killed_at, 3))
    row.setdefault("outcome", "finished")
    if kind == "down":
        row["left"] = left_behind(stack)
        row["untracked"] = sum(len(v) for v in row["left"].values())
    else:
        left = untracked(stack)
        row["untracked"] = len(left)
        if left:
            row["untracked_what"] = left
    return row


def steps(stack: Stack, kind: str, service: str | None) -> list[tuple[str, str]]:
    """The events of a command the daemon may be killed right after: a restart's stop and start of its service, a
    down's stops (dependents first), an up's starts (dependencies first)."""
    if kind == "restart" and service:
        return [("stopping", service), ("stopped", service)]  # after its start the command is done
    if kind == "down":
        return [(step, name) for name in stack.services for step in ("stopping", "stopped")]
    return [("started", name) for name in stack.services]


def until(what: Callable[[], Any], timeout: float, message: str, interval: float = 0.3) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := what():
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:g}s waiting for {message}")


class EventTail:
    """The events appended to logs/events.jsonl after ``offset``, read as they come (a few ms apart: the kill
    lands right after the event, not one poll of the whole file later)."""

    def __init__(self, path: Path, offset: int) -> None:
        self.path, self.offset, self.partial = path, offset, b""
        self.kinds: set[tuple[str, str]] = set()

    def has(self, kind: str, service: str) -> bool:
        with contextlib.suppress(OSError), self.path.open("rb") as f:
            if os.fstat(f.fileno()).st_size < self.offset:  # made anew since
                self.offset, self.partial = 0, b""
            f.seek(self.offset)
            data = self.partial + f.read()
            self.offset = f.tell()
            *lines, self.partial = data.split(b"\n")
            for line in lines:
                with contextlib.suppress(ValueError):
                    event = json.loads(line)
                    self.kinds.add((str(event.get("kind")), str(event.get("service"))))
        return (kind, service) in self.kinds


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def session_leaders(stack: Stack) -> dict[int, str]:
    """The instance's services, setup steps and probes on this host (host processes): pid -> service."""
    found = {}
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getsid(proc.pid) != proc.pid or proc.status() == psutil.STATUS_ZOMBIE:
                continue
            env = proc.environ()
        except (psutil.Error, OSError):
            continue
        if env.get("UNISTACK_STATE_DIR") == str(stack.state_dir) and env.get("UNISTACK_SERVICE"):
            found[proc.pid] = env["UNISTACK_SERVICE"]
    return found


def session_of(pid: int) -> int | None:
    try:
        return os.getsid(pid)
    except OSError:
        return None


def networks(project: str) -> list[str]:
    argv = [
        "docker",
        "network",
        "ls",
        "--filter",
        f"label=com.docker.compose.project={project}",
        "--format",
        "{{.Name}}",
    ]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True).stdout.split()


def containers(project: str) -> list[tuple[str, str, bool]]:
    """The project's containers, running or not: (id, service, running)."""
    argv = ["docker", "container", "ls", "-a", "--no-trunc", "--filter", f"label=com.docker.compose.project={project}"]
    form = '{{.ID}} {{.State}} {{.Label "com.docker.compose.service"}}'
    out = subprocess.run([*argv, "--format", form], capture_output=True, text=True, timeout=60, check=True)
    return [
        (ident, service, state == "running")
        for ident, state, service in (line.split() for line in out.stdout.splitlines())
    ]


def untracked(stack: Stack) -> list[str]:
    """What of the instance the daemon does not track (a few tries: probes come and go, a save follows a start).
    Host processes: a session leader of the instance that ``ps`` does not name. Containers: a running one the state
    does not record, or a stopped one of a service the state records another container for, or does not know (a
    finished one-shot's container stays as Compose leaves it: its service is recorded as exited, with no record)."""
    left: list[str] = []
    for _ in range(20):
        if stack.runtime == "process":
            tracked = {row.get("pid") for row in stack.ps().values()}
            tracked |= {sid for pid in tracked if pid and (sid := session_of(pid)) is not None}  # a one-shot's keeper
            left = [f"{name} (pid {pid})" for pid, name in session_leaders(stack).items() if pid not in tracked]
        else:
            saved = json.loads((stack.state_dir / "state.json").read_text())["services"]
            recorded = {name: (info.get("record") or {}).get("id") for name, info in saved.items()}
            left = [
                f"{service} container {ident[:12]}{'' if running else ' (stopped)'}"
                for ident, service, running in containers(stack.project)
                if ident != recorded.get(service) and (running or service not in recorded or recorded[service])
            ]
        if not left:
            return []
        time.sleep(0.2)
    return left


def left_behind(stack: Stack, grace: float = 5.0) -> dict[str, list[str]]:
    """After a finished ``down``: any process, container or network of the instance still there after ``grace``
    seconds (the daemon exits a moment after its answer)."""
    deadline = time.monotonic() + grace
    while any((left := _left(stack)).values()) and time.monotonic() < deadline:
        time.sleep(0.2)
    return {what: names for what, names in left.items() if names}


def _left(stack: Stack) -> dict[str, list[str]]:
    if stack.runtime == "process":
        procs = []
        for proc in psutil.process_iter(["pid", "cmdline"]):
            with contextlib.suppress(psutil.Error, OSError):
                if proc.status() != psutil.STATUS_ZOMBIE and (
                    proc.environ().get("UNISTACK_STATE_DIR") == str(stack.state_dir)
                    or str(stack.state_dir) in " ".join(proc.info["cmdline"] or [])
                ):
                    procs.append(f"{proc.pid} {' '.join(proc.info['cmdline'] or [])[:80]}")
        return {"processes": procs}
    return {
        "containers": [f"{service} {ident[:12]}" for ident, service, _ in containers(stack.project)],
        "networks": networks(stack.project),
    }
