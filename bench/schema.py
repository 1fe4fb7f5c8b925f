"""What checking the Compose schema adds to loading the stack's files: in-process and through the CLI.

Prints one JSON object: the median time of ``config.load`` on each environment's files with and without the schema
step (``validate_schema``), the schema check alone, the first use in a fresh cache folder (generating and
compiling the validators), and the wall time of ``unistack config`` and ``unistack ps`` (median of ``--runs``).
The load average is recorded: the machine is shared, figures are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STACK = ROOT / "stack"


def _median_ms(function: object, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        function()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return round(statistics.median(times) * 1000, 3)


def _load(env_name: str, with_schema: bool) -> None:
    from unistack.config import loading

    state = loading.start(None, {"POSTGRES_PASSWORD": "x"}, None, env_name, None, (), STACK)
    for step in loading.STEPS:
        if step is loading.validate_schema and not with_schema:
            continue
        step(state)


def _cli(args: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "unistack", *args], cwd=STACK, capture_output=True, check=False)
        times.append(time.perf_counter() - start)
    return round(statistics.median(times) * 1000, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=200, help="in-process loads per figure")
    parser.add_argument("--cli-runs", type=int, default=21, help="CLI runs per figure")
    args = parser.parse_args()
    from unistack.config import schema

    result: dict[str, object] = {"load_average": os.getloadavg()}
    _load("local", True)  # the validators generated (or read from the cache) once
    for env_name in ("local", "staging", "production"):
        result[f"load_{env_name}_ms"] = {
            "without_schema": _median_ms(lambda e=env_name: _load(e, False), args.runs),  # type: ignore[misc]
            "with_schema": _median_ms(lambda e=env_name: _load(e, True), args.runs),  # type: ignore[misc]
        }
    from unistack.config.yamlfile import read_yaml_file, strip_markers

    data = strip_markers(read_yaml_file(STACK / "compose.yaml").data)
    check = getattr(schema._module("check"), schema._FUNCTION)
    result["schema_check_compose_yaml_ms"] = _median_ms(lambda: check(data), args.runs)
    with tempfile.TemporaryDirectory() as cache:
        code = (
            "import time; from unistack.config import schema; t = time.perf_counter(); schema._module('check'); "
            "print(time.perf_counter() - t)"
        )
        env = {**os.environ, "XDG_CACHE_HOME": cache}
        cold = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        warm = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        result["first_use_generate_ms"] = round(float(cold.stdout) * 1000, 1)
        result["cached_validator_load_ms"] = round(float(warm.stdout) * 1000, 2)
    result["cli_config_ms"] = _cli(["config"], args.cli_runs)
    result["cli_ps_ms"] = _cli(["ps"], args.cli_runs)
    result["load_average_after"] = os.getloadavg()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
