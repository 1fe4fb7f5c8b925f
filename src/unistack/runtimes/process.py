"""The host-process runtime: each service is a process group on this machine.

The Runtime driver the engine sees. Owns the instance's folders (``run/`` 0700, ``logs/``, ``volumes/<name>``), a
service's environment (``process_env.py``: the OS environment, then ``environment``, then
``x-unistack.process.environment``, then the ``UNISTACK_*`` variables), its log file (rotated, tailed, followed:
``logfiles.py``), its setup step and installs run to completion, starting its ``x-unistack.process`` command (in its own
session, so it has its own process group and outlives a killed supervisor: ``process_spawn.py``; under the keeper of its
exit code when a dependent waits for it to complete), re-adopting a live process by pid and start time, finding strays,
and start-first updates through its socket link (``sockets.py``). Waiting and stopping (``process_exits.py``: the whole
group, signal, grace, SIGKILL; a stopped leader killed at once) and probes (``process_healthchecks.py``) are handed to
their modules. It never decides when to restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import psutil

from unistack.config.model import Healthcheck, Project, Service
from unistack.errors import NotSupported, RuntimeFailure
from unistack.runtimes import PROCESS, exitkeeper, logfiles, process_exits, process_healthchecks, sockets
from unistack.runtimes.base import Handle, ProbeResult, StopResult
from unistack.runtimes.children import Child, signal_group
from unistack.runtimes.host import check_port_free
from unistack.runtimes.process_env import service_environment
from unistack.runtimes.process_spawn import Spawner

INSTALL_OUTPUT = 64 * 1024  # bytes of an install's output kept for the summary of what it installed


class ProcessRuntime:
    name = PROCESS

    def __init__(self, base_environment: dict[str, str] | None = None) -> None:
        self.base_environment = dict(os.environ if base_environment is None else base_environment)
        self._children: dict[str, Child] = {}  # this daemon's own, by pid
        self._spawner = Spawner()

    # ----------------------------------------------------------------- folders and logs

    def log_path(self, project: Project, service: str) -> Path:
        return project.logs_dir / f"{service}.log"

    async def prepare(self, project: Project) -> None:
        try:
            project.state_dir.mkdir(parents=True, exist_ok=True)
            project.run_dir.mkdir(mode=0o700, exist_ok=True)
            if project.run_dir.stat().st_mode & 0o066:  # private: nobody else may list or write in it
                # (an ACL's mask or o+x that lets one account traverse it is kept: resetting it on every `up` cut
                # off a server starting at that moment, such as PostgreSQL opening its socket's lock file)
                project.run_dir.chmod(0o700)
            project.logs_dir.mkdir(exist_ok=True)
            for volume in project.volumes:
                (project.volumes_dir / volume).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RuntimeFailure(f"cannot prepare the state folder {project.state_dir}: {exc.strerror}") from exc

    async def housekeeping(self, project: Project) -> None:
        for service in project.services:
            logfiles.rotate_if_needed(self.log_path(project, service))

    async def tail(self, project: Project, service: str, lines: int) -> list[str]:
        return logfiles.tail_lines(self.log_path(project, service), lines)

    def logs(
        self, project: Project, services: Sequence[str], tail: int | None, follow: bool
    ) -> AsyncIterator[logfiles.LogLine]:
        return logfiles.follow([(s, self.log_path(project, s)) for s in services], tail, follow)

    async def cleanup(self, project: Project, remove_volumes: bool) -> None:
        if project.run_dir.exists():
            for entry in project.run_dir.iterdir():
                with contextlib.suppress(OSError):
                    shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
        if remove_volumes and project.volumes_dir.exists():
            shutil.rmtree(project.volumes_dir, ignore_errors=True)

    # ----------------------------------------------------------------- processes

    def environment(self, project: Project, service: Service) -> dict[str, str]:
        return service_environment(self.base_environment, project, service)

    def _spec(self, service: Service) -> tuple[tuple[str, ...], Path]:
        if service.process is None:
            raise NotSupported(
                f"service {service.name!r} has no x-unistack.process.command, so it cannot run as a host process; "
                "add one or use --runtime docker"
            )
        return service.process.command, service.process.working_dir

    async def _spawn(
        self, project: Project, service: Service, argv: tuple[str, ...], cwd: Path, what: str, kept: bool = False
    ) -> Child:
        """Start ``argv`` in its own session, its output appended to the service's log file (``process_spawn``)."""
        log_path = self.log_path(project, service.name)
        env = self.environment(project, service)
        return await self._spawner.spawn(project, service.name, log_path, env, argv, cwd, what, kept)

    def setup_step(self, service: Service) -> str | None:
        if service.process is None or not service.process.setup:
            return None
        return " ".join(service.process.setup)

    async def setup(self, project: Project, service: Service) -> ProbeResult:
        if service.process is None or not service.process.setup:
            return ProbeResult(True, 0, "")
        try:
            code = await self._run_step(project, service, service.process.setup, service.process.working_dir)
        except RuntimeFailure as exc:
            return ProbeResult(False, None, str(exc))
        tail = "\n".join(logfiles.tail_lines(self.log_path(project, service.name), 15))
        return ProbeResult(code == 0, code, tail)

    async def _run_step(self, project: Project, service: Service, argv: tuple[str, ...], cwd: Path) -> int:
        """A setup or install step run to completion, its output in the service's log; stopped (TERM, 5 s, KILL)
        when cancelled. RuntimeFailure when it cannot be started."""
        proc = await self._spawn(project, service, argv, cwd, "setup")
        try:
            code = process_exits.exit_status(await proc.wait())
        except asyncio.CancelledError:
            signal_group(proc.pid, signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await proc.wait()
            signal_group(proc.pid, signal.SIGKILL)
            raise
        await proc.output_written()
        return code

    def install_step(self, service: Service) -> str | None:
        if service.dependencies is None:
            return None
        argv, _ = self._installer(service)
        return " ".join(argv) if argv else None

    def _installer(self, service: Service) -> tuple[tuple[str, ...], Path | None]:
        """The setup step (the host's installer, which does only what changed), else ``install``; and where."""
        cwd = service.process.working_dir if service.process else None
        if service.process is not None and service.process.setup:
            return service.process.setup, cwd
        return (service.dependencies.install if service.dependencies else ()), cwd

    async def install(self, project: Project, service: Service, handle: Handle | None) -> ProbeResult:
        """Run the installer beside the running process, its output appended to the service's log (and returned:
        what was appended meanwhile, the service's own lines included)."""
        argv, cwd = self._installer(service)
        if not argv:
            return ProbeResult(False, None, f"{service.name} has no setup step or install command")
        log_path = self.log_path(project, service.name)
        offset = _size(log_path)
        try:
            code = await self._run_step(project, service, argv, cwd or project.working_dir)
        except RuntimeFailure as exc:
            return ProbeResult(False, None, str(exc))
        return ProbeResult(code == 0, code, _read_from(log_path, offset, INSTALL_OUTPUT))

    async def start(self, project: Project, service: Service) -> Handle:
        service = sockets.for_start(project, service)  # a start-first service: its own socket, linked
        argv, cwd = self._spec(service)
        for port in service.ports:
            check_port_free(service.name, port)
        kept = exit_code_awaited(project, service.name)
        proc = await self._spawn(project, service, argv, cwd, "command", kept=kept)
        pid = proc.service_pid
        self._children[str(pid)] = proc
        try:
            created = psutil.Process(pid).create_time()
        except psutil.Error:
            created = proc.began
        started_at = proc.began  # create_time is only as exact as the kernel's boot time stamp
        record: dict[str, Any] = {"pid": pid, "pgid": proc.pid, "create_time": created, "started_at": started_at}
        if kept:
            record["exit_file"] = exitkeeper.status_path(str(project.run_dir), service.name, pid)
        return Handle(service=service.name, ident=str(pid), started_at=started_at, record=record)

    def beside(self, project: Project, service: Service) -> Service:
        return sockets.beside(project, service)

    async def switch(self, project: Project, service: Service, beside: Service) -> None:
        sockets.switch(project, service, beside)

    async def settle(self, project: Project, service: Service, beside: Service) -> None:
        sockets.switch(project, service, beside)  # again: the link names the new socket whatever the old did

    async def finish_update(self, project: Project, service: Service, new: Handle) -> None:
        pass  # the link was switched to the new socket before the switch was saved; the old process is a handle

    async def outdated(self, project: Project, service: Service, handle: Handle) -> str | None:
        return None  # a host process runs the files as they are: what it runs is its command, part of the model

    async def adopt(self, project: Project, service: Service, record: dict[str, Any]) -> Handle | None:
        pid, created = int(record.get("pid", 0)), float(record.get("create_time", 0))
        if not pid or not process_exits.alive(pid, created):
            return None
        # the start time the first supervisor saw, so `ps` shows one incarnation with one start time
        started_at = float(record.get("started_at", created))
        return Handle(service=service.name, ident=str(pid), started_at=started_at, record=dict(record), adopted=True)

    async def strays(self, state_dir: Path, known: set[str]) -> list[Handle]:
        """Session leaders whose environment names this instance's state folder and that nobody tracks."""
        wanted = str(state_dir)
        found = []
        sessions = set()  # a known service under a keeper: the keeper leads its session
        for ident in known:
            with contextlib.suppress(OSError, ValueError):
                sessions.add(os.getsid(int(ident)))
        for proc in psutil.process_iter(["pid", "create_time"]):
            if str(proc.pid) in known or proc.pid in sessions or proc.pid == os.getpid():
                continue
            try:
                if os.getsid(proc.pid) != proc.pid:
                    continue
                env = proc.environ()
            except (psutil.Error, OSError):
                continue
            if env.get("UNISTACK_STATE_DIR") == wanted and env.get("UNISTACK_SERVICE"):
                created = float(proc.info["create_time"])
                record = {"pid": proc.pid, "pgid": proc.pid, "create_time": created}
                found.append(Handle(env["UNISTACK_SERVICE"], str(proc.pid), created, record, adopted=True))
        return found

    async def wait(self, handle: Handle) -> int | None:
        return await process_exits.wait(self._children, handle)

    def exit_detail(self, handle: Handle) -> str:
        return ""  # a signal is in the exit code (128 + N); nothing else is known of a host process's end

    def unknown_exit(self, handle: Handle) -> str:
        # the kernel tells an exit status to the parent only
        return "not a child of this daemon" if handle.adopted else "the kernel did not tell it"

    async def stop(self, handle: Handle, signal_name: str, grace: float) -> StopResult:
        return await process_exits.stop(self._children, handle, signal_name, grace)

    async def probe(self, project: Project, service: Service, handle: Handle, check: Healthcheck) -> ProbeResult:
        cwd = service.process.working_dir if service.process else project.working_dir
        return await process_healthchecks.probe(self._spawner, cwd, self.environment(project, service), check)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _read_from(path: Path, offset: int, limit: int) -> str:
    """What was appended to ``path`` since it was ``offset`` bytes long (its last ``limit`` bytes); after a
    rotation meanwhile (the file is shorter), its last ``limit`` bytes."""
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            start = offset if offset <= size else 0
            handle.seek(max(start, size - limit))
            return handle.read().decode("utf-8", "replace")
    except OSError:
        return ""


def exit_code_awaited(project: Project, name: str) -> bool:
    """Whether a dependent waits for ``name`` to complete successfully: its exit code then decides what happens
    next, so it runs under the keeper of its exit code (a later daemon that re-adopts it is not its parent)."""
    return any(
        dep == name and want.condition == "service_completed_successfully"
        for other in project.services.values()
        for dep, want in other.depends_on.items()
    )
