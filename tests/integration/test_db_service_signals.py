"""stack/db/postgres_service.py hands signals and processes over as a container's PID 1 needs (real processes, fake
server binaries in POSTGRES_BINDIR):

- ``run`` execs postgres with the stop signals blocked: a PID 1 without a handler has its signals dropped by the
  kernel, so a stop signal arriving between the exec and postgres installing its handlers would be lost (the
  container then runs until SIGKILL, an unclean stop); blocked, it waits until postgres unblocks it.
- ``check`` execs pg_isready instead of running it as a child: a check killed by the runtime (timed out, or
  cancelled by a stop) leaves no orphan, which postgres as PID 1 would reap as a crashed backend and then abort
  its shutdown checkpoint ("abnormal database system shutdown").
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "stack" / "db" / "postgres_service.py"
UNPRIVILEGED = 65534  # nobody: postgres_service.py switches to a postgres account when started as root
# the script is standard library only; as root it runs as nobody, who cannot reach root's own interpreters
PYTHON = "/usr/bin/python3" if os.geteuid() == 0 and Path("/usr/bin/python3").exists() else sys.executable

FAKE = """#!{python}
import os, sys
if sys.argv[1:2] == ["--version"]:
    print("{name} (PostgreSQL) 15.1")
    raise SystemExit(0)
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
print("{name}", os.getpid(), status["SigBlk"].strip(), flush=True)
"""


@pytest.fixture
def folder() -> Iterator[Path]:
    """A folder the unprivileged account can use (pytest's tmp_path is root's own, 0700)."""
    with tempfile.TemporaryDirectory(prefix="unistack-dbsig-") as tmp:
        root = Path(tmp)
        root.chmod(0o777)
        bindir = root / "bin"
        bindir.mkdir()
        for name in ("postgres", "initdb", "pg_isready"):
            path = bindir / name
            path.write_text(FAKE.format(python=PYTHON, name=name))
            path.chmod(0o755)
        data = root / "data"
        data.mkdir()
        (data / "PG_VERSION").write_text("15\n")
        if os.geteuid() == 0:
            for path in (data, data / "PG_VERSION"):
                os.chown(path, UNPRIVILEGED, UNPRIVILEGED)
        yield root


def service(folder: Path, command: str) -> subprocess.Popen[str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "POSTGRES_BINDIR": str(folder / "bin"),
        "PG_DATA_DIR": str(folder / "data"),
        "PG_SOCKET_DIR": str(folder / "sockets"),
        "POSTGRES_USER": "app",
        "POSTGRES_PASSWORD": "x",
        "POSTGRES_DB": "app",
    }
    user = UNPRIVILEGED if os.geteuid() == 0 else None
    return subprocess.Popen(
        [PYTHON, str(SCRIPT), command],
        env=env,
        cwd=folder,
        user=user,
        group=user,
        extra_groups=[] if user is not None else None,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finished(proc: subprocess.Popen[str]) -> str:
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, out + err
    return out


def test_run_execs_postgres_with_the_stop_signals_blocked(folder: Path) -> None:
    proc = service(folder, "run")
    out = finished(proc)
    line = next(line for line in out.splitlines() if line.startswith("postgres "))
    _, pid, mask = line.split()
    assert int(pid) == proc.pid  # exec'd: postgres has the script's pid (PID 1 in a container)
    blocked = int(mask, 16)
    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT):
        assert blocked & (1 << (number - 1)), f"{number.name} not blocked at the exec: {mask}"


def test_check_execs_pg_isready(folder: Path) -> None:
    proc = service(folder, "check")
    out = finished(proc)
    line = next(line for line in out.splitlines() if line.startswith("pg_isready "))
    _, pid, mask = line.split()
    assert int(pid) == proc.pid  # the check is one process: killing it orphans nothing
    assert int(mask, 16) == 0  # and it runs with nothing blocked
