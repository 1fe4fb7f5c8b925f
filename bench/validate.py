"""validate: how long `unistack validate` takes on the real stack, healthy and with one component broken.

For each runtime (host processes; containers with `--env production` when an engine answers), an instance of
stack/compose.yaml of its own (`bench-validate`, `bench-validate-docker`, the static frontend, on a free port) is
brought up with `up --wait`, then:

- healthy: the wall time of the whole `python -m unistack validate --format json` (CLI start included), the
  median of ``--runs`` runs, and the slowest check's own duration (what the checks took, without the CLI);
- broken: for each component broken as tests/e2e/test_validate.py breaks it (the database stopped, the backend
  frozen with SIGSTOP / `docker pause`, the proxy routing to a dev server that does not run, the files read for
  another environment), the time validate took to exit 1, and what it blamed. The stack is restored after each.

`down -v` before and after. Prints one JSON object on stdout (progress on stderr); exits 1 only when a run failed
(an `up` that did not come up, a break that validate did not detect), never for a figure.

  .venv/bin/python bench/validate.py [--runs 5] [--runtime process|docker|both] [--timeout 3]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from _common import busy_warning, environment, free_port, log, stack_environment

REPO = Path(__file__).resolve().parent.parent
COMPOSE = REPO / "stack" / "compose.yaml"
PROJECTS = {"process": "bench-validate", "docker": "bench-validate-docker"}
UP_TIMEOUT = 900.0
CLI_TIMEOUT = 180.0


class Instance:
    def __init__(self, runtime: str, port: int) -> None:
        self.runtime = runtime
        self.project = PROJECTS[runtime]
        self.state_dir = COMPOSE.parent / ".unistack" / self.project
        self.env = stack_environment(runtime, port)

    def cli(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = CLI_TIMEOUT, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "unistack", "-f", str(COMPOSE), "-p", self.project, *args]
        result = subprocess.run(argv, cwd=REPO, env=env or self.env, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise RuntimeError(f"unistack {' '.join(args)} exited {result.returncode}\n{result.stdout}{result.stderr}")
        return result

    def up(self, env: dict[str, str] | None = None) -> None:
        self.cli("up", "--wait", "--wait-timeout", f"{UP_TIMEOUT:g}", env=env, timeout=UP_TIMEOUT + 60)

    def healthy(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = self.cli("validate", "--format", "json", check=False, timeout=60)
            if result.returncode == 0:
                return
            time.sleep(0.5)
        raise RuntimeError(f"{self.project} did not validate again within {timeout:g}s")

    def validate(self, *global_args: str, timeout: str = "3", env: dict[str, str] | None = None) -> dict[str, Any]:
        began = time.monotonic()
        result = self.cli(
            *global_args, "validate", "--format", "json", "--timeout", timeout, env=env, check=False, timeout=120
        )
        wall = time.monotonic() - began
        if result.returncode not in (0, 1):
            raise RuntimeError(f"validate exited {result.returncode}: {result.stderr}")
        results = json.loads(result.stdout)
        failed = [r for r in results if r["verdict"] == "fail"]
        return {
            "exit": result.returncode,
            "cli_s": round(wall, 3),
            "slowest_check_s": round(max(r["duration"] for r in results), 3),
            "checks": len(results),
            "blamed": sorted({r["component"] for r in failed}),
            "failed": sorted(r["name"] for r in failed),
        }

    @contextlib.contextmanager
    def frozen(self, service: str) -> Iterator[None]:
        if self.runtime == "process":
            data = json.loads((self.state_dir / "state.json").read_text())
            pgid = int(data["services"][service]["record"]["pgid"])
            os.killpg(pgid, signal.SIGSTOP)
            try:
                yield
            finally:
                os.killpg(pgid, signal.SIGCONT)
            return
        name = f"{self.project}-{service}-1"
        subprocess.run(["docker", "pause", name], check=True, capture_output=True, timeout=60)
        try:
            yield
        finally:
            subprocess.run(["docker", "unpause", name], check=False, capture_output=True, timeout=60)


def scenarios(instance: Instance) -> dict[str, tuple[str, Callable[[], dict[str, Any]]]]:
    """name -> (the component validate must blame, the break that measures validate and restores)."""

    def db_stopped() -> dict[str, Any]:
        instance.cli("stop", "db")
        try:
            return instance.validate()
        finally:
            instance.cli("start", "db")

    def backend_frozen() -> dict[str, Any]:
        with instance.frozen("backend"):
            return instance.validate()

    def proxy_routing_nowhere() -> dict[str, Any]:
        broken = {**instance.env, "FRONTEND_MODE": "dev"}
        instance.up(broken)
        try:
            return instance.validate(env=broken)
        finally:
            instance.up()

    def another_environment() -> dict[str, Any]:
        return instance.validate("--env", "staging")

    return {
        "db_stopped": ("db", db_stopped),
        "backend_frozen": ("backend", backend_frozen),
        "proxy_routing_nowhere": ("proxy", proxy_routing_nowhere),
        "wrong_environment": ("configuration", another_environment),
    }


def bench_runtime(runtime: str, runs: int, timeout: str) -> dict[str, Any]:
    instance = Instance(runtime, free_port())
    instance.cli("down", "-v", check=False)
    figures: dict[str, Any] = {"project": instance.project}
    began = time.monotonic()
    try:
        log(f"{runtime}: up --wait")
        instance.up()
        figures["up_s"] = round(time.monotonic() - began, 2)
        instance.healthy()
        healthy = [instance.validate(timeout=timeout) for _ in range(runs)]
        figures["healthy"] = {
            "runs": len(healthy),
            "all_passed": all(h["exit"] == 0 for h in healthy),
            "median_cli_s": round(statistics.median(h["cli_s"] for h in healthy), 3),
            "median_slowest_check_s": round(statistics.median(h["slowest_check_s"] for h in healthy), 3),
            "checks": healthy[0]["checks"],
            "failed": sorted({name for h in healthy for name in h["failed"]}),
        }
        figures["broken"] = {}
        for name, (component, measure) in scenarios(instance).items():
            log(f"{runtime}: {name}")
            found = measure()
            found["detected"] = found["exit"] == 1 and component in found["blamed"]
            figures["broken"][name] = found
            instance.healthy()
    finally:
        log(f"{runtime}: down -v")
        instance.cli("down", "-v", check=False, timeout=300)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="healthy validate runs per runtime (default 5)")
    parser.add_argument("--runtime", choices=["process", "docker", "both"], default="both")
    parser.add_argument("--timeout", default="3", help="validate --timeout (seconds per check)")
    args = parser.parse_args()
    runtimes = ["process", "docker"] if args.runtime == "both" else [args.runtime]
    report: dict[str, Any] = {"benchmark": "validate", **environment(), "runtimes": {}}
    ok = True
    for runtime in runtimes:
        if runtime == "docker":
            from unistack.runtimes import docker_engine_answers

            if not docker_engine_answers():
                report["runtimes"]["docker"] = {"skipped": "no Docker engine answers"}
                continue
        try:
            figures = bench_runtime(runtime, max(1, args.runs), args.timeout)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            report["runtimes"][runtime] = {"failed": str(exc)[-2000:]}
            ok = False
            continue
        report["runtimes"][runtime] = figures
        ok = ok and figures["healthy"]["all_passed"] and all(b["detected"] for b in figures["broken"].values())
    report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    if warning := busy_warning(report):
        report["warning"] = warning
    print(json.dumps(report, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
