"""`up` / `down` cycles per runtime: nothing leaks, PostgreSQL always shuts down cleanly, and a daemon that stays
across `restart` cycles keeps its descriptors, threads and memory.

The project (in a temp folder): `db`, the stack's own PostgreSQL (stack/db/postgres_service.py as a host process;
the stack's `stack-db` image, built from stack/db when missing, as a container) with a named volume and
`stop_signal: SIGINT`; `web`, a Python HTTP server on a published loopback port with an anonymous volume
(containers), gated on the database being healthy; both on a network of their own (containers).

Each `up --wait` / `down` cycle checks, once `down` returned: the instance's processes (daemon, services, their
log writers, probes: anything whose command line or environment names the folder) gone within 5 s, the published
port free, no state file, nothing in run/; for containers, no container or network of the project left, no
volume but the named one, none of the anonymous volumes its containers had mounted. After each `up` the
database's log is searched for an unclean start ("database system was not properly shut down", "automatic
recovery in progress", "was interrupted").
Then the daemon-stays cycles: one `up`, then `restart` + `up --wait` N times, sampling the daemon's open
descriptors, threads, RSS/USS and children after each; the slope is per cycle (least squares).

    .venv/bin/python bench/cycles.py                      # 50 + 50 cycles per runtime (~10 min)
    .venv/bin/python bench/cycles.py --quick              # 5 + 5 per runtime
    .venv/bin/python bench/cycles.py --runtime process --cycles 20
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    EXTRA_ENV,
    busy_warning,
    environment,
    free_port,
    instance_processes,
    kill_strays,
    log,
    port_free,
    q,
    state_dir,
    unistack,
    use_code_snapshot,
)

REPO = Path(__file__).resolve().parents[1]
DB_DIR = REPO / "stack" / "db"
PROJECT = "cycles"
UNCLEAN = re.compile(r"not properly shut down|automatic recovery in progress|was interrupted")
CLEAN = re.compile(r"database system was shut down at")
START = re.compile(r"LOG:\s+starting PostgreSQL")
GONE_WITHIN = 5.0


def compose(port: int) -> str:
    check_web = "import os, socket; socket.create_connection(('127.0.0.1', int(os.environ['WEB_PORT'])), 2)"
    return f"""
name: {PROJECT}
services:
  db:
    image: stack-db
    build:
      context: {q(str(DB_DIR))}
      args: {{BASE: "${{UNISTACK_BASE_IMAGE:-debian:bookworm-slim}}"}}
    networks: [back]
    volumes: ["db:/var/lib/postgresql/data"]
    environment:
      POSTGRES_USER: app
      POSTGRES_PASSWORD: cycles-only
      POSTGRES_DB: app
      PG_DATA_DIR: /var/lib/postgresql/data/pgdata
      PG_SOCKET_DIR: /tmp/postgresql
      PG_LISTEN_ADDRESSES: ""
    healthcheck:
      test: ["CMD", "python3", "postgres_service.py", "check"]
      interval: 1s
      timeout: 5s
      retries: 3
      start_period: 60s
    stop_signal: SIGINT
    stop_grace_period: 20s
    x-unistack:
      process:
        setup: ["python3", "postgres_service.py", "setup"]
        command: ["python3", "postgres_service.py", "run"]
        working_dir: {q(str(DB_DIR))}
        environment:
          PG_DATA_DIR: ${{UNISTACK_VOLUMES_DIR}}/db/pgdata
          PG_SOCKET_DIR: ${{UNISTACK_RUN_DIR}}/db
  web:
    image: stack-db
    command: ["python3", "-m", "http.server", "8000", "--bind", "0.0.0.0", "--directory", "/scratch"]
    ports: ["127.0.0.1:{port}:8000"]
    init: true  # PID 1 in a container ignores SIGTERM without a handler: an init passes it on
    networks: [back]
    volumes: ["/scratch"]
    environment: {{WEB_PORT: "8000"}}
    depends_on: {{db: {{condition: service_healthy}}}}
    healthcheck:
      test: ["CMD", "python3", "-c", {q(check_web)}]
      interval: 1s
      timeout: 3s
    stop_grace_period: 5s
    x-unistack:
      process:
        command: ["python3", "-m", "http.server", "{port}", "--bind", "127.0.0.1"]
        environment: {{WEB_PORT: "{port}"}}
networks:
  back: {{}}
volumes:
  db: {{}}
"""


def slope(values: list[float]) -> float | None:
    """Least-squares change per step."""
    if len(values) < 3:
        return None
    return statistics.linear_regression(range(len(values)), values).slope


class Docker:
    """What the engine holds of the project, through the SDK (None when no engine answers)."""

    def __init__(self) -> None:
        import docker

        self.client = docker.from_env()
        self.client.ping()
        self.label: dict[str, str | list[str] | bool] = {"label": f"com.docker.compose.project={PROJECT}"}
        self.mounted: set[str] = set()
        self.followed: list[bytes] = []

    def note_mounts(self) -> None:
        """The volumes the project's containers use now (before ``down``), to look for them after."""
        for container in self.client.containers.list(all=True, filters=self.label):
            self.mounted |= {m["Name"] for m in container.attrs.get("Mounts", []) if m.get("Type") == "volume"}

    def leftovers(self) -> dict[str, int]:
        import docker.errors

        volumes = [v.name for v in self.client.volumes.list(filters=self.label)]
        left = set()
        for name in self.mounted - {f"{PROJECT}_db"}:
            with contextlib.suppress(docker.errors.NotFound):
                self.client.volumes.get(name)
                left.add(name)
        self.mounted.clear()
        return {
            "containers": len(self.client.containers.list(all=True, filters=self.label)),
            "networks": len(self.client.networks.list(filters=self.label)),
            "volumes_besides_the_named_one": len([v for v in volumes if v != f"{PROJECT}_db"]),
            "anonymous_volumes_left": len(left),  # those its containers had mounted
        }

    def db_log(self) -> str:
        return str(self.client.containers.get(f"{PROJECT}-db-1").logs().decode("utf-8", "replace"))

    def follow_db(self) -> None:
        """Keep what the db container writes until it is removed: how the server before an unclean start ended
        (its shutdown lines go with the container at `down`), read back with ``last_words``."""
        container_id = str(self.client.containers.get(f"{PROJECT}-db-1").id)
        self.followed = chunks = []

        def follow() -> None:
            with contextlib.suppress(Exception):
                for chunk in self.client.api.logs(container_id, stream=True, follow=True, timestamps=True):
                    chunks.append(chunk)

        threading.Thread(target=follow, daemon=True).start()

    def last_words(self, lines: int = 12) -> list[str]:
        text = b"".join(self.followed).decode("utf-8", "replace")
        return text.splitlines()[-lines:]


class Cycles:
    def __init__(self, runtime: str, folder: Path) -> None:
        self.runtime, self.folder = runtime, folder
        self.port = free_port()
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "compose.yaml").write_text(compose(self.port))
        self.state = state_dir(folder, PROJECT)
        self.docker = Docker() if runtime == "docker" else None
        self.db_offset = 0
        self.unclean_excerpts: list[str] = []  # the lines before an unclean start: how the server before it ended
        EXTRA_ENV["UNISTACK_RUNTIME"] = runtime  # what _common.unistack runs with

    def cli(self, *args: str, timeout: float = 600) -> float:
        began = time.monotonic()
        unistack(self.folder, PROJECT, *args, timeout=timeout)
        return time.monotonic() - began

    def db_starts(self) -> tuple[int, int]:
        """(clean, unclean) starts the database logged since the last look."""
        if self.docker is not None:
            text = self.docker.db_log()  # a new container at every `up`: its log is this start's alone
        else:
            path = self.state / "logs" / "db.log"
            with path.open("rb") as fh:
                fh.seek(self.db_offset)
                data = fh.read()
            self.db_offset += len(data)
            text = data.decode("utf-8", "replace")
        before = self.docker.last_words() if self.docker is not None else []  # the previous container's end
        starts = [m.start() for m in START.finditer(text)]
        clean = unclean = 0
        for n, at in enumerate(starts):  # each start of the server: its own lines up to the next start
            part = text[at : starts[n + 1] if n + 1 < len(starts) else len(text)]
            if UNCLEAN.search(part):
                unclean += 1
                # the first start in a container's log: the lines before it are how the previous container ended
                earlier = ["(the previous container:)", *before] if n == 0 and before else text[:at].splitlines()[-12:]
                self.unclean_excerpts.append("\n".join(earlier + part.splitlines()[:4]))
            elif CLEAN.search(part):
                clean += 1
        return clean, unclean

    def after_down(self) -> dict[str, Any]:
        began = time.monotonic()
        while (left := instance_processes(self.folder)) and time.monotonic() - began < GONE_WITHIN:
            time.sleep(0.05)
        found: dict[str, Any] = {
            "processes": len(left),
            "processes_gone_s": round(time.monotonic() - began, 3),
            "port_in_use": not port_free(self.port),
            "state_file": (self.state / "state.json").exists(),
            "run_entries": len(list((self.state / "run").iterdir())) if (self.state / "run").exists() else 0,
        }
        if left:
            found["process_names"] = sorted({" ".join(p.info.get("cmdline") or [])[:80] for p in left})
            kill_strays(self.folder, grace=0)
        if self.docker is not None:
            found.update(self.docker.leftovers())
        return found

    def up_down(self, count: int) -> dict[str, Any]:
        ups, downs, leaks, unclean, clean = [], [], [], 0, 0
        for n in range(count):
            ups.append(self.cli("up", "--wait", "--wait-timeout", "300"))
            starts = self.db_starts()
            clean, unclean = clean + starts[0], unclean + starts[1]
            if self.docker is not None:
                self.docker.note_mounts()
                self.docker.follow_db()
            downs.append(self.cli("down"))
            found = self.after_down()
            bad = {k: v for k, v in found.items() if v and k != "processes_gone_s"}
            if bad:
                leaks.append({"cycle": n + 1, **bad})
            log(f"{self.runtime} cycle {n + 1}/{count}: up {ups[-1]:.2f}s down {downs[-1]:.2f}s {bad or 'clean'}")
        return {
            "cycles": count,
            "up_s": {"median": round(statistics.median(ups), 3), "max": round(max(ups), 3)},
            "down_s": {"median": round(statistics.median(downs), 3), "max": round(max(downs), 3)},
            "cycles_with_leaks": len(leaks),
            "leaks": leaks[:10],
            "db_clean_starts": clean,  # "was shut down at": every start after the first
            "db_unclean_starts": unclean,
            "db_unclean_excerpts": self.unclean_excerpts[-3:],
        }

    def daemon_stays(self, count: int) -> dict[str, Any]:
        self.cli("up", "--wait", "--wait-timeout", "300")
        pid = json.loads((self.state / "state.json").read_text())["daemon_pid"]
        daemon = psutil.Process(pid)
        samples: list[dict[str, float]] = []

        def sample() -> None:
            with daemon.oneshot():
                mem = daemon.memory_full_info()
                samples.append(
                    {
                        "fds": daemon.num_fds(),
                        "threads": daemon.num_threads(),
                        "rss_mb": mem.rss / 2**20,
                        "uss_mb": mem.uss / 2**20,
                        "children": len(daemon.children()),
                    }
                )

        sample()
        for n in range(count):
            self.cli("restart")
            self.cli("up", "--wait", "--wait-timeout", "300")
            sample()
            log(f"{self.runtime} restart {n + 1}/{count}: {samples[-1]}")
        same_daemon = daemon.is_running() and json.loads((self.state / "state.json").read_text())["daemon_pid"] == pid
        starts = self.db_starts()
        if self.docker is not None:
            self.docker.note_mounts()
        self.cli("down")
        left = self.after_down()
        out: dict[str, Any] = {"cycles": count, "same_daemon_throughout": same_daemon, "db_unclean_starts": starts[1]}
        out["db_unclean_excerpts"] = self.unclean_excerpts[-3:]
        for key in ("fds", "threads", "rss_mb", "uss_mb", "children"):
            values = [s[key] for s in samples]
            fit = slope(values)
            out[key] = {
                "first": round(values[0], 2),
                "last": round(values[-1], 2),
                "max": round(max(values), 2),
                "slope_per_cycle": None if fit is None else round(fit, 4),
            }
        out["left_after_down"] = {k: v for k, v in left.items() if v and k != "processes_gone_s"}
        return out


def run(runtime: str, count: int, root: Path) -> dict[str, Any]:
    try:
        cycles = Cycles(runtime, root / runtime)
    except Exception as exc:  # no engine: the runtime is reported, not failed
        return {"skipped": f"{type(exc).__name__}: {exc}"}
    try:
        log(f"{runtime}: first up (builds or installs what is missing)")
        first = cycles.cli("up", "--wait", "--wait-timeout", "900", timeout=1200)
        cycles.db_starts()
        cycles.cli("down")
        cycles.after_down()
        return {
            "first_up_s": round(first, 2),
            "up_down": cycles.up_down(count),
            "daemon_stays": cycles.daemon_stays(count),
        }
    finally:
        with contextlib.suppress(Exception):
            unistack(cycles.folder, PROJECT, "down", "-v", timeout=120, check=False)
        kill_strays(cycles.folder)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runtime", choices=["process", "docker", "all"], default="all")
    parser.add_argument("--cycles", type=int, default=50)
    parser.add_argument("--quick", action="store_true", help="5 cycles of each kind")
    args = parser.parse_args()
    count = 5 if args.quick else args.cycles
    if count < 1:
        parser.error("--cycles must be at least 1")
    report: dict[str, Any] = {"benchmark": "cycles", **environment()}
    failed = False
    with tempfile.TemporaryDirectory(prefix="unistack-cycles-") as tmp:
        Path(tmp).chmod(0o755)  # PostgreSQL runs as its own account when started as root: it must reach its folder
        use_code_snapshot(Path(tmp))
        for runtime in ["process", "docker"] if args.runtime == "all" else [args.runtime]:
            try:
                report[runtime] = run(runtime, count, Path(tmp))
            except Exception as exc:
                failed = True
                report[runtime] = {"failed": f"{type(exc).__name__}: {exc}"[:2000]}
    report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    if warning := busy_warning(report):
        report["warning"] = warning
    print(json.dumps(report, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
