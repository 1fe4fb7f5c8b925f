"""Runtime drivers: how services become host processes or containers. They carry out; they never decide.

The runtime names are spelled here and nowhere else. This package's own import is cheap (no docker SDK, no
psutil, no asyncio): the CLI reads the names on every command; the drivers are imported when one is created.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal, get_args

from unistack.errors import RuntimeFailure, UsageError

if TYPE_CHECKING:
    from unistack.runtimes.base import Runtime

RuntimeName = Literal["process", "docker"]
RuntimeChoice = Literal["process", "docker", "auto"]
PROCESS: Final = "process"
DOCKER: Final = "docker"
AUTO: Final = "auto"
RUNTIME_NAMES: tuple[RuntimeName, ...] = get_args(RuntimeName)
RUNTIME_CHOICES: tuple[RuntimeChoice, ...] = get_args(RuntimeChoice)
ENGINE_TIMEOUT = 2.0


def docker_engine_answers() -> bool:
    """Whether a Docker engine answers within a short timeout (for ``--runtime auto``)."""
    if not os.environ.get("DOCKER_HOST") and not Path("/var/run/docker.sock").exists():
        return False
    try:
        from unistack.runtimes.docker.engine import client

        client(ENGINE_TIMEOUT).close()
    except (RuntimeFailure, ImportError):
        return False
    return True


def runtime_name(name: str) -> RuntimeName:
    """A concrete runtime's name as the closed vocabulary (state files and requests carry plain strings)."""
    if name == DOCKER:
        return DOCKER
    if name == PROCESS:
        return PROCESS
    raise UsageError(f"unknown runtime {name!r}; use one of: {', '.join(RUNTIME_NAMES)}")


def resolve_runtime_name(name: str, recorded: str | None = None) -> RuntimeName:
    """``auto`` becomes a concrete runtime: the one the instance already runs on (``recorded``), else docker when
    an engine answers, else process. Unknown names are refused with the known ones."""
    if name not in RUNTIME_CHOICES:
        raise UsageError(f"unknown runtime {name!r}; use one of: {', '.join(RUNTIME_CHOICES)}")
    if name != AUTO:
        return runtime_name(name)
    if recorded in RUNTIME_NAMES:
        return runtime_name(recorded)
    return DOCKER if docker_engine_answers() else PROCESS


def create_runtime(name: str, environ: Mapping[str, str] | None = None) -> Runtime:
    concrete = resolve_runtime_name(name)
    if concrete == DOCKER:
        from unistack.runtimes.docker.runtime import DockerRuntime

        return DockerRuntime(dict(environ) if environ else None)
    from unistack.runtimes.process import ProcessRuntime

    return ProcessRuntime(dict(environ) if environ else None)
