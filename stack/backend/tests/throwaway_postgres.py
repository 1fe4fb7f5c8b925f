"""A throwaway PostgreSQL server in a temp folder, on a unix socket only, for the backend's tests.

Runs as the `postgres` user when the tests run as root (PostgreSQL refuses root), else as the current user.
`find_bindir()` returns None when no PostgreSQL binaries are installed, so the caller can skip.
"""

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import psycopg

START_DEADLINE_SECONDS = 30.0
STOP_DEADLINE_SECONDS = 10.0
SUPERUSER = "postgres"


def find_bindir() -> Path | None:
    """$PG_BINDIR, else the newest /usr/lib/postgresql/*/bin (Debian), else the folder of `initdb` on PATH."""
    candidates = [Path(os.environ["PG_BINDIR"])] if os.environ.get("PG_BINDIR") else []
    debian = [path for path in Path("/usr/lib/postgresql").glob("*/bin") if path.parent.name.isdigit()]
    candidates += sorted(debian, key=lambda path: int(path.parent.name), reverse=True)
    if initdb := shutil.which("initdb"):
        candidates.append(Path(initdb).parent)
    for candidate in candidates:
        if (candidate / "initdb").is_file() and (candidate / "postgres").is_file():
            return candidate
    return None


class ThrowawayPostgres:
    """`with ThrowawayPostgres(bindir) as pg:` starts a fresh cluster; `pg.url("app")` names a database in it."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="stack-backend-pg-"))
        self.socket_dir = self.root / "sock"
        self.data_dir = self.root / "data"
        self.log_path = self.root / "postgres.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._run_as: dict[str, Any] = {}
        self._owner: tuple[int, int] | None = None
        if os.geteuid() == 0:
            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError("running as root, and there is no `postgres` user to run PostgreSQL as") from None
            self._owner = (user.pw_uid, user.pw_gid)
            self._run_as = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
            os.chown(self.root, *self._owner)

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object | TracebackType) -> None:
        self.stop()

    def _run(self, *args: str) -> None:
        subprocess.run(args, check=True, capture_output=True, **self._run_as)

    def start(self) -> None:
        self.socket_dir.mkdir()
        if self._owner is not None:
            os.chown(self.socket_dir, *self._owner)
        self._run(
            str(self.bindir / "initdb"),
            "-D", str(self.data_dir),
            "--auth=trust", f"--username={SUPERUSER}", "--encoding=UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip
        log = self.log_path.open("wb")
        self._process = subprocess.Popen(
            [
                str(self.bindir / "postgres"),
                "-D", str(self.data_dir),
                "-k", str(self.socket_dir),
                "-c", "listen_addresses=",
                "-c", "fsync=off",
                "-c", "synchronous_commit=off",
                "-c", "full_page_writes=off",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            process_group=0,
            **self._run_as,
        )  # fmt: skip
        log.close()
        self._wait_until_accepting()

    def _wait_until_accepting(self) -> None:
        deadline = time.monotonic() + START_DEADLINE_SECONDS
        while True:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(f"postgres exited with {self._process.returncode}:\n{self.log_path.read_text()}")
            try:
                psycopg.connect(self.conninfo("postgres"), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"postgres did not accept connections:\n{self.log_path.read_text()}") from None
                time.sleep(0.05)

    def conninfo(self, dbname: str) -> str:
        return f"host={self.socket_dir} user={SUPERUSER} dbname={dbname}"

    def create_database(self, name: str) -> None:
        with psycopg.connect(self.conninfo("postgres"), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')

    def url(self, dbname: str) -> str:
        return f"postgresql+psycopg://{SUPERUSER}@/{dbname}?host={self.socket_dir}"

    def stop(self) -> None:
        """Fast shutdown (SIGINT), SIGKILL after the deadline, then the temp folder is removed."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(STOP_DEADLINE_SECONDS)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        shutil.rmtree(self.root, ignore_errors=True)
