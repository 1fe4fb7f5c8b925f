"""What every verb shares: the global options (and the project and runtime they resolve to), the service names
checked against the project, the instance lock's waiting message, and ``Exit`` (a verb's exit code, which
``cli.py`` turns into the process's). Never prints an error or exits: ``cli.py`` does.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import click

from unistack import config
from unistack.control import state
from unistack.errors import ConfigError, UsageError
from unistack.printer import Printer
from unistack.runtimes import DOCKER, PROCESS

if TYPE_CHECKING:
    from unistack.config.model import Project
    from unistack.runtimes import RuntimeName
    from unistack.runtimes.base import Runtime


class Exit(Exception):
    """A verb's verdict as the process's exit code (1: a service or check failed), raised for ``cli.py``."""

    def __init__(self, code: int) -> None:
        self.code = code


@dataclass
class Options:
    files: tuple[str, ...]
    project_name: str | None
    env_name: str | None
    env_files: tuple[str, ...]
    profiles: tuple[str, ...]
    runtime: str
    _project: Project | None = field(default=None, repr=False)
    _runtime_name: RuntimeName | None = field(default=None, repr=False)

    def project(self, on_state_dir: Callable[[Path], None] | None = None) -> Project:
        if self._project is None:
            files: Sequence[str] | None = self.files or None
            default_dir = os.environ.get("UNISTACK_DEFAULT_DIR")
            cwd = None
            if files is None and default_dir and not compose_file_above(Path.cwd()):
                cwd = Path(default_dir)
            collecting = gc.isenabled()
            gc.disable()  # a load makes many objects and little cyclic garbage: ~10 % of its time went to the GC
            try:
                self._project = config.load(
                    files,
                    project_name=self.project_name,
                    env_name=self.env_name,
                    env_files=self.env_files or None,
                    profiles=self.profiles,
                    cwd=cwd,
                    on_state_dir=on_state_dir,
                )
            finally:
                if collecting:
                    gc.enable()
        return self._project

    def runtime_name(self) -> RuntimeName:
        """The runtime asked for; with ``auto``, the one this instance already runs on, else docker when an
        engine answers, else process."""
        if self._runtime_name is None:
            recorded = None
            if self.runtime == "auto":
                recorded = (state.read_state(self.project().state_dir) or {}).get("runtime")
            if self.runtime == PROCESS:  # nothing to detect: no need to import the runtime drivers (and asyncio)
                return PROCESS
            from unistack.runtimes import resolve_runtime_name

            self._runtime_name = resolve_runtime_name(self.runtime, recorded)
        return self._runtime_name

    def checked_project(self, on_state_dir: Callable[[Path], None] | None = None) -> Project:
        """The project, with what the chosen runtime needs checked before anything starts."""
        project = self.project(on_state_dir)
        if self.runtime_name() == PROCESS and (problems := config.check_for_process_runtime(project)):
            raise ConfigError(problems)
        if self.runtime_name() == DOCKER:
            from unistack.runtimes.docker.spec import check_for_docker_runtime

            if problems := check_for_docker_runtime(project):
                raise ConfigError(problems)
        return project


def compose_file_above(folder: Path) -> bool:
    names = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")
    return any((d / n).is_file() for d in (folder, *folder.parents) for n in names)


def check_services(project: Project, services: Sequence[str]) -> list[str]:
    unknown = [s for s in services if s not in project.services]
    if unknown:
        raise UsageError(
            f"no such service: {', '.join(unknown)}; the project {project.name!r} has: {', '.join(project.services)}"
        )
    return list(services)


pass_options = click.make_pass_decorator(Options)


def waiting_for_lock(printer: Printer) -> None:
    printer.say("another unistack command is changing this instance; waiting for it to finish")


def create_runtime(name: str) -> Runtime:
    from unistack.runtimes import create_runtime as create

    return create(name)
