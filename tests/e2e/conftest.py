"""End-to-end fixtures: the real stack (stack/compose.yaml), reached only through its proxy on 127.0.0.1, once
per runtime: the suite runs against host processes (instance `e2e`) and then against containers (instance
`e2e-docker`, marked `docker`).

Host processes: production-like whatever environments/local.env says (the OS environment wins over the file):
the static frontend (hashed assets served by Caddy) and no backend auto-reload, so edits that other people make
to the sources while the suite runs cannot restart it. Containers: `--env production` (compose.production.yaml:
non-root, no capabilities, read-only root file systems, limits), with its password from the environment. Each
instance lives in stack/.unistack/<instance>/ beside the developer's `stack`, on a port of its own, and is removed
with `down -v` at the end. The docker instance builds the images on its first `up` (and bootstraps the base image
with `unistack images bootstrap` when it is missing). Without an engine it is skipped, unless
UNISTACK_REQUIRE_DOCKER=1 (CI), which makes a missing engine fail.

UNISTACK_SKIP_E2E=1 skips the suite; otherwise a stack that does not come up fails every test, with `ps` and the
last log lines of every service in the failure. E2E_HTTP_PORT picks the port (default 18080, or any free one).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psutil
import pytest

from unistack.control.state import file_lock

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
COMPOSE_FILE = REPO / "stack" / "compose.yaml"
PROJECTS = {"process": "e2e", "docker": "e2e-docker"}
ARTIFACTS = HERE / "artifacts"
LOCK_FILE = COMPOSE_FILE.parent / ".unistack" / "e2e.session-lock"
BASE_IMAGE = "debian:bookworm-slim"
PREFERRED_PORT = 18080
UP_TIMEOUT = 900.0  # the first `up` on a new machine installs everything (venvs, node_modules, Caddy, a cluster)
CLI_TIMEOUT = 180.0  # any other command; `down` waits up to stop_grace_period (20 s for the db) per service
HTTP_TIMEOUT = 30.0
READY_TIMEOUT = 120.0
LONG_RUNNING = ("db", "backend", "proxy")  # the services with a healthcheck; migrate and frontend-build are one-shot
ONE_SHOT = ("migrate", "frontend-build")

T = TypeVar("T")


def wait_for(what: Callable[[], T | None], timeout: float, message: str, interval: float = 0.2) -> T:
    """Polls `what` until it returns something truthy; fails after `timeout` seconds naming `message`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            value = what()
        except (httpx.HTTPError, OSError) as exc:  # the stack restarting: connection refused, reset, timeout
            value, last = None, exc
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {message} (last error: {last!r})")
        time.sleep(interval)


def free_port() -> int:
    """E2E_HTTP_PORT, else 18080 when nothing listens on it, else a port the kernel says is free."""
    if wanted := os.environ.get("E2E_HTTP_PORT"):
        return int(wanted)
    for port in (PREFERRED_PORT, 0):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            chosen: int = sock.getsockname()[1]
            return chosen
    raise AssertionError("no free TCP port on 127.0.0.1")


class Stack:
    """The `e2e` instance of the real stack, driven through the real CLI (`python -m unistack`)."""

    def __init__(self, port: int, runtime: str = "process") -> None:
        self.port = port
        self.runtime = runtime
        self.project = PROJECTS[runtime]
        self.base_url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}/api/ws"
        self.state_dir = COMPOSE_FILE.parent / ".unistack" / self.project
        env = {
            **os.environ,
            "NO_COLOR": "1",
            "UNISTACK_RUNTIME": runtime,
            "HTTP_PORT": str(port),
            "COMPOSE_PROFILES": "static",
            "FRONTEND_MODE": "static",
            "BACKEND_RELOAD": "0",
            "DEBUGPY_LISTEN": "",  # never a debugger port: the stack must listen on the proxy's port alone
        }
        for name in ("UNISTACK_ENV", "UNISTACK_STATE_DIR", "COMPOSE_PROJECT_NAME", "COMPOSE_FILE"):
            env.pop(name, None)  # the defaults: environments/local.env, state in stack/.unistack/<instance>
        if runtime == "docker":  # production: the hardened containers of compose.production.yaml
            env["UNISTACK_ENV"] = "production"
            env["POSTGRES_PASSWORD"] = "e2e-" + os.urandom(12).hex()
        self.env = env

    # ----------------------------------------------------------------- the CLI

    def cli(self, *args: str, timeout: float = CLI_TIMEOUT, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "unistack", "-f", str(COMPOSE_FILE), "-p", self.project, *args]
        result = subprocess.run(argv, cwd=REPO, env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(
                f"`unistack {' '.join(args)}` exited {result.returncode}\n--- stdout\n{result.stdout}"
                f"--- stderr\n{result.stderr}\n{self.diagnostics()}"
            )
        return result

    def up(self) -> None:
        """`up --wait`: everything healthy (or done) within UP_TIMEOUT, else fails with ps and the logs."""
        self.cli("up", "--wait", "--wait-timeout", f"{UP_TIMEOUT:g}", timeout=UP_TIMEOUT + 120)

    def down(self, *, volumes: bool = False) -> None:
        self.cli("down", *(["-v"] if volumes else []))

    def ps(self, *, check: bool = True) -> dict[str, dict[str, Any]]:
        """`ps --format json` by service; with check=False, {} when the command fails (a daemon being replaced)."""
        result = self.cli("ps", "--format", "json", check=check)
        if result.returncode != 0:
            return {}
        return {row["service"]: row for row in json.loads(result.stdout)}

    def state(self) -> dict[str, Any]:
        """state.json: the daemon's pid and, per service, the process record (pid, pgid) of its incarnation."""
        data: dict[str, Any] = json.loads((self.state_dir / "state.json").read_text())
        return data

    def events(self) -> list[dict[str, Any]]:
        """logs/events.jsonl: what the daemons did (kind, service, message, at)."""
        path = self.state_dir / "logs" / "events.jsonl"
        lines = path.read_text().splitlines() if path.exists() else []
        return [json.loads(line) for line in lines if line.strip()]

    def diagnostics(self) -> str:
        """`ps` and the last 50 lines of every service's log (and of the daemon's), for a failure message."""
        parts = []
        for args in (("ps",), ("logs", "--tail", "50")):
            try:
                result = self.cli(*args, check=False, timeout=60)
                parts.append(
                    f"--- unistack {' '.join(args)} (exit {result.returncode})\n{result.stdout}{result.stderr}"
                )
            except subprocess.TimeoutExpired:
                parts.append(f"--- unistack {' '.join(args)}: timed out")
        daemon_log = self.state_dir / "logs" / "daemon.log"
        if daemon_log.exists():
            tail = daemon_log.read_text(errors="replace").splitlines()[-30:]
            parts.append("--- daemon.log (last 30 lines)\n" + "\n".join(tail))
        return "\n".join(parts)

    # ----------------------------------------------------------------- waiting

    def healthy(self) -> dict[str, dict[str, Any]] | None:
        """`ps` when every long-running service is healthy and every one-shot has exited 0, else None."""
        rows = self.ps(check=False)
        if all(rows.get(name, {}).get("state") == "healthy" for name in LONG_RUNNING) and all(
            rows.get(name, {}).get("state") == "exited" and rows[name]["exit_code"] == 0 for name in ONE_SHOT
        ):
            return rows
        return None

    def wait_healthy(self, timeout: float = READY_TIMEOUT) -> dict[str, dict[str, Any]]:
        return wait_for(self.healthy, timeout, "every service of the stack healthy in `ps`", interval=0.5)

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> dict[str, Any]:
        """Polls /api/ready through the proxy until it answers 200; returns its body."""
        last = "no answer"
        with self.client() as client:

            def ready() -> dict[str, Any] | None:
                nonlocal last
                response = client.get("/api/ready")
                last = f"{response.status_code} {response.text[:300]}"
                return response.json() if response.status_code == 200 else None

            try:
                return wait_for(ready, timeout, f"{self.base_url}/api/ready to answer 200")
            except AssertionError as exc:
                raise AssertionError(f"{exc}; its last answer: {last}") from None

    def assert_sole_listener(self) -> None:
        """Nothing but this instance's proxy listens on its port. Caddy binds with SO_REUSEPORT, so a second
        server on the same port (another instance, say) would not fail: the kernel would share the connections
        between the two, and the tests would talk to whichever it picked. In containers the listener is Docker's
        port forwarder; there, the proxy must be the only container of the instance that publishes a port."""
        if self.runtime == "docker":
            published = {
                row.name: row.ports
                for row in (container_view(c) for c in self.containers())
                if row.ports  # host ports only
            }
            assert set(published) == {"proxy"}, f"containers publishing ports: {published}"
            assert published["proxy"] == [("127.0.0.1", self.port)], published
            return
        proxy = psutil.Process(self.ps()["proxy"]["pid"])
        ours = {proxy.pid, *(child.pid for child in proxy.children(recursive=True))}
        listeners = {
            conn.pid
            for conn in psutil.net_connections(kind="tcp")
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == self.port
        }
        assert listeners and listeners <= ours, (
            f"port {self.port} is listened on by pids {sorted(listeners, key=str)}, not only by the proxy "
            f"({proxy.pid}): another server shares the port (set E2E_HTTP_PORT to a free one)"
        )

    def containers(self) -> list[Any]:
        """This instance's containers (docker runtime), found by Compose's project label."""
        import docker

        client = docker.from_env()
        try:
            return list(
                client.containers.list(all=True, filters={"label": f"com.docker.compose.project={self.project}"})
            )
        finally:
            client.close()

    def client(self, **kwargs: Any) -> httpx.Client:
        # trust_env=False: straight to 127.0.0.1, whatever HTTP(S)_PROXY the machine has
        return httpx.Client(base_url=self.base_url, timeout=HTTP_TIMEOUT, trust_env=False, **kwargs)

    # ----------------------------------------------------------------- processes

    def incarnations(self) -> dict[str, tuple[Any, str]]:
        """Each long-running service's incarnation once all are healthy: (pid or container id, started_at). A
        restarted process has a new pid; a restarted container keeps its id but has a new start time."""
        rows = self.wait_healthy()
        return {name: (rows[name]["pid"] or rows[name]["container"], rows[name]["started_at"]) for name in LONG_RUNNING}

    def service_pids(self) -> dict[str, int]:
        """The pid of each long-running host process (process runtime only)."""
        assert self.runtime == "process", "service_pids is for host processes"
        rows = self.wait_healthy()
        return {name: rows[name]["pid"] for name in LONG_RUNNING}

    def incarnation_gone(self, incarnation: tuple[Any, str]) -> bool:
        ident = incarnation[0]
        if self.runtime == "process":
            return gone(int(ident))
        return all(c.id != ident or c.status != "running" for c in self.containers())

    def kill_everything(self) -> None:
        """SIGKILL the daemon and every service's process group recorded in state.json (containers: `docker kill`
        them), as a power cut would (no cleanup of any kind), then wait until none of those processes is left.

        Only processes that are provably this instance's are touched: the daemon by its command line, a group by
        its leader's pid and start time (or, with the leader gone, members of a group that no new leader took)."""
        data = self.state()
        victims: list[psutil.Process] = []
        with contextlib.suppress(psutil.Error, KeyError, ValueError, TypeError):
            daemon = psutil.Process(int(data["daemon_pid"]))
            words = " ".join(daemon.cmdline()).split()  # a daemon started ahead has its title as one word
            if "unistack.control.daemon" in words and str(self.state_dir) in words:
                victims.append(daemon)
        records = [info["record"] for info in data.get("services", {}).values() if info.get("record")]
        if self.runtime == "docker":
            for victim in victims:
                victim.kill()
            for container in self.containers():
                if container.status == "running":
                    container.kill()
            wait_for(
                lambda: all(gone(v) for v in victims) and all(c.status != "running" for c in self.containers()),
                30,
                "the daemon and every container to die after SIGKILL",
            )
            return
        everyone = list(psutil.process_iter())
        groups = set()
        for record in records:
            pgid, leader = int(record["pgid"]), None
            with contextlib.suppress(psutil.Error):
                leader = psutil.Process(int(record["pid"]))
            if leader is not None and abs(leader.create_time() - float(record["create_time"])) > 1:
                continue  # the pid was reused: not ours
            members = [p for p in everyone if _pgid(p) == pgid]
            if leader is None and any(p.pid == pgid for p in members):
                continue  # a new process leads a group with this id: not ours
            groups.add(pgid)
            victims += members
        for victim in victims:  # the daemon first, so that it restarts nothing
            with contextlib.suppress(psutil.NoSuchProcess):
                victim.kill()
        for pgid in groups:  # and whatever a service forked since the snapshot
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)

        def all_dead() -> bool:
            left = [p for p in psutil.process_iter() if _pgid(p) in groups and not gone(p)]
            return not left and all(gone(p) for p in victims)

        wait_for(all_dead, 30, f"the processes of groups {sorted(groups)} and the daemon to die after SIGKILL")

    def force_cleanup(self) -> None:
        """After a failed `down`: kill whatever state.json still records, so no stray process outlives the run."""
        with contextlib.suppress(OSError, ValueError, KeyError, AssertionError):
            self.kill_everything()


class ContainerView:
    """What the tests read of a container: its service and its published host ports."""

    def __init__(self, name: str, ports: list[tuple[str, int]]) -> None:
        self.name, self.ports = name, ports


def container_view(container: Any) -> ContainerView:
    bindings = container.attrs.get("HostConfig", {}).get("PortBindings") or {}
    ports = sorted(
        (b.get("HostIp") or "0.0.0.0", int(b["HostPort"]))
        for spec in bindings.values()
        for b in spec or []
        if b.get("HostPort")
    )
    return ContainerView(container.labels.get("com.docker.compose.service", container.name), ports)


def gone(process: psutil.Process | int) -> bool:
    """Dead, or a zombie that nobody reaped yet (it holds nothing)."""
    try:
        found = process if isinstance(process, psutil.Process) else psutil.Process(process)
        return found.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _pgid(process: psutil.Process) -> int | None:
    try:
        return os.getpgid(process.pid)
    except (ProcessLookupError, PermissionError):
        return None


_STACK: Stack | None = None
# Moved to the end of the session, in this order: they kill, restart or stop services or the whole stack (a service
# killed from outside and restarted by the supervisor makes validate's flapping check fail for 5 minutes; a restart
# asked for does not), and the last one empties it.
DISRUPTIVE = (
    "test_dashboard.py",
    "test_rollout.py",
    "test_backup.py",
    "test_chaos.py",
    "test_clean_shutdown.py",
    "test_migrations.py",
    "test_persistence.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Within this folder's tests (the rest of the session keeps its order): all of one runtime's tests, then the
    other's, and within each the disruptive ones last."""
    slots = [i for i, item in enumerate(items) if HERE in item.path.parents]

    def order(item: pytest.Item) -> tuple[int, int]:
        callspec = getattr(item, "callspec", None)
        runtime = callspec.params.get("stack", "process") if callspec is not None else "process"
        disruptive = DISRUPTIVE.index(item.path.name) + 1 if item.path.name in DISRUPTIVE else 0
        return (list(PROJECTS).index(runtime), disruptive)  # one runtime's stack at a time, disruptive last

    ours = sorted((items[i] for i in slots), key=order)
    for slot, item in zip(slots, ours, strict=True):
        items[slot] = item


@contextlib.contextmanager
def exclusive_use(timeout: float) -> Iterator[None]:
    """One e2e session at a time on this working tree: a second one (another `./run-tests`, say) waits here for
    the first to finish instead of taking the same `e2e` instance from under it."""

    def tell() -> None:
        print(f"waiting for another e2e session (it holds {LOCK_FILE})", file=sys.stderr)

    try:
        with file_lock(LOCK_FILE, timeout, on_wait=tell, poll=1.0):
            yield
    except TimeoutError:
        pytest.fail(f"another e2e session held {LOCK_FILE} for {timeout:g}s (E2E_LOCK_TIMEOUT)")


def docker_engine_or_skip() -> None:
    """Skip the docker half without an engine; with UNISTACK_REQUIRE_DOCKER=1 (CI) fail instead."""
    from unistack.runtimes import docker_engine_answers

    if docker_engine_answers():
        return
    if os.environ.get("UNISTACK_REQUIRE_DOCKER") == "1":
        pytest.fail("UNISTACK_REQUIRE_DOCKER=1 but no Docker engine answers (start dockerd)", pytrace=False)
    pytest.skip("no Docker engine answers (the docker runtime's half of the suite)")


def ensure_base_image(stack: Stack) -> None:
    """The base image the stack's Dockerfiles start FROM: bootstrapped offline when it is missing."""
    import docker
    import docker.errors

    client = docker.from_env()
    try:
        client.images.get(BASE_IMAGE)
    except docker.errors.ImageNotFound:
        stack.cli("images", "bootstrap", "--base", BASE_IMAGE, timeout=UP_TIMEOUT)
    finally:
        client.close()


@pytest.fixture(scope="package", params=["process", pytest.param("docker", marks=pytest.mark.docker)])
def stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    """The running stack for every test of this folder, per runtime; `down -v` after the last one. (Package
    scope: in a whole `./run-tests` session it is the session of the e2e tests, and is not left running under
    the other tests.)"""
    global _STACK
    runtime: str = request.param
    if os.environ.get("UNISTACK_SKIP_E2E") == "1":
        pytest.skip("UNISTACK_SKIP_E2E=1")
    if runtime == "docker":
        docker_engine_or_skip()
    with exclusive_use(float(os.environ.get("E2E_LOCK_TIMEOUT", "1800"))):
        # A run that was killed may have left the instance up (on another port, with old data): start afresh.
        Stack(PREFERRED_PORT, runtime).cli("down", "-v", check=False)
        Stack(PREFERRED_PORT, runtime).force_cleanup()
        instance = Stack(free_port(), runtime)
        if runtime == "docker":
            ensure_base_image(instance)
        ARTIFACTS.mkdir(exist_ok=True)
        _STACK = instance
        try:
            failure = None
            try:
                instance.up()
                instance.assert_sole_listener()
                instance.wait_ready()
            except (AssertionError, subprocess.TimeoutExpired) as exc:
                failure = str(exc) if "--- unistack ps" in str(exc) else f"{exc}\n{instance.diagnostics()}"
            if failure is not None:
                (ARTIFACTS / "stack-setup.diagnostics.txt").write_text(failure)
                print(failure, file=sys.stderr)  # once, in the first test's report ("Captured stderr setup")
                summary = failure.split("--- unistack ps")[0].strip()[-3000:]
                pytest.fail(
                    f"the e2e stack did not come up:\n{summary}\n(ps and the services' last log lines: in the "
                    f"first error's captured stderr and in {ARTIFACTS / 'stack-setup.diagnostics.txt'})",
                    pytrace=False,
                )
            yield instance
        finally:
            _STACK = None
            try:
                instance.down(volumes=True)
            except (AssertionError, subprocess.TimeoutExpired):
                instance.force_cleanup()
                raise


@pytest.fixture
def api(stack: Stack) -> Iterator[httpx.Client]:
    """An HTTP client on the proxy (the only way in), once the stack serves (at once unless a test broke it)."""
    stack.wait_ready()
    with stack.client() as client:
        yield client


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failing e2e test's report carries `ps` and the services' last log lines (also saved in artifacts/)."""
    report = yield
    if report.failed and report.when == "call" and _STACK is not None:
        diagnostics = _STACK.diagnostics()
        report.sections.append(("unistack ps and logs", diagnostics))
        with contextlib.suppress(OSError):
            (ARTIFACTS / f"{item.name}.diagnostics.txt").write_text(diagnostics)
    return report
