"""``unistack restore``: an archive's parts put back into a running instance, nothing touched before the archive
is verified, and never an instance left without usable data.

Owns the plan (pure: which declared part each archived part goes into, the refusals that ``--force`` overrides,
which services are stopped and started again) and carrying it out part by part. The strategy: PostgreSQL parts
are restored into a new database that takes the old one's name in one transaction only once ``pg_restore``
succeeded; volume parts are unpacked into new storage beside the volume and switched in once complete (``parts``,
``DataStreams.volume_in``); a ``dump``/``restore`` command pair cannot be restored beside the data, so the part's
current data is first saved with its own ``dump`` (the safety copy) and put back with ``restore`` when the restore
fails. Never prints, asks or talks to the daemon (``commands/data.py`` does, with ``Steps``).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from unistack import graph
from unistack.config.model import BackupPart, Project, Service
from unistack.errors import ArchiveRefused, UnistackError
from unistack.ops import parts
from unistack.ops.archive import Archive, Manifest, PartRecord
from unistack.runtimes.datastreams import CHUNK, DataStreams


@dataclass(frozen=True)
class RestoreStep:
    record: PartRecord
    service: Service
    part: BackupPart

    @property
    def label(self) -> str:
        if self.part.kind == "volume":
            return f"volume {self.part.volume} of {self.service.name}"
        if self.part.kind == "postgres":
            return f"database {self.record.database or '?'} of {self.service.name}"
        return f"{self.service.name}'s data (its restore command)"


@dataclass(frozen=True)
class Phase:
    """Parts restored while ``stop`` (dependents first) are stopped; ``start`` afterwards."""

    steps: list[RestoreStep]
    stop: list[str]
    start: list[str]


@dataclass
class RestorePlan:
    """Volumes first (their users and their dependents stopped), then, service by service in start order, the
    parts restored through a running service (its dependents stopped): a service with both is stopped for the
    first phase and runs for its own."""

    phases: list[Phase]
    warnings: list[str] = field(default_factory=list)  # refusals overridden with --force

    @property
    def steps(self) -> list[RestoreStep]:
        return [step for phase in self.phases for step in phase.steps]

    @property
    def stopped(self) -> list[str]:
        return list(dict.fromkeys(name for phase in self.phases for name in phase.stop))


def plan(project: Project, manifest: Manifest, live: Mapping[str, bool], force: bool) -> RestorePlan:
    """``live``: each service of the instance that ran (True) or had finished cleanly (False) before."""
    warnings: list[str] = []
    if manifest.project != project.name:
        why = (
            f"the archive is of project {manifest.project!r}, not {project.name!r} (the instance this command acts on)"
        )
        if not force:
            raise ArchiveRefused(
                f"{why}; nothing was changed. Restore it into its own instance with `-p {manifest.project}`, or add "
                f"--force to put the data of {manifest.project!r} into {project.name!r}"
            )
        warnings.append(why)
    steps = []
    for record in manifest.parts:
        service = project.services.get(record.service)
        part = _declared(service, record) if service else None
        if service is None or part is None:
            raise ArchiveRefused(
                f"the archive holds {record.service}'s {record.kind}"
                + (f" (volume {record.volume})" if record.volume else "")
                + f", which {project.name!r} does not declare under that service's x-unistack.backup; nothing was "
                "changed. Declare it, or restore with the compose files the backup was taken with"
            )
        steps.append(RestoreStep(record, service, part))
    g = {name: list(s.depends_on) for name, s in project.services.items()}
    order = graph.stop_order(g)
    phases = []
    volumes = [s for s in steps if s.part.kind == "volume"]
    if volumes:
        stopped: set[str] = set()
        for step in volumes:
            users = {n for n, s in project.services.items() if step.part.volume in _mounted(s)} | {step.service.name}
            for user in users:
                stopped |= {user} | graph.dependents(g, user)
        stop = [n for n in order if n in stopped and n in live]
        phases.append(Phase(volumes, stop, list(reversed(stop))))
    for name in graph.start_order(g):  # dependencies first: a database before the services that use it
        running = [s for s in steps if s.part.kind != "volume" and s.service.name == name]
        if running:
            stop = [n for n in order if n in graph.dependents(g, name) and n in live]
            phases.append(Phase(running, stop, list(reversed(stop))))
    return RestorePlan(_merged(phases, order), warnings)


def newer_servers(steps: Sequence[RestoreStep], streams: DataStreams) -> list[str]:
    """The PostgreSQL parts whose dump came from a newer server major than the one it would go into."""
    found = []
    for step in steps:
        if step.part.kind != "postgres" or step.record.server_major is None:
            continue
        db = parts.database(streams, step.service, step.part)
        version, major = parts.server_version(streams, step.service, db)
        if step.record.server_major > major:
            found.append(
                f"{step.label}: the dump is from PostgreSQL {step.record.server_version}, newer than the server's "
                f"{version} (pg_restore of a newer major's dump is not supported)"
            )
    return found


def run_step(
    step: RestoreStep, archive: Archive, streams: DataStreams, on_bytes: Callable[[int], None] | None = None
) -> parts.Cleanup | None:
    """Put one part back; returns what is left to do once the services run again. A ``command`` part's current
    data is saved first with its own dump and put back when its restore fails (the other kinds restore beside the
    data and switch)."""
    source = archive.source(step.record, on_bytes)
    if step.part.kind != "command":
        return parts.restore(streams, step.service, step.part, source)
    with tempfile.TemporaryFile() as safety:
        parts.dump(streams, step.service, step.part, safety.write)
        try:
            parts.restore(streams, step.service, step.part, source)
        except BaseException as exc:
            safety.seek(0)
            try:
                parts.restore(streams, step.service, step.part, lambda: safety.read(CHUNK))
            except UnistackError as again:
                raise UnistackError(f"{exc}; putting the previous data back failed too: {again}") from exc
            raise
    return None


def _merged(phases: list[Phase], order: list[str]) -> list[Phase]:
    """Neighbouring phases as one when no service that must run for the second is stopped for either: the stack's
    uploads and database are restored with backend, proxy and migrate stopped once."""
    merged: list[Phase] = []
    for phase in phases:
        if merged:
            last = merged[-1]
            must_run = {s.service.name for s in phase.steps + last.steps if s.part.kind != "volume"}
            stopped = set(last.stop) | set(phase.stop)
            if not must_run & stopped:
                stop = [n for n in order if n in stopped]
                merged[-1] = Phase(last.steps + phase.steps, stop, list(reversed(stop)))
                continue
        merged.append(phase)
    return merged


def _declared(service: Service, record: PartRecord) -> BackupPart | None:
    """The declared part the archived one was taken from: the same name in the archive (or, for an archive of
    files that changed since, the same kind and volume)."""
    for index, part in enumerate(service.backup):
        if parts.member_name(service, part, index) == record.member:
            return part
    for part in service.backup:
        if part.kind == record.kind and (part.kind != "volume" or part.volume == record.volume):
            return part
    return None


def _mounted(service: Service) -> set[str]:
    return {
        str(m.get("source"))
        for m in service.spec.get("volumes") or ()
        if isinstance(m, Mapping) and m.get("type", "volume") == "volume" and m.get("source")
    }
