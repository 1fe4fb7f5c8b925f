"""Load: the real stack under many connections, slow clients and many API clients, in each runtime.

For each runtime (host processes; containers with ``--env production`` when an engine answers), an instance of
stack/compose.yaml of its own (``bench-load``, ``bench-load-docker``; static frontend, no reload, a free port) is
brought up with ``up --wait``; every client goes through its proxy on 127.0.0.1 (the only way in). Scenarios, each
with one ordinary user (``probe``: GET /api/notes every 100 ms) measured meanwhile:

- ``baseline``: the probe alone;
- ``connections``: ``--connections`` (1,000) keep-alive connections opened at once, each GETting /_proxy/health
  (Caddy's own answer) and /api/health (the backend's) one after another;
- ``slow_clients``: ``--slow-headers`` (500) connections sending their headers a byte a second (slowloris) and
  ``--slow-bodies`` (100) sending a POST body to /api/notes a byte a second (which reverse_proxy streams to the
  backend), for ``--slow-seconds`` (15, longer than the proxy's ``read_header`` timeout of 10 s and than its
  ``read_body``, which the instance runs with ``--read-body`` = 10 s instead of the stack's 2 min so that one phase
  sees it): when the proxy cut them, how many were still open at the end (0 for both when the Caddyfile works),
  and whether the probe was still served;
- ``api``: ``--api-clients`` (200) concurrent API clients (GET /api/notes, one POST in ten) for ``--seconds``;
- ``api_database_locked``: the same while a session holds ``LOCK TABLE note`` for ``--lock-seconds`` (5): the pool's
  connections all wait on the lock, and what the backend does with the other requests (503 + Retry-After after
  DB_POOL_TIMEOUT, then served once the lock is gone).

Per scenario: successes, failures, statuses, latency p50/p99/max, and the RSS (MB) of Caddy and of the backend
(their whole process trees; in containers the container's processes) before, at most during, and after.
``--quick``: 200 connections, 100 + 20 slow clients for 12 s (read_body 8 s), 50 API clients, 3 s phases. Prints
one JSON object;
exits 1 only when a run failed (an `up` that did not come up), never for a figure. Every phase is bounded in time.

  .venv/bin/python bench/load.py [--runtime process|docker|both] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import psutil

from _common import busy_warning, environment, free_port, log, stack_environment
from loadgen import api_clients, flood, probe, slow_bodies, slow_headers

REPO = Path(__file__).resolve().parent.parent
COMPOSE = REPO / "stack" / "compose.yaml"
PROJECTS = {"process": "bench-load", "docker": "bench-load-docker"}
UP_TIMEOUT = 900.0
HOST = "127.0.0.1"


class Instance:
    """One instance of the stack, driven through the CLI; knows its services' processes and its database."""

    def __init__(self, runtime: str, port: int, read_body: str) -> None:
        self.runtime, self.port, self.project = runtime, port, PROJECTS[runtime]
        self.state_dir = COMPOSE.parent / ".unistack" / self.project
        self.base_url = f"http://{HOST}:{port}"
        self.env = {**stack_environment(runtime, port), "PROXY_READ_BODY_TIMEOUT": read_body}

    def cli(self, *args: str, timeout: float = 180, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "unistack", "-f", str(COMPOSE), "-p", self.project, *args]
        result = subprocess.run(argv, cwd=REPO, env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise RuntimeError(f"unistack {' '.join(args)} exited {result.returncode}\n{result.stdout}{result.stderr}")
        return result

    def up(self) -> None:
        self.cli("up", "--wait", "--wait-timeout", f"{UP_TIMEOUT:g}", timeout=UP_TIMEOUT + 60)

    def down(self) -> None:
        self.cli("down", "-v", timeout=240, check=False)

    def process(self, service: str) -> psutil.Process:
        row = {r["service"]: r for r in json.loads(self.cli("ps", "--format", "json").stdout)}[service]
        if self.runtime == "process":
            return psutil.Process(int(row["pid"]))
        inspect = subprocess.run(
            ["docker", "inspect", "-f", "{{.State.Pid}}", f"{self.project}-{service}-1"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return psutil.Process(int(inspect.stdout.strip()))

    def database_lock(self, seconds: float) -> subprocess.Popen[str]:
        """A psql session holding ACCESS EXCLUSIVE on the note table for ``seconds`` (then it commits and exits)."""
        sql = f"BEGIN; LOCK TABLE note IN ACCESS EXCLUSIVE MODE; SELECT 'locked'; SELECT pg_sleep({seconds}); COMMIT;"
        args = ["-U", "app", "-d", "app", "-qAt", "-v", "ON_ERROR_STOP=1", "-c", sql]
        if self.runtime == "process":
            psql = shutil.which("psql") or "psql"
            argv = [psql, "-h", str(self.state_dir / "run" / "db"), *args]
        else:
            container = f"{self.project}-db-1"
            argv = ["docker", "exec", "-e", "PGPASSWORD", container, "psql", "-h", "/tmp/postgresql", *args]
        env = {**os.environ, "PGPASSWORD": self.env["POSTGRES_PASSWORD"]}
        return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def tree_rss_mb(root: psutil.Process) -> float:
    total = 0
    with contextlib.suppress(psutil.Error):  # a process that ended meanwhile counts for nothing
        for proc in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                total += proc.memory_info().rss
    return total / 1e6


@contextlib.contextmanager
def sampled(processes: dict[str, psutil.Process], every: float = 0.25) -> Iterator[dict[str, Any]]:
    """RSS (MB) of each process tree: before, the highest seen while the block runs, and 2 s after it."""
    report: dict[str, Any] = {name: {"before": round(tree_rss_mb(p), 1)} for name, p in processes.items()}
    peak = {name: 0.0 for name in processes}
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(every):
            for name, proc in processes.items():
                peak[name] = max(peak[name], tree_rss_mb(proc))

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield report
    finally:
        stop.set()
        thread.join(timeout=5)
        time.sleep(2)
        for name, proc in processes.items():
            report[name] |= {"max_during": round(peak[name], 1), "after": round(tree_rss_mb(proc), 1)}


def run_phase(
    processes: dict[str, psutil.Process],
    seconds: float,
    work: Callable[[float], list[Coroutine[Any, Any, dict[str, Any]]]],
    names: list[str],
    base_url: str,
) -> dict[str, Any]:
    """Runs ``work`` (the attack's coroutines, given the deadline) beside a probe, all ending by the deadline."""

    async def phase() -> list[dict[str, Any]]:
        until = time.monotonic() + seconds
        return list(await asyncio.gather(probe(base_url, "/api/notes", until), *work(until)))

    with sampled(processes) as rss:
        began = time.monotonic()
        results = asyncio.run(phase())
        wall = time.monotonic() - began
    return {"seconds": round(wall, 2), "probe": results[0], **dict(zip(names, results[1:], strict=True)), "rss_mb": rss}


def scenarios(instance: Instance, args: argparse.Namespace) -> dict[str, Any]:
    processes = {"caddy": instance.process("proxy"), "backend": instance.process("backend")}
    url, port, out = instance.base_url, instance.port, {}

    log(f"{instance.runtime}: baseline")
    out["baseline"] = run_phase(processes, args.seconds, lambda until: [], [], url)
    log(f"{instance.runtime}: {args.connections} connections")
    out["connections"] = run_phase(
        processes,
        args.seconds,
        lambda until: [flood(HOST, port, args.connections, ["/_proxy/health", "/api/health"], until)],
        ["flood"],
        url,
    )
    log(f"{instance.runtime}: {args.slow_headers} slow headers + {args.slow_bodies} slow bodies")
    out["slow_clients"] = run_phase(
        processes,
        args.slow_seconds,
        lambda until: [
            slow_headers(HOST, port, args.slow_headers, until),
            slow_bodies(HOST, port, args.slow_bodies, until),
        ],
        ["slow_headers", "slow_bodies"],
        url,
    )
    log(f"{instance.runtime}: {args.api_clients} API clients")
    clients = args.api_clients
    out["api"] = run_phase(processes, args.seconds, lambda until: [api_clients(url, clients, until)], ["api"], url)
    log(f"{instance.runtime}: {args.api_clients} API clients, the note table locked for {args.lock_seconds:g}s")
    lock = instance.database_lock(args.lock_seconds)
    try:
        out["api_database_locked"] = run_phase(
            processes,
            max(args.seconds, args.lock_seconds + 3),
            lambda until: [api_clients(url, args.api_clients, until)],
            ["api"],
            url,
        )
    finally:
        try:
            stdout, stderr = lock.communicate(timeout=args.lock_seconds + 30)
        except subprocess.TimeoutExpired:
            lock.kill()
            stdout, stderr = lock.communicate()
    out["api_database_locked"]["lock"] = {
        "held_s": args.lock_seconds,
        "ok": lock.returncode == 0 and "locked" in stdout,
        **({"error": stderr.strip()[-300:]} if lock.returncode else {}),
    }
    return out


def docker_answers() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runtime", choices=["process", "docker", "both"], default="both")
    parser.add_argument("--quick", action="store_true", help="small counts and short phases (about a minute)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--slow-headers", type=int, default=500)
    parser.add_argument("--slow-bodies", type=int, default=100)
    parser.add_argument("--slow-seconds", type=float, default=15.0)
    parser.add_argument("--read-body", default="10s", help="the proxy's read_body for the run (the stack's: 2m)")
    parser.add_argument("--api-clients", type=int, default=200)
    parser.add_argument("--lock-seconds", type=float, default=5.0)
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.connections, args.slow_headers, args.slow_bodies = 3.0, 200, 100, 20
        args.slow_seconds, args.api_clients, args.lock_seconds, args.read_body = 12.0, 50, 3.0, "8s"

    runtimes = ["process", "docker"] if args.runtime == "both" else [args.runtime]
    report: dict[str, Any] = {
        "benchmark": "load",
        **environment(),
        "options": {k: v for k, v in vars(args).items() if k != "runtime"},
    }
    failed = False
    for runtime in runtimes:
        if runtime == "docker" and not docker_answers():
            report[runtime] = {"skipped": "no Docker engine answers"}
            continue
        instance = Instance(runtime, free_port(), args.read_body)
        instance.down()
        try:
            log(f"{runtime}: up --wait (port {instance.port})")
            began = time.monotonic()
            instance.up()
            report[runtime] = {"up_s": round(time.monotonic() - began, 1), **scenarios(instance, args)}
        except (RuntimeError, subprocess.SubprocessError, OSError, psutil.Error) as exc:
            report[runtime] = {"error": str(exc)[-2000:]}
            failed = True
        finally:
            log(f"{runtime}: down -v")
            instance.down()
    report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    if warning := busy_warning(report):
        report["warning"] = warning
    print(json.dumps(report, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
