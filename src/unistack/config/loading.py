"""``load``: Compose files in, one validated ``Project`` out, as a list of named steps.

The steps (``STEPS``) run in order on one ``Loading`` record: discover files -> read env files -> read YAML ->
name the project -> interpolate -> schema -> include -> merge overlays -> extends -> profiles -> normalise -> check ->
build the model. Steps that cannot go on without their input (a missing file, bad YAML, missing variables)
raise at once; the others collect problems, and ``build_model`` raises one ConfigError listing them all.
Never prints, never exits, never writes files. The model (msgspec) is imported only by the last step.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from unistack.config import discover, inputs
from unistack.config.checks import run_checks
from unistack.config.composition import apply_extends, apply_includes, apply_profiles
from unistack.config.envfile import read_env_file_lines
from unistack.config.interpolation import (
    InterpolationError,
    MissingVariables,
    interpolate,
    interpolate_tree,
)
from unistack.config.merging import merge
from unistack.config.normalize import Normalizer
from unistack.config.sources import VariableSource
from unistack.config.yamlfile import Locations, YamlDocument, read_yaml_file, strip_markers
from unistack.errors import ConfigError, Problem

if TYPE_CHECKING:
    from unistack.config.model import Project


@dataclass
class Loading:
    """What the caller asked for, and what each step has found so far."""

    requested_files: list[Path] | None
    os_env: dict[str, str]
    project_name: str | None
    env_name: str
    requested_env_files: list[Path] | None
    requested_profiles: list[str]
    cwd: Path
    files: list[Path] = field(default_factory=list)
    project_dir: Path = Path()
    env_file: Path | None = None  # environments/NAME.env
    variables: dict[str, str] = field(default_factory=dict)
    documents: list[YamlDocument] = field(default_factory=list)
    locations: Locations = field(default_factory=Locations)
    name: str = ""
    state_dir: Path = Path()
    data: list[dict[str, Any]] = field(default_factory=list)
    doc: dict[str, Any] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    project: Project | None = None
    lenient: bool = False  # required variables that are not set: a marker value and ``missing_problems``
    env_paths: list[Path] = field(default_factory=list)  # the env files read, in order
    variable_sources: dict[str, VariableSource] = field(default_factory=dict)  # shell, env file:line, unistack
    missing: MissingVariables = field(default_factory=MissingVariables)
    missing_problems: list[Problem] = field(default_factory=list)  # one per required variable not set (lenient)


_SHELL = VariableSource("shell")
_UNISTACK = VariableSource("unistack")


def discover_files(s: Loading) -> None:
    if s.requested_files:
        s.files = [p if p.is_absolute() else s.cwd / p for p in s.requested_files]
        missing = [p for p in s.files if not inputs.is_file(p)]
        if missing:
            raise ConfigError(
                [Problem(f"compose file {p} does not exist.", file=p, fix="check the -f path.") for p in missing]
            )
    else:
        main = discover.find_compose_file(s.cwd)
        s.files = [main, *discover.override_files(main)]
    s.project_dir = s.files[0].parent
    s.env_file, overlay = discover.environment_files(s.files[0], s.env_name)
    if overlay is not None and overlay not in s.files:
        s.files.append(overlay)


def read_env(s: Loading) -> None:
    if s.requested_env_files is not None:
        paths = [p if p.is_absolute() else s.cwd / p for p in s.requested_env_files]
    else:
        default = s.project_dir / ".env"
        paths = [default] if inputs.is_file(default) else []
    if s.env_file is not None:
        paths.append(s.env_file)
    values: dict[str, str] = {}
    sources: dict[str, VariableSource] = {}
    for path in paths:
        found, lines = read_env_file_lines(path, {**values, **s.os_env})
        values.update(found)
        for key in found:
            sources[key] = VariableSource("file", path, lines.get(key))
    s.env_paths = paths
    s.variables = {**values, **s.os_env}
    sources.update(dict.fromkeys(s.os_env, _SHELL))  # the shell wins over the files
    s.variable_sources = sources


def read_yaml(s: Loading) -> None:
    problems: list[Problem] = []
    for path in s.files:
        try:
            s.documents.append(read_yaml_file(path))
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    for document in s.documents:
        s.locations.add(document.path, document.lines)


def name_project(s: Loading) -> None:
    if s.project_name is not None:
        s.name = discover.check_project_name(s.project_name, "-p")
    elif s.variables.get("COMPOSE_PROJECT_NAME"):
        s.name = discover.check_project_name(s.variables["COMPOSE_PROJECT_NAME"], "COMPOSE_PROJECT_NAME")
    else:
        named = [d for d in s.documents if d.data.get("name") is not None]
        if named:
            document = named[-1]
            try:
                raw = interpolate(str(strip_markers(document.data["name"])), s.variables)
            except InterpolationError as exc:
                raise ConfigError(
                    Problem(exc.message + ".", file=document.path, line=document.lines.get(("name",)), key="name")
                ) from None
            s.name = discover.check_project_name(raw, f"name: in {document.path}", document.path)
        else:
            s.name = discover.normalize_project_name(s.project_dir.name)
            if not s.name:
                raise ConfigError(
                    Problem(
                        f"cannot make a project name from the folder name {s.project_dir.name!r}.",
                        file=s.files[0],
                        fix="add 'name: myproject' to the compose file or pass -p NAME.",
                    )
                )
    s.state_dir = discover.state_dir(s.project_dir, s.name, s.variables)
    given = s.variables
    s.variables = discover.unistack_variables(s.name, s.env_name, s.state_dir, s.variables)
    for key, value in s.variables.items():
        if key.startswith("UNISTACK_") and given.get(key) != value:
            s.variable_sources[key] = _UNISTACK


def interpolate_documents(s: Loading) -> None:
    problems: list[Problem] = []
    for document in s.documents:
        locations = Locations()
        locations.add(document.path, document.lines)
        try:
            s.data.append(interpolate_tree(document.data, s.variables, locations=locations, missing=s.missing))
        except ConfigError as exc:
            problems.extend(exc.problems)
    if s.missing.required:
        s.missing_problems = s.missing.problems(s.project_dir, lambda name: _set_it(s, name))
        if not s.lenient:
            problems = [*s.missing_problems, *problems]
    if problems:
        raise ConfigError(problems)


def validate_schema(s: Loading) -> None:
    """Each file as written (interpolated, before any merge) against the Compose schema, as Compose does."""
    from unistack.config.schema import validate

    for index, (document, data) in enumerate(zip(s.documents, s.data, strict=True)):
        locations = Locations()
        locations.add(document.path, document.lines)
        plain = strip_markers(data)
        problems = validate(plain, locations)
        if problems:  # reported with everything else; the rest of the file (the faulty values left out) goes on
            s.problems.extend(problems)
            s.data[index] = plain


def _set_it(s: Loading, name: str) -> str:
    """How to set a variable: in the environment's env file (else the last env file read, else .env) or the shell."""
    target = s.env_file or (s.env_paths[-1] if s.env_paths else s.project_dir / ".env")
    shown = target.relative_to(s.project_dir) if target.is_relative_to(s.project_dir) else target
    return f"set {name} in {shown} or your shell"


def include(s: Loading) -> None:
    """The included files (schema-checked as the top-level files are) added to each top-level file."""
    for document, data in zip(s.documents, s.data, strict=True):
        base_dir = document.path.parent if document.path else s.project_dir
        try:
            apply_includes(data, base_dir=base_dir, variables=s.variables, locations=s.locations, problems=s.problems)
        except ConfigError as exc:  # cannot go on: with what was found so far
            raise ConfigError(_unique([*s.problems, *exc.problems])) from None


def merge_overlays(s: Loading) -> None:
    doc = strip_markers(s.data[0])
    for overlay in s.data[1:]:
        doc = merge(doc, overlay)
    s.doc = doc


def extends(s: Loading) -> None:
    """Every ``extends`` resolved; the services extended from other files schema-checked as they are written."""
    try:
        apply_extends(s.doc, base_dir=s.project_dir, variables=s.variables, locations=s.locations, problems=s.problems)
    except ConfigError as exc:  # cannot go on: with what was found so far
        raise ConfigError(_unique([*s.problems, *exc.problems])) from None


def profiles(s: Loading) -> None:
    wanted = set(s.requested_profiles)
    if not wanted:
        wanted = {p.strip() for p in s.variables.get("COMPOSE_PROFILES", "").split(",") if p.strip()}
    if not isinstance(s.doc.get("services"), dict):
        return
    s.doc, problems = apply_profiles(s.doc, wanted, s.locations)
    s.problems.extend(problems)


def normalise(s: Loading) -> None:
    services = s.doc.get("services")
    if services is None:
        services = {}
    if not isinstance(services, dict):
        s.problems.append(s.locations.problem(("services",), "services must be a mapping of service names."))
        services = {}
    normalizer = Normalizer(s.locations, s.project_dir, s.variables)
    s.doc["services"] = {str(name): normalizer.service(str(name), spec) for name, spec in services.items()}
    for section in ("volumes", "networks", "secrets", "configs"):
        value = s.doc.get(section)
        if value is None:
            continue
        if not isinstance(value, dict):
            s.problems.append(s.locations.problem((section,), f"{section} must be a mapping of names."))
            s.doc[section] = {}
        else:
            for key in [k for k, v in value.items() if v is not None and not isinstance(v, dict)]:
                # names the schema's pattern does not cover (``a:b``) are not checked by it
                s.problems.append(s.locations.problem((section, key), f"{section}.{key} must be a mapping or empty."))
                del value[key]
            s.doc[section] = normalizer.resources(
                section, {str(k): (v if v is not None else {}) for k, v in value.items()}
            )
    s.doc["name"] = s.name
    s.problems.extend(normalizer.problems)


def check(s: Loading) -> None:
    s.problems.extend(run_checks(s.doc, s.locations))


def build_model(s: Loading) -> None:
    from unistack.config.build import ProjectBuilder
    from unistack.config.model import check

    builder = ProjectBuilder(s.locations, s.project_dir, s.variables)
    project = builder.project(
        s.doc,
        name=s.name,
        environment=s.env_name,
        working_dir=s.project_dir,
        files=tuple(s.files),
        state_dir=s.state_dir,
    )
    problems = [*s.problems, *builder.problems]
    if not problems and (wrong := check(project)):  # what the builder's own checks let through
        problems.append(Problem(f"invalid configuration: {wrong}.", file=s.files[0]))
    if problems:
        raise ConfigError(_unique(problems))
    s.project = project


def _unique(problems: list[Problem]) -> list[Problem]:
    """Without repeats, in file and line order (so the user can walk down the file)."""
    return sorted(dict.fromkeys(problems), key=lambda p: (str(p.file or ""), p.line or 0))


STEPS: list[Callable[[Loading], None]] = [
    discover_files,
    read_env,
    read_yaml,
    name_project,
    interpolate_documents,
    validate_schema,
    include,
    merge_overlays,
    extends,
    profiles,
    normalise,
    check,
    build_model,
]


def start(
    files: Sequence[str | Path] | None,
    env: Mapping[str, str] | None,
    project_name: str | None,
    env_name: str | None,
    env_files: Sequence[str | Path] | None,
    profiles: Sequence[str],
    cwd: Path | None,
) -> Loading:
    """The record the steps work on, for what the caller asked (``load``'s arguments; ``examining`` uses it too)."""
    os_env = dict(os.environ if env is None else env)
    return Loading(
        requested_files=[Path(f) for f in files] if files else None,
        os_env=os_env,
        project_name=project_name,
        env_name=env_name or os_env.get("UNISTACK_ENV") or discover.DEFAULT_ENV,
        requested_env_files=[Path(f) for f in env_files] if env_files is not None else None,
        requested_profiles=list(profiles),
        cwd=Path(inputs.resolved(cwd or Path.cwd())),
    )


def run_steps(state: Loading, on_state_dir: Callable[[Path], None] | None) -> None:
    """Every step in order; ``on_state_dir`` is told the instance's state folder once the project is named."""
    for step in STEPS:
        step(state)
        if step is name_project and on_state_dir is not None:
            on_state_dir(state.state_dir)


def load(
    files: Sequence[str | Path] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    project_name: str | None = None,
    env_name: str | None = None,
    env_files: Sequence[str | Path] | None = None,
    profiles: Sequence[str] = (),
    cwd: Path | None = None,
    on_state_dir: Callable[[Path], None] | None = None,
) -> Project:
    """Load a project from Compose files (default: the nearest compose.yaml from ``cwd`` upward).

    ``env`` is the OS environment (default os.environ); it wins over env files. ``env_name`` is the
    environment (``--env``; default UNISTACK_ENV or "local"); ``env_files`` replace the project's ``.env``.
    ``on_state_dir`` is called with the instance's state folder as soon as it is known (once the files are
    read and the project is named), before the rest is checked; it must not create anything, since the
    configuration may still turn out to be invalid. Raises ConfigError listing every problem found.
    """
    state = start(files, env, project_name, env_name, env_files, profiles, cwd)
    run_steps(state, on_state_dir)
    assert state.project is not None
    return state.project
