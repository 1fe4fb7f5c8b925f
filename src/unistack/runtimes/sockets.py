"""The upstream indirection of host processes: a service's unix socket in the run folder, switched atomically.

A service run as a host process that others reach (the proxy's upstream) listens on
``$UNISTACK_RUN_DIR/<service>.sock``, which it names in its command, environment or healthcheck (the stack's
backend: ``BACKEND_SOCKET``). For a start-first update its new incarnation gets a socket of its own,
``<service>.1.sock`` or ``<service>.2.sock`` (the one the live socket is not: blue/green), written into the same
places, so both listen at once. The switch is a hard link of the new socket renamed over ``<service>.sock``: one
``rename``, so every connection opened from then on (a proxy dials for each new connection) reaches the new
incarnation, and none finds no socket at all. Connections open on the old one stay with it while it drains.

Owns those paths and the rename; never starts, signals or probes anything.
"""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

from unistack.config.model import Project, Service
from unistack.errors import NotSupported, RuntimeFailure


def stable_socket(project: Project, service: str) -> Path:
    return project.run_dir / f"{service}.sock"


def _slots(project: Project, service: str) -> tuple[Path, Path]:
    return project.run_dir / f"{service}.1.sock", project.run_dir / f"{service}.2.sock"


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b)
    except OSError:
        return False


def beside(project: Project, service: Service) -> Service:
    """``service`` with its socket replaced by the free slot's everywhere it is named (command, environments,
    healthcheck); ``NotSupported`` when it names none, or publishes a host port (two cannot listen on it)."""
    if any(p.published is not None for p in service.ports):
        raise NotSupported(
            f"{service.name} publishes a host port, which its new incarnation could not listen on beside the old one"
        )
    stable = str(stable_socket(project, service.name))
    first, second = _slots(project, service.name)
    slot = second if _same_file(stable_socket(project, service.name), first) else first
    new = str(slot)

    def swap(text: str) -> str:
        return text.replace(stable, new)

    process = service.process
    named = stable in " ".join(
        (*(process.command if process else ()), *(process.environment.values() if process else ()))
    )
    named = named or any(stable in v for v in service.environment.values())
    if process is None or not named:
        raise NotSupported(
            f"{service.name}'s host process names no socket ${{UNISTACK_RUN_DIR}}/{service.name}.sock for the proxy to "
            "dial, so a new incarnation could not listen beside the old one"
        )
    with_socket = msgspec.structs.replace(
        process,
        command=tuple(swap(a) for a in process.command),
        environment={k: swap(v) for k, v in process.environment.items()},
    )
    check = service.healthcheck
    if check is not None:
        check = msgspec.structs.replace(check, test=tuple(swap(a) for a in check.test))
    try:
        slot.unlink(missing_ok=True)  # left by an incarnation that could not clean up (the live one is the other)
    except OSError as exc:
        raise RuntimeFailure(f"{service.name}: cannot remove the old socket {slot}: {exc.strerror}") from exc
    return msgspec.structs.replace(
        service,
        process=with_socket,
        environment={k: swap(v) for k, v in service.environment.items()},
        healthcheck=check,
    )


def switch(project: Project, service: Service, beside: Service) -> None:
    """Point ``<service>.sock`` at the socket ``beside`` listens on, in one rename (idempotent)."""
    stable = stable_socket(project, service.name)
    first, second = _slots(project, service.name)
    target = next((s for s in (first, second) if beside.process and str(s) in " ".join(_named(beside))), None)
    if target is None:
        raise RuntimeFailure(f"{service.name}: its new incarnation names no socket to switch to")
    if _same_file(stable, target):
        return
    temporary = project.run_dir / f".{service.name}.sock.switch"
    try:
        temporary.unlink(missing_ok=True)
        os.link(target, temporary)
        temporary.replace(stable)
    except OSError as exc:
        raise RuntimeFailure(f"{service.name}: cannot switch {stable} to {target}: {exc.strerror}") from exc


def _named(service: Service) -> list[str]:
    process = service.process
    values = [*service.environment.values()]
    if process is not None:
        values += [*process.command, *process.environment.values()]
    return values
