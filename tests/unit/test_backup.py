"""Backup and restore without processes: a fake ``DataStreams`` (bytes in memory) behind the real archive writer,
reader and restore plan. The archive round trip, every damage refused, the phases of a restore, and a command
part whose restore fails put back from its safety copy."""

from __future__ import annotations

import hashlib
import json
import tarfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import msgspec
import pytest

from unistack.config.model import BackupPart, Dependency, Project, Service
from unistack.errors import ArchiveRefused, RuntimeFailure, UsageError
from unistack.ops import backup, parts, restore
from unistack.ops.archive import Archive, Manifest
from unistack.ops.archive_writer import ArchiveWriter, Cancelled
from unistack.runtimes.datastreams import PostgresPlace, Sink, Source

from .fakes import pg_dump_header


class FakeStreams:
    """Each part's data in memory: ``data[(service, what)]``; ``fail_restore`` makes a restore fail halfway."""

    def __init__(self, data: dict[tuple[str, str], bytes]) -> None:
        self.data = data
        self.fail_restore: set[tuple[str, str]] = set()
        self.queries: list[str] = []
        self.databases: list[str] = []  # what `select datname from pg_database ...` answers (an interrupted restore's)

    def environment(self, service: Service) -> dict[str, str]:
        return {"POSTGRES_USER": "app", "POSTGRES_DB": "appdb"}

    def _key(self, service: Service, argv: Sequence[str]) -> tuple[str, str]:
        return (service.name, "command" if argv[0] in ("dump", "load") else argv[0].rsplit("/", 1)[-1])

    def run_out(self, service: Service, argv: Sequence[str], env: Mapping[str, str], out: Sink) -> None:
        key = self._key(service, argv)
        if key[1] == "psql":
            self.queries.append(argv[-1])
            answer = b"15.4" if "server_version" in argv[-1] else b""
            left = " ".join(self.databases)
            answer = f"{left}|UTF8|C|C|app".encode() if "pg_encoding_to_char" in argv[-1] else answer
            answer = left.encode() if argv[-1].startswith("select string_agg(datname") else answer
            out(memoryview(answer))
            return
        data = self.data[(service.name, "postgres" if key[1] == "pg_dump" else key[1])]
        for start in range(0, len(data), 7):  # many small chunks
            out(memoryview(data[start : start + 7]))

    def run_in(self, service: Service, argv: Sequence[str], env: Mapping[str, str], source: Source) -> str:
        key = (service.name, "postgres" if argv[0].endswith("pg_restore") else "command")
        received = bytearray()
        while chunk := source():
            received += chunk
            if key in self.fail_restore and len(received) > 3:
                self.fail_restore.discard(key)
                self.data[key] = b"half"
                raise RuntimeFailure("restore failed halfway")
        self.data[key] = bytes(received)
        return ""

    def postgres_place(self, service: Service) -> PostgresPlace:
        return PostgresPlace(bindir="/opt/pg/bin")

    def volume_out(self, service: Service, volume: str, out: Sink) -> None:
        out(memoryview(self.data[(service.name, f"volume {volume}")]))

    def volume_in(self, service: Service, volume: str, source: Source) -> None:
        received = bytearray()
        while chunk := source():
            received += chunk
        self.data[(service.name, f"volume {volume}")] = bytes(received)

    def volume_recover(self, service: Service, volume: str) -> str | None:
        return None


def service(name: str, *parts: BackupPart, depends_on: Sequence[str] = (), volumes: Sequence[str] = ()) -> Service:
    return Service(
        name=name,
        depends_on={d: Dependency() for d in depends_on},
        backup=parts,
        spec={"volumes": [{"type": "volume", "source": v, "target": f"/{v}"} for v in volumes]},
    )


def stack(tmp_path: Path, name: str = "demo") -> Project:
    services = [
        service("db", BackupPart(kind="postgres")),
        service("migrate", depends_on=["db"]),
        service(
            "backend", BackupPart(kind="volume", volume="uploads"), depends_on=["db", "migrate"], volumes=["uploads"]
        ),
        service("proxy", depends_on=["backend"]),
        service("notes", BackupPart(kind="command", dump=("dump",), restore=("load",))),
    ]
    return Project(
        name=name,
        environment="local",
        working_dir=tmp_path,
        files=(),
        state_dir=tmp_path / ".unistack" / name,
        services={s.name: s for s in services},
        volumes={"uploads": {}},
    )


DATA = {
    ("db", "postgres"): pg_dump_header((1, 14, 0), "15.4 (Debian 15.4-1)") + bytes(range(256)) * 40,
    ("backend", "volume uploads"): b"tar bytes " * 3000,
    ("notes", "command"): b"create table notes;",
}


def take(tmp_path: Path, streams: FakeStreams, project: Project | None = None) -> Path:
    project = project or stack(tmp_path)
    path = backup.output_path(project, None, 1_700_000_000)
    backup.take(project, backup.plan(project), streams, "process", path)
    return path


def test_archive_round_trip_manifest_last_and_restored_data(tmp_path: Path) -> None:
    streams = FakeStreams(dict(DATA))
    path = take(tmp_path, streams)
    assert path.name == "demo-20231114T221320Z.tar" and path.parent.name == "backups"
    assert not list(path.parent.glob(".*.partial"))
    with tarfile.open(path) as tar:
        names = tar.getnames()
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        assert tar.extractfile("parts/db.postgres.pgdump").read() == DATA[("db", "postgres")]  # type: ignore[union-attr]
    # the volume streamed in, the others taken at the same time and appended after it; the manifest lists the plan
    assert names == [
        "parts/backend.volume.uploads.tar",
        "parts/db.postgres.pgdump",
        "parts/notes.command.dump",
        "manifest.json",
    ]
    assert [p["member"] for p in manifest["parts"]] == [
        "parts/db.postgres.pgdump",
        "parts/backend.volume.uploads.tar",
        "parts/notes.command.dump",
    ]
    # no query beside the dump: the server's version is the dump header's, and no restore was interrupted
    assert streams.queries == []
    postgres = manifest["parts"][0]
    assert (postgres["database"], postgres["server_version"], postgres["server_major"]) == ("appdb", "15.4", 15)
    assert [p["size"] for p in manifest["parts"]] == [len(v) for v in DATA.values()]

    streams.data = {key: b"changed" for key in DATA}
    streams.databases = ["appdb__unistack_restore"]  # left by a restore killed before
    project = stack(tmp_path)
    live = dict.fromkeys(project.services, True)
    with Archive(path) as archive:
        planned = restore.plan(project, archive.manifest, live, force=False)
        for step in planned.steps:
            cleanup = restore.run_step(step, archive, streams)
            if cleanup is not None:
                cleanup()
    assert streams.data == DATA
    # the database went into a new one, renamed into place in one statement, the old one dropped after
    # one query first: what a killed restore left (dropped) and the old database's settings (the new one gets them)
    assert "pg_encoding_to_char" in streams.queries[0] and "appdb__unistack_restore" in streams.queries[0]
    assert streams.queries[1] == 'drop database if exists "appdb__unistack_restore" with (force)'
    assert "encoding 'UTF8' lc_collate 'C' lc_ctype 'C'" in streams.queries[2] and 'owner "app"' in streams.queries[2]
    switch = next(q for q in streams.queries if "rename" in q)
    assert switch.index('rename to "appdb__unistack_previous"') < switch.index('"appdb__unistack_restore" rename to')
    assert streams.queries[-1] == 'drop database if exists "appdb__unistack_previous" with (force)'


def test_every_damage_is_refused(tmp_path: Path) -> None:
    path = take(tmp_path, FakeStreams(dict(DATA)))
    data = path.read_bytes()
    project = stack(tmp_path)

    def refused(damaged: bytes) -> str:
        bad = tmp_path / "bad.tar"
        bad.write_bytes(damaged)
        with pytest.raises(ArchiveRefused) as caught, Archive(bad) as archive:
            restore.plan(project, archive.manifest, {}, force=False)
            archive.verify()
        return str(caught.value)

    assert "incomplete" in refused(data[:3000])
    with tarfile.open(path) as tar:
        second = tar.getmembers()[1].offset
    assert "no manifest.json" in refused(data[:second])  # cut exactly between two parts
    flipped = bytearray(data)
    flipped[600] ^= 0x40
    assert "sha256 differs" in refused(bytes(flipped))
    assert "incomplete or damaged" in refused(b"not a tar at all" * 100)


def test_another_projects_archive_needs_force_and_undeclared_parts_are_refused(tmp_path: Path) -> None:
    path = take(tmp_path, FakeStreams(dict(DATA)), stack(tmp_path, "other"))
    with Archive(path) as archive:
        manifest = archive.manifest
    with pytest.raises(ArchiveRefused, match="-p other"):
        restore.plan(stack(tmp_path), manifest, {}, force=False)
    forced = restore.plan(stack(tmp_path), manifest, {}, force=True)
    assert forced.warnings and "'other'" in forced.warnings[0]

    smaller = stack(tmp_path, "other")
    smaller = Project(
        **{**{f: getattr(smaller, f) for f in smaller.__struct_fields__}, "services": {"db": service("db")}}
    )
    with pytest.raises(ArchiveRefused, match="does not declare"):
        restore.plan(smaller, manifest, {}, force=False)


def test_phases_stop_the_users_dependents_first_and_merge(tmp_path: Path) -> None:
    project = stack(tmp_path)
    with Archive(take(tmp_path, FakeStreams(dict(DATA)))) as archive:
        manifest = archive.manifest
    live = {"db": True, "migrate": False, "backend": True, "proxy": True, "notes": True}
    planned = restore.plan(project, manifest, live, force=False)
    # uploads (backend and proxy stopped) and the database (its dependents stopped) in one phase; notes alone
    assert len(planned.phases) == 1
    phase = planned.phases[0]
    assert phase.stop == ["proxy", "backend", "migrate"] and phase.start == ["migrate", "backend", "proxy"]
    assert [s.record.kind for s in phase.steps] == ["volume", "postgres", "command"]


def test_a_service_with_a_volume_and_a_command_part_is_stopped_then_runs(tmp_path: Path) -> None:
    app = service(
        "app",
        BackupPart(kind="volume", volume="files"),
        BackupPart(kind="command", dump=("dump",), restore=("load",)),
        volumes=["files"],
    )
    project = Project(
        name="demo",
        environment="local",
        working_dir=tmp_path,
        files=(),
        state_dir=tmp_path / "state",
        services={"app": app, "web": service("web", depends_on=["app"])},
        volumes={"files": {}},
    )
    streams = FakeStreams({("app", "volume files"): b"files", ("app", "command"): b"rows"})
    with Archive(take(tmp_path, streams, project)) as archive:
        manifest = archive.manifest
    planned = restore.plan(project, manifest, {"app": True, "web": True}, force=False)
    assert [(p.stop, [s.record.kind for s in p.steps]) for p in planned.phases] == [
        (["web", "app"], ["volume"]),
        (["web"], ["command"]),
    ]


def test_a_failed_command_restore_puts_the_previous_data_back(tmp_path: Path) -> None:
    streams = FakeStreams(dict(DATA))
    path = take(tmp_path, streams)
    streams.data[("notes", "command")] = b"newer rows"
    streams.fail_restore.add(("notes", "command"))
    with Archive(path) as archive:
        planned = restore.plan(stack(tmp_path), archive.manifest, {}, False)
        step = next(s for s in planned.steps if s.part.kind == "command")
        with pytest.raises(RuntimeFailure, match="halfway"):
            restore.run_step(step, archive, streams)
    assert streams.data[("notes", "command")] == b"newer rows"


def test_plan_and_keep(tmp_path: Path) -> None:
    project = stack(tmp_path)
    assert [p.member for p in backup.plan(project, ["notes"])] == ["parts/notes.command.dump"]
    with pytest.raises(UsageError, match="declares nothing to back up"):
        backup.plan(project, ["proxy"])
    folder = tmp_path / "keep"
    folder.mkdir()
    made = []
    for second in range(4):
        path = folder / f"demo-2026010{second}T000000Z.tar"
        path.write_bytes(b"")
        made.append(path)
    (folder / "other-20260101T000000Z.tar").write_bytes(b"")
    removed = backup.prune(folder, "demo", 2)
    assert sorted(p.name for p in folder.iterdir()) == [
        "demo-20260102T000000Z.tar",
        "demo-20260103T000000Z.tar",
        "other-20260101T000000Z.tar",
    ]
    assert len(removed) == 2


def test_a_dump_without_a_readable_header_asks_its_server(tmp_path: Path) -> None:
    streams = FakeStreams({**DATA, ("db", "postgres"): b"not a custom-format dump" * 100})
    with tarfile.open(take(tmp_path, streams)) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    assert streams.queries == ["show server_version"]
    assert (manifest["parts"][0]["server_version"], manifest["parts"][0]["server_major"]) == ("15.4", 15)


def test_after_an_interrupted_restore_a_backup_removes_its_leftovers_first(tmp_path: Path) -> None:
    project = stack(tmp_path)
    project.state_dir.mkdir(parents=True)
    streams = FakeStreams(dict(DATA))
    streams.databases = ["appdb__unistack_restore"]
    parts.restore_began(project.state_dir)  # and then killed: it never said it ended
    only_uploads = backup.plan(project, ["backend"])
    backup.take(project, only_uploads, streams, "process", backup.output_path(project, None, 1_700_000_000))
    assert streams.queries == [] and parts.restore_unfinished(project.state_dir)  # no database taken: left marked
    take(tmp_path, streams, project)
    assert streams.queries[0].startswith("select string_agg(datname, ' ') from pg_database")
    assert streams.queries[1:] == ['drop database if exists "appdb__unistack_restore" with (force)']
    assert not parts.restore_unfinished(project.state_dir)  # every database recovered: the mark is gone
    streams.queries.clear()
    take(tmp_path, streams, project)
    assert streams.queries == []


def test_a_dump_from_a_newer_server_is_found(tmp_path: Path) -> None:
    streams = FakeStreams(dict(DATA))
    with Archive(take(tmp_path, streams)) as archive:
        steps = restore.plan(stack(tmp_path), archive.manifest, {}, False).steps
    assert restore.newer_servers(steps, streams) == []  # 15.4 into 15.4
    newer = [
        restore.RestoreStep(
            msgspec.structs.replace(s.record, server_version="16.2", server_major=16), s.service, s.part
        )
        for s in steps
    ]
    assert restore.newer_servers(newer, streams) == [
        "database appdb of db: the dump is from PostgreSQL 16.2, newer than the server's 15.4 (pg_restore of a newer "
        "major's dump is not supported)"
    ]


def test_a_spooled_part_beyond_memory_goes_through_a_file_and_is_copied_in_whole(tmp_path: Path) -> None:
    writer = ArchiveWriter(tmp_path / "a.tar")
    big = bytes(range(256)) * 5000  # 1.28 MB through a spool that keeps 100 kB in memory
    spool = writer.spool(memory=100_000)
    with writer.part("parts/first") as out:
        out(memoryview(b"streamed"))
        for start in range(0, len(big), 65536):
            spool(memoryview(big[start : start + 65536]))
    assert spool.file is not None and not spool.memory
    small = writer.spool()
    small(memoryview(b"in memory"))
    writer.append("parts/second", spool)
    writer.append("parts/third", small)
    spool.close()
    manifest = Manifest(
        format=1, project="p", environment="local", created="now", unistack_version="0", runtime="process", parts=()
    )
    path = writer.finish(manifest)
    assert not list(tmp_path.glob(".*"))  # neither the .partial nor a spool file is left
    with tarfile.open(path) as tar:
        assert [(m.name, m.size) for m in tar.getmembers()][:3] == [
            ("parts/first", 8),
            ("parts/second", len(big)),
            ("parts/third", 9),
        ]
        assert tar.extractfile("parts/second").read() == big  # type: ignore[union-attr]
        assert tar.extractfile("parts/third").read() == b"in memory"  # type: ignore[union-attr]
    assert spool.size_and_hash() == (len(big), hashlib.sha256(big).hexdigest())


class FailingStreams(FakeStreams):
    """``fail``: the part whose dump fails after some bytes; the others wait (bounded) for the backup to stop."""

    def __init__(self, data: dict[tuple[str, str], bytes], fail: str) -> None:
        super().__init__(data)
        self.fail = fail
        self.stopped: list[str] = []

    def run_out(self, service: Service, argv: Sequence[str], env: Mapping[str, str], out: Sink) -> None:
        if argv[0].endswith("psql"):
            return super().run_out(service, argv, env, out)
        self._produce(service.name, out)

    def volume_out(self, service: Service, volume: str, out: Sink) -> None:
        self._produce(service.name, out)

    def _produce(self, name: str, out: Sink) -> None:
        if name == self.fail:
            out(memoryview(b"first bytes"))
            raise RuntimeFailure(f"{name}: the dump failed")
        deadline = time.monotonic() + 30
        try:
            out(memoryview(b"first bytes"))  # the backup may have stopped already: Cancelled at once
            while time.monotonic() < deadline:  # until the backup stops (Cancelled from the spool)
                out(memoryview(b"more"))
                time.sleep(0.001)
        except Cancelled:
            self.stopped.append(name)
            raise


@pytest.mark.parametrize("fail", ["db", "backend"])
def test_a_part_that_fails_stops_the_others_and_leaves_no_archive(tmp_path: Path, fail: str) -> None:
    project = stack(tmp_path)
    streams = FailingStreams(dict(DATA), fail)
    path = backup.output_path(project, None, 1_700_000_000)
    planned = [p for p in backup.plan(project) if p.service.name in ("db", "backend")]
    # db failing: the streamed volume never ends by itself, the failure of the part spooled beside must stop it
    with pytest.raises(RuntimeFailure, match=f"{fail}: the dump failed"):
        backup.take(project, planned, streams, "process", path)
    assert not path.exists() and not list(path.parent.iterdir())
    if fail == "backend":
        assert streams.stopped == ["db"]


class Secrets(FakeStreams):
    """A service whose credentials are in files (``POSTGRES_*_FILE``), read with ``cat`` where it runs."""

    def __init__(self, files: dict[str, bytes]) -> None:
        super().__init__(dict(DATA))
        self.files = files

    def environment(self, service: Service) -> dict[str, str]:
        return {"POSTGRES_USER_FILE": "/run/secrets/user", "POSTGRES_PASSWORD_FILE": "/run/secrets/password"}

    def run_out(self, service: Service, argv: Sequence[str], env: Mapping[str, str], out: Sink) -> None:
        if argv[0] != "cat":
            return super().run_out(service, argv, env, out)
        if argv[-1] not in self.files:
            raise RuntimeFailure(f"`cat -- {argv[-1]}` exited 1: No such file or directory")
        out(memoryview(self.files[argv[-1]]))


def test_postgres_credentials_from_files(tmp_path: Path) -> None:
    db = stack(tmp_path).services["db"]
    streams = Secrets({"/run/secrets/user": b"owner\n\n", "/run/secrets/password": b"s3cret\n"})
    found = parts.database(streams, db, BackupPart(kind="postgres"))
    assert (found.user, found.name, found.password) == ("owner", "owner", "s3cret")  # trailing newlines dropped
    missing = Secrets({"/run/secrets/user": b"owner"})
    with pytest.raises(RuntimeFailure, match=r"'db': cannot read POSTGRES_PASSWORD_FILE \(/run/secrets/password\)"):
        parts.database(missing, db, BackupPart(kind="postgres"))
