"""What every verb shares: the global options (and the project and runtime they resolve to), the service names
checked against the project, the instance lock's waiting message, and ``Exit`` (a verb's exit code, which
``cli.py`` turns into the process's). Never prints an error or exits: ``cli.py`` does.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import click

from unistack import config
from unistack.config import inputs, loadcache
from unistack.control import state
from unistack.errors import ConfigError, StateError, UsageError
from unistack.printer import Printer
from unistack.runtimes import DOCKER, PROCESS

if TYPE_CHECKING:
    from unistack.config.model import Project
    from unistack.runtimes import RuntimeName
    from unistack.runtimes.base import Runtime


PROJECT_OUTPUT = "project json"  # the loaded project (``config.model.to_json``) in a load cache entry's outputs


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
    files_problem: str | None = field(default=None, repr=False)  # why the saved project stands in for the files
    runtime_reason: str | None = field(default=None, repr=False)  # why ``auto`` chose the runtime it chose

    def project(self, on_state_dir: Callable[[Path], None] | None = None, *, saved_ok: bool = False) -> Project:
        """The loaded project. ``saved_ok`` (commands that only look at or stop a running instance): when the files
        no longer load but the instance runs, the project it was started with (saying so on stderr)."""
        if self._project is None and saved_ok:
            self._project = self._project_or_saved(on_state_dir)
        if self._project is None:
            collecting = gc.isenabled()
            gc.disable()  # a load makes many objects and little cyclic garbage: ~10 % of its time went to the GC
            try:
                self._project = self._recorded_load(on_state_dir)
                # the ports an earlier `up` chose for this instance (its preferred ones were taken) apply to every verb
                if state.ports_file(self._project.state_dir).exists():
                    from unistack.ops import ports

                    loadcache.discard()  # the ports chosen are not an input the cache checks

                    if overrides := ports.saved_overrides(self._project.state_dir, os.environ):
                        self._project = self._load(None, overrides)
            finally:
                if collecting:
                    gc.enable()
        return self._project

    def remembered_project(self) -> Project:
        """``project()``, taken from the load cache (``config.loadcache``, the fast path's key and entry) when every
        input of the load is as it was, and stored there on a miss (``ps`` and ``config`` store it too). Only for
        verbs that write nothing derived from the load (``backup``, ``backup list``, ``restore``): the project the
        files make, decoded (``project_from_json``) instead of loaded; a ``ports.json`` (ports an earlier ``up``
        chose) or any doubt loads as before."""
        if self._project is not None:
            return self._project
        environ = dict(os.environ)
        try:
            cwd = str(Path.cwd())  # os.getcwd(), as fastpath.main keys it
        except OSError:  # the current folder was removed: the load says so
            return self.project()
        if not environ.get("HOME"):  # paths with ~ would come from the password database (fastpath.main)
            return self.project()
        options = {
            "files": list(self.files),
            "project_name": self.project_name,
            "env_name": self.env_name,
            "env_files": list(self.env_files),
            "profiles": list(self.profiles),
        }  # as fastpath.Words reads them: one entry for ps, config and backup
        key = loadcache.material(options, cwd, environ)
        entry = loadcache.lookup(key, environ)
        if (
            entry is not None
            and PROJECT_OUTPUT in entry["outputs"]
            and not state.ports_file(Path(entry["state_dir"])).exists()
        ):
            from unistack.config.model import project_from_json

            try:
                self._project = project_from_json(entry["outputs"][PROJECT_OUTPUT])
            except ValueError:
                pass
            else:
                if environ.get("UNISTACK_DEBUG_CACHE"):
                    sys.stderr.write("unistack: the project from the load cache\n")
                return self._project
        loadcache.pending = loadcache.Pending(key, environ, found=entry)
        try:
            project = self.project()
            if loadcache.pending is not None:  # None: discarded (a ports.json)
                loadcache.pending.store()  # the project recorded with its inputs (``_recorded_load``)
        finally:
            loadcache.pending = None
        return project

    def _recorded_load(self, on_state_dir: Callable[[Path], None] | None) -> Project:
        """``_load``; when the fast path missed its cache (``config.loadcache``), with what it read recorded."""
        if not loadcache.recording():
            return self._load(on_state_dir)
        inputs.start()
        try:
            project = self._load(on_state_dir)
        finally:
            recorded = inputs.stop()
        if loadcache.pending is not None:
            from unistack.config.model import to_json

            loadcache.pending.loaded(recorded, str(project.state_dir), project.name, list(project.services))
            loadcache.pending.outputs[PROJECT_OUTPUT] = to_json(project).decode()  # for backup and restore after
        return project

    def reload(self, overrides: Mapping[str, str]) -> Project:
        """The project loaded again with ``overrides`` set over the OS environment (not kept as ``project()``)."""
        return self._load(None, overrides)

    def _load(self, on_state_dir: Callable[[Path], None] | None, overrides: Mapping[str, str] | None = None) -> Project:
        files, cwd = self._where()
        return config.load(
            files,
            env={**os.environ, **overrides} if overrides else None,
            project_name=self.project_name,
            env_name=self.env_name,
            env_files=self.env_files or None,
            profiles=self.profiles,
            cwd=cwd,
            on_state_dir=on_state_dir,
        )

    def _where(self) -> tuple[Sequence[str] | None, Path | None]:
        """The files asked for, and the folder to look from (the launcher's default folder when none is above)."""
        files: Sequence[str] | None = self.files or None
        default_dir = os.environ.get("UNISTACK_DEFAULT_DIR")
        if files is None and default_dir and not compose_file_above(Path.cwd()):
            return files, Path(default_dir)
        return files, None

    def _project_or_saved(self, on_state_dir: Callable[[Path], None] | None) -> Project:
        named: list[Path] = []

        def seen(path: Path) -> None:
            named.append(path)
            if on_state_dir is not None:
                on_state_dir(path)

        try:
            return self.project(seen)
        except ConfigError as exc:
            files, cwd = self._where()
            state_dir = (
                named[0]
                if named
                else config.find_state_dir(
                    files,
                    project_name=self.project_name,
                    env_name=self.env_name,
                    env_files=self.env_files or None,
                    cwd=cwd,
                )
            )
            saved = saved_project(state_dir) if state_dir is not None else None
            if saved is None:
                raise
            why = exc.problems[0].message.rstrip(".") if exc.problems else "it has problems"
            if exc.problems and exc.problems[0].variable is not None:
                why = f"{exc.problems[0].variable} is not set"
            more = f" and {len(exc.problems) - 1} more" if len(exc.problems) > 1 else ""
            self.files_problem = f"the configuration does not load ({why}{more})"
            Printer([], stream=sys.stderr).say(f"{self.files_problem}; using the one {saved.name} was started with")
            return saved

    def runtime_name(self) -> RuntimeName:
        """The runtime asked for; with ``auto``, the one this instance already runs on, else the one the file can
        run on (``runtimes.choose_runtime``; why: ``runtime_reason``)."""
        if self._runtime_name is None:
            if self.runtime == PROCESS:  # nothing to detect: no need to import the runtime drivers (and asyncio)
                return PROCESS
            from unistack.runtimes import answering_engine, choose_runtime, resolve_runtime_name

            if self.runtime != "auto":
                self._runtime_name = resolve_runtime_name(self.runtime)
                return self._runtime_name
            project = self.project()
            recorded = (state.read_state(project.state_dir) or {}).get("runtime")
            if recorded in (PROCESS, DOCKER):
                self._runtime_name = resolve_runtime_name(recorded)
                self.runtime_reason = f"{project.name} runs on it until `unistack down`"
            else:
                choice = choose_runtime(project, answering_engine)
                self._runtime_name, self.runtime_reason = choice.name, choice.reason
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


def saved_project(state_dir: Path) -> Project | None:
    """The project a running instance was started with (``project.json``), or None when none runs."""
    try:
        running = state.daemon_alive(state_dir) or bool((state.read_state(state_dir) or {}).get("up"))
        if not running:
            return None
        text = state.project_file(state_dir).read_bytes()
    except (OSError, StateError):
        return None
    from unistack.config.model import project_from_json

    try:
        return project_from_json(text)
    except ValueError:
        return None


def compose_file_above(folder: Path) -> bool:
    names = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")
    return any(inputs.is_file(d / n) for d in (folder, *folder.parents) for n in names)


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
