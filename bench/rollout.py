"""Updates under load: failed requests through the proxy while `up` replaces a changed backend of the real stack.

    .venv/bin/python bench/rollout.py                 # process runtime, ~2 min once the stack's setups are done
    .venv/bin/python bench/rollout.py --runtime docker

The stack (static frontend, no reload) runs with a steady load of GET /api/health through the proxy (threads with
a kept-alive connection each, a new one after any failure: tests/loadclient.py, the rollout tests' load client).
Three updates of the backend, each a plain setting change (DB_POOL_TIMEOUT), each by `up --wait` with an override
file beside compose.yaml:

- `stop_first`: the override sets `deploy.update_config.order: stop-first` (what `up` did before start-first);
- `start_first`: the stack's own `start-first`;
- `failed_start_first`: start-first with a healthcheck that fails (`false`): the new incarnation never becomes
  healthy, `up` exits 1 and the old incarnation must go on serving.

Per update: requests sent and failed (status other than 200, or no answer), the window from the first to the last
failure, `up`'s wall time and its exit code, and the time from `up` to the switch (the `update` event that says
"switched", against when `up` was launched). One JSON object on stdout; progress on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import busy_warning, environment, free_port, log, stack_environment

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from tests.loadclient import Load  # noqa: E402  (the rollout tests' load client)

COMPOSE = REPO / "stack" / "compose.yaml"
UP_TIMEOUT = 900.0
HOST = "127.0.0.1"

OVERRIDES = {
    "stop_first": "services:\n  backend:\n    deploy:\n      update_config:\n        order: stop-first\n",
    "start_first": "services:\n  backend:\n    environment:\n      UNISTACK_BENCH: start-first\n",
    "failed_start_first": (
        "services:\n  backend:\n    healthcheck:\n      test: [CMD, 'false']\n      interval: 1s\n"
        "      retries: 2\n      start_period: 5s\n      start_interval: 200ms\n"
    ),
}


class Instance:
    def __init__(self, runtime: str, port: int) -> None:
        self.runtime, self.port = runtime, port
        self.project = f"bench-rollout-{runtime}"
        self.state_dir = COMPOSE.parent / ".unistack" / self.project
        self.env = stack_environment(runtime, port)
        self.override = COMPOSE.parent / f".bench-rollout-{runtime}.yaml"

    def cli(self, *args: str, files: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        chosen = ["-f", str(COMPOSE), *(["-f", str(self.override)] if files and self.override.exists() else [])]
        argv = [sys.executable, "-m", "unistack", *chosen, "-p", self.project, *args]
        return subprocess.run(argv, cwd=REPO, env=self.env, capture_output=True, text=True, timeout=timeout)

    def events(self) -> list[dict[str, Any]]:
        path = self.state_dir / "logs" / "events.jsonl"
        with contextlib.suppress(OSError):
            return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return []


def update(instance: Instance, load: Load, name: str, pool_timeout: str) -> dict[str, Any]:
    instance.override.write_text(OVERRIDES[name])
    instance.env["DB_POOL_TIMEOUT"] = pool_timeout  # the plain setting change
    time.sleep(1.0)  # a second of steady load before the update (the load's own baseline), not a wait on anything
    sent, failed = load.mark()
    launched = time.time()
    result = instance.cli("up", "--wait", "--wait-timeout", "120", timeout=UP_TIMEOUT)
    up_s = time.time() - launched
    time.sleep(2.0)  # two more seconds of load after `up` returned: late failures count too
    sent_after, failed_after = load.mark()
    with load.lock:
        failures = [f.at for f in load.failures if f.at >= launched]
    switched = [
        e["at"]
        for e in instance.events()
        if e["kind"] == "update" and "switched" in e["message"] and e["at"] >= launched
    ]
    figures: dict[str, Any] = {
        "requests": sent_after - sent,
        "failed_requests": failed_after - failed,
        "failure_window_s": round(failures[-1] - failures[0], 3) if failures else 0.0,
        "up_s": round(up_s, 3),
        "up_exit_code": result.returncode,
        "up_to_switch_s": round(switched[0] - launched, 3) if switched else None,
        "up_said": [line for line in result.stdout.splitlines() if line.startswith("backend")][:3],
    }
    if result.returncode != 0:
        figures["up_error"] = result.stderr.strip().splitlines()[:1]
    log(f"{instance.runtime} {name}: {figures}")
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runtime", choices=["process", "docker"], default="process")
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    report: dict[str, Any] = {"benchmark": "rollout", **environment(), "options": vars(args)}
    instance = Instance(args.runtime, free_port())
    failed = False
    instance.override.unlink(missing_ok=True)
    try:
        log(f"{args.runtime}: up --wait (port {instance.port})")
        result = instance.cli("up", "--wait", "--wait-timeout", f"{UP_TIMEOUT:g}", timeout=UP_TIMEOUT + 60)
        if result.returncode != 0:
            raise RuntimeError(f"up exited {result.returncode}: {result.stdout[-1000:]}{result.stderr[-1000:]}")
        figures: dict[str, Any] = {}
        load = Load(
            instance.port, "/api/health", clients=args.clients, keep_alive=True, timeout=10, seconds=300, limit=200_000
        )
        with load:
            for name, timeout in (("stop_first", "3"), ("start_first", "4"), ("failed_start_first", "5")):
                figures[name] = update(instance, load, name, timeout)
        report[args.runtime] = figures
    except (RuntimeError, subprocess.SubprocessError, OSError) as exc:
        report[args.runtime] = {"error": str(exc)[-2000:]}
        failed = True
    finally:
        log(f"{args.runtime}: down -v")
        instance.cli("down", "-v", files=False, timeout=240)
        instance.override.unlink(missing_ok=True)
    report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    if note := busy_warning(report):
        report["note"] = note
    print(json.dumps(report, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
