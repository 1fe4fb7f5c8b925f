"""Writing the resolved document as block-style YAML, fast: what ``unistack config`` prints.

ruamel's pure-Python emitter takes ~30 ms (and ~12 ms to import) for the stack's document; this writer takes
~1 ms. ``dump`` writes only what it can write unambiguously and gives up (``None``) on anything else, and
``to_yaml`` then lets ruamel write the document: a string is written plain only when it cannot be read as
anything but that string, by a YAML 1.2 reader (ruamel, Compose's yaml.v3) or a YAML 1.1 one (``yes``, ``on``,
``1:30``, ``2001-12-14`` are quoted), else in single quotes, or double quotes for line breaks and tabs; strings
with another control character or anything outside ASCII, and floats that are not finite, are left to ruamel.
``tests/unit/config/test_yamlwriter.py`` reads what it writes back with ruamel and compares. Never reads or
decides anything about the project.
"""

from __future__ import annotations

import io
import math
import re
from typing import Any

# printable ASCII (no line break, no control character): anything else goes to ruamel
_PRINTABLE = re.compile(r"[\x20-\x7e]*")
_PRINTABLE_LINES = re.compile(r"[\x20-\x7e\n\t]*")
# safe as a plain scalar: starts with a character that is no YAML indicator (or a dash not before a space),
# holds no ": ", " #" or flow indicator, and does not end in ":" or a space
_PLAIN = re.compile(r"(?:[A-Za-z0-9_./$(~=<^]|-(?=[^ ]))[A-Za-z0-9_./$()~=<>^@%+*&!?|`\\;:' \"-]*")
# what some YAML reader would take for a number (binary, octal, hexadecimal, with underscores, sexagesimal, a
# float with or without digits before the point; YAML 1.1 takes "_" for a digit) or a date: quoted. ``5s``,
# ``16-alpine``, ``1.2.3`` stay plain.
_NUMBER_LIKE = re.compile(
    r"""[-+]?(?:0b[01_]*|0o?[0-7_]+|0x[0-9a-fA-F_]*|[0-9_]+)
    |[-+]?[0-9_]+(?::[0-5]?[0-9])+(?:\.[0-9_]*)?
    |[-+]?(?:[0-9_]+\.[0-9_]*|\.[0-9_]+)(?:[eE][-+]?[0-9]+)?
    |[-+]?[0-9_]+[eE][-+]?[0-9]+
    |[-+]?\.(?:inf|Inf|INF|nan|NaN|NAN)
    |[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:[Tt ].*)?""",
    re.VERBOSE,
)
_BOOLEANS_1_1 = ("y", "yes", "n", "no", "true", "false", "on", "off")
_RESERVED = frozenset(
    [form for word in _BOOLEANS_1_1 for form in (word, word.capitalize(), word.upper())]
    + ["null", "Null", "NULL", "~", "=", "<<"]
)


def to_yaml(document: Any) -> str:
    """``document`` as block YAML: this writer's, else ruamel's (line breaks aside, non-ASCII text: ~40 ms more)."""
    if (text := dump(document)) is not None:
        return text
    from ruamel.yaml import YAML

    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.sort_base_mapping_type_on_output = False  # type: ignore[assignment]
    stream = io.StringIO()
    yaml.dump(document, stream)
    return stream.getvalue()


def dump(document: Any) -> str | None:
    """``document`` (dicts, lists, strings, ints, floats, booleans, None) as YAML, or None: let ruamel write it."""
    lines: list[str] = []
    try:
        if isinstance(document, dict) and document:
            _mapping(document, 0, lines)
        elif isinstance(document, list) and document:
            _sequence(document, 0, lines)
        else:
            lines.append(_scalar(document))
    except _Unwritable:
        return None
    return "\n".join(lines) + "\n"


class _Unwritable(Exception):
    """A value this writer leaves to ruamel."""


def _mapping(mapping: dict[Any, Any], indent: int, lines: list[str]) -> None:
    pad = " " * indent
    for key, value in mapping.items():
        if not isinstance(key, str):
            raise _Unwritable
        head = f"{pad}{_string(key)}:"
        if isinstance(value, dict) and value:
            lines.append(head)
            _mapping(value, indent + 2, lines)
        elif isinstance(value, list) and value:
            lines.append(head)
            _sequence(value, indent, lines)  # as ruamel writes it: the dashes under the key
        else:
            lines.append(f"{head} {_scalar(value)}")


def _sequence(items: list[Any], indent: int, lines: list[str]) -> None:
    pad = " " * indent
    for item in items:
        if isinstance(item, dict) and item:
            # the first key on the dash's line, the others under it
            start = len(lines)
            _mapping(item, indent + 2, lines)
            lines[start] = f"{pad}- {lines[start][indent + 2 :]}"
        elif isinstance(item, list) and item:
            start = len(lines)
            _sequence(item, indent + 2, lines)
            lines[start] = f"{pad}- {lines[start][indent + 2 :]}"
        else:
            lines.append(f"{pad}- {_scalar(item)}")


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _Unwritable
        mantissa, e, exponent = repr(value).partition("e")  # YAML 1.1 wants a dot in the mantissa
        return f"{mantissa if '.' in mantissa else mantissa + '.0'}{e}{exponent}"
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, dict | list):  # empty ones: the non-empty are written as blocks
        return "{}" if isinstance(value, dict) else "[]"
    raise _Unwritable


def _string(text: str) -> str:
    if not _PRINTABLE.fullmatch(text):
        if not _PRINTABLE_LINES.fullmatch(text):
            raise _Unwritable
        # line breaks and tabs: double quotes, the only style where they are escapes
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t") + '"'
    if _plain(text):
        return text
    return "'" + text.replace("'", "''") + "'"


def _plain(text: str) -> bool:
    return (
        bool(_PLAIN.fullmatch(text))
        and text not in _RESERVED
        and not _NUMBER_LIKE.fullmatch(text)
        and ": " not in text
        and " #" not in text
        and not text.endswith((":", " "))
        and not text.startswith(("---", "..."))  # document markers
    )
