"""Faults on the real stack, measured: seeded SIGKILLs of each service's main process under a steady write load,
and frozen services (SIGSTOP), on host processes and in containers.

The stack (stack/compose.yaml) runs as its own instance (``chaos`` / ``chaos-docker``) with its state in a temp
folder, on a free port. Host processes: the local environment with the dev profile (the Vite dev server is a
long-running ``frontend``), no backend auto-reload; killed: db, backend, proxy, frontend. Containers: ``--env
production`` (the frontend is the one-shot ``frontend-build``); killed: db, backend, proxy.

A client thread POSTs notes to /api/notes through the proxy the whole time and records which were acknowledged
(201) with their ids. Each kill picks a service and a delay (``--seed``), SIGKILLs the service's main process (the
pid ``state.json`` records; in Docker the container's PID 1 as the host sees it, from ``docker inspect``) and
waits for its ``healthy`` event in logs/events.jsonl, then for every service healthy again. A service that went
``fatal`` (its restart budget spent) is counted and restarted with ``unistack restart``. After the run every
acknowledged id is read back through the API (the list, paged, then each missing one by id).

Freezes: SIGSTOP of the main process (it holds its port and answers nothing): the time to ``unhealthy``
(detection: retries x interval, a probe timing out counts as a failure) and to the new incarnation healthy; the
event log says whether it was killed at once (frozen) or after its grace period.

The supervisor daemon SIGKILLed in the middle of a ``restart``, a ``down`` and an ``up`` (``--daemon-kills`` of
each per runtime, after the write load; ``_daemon_kills.py``): whether the next command finished the work, the
time it took, and any process or container of the instance left untracked (must be 0).

The code measured is a copy of ``src/unistack`` taken at the start (edits in the tree during a run neither change
it nor make a daemon hand over). Prints one JSON object; progress on stderr. ``--quick``: 4 kills, 1 freeze and 1
daemon kill of each kind per runtime.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from _common import EXTRA_ENV, busy_warning, environment, free_port, log, use_code_snapshot
from _daemon_kills import KINDS, run_daemon_kills

REPO = Path(__file__).resolve().parent.parent
COMPOSE = REPO / "stack" / "compose.yaml"
UP_TIMEOUT = 900.0
HEAL_TIMEOUT = 180.0
SERVICES = {"process": ["db", "backend", "proxy", "frontend"], "docker": ["db", "backend", "proxy"]}
PROJECTS = {"process": "chaos", "docker": "chaos-docker"}


class Stack:
    def __init__(self, runtime: str, state_parent: Path) -> None:
        self.runtime = runtime
        self.project = PROJECTS[runtime]
        self.port = free_port()
        self.state_dir = state_parent / self.project
        env = {**os.environ, **EXTRA_ENV, "NO_COLOR": "1", "UNISTACK_RUNTIME": runtime, "HTTP_PORT": str(self.port)}
        env["UNISTACK_STATE_DIR"] = str(state_parent)
        env["DEBUGPY_LISTEN"] = ""
        for name in ("UNISTACK_ENV", "COMPOSE_PROJECT_NAME", "COMPOSE_FILE"):
            env.pop(name, None)
        if runtime == "docker":
            env.update(UNISTACK_ENV="production", POSTGRES_PASSWORD="chaos-" + os.urandom(12).hex())
        else:
            env.update(COMPOSE_PROFILES="dev", FRONTEND_MODE="dev", BACKEND_RELOAD="0")
        self.env = env
        self.services = SERVICES[runtime]
        self.fatal: list[str] = []  # services found fatal, once per time (then restarted)

    cwd = REPO

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "unistack", "-f", str(COMPOSE), "-p", self.project, *args]

    def cli(self, *args: str, timeout: float = 180, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            self.argv(*args), cwd=REPO, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"unistack {' '.join(args)} exited {result.returncode}:\n{result.stdout}{result.stderr}")
        return result

    def ps(self) -> dict[str, dict[str, Any]]:
        result = self.cli("ps", "--format", "json", check=False, timeout=60)
        if result.returncode != 0:
            return {}
        return {row["service"]: row for row in json.loads(result.stdout)}

    def all_healthy(self) -> bool:
        """True when every long-running service is healthy; a fatal one (its restart budget spent, perhaps as a
        dependent of the one killed) is counted in ``self.fatal`` and restarted (a fresh budget)."""
        rows = self.ps()
        for name in self.services:
            if rows.get(name, {}).get("state") == "fatal":
                log(f"{name} is fatal (restart budget spent); restarting it")
                self.fatal.append(name)
                self.cli("restart", name, check=False)
                return False
        return all(rows.get(name, {}).get("state") == "healthy" for name in self.services)

    def events(self) -> list[dict[str, Any]]:
        path = self.state_dir / "logs" / "events.jsonl"
        out = []
        with contextlib.suppress(OSError):
            for line in path.read_text().splitlines():
                with contextlib.suppress(ValueError):
                    out.append(json.loads(line))
        return out

    def main_pid(self, service: str) -> int:
        """The service's main process as the host sees it: the pid in state.json, or the container's PID 1."""
        record = json.loads((self.state_dir / "state.json").read_text())["services"][service]["record"]
        if self.runtime == "process":
            return int(record["pid"])
        out = subprocess.run(
            ["docker", "inspect", "--format", "{{.State.Pid}}", record["id"]],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return int(out.stdout.strip())


class Writer(threading.Thread):
    """POSTs notes through the proxy until stopped (bounded in count and time); records each request."""

    def __init__(self, base_url: str, limit_s: float, max_requests: int = 500_000) -> None:
        super().__init__(daemon=True)
        self.base_url = base_url
        self.deadline = time.monotonic() + limit_s
        self.max_requests = max_requests
        self.stop = threading.Event()
        self.requests: list[tuple[float, float, bool]] = []  # (sent, answered, acknowledged)
        self.acknowledged: list[int] = []

    def run(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=5.0, trust_env=False) as client:
            n = 0
            while not self.stop.is_set() and time.monotonic() < self.deadline and n < self.max_requests:
                n += 1
                sent = time.time()
                ok = False
                try:
                    response = client.post("/api/notes", json={"title": f"chaos {n}", "body": "acknowledged?"})
                    if response.status_code == 201:
                        self.acknowledged.append(int(response.json()["id"]))
                        ok = True
                except (httpx.HTTPError, ValueError, KeyError):
                    pass
                self.requests.append((sent, time.time(), ok))
                if not ok:
                    self.stop.wait(0.05)  # the stack is down: do not spin
                else:
                    self.stop.wait(0.02)


def wait_for(what: Any, timeout: float, message: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := what():
            return value
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout:g}s waiting for {message}")


def event_after(stack: Stack, service: str, kinds: set[str], after: float) -> dict[str, Any] | None:
    for event in stack.events():
        if event.get("service") == service and event.get("kind") in kinds and float(event["at"]) > after:
            return event
    return None


def percentiles(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    ordered = sorted(values)

    def pick(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)

    return {"n": len(values), "p50": round(statistics.median(ordered), 3), "p95": pick(0.95), "max": pick(1.0)}


def error_window(requests: list[tuple[float, float, bool]], start: float, end: float) -> float:
    """From the first failed request sent after ``start`` to the first success after it (0: none failed)."""
    failed_at = None
    for sent, answered, ok in requests:
        if sent < start or sent >= end:
            continue
        if not ok and failed_at is None:
            failed_at = sent
        elif ok and failed_at is not None:
            return answered - failed_at
    return 0.0 if failed_at is None else end - failed_at


def read_back(base_url: str, acknowledged: list[int]) -> dict[str, Any]:
    """Every acknowledged note, read back through the API: the list, paged, then each one missing by id."""
    seen: set[int] = set()
    with httpx.Client(base_url=base_url, timeout=30.0, trust_env=False) as client:
        for page in range(10_000):
            rows = client.get("/api/notes", params={"skip": page * 1000, "limit": 1000}).json()
            seen.update(int(row["id"]) for row in rows)
            if len(rows) < 1000:
                break
        missing = [i for i in acknowledged if i not in seen]
        lost = [i for i in missing if client.get(f"/api/notes/{i}").status_code != 200]
    return {"acknowledged": len(acknowledged), "lost": len(lost), "lost_ids": lost[:20]}


def run_kills(stack: Stack, rng: random.Random, kills: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for i in range(kills):
        wait_for(stack.all_healthy, HEAL_TIMEOUT, "every service healthy", interval=0.3)
        service = rng.choice(stack.services)
        time.sleep(rng.uniform(0.3, 2.0))  # the seeded moment of the kill (a bench, not a test)
        pid = stack.main_pid(service)
        killed_at = time.time()
        os.kill(pid, signal.SIGKILL)
        event = wait_for(
            lambda service=service, at=killed_at: event_after(stack, service, {"healthy", "fatal"}, at),
            HEAL_TIMEOUT,
            f"{service} healthy after its kill",
        )
        row = {"service": service, "killed_at": killed_at, "pid": pid}
        if event["kind"] == "fatal":
            row["fatal"] = True
            log(f"kill {i + 1}/{kills}: {service} went fatal (restart budget spent)")
        else:
            row["to_healthy_s"] = round(float(event["at"]) - killed_at, 3)
            log(f"kill {i + 1}/{kills}: {service} (pid {pid}) healthy again in {row['to_healthy_s']:.2f}s")
        rows.append(row)
    wait_for(stack.all_healthy, HEAL_TIMEOUT, "every service healthy", interval=0.3)
    return rows


def run_freezes(stack: Stack, rng: random.Random, freezes: int) -> list[dict[str, Any]]:
    rows = []
    for i in range(freezes):
        wait_for(stack.all_healthy, HEAL_TIMEOUT, "every service healthy", interval=0.3)
        service = "backend" if i == 0 else rng.choice(stack.services)
        pid = stack.main_pid(service)
        frozen_at = time.time()
        os.kill(pid, signal.SIGSTOP)
        try:
            healthy = wait_for(
                lambda service=service, at=frozen_at: event_after(stack, service, {"healthy", "fatal"}, at),
                HEAL_TIMEOUT,
                f"{service} replaced after its freeze",
            )
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)  # if it is still there (it should not be)
        unhealthy = event_after(stack, service, {"unhealthy"}, frozen_at)
        killed = event_after(stack, service, {"killed"}, frozen_at)
        started = event_after(stack, service, {"started"}, frozen_at)
        row = {
            "service": service,
            "detected_s": None if unhealthy is None else round(float(unhealthy["at"]) - frozen_at, 3),
            "killed_s": None if killed is None else round(float(killed["at"]) - frozen_at, 3),
            "new_incarnation_s": None if started is None else round(float(started["at"]) - frozen_at, 3),
            "healthy_s": round(float(healthy["at"]) - frozen_at, 3),
            "killed_at_once": bool(killed and "frozen" in killed["message"]),
        }
        log(f"freeze {i + 1}/{freezes}: {service}: {row}")
        rows.append(row)
    return rows


def summarise_daemon_kills(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per kind of command: how many kills, how many found it still at work, how many the next command finished,
    the time from the kill until it had, and what was left untracked (must be 0); the rows themselves too."""
    out: dict[str, Any] = {}
    for kind in KINDS:
        mine = [row for row in rows if row["kind"] == kind]
        out[kind] = {
            "kills": len(mine),
            "mid_command": sum(1 for row in mine if row["mid_command"]),
            "finished_by_next_command": sum(1 for row in mine if row.get("outcome") == "finished"),
            # killed before the state recorded the restart (no stop signal sent yet): re-adopted, nothing to finish
            "not_begun_readopted": sum(1 for row in mine if str(row.get("outcome")).startswith("not begun")),
            "failed": sum(1 for row in mine if not row.get("finished")),
            "kill_to_finished_s": percentiles([row["finish_s"] for row in mine if "finish_s" in row]),
            "untracked": sum(int(row.get("untracked", 0)) for row in mine),
        }
    out["rows"] = rows
    return out


def one_runtime(runtime: str, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    stack = Stack(runtime, folder)
    rng = random.Random(f"{args.seed}-{runtime}")
    log(f"{runtime}: up on port {stack.port} (state in {stack.state_dir})")
    began = time.monotonic()
    result: dict[str, Any] = {"services_killed": stack.services, "port": stack.port}
    try:
        stack.cli("up", "--wait", "--wait-timeout", f"{UP_TIMEOUT:g}", timeout=UP_TIMEOUT + 120)
        result["up_s"] = round(time.monotonic() - began, 1)
        writer = Writer(f"http://127.0.0.1:{stack.port}", limit_s=3600)
        writer.start()
        wait_for(lambda: writer.acknowledged, 60, "the first acknowledged write")
        kills = run_kills(stack, rng, args.kills)
        freezes = run_freezes(stack, rng, args.freezes)
        writer.stop.set()
        writer.join(timeout=30)
        ends = [k["killed_at"] for k in kills[1:]] + ([kills[-1]["killed_at"] + 60] if kills else [])
        for kill, end in zip(kills, ends, strict=True):
            kill["error_window_s"] = round(error_window(writer.requests, kill["killed_at"], end), 3)
        by_service: dict[str, Any] = {}
        for service in stack.services:
            mine = [k for k in kills if k["service"] == service]
            by_service[service] = {
                "kills": len(mine),
                "fatal_after_its_kill": sum(1 for k in mine if k.get("fatal")),
                "kill_to_healthy_s": percentiles([k["to_healthy_s"] for k in mine if "to_healthy_s" in k]),
                "client_error_window_s": percentiles([k["error_window_s"] for k in mine]),
            }
        failed = sum(1 for *_, ok in writer.requests if not ok)
        result.update(
            kills=len(kills),
            writes={
                "requests": len(writer.requests),
                "failed": failed,
                **read_back(writer.base_url, writer.acknowledged),
            },
            per_service=by_service,
            fatal_services={name: stack.fatal.count(name) for name in sorted(set(stack.fatal))},
            freezes=freezes,
        )
        if args.daemon_kills:
            result["daemon_kills"] = summarise_daemon_kills(run_daemon_kills(stack, rng, args.daemon_kills))
    finally:
        down = stack.cli("down", "-v", "-t", "10", check=False, timeout=300)
        result["down_ok"] = down.returncode == 0
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runtime", choices=["process", "docker", "both"], default="both")
    parser.add_argument("--kills", type=int, default=100, help="kills per runtime (default 100)")
    parser.add_argument("--freezes", type=int, default=3, help="freezes per runtime (default 3)")
    parser.add_argument(
        "--daemon-kills", type=int, default=3, help="daemon SIGKILLs per runtime during each of restart, down, up (3)"
    )
    parser.add_argument("--seed", default="11")
    parser.add_argument("--quick", action="store_true", help="4 kills, 1 freeze, 1 daemon kill per kind per runtime")
    args = parser.parse_args()
    if args.quick:
        args.kills, args.freezes, args.daemon_kills = 4, 1, 1
    report: dict[str, Any] = {"benchmark": "chaos", **environment(), "seed": args.seed}
    runtimes = ["process", "docker"] if args.runtime == "both" else [args.runtime]
    failed = False
    with tempfile.TemporaryDirectory(prefix="unistack-chaos-") as tmp:
        Path(tmp).chmod(0o755)  # as root, the database runs as postgres, who must reach its folder
        # the code measured is a copy taken now: edits to the tree during the run do not make a daemon hand over
        use_code_snapshot(Path(tmp))
        for runtime in runtimes:
            try:
                report[runtime] = one_runtime(runtime, args, Path(tmp))
            except Exception as exc:  # a run that failed is reported, and the script exits 1
                log(f"{runtime}: failed: {exc}")
                report[runtime] = {"error": str(exc)[-2000:]}
                failed = True
    report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    if note := busy_warning(report):
        report["note"] = note
    print(json.dumps(report, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
