"""Startup benchmark: how close ``unistack up --wait`` gets to the critical path of a dependency graph.

Every service is bench/ready_service.py: ready READY_AFTER seconds after its process was created (it then
writes a marker file); its healthcheck is ``test -f marker`` every ``start_interval`` during a start period
longer than the readiness time, then a long ``interval``. Scenarios:

- chain: 4 services, each ``depends_on`` the previous with ``condition: service_healthy``;
- layers: 100 services in 10 layers of 10; each service of layer k depends (service_healthy) on every service of
  layer k-1 (``--fan-in`` picks fewer).

For each run: the wall time of the whole ``python -m unistack up --wait`` command (launch to exit, CLI and daemon
start included), the critical path (sum of readiness times along the longest chain), their ratio, and from the
daemon's events log a breakdown: startup overhead (launch -> first ``started``), gating latency (a service's
dependencies all healthy -> its ``started``), probe latency (its marker written -> its ``healthy``), and the
critical chain's overhead split into those parts. Prints one JSON object on stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import (
    EXTRA_ENV,
    busy_warning,
    daemon_pid,
    environment,
    events,
    first_at,
    install_daemon_shim,
    log,
    process_created_epoch,
    r,
    read_json,
    service_yaml,
    stats,
    teardown,
    unistack,
)

PROJECT = "bench"
TARGET_RATIO = 1.10
REQUEST_LIMIT = 64 * 1024  # asyncio's default StreamReader limit
TIME_BUDGET = 110.0  # seconds for the whole script; runs that would not fit are skipped (and reported)
START_INTERVAL = "50ms"
INTERVAL = "60s"
START_PERIOD = "60s"


def chain_graph(length: int, ready: float) -> dict[str, tuple[float, list[str]]]:
    names = [f"s{i}" for i in range(length)]
    return {name: (ready, [names[i - 1]] if i else []) for i, name in enumerate(names)}


def layers_graph(layers: int, width: int, ready: float, fan_in: int) -> dict[str, tuple[float, list[str]]]:
    graph: dict[str, tuple[float, list[str]]] = {}
    for k in range(layers):
        for i in range(width):
            below = [f"l{k - 1}s{(i + j) % width}" for j in range(min(fan_in, width))] if k else []
            graph[f"l{k}s{i}"] = (ready, below)
    return graph


def critical_path(graph: dict[str, tuple[float, list[str]]]) -> float:
    memo: dict[str, float] = {}

    def longest(name: str) -> float:
        if name not in memo:
            ready, deps = graph[name]
            memo[name] = ready + max((longest(d) for d in deps), default=0.0)
        return memo[name]

    return max(longest(n) for n in graph)


def compose(graph: dict[str, tuple[float, list[str]]], markers: Path) -> str:
    return "services:\n" + "".join(
        service_yaml(
            name,
            ready_after=ready,
            marker=markers / f"{name}.ready",
            interval=INTERVAL,
            start_period=START_PERIOD,
            start_interval=START_INTERVAL,
            depends_on=deps,
        )
        for name, (ready, deps) in graph.items()
    )


def analyse(
    graph: dict[str, tuple[float, list[str]]], folder: Path, markers: Path, launch: float, wall: float
) -> dict[str, Any]:
    """Per-service latencies from the events log and the markers, and the critical chain's overhead split."""
    evts = events(folder, PROJECT)
    starting, started, healthy = first_at(evts, "starting"), first_at(evts, "started"), first_at(evts, "healthy")
    ready: dict[str, float] = {}
    boot_age: list[float] = []
    for name in graph:
        data = read_json(markers / f"{name}.ready")
        if isinstance(data, dict):
            ready[name] = float(data["ready_at"])
            boot_age.append(float(data["boot_age"]))
    missing = sorted(n for n in graph if n not in healthy or n not in started or n not in ready)
    gating, probe, spawn = [], [], []
    for name, (_, deps) in graph.items():
        if name in started and deps and all(d in healthy for d in deps):
            gating.append(started[name] - max(healthy[d] for d in deps))
        if name in healthy and name in ready:
            probe.append(healthy[name] - ready[name])
        if name in started and name in starting:
            spawn.append(started[name] - starting[name])
    exit_at = launch + wall
    result: dict[str, Any] = {
        "startup_overhead_s": r(min(started.values()) - launch) if started else None,
        "gating_latency_s": stats(gating),
        "probe_latency_s": stats(probe),
        "spawn_s": stats(spawn),  # "starting" -> "started": the runtime's exec of the service
        "service_boot_s": stats(boot_age),  # process created -> ready_service.py's main (not unistack's doing)
        "tail_s": r(exit_at - max(healthy.values())) if healthy else None,  # last healthy -> CLI exit
        "services_healthy": len(healthy),
        "services_missing_events": len(missing),
    }
    if missing:
        return result
    # walk the critical chain back from the last service to turn healthy, through its latest dependency
    name = max(healthy, key=healthy.__getitem__)
    chain = [name]
    for _ in range(len(graph)):  # a dependency graph has no cycle: at most one step per service
        if not graph[name][1]:
            break
        name = max(graph[name][1], key=healthy.__getitem__)
        chain.append(name)
    chain.reverse()
    parts = {
        "startup": started[chain[0]] - launch,
        "gating": sum(started[b] - healthy[a] for a, b in itertools.pairwise(chain)),
        "readiness_slip": sum(ready[n] - started[n] - graph[n][0] for n in chain),
        "probe": sum(healthy[n] - ready[n] for n in chain),
        "tail": exit_at - healthy[chain[-1]],
    }
    result["critical_chain"] = chain if len(chain) <= 12 else [*chain[:3], "...", *chain[-3:]]
    result["critical_chain_overhead_s"] = {k: r(v) for k, v in parts.items()} | {"total": r(sum(parts.values()))}
    return result


def up_request_bytes(compose_file: Path) -> int | None:
    """The size of the project as ``up`` sends it to the daemon (one JSON line; see --raise-daemon-request-limit)."""
    try:
        from unistack import config  # here only
        from unistack.config.model import to_json

        project = config.load([str(compose_file)], project_name=PROJECT, cwd=compose_file.parent)
        return len(to_json(project))
    except Exception as exc:  # src/ is a moving target; the figure is only a hint
        log(f"cannot size the up request: {exc!r}")
        return None


def run_once(graph: dict[str, tuple[float, list[str]]], root: Path, label: str, wait_timeout: float) -> dict[str, Any]:
    folder = root / label
    markers = folder / "markers"
    markers.mkdir(parents=True)
    (folder / "compose.yaml").write_text(compose(graph, markers))
    crit = critical_path(graph)
    run: dict[str, Any] = {}
    try:
        log(f"{label}: up --wait ({len(graph)} services, critical path {crit:g}s)")
        launch = time.time()
        began = time.monotonic()
        result = unistack(folder, PROJECT, "up", "--wait", "--wait-timeout", f"{wait_timeout:g}", check=False)
        wall = time.monotonic() - began
        pid = daemon_pid(folder, PROJECT)
        daemon_created = process_created_epoch(pid) if pid else None
        run["exit_code"] = result.returncode
        run["measured_s"] = r(wall, 3)
        run["ratio"] = r(wall / crit) if result.returncode == 0 else None
        if result.returncode != 0:
            run["error"] = (result.stdout + result.stderr)[-2000:]
            size = run["up_request_project_bytes"] = up_request_bytes(folder / "compose.yaml")
            if "supervisor daemon" in run["error"] and size and size > REQUEST_LIMIT and not EXTRA_ENV:
                run["hint"] = (
                    f"the up request carries a {size}-byte project, over the {REQUEST_LIMIT}-byte line limit of the "
                    "daemon's asyncio StreamReader (control/daemon.py _serve); see --raise-daemon-request-limit"
                )
        run["daemon_spawned_after_s"] = r(daemon_created - launch, 3) if daemon_created else None
        if result.returncode == 0:
            run |= analyse(graph, folder, markers, launch, wall)
        else:
            run["services_healthy"] = len(first_at(events(folder, PROJECT), "healthy"))
        log(f"{label}: {wall:.2f}s, " + (f"ratio {wall / crit:.3f}" if result.returncode == 0 else "FAILED"))
    finally:
        run["teardown"] = teardown(folder, PROJECT)
    return run


def summarise(name: str, graph: dict[str, tuple[float, list[str]]], runs: list[dict[str, Any]], **info: Any) -> Any:
    ok = [x for x in runs if x.get("exit_code") == 0]

    def median(key: str) -> float | None:
        values = [x[key] for x in ok if x.get(key) is not None]
        return r(statistics.median(values)) if values else None

    def median_of(key: str, sub: str) -> float | None:
        values = [x[key][sub] for x in ok if isinstance(x.get(key), dict) and x[key].get(sub) is not None]
        return r(statistics.median(values)) if values else None

    crit = critical_path(graph)
    ratio = median("ratio")
    return {
        "scenario": name,
        "services": len(graph),
        **info,
        "critical_path_s": crit,
        "runs_ok": len(ok),
        "median": {
            "measured_s": median("measured_s"),
            "ratio": ratio,
            "startup_overhead_s": median("startup_overhead_s"),
            "daemon_spawned_after_s": median("daemon_spawned_after_s"),
            "gating_latency_mean_s": median_of("gating_latency_s", "mean"),
            "gating_latency_max_s": median_of("gating_latency_s", "max"),
            "probe_latency_mean_s": median_of("probe_latency_s", "mean"),
            "probe_latency_max_s": median_of("probe_latency_s", "max"),
            "tail_s": median("tail_s"),
        },
        "target_ratio": TARGET_RATIO,
        "meets_target": ratio is not None and ratio <= TARGET_RATIO and len(ok) == len(runs),
        "runs": runs,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per scenario (default 3)")
    parser.add_argument("--chain-ready", type=float, default=2.5, help="readiness of each chain service, s")
    parser.add_argument("--layer-ready", type=float, default=1.0, help="readiness of each layered service, s")
    parser.add_argument("--fan-in", type=int, default=10, help="dependencies per layered service (default: all 10)")
    parser.add_argument("--scenario", choices=["chain", "layers", "both"], default="both")
    parser.add_argument(
        "--raise-daemon-request-limit",
        action="store_true",
        help="work around the daemon's 64 KiB request limit (a sitecustomize for the daemon only), so that the "
        "100-service scenario can run until src/ fixes it",
    )
    args = parser.parse_args()
    runs = max(1, min(args.runs, 5))
    scenarios = []
    if args.scenario in {"chain", "both"}:
        scenarios.append(("chain", chain_graph(4, args.chain_ready), {"ready_per_service_s": args.chain_ready}))
    if args.scenario in {"layers", "both"}:
        info = {"layers": 10, "width": 10, "ready_per_service_s": args.layer_ready, "fan_in": args.fan_in}
        scenarios.append(("layers", layers_graph(10, 10, args.layer_ready, args.fan_in), info))
    began = time.monotonic()
    report: dict[str, Any] = {
        "benchmark": "startup",
        **environment(),
        "healthcheck": {"start_interval": START_INTERVAL, "interval": INTERVAL, "start_period": START_PERIOD},
        "daemon_request_limit_raised_by_bench": args.raise_daemon_request_limit,
        "scenarios": {},
        "skipped_runs": [],
    }
    with tempfile.TemporaryDirectory(prefix="unistack-bench-") as tmp:
        root = Path(tmp)
        if args.raise_daemon_request_limit:
            install_daemon_shim(root)
        for name, graph, info in scenarios:
            crit = critical_path(graph)
            results: list[dict[str, Any]] = []
            expected = crit * 1.5 + 5  # the next run's duration: then the longest run so far
            for i in range(runs):
                if time.monotonic() - began + expected > TIME_BUDGET:
                    log(f"{name}-{i + 1} skipped: it would not fit in the {TIME_BUDGET:g}s budget")
                    report["skipped_runs"].append(f"{name}-{i + 1}")
                    continue
                t = time.monotonic()
                try:
                    left = TIME_BUDGET - (time.monotonic() - began) - 5
                    timeout = max(crit + 5, min(crit * 3 + 15, left))
                    results.append(run_once(graph, root, f"{name}-{i + 1}", wait_timeout=timeout))
                except (subprocess.TimeoutExpired, RuntimeError, OSError) as exc:
                    log(f"{name}-{i + 1} failed: {exc}")
                    results.append({"exit_code": None, "error": str(exc)[-2000:]})
                expected = max(expected if i else 0.0, time.monotonic() - t)
            report["scenarios"][name] = summarise(name, graph, results, **info)
    report["total_s"] = round(time.monotonic() - began, 1)
    report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    if busy := busy_warning(report):
        report["warning"] = busy
    print(json.dumps(report, indent=2))
    failed = any(s["runs_ok"] < len(s["runs"]) for s in report["scenarios"].values())
    return 1 if failed else 0  # a run that failed, never a missed timing target


if __name__ == "__main__":
    sys.exit(main())
