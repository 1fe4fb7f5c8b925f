"""``unistack backup``: the declared parts of the selected services streamed into one archive while the instance
keeps serving; ``backup list``; ``--keep N``.

Owns which parts a backup takes (``plan``: pure), taking it (``take``: each part streamed from where its service
runs into the archive, the manifest last, then the rename), where archives go by default (``backups/`` in the
instance's state folder, which neither ``down -v`` nor ``reset`` deletes) and pruning the oldest. Consistency: a
PostgreSQL dump is one snapshot (pg_dump runs in one repeatable-read transaction), so every write acknowledged
before the backup started is in it and later ones are not; a volume's files are read as they are while the backup
runs. Never prints (the ``progress`` callback is told the bytes), never stops a service.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from unistack import __version__
from unistack.config.model import BackupPart, Project, Service
from unistack.errors import UsageError
from unistack.ops import parts
from unistack.ops.archive import FORMAT, SUFFIX, ArchiveWriter, Manifest, PartRecord, archive_name, archives_in
from unistack.runtimes.datastreams import DataStreams, Sink

Progress = Callable[[str, int], None]  # (what, bytes so far)


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
) -> Manifest:
    """Stream every part into a new archive at ``path`` (written as ``.<name>.partial``, renamed when complete)."""
    started = time.time()
    writer = ArchiveWriter(path)
    records = []
    try:
        for item in planned:
            records.append(_take_part(item, streams, writer, progress))
        manifest = Manifest(
            format=FORMAT,
            project=project.name,
            environment=project.environment,
            created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            unistack_version=__version__,
            runtime=runtime_name,
            parts=tuple(records),
        )
        writer.finish(manifest)
    except BaseException:
        writer.abort()
        raise
    return manifest


def _take_part(item: PlannedPart, streams: DataStreams, writer: ArchiveWriter, progress: Progress | None) -> PartRecord:
    service, part = item.service, item.part
    version: tuple[str, int] | None = None
    db = None
    if part.kind == "postgres":
        db = parts.database(streams, service, part)
        parts.recover_database(streams, service, db)  # an interrupted restore's leftovers are not data
        version = parts.server_version(streams, service, db)
    elif part.kind == "volume":
        assert part.volume is not None
        streams.volume_recover(service, part.volume)
    with writer.part(item.member) as out:
        sink: Sink = out
        if progress is not None:
            report = progress

            def reporting(chunk: memoryview) -> None:
                out(chunk)
                report(item.label, out.size)

            sink = reporting
        parts.dump(streams, service, part, sink, db)
    return PartRecord(
        service=service.name,
        kind=part.kind,
        member=item.member,
        size=out.size,
        sha256=out.hash.hexdigest(),
        volume=part.volume,
        database=db.name if db else None,
        server_version=version[0] if version else None,
        server_major=version[1] if version else None,
    )


def prune(folder: Path, project: str, keep: int) -> list[Path]:
    """Remove the oldest archives of ``project`` in ``folder`` beyond the newest ``keep``; returns the removed."""
    found = archives_in(folder, project)
    removed = found[: max(0, len(found) - keep)]
    for path in removed:
        path.unlink(missing_ok=True)
    return removed
