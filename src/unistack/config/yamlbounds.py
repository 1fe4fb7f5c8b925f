"""The bounds on what a Compose file may make the YAML readers do, and the refusals that name them.

Owns the three limits no real Compose file comes near (``MAX_FILE_BYTES``, ``MAX_DEPTH``, ``MAX_ALIAS_VALUES``)
and the ConfigErrors that say which one a file broke, where, and how to fix it. A "billion laughs" file (aliases of
aliases, each ten times the last) is a few hundred bytes that expand to millions of values; without a bound,
reading it took minutes and gigabytes. Compose v2 refuses such files too ("excessive aliasing"). Both readers
enforce these: ``yamlfile`` (ruamel, and the file size) and ``yamlfast`` (which leaves anything near a bound to
ruamel, so the refusal and its line come from one place). Never parses anything itself.
"""

from __future__ import annotations

from pathlib import Path

from unistack.errors import ConfigError, Problem

MAX_FILE_BYTES = 10 * 1024 * 1024  # the stack's largest file is ~10 KB; 100 services ~85 KB
MAX_DEPTH = 100  # keys and items from the top to the deepest value; Compose files nest less than 10 deep
MAX_ALIAS_VALUES = 100_000  # values that aliases and merge keys copy in, counted as if each were written out


def too_big(path: Path | None, size: int) -> ConfigError:
    return ConfigError(
        Problem(
            f"the file is {size / 1024 / 1024:.1f} MB; compose files may be at most "
            f"{MAX_FILE_BYTES // 1024 // 1024} MB.",
            file=path,
            fix="split it with include: or overlays, or check that it is the compose file you meant.",
        )
    )


def too_deep(path: Path | None, line: int | None) -> ConfigError:
    return ConfigError(
        Problem(
            f"the YAML nests deeper than {MAX_DEPTH} levels here (the most unistack reads).",
            file=path,
            line=line,
            fix="flatten the structure; Compose keys never need more than a few levels.",
        )
    )


def too_many_aliases(path: Path | None, line: int | None) -> ConfigError:
    return ConfigError(
        Problem(
            f"excessive aliasing: the YAML aliases expand to more than {MAX_ALIAS_VALUES:,} values "
            "(an alias of aliases of aliases, like a 'billion laughs' file).",
            file=path,
            line=line,
            fix="write the repeated part once and refer to it with fewer nested aliases.",
        )
    )


def recursive_alias(path: Path | None, line: int | None) -> ConfigError:
    return ConfigError(
        Problem(
            "an alias refers to the anchor it is written inside of, which would make an endless value.",
            file=path,
            line=line,
            fix="point the alias at an anchor defined before and outside of it.",
        )
    )
