"""Documents built from other documents: top-level ``include``, service-level ``extends``, and ``profiles``.

Owns loading included Compose files as sub-projects (their own folder and env file, relative paths rebased onto
it) and adding their resources without silently overriding ours; resolving ``extends`` chains (same file or
``file:``) with the override merge rules; and keeping only the services whose profiles are enabled. The files
they name are checked against the Compose schema as the top-level files are (``schema.validate``, each with its
own name and lines): an included file whole, an extended file's services that are extended (as Compose, which
never looks at the rest of it); the violations go to the caller's ``problems`` and the values at fault are left
out, so loading goes on. Never parses value formats (normalize) or builds the model (build).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from unistack.config import inputs
from unistack.config.envfile import read_env_file
from unistack.config.formats import resolve_path
from unistack.config.interpolation import interpolate_tree
from unistack.config.merging import merge
from unistack.config.yamlfile import KeyPath, Locations, read_yaml_file, strip_markers
from unistack.errors import ConfigError, Problem

RESOURCE_SECTIONS = ("services", "volumes", "networks", "secrets", "configs", "models")


def schema_checked(data: dict[str, Any], path: Path, lines: dict[KeyPath, int], problems: list[Problem]) -> Any:
    """``data`` (one file, interpolated) against the Compose schema, its violations located in ``path`` and added to
    ``problems``; what to go on with: ``data`` itself when valid, else its plain copy with the values at fault left
    out (as ``loading.validate_schema`` does for the top-level files)."""
    from unistack.config.schema import validate

    locations = Locations()
    locations.add(path, lines)
    plain = strip_markers(data)
    found = validate(plain, locations)
    if not found:
        return data
    problems.extend(found)
    return plain


def _is_path(text: str) -> bool:
    return text.startswith((".", "/", "~"))


def _absolute(text: Any, base_dir: Path) -> Any:
    return str(resolve_path(text, base_dir)) if isinstance(text, str) else text


def rebase(doc: dict[str, Any], base_dir: Path) -> dict[str, Any]:
    """Make the relative paths of a document absolute against ``base_dir`` (for included/extended files)."""
    for spec in (doc.get("services") or {}).values():
        if isinstance(spec, dict):
            rebase_service(spec, base_dir)
    for section in ("secrets", "configs"):
        for resource in (doc.get(section) or {}).values():
            if isinstance(resource, dict) and "file" in resource:
                resource["file"] = _absolute(resource["file"], base_dir)
    return doc


def rebase_service(spec: dict[str, Any], base_dir: Path) -> None:
    build = spec.get("build")
    if isinstance(build, str):
        spec["build"] = _absolute(build, base_dir)
    elif isinstance(build, dict) and isinstance(build.get("context"), str) and "://" not in build["context"]:
        build["context"] = _absolute(build["context"], base_dir)
    volumes = spec.get("volumes")
    if isinstance(volumes, list):
        for index, volume in enumerate(volumes):
            if isinstance(volume, str) and _is_path(volume) and ":" in volume:
                source, _, rest = volume.partition(":")
                volumes[index] = f"{_absolute(source, base_dir)}:{rest}"
            elif isinstance(volume, dict) and volume.get("type") == "bind" and "source" in volume:
                volume["source"] = _absolute(volume["source"], base_dir)
    env_file = spec.get("env_file")
    if isinstance(env_file, str):
        spec["env_file"] = _absolute(env_file, base_dir)
    elif isinstance(env_file, list):
        spec["env_file"] = [
            {**e, "path": _absolute(e.get("path"), base_dir)} if isinstance(e, dict) else _absolute(e, base_dir)
            for e in env_file
        ]
    extends = spec.get("extends")
    if isinstance(extends, dict) and isinstance(extends.get("file"), str):
        extends["file"] = _absolute(extends["file"], base_dir)
    process = (spec.get("x-unistack") or {}).get("process") if isinstance(spec.get("x-unistack"), dict) else None
    if isinstance(process, dict) and isinstance(process.get("working_dir"), str):
        process["working_dir"] = _absolute(process["working_dir"], base_dir)


# --- include -------------------------------------------------------------------------------------------


def apply_includes(
    doc: dict[str, Any],
    *,
    base_dir: Path,
    variables: Mapping[str, str],
    locations: Locations,
    problems: list[Problem],
    seen: tuple[Path, ...] = (),
) -> dict[str, Any]:
    """Load every ``include`` entry as a sub-project and add its resources to ``doc``. The included files' schema
    violations go to ``problems``; the rest (a missing path, a cycle, a name defined twice) is raised together."""
    entries = doc.pop("include", None)
    if entries is None:
        return doc
    if not isinstance(entries, list):
        entries = [entries]
    refused: list[Problem] = []
    for index, entry in enumerate(entries):
        where = ("include", index)
        spec = {"path": entry} if isinstance(entry, str) else entry
        if not isinstance(spec, dict) or not spec.get("path"):
            refused.append(locations.problem(where, "an include entry needs a path.", "write - path/to/compose.yaml."))
            continue
        paths = [resolve_path(str(p), base_dir) for p in _as_list(spec["path"])]
        project_dir = (
            resolve_path(str(spec["project_directory"]), base_dir) if spec.get("project_directory") else paths[0].parent
        )
        if paths[0] in seen:
            chain = " -> ".join(str(p) for p in (*seen, paths[0]))
            refused.append(locations.problem(where, f"include cycle: {chain}.", "remove one of the includes."))
            continue
        env: dict[str, str] = {}
        env_files = [resolve_path(str(p), base_dir) for p in _as_list(spec.get("env_file"))]
        if not env_files and inputs.is_file(project_dir / ".env"):
            env_files = [project_dir / ".env"]
        for env_file in env_files:
            env.update(read_env_file(env_file, {**env, **variables}))
        sub_variables = {**env, **variables}
        included: dict[str, Any] = {}
        for path in paths:
            document = read_yaml_file(path)
            locations.add(path, document.lines, prefix=())
            data = interpolate_tree(document.data, sub_variables, locations=locations)
            data = schema_checked(data, path, document.lines, problems)
            data = apply_includes(
                data,
                base_dir=path.parent,
                variables=sub_variables,
                locations=locations,
                problems=problems,
                seen=(*seen, paths[0]),
            )
            included = merge(included, data) if included else strip_markers(data)
        included = rebase(included, project_dir)
        for section in RESOURCE_SECTIONS:
            for name, value in (included.get(section) or {}).items():
                if not isinstance(doc.get(section), dict):
                    doc[section] = {}
                ours = doc[section]
                if name in ours and ours[name] != value:
                    refused.append(
                        locations.problem(
                            (section, name),
                            f"{section}.{name} is defined here and also in included {paths[0]}.",
                            "rename one of them, or extend the included one with a compose override file.",
                        )
                    )
                    continue
                ours[name] = value
    if refused:
        raise ConfigError(refused)
    return doc


# --- extends -------------------------------------------------------------------------------------------


def apply_extends(
    doc: dict[str, Any],
    *,
    base_dir: Path,
    variables: Mapping[str, str],
    locations: Locations,
    problems: list[Problem],
) -> dict[str, Any]:
    """Resolve every service's ``extends`` chain in place. The schema violations of the services extended in other
    files go to ``problems``; the rest (a service not there, a cycle) is raised together."""
    services = doc.get("services") or {}
    refused: list[Problem] = []
    cache: dict[tuple[Path | None, str], dict[str, Any]] = {}
    files: dict[Path, tuple[dict[str, Any], dict[KeyPath, int]]] = {}
    extended: dict[tuple[Path, str], Any] = {}

    def from_file(path: Path, name: str) -> Any:
        """Service ``name`` of the file ``path``: schema-checked as written (all Compose checks of such a file),
        then its paths rebased onto the file's folder."""
        if (path, name) not in extended:
            if path not in files:
                document = read_yaml_file(path)
                files[path] = (strip_markers(interpolate_tree(document.data, variables)), document.lines)
            data, lines = files[path]
            pool = data.get("services")
            part = {"services": {name: pool[name]} if isinstance(pool, dict) and name in pool else pool}
            checked = schema_checked(part, path, lines, problems) if part["services"] is not None else part
            pool = checked.get("services")
            spec = pool.get(name) if isinstance(pool, dict) else None
            if isinstance(spec, dict):
                rebase_service(spec, path.parent)
            elif checked is not part:  # there, but the schema refused it (that problem is reported)
                spec = _REFUSED
            extended[(path, name)] = spec
        return extended[(path, name)]

    def resolve(file: Path | None, name: str, chain: tuple[str, ...]) -> dict[str, Any]:
        key = (file, name)
        if key in cache:
            return cache[key]
        spec = (services.get(name) if isinstance(services, dict) else None) if file is None else from_file(file, name)
        label = name if file is None else f"{name} ({file})"
        if spec is _REFUSED:
            raise _ExtendsError(
                f"service {chain[-1]!r} extends {label!r}, which is not valid (see the problem listed for that file)."
            )
        if not isinstance(spec, dict):
            raise _ExtendsError(f"service {chain[-1]!r} extends {label!r}, which does not exist.")
        if label in chain:
            raise _ExtendsError(f"extends cycle: {' -> '.join((*chain, label))}.")
        spec = dict(spec)
        extends = spec.pop("extends", None)
        if extends is not None:
            if isinstance(extends, str):
                extends = {"service": extends}
            if not isinstance(extends, dict) or "service" not in extends:
                raise _ExtendsError(f"service {label!r}: extends needs 'service' (and optionally 'file').")
            base_file = file
            if extends.get("file"):
                base_file = resolve_path(str(extends["file"]), base_dir if file is None else file.parent)
            base = resolve(base_file, str(extends["service"]), (*chain, label))
            spec = merge({"services": {"s": base}}, {"services": {"s": spec}})["services"]["s"]
        cache[key] = spec
        return spec

    for name in list(services):
        spec = services[name]
        if isinstance(spec, dict) and "extends" in spec:
            try:
                services[name] = resolve(None, name, ())
            except _ExtendsError as exc:
                refused.append(locations.problem(("services", name, "extends"), str(exc), "fix the extends entry."))
    if refused:
        raise ConfigError(refused)
    return doc


class _ExtendsError(Exception):
    pass


_REFUSED = object()  # a service extended from another file that the schema refused


# --- profiles ------------------------------------------------------------------------------------------


def apply_profiles(
    doc: dict[str, Any], profiles: set[str], locations: Locations
) -> tuple[dict[str, Any], list[Problem]]:
    """Drop services whose profiles are not enabled (``*`` enables all).

    A ``required`` dependency of an active service on a disabled one is a problem naming the profile to
    enable; a ``required: false`` one is dropped.
    """
    services = doc.get("services") or {}

    def active(spec: Any) -> bool:
        wanted = _as_list(spec.get("profiles")) if isinstance(spec, dict) else []
        return not wanted or "*" in profiles or any(str(p) in profiles for p in wanted)

    disabled = {name: spec for name, spec in services.items() if not active(spec)}
    problems: list[Problem] = []
    for name, spec in services.items():
        if name in disabled or not isinstance(spec, dict):
            continue
        depends_on = spec.get("depends_on")
        if isinstance(depends_on, list):
            depends_on = {str(d): None for d in depends_on}
        if not isinstance(depends_on, dict):
            continue
        for dep, options in list(depends_on.items()):
            if dep not in disabled:
                continue
            if (options or {}).get("required", True):
                needed = ", ".join(str(p) for p in _as_list(disabled[dep].get("profiles")))
                problems.append(
                    locations.problem(
                        ("services", name, "depends_on", dep),
                        f"service {name!r} depends on {dep!r}, which only runs with profile {needed}.",
                        f"enable it with --profile {needed.split(',')[0]} (or COMPOSE_PROFILES), "
                        "or mark the dependency 'required: false'.",
                    )
                )
            else:
                del spec["depends_on"][dep]
    doc["services"] = {name: spec for name, spec in services.items() if name not in disabled}
    return doc, problems


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]
