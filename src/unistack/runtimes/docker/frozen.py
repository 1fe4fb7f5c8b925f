"""Whether a container is frozen: paused (``docker pause``), or its main process stopped (SIGSTOP), which only the
host sees (``State.Pid`` in the container's inspect data, read with psutil; only when the engine is local). A
frozen container cannot act on a stop signal, so ``stopping.stop`` kills it at once. Blocking: call it from a
thread. Never signals anything itself.
"""

from __future__ import annotations

from typing import Any, Literal

import docker.errors
import psutil

Frozen = Literal["paused", "stopped"]


def frozen_state(api: Any, container_id: str, local: bool) -> Frozen | None:
    """``paused``, ``stopped``, or None (running as usual, not running at all, or gone)."""
    try:
        state = dict(api.inspect_container(container_id)).get("State") or {}
    except docker.errors.NotFound:
        return None
    if not state.get("Running"):
        return None
    if state.get("Paused"):
        return "paused"
    pid = int(state.get("Pid") or 0)
    if pid and local:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_STOPPED:
                return "stopped"
        except psutil.Error:
            return None
    return None
