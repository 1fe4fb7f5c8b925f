"""Runtime drivers: how services become host processes or containers. They carry out; they never decide.

The runtime names are spelled here and nowhere else, and so is the choice ``--runtime auto`` makes
(``choose_runtime``: a pure function of the services' forms and of whether an engine answers, with the reason in
words). This package's own import is cheap (no docker SDK, no psutil, no asyncio): the CLI reads the names on
every command; the drivers are imported when one is created.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal, get_args

from unistack.errors import RuntimeFailure, UsageError

if TYPE_CHECKING:
    from unistack.config.model import Project
    from unistack.runtimes.base import Runtime

RuntimeName = Literal["process", "docker"]
RuntimeChoice = Literal["process", "docker", "auto"]
PROCESS: Final = "process"
DOCKER: Final = "docker"
AUTO: Final = "auto"
RUNTIME_NAMES: tuple[RuntimeName, ...] = get_args(RuntimeName)
RUNTIME_CHOICES: tuple[RuntimeChoice, ...] = get_args(RuntimeChoice)
ENGINE_TIMEOUT = 2.0


def answering_engine() -> str | None:
    """The address of the Docker engine that answers within a short timeout (for ``--runtime auto``), or None."""
    if not os.environ.get("DOCKER_HOST") and not Path("/var/run/docker.sock").exists():
        return None
    try:
        from unistack.runtimes.docker.engine import client, engine_address

        client(ENGINE_TIMEOUT).close()
    except (RuntimeFailure, ImportError):
        return None
    return engine_address(os.environ)


def docker_engine_answers() -> bool:
    """Whether a Docker engine answers within a short timeout."""
    return answering_engine() is not None


@dataclass(frozen=True)
class Choice:
    """The runtime ``auto`` chose, and why, as ``up`` says it: ``runtime: NAME (REASON)``."""

    name: RuntimeName
    reason: str

    def __str__(self) -> str:
        return f"runtime: {self.name} ({self.reason})"


def choose_runtime(project: Project, engine: Callable[[], str | None]) -> Choice:
    """What ``--runtime auto`` runs a project on. ``engine()`` is the address of the Docker engine that answers
    (or None); it is asked only when the services' forms leave the choice open.

    - no service has an image or a build (only ``x-unistack.process``): process, engine or not;
    - no service has a process form (only images and builds): docker (without an engine, the docker runtime says
      so and how to start one);
    - otherwise (both forms, or a mix): docker when an engine answers, else process (which names the services
      that have no process form, if any).
    """
    services = list(project.services.values())
    if not any(s.spec.get("image") or s.spec.get("build") for s in services):
        return Choice(PROCESS, "no service has an image or a build")
    if all(s.process is None for s in services):
        return Choice(DOCKER, "no service has an x-unistack.process form")
    address = engine()
    if address is not None:
        return Choice(DOCKER, f"an engine answers at {address}")
    return Choice(PROCESS, "no Docker engine answers")


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
