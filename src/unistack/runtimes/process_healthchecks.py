"""Healthchecks of host processes: one run of a service's ``healthcheck.test`` beside it, on this machine.

Owns running the check (``CMD`` as argv, ``CMD-SHELL`` through ``/bin/sh -c``) in a session of its own with the
service's environment and working folder, reading its output (the last ``OUTPUT_LIMIT`` characters kept) and
exit status, and killing its whole group when it overstays its timeout or its caller is cancelled (a stop).
Never decides what a result means: the engine's health bookkeeping does.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from unistack.config.model import Healthcheck
from unistack.runtimes.base import ProbeResult
from unistack.runtimes.children import OUTPUT_LIMIT, Created, popen_in_session, signal_group
from unistack.runtimes.process_exits import exit_status
from unistack.runtimes.process_spawn import Spawner


async def probe(spawner: Spawner, cwd: Path, env: dict[str, str], check: Healthcheck) -> ProbeResult:
    """One run of ``check`` in ``cwd`` with ``env``; a failed result (never an error) when it cannot run."""
    argv = ("/bin/sh", "-c", check.test[0]) if check.kind == "CMD-SHELL" else check.test

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
        proc = await spawner.popen(create)
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
