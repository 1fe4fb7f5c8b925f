"""Loading that also tells: ``examine`` and ``load_detailed`` load as ``load`` does and record where every value
came from (``Loaded``: each variable's source, each use of a variable, the file and line whose value won), with
missing required variables optionally left as markers so that environments can be compared anyway; and
``find_state_dir``, the instance's state folder as far as files that no longer load can tell it. The same named
steps as ``load`` (``loading.STEPS``); never prints, never writes, never raises for a configuration that does
not load (``load_detailed`` does, on request).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from unistack.config import discover
from unistack.config.interpolation import VariableUse, variable_uses
from unistack.config.loading import Loading, discover_files, name_project, read_env, read_yaml, run_steps, start
from unistack.config.sources import Loaded, VariableSource
from unistack.config.yamlfile import Locations
from unistack.errors import ConfigError, Problem


def find_state_dir(
    files: Sequence[str | Path] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    project_name: str | None = None,
    env_name: str | None = None,
    env_files: Sequence[str | Path] | None = None,
    cwd: Path | None = None,
) -> Path | None:
    """The instance's state folder as far as it can be told when the files do not load (a compose file or an
    environment's files deleted, an env file that does not parse, bad YAML): the project's folder is the first
    file's (or the nearest compose file's, else ``cwd``), and its name ``-p``, else COMPOSE_PROJECT_NAME (the
    shell, then the env files that still read), else ``name:`` of the files that still parse, else the folder's
    name. None when even that cannot be told. Never raises ConfigError, never creates anything."""
    s = start(files, env, project_name, env_name, env_files, (), cwd)
    try:
        discover_files(s)
    except ConfigError:
        if s.project_dir == Path():
            first = s.requested_files[0] if s.requested_files else None
            if first is not None:
                s.project_dir = (first if first.is_absolute() else s.cwd / first).parent
            else:
                folder = next((d for d in (s.cwd, *s.cwd.parents) if _has_compose_file(d)), s.cwd)
                s.project_dir = folder
        s.files = [f for f in s.files if f.is_file()]
        env_file = s.project_dir / "environments" / f"{s.env_name}.env"
        s.env_file = env_file if env_file.is_file() else None
    try:
        read_env(s)
    except ConfigError:
        s.variables = dict(s.os_env)
    with contextlib.suppress(ConfigError):  # the files that still parse may name the project
        read_yaml(s)
    if not s.files:
        s.files = [s.project_dir / discover.COMPOSE_NAMES[0]]
    try:
        name_project(s)
    except ConfigError:
        return None
    return s.state_dir


def _has_compose_file(folder: Path) -> bool:
    return any((folder / name).is_file() for name in discover.COMPOSE_NAMES)


def examine(
    files: Sequence[str | Path] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    project_name: str | None = None,
    env_name: str | None = None,
    env_files: Sequence[str | Path] | None = None,
    profiles: Sequence[str] = (),
    cwd: Path | None = None,
    lenient: bool = True,
    on_state_dir: Callable[[Path], None] | None = None,
) -> Loaded:
    """Load as ``load`` does, and say where every value came from; never raises ConfigError.

    The result's ``project`` is None when the configuration does not load, and ``problems`` says why. With
    ``lenient``, a required variable that is not set does not stop the loading: its value becomes a marker
    (``<NAME not set>``) and it is listed in ``missing``, one Problem per variable.
    """
    state = start(files, env, project_name, env_name, env_files, profiles, cwd)
    state.lenient = lenient
    problems: list[Problem] = []
    try:
        run_steps(state, on_state_dir)
    except ConfigError as exc:
        problems = exc.problems
    if state.lenient and state.missing_problems and problems:
        problems = [*state.missing_problems, *problems]
    return _loaded(state, problems)


def load_detailed(
    files: Sequence[str | Path] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    project_name: str | None = None,
    env_name: str | None = None,
    env_files: Sequence[str | Path] | None = None,
    profiles: Sequence[str] = (),
    cwd: Path | None = None,
    lenient: bool = False,
) -> Loaded:
    """``examine``, raising ConfigError when the configuration does not load (``lenient``: missing required
    variables do not count, they are in ``missing``)."""
    loaded = examine(
        files,
        env=env,
        project_name=project_name,
        env_name=env_name,
        env_files=env_files,
        profiles=profiles,
        cwd=cwd,
        lenient=lenient,
    )
    loaded.checked()
    return loaded


def _loaded(s: Loading, problems: list[Problem]) -> Loaded:
    uses: list[VariableUse] = []
    for document in s.documents:
        locations = Locations()
        locations.add(document.path, document.lines)
        uses.extend(variable_uses(document.data, locations))
    sources = dict(s.variable_sources)
    for use in uses:
        if use.has_default and use.variable not in sources:
            sources[use.variable] = VariableSource("default", use.file, use.line)
    return Loaded(
        project=s.project,
        env_name=s.env_name,
        project_dir=s.project_dir,
        files=list(s.files),
        env_files=list(s.env_paths),
        variables=dict(s.variables),
        variable_sources=sources,
        uses=uses,
        locations=s.locations,
        missing=list(s.missing_problems),
        problems=list(problems),
        state_dir=s.state_dir if s.name else None,
        name=s.name,
    )
