"""The seam between backup/restore (``ops/``) and the runtimes: a service's data streamed out and in where the
service runs, never through a temporary copy on the host.

``DataStreams`` is what each runtime gives: run a command where a service runs with its stdout streamed out
(``run_out``) or with bytes streamed to its stdin (``run_in``); where a PostgreSQL service's own tools and socket
are (``postgres_place``); a named volume's files as a tar stream (``volume_out``) and a tar stream unpacked into new
storage that replaces the volume's files only once it is complete (``volume_in``, ``volume_recover``). Host
processes: ``runtimes/process_data.py``; containers: ``runtimes/docker/data.py``. Bytes move in large chunks
(``CHUNK``), never line by line; a sink that is a file (``direct``) may have a command on this machine write its
stdout straight into it, with no copy through this process. Failures are ``RuntimeFailure`` with the command's last
output. Never decides
what to back up or what a restore replaces (``ops/``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from unistack.config.model import Project, Service

CHUNK = 1 << 20  # bytes per read and write: large copies, few Python calls
Sink = Callable[[memoryview], object]  # takes each chunk (valid only during the call); what it returns is ignored
Source = Callable[[], bytes]  # the next chunk; b"" at the end
STAGING = ".unistack-restore"  # a volume's new files while a restore unpacks them
PREVIOUS = ".unistack-previous"  # a volume's old files while a restore switches


@dataclass(frozen=True)
class PostgresPlace:
    """Where a PostgreSQL service's client tools and server are: ``bindir`` the folder of pg_dump, pg_restore and
    psql from the server's own installation ("" when they are on the PATH where the service runs), and the
    ``host`` (socket folder) and ``port`` the server listens on (None: the tools' defaults there)."""

    bindir: str = ""
    host: str | None = None
    port: str | None = None

    def tool(self, name: str) -> str:
        return f"{self.bindir.rstrip('/')}/{name}" if self.bindir else name

    def environment(self) -> dict[str, str]:
        env = {}
        if self.host:
            env["PGHOST"] = self.host
        if self.port:
            env["PGPORT"] = self.port
        return env


class Direct(Protocol):
    """What a sink offers when it is a file (``direct``): a command on this machine may have ``fd`` as its stdout
    (written at the file's offset) instead of a pipe; ``written`` takes what it wrote so far (counts and hashes it:
    read back from the page cache it was just written to) and returns how many new bytes, or raises to stop the
    command (another part failed)."""

    @property
    def fd(self) -> int: ...

    def written(self) -> int: ...


def direct(out: Sink) -> Direct | None:
    """The file behind ``out``, when it is one that a command may write into (its ``direct`` attribute)."""
    found: Direct | None = getattr(out, "direct", None)
    return found


class DataStreams(Protocol):
    def environment(self, service: Service) -> dict[str, str]:
        """The service's environment where it runs (what its own commands see)."""

    def run_out(self, service: Service, argv: Sequence[str], env: Mapping[str, str], out: Sink) -> None:
        """Run ``argv`` where ``service`` runs (its environment, with ``env`` over it), giving every byte of its
        stdout to ``out``; RuntimeFailure with its stderr's last lines when it exits other than 0."""

    def run_in(self, service: Service, argv: Sequence[str], env: Mapping[str, str], source: Source) -> str:
        """Run ``argv`` where ``service`` runs, with ``source``'s bytes on its stdin, then end of file; returns
        what it printed (the last lines); RuntimeFailure when it exits other than 0."""

    def postgres_place(self, service: Service) -> PostgresPlace:
        """Where the PostgreSQL server of ``service`` and its own client tools are."""

    def volume_out(self, service: Service, volume: str, out: Sink) -> None:
        """The files of named volume ``volume`` (its key in the file) as a tar stream, names relative to its root
        (``./...``), owners and modes kept; read-only: the services using it keep running. A restore of it that was
        interrupted is finished or undone first (``volume_recover``), so its leftovers are never read as data.
        Called from a thread of its own beside other parts (a backup takes them at once)."""

    def volume_in(self, service: Service, volume: str, source: Source) -> Callable[[], None] | None:
        """Unpack the tar stream ``source`` into new storage beside the volume's files; only when all of it is
        there, switch: the volume then holds exactly the archive's files. A failure or a kill before the switch
        leaves the old files as they were (``volume_recover`` removes what was unpacked). Returns what removes the
        old files, when that is left to do (it can wait until the services run again)."""

    def volume_recover(self, service: Service, volume: str) -> str | None:
        """Finish or undo a restore of ``volume`` that was interrupted; what was done, or None (nothing to do)."""


def tail_text(data: bytes, lines: int = 8) -> str:
    """The last lines of a command's output, for a message."""
    text = data.decode("utf-8", "replace").strip()
    return "\n".join(text.splitlines()[-lines:])


def open_streams(runtime: str, project: Project, live: Mapping[str, str]) -> DataStreams:
    """The runtime's ``DataStreams`` for an instance whose live services are ``live`` (service -> pid or container
    id, as ``ps`` shows them)."""
    if runtime == "docker":
        from unistack.runtimes.docker.data import DockerData

        return DockerData(project, live)
    from unistack.runtimes.process_data import ProcessData

    return ProcessData(project, {name: int(ident) for name, ident in live.items()})
