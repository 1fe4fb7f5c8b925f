"""The upstream indirection of host processes: a start-first service's socket, switched atomically.

A service run as a host process that others reach (the proxy's upstream) listens on
``$UNISTACK_RUN_DIR/<service>.sock``, which it names in its command or environment (the stack's backend:
``BACKEND_SOCKET``). When the service is updated start-first (``deploy.update_config.order``), every incarnation
gets a socket of its own instead, ``<service>.1.sock`` or ``<service>.2.sock`` (blue/green: the one the live
incarnation does not use), written where the stable path was, and ``<service>.sock`` becomes a symbolic link to
the current one. A proxy dials ``<service>.sock`` as before: connecting follows the link.

- An ordinary start (the first, a restart) points the link at its socket at once, as today's stop-first: the
  socket appears when the service binds it.
- The new incarnation of an update starts beside the old one with the other socket and is switched to once
  healthy: a new link renamed over ``<service>.sock``, one ``rename``, so every connection opened from then on
  reaches the new incarnation and none finds no socket at all. Connections open on the old one stay with it
  while it drains.
- A server that removes its socket path as it exits (uvicorn does) removes its own slot, never the link.

Owns those paths, the rewriting and the rename; never starts, signals or probes anything.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from unistack.config.model import Project, Service
from unistack.config.updates import update_order
from unistack.errors import NotSupported, RuntimeFailure


def stable_socket(project: Project, service: str) -> Path:
    return project.run_dir / f"{service}.sock"


def _slots(project: Project, service: str) -> tuple[Path, Path]:
    return project.run_dir / f"{service}.1.sock", project.run_dir / f"{service}.2.sock"


def _names_stable(project: Project, service: Service) -> bool:
    stable = str(stable_socket(project, service.name))
    return any(stable in value for value in _named(service))


def _named(service: Service) -> list[str]:
    process = service.process
    values = [*service.environment.values()]
    if process is not None:
        values += [*process.command, *process.environment.values()]
    return values


def _free_slot(project: Project, service: str) -> Path:
    """The slot the link does not point to (the live incarnation's is the other)."""
    first, second = _slots(project, service)
    try:
        current = str(stable_socket(project, service).readlink())
    except OSError:
        current = ""
    return first if current != first.name else second


def own_socket(project: Project, service: Service, slot: Path) -> Service:
    """``service`` with ``<service>.sock`` replaced by ``slot`` everywhere it is named."""
    stable, new = str(stable_socket(project, service.name)), str(slot)

    def swap(text: str) -> str:
        return text.replace(stable, new)

    process = service.process
    assert process is not None
    try:
        slot.unlink(missing_ok=True)  # left by an incarnation that could not clean up (SIGKILL)
    except OSError as exc:
        raise RuntimeFailure(f"{service.name}: cannot remove the old socket {slot}: {exc.strerror}") from exc
    check = service.healthcheck
    if check is not None:
        check = msgspec.structs.replace(check, test=tuple(swap(a) for a in check.test))
    return msgspec.structs.replace(
        service,
        process=msgspec.structs.replace(
            process,
            command=tuple(swap(a) for a in process.command),
            environment={k: swap(v) for k, v in process.environment.items()},
        ),
        environment={k: swap(v) for k, v in service.environment.items()},
        healthcheck=check,
    )


def for_start(project: Project, service: Service) -> Service:
    """What an ordinary start runs: a start-first service on its own slot, the link switched to it at once;
    anything else as it is."""
    if update_order(service) != "start-first" or service.process is None or not _names_stable(project, service):
        return service
    slot = _free_slot(project, service.name)
    started = own_socket(project, service, slot)
    _point(project, service.name, slot)
    return started


def beside(project: Project, service: Service) -> Service:
    """The form of ``service`` whose incarnation listens beside the live one (the free slot); ``NotSupported``
    when it names no ``<service>.sock`` or publishes a host port (two could not listen on it)."""
    if any(p.published is not None for p in service.ports):
        raise NotSupported(
            f"{service.name} publishes a host port, which its new incarnation could not listen on beside the old one"
        )
    if service.process is None or not _names_stable(project, service):
        raise NotSupported(
            f"{service.name}'s host process names no socket ${{UNISTACK_RUN_DIR}}/{service.name}.sock for the proxy "
            "to dial, so a new incarnation could not listen beside the old one"
        )
    return own_socket(project, service, _free_slot(project, service.name))


def switch(project: Project, service: Service, beside: Service) -> None:
    """Point ``<service>.sock`` at the slot ``beside`` listens on, in one rename (idempotent)."""
    named = " ".join(_named(beside))
    slot = next((s for s in _slots(project, service.name) if str(s) in named), None)
    if slot is None:
        raise RuntimeFailure(f"{service.name}: its new incarnation names no socket to switch to")
    _point(project, service.name, slot)


def _point(project: Project, service: str, slot: Path) -> None:
    stable = stable_socket(project, service)
    try:
        if str(stable.readlink()) == slot.name:
            return
    except OSError:
        pass
    temporary = project.run_dir / f".{service}.sock.switch"
    try:
        temporary.unlink(missing_ok=True)
        temporary.symlink_to(slot.name)  # relative: the slot beside it
        temporary.replace(stable)
    except OSError as exc:
        raise RuntimeFailure(f"{service}: cannot switch {stable} to {slot}: {exc.strerror}") from exc
