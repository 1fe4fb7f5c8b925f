"""A soak with a restart storm: the daemon's memory, threads and descriptors over time (host processes).

The project (in a temp folder): `--crashers` services (default 4) that exit 1 after 0.2 s, `restart: always` with
a 100 ms backoff capped at 300 ms (so each restarts about three times a second, forever: no `max_attempts`); one
`flapper` that turns unhealthy 2 s after each start and is restarted for it; one `steady` service probed every
0.5 s. For `--minutes` (default 10) the daemon is sampled every `--every` seconds: RSS and USS, threads, open
descriptors, children. The slopes (per minute, least squares) are over the samples after the first tenth of the
run (warm-up: imports, the spawn pool, first allocations), and over its second half (growth that levels off
shows there); `restarts` is the total the engine made.

    .venv/bin/python bench/soak.py                  # 10 minutes
    .venv/bin/python bench/soak.py --quick          # 1 minute
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    EXTRA_ENV,
    busy_warning,
    environment,
    kill_strays,
    log,
    r,
    state_dir,
    teardown,
    unistack,
    use_code_snapshot,
)

PROJECT = "soak"
KEYS = ("rss_mb", "uss_mb", "threads", "fds", "children")


def compose(crashers: int) -> str:
    storm = """
    restart: always
    x-unistack:
      process:
        command: ["sh", "-c", "echo crashing $$$$; sleep 0.2; exit 1"]
      restart: {backoff_initial: 100ms, backoff_max: 300ms}
"""
    services = "".join(f"  crash{n}:{storm}" for n in range(1, crashers + 1))
    return f"""
name: {PROJECT}
services:
{services}  flapper:
    restart: always
    healthcheck:
      test: ["CMD", "test", "-f", "${{UNISTACK_RUN_DIR}}/flapper.ok"]
      interval: 200ms
      retries: 2
      timeout: 2s
    x-unistack:
      process:
        command:
          - sh
          - -c
          - touch "$$0"; sleep 2; rm -f "$$0"; exec sleep 600
          - ${{UNISTACK_RUN_DIR}}/flapper.ok
      restart: {{backoff_initial: 100ms, backoff_max: 300ms}}
  steady:
    healthcheck:
      test: ["CMD-SHELL", "echo probed"]
      interval: 500ms
    x-unistack:
      process:
        command: ["sh", "-c", "while true; do echo tick; sleep 1; done"]
"""


def per_minute(times: list[float], values: list[float]) -> float | None:
    if len(values) < 3:
        return None
    return statistics.linear_regression([t / 60 for t in times], values).slope


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--every", type=float, default=5.0, help="seconds between samples")
    parser.add_argument("--crashers", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="1 minute, a sample every 2 s")
    args = parser.parse_args()
    minutes, every = (1.0, 2.0) if args.quick else (args.minutes, args.every)
    report: dict[str, Any] = {"benchmark": "soak", "runtime": "process", **environment()}
    report.update({"minutes": minutes, "sample_every_s": every, "crashers": args.crashers})
    failed = False
    with tempfile.TemporaryDirectory(prefix="unistack-soak-") as tmp:
        folder = Path(tmp) / "soak"
        folder.mkdir()
        (folder / "compose.yaml").write_text(compose(args.crashers))
        use_code_snapshot(Path(tmp))
        EXTRA_ENV["UNISTACK_RUNTIME"] = "process"
        try:
            unistack(folder, PROJECT, "up", "-d")
            daemon = psutil.Process(json.loads((state_dir(folder, PROJECT) / "state.json").read_text())["daemon_pid"])
            began = time.monotonic()
            times: list[float] = []
            samples: dict[str, list[float]] = {key: [] for key in KEYS}
            while (elapsed := time.monotonic() - began) < minutes * 60:
                with daemon.oneshot():
                    mem = daemon.memory_full_info()
                    values = {
                        "rss_mb": mem.rss / 2**20,
                        "uss_mb": mem.uss / 2**20,
                        "threads": daemon.num_threads(),
                        "fds": daemon.num_fds(),
                        "children": len(daemon.children()),
                    }
                times.append(elapsed)
                for key in KEYS:
                    samples[key].append(values[key])
                if len(times) % max(1, int(60 / every)) == 1:
                    log(f"{elapsed / 60:.1f} min: " + ", ".join(f"{k} {v:.1f}" for k, v in values.items()))
                time.sleep(max(0.0, every - (time.monotonic() - began - elapsed)))
            rows = json.loads(unistack(folder, PROJECT, "ps", "--format", "json").stdout)
            report["restarts"] = {row["service"]: row["restarts"] for row in rows}
            report["restarts_total"] = sum(report["restarts"].values())
            report["same_daemon_throughout"] = daemon.is_running()
            warm = max(1, len(times) // 10)
            for key in KEYS:
                values_ = samples[key]
                fit = per_minute(times[warm:], values_[warm:])
                report[key] = {
                    "first": round(values_[0], 2),
                    "after_warm_up": round(values_[warm], 2),
                    "last": round(values_[-1], 2),
                    "max": round(max(values_), 2),
                    "slope_per_minute_after_warm_up": None if fit is None else round(fit, 4),
                    "slope_per_minute_last_half": r(per_minute(times[len(times) // 2 :], values_[len(times) // 2 :])),
                }
        except Exception as exc:
            failed = True
            report["failed"] = f"{type(exc).__name__}: {exc}"[:2000]
        finally:
            report["teardown"] = teardown(folder, PROJECT)
            kill_strays(folder)
    report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    if warning := busy_warning(report):
        report["warning"] = warning
    print(json.dumps(report, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
