"""A host process's exit, waited for, and its group stopped: the process runtime's ``wait`` and ``stop``.

Owns the exit of a service's main process: of this daemon's own child (reaped through its pidfd; what it left
running in its group killed then, as a container's processes die with its main process; its last lines in the
log file before anyone reads the log's tail), and of an adopted one (polled by pid and start time; its exit code
from its keeper's file when it has one, since the kernel tells an exit code to the parent only), as a shell-style
status (killed by signal N: 128 + N). Owns stopping the group: the stop signal, the grace period, SIGKILL (the
waits are ``grace``'s), and a stopped (SIGSTOP) leader killed at once (it cannot act on its stop signal). Never
starts anything and never decides when to stop or restart.
"""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import psutil

from unistack.runtimes import grace
from unistack.runtimes.base import Handle, StopResult
from unistack.runtimes.children import Child, signal_group
from unistack.runtimes.host import signal_number

ADOPTED_POLL = 0.5
KEEPER_WRITES = 2.0  # seconds an adopted service's keeper is given to write its exit code once the service ended


def exit_status(returncode: int) -> int:
    """A shell-style exit status: killed by signal N is 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


async def wait(children: dict[str, Child], handle: Handle) -> int | None:
    """The main process's exit; what it left running in its group is killed then, as a container's processes
    die with its main process (a killed postmaster's backends would otherwise keep the next one from starting).
    ``children``: this daemon's own, by pid (the one waited for is removed once it exited)."""
    pgid = int(handle.record.get("pgid", handle.record["pid"]))
    proc = children.get(handle.ident)
    if proc is not None:
        code = await proc.wait()
        children.pop(handle.ident, None)
        signal_group(pgid, signal.SIGKILL)
        await proc.output_written()  # its last lines in the file before anyone reads the log's tail
        _exit_code_kept(handle)  # read (and removed) only so that nothing is left behind
        return exit_status(code)
    while alive(int(handle.record["pid"]), float(handle.record["create_time"])):
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


async def stop(children: dict[str, Child], handle: Handle, signal_name: str, grace_period: float) -> StopResult:
    """The group signalled, ``grace_period`` seconds for the main process's exit, then SIGKILL (``grace``)."""
    pgid = int(handle.record.get("pgid", handle.record["pid"]))
    sig = signal_number(signal_name)

    async def exited() -> int | None:
        return await wait(children, handle)

    async def kill() -> None:
        signal_group(pgid, signal.SIGKILL)

    if _frozen(int(handle.record["pid"])):
        # stopped (SIGSTOP): it cannot act on its stop signal, so a grace period would be waited out for nothing
        await kill()
        return StopResult(killed=True, exit_code=await grace.at_most(grace.KILL_WAIT, exited), frozen=True)
    signal_group(pgid, sig)
    result = await grace.then_kill(exited, grace_period, kill)
    signal_group(pgid, signal.SIGKILL)  # whatever the leader left behind in its group
    return result


def alive(pid: int, created: float) -> bool:
    """The process ``pid`` started at ``created`` (not another that took its pid) runs and is not a zombie."""
    try:
        proc = psutil.Process(pid)
        return abs(proc.create_time() - created) < 0.05 and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


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


def _frozen(pid: int) -> bool:
    """True when the process is stopped (state T: SIGSTOP, SIGTSTP), so it handles no signal but SIGKILL."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_STOPPED
    except psutil.Error:
        return False
