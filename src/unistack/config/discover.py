"""Finding what to load: compose files, overlays, env files, the project name and unistack's variables.

Owns the file-name conventions (``compose.yaml`` found from the current folder upward, ``compose.override.yaml``,
``compose.NAME.yaml`` and ``environments/NAME.env`` for ``--env NAME``), the project-name rules (``-p``,
``COMPOSE_PROJECT_NAME``, ``name:``, else the folder name normalised as Compose does) and the variables
unistack provides (``UNISTACK_PROJECT``, ``UNISTACK_ENV``, ``UNISTACK_STATE_DIR``, ``UNISTACK_RUN_DIR``,
``UNISTACK_VOLUMES_DIR``). Never parses Compose content beyond reading the ``name:`` key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from unistack.config import inputs
from unistack.errors import ConfigError, Problem

COMPOSE_NAMES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")
DEFAULT_ENV = "local"
_VALID_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")


def find_compose_file(cwd: Path) -> Path:
    """The nearest compose file from ``cwd`` upward; a ConfigError naming where we looked if none."""
    for folder in (cwd, *cwd.parents):
        for name in COMPOSE_NAMES:
            candidate = folder / name
            if inputs.is_file(candidate):
                return candidate
    raise ConfigError(
        Problem(
            f"no compose file ({', '.join(COMPOSE_NAMES)}) in {cwd} or any folder above it.",
            file=cwd,
            fix="run in a folder with compose.yaml or pass -f FILE.",
        )
    )


def override_files(main: Path) -> list[Path]:
    """``compose.override.yaml`` (or ``.yml``) beside ``main``, if present."""
    stem = main.name.rsplit(".", 1)[0]
    for suffix in ("yaml", "yml"):
        candidate = main.parent / f"{stem}.override.{suffix}"
        if inputs.is_file(candidate):
            return [candidate]
    return []


def environment_files(first: Path, env_name: str) -> tuple[Path | None, Path | None]:
    """``(environments/NAME.env, compose.NAME.yaml)`` beside ``first``; each None when absent.

    For an environment other than the default, at least one must exist (a typo in ``--env`` is an error).
    """
    folder = first.parent
    env_file = folder / "environments" / f"{env_name}.env"
    stem = first.name.rsplit(".", 1)[0]
    names = [f"{stem}.{env_name}.yaml", f"{stem}.{env_name}.yml", f"compose.{env_name}.yaml", f"compose.{env_name}.yml"]
    overlay = next((folder / n for n in dict.fromkeys(names) if inputs.is_file(folder / n)), None)
    found_env = env_file if inputs.is_file(env_file) else None
    if env_name != DEFAULT_ENV and found_env is None and overlay is None:
        raise ConfigError(
            Problem(
                f"environment {env_name!r} is not defined: neither {env_file} nor {folder / names[0]} exists.",
                file=first,
                fix=f"create one of them, or choose another --env (UNISTACK_ENV); the default is {DEFAULT_ENV!r}.",
            )
        )
    if not _valid_env_name(env_name):
        raise ConfigError(Problem(f"environment name {env_name!r} is not valid.", fix="use letters, digits, '-', '_'."))
    return found_env, overlay


def _valid_env_name(name: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name))


def normalize_project_name(text: str) -> str:
    """A folder name as Compose turns it into a project name: lowercase, only [a-z0-9_-], starting alnum."""
    name = re.sub(r"[^a-z0-9_-]", "", text.lower())
    return name.lstrip("_-")


def check_project_name(name: str, origin: str, file: Path | None = None) -> str:
    """``name`` if valid, else a ConfigError saying where it came from and what is allowed."""
    if not _VALID_NAME.fullmatch(name):
        raise ConfigError(
            Problem(
                f"project name {name!r} (from {origin}) is not valid.",
                file=file,
                fix="use lowercase letters, digits, '-' and '_', starting with a letter or digit.",
            )
        )
    return name


def state_dir(project_dir: Path, name: str, variables: Mapping[str, str]) -> Path:
    """``<project dir>/.unistack/<name>``; a set ``UNISTACK_STATE_DIR`` names the parent folder instead."""
    parent = variables.get("UNISTACK_STATE_DIR")
    base = Path(parent).expanduser() if parent else project_dir / ".unistack"
    if not base.is_absolute():
        base = project_dir / base
    return base / name


def unistack_variables(name: str, env_name: str, state: Path, variables: Mapping[str, str]) -> dict[str, str]:
    """The interpolation variables unistack provides, layered over ``variables``.

    ``UNISTACK_PROJECT``, ``UNISTACK_ENV`` and ``UNISTACK_STATE_DIR`` are always ours; ``UNISTACK_RUN_DIR``
    and ``UNISTACK_VOLUMES_DIR`` keep a value the user set explicitly.
    """
    result = dict(variables)
    result["UNISTACK_PROJECT"] = name
    result["UNISTACK_ENV"] = env_name
    result["UNISTACK_STATE_DIR"] = str(state)
    result.setdefault("UNISTACK_RUN_DIR", str(state / "run"))
    result.setdefault("UNISTACK_VOLUMES_DIR", str(state / "volumes"))
    return result
