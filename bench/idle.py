"""Idle benchmark: what the supervisor daemon costs while nothing happens.

Five healthy services (bench/ready_service.py, ready at once, then sleeping) with a ``test -f marker``
healthcheck every ``--interval`` seconds. After ``up --wait`` and a short settle, the daemon (``daemon_pid`` of
state.json) is sampled every second for ``--seconds``: CPU (cpu_times delta / wall, in % of one core) of the
daemon itself and of the health probes it ran and reaped (cpu_times children_user/children_system), resident
memory (RSS and USS: max and mean), threads and open files. Each probe also appends a line to a file, so the
probe count is measured too. Prints one JSON object on stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from _common import busy_warning, daemon_pid, environment, install_daemon_shim, log, r, service_yaml, teardown, unistack

PROJECT = "idle"
SERVICES = 5
TARGET_CPU_PERCENT = 1.0
TARGET_RSS_MB = 80.0
MB = 1024 * 1024


def cpu(times: Any) -> tuple[float, float]:
    """(own, children) CPU seconds."""
    return times.user + times.system, times.children_user + times.children_system


def sample(proc: psutil.Process, seconds: float, probe_log: Path) -> dict[str, Any]:
    rss, uss, threads, fds, per_second = [], [], [], [], []
    t0, (own0, kids0), probes0 = time.monotonic(), cpu(proc.cpu_times()), _lines(probe_log)
    last_t, last_own = t0, own0
    deadline = t0 + seconds
    for _ in range(int(seconds) + 5):  # bounded; normally ends on the deadline
        time.sleep(max(0.0, min(1.0, deadline - time.monotonic())))
        with proc.oneshot():
            now, (own, kids) = time.monotonic(), cpu(proc.cpu_times())
            try:
                info = proc.memory_full_info()
                uss.append(info.uss / MB)
            except psutil.AccessDenied:
                info = proc.memory_info()
            rss.append(info.rss / MB)
            threads.append(proc.num_threads())
            fds.append(proc.num_fds())
        per_second.append(100 * (own - last_own) / (now - last_t))
        last_t, last_own = now, own
        if now >= deadline:
            break
    wall = last_t - t0
    probes = _lines(probe_log) - probes0
    return {
        "sampled_s": round(wall, 2),
        "samples": len(rss),
        "cpu_percent_of_one_core": round(100 * (own - own0) / wall, 3),
        "cpu_percent_max_1s": round(max(per_second), 3),
        "probe_cpu_percent_of_one_core": round(100 * (kids - kids0) / wall, 3),
        "probes_run": probes,
        "probes_per_s": round(probes / wall, 3),
        "daemon_cpu_ms_per_probe": round(1000 * (own - own0) / probes, 3) if probes else None,
        "probe_cpu_ms_per_probe": round(1000 * (kids - kids0) / probes, 3) if probes else None,
        "rss_mb": {"max": round(max(rss), 2), "mean": round(statistics.fmean(rss), 2)},
        "uss_mb": {"max": round(max(uss), 2), "mean": round(statistics.fmean(uss), 2)} if uss else None,
        "threads_max": max(threads),
        "open_fds_max": max(fds),
    }


def with_manifest(text: str, folder: Path, name: str, wanted: bool) -> str:
    """The service's YAML, declaring x-unistack.dependencies (a manifest of its own, installed by ``true``) when
    ``wanted``: the daemon then watches the manifests too."""
    if not wanted:
        return text
    manifest = folder / f"{name}.manifest"
    manifest.write_text("one\n")
    declared = f'    x-unistack:\n      dependencies: {{manifests: ["{manifest}"], install: ["true"]}}\n'
    return text.replace("    x-unistack:\n", declared, 1)


def _lines(path: Path) -> int:
    """Probes so far: each appends one line."""
    try:
        return path.read_bytes().count(b"\n")
    except OSError:
        return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="sampling window (default 30, at most 90)")
    parser.add_argument("--interval", type=float, default=5.0, help="healthcheck interval in seconds (default 5)")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds between up --wait and sampling")
    parser.add_argument("--services", type=int, default=SERVICES, help=f"how many services (default {SERVICES})")
    parser.add_argument(
        "--manifests",
        action="store_true",
        help="each service declares x-unistack.dependencies (a manifest of its own): the daemon watches them too",
    )
    parser.add_argument(
        "--raise-daemon-request-limit",
        action="store_true",
        help="as in startup.py: needed above ~30 services until the daemon accepts larger requests",
    )
    args = parser.parse_args()
    seconds = max(2.0, min(args.seconds, 90.0))
    services = max(1, min(args.services, 100))
    report: dict[str, Any] = {
        "benchmark": "idle",
        **environment(),
        "services": services,
        "daemon_request_limit_raised_by_bench": args.raise_daemon_request_limit,
        "healthcheck_interval_s": args.interval,
        "manifests_followed": services if args.manifests else 0,
        "targets": {"cpu_percent_of_one_core": TARGET_CPU_PERCENT, "rss_mb": TARGET_RSS_MB},
    }
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="unistack-bench-") as tmp:
        folder = Path(tmp) / "idle"
        markers = folder / "markers"
        markers.mkdir(parents=True)
        if args.raise_daemon_request_limit:
            install_daemon_shim(Path(tmp))
        probe_log = folder / "probes.log"
        (folder / "compose.yaml").write_text(
            "services:\n"
            + "".join(
                with_manifest(
                    service_yaml(
                        f"svc{i}",
                        ready_after=0.0,
                        marker=markers / f"svc{i}.ready",
                        interval=f"{args.interval:g}s",
                        start_period="10s",
                        start_interval="100ms",
                        probe_log=probe_log,
                    ),
                    folder,
                    f"svc{i}",
                    args.manifests,
                )
                for i in range(services)
            )
        )
        try:
            log(f"up --wait ({services} services, healthcheck every {args.interval:g}s)")
            t = time.monotonic()
            unistack(folder, PROJECT, "up", "--wait", "--wait-timeout", "60", timeout=90)
            report["up_wait_s"] = r(time.monotonic() - t, 3)
            pid = daemon_pid(folder, PROJECT)
            if pid is None:
                raise RuntimeError("no daemon_pid in state.json")
            proc = psutil.Process(pid)
            time.sleep(max(0.0, min(args.settle, 10.0)))
            log(f"sampling daemon {pid} for {seconds:g}s")
            report["daemon"] = sample(proc, seconds, probe_log)
            rows = json.loads(unistack(folder, PROJECT, "ps", "--format", "json", timeout=30).stdout)
            report["healthy_services"] = sum(1 for row in rows if row.get("health") == "healthy")
        except Exception as exc:
            report["error"] = f"{exc!r}"[-2000:]
            log(f"failed: {exc!r}")
        finally:
            report["teardown"] = teardown(folder, PROJECT)
    daemon = report.get("daemon") or {}
    report["meets_targets"] = {
        "cpu": daemon.get("cpu_percent_of_one_core", 1e9) < TARGET_CPU_PERCENT,
        "rss": daemon.get("rss_mb", {}).get("max", 1e9) < TARGET_RSS_MB,
    }
    report["total_s"] = round(time.monotonic() - began, 1)
    report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    if busy := busy_warning(report):
        report["warning"] = busy
    print(json.dumps(report, indent=2))
    return 0 if "error" not in report else 1


if __name__ == "__main__":
    sys.exit(main())
