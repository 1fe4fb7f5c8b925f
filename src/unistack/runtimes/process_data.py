"""``DataStreams`` for host processes: a service's commands run with its environment in its working folder, a
PostgreSQL service's own tools (the folder of its running server's binary) over its unix socket (from the
server's ``postmaster.pid``), and named volumes as the folders ``volumes/<volume>/`` of the state folder, read and
written with GNU tar. A restored volume is unpacked into ``volumes/.<volume>.unistack-restore`` and switched in by
two renames. Imports psutil only to find a server (a backup's volume starts streaming before it is loaded), and
never the process runtime (a service's environment is ``process_env.py``'s, as the runtime's). Never decides what
to back up.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING

from unistack.config.model import Project, Service
from unistack.errors import NotSupported, RuntimeFailure
from unistack.runtimes.datastreams import (
    CHUNK,
    PREVIOUS,
    STAGING,
    Direct,
    PostgresPlace,
    Sink,
    Source,
    direct,
    tail_text,
)
from unistack.runtimes.process_env import service_environment

if TYPE_CHECKING:
    import psutil

SERVER_NAMES = ("postgres", "postmaster")
F_SETPIPE_SZ = 1031  # Linux: a pipe of CHUNK bytes, so each read can take a whole chunk
FOLLOW = 0.005  # seconds a command writing straight into a file is waited for when it wrote nothing new


class ProcessData:
    def __init__(self, project: Project, pids: Mapping[str, int], environ: Mapping[str, str] | None = None) -> None:
        self.project = project
        self.pids = dict(pids)
        self._environ = dict(os.environ if environ is None else environ)

    def environment(self, service: Service) -> dict[str, str]:
        return service_environment(self._environ, self.project, service)

    def _cwd(self, service: Service) -> Path:
        if service.process is None:
            raise NotSupported(f"service {service.name!r} has no x-unistack.process form, so nothing runs it here")
        return service.process.working_dir

    def run_out(self, service: Service, argv: Sequence[str], env: Mapping[str, str], out: Sink) -> None:
        pump_out(list(argv), self._cwd(service), {**self.environment(service), **env}, out)

    def run_in(self, service: Service, argv: Sequence[str], env: Mapping[str, str], source: Source) -> str:
        return pump_in(list(argv), self._cwd(service), {**self.environment(service), **env}, source)

    def postgres_place(self, service: Service) -> PostgresPlace:
        import psutil

        pid = self.pids.get(service.name)
        server = _postmaster(pid) if pid else None
        if server is None:
            raise RuntimeFailure(
                f"service {service.name!r} runs no PostgreSQL server (no postgres process under pid {pid}); "
                "see `unistack ps` and `unistack logs " + service.name + "`"
            )
        try:
            bindir = str(Path(server.exe()).parent)
            datadir = Path(server.cwd())  # the postmaster works in its data folder
            lines = (datadir / "postmaster.pid").read_text().splitlines()
        except (psutil.Error, OSError) as exc:
            raise RuntimeFailure(f"cannot tell where service {service.name!r}'s PostgreSQL listens: {exc}") from exc
        port = lines[3].strip() if len(lines) > 3 else None
        host = lines[4].strip() if len(lines) > 4 and lines[4].strip() else None
        if host is None and len(lines) > 5 and lines[5].strip():  # TCP only: its first listen address
            host = lines[5].split(",")[0].strip().replace("*", "127.0.0.1")
        return PostgresPlace(bindir=bindir, host=host, port=port)

    def _folder(self, volume: str) -> Path:
        return self.project.volumes_dir / volume

    def volume_out(self, service: Service, volume: str, out: Sink) -> None:
        self.volume_recover(service, volume)
        folder = self._folder(volume)
        if not folder.is_dir():
            raise RuntimeFailure(f"volume {volume!r} has no folder {folder} (was the instance ever up?)")
        folder_out(folder, out)

    def volume_in(self, service: Service, volume: str, source: Source) -> Callable[[], None]:
        folder = self._folder(volume)
        staging = folder.with_name(f".{volume}{STAGING}")
        self.volume_recover(service, volume)
        staging.mkdir(parents=True)
        try:
            folder_in(staging, source)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        # the switch: the old folder aside, the new one in its place, the old one removed
        previous = folder.with_name(f".{volume}{PREVIOUS}")
        try:
            if folder.exists():
                folder.rename(previous)
            staging.rename(folder)
        except OSError as exc:
            self.volume_recover(service, volume)
            raise RuntimeFailure(f"cannot switch volume {volume!r} to the restored files: {exc}") from exc
        return lambda: shutil.rmtree(previous, ignore_errors=True)

    def volume_recover(self, service: Service, volume: str) -> str | None:
        folder = self._folder(volume)
        staging = folder.with_name(f".{volume}{STAGING}")
        previous = folder.with_name(f".{volume}{PREVIOUS}")
        done = None
        if previous.exists() and not folder.exists():  # killed between the two renames: the old files back
            previous.rename(folder)
            done = f"volume {volume!r}: its files from before an interrupted restore are back"
        if previous.exists():
            shutil.rmtree(previous, ignore_errors=True)
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
            done = done or f"volume {volume!r}: the files of an interrupted restore were removed (the old ones kept)"
        return done


def pump_out(
    argv: list[str], cwd: Path, env: Mapping[str, str], out: Sink, ok: tuple[int, ...] = (0,), straight: bool = False
) -> None:
    """Run ``argv`` on this machine, every byte of its stdout given to ``out`` in reads of up to ``CHUNK`` (or,
    with ``straight`` when ``out`` is a file, written straight into it: only for a command known to write its
    stdout front to back, as tar does; pg_dump seeks back in a seekable one); RuntimeFailure with its stderr's
    last lines when it exits other than ``ok``."""
    into = direct(out) if straight else None
    if into is not None:
        _pump_into(argv, cwd, env, into, ok)
        return
    with tempfile.TemporaryFile() as errors:
        child = _popen(argv, cwd, env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors)
        assert child.stdout is not None
        try:
            with contextlib.suppress(OSError):
                fcntl.fcntl(child.stdout.fileno(), F_SETPIPE_SZ, CHUNK)
            buffer = bytearray(CHUNK)
            view = memoryview(buffer)
            fd = child.stdout.fileno()
            while read := os.readv(fd, [buffer]):
                out(view[:read])
        except BaseException:
            _kill(child)
            raise
        finally:
            child.stdout.close()
        code = child.wait()
        if code not in ok:
            raise RuntimeFailure(f"`{' '.join(argv)}` exited {code}: {_read(errors) or '(no output)'}")


def _pump_into(argv: list[str], cwd: Path, env: Mapping[str, str], into: Direct, ok: tuple[int, ...]) -> None:
    """``argv``'s stdout is the file: no pipe, no copy through this process (200 MB of uploads: the tar and the
    hash run at once on two cores, where a pipe cost a copy in and out). What it wrote is taken as it comes."""
    with tempfile.TemporaryFile() as errors:
        child = _popen(argv, cwd, env, stdin=subprocess.DEVNULL, stdout=into.fd, stderr=errors)
        try:
            while child.poll() is None:
                if not into.written():
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        child.wait(FOLLOW)
            into.written()
        except BaseException:
            _kill(child)
            raise
        code = child.wait()
        if code not in ok:
            raise RuntimeFailure(f"`{' '.join(argv)}` exited {code}: {_read(errors) or '(no output)'}")


def pump_in(argv: list[str], cwd: Path, env: Mapping[str, str], source: Source) -> str:
    """Run ``argv`` on this machine with ``source``'s bytes on its stdin, then end of file; its output (stdout and
    stderr), or RuntimeFailure with it when it exits other than 0. A failing source kills it (never a half-fed end)."""
    with tempfile.TemporaryFile() as output:
        child = _popen(argv, cwd, env, stdin=subprocess.PIPE, stdout=output, stderr=subprocess.STDOUT)
        assert child.stdin is not None
        try:
            with contextlib.suppress(OSError):
                fcntl.fcntl(child.stdin.fileno(), F_SETPIPE_SZ, CHUNK)
            with contextlib.suppress(BrokenPipeError):  # it stopped reading: its exit code says why
                while chunk := source():
                    child.stdin.write(chunk)
            with contextlib.suppress(BrokenPipeError):
                child.stdin.close()
        except BaseException:  # the source failed (a checksum) or we were interrupted: never a half-fed end
            _kill(child)
            raise
        code = child.wait()
        text = _read(output)
        if code != 0:
            raise RuntimeFailure(f"`{' '.join(argv)}` exited {code}: {text or '(no output)'}")
        return text


def folder_in(folder: Path, source: Source) -> None:
    """A tar stream unpacked into ``folder`` with GNU tar, numeric owners and modes as the tar says (as root: the
    owners too)."""
    argv = ["tar", "--extract", "--file=-", "--numeric-owner", "--same-permissions", f"--directory={folder}"]
    pump_in(argv, folder, {"LC_ALL": "C", "PATH": os.environ.get("PATH", "/usr/bin:/bin")}, source)


def folder_out(folder: Path, out: Sink) -> None:
    """A folder's files as a tar stream with GNU tar (names ``./...``, numeric owners, modes kept), read as they
    are while the services using them run."""
    # --warning: a file written or removed while tar reads the folder (the stack's backend makes and deletes a
    # probe file in its uploads at every healthcheck) is expected online, and exits 1 ("some files differ");
    # a file complete before the backup started is in the archive whole (docs/data.md)
    # records of 64 KiB, not tar's 10 KiB: a sixth of the system calls: 200 MB in 0.06 s against 0.10-0.13 s here
    # (the part's end is padded to a record: up to 64 KiB more)
    argv = ["tar", "--create", "--file=-", "--blocking-factor=128", "--numeric-owner", "--warning=no-file-changed"]
    argv += ["--warning=no-file-removed", f"--directory={folder}", "."]
    env = {"LC_ALL": "C", "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    pump_out(argv, folder, env, out, ok=(0, 1), straight=True)


def _popen(argv: list[str], cwd: Path, env: Mapping[str, str], **streams: object) -> subprocess.Popen[bytes]:
    try:
        child: subprocess.Popen[bytes] = subprocess.Popen(argv, cwd=cwd, env=dict(env), **streams)  # type: ignore[call-overload]
        return child
    except OSError as exc:
        raise RuntimeFailure(f"cannot run `{' '.join(argv)}` in {cwd}: {exc.strerror or exc}") from exc


def _kill(child: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(OSError):
        child.kill()
    child.wait()
    for pipe in (child.stdin, child.stdout):
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()


def _read(file: IO[bytes]) -> str:
    file.seek(0, os.SEEK_END)
    size = file.tell()
    file.seek(max(0, size - 16384))
    return tail_text(file.read())


def _postmaster(pid: int) -> psutil.Process | None:
    """The PostgreSQL server process in the service's process tree (its main process or a child of it)."""
    import psutil

    try:
        top = psutil.Process(pid)
        with contextlib.suppress(psutil.Error):
            if top.name() in SERVER_NAMES:  # the service runs the server itself: no look through every process
                return top
        for proc in top.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                parent = proc.parent()
                if proc.name() in SERVER_NAMES and (parent is None or parent.name() not in SERVER_NAMES):
                    return proc
    except psutil.Error:
        return None
    return None
