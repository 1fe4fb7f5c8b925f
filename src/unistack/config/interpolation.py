"""Variable interpolation as the Compose Specification defines it (``$VAR``, ``${VAR:-default}``, ...).

Owns the template language (``$VAR``, ``${VAR}``, ``:-``/``-`` defaults, ``:?``/``?`` required, ``:+``/``+``
alternatives, nesting inside the argument, ``$$`` for a literal ``$``) and interpolating a whole document's
values (never its keys), collecting every missing required variable into one ConfigError. Never reads the
process environment or files: the caller passes the variables.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from unistack.config.yamlfile import KeyPath, Locations, Override, dotted
from unistack.errors import ConfigError, Problem

_NAME = re.compile(r"[_a-zA-Z][_a-zA-Z0-9]*")
_OPERATORS = (":-", ":?", ":+", "-", "?", "+")


class InterpolationError(ConfigError):
    """A template is invalid or a required variable is missing (``variable`` names it)."""

    def __init__(self, message: str, *, variable: str | None = None) -> None:
        super().__init__(Problem(message))
        self.message = message
        self.variable = variable


@dataclass
class _Context:
    env: Mapping[str, str]
    on_missing: Callable[[str], None] | None = None
    errors: list[InterpolationError] | None = None  # collect instead of raising

    def fail(self, error: InterpolationError) -> str:
        if self.errors is None:
            raise error
        self.errors.append(error)
        return ""


def interpolate(template: str, env: Mapping[str, str], *, on_missing: Callable[[str], None] | None = None) -> str:
    """Substitute variables in ``template`` from ``env``.

    An unset variable without a default becomes "" (``on_missing`` is told its name); ``${VAR:?msg}`` with
    VAR unset or empty raises InterpolationError("required variable VAR is missing a value: msg"); a malformed
    template raises InterpolationError("Invalid template: ...").
    """
    return _substitute(template, _Context(env, on_missing))


def _substitute(template: str, ctx: _Context) -> str:
    out: list[str] = []
    i, n = 0, len(template)
    while i < n:
        char = template[i]
        if char != "$":
            j = template.find("$", i)
            j = n if j < 0 else j
            out.append(template[i:j])
            i = j
            continue
        following = template[i + 1] if i + 1 < n else ""
        if following == "$":
            out.append("$")
            i += 2
        elif following == "{":
            end = _closing_brace(template, i + 1)
            if end < 0:
                return ctx.fail(_invalid(template))
            out.append(_braced(template[i + 2 : end], template, ctx))
            i = end + 1
        elif match := _NAME.match(template, i + 1):
            out.append(_lookup(match.group(), ctx))
            i = match.end()
        else:
            out.append("$")
            i += 1
    return "".join(out)


def _closing_brace(text: str, start: int) -> int:
    """Index of the ``}`` closing the ``{`` at ``start``, counting nested braces; -1 if none."""
    depth = 0
    for index in range(start, len(text)):
        if text[index] == "{":
            depth += 1
        elif text[index] == "}":
            depth -= 1
            if depth == 0:
                return index
    return -1


def _invalid(template: str) -> InterpolationError:
    return InterpolationError(f'Invalid template: "{template}"')


def _lookup(name: str, ctx: _Context) -> str:
    value = ctx.env.get(name)
    if value is None:
        if ctx.on_missing is not None:
            ctx.on_missing(name)
        return ""
    return value


def _braced(inner: str, template: str, ctx: _Context) -> str:
    match = _NAME.match(inner)
    if match is None:
        return ctx.fail(_invalid(template))
    name, rest = match.group(), inner[match.end() :]
    if not rest:
        return _lookup(name, ctx)
    operator = next((op for op in _OPERATORS if rest.startswith(op)), None)
    if operator is None:
        return ctx.fail(_invalid(template))
    argument = rest[len(operator) :]
    value = ctx.env.get(name)
    unset_or_empty = not value
    if operator == ":-":
        return _substitute(argument, ctx) if unset_or_empty else str(value)
    if operator == "-":
        return _substitute(argument, ctx) if value is None else value
    if operator == ":+":
        return "" if unset_or_empty else _substitute(argument, ctx)
    if operator == "+":
        return "" if value is None else _substitute(argument, ctx)
    if (operator == ":?" and unset_or_empty) or (operator == "?" and value is None):
        message = _substitute(argument, ctx)
        text = f"required variable {name} is missing a value"
        return ctx.fail(InterpolationError(f"{text}: {message}" if message else text, variable=name))
    return value or ""


def interpolate_tree(
    value: Any,
    env: Mapping[str, str],
    *,
    locations: Locations | None = None,
    path: KeyPath = (),
    on_missing: Callable[[str], None] | None = None,
) -> Any:
    """Interpolate every string value (never a key) of a document.

    Raises one ConfigError listing every problem (each missing required variable with its file, line and key
    path), not just the first.
    """
    problems: list[Problem] = []
    result = _tree(value, path, env, locations or Locations(), problems, on_missing)
    if problems:
        raise ConfigError(problems)
    return result


def _tree(
    value: Any,
    path: KeyPath,
    env: Mapping[str, str],
    locations: Locations,
    problems: list[Problem],
    on_missing: Callable[[str], None] | None,
) -> Any:
    if isinstance(value, str):
        ctx = _Context(env, on_missing, errors=[])
        result = _substitute(value, ctx)
        for error in ctx.errors or ():
            fix = (
                f"set {error.variable} in the environment, in .env or in environments/<env>.env."
                if error.variable
                else "write a literal $ as $$, and variables as $NAME or ${NAME}."
            )
            problems.append(locations.problem(path, f"error while interpolating {dotted(path)}: {error.message}", fix))
        return result
    if isinstance(value, dict):
        return {k: _tree(v, (*path, k), env, locations, problems, on_missing) for k, v in value.items()}
    if isinstance(value, list):
        return [_tree(v, (*path, i), env, locations, problems, on_missing) for i, v in enumerate(value)]
    if isinstance(value, Override):
        return Override(_tree(value.value, path, env, locations, problems, on_missing))
    return value
