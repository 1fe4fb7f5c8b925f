"""The schema's violations in the user's words: file, line, key, what was expected and what was found, and a fix.

Owns turning fastjsonschema's errors (``data.services.web must not contain {'foo'} properties``) into Problems:
the key path found again in the data (keys may hold dots), each unknown key on its own line with a "did you
mean", names that break a names pattern, types said as "a mapping", "a list", "a string", a ``oneOf`` that only
one alternative could mean (a mapping where a list or a mapping is allowed) checked against that alternative for
the real reason, and everything else from the error's rule. Only runs when a file is invalid (``schema``).
Never validates on its own beyond that one alternative, never decides what a valid value means.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable
from typing import Any, NamedTuple

from unistack.config.yamlfile import KeyPath, Locations
from unistack.errors import Problem

# What a shared definition means, in the words the Compose documentation uses.
_NAMED = {
    "list_or_dict": "a mapping (KEY: value) or a list of KEY=value",
    "list_of_strings": "a list of strings",
    "string_or_list": "a string or a list of strings",
    "command": "a command (a string or a list of strings)",
    "env_file": "a path or a list of paths",
    "extra_hosts": "a mapping (HOST: IP) or a list of HOST:IP",
}
_TYPES = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "number": "a number",
    "integer": "a whole number",
    "boolean": "true or false",
    "null": "empty",
}
_NAME_NOUNS = {"services": "service", "networks": "network", "volumes": "volume", "secrets": "secret"}
_NAME_NOUNS |= {"configs": "config", "models": "model"}


class Violation(NamedTuple):
    """One way the data breaks the schema: where (the value to leave out to go on) and the Problem to report."""

    path: KeyPath
    problem: Problem


def violations(data: Any, errors: list[Any], locations: Locations, schema: dict[str, Any]) -> list[Violation]:
    """One Violation per error (per unknown key), in the order of the file."""
    out: list[Violation] = []
    for error in errors:
        out.extend(_problems(data, error, locations, schema))
    return sorted(dict.fromkeys(out), key=lambda v: (str(v.problem.file or ""), v.problem.line or 0))


def _at(locations: Locations, path: KeyPath, message: str, fix: str | None = None) -> Violation:
    return Violation(path, locations.problem(path, message, fix))


def _problems(data: Any, error: Any, locations: Locations, schema: dict[str, Any]) -> list[Violation]:
    path = key_path(data, str(error.name or "data"))
    value, definition, rule = error.value, error.definition or {}, error.rule
    label = _label(path)
    if rule == "additionalProperties" and isinstance(value, dict):
        return [_extra_key(path, key, definition, locations) for key in value if not _allowed(key, definition)]
    if rule in ("oneOf", "anyOf"):
        alternatives = [_resolve(alt, schema) for alt in definition.get(rule) or []]
        fitting = [alt for alt in alternatives if _fits(alt, value)]
        if len(fitting) == 1:
            deeper = _against(fitting[0], value, str(error.name or "data"), schema)
            if deeper:
                return [p for e in deeper for p in _problems(data, e, locations, schema)]
        expected = _describe(definition, schema)
        return [_at(locations, path, f"{label} must be {expected}, not {_what(value)}.", _fix(expected))]
    if rule == "type":
        expected = _describe(definition, schema)
        return [_at(locations, path, f"{label} must be {expected}, not {_what(value)}.", _fix(expected))]
    if rule == "enum":
        choices = ", ".join(repr(c) for c in definition.get("enum") or [])
        return [_at(locations, path, f"{label} must be one of {choices}, not {_what(value)}.")]
    if rule == "required" and isinstance(value, dict):
        missing = [key for key in definition.get("required") or [] if key not in value]
        needed = ", ".join(repr(key) for key in missing)
        return [_at(locations, path, f"{label} needs {needed}.", f"add {needed} to it.")]
    if rule in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        bound = definition.get(rule)
        word = "at least" if rule == "minimum" else "at most" if rule == "maximum" else "beyond"
        return [_at(locations, path, f"{label} must be {word} {bound}, not {_what(value)}.")]
    if rule == "uniqueItems" and isinstance(value, list):
        seen: list[Any] = []
        twice = next((v for v in value if v in seen or seen.append(v)), None)  # type: ignore[func-returns-value]
        return [_at(locations, path, f"{label} lists {_what(twice)} more than once.", "remove the repeat.")]
    message = str(error.message).replace(str(error.name or "data"), label, 1)
    return [_at(locations, path, f"{message}.")]


def key_path(data: Any, name: str) -> KeyPath:
    """fastjsonschema's ``data.services.web.ports[0]`` as a key path, found in ``data`` (a key may hold dots)."""
    rest, node, path = name[len("data") :] if name.startswith("data") else name, data, []
    while rest:
        if isinstance(node, list) and rest.startswith("["):
            close = rest.find("]")
            if close < 0 or not rest[1:close].isdigit():
                break
            index = int(rest[1:close])
            path.append(index)
            node, rest = (node[index] if index < len(node) else None), rest[close + 1 :]
        elif isinstance(node, dict) and rest.startswith("."):
            found = [k for k in node if rest[1:].startswith(k) and rest[1 + len(k) : 2 + len(k)] in ("", ".", "[")]
            if not found:
                break
            key = max(found, key=len)
            path.append(key)
            node, rest = node[key], rest[1 + len(key) :]
        else:
            break
    return tuple(path)


def _label(path: KeyPath) -> str:
    if not path:
        return "the file"
    for index in range(len(path) - 1, -1, -1):
        if isinstance(path[index], str):
            return str(path[index]) + "".join(f"[{p}]" for p in path[index + 1 :])
    return "the file"


def _what(value: Any) -> str:
    """The value as found: ``the number 5``, ``the string 'x'``, ``a list``, ``a mapping``, ``empty``."""
    if value is None:
        return "empty (null)"
    if isinstance(value, bool):
        return f"{'true' if value else 'false'}"
    if isinstance(value, int | float):
        text = str(value)
        return f"the number {text if len(text) <= 30 else text[:27] + '...'}"
    if isinstance(value, str):
        return f"the string {value!r}" if len(value) <= 40 else f"the string {value[:37]!r}..."
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _fix(expected: str) -> str | None:
    if "a mapping" in expected and "a list" in expected:
        return "write KEY: value lines under it, or - items."
    if expected.startswith("a mapping"):
        return "indent its keys under it (key: value)."
    if expected.startswith("a list"):
        return "write its items as - item lines, or [a, b]."
    if expected.startswith("a string"):
        return "quote the value."
    return None


def _resolve(definition: Any, schema: dict[str, Any]) -> Any:
    ref = definition.get("$ref") if isinstance(definition, dict) else None
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        resolved = schema.get("$defs", {}).get(ref.removeprefix("#/$defs/"), {})
        return {**resolved, "$name": ref.removeprefix("#/$defs/")}
    return definition


def _describe(definition: Any, schema: dict[str, Any]) -> str:
    definition = _resolve(definition, schema)
    if not isinstance(definition, dict):
        return "a value"
    name = definition.get("$name") or _names(schema).get(json.dumps(definition, sort_keys=True))
    if name in _NAMED:
        return _NAMED[name]
    for rule in ("oneOf", "anyOf"):
        if rule in definition:
            return _either(_describe(alt, schema) for alt in definition[rule])
    kinds = definition.get("type")
    kinds = [kinds] if isinstance(kinds, str) else list(kinds or [])
    if "enum" in definition and not kinds:
        return "one of " + ", ".join(repr(c) for c in definition["enum"])
    words = [_TYPES.get(kind, kind) for kind in kinds]
    if kinds == ["array"] and isinstance(definition.get("items"), dict):
        words = [f"a list (each {_describe(definition['items'], schema)})"]
    return _either(words) or "a value"


def _either(words: Iterable[str]) -> str:
    """``a, b or c``."""
    unique = list(dict.fromkeys(words))
    return ", ".join(unique[:-1]) + " or " + unique[-1] if len(unique) > 1 else "".join(unique)


def _names(schema: dict[str, Any]) -> dict[str, str]:
    """The shared definitions by their text: fastjsonschema's errors carry them with their references expanded."""
    key = id(schema)
    if key not in _NAMES:
        _NAMES[key] = {json.dumps(_expand(d, schema), sort_keys=True): n for n, d in schema.get("$defs", {}).items()}
    return _NAMES[key]


_NAMES: dict[int, dict[str, str]] = {}


def _expand(node: Any, schema: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            return _expand(schema.get("$defs", {}).get(node["$ref"].removeprefix("#/$defs/"), {}), schema)
        return {k: _expand(v, schema) for k, v in node.items()}
    if isinstance(node, list):
        return [_expand(v, schema) for v in node]
    return node


def _fits(definition: Any, value: Any) -> bool:
    """Could ``value`` be meant as this alternative (its JSON type is one the alternative allows)?"""
    if not isinstance(definition, dict):
        return False
    kinds = definition.get("type")
    kinds = [kinds] if isinstance(kinds, str) else list(kinds or [])
    if not kinds:
        return False
    kind = (
        "null"
        if value is None
        else "boolean"
        if isinstance(value, bool)
        else "number"
        if isinstance(value, int | float)
        else "string"
        if isinstance(value, str)
        else "array"
        if isinstance(value, list)
        else "object"
    )
    return kind in kinds or (kind == "number" and "integer" in kinds and isinstance(value, int))


def _against(definition: dict[str, Any], value: Any, name: str, schema: dict[str, Any]) -> list[Any]:
    """The errors ``value`` has against one alternative (compiled once per process, only on this path)."""
    from fastjsonschema import JsonSchemaValueException, JsonSchemaValuesException

    validator = _compiled(json.dumps({k: v for k, v in definition.items() if k != "$name"}, sort_keys=True))
    try:
        validator(value, name_prefix=name)
    except JsonSchemaValuesException as exc:
        return list(exc.errors)
    except JsonSchemaValueException as exc:
        return [exc]
    return []


@functools.cache
def _compiled(definition: str) -> Any:
    import fastjsonschema

    from unistack.config.schema import definitions

    root = definitions()
    schema = {**json.loads(definition), "$defs": root["$defs"], "$id": root["$id"], "$schema": root["$schema"]}
    return fastjsonschema.compile(schema, use_default=False, use_formats=False, fast_fail=False)


def _allowed(key: str, definition: dict[str, Any]) -> bool:
    if key in (definition.get("properties") or {}):
        return True
    return any(re.search(pattern, key) for pattern in definition.get("patternProperties") or {})


def _extra_key(path: KeyPath, key: str, definition: dict[str, Any], locations: Locations) -> Violation:
    patterns = [p for p in definition.get("patternProperties") or {} if p != "^x-"]
    where = (*path, key)
    if patterns and not definition.get("properties"):
        noun = _NAME_NOUNS.get(str(path[-1]) if len(path) == 1 else "", "name")
        return _at(
            locations,
            where,
            f"{key!r} is not a valid {noun} name: use only letters, digits, '.', '_' and '-'.",
            "rename it.",
        )
    known = sorted(definition.get("properties") or {})
    fix = _suggest(key, known)
    if not path:
        return _at(locations, where, f"unknown top-level key {key!r}.", fix)
    if len(path) == 2 and path[0] == "services":
        return _at(locations, where, f"service {path[1]!r} has unknown key {key!r}.", fix)
    return _at(locations, where, f"unknown key {key!r} in {_label(path)}.", fix)


def _suggest(key: str, known: list[str]) -> str:
    import difflib  # only for a misspelt key: not imported by every command

    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else "remove it or prefix it with x- to keep it as an extension."
