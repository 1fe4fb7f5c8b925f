"""Who holds a host port: another instance (a live daemon whose saved project publishes it, a process whose
environment names its state folder, a container labelled with it) or any process, by pid and name. Reads state
folders, /proc (psutil) and, for Docker's port forwarder, the engine's containers; changes nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

WILDCARDS = {"", "0.0.0.0", "::", "[::]"}


@dataclass(frozen=True)
class Holder:
    """Who listens on a port: ``short`` for a note ("instance `a`"), ``long`` for an error's sentence."""

    short: str
    long: str


def holder(host_ip: str, number: int, protocol: str, me: Path) -> Holder | None:
    """Who holds ``host_ip:number`` other than the instance in ``me``: a live instance whose saved project publishes
    it (even while its service restarts), else whoever listens there; None when it is free or ours."""
    from unistack.runtimes.host import bind_problem

    for state_dir, project in _live_instances(me.parent):
        if any(_publishes(p, host_ip, number, protocol) for p in _published(project)):
            return None if state_dir == me else _instance(state_dir, me)
    host = host_ip if host_ip not in WILDCARDS else "0.0.0.0"
    if bind_problem(host, number, protocol) is None:
        return None
    return _listener(host_ip, number, protocol, me)


def _live_instances(parent: Path) -> list[tuple[Path, dict[str, Any]]]:
    """The instances kept in ``parent`` whose daemon is alive, with their saved projects."""
    from unistack.control import state

    found = []
    with contextlib.suppress(OSError):
        for folder in sorted(parent.iterdir()):
            if not (folder / "project.json").is_file():
                continue
            with contextlib.suppress(Exception):
                if state.daemon_alive(folder):
                    found.append((folder, state.read_project(folder) or {}))
    return found


def _published(project: Mapping[str, Any]) -> list[dict[str, Any]]:
    services = project.get("services")
    ports = []
    for service in services.values() if isinstance(services, dict) else ():
        for port in service.get("ports") or () if isinstance(service, dict) else ():
            if isinstance(port, dict) and port.get("published"):
                ports.append(port)
    return ports


def _publishes(port: Mapping[str, Any], host_ip: str, number: int, protocol: str) -> bool:
    if int(port.get("published") or 0) != number or str(port.get("protocol") or "tcp") != protocol:
        return False
    theirs = str(port.get("host_ip") or "")
    return theirs == host_ip or theirs in WILDCARDS or host_ip in WILDCARDS


def _instance(state_dir: Path, me: Path) -> Holder:
    whose = "this project" if state_dir.parent == me.parent else f"the project in {state_dir.parent.parent}"
    return Holder(f"instance `{state_dir.name}`", f"instance `{state_dir.name}` of {whose} ({_shown(state_dir)})")


def _shown(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.relative_to(Path.cwd()))
    return str(path)


def _listener(host_ip: str, number: int, protocol: str, me: Path) -> Holder | None:
    """The process that listens on the port (psutil), named by pid, or the instance it belongs to; None: ours."""
    import psutil

    pids: set[int] = set()
    with contextlib.suppress(psutil.Error, OSError):
        for conn in psutil.net_connections(kind="tcp" if protocol == "tcp" else "udp"):
            if not conn.laddr or conn.laddr.port != number or conn.pid is None:
                continue
            if protocol == "tcp" and conn.status != psutil.CONN_LISTEN:
                continue
            if host_ip in WILDCARDS or conn.laddr.ip in WILDCARDS or conn.laddr.ip == host_ip:
                pids.add(conn.pid)
    for pid in sorted(pids):
        try:
            process = psutil.Process(pid)
            name = process.name()
        except psutil.Error:
            continue
        with contextlib.suppress(psutil.Error):
            state_dir = process.environ().get("UNISTACK_STATE_DIR")
            if state_dir:
                folder = Path(state_dir)
                if folder == me:
                    return None
                return _instance(folder, me)
        if name == "docker-proxy":
            known, container = _container(number, protocol, me)
            if known:
                return container
        return Holder(f"process {pid} ({name})", f"process {pid} ({name})")
    return Holder("another program", "another program (see `ss -ltnp` for which)")


def _container(number: int, protocol: str, me: Path) -> tuple[bool, Holder | None]:
    """(True, the container's holder, or None when it is ours) or (False, None): none found, or no engine."""
    try:
        import docker

        client = docker.from_env(timeout=5)
    except Exception:
        return False, None
    try:
        for container in client.containers.list(filters={"publish": f"{number}/{protocol}"}):
            labels = container.labels or {}
            state_dir = labels.get("dev.unistack.state_dir")
            if state_dir:
                folder = Path(state_dir)
                if folder == me:
                    return True, None
                found = _instance(folder, me)
                return True, Holder(found.short, f"{found.long} (container {container.name})")
            return True, Holder(f"container {container.name}", f"the Docker container {container.name}")
    except Exception:
        return False, None
    finally:
        client.close()
    return False, None
