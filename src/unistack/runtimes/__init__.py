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
    """A docker SDK client for the engine DOCKER_HOST names (the local socket by default), checked with a ping."""
    import docker
    import docker.errors

    where = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    try:
        client = docker.from_env(timeout=int(timeout))
        client.ping()
    except docker.errors.DockerException as exc:
        raise RuntimeFailure(
            f"no Docker engine answers at {where} ({exc}); start dockerd (Debian: apt-get install docker.io, then "
            "`dockerd &` or `systemctl start docker`), or use --runtime process"
        ) from exc
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

        return DockerRuntime()
    from unistack.runtimes.process import ProcessRuntime

    return ProcessRuntime(dict(environ) if environ else None)
