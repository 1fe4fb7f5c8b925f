"""The database killed in the middle of a migration, with a real PostgreSQL (the stack's stack/db/postgres_service.py)
and the stack's own alembic environment and revisions (stack/backend), copied to a temp folder with one slow revision
added: the kill rolls the revision back as a whole (PostgreSQL's DDL is transactional and alembic runs each
``upgrade`` in one transaction), the migration one-shot fails, the database is restarted healthy, and the next
``up`` runs the migration again to head. The stack's files are not changed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import Instance

pytestmark = pytest.mark.integration

STACK = Path(__file__).resolve().parents[2] / "stack"
BACKEND, DB = STACK / "backend", STACK / "db"
VENV_PYTHON = BACKEND / ".venv" / "bin" / "python"

SLOW_REVISION = '''"""Slow: a table, statements while SLOW_FILE exists (the database is killed then), a table."""

import os

import sqlalchemy as sa
from alembic import op

revision = "0099"
down_revision = "0002"


def upgrade() -> None:
    op.create_table("chaos_first", sa.Column("id", sa.Integer, primary_key=True))
    print("slow revision: first table made, pausing", flush=True)
    while os.path.exists(os.environ["SLOW_FILE"]):
        op.execute("select pg_sleep(0.1)")  # in the transaction: the kill fails the next statement
    op.create_table("chaos_second", sa.Column("id", sa.Integer, primary_key=True))


def downgrade() -> None:
    op.drop_table("chaos_second")
    op.drop_table("chaos_first")
'''

QUERY = """
import json, os, sqlalchemy as sa
engine = sa.create_engine(os.environ["DATABASE_URL"])
with engine.connect() as c:
    version = c.execute(sa.text("select version_num from alembic_version")).scalar()
    tables = [t for t in ("chaos_first", "chaos_second") if c.execute(sa.text(f"select to_regclass('{t}')")).scalar()]
print(json.dumps({"version": version, "tables": tables}))
"""

COMPOSE = """
services:
  db:
    environment: &pg
      POSTGRES_USER: app
      POSTGRES_PASSWORD: test-only
      POSTGRES_DB: app
      PG_DATA_DIR: ${{UNISTACK_VOLUMES_DIR}}/db/pgdata
      PG_SOCKET_DIR: ${{UNISTACK_RUN_DIR}}/db
      PG_LISTEN_ADDRESSES: ""
    healthcheck:
      test: ["CMD", "python3", "postgres_service.py", "check"]
      interval: 1s
      timeout: 5s
      retries: 3
      start_period: 60s
      start_interval: 200ms
    restart: on-failure:5
    stop_signal: SIGINT
    x-unistack:
      process:
        setup: ["python3", "postgres_service.py", "setup"]
        command: ["python3", "postgres_service.py", "run"]
        working_dir: {db}
  migrate:
    depends_on:
      db: {{condition: service_healthy}}
    restart: "no"
    environment:
      DATABASE_URL: postgresql+psycopg://app:test-only@/app?host=${{UNISTACK_RUN_DIR}}/db
      SLOW_FILE: {slow}
    x-unistack:
      process:
        setup: ["python3", "../tools/ensure_venv.py", ".venv", ".", "--extra", "dev"]  # the stack's own setup step
        command: ["{alembic}", "-c", "{ini}", "upgrade", "head"]
        working_dir: {backend}
  app:
    depends_on:
      migrate: {{condition: service_completed_successfully}}
    x-unistack:
      process:
        command: ["sleep", "300"]
"""


@pytest.fixture
def state_parent() -> Iterator[Path]:
    """State outside pytest's 0700 temp folders: started as root, PostgreSQL runs as another account that must
    reach its data folder."""
    folder = Path(tempfile.mkdtemp(prefix="unistack-migrate-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_database_killed_during_a_migration_the_next_up_completes_it(instance: Instance, state_parent: Path) -> None:
    migrations = instance.folder / "migrations"
    shutil.copytree(BACKEND / "app" / "alembic", migrations, ignore=shutil.ignore_patterns("__pycache__"))
    ini = instance.folder / "alembic.ini"
    ini.write_text(
        (BACKEND / "alembic.ini")
        .read_text()
        .replace("script_location = %(here)s/app/alembic", f"script_location = {migrations}")
        .replace("prepend_sys_path = .", f"prepend_sys_path = {BACKEND}")
    )
    slow = instance.folder / "slow"
    slow.write_text("")
    instance.write(COMPOSE.format(db=DB, backend=BACKEND, slow=slow, alembic=BACKEND / ".venv/bin/alembic", ini=ini))
    instance.env["UNISTACK_STATE_DIR"] = str(state_parent)
    state_dir = state_parent / instance.folder.name.lower()
    migrate_log = state_dir / "logs" / "migrate.log"

    def query() -> dict:
        env = {**os.environ, "DATABASE_URL": f"postgresql+psycopg://app:test-only@/app?host={state_dir}/run/db"}
        out = subprocess.run([VENV_PYTHON, "-c", QUERY], env=env, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    try:
        # a database at the stack's head (0002), then a new revision deployed: the next `up` runs migrate again
        instance.run("up", "--wait", "--wait-timeout", "600", check=True, timeout=700)  # a first run installs
        assert query() == {"version": "0002", "tables": []}
        (migrations / "versions" / "0099_slow.py").write_text(SLOW_REVISION)
        instance.run("up", "-d", check=True, timeout=120)
        instance.wait_for(
            lambda: migrate_log.exists() and "first table made, pausing" in migrate_log.read_text(),
            timeout=240,
            message="the slow revision in the middle of its transaction",
        )
        postmaster = instance.ps()["db"]["pid"]
        os.kill(postmaster, signal.SIGKILL)
        ps = instance.wait_for(
            lambda: (
                (rows := instance.ps())["migrate"]["state"] == "exited" and rows["db"]["state"] == "healthy" and rows
            ),
            timeout=120,
            message="migrate failed and db healthy again",
        )
        assert ps["migrate"]["exit_code"] != 0
        assert ps["db"]["pid"] != postmaster and ps["db"]["restarts"] == 1
        assert query() == {"version": "0002", "tables": []}  # the revision was rolled back as a whole

        slow.unlink()
        up = instance.run("up", "--wait", "--wait-timeout", "120", timeout=240)
        assert up.returncode == 0, up.stdout + up.stderr
        instance.wait_for(  # `--wait` counts a one-shot that is still running as ready: wait for its exit
            lambda: (row := instance.ps()["migrate"])["state"] == "exited" and row["exit_code"] == 0,
            timeout=120,
            message="migrate exited 0",
        )
        assert instance.ps()["app"]["state"] == "running"
        assert query() == {"version": "0099", "tables": ["chaos_first", "chaos_second"]}
    finally:
        instance.run("down", "-v", "-t", "10", timeout=120)
