"""Variable interpolation as the Compose Specification defines it (``$VAR``, ``${VAR:-default}``, ...).

Owns the template language (``$VAR``, ``${VAR}``, ``:-``/``-`` defaults, ``:?``/``?`` required, ``:+``/``+``
alternatives, nesting inside the argument, ``$$`` for a literal ``$``) and interpolating a whole document's
values (never its keys), collecting every missing required variable into one ConfigError. Never reads the
process environment or files: the caller passes the variables.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
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


@dataclass(frozen=True)
class VariableUse:
    """One use of a variable in a document: where (file, line, key path) and how (the operator and its argument).

    ``operator`` is None for ``$VAR`` / ``${VAR}``, else one of ``:-``, ``-``, ``:?``, ``?``, ``:+``, ``+``;
    ``argument`` is the default, message or alternative as written.
    """

    variable: str
    key: KeyPath
    file: Path | None = None
    line: int | None = None
    operator: str | None = None
    argument: str = ""

    @property
    def required(self) -> bool:
        return self.operator in (":?", "?")

    @property
    def has_default(self) -> bool:
        return self.operator in (":-", "-")

    def where(self, base: Path | None = None) -> str:
        """``compose.yaml:35 x-database-url`` (the file relative to ``base`` when it lies below it)."""
        file = ""
        if self.file is not None:
            file = str(self.file)
            if base is not None and self.file.is_relative_to(base):
                file = str(self.file.relative_to(base))
            if self.line is not None:
                file += f":{self.line}"
        return f"{file} {dotted(self.key)}".strip()


@dataclass
class MissingVariables:
    """What interpolating found unset, collected instead of raised: ``required`` uses (``${VAR:?msg}``; the value
    is replaced by ``marker(VAR)``) and ``unset`` uses without a default (``$VAR``, ``${VAR}``: empty)."""

    required: list[VariableUse] = field(default_factory=list)
    unset: list[VariableUse] = field(default_factory=list)

    def problems(self, base: Path | None, fix: Callable[[str], str]) -> list[Problem]:
        """One Problem per required variable that is not set, naming every place that uses it (required or not)."""
        uses: dict[str, list[VariableUse]] = {}
        for use in self.required:
            uses.setdefault(use.variable, []).append(use)
        for use in self.unset:
            if use.variable in uses:
                uses[use.variable].append(use)
        problems = []
        for name, found in uses.items():
            found = sorted(dict.fromkeys(found), key=lambda u: (str(u.file or ""), u.line or 0))
            places = []
            for use in found:
                note = use.argument.strip()
                redundant = not note or note.lower().startswith(f"set {name.lower()}")
                places.append(use.where(base) + ("" if redundant else f': "{note}"'))
            first = found[0]
            problems.append(
                Problem(
                    f"{name} is not set (required by {', '.join(dict.fromkeys(places))})",
                    file=first.file,
                    line=first.line,
                    key=dotted(first.key),
                    fix=fix(name),
                    variable=name,
                )
            )
        return problems


def marker(name: str) -> str:
    """What a required variable that is not set becomes when loading leniently."""
    return f"<{name} not set>"


def default_fix(name: str) -> str:
    return f"set {name} in .env, environments/<env>.env or your shell"


@dataclass
class _Context:
    env: Mapping[str, str]
    on_missing: Callable[[str], None] | None = None
    errors: list[InterpolationError] | None = None  # collect instead of raising
    on_required: Callable[[str, str], str] | None = None  # (name, message) -> the value instead of an error
    on_use: Callable[[str, str | None, str], None] | None = None  # (name, operator, argument) of every use

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
    if ctx.on_use is not None:
        ctx.on_use(name, None, "")
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
    if ctx.on_use is not None:
        ctx.on_use(name, operator, argument)
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
        if ctx.on_required is not None:
            return ctx.on_required(name, message)
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
    missing: MissingVariables | None = None,
) -> Any:
    """Interpolate every string value (never a key) of a document.

    Raises one ConfigError listing every problem: each required variable that is not set once, with every place
    that uses it (file, line and key path), and each invalid template. With ``missing``, variables that are not
    set are recorded there instead (a required one's value becomes ``marker(name)``), and only invalid templates
    raise.
    """
    problems: list[Problem] = []
    collect = MissingVariables() if missing is None else missing
    result = _tree(value, path, env, locations or Locations(), problems, on_missing, collect)
    if missing is None and collect.required:
        first = collect.required[0].file
        problems.extend(collect.problems(first.parent if first else None, default_fix))
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
    missing: MissingVariables,
) -> Any:
    if isinstance(value, str):
        if "$" not in value:
            return value

        def unset(name: str) -> None:
            file, line = locations.find(path)
            missing.unset.append(VariableUse(name, path, file, line))
            if on_missing is not None:
                on_missing(name)

        def required(name: str, message: str) -> str:
            file, line = locations.find(path)
            missing.required.append(VariableUse(name, path, file, line, ":?", message))
            return marker(name)

        ctx = _Context(env, unset, errors=[], on_required=required)
        result = _substitute(value, ctx)
        for error in ctx.errors or ():
            fix = "write a literal $ as $$, and variables as $NAME or ${NAME}."
            problems.append(locations.problem(path, f"error while interpolating {dotted(path)}: {error.message}", fix))
        return result
    if isinstance(value, dict):
        return {k: _tree(v, (*path, k), env, locations, problems, on_missing, missing) for k, v in value.items()}
    if isinstance(value, list):
        return [_tree(v, (*path, i), env, locations, problems, on_missing, missing) for i, v in enumerate(value)]
    if isinstance(value, Override):
        return Override(_tree(value.value, path, env, locations, problems, on_missing, missing))
    return value


def variable_uses(value: Any, locations: Locations, path: KeyPath = ()) -> list[VariableUse]:
    """Every use of a variable in a document's values (as written: defaults are looked into whether or not they
    would be used), with its place."""
    uses: list[VariableUse] = []
    _uses(value, path, locations, uses)
    return uses


def _uses(value: Any, path: KeyPath, locations: Locations, uses: list[VariableUse]) -> None:
    if isinstance(value, str):
        if "$" not in value:
            return
        file, line = locations.find(path)

        def use(name: str, operator: str | None, argument: str) -> None:
            uses.append(VariableUse(name, path, file, line, operator, argument))

        _substitute(value, _Context({}, errors=[], on_required=lambda name, message: "", on_use=use))
    elif isinstance(value, dict):
        for k, v in value.items():
            _uses(v, (*path, k), locations, uses)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _uses(v, (*path, i), locations, uses)
    elif isinstance(value, Override):
        _uses(value.value, path, locations, uses)
