"""Where a loaded configuration's values came from: each variable's source and each key's winning file and line.

Owns the records ``config.load_detailed`` returns beside the project: ``VariableSource`` (your shell, an env file
and its line, a default in the template, or unistack itself), ``VariableUse`` (from ``interpolation``: a variable
used at a key path) and ``Loaded`` (the project, the sources, the uses, the key locations, the variables that
are not set). Never reads files: ``loading`` fills them in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from unistack.config.interpolation import VariableUse
from unistack.config.yamlfile import KeyPath, Locations
from unistack.errors import ConfigError, Problem

if TYPE_CHECKING:
    from unistack.config.model import Project

Origin = Literal["shell", "file", "default", "unistack"]


@dataclass(frozen=True)
class VariableSource:
    """Where a variable's value came from.

    ``shell``: the OS environment (it wins over env files); ``file``: an env file (``file``, ``line``);
    ``default``: not set anywhere, so the template's default applied (``file``, ``line`` of its first use);
    ``unistack``: one of the variables unistack provides (``UNISTACK_PROJECT``, ``UNISTACK_STATE_DIR``, ...).
    """

    origin: Origin
    file: Path | None = None
    line: int | None = None

    def describe(self, base: Path | None = None) -> str:
        """``your shell``, ``environments/staging.env:7``, ``its default in compose.yaml:226``, ``unistack``."""
        if self.origin == "shell":
            return "your shell"
        if self.origin == "unistack":
            return "unistack"
        where = _relative(self.file, base) + (f":{self.line}" if self.line is not None else "")
        return f"its default in {where}" if self.origin == "default" else where


def _relative(file: Path | None, base: Path | None) -> str:
    if file is None:
        return "?"
    if base is not None and file.is_relative_to(base):
        return str(file.relative_to(base))
    return str(file)


@dataclass
class Loaded:
    """A loaded configuration with where its values came from (``config.load_detailed``, ``config.examine``).

    ``project`` is None when the configuration does not load (``problems`` says why; ``examine`` only).
    ``missing`` lists the required variables that are not set, one Problem each (lenient loading replaced their
    values with a marker). ``locations`` answers which file and line a key of the merged document came from:
    the last file that wrote it, so an overlay's value wins with its line.
    """

    project: Project | None
    env_name: str
    project_dir: Path
    files: list[Path]
    env_files: list[Path]
    variables: dict[str, str]
    variable_sources: dict[str, VariableSource]
    uses: list[VariableUse]
    locations: Locations
    missing: list[Problem] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    state_dir: Path | None = None
    name: str = ""

    def checked(self) -> Project:
        """The project; a ConfigError listing the problems when it did not load."""
        if self.project is None:
            raise ConfigError(self.problems or [Problem("the configuration did not load.")])
        return self.project

    def origin(self, key: Iterable[str | int]) -> tuple[Path | None, int | None]:
        """The file and line whose value of ``key`` won (or of its nearest written parent)."""
        return self.locations.find(key)

    def uses_at(self, key: KeyPath, file: Path | None = None) -> list[VariableUse]:
        """The variables used at ``key`` or below it (in ``file`` only, when given)."""
        size = len(key)
        return [u for u in self.uses if u.key[:size] == key and (file is None or u.file == file)]

    def source(self, variable: str) -> VariableSource | None:
        return self.variable_sources.get(variable)
