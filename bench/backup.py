"""backup: `unistack backup` and `restore` of the real stack against doing the same by hand, and the stack's latency
while a backup runs.

For each runtime (host processes; containers with `--env production` when an engine answers), an instance of
stack/compose.yaml of its own (`bench-backup`, `bench-backup-docker`, the static frontend, on a free port) is brought
up with `up --wait` and seeded:

- notes: ``--notes`` rows (100,000) by one ``INSERT ... SELECT generate_series`` through the database service's own
  psql (host processes: the server's installation over its unix socket; containers: `docker exec psql`), a title and
  a ~300-byte body each;
- uploads: ``--uploads-mb`` (200) of random (incompressible, as uploads mostly are) files of 32 KiB to 2 MiB written
  straight into the uploads volume (host processes: files in `volumes/uploads/`; containers: a tar streamed into
  `docker run --rm -i -v <instance>_uploads:/data/uploads stack-backend tar -x`), owned as the backend's own files, each
  with its `attachment` row on one of the notes (so the data is what the app itself would hold).

Then, ``--runs`` times each, interleaved (so drift of the shared machine hits both alike), medians reported:

- backup: the whole `python -m unistack backup --output FILE` (CLI start included; with `UNISTACK_DEBUG_BACKUP`,
  so each run's `backup_steps` says when each step ended), against by hand, as a careful
  operator would: `pg_dump --format=custom --compress=1` (the format and level of unistack's postgres part) and
  `tar --create --numeric-owner` of the uploads, each into its own file, both fsynced (unistack fsyncs its archive);
  also with a `sha256sum` of both files after (unistack's manifest holds each part's sha256), for comparison,
  and by hand in parallel (the dump and the uploads' tar at the same time, as `... & ... & wait`; containers: the
  `docker cp` route), reported beside (the target counts the sequential one, as a user types it).
  Host processes: the server's own pg_dump over its socket and GNU tar of the folder; containers: `docker exec
  pg_dump` with its stdout into a file, and `docker run --rm -v VOLUME:/data/uploads:ro IMAGE tar -c` streamed out,
  or (timed too, and the faster one counts) `docker create` + `docker cp CONTAINER:/data/uploads/. -` + `docker rm`.
- restore: the whole `unistack restore FILE --yes` (verify every checksum, stop proxy, backend and migrate, restore
  into new storage, switch, start, wait until healthy), against by hand in two ways: data only (`createdb` +
  `pg_restore --no-owner` into a new database, `tar -x` into a new folder or volume: what unistack's restore does
  to the data, without its verification and services), and with the services (stop proxy, backend and migrate, drop and
  create the database, `pg_restore`, empty the uploads and `tar -x` into them, start them and wait until healthy:
  what an operator does by hand to get the same result, without unistack's safety of restoring beside the data).
  After each restore the notes, attachments and upload files are counted against the seed.
- the stack during each unistack backup: a loopback client GETs /api/notes?limit=20 through the proxy every
  ``1/--rate`` s (20/s), one request at a time; p50/p99/max and errors, pooled over the runs, beside the same
  client for as long with the stack idle (baseline). The same client runs during each sequential backup by hand
  too (`during_backup_by_hand`), so that both compete with the same traffic (before, only unistack's did: on 2
  busy cores the client made a pg_dump 1.6x slower: 0.66 s against 0.42 s, medians of 4 at load 12).

Ratios: unistack / by hand (target <= 1.2) for the backup, the restore (against by hand with the services; the
data-only ratio is reported too) and the archive's size. `down -v` before and after. Prints one JSON object on
stdout (progress on stderr); exits 1 only when a run failed, never for a figure.

  .venv/bin/python bench/backup.py [--runtime process|docker|both] [--runs 3] [--quick] [--notes N]
      [--uploads-mb M] [--rate 20]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psutil

from _common import EXTRA_ENV, busy_warning, environment, free_port, log, stack_environment, use_code_snapshot
from loadgen import CLIENT_TIMEOUT, Outcomes

REPO = Path(__file__).resolve().parent.parent
COMPOSE = REPO / "stack" / "compose.yaml"
PROJECTS = {"process": "bench-backup", "docker": "bench-backup-docker"}
HOST = "127.0.0.1"
UP_TIMEOUT = 900.0
CLI_TIMEOUT = 600.0
STEP_TIMEOUT = 600.0
TARGET = 1.2
DEBUG_BACKUP = "UNISTACK_DEBUG_BACKUP"  # the backup prints when each step ended (each run's backup_steps)
PROBE_PATH = "/api/notes?limit=20"
FILE_SIZES = (32 << 10, 128 << 10, 512 << 10, 2 << 20)  # the uploads' sizes, in turn
BACKEND_UID = 10001  # stack/backend/Dockerfile's `app` user
SCRATCH_DB = "bench_manual"
DOCKER_RUN = ("docker", "run", "--rm", "-i", "--network", "none", "--user", "0:0")
# where the helpers mount a volume: the backend's own path, so that a volume still empty is given that folder's
# owner (10001) when Docker first copies the image's folder into it, as for the backend (at /data it would be root's)


def run(
    argv: list[str],
    *,
    env: dict[str, str] | None = None,
    stdin: Any = None,
    stdout: Any = None,
    ok: tuple[int, ...] = (0,),
) -> str:
    """Run ``argv`` to its end (bounded); its stdout (when not redirected); RuntimeError with its stderr if it fails
    (exits other than ``ok``: GNU tar's 1 says a file changed while it was read, which is expected online)."""
    result = subprocess.run(
        argv,
        env=env,
        stdin=stdin if stdin is not None else subprocess.DEVNULL,
        stdout=stdout if stdout is not None else subprocess.PIPE,
        stderr=subprocess.PIPE,
        timeout=STEP_TIMEOUT,
    )
    if result.returncode not in ok:
        raise RuntimeError(f"`{' '.join(argv)}` exited {result.returncode}: {result.stderr.decode()[-2000:]}")
    return result.stdout.decode() if stdout is None else ""


def fsync(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def timed(action: Callable[[], object]) -> float:
    began = time.monotonic()
    action()
    return time.monotonic() - began


def upload_files(total: int) -> Iterator[tuple[str, int]]:
    """(stored name, size) of the uploads: sizes in turn until ``total`` bytes."""
    made = 0
    index = 0
    while made < total:
        size = min(FILE_SIZES[index % len(FILE_SIZES)], total - made)
        yield secrets.token_hex(16), size
        made += size
        index += 1


class Probe:
    """One loopback client of the stack: a GET every ``1/rate`` s, one at a time, until stopped (or 15 minutes)."""

    def __init__(self, base_url: str, rate: float, out: Outcomes | None = None) -> None:
        self.base_url, self.interval = base_url, 1.0 / rate
        self.out = out or Outcomes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + 900
        with httpx.Client(base_url=self.base_url, timeout=CLIENT_TIMEOUT, trust_env=False) as client:
            while not self._stop.is_set() and time.monotonic() < deadline:
                began = time.monotonic()
                try:
                    response = client.get(PROBE_PATH)
                    self.out.answered(response.status_code, time.monotonic() - began)
                except httpx.HTTPError as exc:
                    self.out.failed(exc)
                self._stop.wait(max(0.0, self.interval - (time.monotonic() - began)))

    def __enter__(self) -> Probe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=CLIENT_TIMEOUT + 5)


class Instance:
    """One instance of the stack, driven through the CLI, with the by-hand operations of its runtime."""

    def __init__(self, runtime: str, port: int, work: Path) -> None:
        self.runtime, self.project, self.work = runtime, PROJECTS[runtime], work
        self.state_dir = COMPOSE.parent / ".unistack" / self.project
        self.base_url = f"http://{HOST}:{port}"
        self.env = {**stack_environment(runtime, port), **EXTRA_ENV}  # the code snapshot (main)
        self.password = self.env["POSTGRES_PASSWORD"]
        self.db_container = f"{self.project}-db-1"
        self.uploads_volume = f"{self.project}_uploads"
        self.uploads_dir = self.state_dir / "volumes" / "uploads"
        self.split: dict[str, float] = {}  # the last manual backup's steps

    def cli(
        self, *args: str, timeout: float = CLI_TIMEOUT, check: bool = True, debug: bool = False
    ) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "unistack", "-f", str(COMPOSE), "-p", self.project, *args]
        env = {**self.env, DEBUG_BACKUP: "1"} if debug else self.env
        result = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise RuntimeError(f"unistack {' '.join(args)} exited {result.returncode}\n{result.stdout}{result.stderr}")
        return result

    def up(self) -> None:
        self.cli("up", "--wait", "--wait-timeout", f"{UP_TIMEOUT:g}", timeout=UP_TIMEOUT + 60)

    def down(self) -> None:
        self.cli("down", "-v", timeout=300, check=False)

    def wait_healthy(self, services: tuple[str, ...], timeout: float = 300.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rows = {r["service"]: r for r in json.loads(self.cli("ps", "--format", "json").stdout)}
            if all(rows.get(s, {}).get("health") == "healthy" for s in services):
                return
            time.sleep(0.1)
        raise RuntimeError(f"{', '.join(services)} not healthy within {timeout:g}s")

    # ----------------------------------------------------------------- the database's own tools

    def _pg_host(self) -> tuple[str, dict[str, str]]:
        """Host processes: the folder of the running server's binaries and the libpq environment for its socket."""
        lines = (self.state_dir / "volumes" / "db" / "pgdata" / "postmaster.pid").read_text().splitlines()
        bindir = str(Path(psutil.Process(int(lines[0])).exe()).parent)
        env = {**os.environ, "PGHOST": lines[4].strip(), "PGPORT": lines[3].strip(), "PGUSER": "app"}
        return bindir, {**env, "PGPASSWORD": self.password, "PGDATABASE": "app"}

    def pg(self, tool: str, *args: str, database: str = "app", **streams: Any) -> str:
        """One of the server's tools, as an operator runs it by hand (``docker exec -i`` in containers)."""
        if self.runtime == "process":
            bindir, env = self._pg_host()
            return run([f"{bindir}/{tool}", *args], env={**env, "PGDATABASE": database}, **streams)
        argv = ["docker", "exec", "-i", "-e", "PGPASSWORD", "-e", f"PGDATABASE={database}", self.db_container]
        return run([*argv, tool, "-U", "app", *args], env={**os.environ, "PGPASSWORD": self.password}, **streams)

    def sql(self, statement: str, database: str = "app") -> str:
        return self.pg("psql", "-qAt", "-v", "ON_ERROR_STOP=1", "-c", statement, database=database).strip()

    # ----------------------------------------------------------------- the uploads volume, by hand

    def _volume_tar(self, volume: str, *tar_args: str, read_only: bool = False, **streams: Any) -> str:
        mount = f"{volume}:/data/uploads" + (":ro" if read_only else "")
        return run([*DOCKER_RUN, "-v", mount, "--entrypoint", "tar", "stack-backend", *tar_args], **streams)

    def seed(self, notes: int, upload_bytes: int) -> dict[str, Any]:
        began = time.monotonic()
        body = "repeat(md5(g::text), 9)"
        self.sql(f"insert into note (title, body) select 'note ' || g, {body} from generate_series(1, {notes}) g")
        notes_s = time.monotonic() - began
        files = list(upload_files(upload_bytes))
        began = time.monotonic()
        if self.runtime == "process":
            for name, size in files:
                (self.uploads_dir / name).write_bytes(os.urandom(size))
        else:
            mount = ["-v", f"{self.uploads_volume}:/data/uploads", "--entrypoint", "tar", "stack-backend"]
            feeder = subprocess.Popen(
                [*DOCKER_RUN, *mount, "-x", "-C", "/data/uploads", "--numeric-owner", "-f", "-"],
                stdin=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            assert feeder.stdin is not None
            with tarfile.open(fileobj=feeder.stdin, mode="w|") as tar:
                for name, size in files:
                    info = tarfile.TarInfo(name)
                    info.size, info.mode, info.uid, info.gid, info.mtime = (
                        size,
                        0o644,
                        BACKEND_UID,
                        BACKEND_UID,
                        int(time.time()),
                    )
                    tar.addfile(info, io.BytesIO(os.urandom(size)))
            feeder.stdin.close()
            if feeder.wait(timeout=STEP_TIMEOUT) != 0:
                raise RuntimeError(
                    f"seeding the uploads failed: {feeder.stderr.read().decode() if feeder.stderr else ''}"
                )
        uploads_s = time.monotonic() - began
        rows = ", ".join(
            f"({i + 1}, 'file{i}.bin', 'application/octet-stream', {size}, '{name}')"
            for i, (name, size) in enumerate(files)
        )
        self.sql(f"insert into attachment (note_id, filename, content_type, size, stored_name) values {rows}")
        return {
            "notes": notes,
            "notes_s": round(notes_s, 2),
            "upload_files": len(files),
            "upload_bytes": upload_bytes,
            "uploads_s": round(uploads_s, 2),
            "uploads_written": "straight into the volume: "
            + (
                "files in volumes/uploads/"
                if self.runtime == "process"
                else "a tar into `docker run -v VOLUME stack-backend tar -x`"
            ),
            "database_bytes": int(self.sql("select pg_database_size('app')")),
        }

    def counts(self) -> dict[str, int]:
        notes, attachments = self.sql(
            "select (select count(*) from note) || ' ' || (select count(*) from attachment)"
        ).split()
        if self.runtime == "process":
            found = [p for p in self.uploads_dir.iterdir() if p.is_file() and not p.name.startswith(".")]
            files, size = len(found), sum(p.stat().st_size for p in found)
        else:
            argv = ["docker", "run", "--rm", "--network", "none", "-v", f"{self.uploads_volume}:/data/uploads:ro"]
            argv += [
                "--entrypoint",
                "find",
                "stack-backend",
                "/data/uploads",
                "-maxdepth",
                "1",
                "-type",
                "f",
                "!",
                "-name",
            ]
            sizes = [int(line) for line in run([*argv, ".*", "-printf", "%s\\n"]).split()]
            files, size = len(sizes), sum(sizes)
        return {"notes": int(notes), "attachments": int(attachments), "upload_files": files, "upload_bytes": size}

    # ----------------------------------------------------------------- by hand

    def manual_backup(self, folder: Path) -> tuple[float, int]:
        """pg_dump and tar into two files, fsynced; (seconds, bytes)."""
        dump, files = folder / "app.pgdump", folder / "uploads.tar"

        def both() -> None:
            began = time.monotonic()
            with open(dump, "wb") as out:
                self.pg("pg_dump", "--format=custom", "--compress=1", "--no-password", stdout=out)
            self.split["manual_pg_dump_s"] = time.monotonic() - began
            with open(files, "wb") as out:
                if self.runtime == "process":
                    run(
                        ["tar", "--create", "--file=-", "--numeric-owner", f"--directory={self.uploads_dir}", "."],
                        stdout=out,
                        ok=(0, 1),
                    )
                else:
                    self._volume_tar(
                        self.uploads_volume,
                        "-c",
                        "--numeric-owner",
                        "-C",
                        "/data/uploads",
                        "-f",
                        "-",
                        ".",
                        read_only=True,
                        stdout=out,
                        ok=(0, 1),
                    )
            self.split["manual_tar_s"] = time.monotonic() - began - self.split["manual_pg_dump_s"]
            fsync(dump)
            fsync(files)

        seconds = timed(both)
        if self.runtime == "docker":
            self.split["manual_docker_cp_s"] = self.manual_docker_cp(folder / "uploads-cp.tar")
        return seconds, dump.stat().st_size + files.stat().st_size

    def manual_docker_cp(self, path: Path) -> float:
        """The uploads by hand the faster way: `docker create` a container mounting the volume, `docker cp` its
        folder out (the Engine API's archive, as unistack's helper; the Docker CLI's attached stdout of `docker run`
        moves ~30 MB/s here), `docker rm`; fsynced."""

        def copy() -> None:
            mount = f"{self.uploads_volume}:/data/uploads:ro"
            container = run(["docker", "create", "--network", "none", "-v", mount, "stack-backend"]).strip()
            try:
                with open(path, "wb") as out:
                    run(["docker", "cp", f"{container}:/data/uploads/.", "-"], stdout=out)
                fsync(path)
            finally:
                run(["docker", "rm", "-f", container])

        try:
            return timed(copy)
        finally:
            path.unlink(missing_ok=True)

    def manual_backup_parallel(self, folder: Path) -> float:
        """By hand, in parallel (`pg_dump ... > a & tar ... > b & wait`): the dump and the uploads' tar (containers:
        the `docker cp` route, the faster one) at the same time, each into its own file, both fsynced."""
        dump, files = folder / "parallel.pgdump", folder / "parallel-uploads.tar"

        def database() -> None:
            with open(dump, "wb") as out:
                self.pg("pg_dump", "--format=custom", "--compress=1", "--no-password", stdout=out)

        def uploads() -> None:
            if self.runtime == "process":
                with open(files, "wb") as out:
                    argv = ["tar", "--create", "--file=-", "--numeric-owner", f"--directory={self.uploads_dir}", "."]
                    run(argv, stdout=out, ok=(0, 1))
                return
            mount = f"{self.uploads_volume}:/data/uploads:ro"
            container = run(["docker", "create", "--network", "none", "-v", mount, "stack-backend"]).strip()
            try:
                with open(files, "wb") as out:
                    run(["docker", "cp", f"{container}:/data/uploads/.", "-"], stdout=out)
            finally:
                run(["docker", "rm", "-f", container])

        def both() -> None:
            with ThreadPoolExecutor(max_workers=2) as pool:
                for future in [pool.submit(database), pool.submit(uploads)]:
                    future.result()
            fsync(dump)
            fsync(files)

        try:
            return timed(both)
        finally:
            dump.unlink(missing_ok=True)
            files.unlink(missing_ok=True)

    def manual_checksums(self, folder: Path) -> float:
        """`sha256sum` of the two files by hand (what unistack's manifest holds), from the page cache."""
        return timed(lambda: run(["sha256sum", str(folder / "app.pgdump"), str(folder / "uploads.tar")]))

    def manual_restore_data(self, folder: Path) -> float:
        """createdb + pg_restore into a new database, tar -x into new storage; both removed afterwards (untimed)."""
        dump, files = folder / "app.pgdump", folder / "uploads.tar"
        scratch_dir = self.uploads_dir.with_name(".bench-manual-uploads")
        scratch_volume = f"{self.project}_bench_manual_uploads"
        self.sql(f"drop database if exists {SCRATCH_DB} with (force)", database="template1")
        shutil.rmtree(scratch_dir, ignore_errors=True)
        if self.runtime == "docker":
            run(["docker", "volume", "rm", "-f", scratch_volume])
            run(["docker", "volume", "create", scratch_volume])

        def both() -> None:
            self.sql(f"create database {SCRATCH_DB} template template0", database="template1")
            with open(dump, "rb") as source:
                self.pg(
                    "pg_restore",
                    "--exit-on-error",
                    "--no-owner",
                    "--no-password",
                    f"--dbname={SCRATCH_DB}",
                    stdin=source,
                )
            with open(files, "rb") as source:
                if self.runtime == "process":
                    scratch_dir.mkdir()
                    run(
                        [
                            "tar",
                            "--extract",
                            "--file=-",
                            "--numeric-owner",
                            "--same-permissions",
                            f"--directory={scratch_dir}",
                        ],
                        stdin=source,
                    )
                else:
                    self._volume_tar(
                        scratch_volume, "-x", "--numeric-owner", "-C", "/data/uploads", "-f", "-", stdin=source
                    )

        try:
            return timed(both)
        finally:
            self.sql(f"drop database if exists {SCRATCH_DB} with (force)", database="template1")
            shutil.rmtree(scratch_dir, ignore_errors=True)
            if self.runtime == "docker":
                run(["docker", "volume", "rm", "-f", scratch_volume])

    def manual_restore_in_place(self, folder: Path) -> float:
        """Stop proxy, backend and migrate, drop, create and pg_restore the database, replace the uploads, start."""
        dump, files = folder / "app.pgdump", folder / "uploads.tar"

        def all_of_it() -> None:
            self.cli("stop", "proxy", "backend", "migrate")
            self.sql("drop database app with (force)", database="template1")
            self.sql("create database app owner app template template0", database="template1")
            with open(dump, "rb") as source:
                self.pg("pg_restore", "--exit-on-error", "--no-owner", "--no-password", "--dbname=app", stdin=source)
            with open(files, "rb") as source:
                if self.runtime == "process":
                    shutil.rmtree(self.uploads_dir)
                    self.uploads_dir.mkdir()
                    run(
                        [
                            "tar",
                            "--extract",
                            "--file=-",
                            "--numeric-owner",
                            "--same-permissions",
                            f"--directory={self.uploads_dir}",
                        ],
                        stdin=source,
                    )
                else:
                    argv = [*DOCKER_RUN, "-v", f"{self.uploads_volume}:/data/uploads"]
                    script = "find /data/uploads -mindepth 1 -delete && tar -x --numeric-owner -C /data/uploads -f -"
                    run([*argv, "--entrypoint", "sh", "stack-backend", "-c", script], stdin=source)
            self.cli("start", "migrate", "backend", "proxy")  # migrate: an older dump's schema brought to head
            self.wait_healthy(("backend", "proxy"))

        return timed(all_of_it)


def said_seconds(text: str) -> float | None:
    """The time unistack reported itself ("... in 1.2 s" / "(... 1.2 s)")."""
    found = re.findall(r"([0-9]+(?:\.[0-9]+)?) s\b", text)
    return float(found[-1]) if found else None


def backup_steps(stderr: str) -> dict[str, float]:
    """When each step of the backup ended, seconds since its process started (``UNISTACK_DEBUG_BACKUP``'s lines)."""
    found = re.findall(rf"^{DEBUG_BACKUP}: +([0-9.]+) s  (.+)$", stderr, re.MULTILINE)
    return {what: float(seconds) for seconds, what in found}


def median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def bench_runtime(runtime: str, args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix=f"bench-backup-{runtime}-"))
    instance = Instance(runtime, free_port(), work)
    instance.down()
    figures: dict[str, Any] = {"project": instance.project}
    try:
        log(f"{runtime}: up --wait")
        began = time.monotonic()
        instance.up()
        figures["up_s"] = round(time.monotonic() - began, 2)
        log(f"{runtime}: seeding {args.notes} notes and {args.uploads_mb} MB of uploads")
        figures["data"] = seed = instance.seed(args.notes, args.uploads_mb * 1_000_000)
        expected = instance.counts()
        expected_keys = {
            "notes": seed["notes"],
            "attachments": seed["upload_files"],
            "upload_files": seed["upload_files"],
        }
        if {k: expected[k] for k in expected_keys} != expected_keys:
            raise RuntimeError(f"the seed is not what was written: {expected} against {expected_keys}")

        log(f"{runtime}: baseline latency ({args.baseline:g} s idle)")
        with Probe(instance.base_url, args.rate) as idle:
            time.sleep(args.baseline)  # the client's own measuring window, not a wait for something
        rows: list[dict[str, Any]] = []
        pooled = Outcomes()  # the latency client during every unistack backup
        pooled_manual = Outcomes()  # and during every backup by hand: both compete with the same traffic
        for index in range(args.runs):
            row: dict[str, Any] = {}
            archive = work / f"unistack-{index}.tar"
            manual = work / f"manual-{index}"
            manual.mkdir()
            log(f"{runtime}: run {index + 1}/{args.runs}: unistack backup")
            with Probe(instance.base_url, args.rate, pooled):
                began = time.monotonic()
                done = instance.cli("backup", "--output", str(archive), debug=True)
                row["backup_s"] = time.monotonic() - began
            row["backup_said_s"] = said_seconds(done.stdout)
            row["backup_steps"] = backup_steps(done.stderr)
            row["archive_bytes"] = archive.stat().st_size
            log(f"{runtime}: run {index + 1}: pg_dump + tar by hand")
            with Probe(instance.base_url, args.rate, pooled_manual):
                row["manual_backup_s"], row["manual_bytes"] = instance.manual_backup(manual)
            row.update(instance.split)
            row["manual_backup_with_sha256sum_s"] = row["manual_backup_s"] + instance.manual_checksums(manual)
            log(f"{runtime}: run {index + 1}: pg_dump & tar by hand, in parallel")
            row["manual_backup_parallel_s"] = instance.manual_backup_parallel(manual)
            log(f"{runtime}: run {index + 1}: unistack restore")
            began = time.monotonic()
            done = instance.cli("restore", str(archive), "--yes")
            row["restore_s"] = time.monotonic() - began
            row["restore_said_s"] = said_seconds(done.stdout + done.stderr)
            row["restored_counts_ok"] = instance.counts() == expected
            log(f"{runtime}: run {index + 1}: pg_restore + tar -x by hand (data only, then in place with the services)")
            row["manual_restore_data_s"] = instance.manual_restore_data(manual)
            row["manual_restore_in_place_s"] = instance.manual_restore_in_place(manual)
            row["manual_restored_counts_ok"] = instance.counts() == expected
            rows.append({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()})
            archive.unlink()
            shutil.rmtree(manual)
            log(f"{runtime}: run {index + 1}: " + ", ".join(f"{k} {v}" for k, v in rows[-1].items()))

        def med(key: str) -> float | None:
            return median([r[key] for r in rows if r.get(key) is not None])

        figures["runs"] = rows
        for row in rows:  # the fastest route by hand: docker cp where it is quicker than docker run's stdout
            if "manual_docker_cp_s" in row:
                row["manual_backup_fastest_s"] = round(
                    row["manual_backup_s"] - row["manual_tar_s"] + min(row["manual_tar_s"], row["manual_docker_cp_s"]),
                    3,
                )
            else:
                row["manual_backup_fastest_s"] = row["manual_backup_s"]
        backup, manual_backup = med("backup_s"), med("manual_backup_fastest_s")
        restore, by_hand, data_only = med("restore_s"), med("manual_restore_in_place_s"), med("manual_restore_data_s")
        size, manual_size = med("archive_bytes"), med("manual_bytes")
        figures["median"] = {
            "backup_s": backup,
            "backup_said_s": med("backup_said_s"),
            "manual_backup_s": med("manual_backup_s"),
            "manual_backup_fastest_s": manual_backup,
            "manual_docker_cp_s": med("manual_docker_cp_s"),
            "manual_backup_with_sha256sum_s": med("manual_backup_with_sha256sum_s"),
            "manual_backup_parallel_s": med("manual_backup_parallel_s"),
            "manual_pg_dump_s": med("manual_pg_dump_s"),
            "manual_tar_s": med("manual_tar_s"),
            "restore_s": restore,
            "restore_said_s": med("restore_said_s"),
            "manual_restore_data_only_s": data_only,
            "manual_restore_in_place_s": by_hand,
            "archive_mb": round(size / 1e6, 2) if size else None,
            "manual_mb": round(manual_size / 1e6, 2) if manual_size else None,
        }
        figures["ratios"] = {
            "backup_vs_manual": ratio(backup, manual_backup),
            "backup_vs_manual_docker_run_tar": ratio(backup, med("manual_backup_s")),
            "backup_vs_manual_with_sha256sum": ratio(backup, med("manual_backup_with_sha256sum_s")),
            "backup_vs_manual_parallel": ratio(backup, med("manual_backup_parallel_s")),
            "backup_said_vs_manual": ratio(med("backup_said_s"), manual_backup),
            "restore_vs_manual_in_place": ratio(restore, by_hand),
            "restore_vs_manual_data_only": ratio(restore, data_only),
            "archive_size_vs_manual": ratio(size, manual_size),
        }
        figures["targets"] = {
            f"backup_within_{TARGET}x": (figures["ratios"]["backup_vs_manual"] or 99) <= TARGET,
            f"restore_within_{TARGET}x": (figures["ratios"]["restore_vs_manual_in_place"] or 99) <= TARGET,
            "stack_answered_during_backup": pooled.summary()["failed"] == 0
            and pooled.summary()["succeeded"] == pooled.summary()["requests"] > 0,
            "restored_data_identical_counts": all(
                r["restored_counts_ok"] and r["manual_restored_counts_ok"] for r in rows
            ),
        }
        figures["latency"] = {
            "path": PROBE_PATH,
            "rate_per_s": args.rate,
            "idle_baseline": idle.out.summary(),
            "during_unistack_backup": pooled.summary(),
            "during_backup_by_hand": pooled_manual.summary(),
        }
    finally:
        log(f"{runtime}: down -v")
        instance.down()
        shutil.rmtree(work, ignore_errors=True)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runtime", choices=["process", "docker", "both"], default="both")
    parser.add_argument("--runs", type=int, default=3, help="backups and restores of each kind (default 3)")
    parser.add_argument("--notes", type=int, default=None, help="notes in the database (default 100,000)")
    parser.add_argument("--uploads-mb", type=int, default=None, help="MB of uploaded files (default 200)")
    parser.add_argument("--rate", type=float, default=20.0, help="requests/s of the latency client (default 20)")
    parser.add_argument("--baseline", type=float, default=5.0, help="seconds of idle latency measured (default 5)")
    parser.add_argument("--quick", action="store_true", help="10,000 notes, 20 MB, one run")
    args = parser.parse_args()
    args.notes = args.notes or (10_000 if args.quick else 100_000)
    args.uploads_mb = args.uploads_mb or (20 if args.quick else 200)
    args.runs = 1 if args.quick else max(1, args.runs)
    runtimes = ["process", "docker"] if args.runtime == "both" else [args.runtime]
    snapshot = Path(tempfile.mkdtemp(prefix="bench-backup-code-"))
    use_code_snapshot(snapshot)  # edits made to src/ meanwhile neither change what is measured nor hand the daemon over
    report: dict[str, Any] = {
        "benchmark": "backup",
        **environment(),
        "notes": args.notes,
        "uploads_mb": args.uploads_mb,
        "runs": args.runs,
        "target_ratio": TARGET,
        "runtimes": {},
    }
    ok = True
    for runtime in runtimes:
        if runtime == "docker":
            from unistack.runtimes import docker_engine_answers

            if not docker_engine_answers():
                report["runtimes"]["docker"] = {"skipped": "no Docker engine answers"}
                continue
        try:
            report["runtimes"][runtime] = bench_runtime(runtime, args)
        except (RuntimeError, subprocess.TimeoutExpired, OSError) as exc:
            report["runtimes"][runtime] = {"failed": str(exc)[-2000:]}
            ok = False
    shutil.rmtree(snapshot, ignore_errors=True)
    report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    if warning := busy_warning(report):
        report["warning"] = warning
    print(json.dumps(report, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
