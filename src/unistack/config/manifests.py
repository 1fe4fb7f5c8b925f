"""``x-unistack.dependencies``: the files a service's dependencies are declared in, and how to install them into the
running service when one changes (development only).

Owns reading the key into a ``DependencySpec``: ``manifests`` (each a path relative to the compose file, or
``{path, target}`` with the absolute path of the container's copy), ``install`` (a list or a string, as
``x-unistack.process.setup``) and ``timeout``; every problem is collected with its place. Also owns refusing the
key in the ``production`` environment: a production service is never changed under its feet. What each runtime
needs (a setup step or ``install``, targets for containers) is checked by ``runtime_problems``. Never reads the
files it names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from unistack.config.formats import resolve_path
from unistack.config.model import DependencySpec, Manifest
from unistack.config.yamlfile import KeyPath
from unistack.errors import Problem

if TYPE_CHECKING:
    from unistack.config.model import Project, Service

PRODUCTION = "production"
KEYS = ("manifests", "install", "timeout")
DEFAULT_TIMEOUT = 600.0
SHAPE = (
    "write manifests: [./backend/pyproject.toml] (or - {path: ..., target: /app/pyproject.toml}) and install: [...]."
)


@dataclass
class DependencyReader:
    """Reads one service's ``x-unistack.dependencies``; problems go to ``problem(key, message, fix)``."""

    problem: Callable[[KeyPath, str, str | None], None]
    duration: Callable[[KeyPath, Any, float], float]
    project_dir: Path

    def read(self, where: KeyPath, spec: Mapping[str, Any]) -> DependencySpec | None:
        extension = spec.get("x-unistack")
        if not isinstance(extension, Mapping) or extension.get("dependencies") is None:
            return None
        key: KeyPath = (*where, "x-unistack", "dependencies")
        raw = extension["dependencies"]
        if not isinstance(raw, Mapping):
            self.problem(key, "x-unistack.dependencies must be a mapping.", SHAPE)
            return None
        for name in sorted(str(k) for k in raw if k not in KEYS):
            import difflib  # only for a misspelt key: not imported by every command

            close = difflib.get_close_matches(name, KEYS, n=1, cutoff=0.6)
            fix = f"did you mean {close[0]!r}?" if close else "use manifests, install or timeout."
            self.problem((*key, name), f"unknown x-unistack.dependencies key {name!r}.", fix)
        manifests = self._manifests((*key, "manifests"), raw.get("manifests"))
        install: tuple[str, ...] = ()
        if raw.get("install") is not None:
            install = command(raw["install"]) or ()
            if not install:
                self.problem((*key, "install"), "x-unistack.dependencies.install must be a list or a string.", None)
        timeout = self.duration((*key, "timeout"), raw.get("timeout"), DEFAULT_TIMEOUT)
        if not manifests:
            return None
        return DependencySpec(manifests=manifests, install=install, timeout=timeout)

    def _manifests(self, key: KeyPath, value: Any) -> tuple[Manifest, ...]:
        if not isinstance(value, list) or not value:
            self.problem(key, "x-unistack.dependencies.manifests must be a list of files.", SHAPE)
            return ()
        found: dict[Path, Manifest] = {}
        for index, entry in enumerate(value):
            where: KeyPath = (*key, index)
            path, target = (entry, None) if isinstance(entry, str) else (None, None)
            if isinstance(entry, Mapping):
                path, target = entry.get("path"), entry.get("target")
                for name in sorted(str(k) for k in entry if k not in ("path", "target")):
                    self.problem((*where, name), f"unknown manifest key {name!r}.", "use path and target.")
            if not isinstance(path, str) or not path.strip():
                self.problem(where, "a manifest is a file path, or a mapping with path (and target).", SHAPE)
                continue
            if target is not None and (not isinstance(target, str) or not PurePosixPath(target).is_absolute()):
                self.problem(
                    (*where, "target"),
                    f"target {target!r} is not an absolute path.",
                    "give the path of the container's copy of the file, e.g. /app/pyproject.toml.",
                )
                continue
            resolved = resolve_path(path, self.project_dir)
            found[resolved] = Manifest(path=resolved, target=target)
        return tuple(found.values())


def refuse_in_production(
    environment: str | None, services: Mapping[str, Service], problem: Callable[[KeyPath, str, str | None], None]
) -> None:
    """Installing into running services is for development: the production environment refuses the key."""
    if environment != PRODUCTION:
        return
    for name, service in services.items():
        if service.dependencies is not None:
            problem(
                ("services", name, "x-unistack", "dependencies"),
                f"service {name!r} declares x-unistack.dependencies, which installs into the running service: the "
                "production environment never changes a service under its feet.",
                "declare it in a development overlay (compose.local.yaml), which production does not load.",
            )


def runtime_problems(project: Project, containers: bool) -> list[Problem]:
    """What stops the services' dependency installs on this runtime: a host process needs a setup step or
    ``install``; a container needs ``install`` and a ``target`` for each manifest (where its copy goes)."""
    file = project.files[0] if project.files else None
    problems = []
    for name, service in project.services.items():
        deps = service.dependencies
        if deps is None:
            continue
        key = f"services.{name}.x-unistack.dependencies"
        if not containers and not deps.install and not (service.process and service.process.setup):
            problems.append(
                Problem(
                    f"service {name!r} declares x-unistack.dependencies but nothing installs them as a host process.",
                    file=file,
                    key=f"{key}.install",
                    fix="give it x-unistack.process.setup (an installer that does only what changed) or "
                    "x-unistack.dependencies.install.",
                )
            )
        if containers and not deps.install:
            problems.append(
                Problem(
                    f"service {name!r} declares x-unistack.dependencies without install, the command that installs "
                    "them inside its running container.",
                    file=file,
                    key=f"{key}.install",
                    fix='add install: [...], e.g. ["npm", "install"] or [".venv/bin/pip", "install", "-r", '
                    '"requirements.txt"].',
                )
            )
        if containers:
            problems.extend(
                Problem(
                    f"service {name!r}: manifest {_shown(project, m.path)} has no target, the path of the "
                    "container's copy that the install reads.",
                    file=file,
                    key=f"{key}.manifests[{index}]",
                    fix="write it as {path: ..., target: /app/...}.",
                )
                for index, m in enumerate(deps.manifests)
                if m.target is None
            )
    return problems


def command(value: Any) -> tuple[str, ...] | None:
    """A list is argv; a string runs with /bin/sh -c (as ``x-unistack.process`` commands)."""
    if isinstance(value, str) and value.strip():
        return ("/bin/sh", "-c", value)
    if isinstance(value, list) and value and all(isinstance(v, str | int | float) for v in value):
        return tuple(str(v) for v in value)
    return None


def _shown(project: Project, path: Path) -> str:
    try:
        return "./" + path.relative_to(project.working_dir).as_posix()
    except ValueError:
        return str(path)
