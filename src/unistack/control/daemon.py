"""The supervisor daemon: one process per project instance that owns the engine and answers commands.

Started detached by the client (``python -m unistack.control.daemon STATE_DIR``), or ahead by ``up``
(``python -m unistack.control.daemon --standby``), which imports its code and then waits for ``go STATE_DIR`` on
its stdin before it touches any instance. It holds ``daemon.lock`` for its life, serves JSON requests on the
control socket (one changing request at a time), hands its services over to a newer daemon, follows the services'
dependency manifests (``control.manifests``: a change installs into the running service, then restarts it),
delivers ``service_fatal`` to the notifiers, runs the runtime's housekeeping (log rotation), and on SIGTERM/SIGINT
stops the stack and exits. What a previous daemon left is taken over by ``adoption``; the state file and the events
log are written by ``recorder``. It never decides anything about a service (the engine does).

Requests (one JSON object per line; one JSON reply per line):
``ping``, ``up {project_json (or project), services, environ, runtime}``, ``wait {services, timeout}``, ``ps``,
``start|stop|restart {services, timeout}``, ``down {volumes, timeout}``, ``kill``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from unistack.config import model
from unistack.config.model import Project
from unistack.control import adoption, notify, state
from unistack.control.recorder import Recorder, state_record
from unistack.engine.events import Event
from unistack.engine.rollout import RolloutFailed
from unistack.engine.supervisor import Engine
from unistack.errors import UnistackError
from unistack.runtimes import PROCESS, create_runtime
from unistack.runtimes.base import Runtime
from unistack.runtimes.logwriter import Appender, AppendStream

if TYPE_CHECKING:
    from unistack.control.manifests import ManifestWatcher

HOUSEKEEPING_EVERY = 10.0
REQUEST_LIMIT = 256 * 1024 * 1024  # one request is one line; ``up`` carries the whole project


class Daemon:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.engine: Engine | None = None
        self.runtime: Runtime | None = None
        self.runtime_name: str = PROCESS
        self.environ: dict[str, str] = {}
        self.done = asyncio.Event()
        self.lock = asyncio.Lock()  # one changing request at a time
        self._tasks: set[asyncio.Task[Any]] = set()
        self.recorder = Recorder(state_dir, self._record)
        self.code = state.code_fingerprint()
        self._manifests: ManifestWatcher | None = None  # only while a service declares x-unistack.dependencies
        self._down_begun: dict[str, Any] | None = None  # a ``down`` in progress (saved: a next daemon finishes it)

    # ----------------------------------------------------------------- lifecycle

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        _watch_children_with_pidfds(loop)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: self._spawn(self._terminate()))
        await adoption.restore(self)
        path = state.socket_path(self.state_dir)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        server = await asyncio.start_unix_server(self._serve, path=str(path), limit=REQUEST_LIMIT)
        path.chmod(0o600)
        self._spawn(self._housekeeping())
        async with server:
            await self.done.wait()
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        self.recorder.close_events()

    def configure(self, project: Project, runtime_name: str, environ: dict[str, str]) -> None:
        self.runtime_name, self.environ = runtime_name, environ
        self.runtime = create_runtime(runtime_name, environ)
        self.engine = Engine(project, self.runtime, on_event=self.event)

    def require(self) -> tuple[Engine, Runtime]:
        if self.engine is None or self.runtime is None:
            raise UnistackError("this instance is not up; run `unistack up` first")
        return self.engine, self.runtime

    async def _terminate(self) -> None:
        async with self.lock:
            await self._unfollow_manifests()
            if self.engine is not None:
                await self.engine.close()
                self.recorder.save_now()
        self.done.set()

    def follow_manifests(self) -> None:
        """Watch the dependency manifests the services declare (x-unistack.dependencies): a change installs into
        the running service, then restarts it. Nothing is imported or watched while none declares any."""
        engine = self.engine
        if engine is None:
            return
        if self._manifests is None:
            if not any(service.dependencies for service in engine.project.services.values()):
                return
            from unistack.control.manifests import ManifestWatcher, fingerprint
            from unistack.engine.manifests import ManifestFollower

            follower = ManifestFollower(
                engine, fingerprint=fingerprint, exclusive=lambda: self.lock, on_event=self.event
            )
            self._manifests = ManifestWatcher(follower, self.event)
        self._manifests.update()

    async def _unfollow_manifests(self) -> None:
        """Stop watching; an install in progress is stopped and nothing is restarted."""
        if self._manifests is not None:
            watcher, self._manifests = self._manifests, None
            await watcher.close()

    async def _housekeeping(self) -> None:
        while not self.done.is_set():
            await asyncio.sleep(HOUSEKEEPING_EVERY)
            if self.recorder.failed:
                self.recorder.save_now()
            if self.engine is not None and self.runtime is not None:
                with contextlib.suppress(Exception):
                    await self.runtime.housekeeping(self.engine.project)

    # ----------------------------------------------------------------- requests

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await reader.readline()
            if not line:
                return
            try:
                request = json.loads(line)
                result = await self._handle(request)
                reply: dict[str, Any] = {"ok": True, "result": result}
            except UnistackError as exc:
                reply = {"ok": False, "error": str(exc), "exit_code": exc.exit_code}
            except ValueError as exc:
                reply = {"ok": False, "error": f"malformed request: {exc}", "exit_code": 2}
            except Exception as exc:
                traceback.print_exc()
                reply = {"ok": False, "error": f"supervisor error: {exc!r}", "exit_code": 1}
            writer.write(msgspec.json.encode(reply, enc_hook=str) + b"\n")
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _handle(self, request: dict[str, Any]) -> Any:
        cmd = request.get("cmd")
        services = request.get("services") or None
        timeout = request.get("timeout")
        if cmd == "ping":
            project = self.engine.project.name if self.engine else None
            return {"pid": os.getpid(), "project": project, "code": self.code}
        if cmd == "handover":  # leave the services running for a newer daemon, which re-adopts them
            async with self.lock:
                self.recorder.save_now()
                # exit without finalisers: closing asyncio's subprocess transports would kill the services
                asyncio.get_running_loop().call_later(0.1, os._exit, 0)
            return {"handed_over": True}
        if cmd == "ps":
            return self.engine.snapshot() if self.engine else []
        if cmd == "logs":
            return await self._logs(request)
        if cmd == "wait":
            engine, _ = self.require()
            report = await engine.wait_ready(services, timeout)
            return {"ok": report.ok, "ready": report.ready, "failed": report.failed, "pending": report.pending}
        if cmd == "kill":  # must not wait behind a graceful stop that is in progress
            if self.engine is not None:
                await self.engine.kill()
            async with self.lock:
                return await self.down(False, 0.0)
        async with self.lock:
            if cmd == "up":
                return await self._up(request)
            if cmd == "down":
                return await self.down(bool(request.get("volumes")), timeout)
            engine, _ = self.require()
            if cmd == "stop":
                await engine.stop(services, timeout)
            elif cmd == "start":
                await engine.up(services)
            elif cmd == "restart":
                await engine.restart(services, timeout)
            else:
                raise UnistackError(f"unknown request {cmd!r}")
            self.recorder.save_now()
            return engine.snapshot()

    async def _logs(self, request: dict[str, Any]) -> list[list[str]] | None:
        """The last ``tail`` lines of the services' logs, read by this daemon's runtime (``logs --tail N``: the CLI
        then need not import the Docker SDK); None when the request is not for this runtime or these services."""
        names, tail = request.get("services") or [], request.get("tail")
        if self.engine is None or self.runtime is None or request.get("runtime") != self.runtime_name:
            return None
        if not isinstance(tail, int) or not names or any(n not in self.engine.project.services for n in names):
            return None
        lines = self.runtime.logs(self.engine.project, names, tail, False)
        return [[line.service, line.text] async for line in lines]

    async def _up(self, request: dict[str, Any]) -> dict[str, str]:
        if isinstance(raw := request.get("project_json"), str):  # validated from the text, saved as it came
            project = model.project_from_json(raw)
            state.write_project(self.state_dir, raw)
        else:
            project = model.from_data(request["project"], Project)
            state.write_project(self.state_dir, request["project"])
        environ = dict(request.get("environ") or {})
        runtime_name = request.get("runtime") or self.runtime_name
        if self.engine is None:
            self.configure(project, runtime_name, environ)
            engine, _ = self.require()
            selected = engine.selection(request.get("services") or None)
            try:
                await engine.up(selected)
            except UnistackError:
                if not any(st.handle for st in engine.status.values()):
                    self._forget()  # nothing started (the runtime could not prepare): leave no instance behind
                raise
            self.recorder.save_now()
            self.follow_manifests()
            return dict.fromkeys(selected, "started")
        if runtime_name != self.runtime_name:
            raise UnistackError(
                f"this instance runs on the {self.runtime_name} runtime; run `unistack down` before "
                f"switching it to {runtime_name}"
            )
        self.environ = environ
        engine, _ = self.require()
        try:
            done = await engine.reconcile(project, request.get("services") or None)
        except RolloutFailed:  # the services whose update failed run their old version: saved as running
            state.write_project(self.state_dir, model.to_json(engine.project).decode())
            self.recorder.save_now()
            raise
        self.recorder.save_now()
        self.follow_manifests()
        return done

    async def down(self, volumes: bool, timeout: float | None) -> dict[str, Any]:
        """Stop everything and remove what the instance made. Saved as begun first: a daemon killed meanwhile is
        replaced by one that finishes it (never one that keeps the rest of the stack running)."""
        self._down_begun = {"volumes": volumes, "timeout": timeout}
        self.recorder.save_now()
        try:
            await self._unfollow_manifests()
            if self.engine is not None and self.runtime is not None:
                await self.engine.close(timeout)
                await self.runtime.cleanup(self.engine.project, volumes)
        finally:  # even when the runtime fails (an engine gone): this daemon's instance is down
            self._forget()
        return {"stopped": True}

    def _forget(self) -> None:
        """No instance any more: the state files go, and the daemon exits once it has answered."""
        state.remove_state(self.state_dir)
        self.engine = self.runtime = None
        asyncio.get_running_loop().call_later(0.05, self.done.set)

    # ----------------------------------------------------------------- events and state

    def event(self, event: Event) -> None:
        """An event of the engine (or of this daemon): recorded, and a ``fatal`` one delivered to the notifiers."""
        self.recorder.event(event)
        if event.kind == "fatal" and self.engine is not None:
            self._spawn(self._notify(event))

    async def _notify(self, event: Event) -> None:
        engine, _ = self.require()
        project = engine.project
        payload = dict(event.data)
        env = {**os.environ, **self.environ}
        for notifier in project.notify:
            failure = await notify.deliver(notifier, payload, project.working_dir, env)
            if failure:
                self.event(Event("notify_failed", event.service, failure, _now()))

    def _record(self) -> dict[str, Any] | None:
        """What the state file holds now; None when there is nothing to save (no instance, or ending)."""
        if self.engine is None or self.done.is_set():
            return None
        return state_record(self.engine, self.runtime_name, self.environ, self._down_begun)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _watch_children_with_pidfds(loop: asyncio.AbstractEventLoop) -> None:
    """On Python 3.11, wait for children through pidfds instead of one waitpid thread per child and probe.

    Python 3.12 does this by itself (and deprecates child watchers), so it is left alone there.
    """
    if sys.version_info >= (3, 12) or not hasattr(os, "pidfd_open"):
        return
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:
        return  # the kernel has no pidfds (Linux < 5.3)
    watcher = asyncio.PidfdChildWatcher()
    watcher.attach_loop(loop)
    asyncio.get_event_loop_policy().set_child_watcher(watcher)


def _now() -> float:
    return time.time()


def _wait_for_go() -> Path | None:
    """Started ahead by ``up`` (``client.prestart``), with its code imported: wait until the client says which
    instance to run (``go STATE_DIR``), then write to that instance's daemon log as a daemon started the usual way
    does. None when the client closed the pipe instead (it did not need a daemon after all), which leaves nothing
    behind."""
    # what reads nothing of the instance is done while the client still loads the configuration
    import setproctitle

    import unistack.runtimes.process  # noqa: F401  (create_runtime imports it on first use: psutil and all)

    state.code_fingerprint()
    word, _, path = sys.stdin.buffer.readline().rstrip(b"\n").partition(b" ")
    if word != b"go" or not path:
        return None
    state_dir = Path(os.fsdecode(path))
    # from here on the command line a daemon started the usual way has (``ps`` shows which instance it runs)
    setproctitle.setproctitle(f"{sys.executable} -m unistack.control.daemon {state_dir}")
    out = os.open(state.daemon_log(state_dir), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
    null = os.open(os.devnull, os.O_RDONLY)
    for fd, target in ((null, 0), (out, 1), (out, 2)):
        os.dup2(fd, target)
    os.close(out)
    os.close(null)
    return state_dir


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["--standby"]:
        waited = _wait_for_go()
        if waited is None:
            return 0
        state_dir = waited
    elif len(args) == 1 and not args[0].startswith("-"):
        state_dir = Path(args[0])
    else:
        print("usage: python -m unistack.control.daemon STATE_DIR | --standby", file=sys.stderr)
        return 2
    fd = state.try_daemon_lock(state_dir)
    if fd is None:
        print(f"another daemon already runs for {state_dir}", file=sys.stderr)
        return 0
    # the daemon's output (daemon.log) never raises: a traceback printed on a full disk must not become another
    sys.stdout = sys.stderr = AppendStream(Appender(2))
    # what is imported stays for the daemon's life: out of the collector's way (a full collection would walk
    # every module each time)
    gc.freeze()
    try:
        asyncio.run(Daemon(state_dir).run())
    finally:
        os.close(fd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
