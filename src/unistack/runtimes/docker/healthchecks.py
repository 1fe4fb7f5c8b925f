"""Healthchecks in containers: one run of a service's ``healthcheck.test`` inside its container with exec.

Owns running the check (``CMD`` as argv, ``CMD-SHELL`` through ``/bin/sh -c``) with its timeout, reading its
output (the last ``OUTPUT_LIMIT`` characters kept) and exit code, and abandoning a run that overstays or whose
caller was cancelled: its output stream closed (the waiting thread returns) and, when it is visibly this check
on this machine, its processes ended leaves first (``probe_kill``). Image HEALTHCHECKs are never used (the
container is created with ``NONE``). Never decides what a result means: the engine's health bookkeeping does.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Any

import docker.errors

from unistack.config.model import Healthcheck
from unistack.errors import RuntimeFailure
from unistack.runtimes.base import ProbeResult
from unistack.runtimes.docker import probe_kill
from unistack.runtimes.docker.engine import Errors, close_stream, explain, in_thread

OUTPUT_LIMIT = 4000


async def probe(client: Callable[[], docker.DockerClient], container_id: str, check: Healthcheck) -> ProbeResult:
    """One run of ``check`` in the container; a failed result (never an error) when it cannot run."""
    argv = ["/bin/sh", "-c", check.test[0]] if check.kind == "CMD-SHELL" else list(check.test)
    run = _Exec(client, container_id, argv)
    try:
        async with asyncio.timeout(check.timeout):
            return await in_thread(run.run)
    except TimeoutError:
        await in_thread(run.abandon)
        return ProbeResult(False, None, f"healthcheck timed out after {check.timeout:g}s")
    except asyncio.CancelledError:
        threading.Thread(target=run.abandon, daemon=True).start()
        raise
    except (RuntimeFailure, *Errors) as exc:
        return ProbeResult(False, None, f"cannot run the healthcheck: {explain(exc)}")


class _Exec:
    """One healthcheck run inside a container; ``abandon`` unblocks and ends it when it overstays."""

    def __init__(self, client: Callable[[], docker.DockerClient], container_id: str, argv: list[str]) -> None:
        self.client, self.container_id, self.argv = client, container_id, argv
        self.exec_id: str | None = None
        self.stream: Any = None
        self.abandoned = False

    def run(self) -> ProbeResult:
        api = self.client().api
        try:
            self.exec_id = str(api.exec_create(self.container_id, self.argv, stdout=True, stderr=True)["Id"])
        except docker.errors.NotFound:
            return ProbeResult(False, None, "the container is gone")
        except docker.errors.APIError as exc:
            return ProbeResult(False, None, f"cannot run the healthcheck: {explain(exc)}")
        self.stream = api.exec_start(self.exec_id, stream=True)
        output = bytearray()
        try:
            with contextlib.suppress(*Errors, OSError):
                for chunk in self.stream:
                    output += chunk
                    if len(output) > 4 * OUTPUT_LIMIT:
                        del output[: -2 * OUTPUT_LIMIT]
        finally:
            close_stream(self.stream)
        text = output.decode("utf-8", "replace")[-OUTPUT_LIMIT:]
        code = api.exec_inspect(self.exec_id).get("ExitCode")
        if code is None:
            return ProbeResult(False, None, text or "the healthcheck ended without an exit code")
        return ProbeResult(code == 0, int(code), text)

    def abandon(self) -> None:
        """Close the output stream (the waiting thread returns) and kill the check's process when it is ours."""
        self.abandoned = True
        if self.stream is not None:
            close_stream(self.stream)
        if self.exec_id is None:
            return
        with contextlib.suppress(Exception):
            pid = int(self.client().api.exec_inspect(self.exec_id).get("Pid") or 0)
            # the engine reports a host pid; killed only when it is visibly this check on this machine, with what
            # it started, leaves first (an orphan would be reaped by the container's PID 1: see probe_kill)
            if pid:
                probe_kill.end_check(pid, self.argv)
