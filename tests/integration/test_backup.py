"""Backup, restore and reset with host processes: a real PostgreSQL (the stack's stack/db/postgres_service.py), a
named volume of files, and a sqlite database behind a custom dump/restore pair, in a temp folder.

Round trip (database rows and every file identical, compared by content); a backup under a write load holds every
write acknowledged before it started; a truncated archive, a flipped byte and another project's archive are refused
with nothing changed (exit 2); a restore killed midway leaves the old data usable; reset leaves nothing."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import Instance

pytestmark = pytest.mark.integration

DB = Path(__file__).resolve().parents[2] / "stack" / "db"
PSQL = shutil.which("psql")

NOTES_BACKUP = """
import os, sqlite3, sys
if sys.argv[1] == "dump":
    sys.stdout.write(chr(10).join(sqlite3.connect("notes.db").iterdump()))
else:
    script = sys.stdin.read()
    if os.path.exists("notes.db"):
        os.remove("notes.db")
    sqlite3.connect("notes.db").executescript(script)
"""

COMPOSE = """
name: vault
services:
  db:
    environment:
      POSTGRES_USER: app
      POSTGRES_PASSWORD: test-only
      POSTGRES_DB: app
      PG_DATA_DIR: ${{UNISTACK_VOLUMES_DIR}}/db/pgdata
      PG_SOCKET_DIR: ${{UNISTACK_RUN_DIR}}/db
      PG_LISTEN_ADDRESSES: ""
    volumes: [db:/var/lib/postgresql/data]
    healthcheck:
      test: ["CMD", "python3", "postgres_service.py", "check"]
      interval: 1s
      timeout: 5s
      retries: 3
      start_period: 60s
      start_interval: 200ms
    stop_signal: SIGINT
    x-unistack:
      backup: [postgres]
      process:
        setup: ["python3", "postgres_service.py", "setup"]
        command: ["python3", "postgres_service.py", "run"]
        working_dir: {db}
  app:
    depends_on:
      db: {{condition: service_healthy}}
    volumes: [files:/files]
    x-unistack:
      backup:
        - volume: files
      process:
        command: ["sleep", "300"]
  notes:
    x-unistack:
      backup:
        - dump: ["{python}", "notes_backup.py", "dump"]
          restore: ["{python}", "notes_backup.py", "restore"]
      process:
        command: ["sleep", "300"]
        working_dir: ./notes
volumes:
  db: {{}}
  files: {{}}
"""


@pytest.fixture
def vault(instance: Instance) -> Iterator[Vault]:
    yield from _vault(instance, COMPOSE)


@pytest.fixture
def secret_vault(instance: Instance) -> Iterator[Vault]:
    """The database's user and password in files (``POSTGRES_USER_FILE``, ``POSTGRES_PASSWORD_FILE``: Docker
    secrets, as the official image reads them), with trailing newlines as an editor leaves them."""
    secrets = instance.folder / "secrets"
    secrets.mkdir()
    (secrets / "user").write_text("app\n")
    (secrets / "password").write_text("test-only\n")
    plain = "      POSTGRES_USER: app\n      POSTGRES_PASSWORD: test-only\n"
    assert plain in COMPOSE
    files = f"      POSTGRES_USER_FILE: {secrets}/user\n      POSTGRES_PASSWORD_FILE: {secrets}/password\n"
    yield from _vault(instance, COMPOSE.replace(plain, files))


def _vault(instance: Instance, compose: str) -> Iterator[Vault]:
    if PSQL is None:
        pytest.skip("no psql on this machine")
    parent = Path(tempfile.mkdtemp(prefix="unistack-backup-"))
    parent.chmod(0o755)  # PostgreSQL, started as root, runs as another account that must reach its data folder
    (instance.folder / "notes").mkdir()
    (instance.folder / "notes" / "notes_backup.py").write_text(NOTES_BACKUP)
    instance.write(compose.format(db=DB, python=sys.executable))
    instance.env["UNISTACK_STATE_DIR"] = str(parent)
    vault = Vault(instance, parent / "vault")
    try:
        instance.run("up", "--wait", "--wait-timeout", "600", check=True, timeout=700, project="vault")
        yield vault
    finally:
        instance.run("down", "-v", "-t", "10", timeout=120, project="vault")
        shutil.rmtree(parent, ignore_errors=True)


class Vault:
    def __init__(self, instance: Instance, state_dir: Path) -> None:
        self.instance, self.state_dir = instance, state_dir
        self.files = state_dir / "volumes" / "files"
        self.notes = instance.folder / "notes" / "notes.db"

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return self.instance.run(*args, timeout=timeout, project="vault")

    def sql(self, query: str) -> str:
        env = {**os.environ, "PGPASSWORD": "test-only", "PGHOST": str(self.state_dir / "run" / "db")}
        argv = [str(PSQL), "-XAtq", "-U", "app", "-d", "app", "-v", "ON_ERROR_STOP=1", "-c", query]
        out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    def notes_sql(self, script: str) -> str:
        code = "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); r = c.executescript(sys.argv[2]).fetchall()"
        code += "; c.commit(); print(sorted(c.execute('select * from notes').fetchall()))"
        return subprocess.run(
            [sys.executable, "-c", code, str(self.notes), script],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()

    def file_content(self) -> dict[str, str]:
        """Each file of the volume by its path: the sha256 of its bytes."""
        return {
            str(p.relative_to(self.files)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(self.files.rglob("*"))
            if p.is_file()
        }

    def content(self) -> dict[str, object]:
        """Everything a restore must bring back, by content: the rows, each file's bytes, the sqlite rows."""
        rows = self.sql("select id, body from notes order by id")
        return {"rows": rows, "files": self.file_content(), "sqlite": self.notes_sql("")}

    def backup(self, *args: str) -> Path:
        done = self.cli("backup", *args)
        assert done.returncode == 0, done.stdout + done.stderr
        archives = sorted((self.state_dir / "backups").glob("vault-*.tar"), key=lambda p: p.stat().st_mtime)
        return archives[-1]


def seed(vault: Vault) -> None:
    vault.sql("create table notes (id serial primary key, body text not null)")
    vault.sql("insert into notes (body) select 'note ' || g from generate_series(1, 500) g")
    (vault.files / "a" / "b").mkdir(parents=True)
    (vault.files / "a" / "b" / "photo.bin").write_bytes(os.urandom(300_000))
    (vault.files / "empty.txt").write_bytes(b"")
    (vault.files / "readme.txt").write_text("hello\n")
    vault.notes_sql("create table notes (id integer primary key, body text); insert into notes values (1, 'one')")


def test_round_trip_list_and_keep(vault: Vault) -> None:
    seed(vault)
    before = vault.content()
    archive = vault.backup()
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    assert names[-1] == "manifest.json"
    assert manifest["project"] == "vault" and manifest["environment"] == "local"
    kinds = {(p["service"], p["kind"]) for p in manifest["parts"]}
    assert kinds == {("db", "postgres"), ("app", "volume"), ("notes", "command")}
    assert next(p for p in manifest["parts"] if p["kind"] == "postgres")["server_major"] >= 10

    # change and delete everything
    vault.sql(
        "delete from notes where id % 2 = 0; update notes set body = 'changed'; insert into notes (body) values ('x')"
    )
    shutil.rmtree(vault.files / "a")
    (vault.files / "readme.txt").write_text("changed\n")
    (vault.files / "new.txt").write_text("made after the backup\n")
    vault.notes_sql("delete from notes; insert into notes values (2, 'two')")
    assert vault.content() != before
    app_pid = vault.instance.ps("vault")["app"]["pid"]

    refused = vault.cli("restore", str(archive))  # no terminal, no --yes: exit 2, nothing changed
    assert refused.returncode == 2 and "--yes" in refused.stderr
    restored = vault.cli("restore", str(archive), "--yes")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert vault.content() == before
    rows = vault.instance.ps("vault")
    assert rows["app"]["state"] == "running" and rows["app"]["pid"] != app_pid  # stopped for its volume, started
    assert rows["db"]["state"] == "healthy"

    # backup list, --keep
    second = vault.backup("db", "--keep", "1")
    listed = vault.cli("backup", "list")
    assert listed.returncode == 0 and second.name in listed.stdout and archive.name not in listed.stdout
    assert not archive.exists()


def test_damaged_and_foreign_archives_are_refused_with_nothing_changed(vault: Vault) -> None:
    seed(vault)
    archive = vault.backup()
    vault.sql("insert into notes (body) values ('after the backup')")
    after = vault.content()
    data = archive.read_bytes()
    folder = vault.instance.folder
    cases = {}
    (folder / "truncated.tar").write_bytes(data[: len(data) // 2])
    cases["truncated.tar"] = "incomplete"
    flipped = bytearray(data)
    flipped[2048] ^= 0x01  # inside the first part's bytes
    (folder / "flipped.tar").write_bytes(bytes(flipped))
    cases["flipped.tar"] = "damaged"
    foreign = io.BytesIO()
    with tarfile.open(archive) as src, tarfile.open(fileobj=foreign, mode="w", format=tarfile.GNU_FORMAT) as dst:
        for member in src.getmembers():
            body = src.extractfile(member).read()  # type: ignore[union-attr]
            if member.name == "manifest.json":
                body = body.replace(b'"project": "vault"', b'"project": "other"')
                member.size = len(body)
            dst.addfile(member, io.BytesIO(body))
    (folder / "foreign.tar").write_bytes(foreign.getvalue())
    cases["foreign.tar"] = "-p other"
    for name, words in cases.items():
        refused = vault.cli("restore", str(folder / name), "--yes")
        assert refused.returncode == 2, (name, refused.stdout, refused.stderr)
        assert words in refused.stderr and "Traceback" not in refused.stderr, (name, refused.stderr)
        assert vault.content() == after, name
    assert vault.instance.ps("vault")["app"]["state"] == "running"  # nothing was stopped either


def test_backup_under_write_load_has_every_acknowledged_write(vault: Vault) -> None:
    vault.sql("create table notes (id serial primary key, body text not null)")
    vault.sql("insert into notes (body) select repeat('x', 2000) from generate_series(1, 20000)")
    acknowledged: list[int] = []
    stop = threading.Event()

    def writer() -> None:
        deadline = time.monotonic() + 60
        while not stop.is_set() and time.monotonic() < deadline:
            acknowledged.append(int(vault.sql("insert into notes (body) values ('w') returning id")))

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        vault.instance.wait_for(lambda: len(acknowledged) >= 3, timeout=30, message="writes going on")
        before_start = list(acknowledged)
        archive = vault.backup("db")
    finally:
        stop.set()
        thread.join(timeout=90)
    assert len(acknowledged) > len(before_start)  # writes went on during the backup
    vault.sql("delete from notes")
    restored = vault.cli("restore", str(archive), "--yes")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    ids = {int(i) for i in vault.sql("select id from notes where body = 'w'").split()}
    assert set(before_start) <= ids


def test_restore_killed_midway_leaves_the_old_data_usable(vault: Vault) -> None:
    vault.sql("create table notes (id serial primary key, body text not null)")
    vault.sql("insert into notes (body) select md5(g::text) || repeat('y', 3000) from generate_series(1, 40000) g")
    archive = vault.backup("db")
    vault.sql("insert into notes (body) values ('only in the old data')")
    count = vault.sql("select count(*) from notes")
    argv = [sys.executable, "-m", "unistack", "-p", "vault", "restore", str(archive), "--yes"]
    child = subprocess.Popen(argv, cwd=vault.instance.folder, env=vault.instance.env, stdout=subprocess.DEVNULL)
    try:
        vault.instance.wait_for(
            lambda: (
                child.poll() is None
                and vault.sql("select count(*) from pg_database where datname = 'app__unistack_restore'") == "1"
            ),
            timeout=120,
            message="the restore filling its new database",
        )
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    assert vault.sql("select count(*) from notes") == count
    assert vault.sql("select count(*) from notes where body = 'only in the old data'") == "1"
    # the next backup removes what the killed one left (the half-filled database), and the next restore completes
    vault.instance.run("start", project="vault", timeout=120)
    assert (vault.state_dir / "restore-unfinished").exists()
    vault.backup("db")
    assert vault.sql("select count(*) from pg_database where datname like 'app__unistack%'") == "0"
    assert not (vault.state_dir / "restore-unfinished").exists()
    done = vault.cli("restore", str(archive), "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert vault.sql("select count(*) from notes where body = 'only in the old data'") == "0"
    assert vault.sql("select count(*) from pg_database where datname like 'app__unistack%'") == "0"
    assert not (vault.state_dir / "restore-unfinished").exists()  # it ended, and removed what it replaced


def test_credentials_in_files_are_read_as_the_official_image_reads_them(secret_vault: Vault) -> None:
    secret_vault.sql("create table notes (id serial primary key, body text not null)")
    secret_vault.sql("insert into notes (body) select 'note ' || g from generate_series(1, 50) g")
    archive = secret_vault.backup("db")
    with tarfile.open(archive) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    (part,) = manifest["parts"]
    assert part["database"] == "app" and part["server_major"] >= 12
    secret_vault.sql("delete from notes")
    done = secret_vault.cli("restore", str(archive), "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert secret_vault.sql("select count(*) from notes") == "50"


def test_reset_leaves_nothing_of_the_data(vault: Vault) -> None:
    seed(vault)
    archive = vault.backup()
    refused = vault.cli("reset")
    assert refused.returncode == 2 and "--yes" in refused.stderr
    assert vault.instance.ps("vault")["db"]["state"] == "healthy"
    done = vault.cli("reset", "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "volumes/db" in done.stdout or "db" in done.stdout
    assert not (vault.state_dir / "volumes").exists()
    assert not (vault.state_dir / "state.json").exists()
    assert archive.exists()  # backups are kept
    vault.instance.run("up", "--wait", "--wait-timeout", "120", check=True, timeout=240, project="vault")
    assert vault.sql("select count(*) from pg_tables where tablename = 'notes'") == "0"
    assert not any(vault.files.iterdir())


def test_volume_restore_killed_midway_leaves_the_old_files(vault: Vault) -> None:
    for index in range(40):
        (vault.files / f"big{index}.bin").write_bytes(os.urandom(2_000_000))
    archive = vault.backup("app")
    (vault.files / "big0.bin").unlink()
    (vault.files / "only-old.txt").write_text("made after the backup\n")
    old = vault.file_content()
    staging = vault.files.with_name(".files.unistack-restore")
    argv = [sys.executable, "-m", "unistack", "-p", "vault", "restore", str(archive), "--yes"]
    child = subprocess.Popen(argv, cwd=vault.instance.folder, env=vault.instance.env, stdout=subprocess.DEVNULL)
    try:
        vault.instance.wait_for(
            lambda: child.poll() is None and staging.is_dir() and any(staging.iterdir()),
            timeout=120,
            message="the restore unpacking beside the volume",
        )
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    assert vault.file_content() == old
    vault.instance.run("start", project="vault", timeout=120)
    vault.backup("app")  # finds what the killed restore left, and removes it before reading the volume
    assert not staging.exists()
    assert vault.file_content() == old
