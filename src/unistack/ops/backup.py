"""``unistack backup``: the declared parts of the selected services streamed into one archive while the instance
keeps serving; ``backup list``; ``--keep N``.

Owns which parts a backup takes (``plan``: pure), taking it (``take``: the parts taken at once from where their
services run, one streamed into the archive and the others spooled beside it, a server's version read from its
dump's header, the manifest last, then the rename; ``Steps``: when each step ended, for ``UNISTACK_DEBUG_BACKUP``),
where archives go by default (``backups/`` in the instance's state folder, which neither ``down -v`` nor ``reset``
deletes) and pruning the oldest. Consistency: a PostgreSQL dump is one snapshot (pg_dump runs in one repeatable-read
transaction), so every write acknowledged before the backup started is in it and later ones are not; a volume's files
are read as they are while the backup runs. Never prints (the ``progress`` callback is told the bytes), never stops a
service."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from unistack import __version__
from unistack.config.model import BackupPart, Project, Service
from unistack.errors import UsageError
from unistack.ops import parts, pgdump
from unistack.ops.archive import FORMAT, SUFFIX, Manifest, PartRecord, archive_name, archives_in
from unistack.ops.archive_writer import ArchiveWriter, PartWriter, Spool
from unistack.runtimes.datastreams import DataStreams, Sink, direct

Progress = Callable[[str, int], None]  # (what, bytes so far)
DEBUG = "UNISTACK_DEBUG_BACKUP"  # set (to anything): the command prints when each step ended, on stderr


class Steps:
    """When each step of a backup ended, in seconds since the command's process started (``UNISTACK_DEBUG_BACKUP``
    makes the command print them: where a backup's time goes). Called from the parts' threads too."""

    def __init__(self, began: float | None = None) -> None:
        self.began = _process_started() if began is None else began
        self.marks: list[tuple[str, float]] = []

    def __call__(self, what: str) -> None:
        self.marks.append((what, time.perf_counter() - self.began))  # list.append is atomic

    def lines(self) -> list[str]:
        return [f"{seconds:7.3f} s  {what}" for what, seconds in self.marks]


def _process_started() -> float:
    """The ``perf_counter`` reading at which this process started (Linux: /proc/self/stat; else now)."""
    try:
        with open("/proc/self/stat", "rb") as stat:
            ticks = int(stat.read().rpartition(b")")[2].split()[19])
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        age = 0.0
    return time.perf_counter() - max(0.0, age)


def _nothing(what: str) -> None:
    pass


@dataclass(frozen=True)
class PlannedPart:
    service: Service
    part: BackupPart
    member: str

    @property
    def label(self) -> str:
        what = f"volume {self.part.volume}" if self.part.kind == "volume" else self.part.kind
        return f"{self.service.name} ({what})"


def backups_dir(project: Project) -> Path:
    return project.state_dir / "backups"


def plan(project: Project, services: Sequence[str] = ()) -> list[PlannedPart]:
    """The parts to take: every declared one, or those of ``services``."""
    declared = [name for name, s in project.services.items() if s.backup]
    if not declared:
        raise UsageError(
            f"no service of {project.name!r} declares what to back up; add x-unistack.backup to the services that "
            "keep data (postgres: {}, volume: NAME, or dump/restore commands; see docs/data.md)"
        )
    for name in services:
        if not project.services[name].backup:
            raise UsageError(
                f"service {name!r} declares nothing to back up (no x-unistack.backup); these do: {', '.join(declared)}"
            )
    chosen = list(services) or declared
    return [
        PlannedPart(project.services[name], part, parts.member_name(project.services[name], part, index))
        for name in chosen
        for index, part in enumerate(project.services[name].backup)
    ]


def output_path(project: Project, output: Path | None, now: float) -> Path:
    """Where the archive goes: ``output`` (a folder: a new name in it), else the instance's backups folder."""
    folder = backups_dir(project)
    if output is not None and (output.is_dir() or str(output).endswith("/")):
        folder, output = output, None
    if output is not None:
        if output.exists():
            raise UsageError(f"{output} exists already; name a new file, or a folder to put the archive in")
        return output
    path = folder / archive_name(project.name, now)
    count = 1
    while path.exists() or path.with_name(f".{path.name}.partial").exists():
        count += 1
        path = folder / archive_name(project.name, now).replace(SUFFIX, f"-{count}{SUFFIX}")
    return path


def take(
    project: Project,
    planned: Sequence[PlannedPart],
    streams: DataStreams,
    runtime_name: str,
    path: Path,
    progress: Progress | None = None,
    steps: Callable[[str], None] = _nothing,
) -> Manifest:
    """Take every part at once into a new archive at ``path`` (written as ``.<name>.partial``, renamed when
    complete): one part (the first volume: usually the largest) streams straight into the archive, the others are
    spooled meanwhile (``ArchiveWriter.spool``) and appended after it, then the manifest. ``steps`` is told when
    each step ends (``Steps``)."""
    started = time.time()
    writer = ArchiveWriter(path)
    streamed = next((i for i, item in enumerate(planned) if item.part.kind == "volume"), 0)
    recover = parts.restore_unfinished(project.state_dir)  # a restore was interrupted: its leftovers removed first
    beside = {
        i: _Beside(item, streams, writer.spool(), steps, recover) for i, item in enumerate(planned) if i != streamed
    }
    records: dict[int, PartRecord] = {}
    try:
        for taker in beside.values():
            taker.start()
        item = planned[streamed]
        with writer.part(item.member) as out:
            streaming = _Streamed(out, item.label, list(beside.values()), progress)
            records[streamed] = _take_part(item, streams, streaming, out.size_and_hash, steps, recover)
        for index, taker in beside.items():
            while taker.is_alive():
                taker.join(0.1)
                if progress is not None:
                    progress(taker.item.label, taker.spool.size)
            records[index] = taker.record()
            writer.append(taker.item.member, taker.spool)
            steps(f"{taker.item.label}: appended")
        manifest = Manifest(
            format=FORMAT,
            project=project.name,
            environment=project.environment,
            created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            unistack_version=__version__,
            runtime=runtime_name,
            parts=tuple(records[i] for i in sorted(records)),
        )
        writer.finish(manifest)
        steps("the archive written, fsynced and renamed")
        if recover and _every_database(project, planned):
            parts.restore_ended(project.state_dir)  # nothing of the interrupted restore is left now
    except BaseException:
        for taker in beside.values():
            taker.spool.cancel()  # its producer stops at its next chunk (its command killed)
        for taker in beside.values():
            if taker.ident is not None:
                taker.join(STOP_WAIT)
        writer.abort()
        raise
    finally:
        for taker in beside.values():
            taker.spool.close()
    return manifest


STOP_WAIT = 10.0  # seconds a part taken beside is waited for once the backup failed


def _every_database(project: Project, planned: Sequence[PlannedPart]) -> bool:
    """Whether ``planned`` takes every postgres part the project declares (each was recovered before its dump)."""
    taken = {(item.service.name, item.part) for item in planned}
    declared = {(name, part) for name, s in project.services.items() for part in s.backup if part.kind == "postgres"}
    return declared <= taken


class _Streamed:
    """The sink of the part streamed into the archive: its bytes given (``__call__``) or, when the command runs on
    this machine, written by it straight into the archive's file (``direct``: ``fd``, ``written``); either way
    the progress told, and stopped when a part beside failed (its command killed)."""

    def __init__(self, out: PartWriter, label: str, others: list[_Beside], progress: Progress | None) -> None:
        self.out, self.label, self.others, self.progress = out, label, others, progress
        self.direct = self

    @property
    def fd(self) -> int:
        return self.out.fd

    def __call__(self, chunk: memoryview) -> None:
        self.out(chunk)
        self._went_on()

    def written(self) -> int:
        taken = self.out.written()
        self._went_on()
        return taken

    def _went_on(self) -> None:
        for taker in self.others:
            if taker.error is not None:  # a part beside failed: this one stops too (its command killed)
                raise taker.error
        if self.progress is not None:
            self.progress(self.label, self.out.size + sum(taker.spool.size for taker in self.others))


class _Beside(threading.Thread):
    """A part taken into its spool while another streams into the archive; ``record`` re-raises its failure."""

    def __init__(
        self, item: PlannedPart, streams: DataStreams, spool: Spool, steps: Callable[[str], None], recover: bool
    ) -> None:
        super().__init__(name=f"backup {item.label}", daemon=True)
        self.item, self.streams, self.spool, self.steps, self.recover = item, streams, spool, steps, recover
        self.result: PartRecord | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = _take_part(
                self.item, self.streams, self.spool, self.spool.size_and_hash, self.steps, self.recover
            )
        except BaseException as exc:  # handed to the main thread by record()
            self.error = exc

    def record(self) -> PartRecord:
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


def _take_part(
    item: PlannedPart,
    streams: DataStreams,
    sink: Sink,
    taken: Callable[[], tuple[int, str]],
    steps: Callable[[str], None] = _nothing,
    recover: bool = False,
) -> PartRecord:
    service, part = item.service, item.part
    version: tuple[str, int] | None = None
    db = None
    if steps is not _nothing:
        sink = _FirstBytes(sink, lambda: steps(f"{item.label}: first bytes"))
    if part.kind == "postgres":
        db = parts.database(streams, service, part)
        if recover:  # what an interrupted restore left is removed first (not data)
            parts.recover_database(streams, service, db)
        kept = pgdump.HeadKept(sink)  # the server's version is read from the dump's own header: no query beside it
        parts.dump(streams, service, part, kept, db)
        said = pgdump.server_version(bytes(kept.head))
        version = parts.version_of(service, said) if said else parts.server_version(streams, service, db)
        steps(f"{item.label}: its server's version read ({version[0]})")
    else:
        parts.dump(streams, service, part, sink, db)  # a volume: an interrupted restore finished or undone first
    size, sha256 = taken()
    steps(f"{item.label}: all {size} bytes taken")
    return PartRecord(
        service=service.name,
        kind=part.kind,
        member=item.member,
        size=size,
        sha256=sha256,
        volume=part.volume,
        database=db.name if db else None,
        server_version=version[0] if version else None,
        server_major=version[1] if version else None,
    )


class _FirstBytes:
    """A sink that tells ``then`` when its first bytes come (given or written straight into its file)."""

    def __init__(self, sink: Sink, then: Callable[[], None]) -> None:
        self.sink, self.then, self.seen = sink, then, False
        self.into = direct(sink)
        self.direct = self if self.into is not None else None

    @property
    def fd(self) -> int:
        assert self.into is not None
        return self.into.fd

    def __call__(self, chunk: memoryview) -> object:
        self._first()
        return self.sink(chunk)

    def written(self) -> int:
        assert self.into is not None
        taken = self.into.written()
        if taken:
            self._first()
        return taken

    def _first(self) -> None:
        if not self.seen:
            self.seen = True
            self.then()


def prune(folder: Path, project: str, keep: int) -> list[Path]:
    """Remove the oldest archives of ``project`` in ``folder`` beyond the newest ``keep``; returns the removed."""
    found = archives_in(folder, project)
    removed = found[: max(0, len(found) - keep)]
    for path in removed:
        path.unlink(missing_ok=True)
    return removed
