"""Runtime drivers: how services become host processes or containers. They carry out; they never decide."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from unistack.errors import RuntimeFailure, UsageError
from unistack.runtimes.base import Runtime

RUNTIMES = ("process", "docker", "auto")
ENGINE_TIMEOUT = 2.0


def docker_client(timeout: float = 60.0) -> Any:
    """A docker SDK client for the engine DOCKER_HOST names (the local socket by default), checked with a ping;
    RuntimeFailure with the fix when none answers."""
    from unistack.runtimes.docker_engine import connect

    client = connect(os.environ)
    client.api.timeout = int(timeout)
    return client


def docker_engine_answers() -> bool:
    """Whether a Docker engine answers within a short timeout (for ``--runtime auto``)."""
    if not os.environ.get("DOCKER_HOST") and not Path("/var/run/docker.sock").exists():
        return False
    try:
        docker_client(ENGINE_TIMEOUT).close()
    except (RuntimeFailure, ImportError):
        return False
    return True


def resolve_runtime_name(name: str, recorded: str | None = None) -> str:
    """``auto`` becomes a concrete runtime: the one the instance already runs on (``recorded``), else docker when
    an engine answers, else process. Unknown names are refused with the known ones."""
    if name not in RUNTIMES:
        raise UsageError(f"unknown runtime {name!r}; use one of: {', '.join(RUNTIMES)}")
    if name != "auto":
        return name
    if recorded in ("process", "docker"):
        return recorded
    return "docker" if docker_engine_answers() else "process"


def create_runtime(name: str, environ: Mapping[str, str] | None = None) -> Runtime:
    concrete = resolve_runtime_name(name)
    if concrete == "docker":
        from unistack.runtimes.docker import DockerRuntime

        return DockerRuntime(dict(environ) if environ else None)
    from unistack.runtimes.process import ProcessRuntime

    return ProcessRuntime(dict(environ) if environ else None)
