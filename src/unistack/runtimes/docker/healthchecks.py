"""Healthchecks in containers: one run of a service's ``healthcheck.test`` inside its container with exec.

Owns running the check (``CMD`` as argv, ``CMD-SHELL`` through ``/bin/sh -c``) with its timeout, reading its
output (the last ``OUTPUT_LIMIT`` characters kept) and exit code, and abandoning a run that overstays or whose
caller was cancelled: its output stream closed (the waiting thread returns) and, when it is visibly this check
on this machine, its processes ended leaves first (``probe_kill``). The engine answers ``exec start`` before the
process exists (``exec inspect`` says Pid 0 for a while, then the pid of ``runc init`` before it becomes the
check), so an abandoned run is watched until its process is the check, or it ended, or ``START_WAIT`` passed; a
run abandoned before its exec started is never started. Image HEALTHCHECKs are never used (the container is
created with ``NONE``). Never decides what a result means: the engine's health bookkeeping does.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import docker.errors

from unistack.config.model import Healthcheck
from unistack.errors import RuntimeFailure
from unistack.runtimes.base import ProbeResult
from unistack.runtimes.docker import probe_kill
from unistack.runtimes.docker.engine import Errors, close_stream, explain, in_thread

OUTPUT_LIMIT = 4000
START_WAIT = 10.0  # seconds an abandoned check's exec gets to show its process (the engine starts it late)
POLL_FIRST, POLL_MOST = 0.02, 0.2  # seconds between exec inspects while waiting for that process, doubling

EndCheck = Callable[[int, Sequence[str]], bool]


async def probe(client: Callable[[], docker.DockerClient], container_id: str, check: Healthcheck) -> ProbeResult:
    """One run of ``check`` in the container; a failed result (never an error) when it cannot run."""
    argv = ["/bin/sh", "-c", check.test[0]] if check.kind == "CMD-SHELL" else list(check.test)
    return await run_check(_Exec(client, container_id, argv), check.timeout)


async def run_check(run: _Exec, timeout: float) -> ProbeResult:
    """``run`` within ``timeout`` seconds; abandoned (and its process ended) when it overstays or is cancelled."""
    try:
        async with asyncio.timeout(timeout):
            return await in_thread(run.run)
    except TimeoutError:
        await in_thread(run.abandon)
        return ProbeResult(False, None, f"healthcheck timed out after {timeout:g}s")
    except asyncio.CancelledError:
        threading.Thread(target=run.abandon, daemon=True).start()
        raise
    except (RuntimeFailure, *Errors) as exc:
        return ProbeResult(False, None, f"cannot run the healthcheck: {explain(exc)}")


class _Exec:
    """One healthcheck run inside a container; ``abandon`` unblocks and ends it when it overstays.

    The thread in ``run`` owns the exec from creation to its end; ``abandon`` (any thread) only flags it and
    closes its stream, then waits (bounded) for ``run`` to have ended what it started. The flag and the stream
    change hands under one lock, so exactly one side closes the stream, and nothing starts once abandoned.
    """

    def __init__(
        self,
        client: Callable[[], docker.DockerClient],
        container_id: str,
        argv: list[str],
        end_check: EndCheck = probe_kill.end_check,
        start_wait: float = START_WAIT,
    ) -> None:
        self.client, self.container_id, self.argv = client, container_id, argv
        self.end_check, self.start_wait = end_check, start_wait
        self.exec_id: str | None = None
        self.stream: Any = None
        self.abandoned = False
        self.lock = threading.Lock()
        self.settled = threading.Event()  # set once ``run`` returned: after an abandon, its process was dealt with

    def run(self) -> ProbeResult:
        try:
            return self._run()
        finally:
            self.settled.set()

    def abandon(self) -> None:
        """Close the output stream (the waiting thread returns) and wait until ``run`` ended the check's process."""
        with self.lock:
            self.abandoned = True
            stream = self.stream
        if stream is not None:
            close_stream(stream)
        self.settled.wait(self.start_wait + 2 * probe_kill.REAP_WAIT + 5)

    def _run(self) -> ProbeResult:
        api = self.client().api
        try:
            exec_id = str(api.exec_create(self.container_id, self.argv, stdout=True, stderr=True)["Id"])
        except docker.errors.NotFound:
            return ProbeResult(False, None, "the container is gone")
        except docker.errors.APIError as exc:
            return ProbeResult(False, None, f"cannot run the healthcheck: {explain(exc)}")
        with self.lock:
            self.exec_id = exec_id
            if self.abandoned:  # created, never started: the engine drops it with the container
                return _ABANDONED
        stream = api.exec_start(exec_id, stream=True)
        with self.lock:
            self.stream = stream
            abandoned = self.abandoned
        output = bytearray()
        try:
            if not abandoned:
                with contextlib.suppress(*Errors, OSError):
                    for chunk in stream:
                        output += chunk
                        if len(output) > 4 * OUTPUT_LIMIT:
                            del output[: -2 * OUTPUT_LIMIT]
        except Exception:  # a stream closed under its reader fails its own way ("I/O operation on closed file")
            if not self.abandoned:
                raise
        finally:
            close_stream(stream)
        if self.abandoned:
            self._end(api, exec_id)
            return _ABANDONED
        text = output.decode("utf-8", "replace")[-OUTPUT_LIMIT:]
        code = api.exec_inspect(exec_id).get("ExitCode")
        if code is None:
            return ProbeResult(False, None, text or "the healthcheck ended without an exit code")
        return ProbeResult(code == 0, int(code), text)

    def _end(self, api: Any, exec_id: str) -> None:
        """End the abandoned check's processes once the engine shows them, unless it ended on its own first."""
        deadline = time.monotonic() + self.start_wait
        pause = POLL_FIRST
        while True:
            try:
                info = api.exec_inspect(exec_id)
            except Exception:  # the container or the engine is gone: nothing left to end
                return
            if info.get("ExitCode") is not None:
                return
            pid = int(info.get("Pid") or 0)
            # the engine reports a host pid; killed only when it is visibly this check on this machine, with what
            # it started, leaves first (an orphan would be reaped by the container's PID 1: see probe_kill)
            if pid and self.end_check(pid, self.argv):
                return
            if time.monotonic() + pause > deadline:
                return
            time.sleep(pause)
            pause = min(pause * 2, POLL_MOST)


_ABANDONED = ProbeResult(False, None, "the healthcheck was abandoned")
