"""The backend's development server: a save under app/ is served again in well under a second.

    .venv/bin/python dev_server.py app.main:app --uds "$UNISTACK_RUN_DIR/backend.sock" --reload --reload-dir app
    .venv/bin/python dev_server.py app.main:app --host 0.0.0.0 --port 8000 --reload --reload-dir app  # containers

(stack/backend/serve.sh runs it when BACKEND_RELOAD=1; otherwise the backend is plain `uvicorn app.main:app`.)

`uvicorn --reload` starts a brand-new interpreter for every save, which imports uvicorn, FastAPI, Pydantic,
SQLAlchemy, Alembic and psycopg all over again (1.5-2.5 s on a busy machine) before the app's own modules
(0.1-0.25 s). Here instead:

- The parent process imports those libraries once (imports only: no thread, no event loop, no connection, so it
  stays safe to fork), binds the unix socket (or, in a container, the TCP port) once and keeps it listening for
  its whole life.
- A worker is forked from the parent. It imports the app (`app.*`, which the parent never imports, so every
  worker reads the current source) and serves it with `uvicorn.Server` on the inherited socket.
- A watcher, forked too (watchfiles runs a thread, and the parent must stay single-threaded), reports every
  change of a `*.py` file under the reload folders.
- On a change the parent forks the next worker at once, which imports the app while the old worker is stopped
  (SIGTERM: uvicorn stops accepting, finishes the requests in flight, closes WebSockets with 1012 and runs the
  lifespan shutdown; SIGKILL after --graceful-timeout + 2 s). The new worker starts serving (lifespan, debugger
  port) only once the old one is gone. Requests that arrive meanwhile wait in the socket's backlog: no 502.
- A worker whose import fails (a syntax error while editing) logs the traceback and then answers every request
  with 503 `{"detail": "The backend failed to load: SyntaxError: ... (file, line N) ..."}` until the next change.
  The parent never dies for it. `/api/ready` is 503 too, so the healthcheck reports the service unhealthy while
  the error stands (and unistack restarts it after 3 failed checks; the restarted server shows the same 503 until
  the code is fixed).
- A worker that exits on its own (crash, lifespan failure) is started again on the next change, or after 1, 2,
  4 ... 30 s. Without --reload there is no watcher and the parent exits with the worker's status instead.
- SIGTERM or SIGINT: the worker is stopped gracefully, the watcher too, the socket file (with --uds) removed,
  exit 0. A second signal kills the children at once. SIGHUP restarts the worker.

One log line per reload, e.g. `dev_server: reloaded in 0.31 s (0.38 s after the save): app imported in 0.18 s,
old worker gone at 0.09 s; app/api/routes/health.py`. Development only (it is not a production server: one
worker, a traceback summary in 503 answers); POSIX only (fork).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import gc
import importlib
import importlib.util
import json
import logging
import os
import selectors
import signal
import socket
import stat
import sys
import time
import traceback
import warnings
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.importer import import_from_string

log = logging.getLogger("dev_server")

# What the parent imports once and every worker inherits: the libraries behind most of a fresh interpreter's
# import time. Never anything under `app`: those are exactly the modules a reload must import afresh. A missing
# module (an optional dependency) is skipped. Something not listed is simply imported by each worker.
PRELOAD = (
    "uvicorn.config",
    "uvicorn.server",
    "uvicorn.lifespan.on",
    "uvicorn.loops.auto",
    "uvicorn.protocols.http.auto",
    "uvicorn.protocols.http.httptools_impl",
    "uvicorn.protocols.websockets.auto",
    "fastapi",
    "fastapi.openapi.docs",
    "fastapi.openapi.utils",
    "pydantic",
    "pydantic.dataclasses",
    "pydantic.root_model",
    "pydantic.v1",
    "pydantic_settings",
    "python_multipart",
    "sqlalchemy",
    "sqlalchemy.orm",
    "sqlalchemy.dialects.postgresql.psycopg",
    "psycopg",
    "alembic.runtime.migration",
    "alembic.script",
    "unicodedata",
    "watchfiles",
)

GO = b"g"  # parent -> pending worker: the previous worker is gone, start serving
EXIT_STARTUP_FAILURE = 3  # uvicorn's own code for a lifespan that failed to start
EXIT_CRASHED = 70
RETRY_INITIAL_S, RETRY_MAX_S = 1.0, 30.0
STABLE_AFTER_S = 10.0  # a worker that served this long resets the retry delay
KILL_MARGIN_S = 2.0  # SIGKILL a stopping worker this long after its graceful timeout

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


# --- command line ----------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="dev_server.py",
        description="Development server: imports the libraries once, binds the socket once, and forks a "
        "fresh worker (importing only the app) whenever a *.py file under --reload-dir changes.",
    )
    parser.add_argument("app", help="the ASGI app as module:attribute, e.g. app.main:app")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--uds", type=Path, help="the unix socket to listen on (host processes)")
    where.add_argument("--port", type=int, help="the TCP port to listen on, on --host (containers)")
    parser.add_argument("--host", default="127.0.0.1", help="the address for --port (default 127.0.0.1)")
    parser.add_argument("--reload", action="store_true", help="restart the worker when a watched *.py file changes")
    parser.add_argument(
        "--reload-dir",
        action="append",
        type=Path,
        dest="reload_dirs",
        help="folder to watch (repeatable; default: the app's top-level package, e.g. app)",
    )
    parser.add_argument(
        "--proxy-headers",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="trust X-Forwarded-* from --forwarded-allow-ips (uvicorn's default: on)",
    )
    parser.add_argument("--forwarded-allow-ips", default=None, help="as uvicorn's option ('*' trusts any peer)")
    parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    parser.add_argument("--backlog", type=int, default=2048, help="connections that may wait during a restart")
    parser.add_argument(
        "--graceful-timeout",
        type=float,
        default=3.0,
        help=f"seconds a stopping worker gets for requests in flight; SIGKILL {KILL_MARGIN_S:g} s later",
    )
    parser.add_argument("--preload", action="append", default=[], help="another module for the parent to import")
    args = parser.parse_args(argv)
    if args.port is not None and not 0 < args.port < 65536:
        parser.error(f"--port {args.port}: not a TCP port")
    args.address = str(args.uds) if args.uds is not None else f"{args.host}:{args.port}"
    if args.reload_dirs is None:
        args.reload_dirs = [Path(args.app.partition(":")[0].split(".")[0])]
    if args.reload:
        for folder in args.reload_dirs:
            if not folder.is_dir():
                parser.error(f"--reload-dir {folder}: no such folder")
    return args


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s:     dev_server: %(message)s"))
    log.addHandler(handler)
    log.setLevel(level.upper())
    log.propagate = False


# --- parent: imports and the socket ----------------------------------------------------------------------------


def preload(modules: Sequence[str]) -> float:
    """Imports the libraries once, for every worker to inherit; returns the seconds it took."""
    began = time.monotonic()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # a worker importing them itself would warn, not us
        for name in modules:
            if name == "app" or name.startswith("app."):
                raise SystemExit(f"dev_server: refusing to preload {name}: the app is what a reload imports afresh")
            try:
                importlib.import_module(name)
            except ImportError as exc:
                log.debug("preload: %s not imported (%s)", name, exc)
    gc.collect()
    gc.freeze()  # the preloaded objects stay out of the workers' collections (and their pages shared)
    return time.monotonic() - began


def remove_stale_socket(path: Path) -> None:
    """Deletes a socket file nobody listens on (left by a killed server); refuses anything else."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise SystemExit(f"dev_server: {path} exists and is not a socket; not deleting it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        path.unlink(missing_ok=True)
        log.info("removed the stale socket file %s", path)
        return
    except OSError as exc:  # a timeout or a full backlog: someone is there
        raise SystemExit(f"dev_server: {path} belongs to a live server ({exc}); not taking it over") from None
    finally:
        probe.close()
    raise SystemExit(f"dev_server: another server is listening on {path}; not taking it over")


def bind_tcp(host: str, port: int, backlog: int) -> socket.socket:
    """Binds and listens on host:port once, for the parent's whole life; workers inherit the descriptor."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: a restart need not wait TIME_WAIT
        sock.bind(address)
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return sock


def bind_socket(path: Path, backlog: int) -> socket.socket:
    """Binds and listens once, for the parent's whole life; workers inherit the descriptor."""
    remove_stale_socket(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        path.chmod(0o666)  # as `uvicorn --uds` does; the folder's mode (0700 in the stack) keeps others out
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return sock


# --- workers ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Trigger:
    """Why a worker was started: nothing (the first one), changed files, or a signal."""

    paths: tuple[str, ...] = ()
    noticed: float = 0.0  # time.monotonic() when the parent heard of it (one clock for every process)
    saved: float | None = None  # time.time(): the newest mtime among the changed files
    reason: str = ""


def relative(path: str) -> str:
    with contextlib.suppress(ValueError):
        return str(Path(path).relative_to(Path.cwd()))
    return path


def error_summary(exc: BaseException) -> str:
    """One line naming the error and where it is, e.g. `SyntaxError: invalid syntax (app/x.py, line 3)`."""
    if isinstance(exc, SyntaxError):
        where = f" ({relative(exc.filename or '?')}, line {exc.lineno})"
        return f"{type(exc).__name__}: {exc.msg}{where}"
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" ({relative(frames[-1].filename)}, line {frames[-1].lineno})" if frames else ""
    text = traceback.format_exception_only(type(exc), exc)[-1].strip()
    return text + where


def failed_app(summary: str) -> ASGIApp:
    """What a worker serves when the app does not import: 503 with the error, for every request."""
    body = json.dumps(
        {
            "detail": f"The backend failed to load: {summary}. Fix it and save (the development server reloads); "
            "the traceback is in the backend's log."
        }
    ).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        (b"retry-after", b"1"),
    ]

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        elif scope["type"] == "http":
            await send({"type": "http.response.start", "status": 503, "headers": headers})
            await send({"type": "http.response.body", "body": body})
        elif scope["type"] == "websocket":
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 1011, "reason": "the backend failed to load"})

    return app


class ReportingServer(uvicorn.Server):
    """uvicorn's server, calling back once it serves (after the lifespan startup), and answering what it accepted.

    On SIGTERM uvicorn stops accepting and at once closes every connection that has no request in progress. A
    connection accepted in the loop's last turn usually has its request in the socket buffer, not yet read: it
    would be closed unanswered (the client sees a reset, Caddy a 502). Waiting DRAIN_S between the two lets those
    requests be read, so they are answered; everything not accepted yet waits in the backlog for the next worker.
    """

    DRAIN_S = 0.05

    def __init__(self, config: uvicorn.Config, on_started: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_started = on_started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self._on_started()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()  # stop accepting (uvicorn's shutdown does it too: closing twice is harmless)
        await asyncio.sleep(self.DRAIN_S)
        await super().shutdown(sockets=sockets)


def die_with_parent(parent_pid: int, sig: signal.Signals) -> bool:
    """Linux: `sig` when the parent dies (no orphan keeps serving the socket). False if it is already gone."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            pr_set_pdeathsig = 1
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(sig), 0, 0, 0)
    return os.getppid() == parent_pid


def reset_signals() -> None:
    """A forked child starts with the parent's handlers; give it the defaults (uvicorn installs its own)."""
    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)


def run_worker(args: argparse.Namespace, fd: int, go_fd: int, trigger: Trigger, parent_pid: int) -> int:
    """In a forked child: import the app, wait for the go, serve until SIGTERM. Returns the exit status."""
    began = time.monotonic()
    if not die_with_parent(parent_pid, signal.SIGTERM):
        return 0
    for path in trigger.paths:  # a second save within the same second, same size, would reuse a stale .pyc
        if path.endswith(".py"):
            with contextlib.suppress(OSError, ValueError):
                Path(importlib.util.cache_from_source(path)).unlink()
    failure: str | None = None
    try:
        asgi: Any = import_from_string(args.app)
    except (Exception, SystemExit) as exc:  # a syntax error while editing, invalid settings, ...
        traceback.print_exc()
        failure = error_summary(exc)
        asgi = failed_app(failure)
    imported = time.monotonic()

    if os.read(go_fd, 1) != GO:  # the parent is gone, or chose a newer worker
        return 0
    os.close(go_fd)
    released = time.monotonic()

    def on_started() -> None:
        now = time.monotonic()
        changed = ", ".join(relative(p) for p in trigger.paths[:3]) + (" ..." if len(trigger.paths) > 3 else "")
        if not trigger.noticed:
            state = f"FAILED to load ({failure}): answering 503 for" if failure else "serving"
            (log.error if failure else log.info)(
                "%s %s on %s (pid %d): ready %.2f s after the start, the app imported in %.2f s",
                state,
                args.app,
                args.address,
                os.getpid(),
                now - args.started,
                imported - began,
            )
            return
        since_save = time.time() - trigger.saved if trigger.saved else -1.0  # the mtime: a touch may set any
        after_save = f" ({since_save:.2f} s after the save)" if 0 <= since_save < 60 else ""
        timing = (
            f"in {now - trigger.noticed:.2f} s{after_save}: app imported in {imported - began:.2f} s, "
            f"old worker gone at {max(released - trigger.noticed, 0.0):.2f} s; {changed or trigger.reason}"
        )
        if failure:
            log.error("reload FAILED %s; answering 503 until the next change: %s", timing, failure)
        else:
            log.info("reloaded %s", timing)

    config = uvicorn.Config(
        asgi,
        fd=fd,
        proxy_headers=args.proxy_headers,
        forwarded_allow_ips=args.forwarded_allow_ips,
        log_level=args.log_level,
        backlog=args.backlog,
        timeout_graceful_shutdown=args.graceful_timeout,
    )
    server = ReportingServer(config, on_started)
    server.run()  # returns after SIGTERM (then uvicorn re-raises the signal) or a failed startup
    return 0 if server.started else EXIT_STARTUP_FAILURE


# --- the watcher ------------------------------------------------------------------------------------------------


def run_watcher(dirs: Sequence[Path], out_fd: int, parent_pid: int) -> int:
    """In a forked child: one JSON line of changed paths per batch of *.py changes (watchfiles)."""
    import watchfiles  # already imported by the parent

    if not die_with_parent(parent_pid, signal.SIGKILL):
        return 0
    for changes in watchfiles.watch(
        *dirs,
        watch_filter=watchfiles.PythonFilter(),
        step=50,  # ms of quiet that close a batch (an editor's save is often several events)
        rust_timeout=1000,
        yield_on_timeout=True,
        raise_interrupt=False,
    ):
        if os.getppid() != parent_pid:
            return 0
        if changes:
            os.write(out_fd, (json.dumps(sorted({path for _, path in changes})) + "\n").encode())
    return 0


# --- the parent -------------------------------------------------------------------------------------------------


@dataclass
class Worker:
    pid: int
    go_fd: int | None  # write end of its go pipe, until the go is sent
    forked: float
    state: str = "pending"  # pending (importing / waiting for the go) -> serving -> stopping
    kill_at: float | None = None


@dataclass
class Supervisor:
    args: argparse.Namespace
    sock: socket.socket
    workers: dict[int, Worker] = field(default_factory=dict)
    watcher_pid: int | None = None
    watcher_fd: int | None = None
    watcher_buffer: bytes = b""
    watcher_retry_at: float | None = None
    changed: set[str] = field(default_factory=set)
    hangup: bool = False
    stop_signal: int | None = None
    retry_at: float | None = None
    retry_delay: float = RETRY_INITIAL_S
    exit_status: int | None = None  # without --reload: the worker's, once it exited on its own

    def __post_init__(self) -> None:
        self.parent_pid = os.getpid()
        self.selector = selectors.DefaultSelector()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        self.selector.register(self.wake_r, selectors.EVENT_READ, "wake")

    # -- signals

    def install_signal_handlers(self) -> None:
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_hangup)
        signal.signal(signal.SIGCHLD, lambda _sig, _frame: None)  # only to wake the selector (wakeup fd)

    def _on_stop(self, sig: int, _frame: object) -> None:
        if self.stop_signal is not None:  # the second one: no more waiting
            for pid in [*self.workers, *([self.watcher_pid] if self.watcher_pid else [])]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self.stop_signal = sig

    def _on_hangup(self, _sig: int, _frame: object) -> None:
        self.hangup = True

    # -- children

    def _fork(self, child: Callable[[], int], keep: Sequence[int]) -> int:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid:
            return pid
        status = EXIT_CRASHED
        try:
            reset_signals()
            for fd in self._parent_fds():
                if fd not in keep:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            status = child()
        except SystemExit as exc:
            status = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            traceback.print_exc()
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(status)  # never return into the parent's code (its finally would delete the socket)

    def _parent_fds(self) -> list[int]:
        fds = [self.wake_r, self.wake_w, self.selector.fileno()]
        fds += [w.go_fd for w in self.workers.values() if w.go_fd is not None]
        return fds + ([self.watcher_fd] if self.watcher_fd is not None else [])

    def start_worker(self, trigger: Trigger) -> None:
        go_r, go_w = os.pipe()
        fd = self.sock.fileno()
        pid = self._fork(lambda: run_worker(self.args, fd, go_r, trigger, self.parent_pid), keep=[go_r])
        os.close(go_r)
        self.workers[pid] = Worker(pid, go_w, time.monotonic())

    def start_watcher(self) -> None:
        out_r, out_w = os.pipe()
        dirs = list(self.args.reload_dirs)
        pid = self._fork(lambda: run_watcher(dirs, out_w, self.parent_pid), keep=[out_w])
        os.close(out_w)
        self.watcher_pid, self.watcher_fd, self.watcher_buffer = pid, out_r, b""
        self.selector.register(out_r, selectors.EVENT_READ, "watcher")

    def _close_watcher_fd(self) -> None:
        if self.watcher_fd is not None:
            self.selector.unregister(self.watcher_fd)
            os.close(self.watcher_fd)
            self.watcher_fd = None

    def _give_up_on(self, worker: Worker) -> None:
        """A pending worker serves nobody yet: SIGKILL is enough. A serving one gets SIGTERM and a deadline."""
        if worker.go_fd is not None:
            os.close(worker.go_fd)
            worker.go_fd = None
        with contextlib.suppress(ProcessLookupError):
            if worker.state == "pending":
                os.kill(worker.pid, signal.SIGKILL)
            elif worker.state == "serving":
                os.kill(worker.pid, signal.SIGTERM)
                worker.kill_at = time.monotonic() + self.args.graceful_timeout + KILL_MARGIN_S
        worker.state = "stopping"

    def reload(self, trigger: Trigger) -> None:
        for worker in self.workers.values():
            if worker.state != "stopping":
                self._give_up_on(worker)
        self.retry_at = None
        self.start_worker(trigger)

    def _release_pending(self) -> None:
        """Lets the newest pending worker serve once no other worker is left (socket, lifespan, debug port)."""
        if any(w.state != "pending" for w in self.workers.values()):
            return
        for worker in self.workers.values():
            if worker.go_fd is not None:
                with contextlib.suppress(BrokenPipeError):  # it died meanwhile: reaped next
                    os.write(worker.go_fd, GO)
                os.close(worker.go_fd)
                worker.go_fd = None
                worker.state = "serving"

    def _reap(self) -> None:
        while True:
            try:
                pid, wait_status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            status = os.waitstatus_to_exitcode(wait_status)
            if pid == self.watcher_pid:
                self.watcher_pid = None
                self._close_watcher_fd()
                if self.stop_signal is None:
                    log.warning("the file watcher exited with %d; starting it again in 1 s", status)
                    self.watcher_retry_at = time.monotonic() + 1.0
                continue
            worker = self.workers.pop(pid, None)
            if worker is None:
                continue
            if worker.go_fd is not None:
                os.close(worker.go_fd)
            if worker.state == "stopping" or self.stop_signal is not None:
                continue
            how = f"was killed by {signal.Signals(-status).name}" if status < 0 else f"exited with {status}"
            ran = time.monotonic() - worker.forked
            if not self.args.reload:
                log.error("the worker %s", how)
                self.exit_status = status if status > 0 else 1
                continue
            if ran >= STABLE_AFTER_S:
                self.retry_delay = RETRY_INITIAL_S
            log.error("the worker %s after %.1f s; next start on a change or in %.0f s", how, ran, self.retry_delay)
            self.retry_at = time.monotonic() + self.retry_delay
            self.retry_delay = min(self.retry_delay * 2, RETRY_MAX_S)

    def _read_watcher(self) -> None:
        assert self.watcher_fd is not None
        try:
            data = os.read(self.watcher_fd, 65536)
        except BlockingIOError:
            return
        if not data:  # EOF: the watcher is gone (reaped separately)
            self._close_watcher_fd()
            return
        *lines, self.watcher_buffer = (self.watcher_buffer + data).split(b"\n")
        for line in lines:
            with contextlib.suppress(ValueError):
                self.changed.update(json.loads(line))

    def _changes_trigger(self) -> Trigger:
        paths = tuple(sorted(self.changed))
        self.changed.clear()
        mtimes = []
        for path in paths:
            with contextlib.suppress(OSError):
                mtimes.append(Path(path).stat().st_mtime)
        return Trigger(paths=paths, noticed=time.monotonic(), saved=max(mtimes) if mtimes else None)

    def _timeout(self) -> float | None:
        deadlines = [w.kill_at for w in self.workers.values() if w.kill_at is not None]
        deadlines += [t for t in (self.retry_at, self.watcher_retry_at) if t is not None]
        return max(0.0, min(deadlines) - time.monotonic()) if deadlines else None

    def _wait(self) -> None:
        for key, _ in self.selector.select(self._timeout()):
            if key.data == "wake":
                with contextlib.suppress(BlockingIOError):
                    while os.read(self.wake_r, 512):
                        pass
            elif key.data == "watcher":
                self._read_watcher()
        self._reap()
        now = time.monotonic()
        for worker in self.workers.values():
            if worker.kill_at is not None and now >= worker.kill_at:
                log.warning("worker %d did not stop in time: SIGKILL", worker.pid)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signal.SIGKILL)
                worker.kill_at = None

    def run(self) -> int:
        self.install_signal_handlers()
        if self.args.reload:
            self.start_watcher()
        self.start_worker(Trigger())
        while self.stop_signal is None and self.exit_status is None:
            self._release_pending()
            self._wait()
            now = time.monotonic()
            if self.watcher_retry_at is not None and now >= self.watcher_retry_at and self.stop_signal is None:
                self.watcher_retry_at = None
                self.start_watcher()
            if self.stop_signal is not None:
                break
            if self.changed or self.hangup:
                self.retry_delay = RETRY_INITIAL_S
                self.reload(self._changes_trigger() if self.changed else Trigger(noticed=now, reason="SIGHUP"))
            elif self.retry_at is not None and now >= self.retry_at:
                self.reload(Trigger(noticed=now, reason="a new start after the worker exited"))
            self.hangup = False
        return self.shutdown()

    def shutdown(self) -> int:
        if self.stop_signal is not None:
            log.info("%s: stopping", signal.Signals(self.stop_signal).name)
        if self.watcher_pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.watcher_pid, signal.SIGTERM)
        for worker in self.workers.values():
            if worker.state != "stopping":
                self._give_up_on(worker)
        while self.workers or self.watcher_pid is not None:
            self._wait()
        return 0 if self.exit_status is None else self.exit_status


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    args.started = time.monotonic()
    configure_logging(args.log_level)
    sys.path.insert(0, str(Path.cwd()))  # `app` from this folder, as `uvicorn app.main:app` finds it
    libraries_s = preload([*PRELOAD, *args.preload])
    bound: os.stat_result | None = None  # the socket file we made (--uds), so that we remove only ours
    if args.uds is None:
        sock = bind_tcp(args.host, args.port, args.backlog)
    else:
        sock = bind_socket(args.uds, args.backlog)
        bound = args.uds.lstat()
    log.info(
        "libraries imported in %.2f s (once); listening on %s; %s",
        libraries_s,
        args.address,
        f"watching {', '.join(str(d) for d in args.reload_dirs)} for *.py changes" if args.reload else "no reload",
    )
    try:
        return Supervisor(args, sock).run()
    finally:
        sock.close()
        if bound is not None:
            with contextlib.suppress(OSError):
                now = args.uds.lstat()
                if (now.st_dev, now.st_ino) == (bound.st_dev, bound.st_ino):  # still ours, not a successor's
                    args.uds.unlink()


if __name__ == "__main__":
    sys.exit(main())
