"""The host-process runtime: each service is a process group on this machine.

Owns starting a service's ``x-unistack.process`` command in its own session (so it has its own process group
and outlives a killed supervisor), its environment (the OS environment, then ``environment``, then
``x-unistack.process.environment``, then the ``UNISTACK_*`` variables), its log file (through a log writer
process of its own, ``logwriter.py``, so a full disk drops lines instead of failing the service), probes run
beside it,
stopping the whole group (signal, grace, SIGKILL; a stopped (SIGSTOP) leader is killed at once), re-adopting
a live process by pid and start time, and the instance's folders (``run/`` 0700, ``logs/``,
``volumes/<name>``). It never decides when to restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil

from unistack.config.model import Healthcheck, Project, Service
from unistack.errors import NotSupported, PermanentFailure, RuntimeFailure
from unistack.runtimes import PROCESS, exitkeeper, logfiles, sockets
from unistack.runtimes.base import Handle, ProbeResult, StopResult
from unistack.runtimes.children import (
    OUTPUT_LIMIT,
    Child,
    Created,
    popen_in_session,
    popen_kept,
    signal_group,
    start_log_writer,
    timed,
    undo_spawn,
)
from unistack.runtimes.host import check_port_free, signal_number

INSTALL_OUTPUT = 64 * 1024  # bytes of an install's output kept for the summary of what it installed
ADOPTED_POLL = 0.5
KEEPER_WRITES = 2.0  # seconds an adopted service's keeper is given to write its exit code once the service ended
SPAWN_THREADS = 8  # Popen blocks until the child has exec'ed (1-20 ms on a busy machine): a layer's spawns overlap


def exit_status(returncode: int) -> int:
    """A shell-style exit status: killed by signal N is 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


def instance_variables(project: Project) -> dict[str, str]:
    return {
        "UNISTACK_PROJECT": project.name,
        "UNISTACK_ENV": project.environment,
        "UNISTACK_STATE_DIR": str(project.state_dir),
        "UNISTACK_RUN_DIR": str(project.run_dir),
        "UNISTACK_VOLUMES_DIR": str(project.volumes_dir),
    }


class ProcessRuntime:
    name = PROCESS

    def __init__(self, base_environment: dict[str, str] | None = None) -> None:
        self.base_environment = dict(os.environ if base_environment is None else base_environment)
        self._children: dict[str, Child] = {}
        self._executor: ThreadPoolExecutor | None = None

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
        env = dict(self.base_environment)
        env.setdefault("PYTHONUNBUFFERED", "1")
        env.update(service.environment)
        if service.process is not None:
            env.update(service.process.environment)
        env.update(instance_variables(project))
        env["UNISTACK_SERVICE"] = service.name
        return env

    def _spec(self, service: Service) -> tuple[tuple[str, ...], Path]:
        if service.process is None:
            raise NotSupported(
                f"service {service.name!r} has no x-unistack.process.command, so it cannot run as a host process; "
                "add one or use --runtime docker"
            )
        return service.process.command, service.process.working_dir

    def _pool(self) -> ThreadPoolExecutor:
        """The threads that run ``Popen``: never asyncio's default executor, which other work shares."""
        with _POOL_LOCK:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(SPAWN_THREADS, thread_name_prefix="unistack-spawn")
            return self._executor

    async def _popen(self, create: Callable[[], Created]) -> Child:
        """Run ``create`` (a ``Popen`` and the descriptor its output is read from, if any) in a spawn thread.

        The event loop goes on meanwhile. A cancelled caller still gets its child killed and reaped, and its
        descriptor closed, once the thread is done (never while the thread still uses what it opened). The
        child's ``began`` is the wall-clock time the thread began to create it.
        """
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._pool(), timed, create)
        try:
            began, (popen, fd, writer) = await asyncio.shield(future)
        except asyncio.CancelledError:
            future.add_done_callback(undo_spawn)
            raise
        child = Child(popen, fd, loop, began)
        if writer is not None:
            child.writer = Child(writer, None, loop, began)
        return child

    async def _spawn(
        self, project: Project, service: Service, argv: tuple[str, ...], cwd: Path, what: str, kept: bool = False
    ) -> Child:
        """Start ``argv`` in its own session, its output appended to the service's log file; ``kept``: under the
        keeper of its exit code (``exitkeeper.py``; the Child is the keeper, its ``service_pid`` the service)."""
        log_path = self.log_path(project, service.name)
        env = self.environment(project, service)
        service_pid: list[int] = []

        def create() -> Created:
            try:
                log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            except OSError as exc:
                raise RuntimeFailure(f"cannot open the log file {log_path}: {exc.strerror}") from exc
            writer, out_fd = start_log_writer(project.state_dir, log_path, log_fd) or (None, log_fd)
            try:
                if not kept:
                    return popen_in_session(argv, cwd, env, out_fd), None, writer
                popen, pid = popen_kept(argv, cwd, env, out_fd, project.run_dir, service.name)
                service_pid.append(pid)
                return popen, None, writer
            except OSError as exc:
                if writer is not None:  # it ends at once: nobody else holds the pipe's other end
                    os.close(out_fd)
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        writer.wait(5)
                    writer = None
                raise _spawn_failure(exc, argv, cwd, what) from exc
            finally:
                os.close(log_fd)
                if writer is not None:
                    os.close(out_fd)  # the writer sees the end of file once the service's side is closed too

        child = await self._popen(create)
        child.service_pid = service_pid[0] if service_pid else child.pid
        return child

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
            code = exit_status(await proc.wait())
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
        if not pid or not _alive(pid, created):
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
        """The main process's exit; what it left running in its group is killed then, as a container's processes
        die with its main process (a killed postmaster's backends would otherwise keep the next one from starting)."""
        pgid = int(handle.record.get("pgid", handle.record["pid"]))
        proc = self._children.get(handle.ident)
        if proc is not None:
            code = await proc.wait()
            self._children.pop(handle.ident, None)
            signal_group(pgid, signal.SIGKILL)
            await proc.output_written()  # its last lines in the file before anyone reads the log's tail
            _exit_code_kept(handle)  # read (and removed) only so that nothing is left behind
            return exit_status(code)
        while _alive(int(handle.record["pid"]), float(handle.record["create_time"])):
            await asyncio.sleep(ADOPTED_POLL)
        # not this daemon's child: the kernel tells its exit code to its parent only, the keeper if it has one
        deadline = asyncio.get_running_loop().time() + KEEPER_WRITES
        while (kept := _exit_code_kept(handle)) is None and "exit_file" in handle.record:
            if asyncio.get_running_loop().time() > deadline or not _keeper_alive(pgid):
                kept = _exit_code_kept(handle)  # it may have written just before it ended
                break
            await asyncio.sleep(0.02)
        signal_group(pgid, signal.SIGKILL)
        return kept

    async def stop(self, handle: Handle, signal_name: str, grace: float) -> StopResult:
        pgid = int(handle.record.get("pgid", handle.record["pid"]))
        sig = signal_number(signal_name)
        code: int | None = None
        if _frozen(int(handle.record["pid"])):
            # stopped (SIGSTOP): it cannot act on its stop signal, so a grace period would be waited out for nothing
            signal_group(pgid, signal.SIGKILL)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(10):
                    code = await self.wait(handle)
            return StopResult(killed=True, exit_code=code, frozen=True)
        signal_group(pgid, sig)
        killed = False
        # asyncio.timeout, never wait_for: on Python 3.11 wait_for can swallow a cancellation that races with
        # the inner result, and a probe loop that misses its cancellation never ends (a stop then hangs)
        try:
            async with asyncio.timeout(grace):
                code = await self.wait(handle)
        except TimeoutError:
            killed = True
            signal_group(pgid, signal.SIGKILL)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(10):
                    code = await self.wait(handle)
        signal_group(pgid, signal.SIGKILL)  # whatever the leader left behind in its group
        return StopResult(killed=killed, exit_code=code)

    async def probe(self, project: Project, service: Service, handle: Handle, check: Healthcheck) -> ProbeResult:
        argv = ("/bin/sh", "-c", check.test[0]) if check.kind == "CMD-SHELL" else check.test
        cwd = service.process.working_dir if service.process else project.working_dir
        env = self.environment(project, service)

        def create() -> Created:
            read_fd, write_fd = os.pipe()
            try:
                popen = popen_in_session(argv, cwd, env, write_fd)
            except BaseException:
                os.close(read_fd)
                raise
            finally:
                os.close(write_fd)
            return popen, read_fd, None

        try:
            proc = await self._popen(create)
        except OSError as exc:
            return ProbeResult(False, None, f"cannot run healthcheck {argv[0]!r}: {exc.strerror}")
        try:
            async with asyncio.timeout(check.timeout):
                out = await proc.communicate()
        except TimeoutError:
            signal_group(proc.pid, signal.SIGKILL)
            proc.close_output()
            await proc.wait()
            return ProbeResult(False, None, f"healthcheck timed out after {check.timeout:g}s")
        except asyncio.CancelledError:
            signal_group(proc.pid, signal.SIGKILL)
            proc.close_output()
            raise
        text = out.decode("utf-8", "replace")[-OUTPUT_LIMIT:]
        code = exit_status(proc.returncode if proc.returncode is not None else -1)
        return ProbeResult(code == 0, code, text)


def _spawn_failure(exc: OSError, argv: Sequence[str], cwd: Path, what: str) -> RuntimeFailure:
    if isinstance(exc, FileNotFoundError):
        if not Path(cwd).is_dir():
            return PermanentFailure(f"working_dir {cwd} does not exist")
        missing = exc.filename if exc.filename else argv[0]
        return PermanentFailure(f"command not found: {missing!r} (x-unistack.process.{what})")
    return RuntimeFailure(f"cannot run {argv[0]!r} (x-unistack.process.{what}): {exc.strerror}")


_POOL_LOCK = threading.Lock()


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


def _exit_code_kept(handle: Handle) -> int | None:
    """The exit code its keeper wrote for this incarnation (the file is removed once read), or None."""
    path = handle.record.get("exit_file")
    if not path:
        return None
    try:
        written = json.loads(Path(path).read_bytes())
        Path(path).unlink()
    except (OSError, ValueError):
        return None
    code = written.get("exit_code") if isinstance(written, dict) else None
    return code if isinstance(code, int) and written.get("pid") == handle.record.get("pid") else None


def _keeper_alive(pgid: int) -> bool:
    try:
        return psutil.Process(pgid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _alive(pid: int, created: float) -> bool:
    try:
        proc = psutil.Process(pid)
        return abs(proc.create_time() - created) < 0.05 and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _frozen(pid: int) -> bool:
    """True when the process is stopped (state T: SIGSTOP, SIGTSTP), so it handles no signal but SIGKILL."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_STOPPED
    except psutil.Error:
        return False
