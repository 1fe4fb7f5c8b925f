"""A fast reader for the plain YAML that Compose files are mostly written in; None for anything else.

ruamel.yaml's round-trip parser is pure Python and slow: about 1 s for an 85 KB file (100 services) on a small
machine, before anything can start. Most Compose files use only block mappings and sequences, one-line scalars
(plain, single- or double-quoted) and one-line flow collections. ``parse`` reads exactly that, with YAML 1.2
core-schema scalars and the line of every key and item, and returns None as soon as it meets anything else:
anchors, aliases, tags (``!reset``, ``!override``), block scalars, multi-line scalars, directives, document
markers, tabs, numbers other than plain decimal integers, dates, duplicate keys, or anything malformed. The
caller then parses the text with ruamel, which gives the same result, or the error with its line. For what it
accepts, the result is exactly what ``yamlfile`` makes of ruamel's output (tests/unit/config/test_yamlfast.py
compares the two on every YAML text of the test suites and on thousands of mutations of them).
"""

from __future__ import annotations

import re
from typing import Any

KeyPath = tuple[str | int, ...]


class _Unsupported(Exception):
    """Outside the subset (or not valid YAML): the caller falls back to ruamel."""


# ruamel's reader refuses some characters and breaks lines at others (\x85, \u2028, \u2029); tabs and carriage
# returns change how lines are read. Texts with any of them take the slow path.
_UNUSUAL = re.compile("[^\n\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]")

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
_INDICATORS = frozenset("?:,[]{}#&*!|>'\"%@`")
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


def parse(text: str) -> tuple[dict[str, Any], dict[KeyPath, int]] | None:
    """The document's data and the line of every key and item, or None when ruamel must read the text."""
    if _UNUSUAL.search(text):
        return None
    rows: list[tuple[int, int, str]] = []  # (line, indent, content) of every line that holds more than a comment
    for number, line in enumerate(text.split("\n"), 1):
        content = line.lstrip(" ")
        if not content or content[0] == "#":
            continue
        indent = len(line) - len(content)
        if indent == 0 and content[0] in "-." and content[:3] in ("---", "..."):
            return None  # document markers
        rows.append((number, indent, content.rstrip(" ")))
    if not rows:
        return {}, {}
    reader = _Reader(rows)
    try:
        first = rows[0]
        if _is_entry(first[2]):
            return None  # a sequence at the top: ruamel reports it
        data = reader.mapping(first[1], ())
        if reader.i != len(rows):
            return None
    except (_Unsupported, IndexError, ValueError):
        return None
    return data, reader.lines


def _is_entry(content: str) -> bool:
    """A block sequence entry: ``-`` followed by a space or the end of the line."""
    return content[0] == "-" and (len(content) == 1 or content[1] == " ")


class _Reader:
    def __init__(self, rows: list[tuple[int, int, str]]) -> None:
        self.rows = rows
        self.i = 0
        self.lines: dict[KeyPath, int] = {}

    # ----------------------------------------------------------------- block structure

    def block(self, indent: int, path: KeyPath) -> Any:
        if _is_entry(self.rows[self.i][2]):
            return self.sequence(indent, path)
        return self.mapping(indent, path)

    def mapping(self, indent: int, path: KeyPath) -> dict[str, Any]:
        rows = self.rows
        out: dict[str, Any] = {}
        while self.i < len(rows):
            number, row_indent, content = rows[self.i]
            if row_indent < indent:
                break
            if row_indent > indent:
                raise _Unsupported
            split = _split_key(content)
            if split is None:
                raise _Unsupported
            name, rest = split
            if name in out:
                raise _Unsupported  # a duplicate key: ruamel reports it
            child = (*path, name)
            self.lines[child] = number
            self.i += 1
            if rest:
                out[name] = self.inline(rest, number, child)
                self.no_continuation(indent)
            elif self.i < len(rows) and rows[self.i][1] > indent:
                out[name] = self.block(rows[self.i][1], child)
            elif self.i < len(rows) and rows[self.i][1] == indent and _is_entry(rows[self.i][2]):
                out[name] = self.sequence(indent, child)
            else:
                out[name] = None
        return out

    def sequence(self, indent: int, path: KeyPath) -> list[Any]:
        rows = self.rows
        items: list[Any] = []
        while self.i < len(rows):
            number, row_indent, content = rows[self.i]
            if row_indent < indent:
                break
            if row_indent > indent:
                raise _Unsupported
            if not _is_entry(content):
                break  # a key at this indentation: the enclosing mapping goes on
            child = (*path, len(items))
            rest = content[1:].lstrip(" ")
            if not rest or rest[0] == "#":  # the item is on the following lines
                self.i += 1
                if self.i >= len(rows) or rows[self.i][1] <= indent:
                    raise _Unsupported  # an empty item
                self.lines[child] = rows[self.i][0]
                items.append(self.block(rows[self.i][1], child))
                continue
            if _is_entry(rest):
                raise _Unsupported  # "- - x"
            self.lines[child] = number
            if _split_key(rest) is not None:  # "- key: value": a mapping whose keys line up with this one
                column = indent + len(content) - len(rest)
                rows[self.i] = (number, column, rest)
                items.append(self.mapping(column, child))
                continue
            self.i += 1
            items.append(self.inline(rest, number, child))
            self.no_continuation(indent)
        return items

    def no_continuation(self, indent: int) -> None:
        """After a one-line value, a deeper line would continue it (a multi-line scalar) or be an error."""
        if self.i < len(self.rows) and self.rows[self.i][1] > indent:
            raise _Unsupported

    # ----------------------------------------------------------------- one-line values

    def inline(self, text: str, number: int, path: KeyPath) -> Any:
        """The value written on one line after ``key:`` or ``- `` (``text`` has no leading space)."""
        first = text[0]
        if first in "\"'":
            value, end = _quoted(text, 0)
            _only_comment(text, end)
            return value
        if first in "[{":
            value, end = self.flow(text, 0, number, path)
            _only_comment(text, end)
            return value
        if first in _INDICATORS or (first == "-" and (len(text) == 1 or text[1] == " ")):
            raise _Unsupported
        comment = text.find(" #")
        if comment >= 0:
            text = text[:comment].rstrip(" ")
        if ": " in text or text.endswith(":"):
            raise _Unsupported  # "a: b: c" is an error
        return _plain(text)

    def flow(self, text: str, start: int, number: int, path: KeyPath) -> tuple[Any, int]:
        """A flow sequence or mapping that ends on this line; returns it and the index after its bracket."""
        is_map = text[start] == "{"
        close = "}" if is_map else "]"
        out_map: dict[str, Any] = {}
        out_list: list[Any] = []
        i = _skip(text, start + 1)
        if text[i] == close:
            return (out_map if is_map else out_list), i + 1
        while True:
            if is_map:
                key, i = self.flow_scalar(text, i, key=True)
                if not isinstance(key, str):
                    key = str(key)
                if key in out_map or text[i : i + 2] != ": ":
                    raise _Unsupported
                child: KeyPath = (*path, key)
                i = _skip(text, i + 2)
            else:
                child = (*path, len(out_list))
            if text[i] in "[{":
                value, i = self.flow(text, i, number, child)
            else:
                value, i = self.flow_scalar(text, i, key=False)
            self.lines[child] = number
            if is_map:
                out_map[child[-1]] = value  # type: ignore[index]
            else:
                out_list.append(value)
            i = _skip(text, i)
            if text[i] == close:
                return (out_map if is_map else out_list), i + 1
            if text[i] != ",":
                raise _Unsupported
            i = _skip(text, i + 1)
            if text[i] in ",]}":
                raise _Unsupported  # an empty entry or a trailing comma

    def flow_scalar(self, text: str, i: int, key: bool) -> tuple[Any, int]:
        """A quoted or plain scalar inside a flow collection; returns it and the index after it."""
        if text[i] in "\"'":
            value, end = _quoted(text, i)
            return value, _skip(text, end)
        stop = _FLOW_STOP.search(text, i)
        end = stop.start() if stop else len(text)
        if key:
            colon = text.find(": ", i, end)
            if colon < 0:
                raise _Unsupported
            end = colon
        raw = text[i:end].rstrip(" ")
        if not raw or raw[0] in _INDICATORS or (raw[0] == "-" and (len(raw) == 1 or raw[1] == " ")):
            raise _Unsupported
        if ":" in raw and (key or raw.endswith(":") or ": " in raw):
            raise _Unsupported
        if " #" in raw:
            raise _Unsupported  # a comment inside a flow collection: it goes on on the next line
        return _plain(raw), i + len(raw)


def _split_key(content: str) -> tuple[str, str] | None:
    """``key: rest`` -> (key, rest without its comment when rest is only a comment); None if not a key line."""
    first = content[0]
    if first in "\"'":
        key, end = _quoted(content, 0)
        after = content[end:].lstrip(" ")
        if not after.startswith(":") or (len(after) > 1 and after[1] != " "):
            return None
        rest = after[1:].lstrip(" ")
    else:
        if first in _INDICATORS or (first == "-" and (len(content) == 1 or content[1] == " ")):
            return None
        comment = content.find(" #")
        head = content if comment < 0 else content[:comment]
        colon = head.find(": ")
        if colon < 0:
            if not head.endswith(":"):
                return None
            colon = len(head) - 1
        raw = head[:colon].rstrip(" ")
        if not raw:
            return None
        value = _plain(raw)
        key = value if isinstance(value, str) else str(value)
        rest = content[colon + 1 :].lstrip(" ")
    if rest.startswith("#"):
        rest = ""
    return key, rest


def _plain(text: str) -> Any:
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
        raise _Unsupported
    return text


def _quoted(text: str, start: int) -> tuple[str, int]:
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
            raise _Unsupported
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
                raise _Unsupported
            value = int(digits, 16)
            if 0xD800 <= value <= 0xDFFF or value > 0x10FFFF:
                raise _Unsupported
            parts.append(chr(value))
            i = end + 2 + len(digits)
        else:
            raise _Unsupported  # a line continuation, or an escape YAML does not have


def _only_comment(text: str, end: int) -> None:
    """After a quoted or flow value: nothing but spaces and a comment (after at least one space)."""
    rest = text[end:]
    stripped = rest.lstrip(" ")
    if stripped and not (stripped[0] == "#" and len(stripped) < len(rest)):
        raise _Unsupported


def _skip(text: str, i: int) -> int:
    """The index of the next non-space character (IndexError past the end: the collection is not closed)."""
    while text[i] == " ":
        i += 1
    return i
