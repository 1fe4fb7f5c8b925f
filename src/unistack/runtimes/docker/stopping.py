"""Stopping a container: its stop signal, the grace period, then SIGKILL; a frozen one killed at once.

Owns signalling a container (a container that is gone or no engine that answers means it is not running; one
that exited already is fine), waiting out the grace period for its exit (the exit watcher's), SIGKILL after it
(then at most ``grace.KILL_WAIT`` seconds more), and a frozen container (paused, or its PID 1 stopped: see
``docker.frozen``), which cannot act on its stop signal, killed at once with no grace period waited out for
nothing (a paused one thawed after the kill: a frozen cgroup's tasks die only once thawed). Never removes a
container, never decides when to stop one.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable

import docker.errors
import requests

from unistack.errors import RuntimeFailure
from unistack.runtimes import grace
from unistack.runtimes.base import Handle, StopResult
from unistack.runtimes.docker.engine import Errors, ExitWatcher, call, in_thread
from unistack.runtimes.docker.frozen import frozen_state
from unistack.runtimes.host import signal_number

Client = Callable[[], docker.DockerClient]


async def stop(
    client: Client, exits: ExitWatcher, local: bool, handle: Handle, signal_name: str, grace_period: float
) -> StopResult:
    """``signal_name``, ``grace_period`` seconds for the exit, then SIGKILL (``grace``); ``local``: the engine runs
    on this machine (a stopped PID 1 is seen on the host only)."""
    number = signal_number(signal_name)
    frozen = await _frozen(client, handle, local)
    if frozen is not None:  # it cannot act on the stop signal: no grace period waited out for nothing
        return await _kill_frozen(client, exits, handle, paused=frozen == "paused")
    if not await _kill(client, handle, number):
        return StopResult(killed=False, exit_code=None)
    return await grace.then_kill(
        lambda: exits.wait(handle.ident), grace_period, lambda: _kill(client, handle, int(signal.SIGKILL))
    )


async def _frozen(client: Client, handle: Handle, local: bool) -> str | None:
    """``paused`` or ``stopped`` (see ``docker.frozen``), else None (also when no engine answers)."""
    try:
        return await in_thread(lambda: frozen_state(client().api, handle.ident, local))
    except (RuntimeFailure, *Errors):
        return None


async def _kill_frozen(client: Client, exits: ExitWatcher, handle: Handle, paused: bool) -> StopResult:
    """SIGKILL at once; a paused container is thawed after it (a frozen cgroup's tasks die only once thawed)."""
    if not await _kill(client, handle, int(signal.SIGKILL)):
        return StopResult(killed=False, exit_code=None)
    if paused:

        def unpause() -> None:
            with contextlib.suppress(*Errors):
                client().api.unpause(handle.ident)

        await in_thread(unpause)
    code = await grace.at_most(grace.KILL_WAIT, lambda: exits.wait(handle.ident))
    return StopResult(killed=True, exit_code=code, frozen=True)


async def _kill(client: Client, handle: Handle, number: int) -> bool:
    """Send a signal; False when the container is gone. A container that already exited is fine."""

    def kill() -> bool:
        try:
            client().api.kill(handle.ident, number)
        except docker.errors.NotFound:
            return False
        except docker.errors.APIError as exc:
            if exc.status_code != 409:  # 409: not running (it exited already)
                raise
        except (RuntimeFailure, requests.ConnectionError):
            return False  # no engine answers: its containers are not running either
        return True

    return await call(f"cannot signal {handle.service}", kill)
