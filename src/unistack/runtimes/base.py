"""The Runtime protocol: the only view the engine has of processes or containers.

A runtime starts one incarnation of a service (a ``Handle``), waits for it to exit, runs its health probe,
stops it with a signal and a grace period, reads the tail of its logs, and can re-adopt an incarnation that a
previous supervisor started (from the record it saved). Third-party and OS errors are translated into
``RuntimeFailure`` here, at the edge. Policy (when to restart, what is healthy) lives in the engine.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from unistack.config.model import Healthcheck, Project, Service
from unistack.runtimes.logfiles import LogLine


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    exit_code: int | None
    output: str


@dataclass(frozen=True)
class StopResult:
    killed: bool  # True when the incarnation was killed (the grace period ran out, or it was frozen)
    exit_code: int | None
    frozen: bool = False  # stopped (SIGSTOP) or paused: killed at once, with no grace period it could not use


@dataclass
class Handle:
    """One running incarnation of a service, as the runtime knows it."""

    service: str
    ident: str  # pid for host processes, container id for Docker
    started_at: float  # wall-clock seconds
    record: dict[str, Any] = field(default_factory=dict)  # what ``adopt`` needs to find it again
    adopted: bool = False


class Runtime(Protocol):
    name: str

    async def prepare(self, project: Project) -> None:
        """Create what the instance needs before any service starts (folders, networks, volumes)."""

    def setup_step(self, service: Service) -> str | None:
        """What ``setup`` will do for this service, in words (None: nothing, so the engine skips it)."""

    async def setup(self, project: Project, service: Service) -> ProbeResult:
        """Run the service's setup step (install, build) to completion; ok when there is none."""

    def install_step(self, service: Service) -> str | None:
        """What ``install`` runs for this service's ``x-unistack.dependencies``, in words (None: nothing)."""

    async def install(self, project: Project, service: Service, handle: Handle | None) -> ProbeResult:
        """Install what the service's changed dependency manifests ask for into its running incarnation ``handle``
        (None: it is between two incarnations), which keeps running meanwhile; ``output`` ends with what the
        installer printed. Host processes run the setup step again; containers get the manifests copied in and
        the install command run inside. Cancellation stops the installer."""

    async def start(self, project: Project, service: Service) -> Handle:
        """Start one incarnation; raise RuntimeFailure (with the reason) when it cannot start at all."""

    def beside(self, project: Project, service: Service) -> Service:
        """The form of ``service`` whose incarnation can run beside its live one (a start-first update): its own
        socket (host processes). Raise ``NotSupported`` (with the reason) when this runtime cannot run two."""

    async def switch(self, project: Project, service: Service, beside: Service) -> None:
        """Make what reaches ``service`` (the proxy's upstream) reach the incarnation of ``beside`` from now on,
        atomically; idempotent (repeated while the old incarnation stops)."""

    async def settle(self, project: Project, service: Service, beside: Service) -> None:
        """After the switch and the old incarnation's stop: make the new one the service's only (containers: the old
        removed, the new renamed to Compose's name)."""

    async def finish_update(self, project: Project, service: Service, new: Handle) -> None:
        """A supervisor died between an update's switch and the old incarnation's stop: stop what is left of the old
        one and make ``new`` (adopted) the service's only, as ``settle`` does after a stop."""

    async def outdated(self, project: Project, service: Service, handle: Handle) -> str | None:
        """Why this live incarnation is not what a start would run now (its image was rebuilt, its build context
        changed since), or None when it is; ``up`` on a running instance recreates what is outdated."""

    async def wait(self, handle: Handle) -> int | None:
        """Return when the incarnation has exited, with its exit code (None when it cannot be known)."""

    def exit_detail(self, handle: Handle) -> str:
        """What the runtime knows of how this incarnation (``wait`` returned) ended beyond its exit code, in words
        (Docker: its State.OOMKilled); empty when nothing. Asked once per end."""

    def unknown_exit(self, handle: Handle) -> str:
        """Why the exit code of this incarnation (``wait`` returned None) cannot be known, in words (host
        processes: one adopted from a previous daemon is not this one's child; Docker: the container was removed)."""

    async def probe(self, project: Project, service: Service, handle: Handle, check: Healthcheck) -> ProbeResult:
        """Run the healthcheck once against this incarnation, bounded by ``check.timeout``."""

    async def stop(self, handle: Handle, signal_name: str, grace: float) -> StopResult:
        """Send ``signal_name``; after ``grace`` seconds kill. Return whether it had to kill.

        A frozen incarnation (its main process stopped by SIGSTOP, or a paused container) cannot act on a signal:
        it is killed at once instead of being waited for (``frozen``)."""

    async def adopt(self, project: Project, service: Service, record: dict[str, Any]) -> Handle | None:
        """Find a live incarnation a previous supervisor started, or None if it is gone."""

    async def strays(self, state_dir: Path, known: set[str]) -> list[Handle]:
        """Live incarnations of the instance kept in ``state_dir`` that are not in ``known`` (nobody tracks them)."""

    async def tail(self, project: Project, service: str, lines: int) -> list[str]:
        """The last lines the service printed (across its incarnations)."""

    async def housekeeping(self, project: Project) -> None:
        """Periodic upkeep while the instance runs (log rotation)."""

    def logs(self, project: Project, services: Sequence[str], tail: int | None, follow: bool) -> AsyncIterator[LogLine]:
        """The services' output: the last ``tail`` lines (all when None), then new lines if ``follow``."""
        ...

    async def cleanup(self, project: Project, remove_volumes: bool) -> None:
        """After every service stopped (``down``): remove what ``prepare`` made; data too if asked."""
