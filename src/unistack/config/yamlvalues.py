"""The values the fast YAML reader finds after ``key:`` or ``- ``, read exactly as ruamel.yaml reads them.

Owns scalars and one-line flow collections: plain scalars resolved by the YAML 1.2 core schema (strings,
booleans, null, plain decimal integers; other numbers, dates and merge or value keys are left to ruamel), one-line
single- and double-quoted scalars, flow sequences and mappings that end on their line (with the line of every
item), and literal (``|``) and folded (``>``) block scalars with their chomping and indentation indicators, read
line for line as ruamel's scanner reads them. Raises ``Unsupported`` for anything else. Never reads block mappings
or sequences, anchors, aliases or merge keys (``yamlfast`` does).
"""

from __future__ import annotations

import re
from typing import Any

from unistack.config.yamlbounds import MAX_DEPTH

KeyPath = tuple[str | int, ...]


class Unsupported(Exception):
    """Outside the subset (or not valid YAML): the caller falls back to ruamel."""


# YAML 1.2 core schema as ruamel resolves plain scalars (ruamel/yaml/resolver.py, version 1.2): the first
# characters that can start a non-string, the values taken here, and the patterns that make a number, a date,
# a merge key or a value key (those go to ruamel).
_RESOLVED_FIRST = frozenset("tTfF-+0123456789.<~nN=")
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_NULL = frozenset(("~", "null", "Null", "NULL"))
_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_NOT_STRING = re.compile(
    r"""
    [-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |[-+]?\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN)
    |[-+]?0b[0-1_]+
    |[-+]?0o?[0-7_]+
    |[-+]?[0-9_]+
    |[-+]?0x[0-9a-fA-F_]+
    |<<
    |=
    |[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]
    |[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?(?:[Tt]|[ \t]+)[0-9][0-9]?:[0-9][0-9]:[0-9][0-9](?:\.[0-9]*)?
     (?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?
    """,
    re.VERBOSE,
)

# characters that cannot start a plain scalar here ("-" only when a space or the end follows)
INDICATORS = frozenset("?:,[]{}#&*!|>'\"%@`")
_FLOW_STOP = re.compile(r"[,\[\]{}]")
_DOUBLE_SPECIAL = re.compile(r'["\\]')
_ESCAPES = {
    "0": "\0",
    "a": "\x07",
    "b": "\x08",
    "t": "\x09",
    "n": "\x0a",
    "v": "\x0b",
    "f": "\x0c",
    "r": "\x0d",
    "e": "\x1b",
    " ": " ",
    '"': '"',
    "/": "/",
    "\\": "\\",
    "N": "\x85",
    "_": "\xa0",
    "L": "\u2028",
    "P": "\u2029",
}
_HEX_ESCAPES = {"x": 2, "u": 4, "U": 8}
_HEX = frozenset("0123456789abcdefABCDEF")

# what may follow | or >: an indentation digit and a chomping sign in either order, then at most a comment
_BLOCK_HEADER = re.compile(r"([1-9]?)([-+]?)([1-9]?)(?: +#.*)?")


def plain(text: str) -> Any:
    """A plain scalar's value under the YAML 1.2 core schema (raises for what ruamel should resolve)."""
    if text[0] not in _RESOLVED_FIRST:
        return text
    if text in _BOOL:
        return _BOOL[text]
    if text in _NULL:
        return None
    if _DECIMAL.fullmatch(text):
        return int(text)
    if _NOT_STRING.fullmatch(text):
        raise Unsupported
    return text


def quoted(text: str, start: int) -> tuple[str, int]:
    """A single- or double-quoted scalar that ends on this line; returns it and the index after its quote."""
    if text[start] == "'":
        parts = []
        i = start + 1
        while True:
            end = text.index("'", i)  # ValueError when it goes on on the next line
            if text[end + 1 : end + 2] == "'":
                parts.append(text[i : end + 1])
                i = end + 2
                continue
            parts.append(text[i:end])
            return "".join(parts), end + 1
    parts = []
    i = start + 1
    while True:
        found = _DOUBLE_SPECIAL.search(text, i)
        if found is None:
            raise Unsupported
        end = found.start()
        parts.append(text[i:end])
        if text[end] == '"':
            return "".join(parts), end + 1
        code = text[end + 1 : end + 2]
        if code in _ESCAPES:
            parts.append(_ESCAPES[code])
            i = end + 2
        elif code in _HEX_ESCAPES:
            digits = text[end + 2 : end + 2 + _HEX_ESCAPES[code]]
            if len(digits) != _HEX_ESCAPES[code] or not _HEX.issuperset(digits):
                raise Unsupported
            value = int(digits, 16)
            if 0xD800 <= value <= 0xDFFF or value > 0x10FFFF:
                raise Unsupported
            parts.append(chr(value))
            i = end + 2 + len(digits)
        else:
            raise Unsupported  # a line continuation, or an escape YAML does not have


def inline(text: str, number: int, path: KeyPath, lines: dict[KeyPath, int]) -> Any:
    """The value written on one line after ``key:`` or ``- `` (``text`` has no leading space)."""
    first = text[0]
    if first in "\"'":
        value, end = quoted(text, 0)
        _only_comment(text, end)
        return value
    if first in "[{":
        value, end = _flow(text, 0, number, path, lines)
        _only_comment(text, end)
        return value
    if first in INDICATORS or (first == "-" and (len(text) == 1 or text[1] == " ")):
        raise Unsupported
    comment = text.find(" #")
    if comment >= 0:
        text = text[:comment].rstrip(" ")
    if ": " in text or text.endswith(":"):
        raise Unsupported  # "a: b: c" is an error
    return plain(text)


def _flow(text: str, start: int, number: int, path: KeyPath, lines: dict[KeyPath, int]) -> tuple[Any, int]:
    """A flow sequence or mapping that ends on this line; returns it and the index after its bracket."""
    if len(path) >= MAX_DEPTH:
        raise Unsupported  # too deep: ruamel refuses it with its line
    is_map = text[start] == "{"
    close = "}" if is_map else "]"
    out_map: dict[str, Any] = {}
    out_list: list[Any] = []
    i = _skip(text, start + 1)
    if text[i] == close:
        return (out_map if is_map else out_list), i + 1
    while True:
        if is_map:
            key, i = _flow_scalar(text, i, key=True)
            if not isinstance(key, str):
                key = str(key)
            if key in out_map or text[i : i + 2] != ": ":
                raise Unsupported
            child: KeyPath = (*path, key)
            i = _skip(text, i + 2)
        else:
            child = (*path, len(out_list))
        if text[i] in "[{":
            value, i = _flow(text, i, number, child, lines)
        else:
            value, i = _flow_scalar(text, i, key=False)
        lines[child] = number
        if is_map:
            out_map[child[-1]] = value  # type: ignore[index]
        else:
            out_list.append(value)
        i = _skip(text, i)
        if text[i] == close:
            return (out_map if is_map else out_list), i + 1
        if text[i] != ",":
            raise Unsupported
        i = _skip(text, i + 1)
        if text[i] in ",]}":
            raise Unsupported  # an empty entry or a trailing comma


def _flow_scalar(text: str, i: int, key: bool) -> tuple[Any, int]:
    """A quoted or plain scalar inside a flow collection; returns it and the index after it."""
    if text[i] in "\"'":
        value, end = quoted(text, i)
        return value, _skip(text, end)
    stop = _FLOW_STOP.search(text, i)
    end = stop.start() if stop else len(text)
    if key:
        colon = text.find(": ", i, end)
        if colon < 0:
            raise Unsupported
        end = colon
    raw = text[i:end].rstrip(" ")
    if not raw or raw[0] in INDICATORS or (raw[0] == "-" and (len(raw) == 1 or raw[1] == " ")):
        raise Unsupported
    if ":" in raw and (key or raw.endswith(":") or ": " in raw):
        raise Unsupported
    if " #" in raw:
        raise Unsupported  # a comment inside a flow collection: it goes on on the next line
    return plain(raw), i + len(raw)


def _only_comment(text: str, end: int) -> None:
    """After a quoted or flow value: nothing but spaces and a comment (after at least one space)."""
    rest = text[end:]
    stripped = rest.lstrip(" ")
    if stripped and not (stripped[0] == "#" and len(stripped) < len(rest)):
        raise Unsupported


def _skip(text: str, i: int) -> int:
    """The index of the next non-space character (IndexError past the end: the collection is not closed)."""
    while text[i] == " ":
        i += 1
    return i


def block(lines: list[str], header: int, indicators: str, parent_indent: int, folded: bool) -> tuple[str, int]:
    """A block scalar whose ``|`` or ``>`` ends ``lines[header]`` (``indicators``: what follows it).

    ``lines`` is the whole text split at newlines (its last item has no line break after it), ``parent_indent``
    the column of the key or ``-`` the scalar belongs to. Returns the value and the index of the first line after
    it. This follows ruamel's ``scan_block_scalar`` step for step; it declines leading blank lines that hold
    spaces (ruamel measures the indentation on them) and empty scalars.
    """
    found = _BLOCK_HEADER.fullmatch(indicators)
    if found is None or (found[1] and found[3]):
        raise Unsupported
    keep = found[2] == "+"
    strip = found[2] == "-"
    digit = found[1] or found[3]
    last = len(lines) - 1
    i = header + 1
    if i > last:
        raise Unsupported  # the text ends on the header
    if digit:
        indent = parent_indent + int(digit)
        breaks, i = _breaks(lines, i, indent, last)
    else:
        breaks = 0
        while i < last and not lines[i]:
            breaks += 1
            i += 1
        line = lines[i]
        indent = len(line) - len(line.lstrip(" "))
        if indent == len(line) or indent <= parent_indent:
            raise Unsupported  # a blank line with spaces, or nothing more indented than the parent: empty
    if not _is_content(lines, i, indent):
        raise Unsupported  # an empty scalar
    chunks: list[str] = []
    while True:
        text = lines[i][indent:]
        chunks.append("\n" * breaks)
        chunks.append(text)
        if i == last:  # the text ends without a line break
            line_break, breaks, i = "", 0, i + 1
            break
        line_break = "\n"
        breaks, i = _breaks(lines, i + 1, indent, last)
        if not _is_content(lines, i, indent):
            break
        if folded and text[0] != " " and lines[i][indent] != " ":
            if not breaks:
                chunks.append(" ")
        else:
            chunks.append(line_break)
    if not strip:
        chunks.append(line_break)
    if keep:
        chunks.append("\n" * breaks)
    return "".join(chunks), i


def _breaks(lines: list[str], i: int, indent: int, last: int) -> tuple[int, int]:
    """Skip the lines that are only a line break once ``indent`` spaces are read: how many, and the next line."""
    start = i
    while i < last and len(lines[i]) <= indent and not lines[i].strip(" "):
        i += 1
    return i - start, i


def _is_content(lines: list[str], i: int, indent: int) -> bool:
    """Line ``i`` goes on the scalar: at least ``indent`` spaces, then something (a space counts)."""
    line = lines[i]
    return len(line) > indent and not line[:indent].strip(" ")
