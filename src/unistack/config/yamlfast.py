"""A fast reader for the plain YAML that Compose files are mostly written in; None for anything else.

ruamel.yaml's round-trip parser is pure Python and slow: about 1 s for an 85 KB file (100 services) on a small
machine, before anything can start. Most Compose files use only block mappings and sequences, one-line scalars
(plain, single- or double-quoted), literal and folded block scalars, one-line flow collections, and anchors,
aliases and merge keys (``x-common: &common``, ``build: *common``, ``<<: *common``, ``<<: [*a, *b]``). ``parse``
reads exactly that, with the line of every key and item (the values themselves: ``yamlvalues``), and returns
None as soon as it meets anything else: tags (``!reset``, ``!override``), anchors on keys or on empty values, a
reused anchor, aliases as keys or inside flow collections (but a merge key's list), merges of anything but
aliases to mappings, multi-line plain or quoted scalars, empty block scalars or ones whose leading blank lines
hold spaces, directives, document markers, tabs, numbers other than plain decimal integers, dates, duplicate
keys, anything malformed, or anything near the bounds of ``yamlbounds`` (nesting, values copied by aliases).
The caller then parses the text with ruamel, which gives the same result, or the error with its line. For what it
accepts, the result is exactly what ``yamlfile`` makes of ruamel's output, quirks included: an alias as a sequence
item is on its anchor's line; merged keys come after the mapping's own keys, on the mapping's line (none at the
top), and what is below them keeps its lines. tests/unit/config/test_yamlfast.py compares the two on every YAML text
of the test suites and on thousands of mutations of them.
"""

from __future__ import annotations

import functools
import re
from typing import Any, NamedTuple

from unistack.config.yamlbounds import MAX_ALIAS_VALUES, MAX_DEPTH
from unistack.config.yamlvalues import INDICATORS, Unsupported, block, inline, plain, quoted

KeyPath = tuple[str | int, ...]

# ruamel's reader refuses some characters and breaks lines at others (\x85, \u2028, \u2029); tabs and carriage
# returns change how lines are read. Texts with any of them take the slow path. (The full class takes ~3 ms to
# compile, more than reading a whole file: it is compiled only for a text that is not plain ASCII.)
_UNUSUAL_ASCII = re.compile("[^\n\x20-\x7e]")


@functools.cache
def _unusual() -> re.Pattern[str]:
    return re.compile("[^\n\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]")


def _has_unusual(text: str) -> bool:
    return bool((_UNUSUAL_ASCII if text.isascii() else _unusual()).search(text))


# Anchor and alias names: ruamel takes any run of printable characters but ",[]{}"; these are the ones taken here
# (followed by a space or the end, so that ruamel's name is the same).
_ANCHOR = re.compile(r"&([A-Za-z0-9_.-]+)(?: +|$)")
_ALIAS = re.compile(r"\*([A-Za-z0-9_.-]+)(?: +#.*)?")
_ALIAS_LIST = re.compile(r"\[ *\*[A-Za-z0-9_.-]+ *(?:, *\*[A-Za-z0-9_.-]+ *)*\](?: +#.*)?")
_ALIAS_NAME = re.compile(r"\*([A-Za-z0-9_.-]+)")


class _Anchor(NamedTuple):
    """What an anchor named: the value, the line of its ``&``, and the lines below it.

    ``lines`` maps paths relative to the anchored value to their line, or None for a key merged in from a
    ``<<``, which ruamel records on the line of the mapping it was merged into (wherever that is).
    """

    value: Any
    line: int
    lines: list[tuple[KeyPath, int | None]]
    height: int  # the longest path below the value (0 for a scalar)


def parse(text: str) -> tuple[dict[str, Any], dict[KeyPath, int]] | None:
    """The document's data and the line of every key and item, or None when ruamel must read the text."""
    if _has_unusual(text):
        return None
    lines = text.split("\n")
    rows: list[tuple[int, int, str]] = []  # (line, indent, content) of every line that holds more than a comment
    for number, line in enumerate(lines, 1):
        content = line.lstrip(" ")
        if not content or content[0] == "#":
            continue
        indent = len(line) - len(content)
        if indent == 0 and content[0] in "-." and content[:3] in ("---", "..."):
            return None  # document markers
        rows.append((number, indent, content.rstrip(" ")))
    if not rows:
        return {}, {}
    reader = _Reader(rows, lines)
    try:
        first = rows[0]
        if _is_entry(first[2]):
            return None  # a sequence at the top: ruamel reports it
        data = reader.mapping(first[1], ())
        if reader.i != len(rows):
            return None
    except (Unsupported, LookupError, ValueError):
        return None
    return data, reader.lines


def _is_entry(content: str) -> bool:
    """A block sequence entry: ``-`` followed by a space or the end of the line."""
    return content[0] == "-" and (len(content) == 1 or content[1] == " ")


class _Reader:
    def __init__(self, rows: list[tuple[int, int, str]], text_lines: list[str]) -> None:
        self.rows = rows
        self.text_lines = text_lines  # every line of the text, for block scalars (blank and comment-like lines count)
        self.i = 0
        self.lines: dict[KeyPath, int] = {}
        self.anchors: dict[str, _Anchor] = {}
        self.merged: set[KeyPath] = set()  # keys that came from a '<<': on their mapping's line
        self.copied = 0  # values that aliases and merge keys copied in (yamlbounds: near the bound, ruamel reads)

    # ----------------------------------------------------------------- block structure

    def block(self, indent: int, path: KeyPath) -> Any:
        if _is_entry(self.rows[self.i][2]):
            return self.sequence(indent, path)
        return self.mapping(indent, path)

    def mapping(self, indent: int, path: KeyPath) -> dict[str, Any]:
        if len(path) >= MAX_DEPTH:
            raise Unsupported  # too deep: ruamel refuses it with its line
        rows = self.rows
        out: dict[str, Any] = {}
        sources: list[_Anchor] | None = None
        while self.i < len(rows):
            number, row_indent, content = rows[self.i]
            if row_indent < indent:
                break
            if row_indent > indent:
                raise Unsupported
            split = _split_key(content)
            if split is None:
                raise Unsupported
            name, rest = split
            self.i += 1
            if name is None:  # '<<': merged once the mapping's own keys are all known
                if sources is not None:
                    raise Unsupported  # a second '<<': ruamel reports it
                sources = self.merge_sources(rest)
                self.no_continuation(indent)
                continue
            if name in out:
                raise Unsupported  # a duplicate key: ruamel reports it
            child = (*path, name)
            self.lines[child] = number
            if rest:
                if rest[0] in "&*|>":
                    out[name] = self.marked(rest, number, child, indent, item=False)
                else:
                    out[name] = inline(rest, number, child, self.lines)
                    self.no_continuation(indent)
            elif self.i < len(rows) and rows[self.i][1] > indent:
                out[name] = self.block(rows[self.i][1], child)
            elif self.i < len(rows) and rows[self.i][1] == indent and _is_entry(rows[self.i][2]):
                out[name] = self.sequence(indent, child)
            else:
                out[name] = None
        if sources is not None:
            self.merge(out, path, sources)
        return out

    def sequence(self, indent: int, path: KeyPath) -> list[Any]:
        if len(path) >= MAX_DEPTH:
            raise Unsupported
        rows = self.rows
        items: list[Any] = []
        while self.i < len(rows):
            number, row_indent, content = rows[self.i]
            if row_indent < indent:
                break
            if row_indent > indent:
                raise Unsupported
            if not _is_entry(content):
                break  # a key at this indentation: the enclosing mapping goes on
            child = (*path, len(items))
            rest = content[1:].lstrip(" ")
            if not rest or rest[0] == "#":  # the item is on the following lines
                self.i += 1
                if self.i >= len(rows) or rows[self.i][1] <= indent:
                    raise Unsupported  # an empty item
                self.lines[child] = rows[self.i][0]
                items.append(self.block(rows[self.i][1], child))
                continue
            if _is_entry(rest):
                raise Unsupported  # "- - x"
            self.lines[child] = number
            if rest[0] in "&*|>":
                self.i += 1
                items.append(self.marked(rest, number, child, indent, item=True))
                continue
            if _split_key(rest) is not None:  # "- key: value": a mapping whose keys line up with this one
                column = indent + len(content) - len(rest)
                rows[self.i] = (number, column, rest)
                items.append(self.mapping(column, child))
                continue
            self.i += 1
            items.append(inline(rest, number, child, self.lines))
            self.no_continuation(indent)
        return items

    def marked(self, text: str, number: int, path: KeyPath, indent: int, item: bool) -> Any:
        """A value after ``key:`` or ``- `` (``item``) that starts with ``&``, ``*``, ``|`` or ``>``."""
        anchor = None
        if text[0] == "&":
            anchor, text = _anchor(text)
            if not text:  # the anchored value is on the following lines (its node starts at the anchor)
                rows = self.rows
                following = rows[self.i] if self.i < len(rows) else None
                if following is not None and following[1] > indent:
                    value = self.block(following[1], path)
                elif following is not None and not item and following[1] == indent and _is_entry(following[2]):
                    value = self.sequence(indent, path)
                else:
                    raise Unsupported  # an anchor on an empty value
                return self.define(anchor, value, number, path)
            if text[0] in "&*" or (item and _split_key(text) is not None):
                raise Unsupported  # two properties, or "- &a key: value" (which anchors the key)
        if text[0] == "*":
            value = self.alias(text, path, item)
        elif text[0] in "|>":
            value, end = block(self.text_lines, number - 1, text[1:], indent, text[0] == ">")
            rows = self.rows
            while self.i < len(rows) and rows[self.i][0] <= end:  # the scalar's lines (row numbers start at 1)
                self.i += 1
        else:
            value = inline(text, number, path, self.lines)
        self.no_continuation(indent)
        return value if anchor is None else self.define(anchor, value, number, path)

    def no_continuation(self, indent: int) -> None:
        """After a one-line value, a deeper line would continue it (a multi-line scalar) or be an error."""
        if self.i < len(self.rows) and self.rows[self.i][1] > indent:
            raise Unsupported

    # ----------------------------------------------------------------- anchors, aliases and merge keys

    def define(self, name: str, value: Any, number: int, path: KeyPath) -> Any:
        """Record the anchor ``&name`` on ``value`` (written on line ``number`` at ``path``); returns the value."""
        if name in self.anchors:
            raise Unsupported  # a reused anchor: ruamel warns
        table: list[tuple[KeyPath, int | None]] = []
        self.record(value, path, (), table)
        self.anchors[name] = _Anchor(value, number, table, max((len(relative) for relative, _ in table), default=0))
        return value

    def record(self, value: Any, path: KeyPath, relative: KeyPath, table: list[tuple[KeyPath, int | None]]) -> None:
        """The lines below ``path`` (where ``value`` sits), relative to it, parents before their children."""
        keys = value.keys() if isinstance(value, dict) else range(len(value)) if isinstance(value, list) else ()
        for key in keys:
            full = (*path, key)
            table.append(((*relative, key), None if full in self.merged else self.lines[full]))
            self.record(value[key], full, (*relative, key), table)

    def alias(self, text: str, path: KeyPath, item: bool = False) -> Any:
        """``*name`` as the value at ``path`` (a sequence item: on the anchor's line, where ruamel's node starts)."""
        found = _ALIAS.fullmatch(text)
        if found is None or found[1] not in self.anchors:
            raise Unsupported  # an undefined alias: ruamel reports it
        target = self.anchors[found[1]]
        self.copy_in(target, path)
        if item:
            self.lines[path] = target.line
        self.place(target.lines, path, None)
        return _copy(target.value)

    def merge_sources(self, text: str) -> list[_Anchor]:
        """The mappings a ``<<: *a`` or ``<<: [*a, *b]`` names, in order."""
        single = _ALIAS.fullmatch(text)
        if single is not None:
            names = [single[1]]
        elif _ALIAS_LIST.fullmatch(text):
            names = _ALIAS_NAME.findall(text[: text.index("]")])
        else:
            raise Unsupported
        sources = [self.anchors.get(name) for name in names]
        out = [s for s in sources if s is not None and isinstance(s.value, dict)]
        if len(out) != len(sources):
            raise Unsupported  # an undefined alias, or not a mapping: ruamel reports it
        return out

    def copy_in(self, target: _Anchor, path: KeyPath) -> None:
        """Count what an alias or merge copies in; well below the bounds or not at all (ruamel refuses it)."""
        self.copied += 1 + len(target.lines)
        if self.copied > MAX_ALIAS_VALUES // 2 or len(path) + target.height > MAX_DEPTH:
            raise Unsupported

    def merge(self, out: dict[str, Any], path: KeyPath, sources: list[_Anchor]) -> None:
        """YAML merge as ruamel does it: after the own keys, each source's keys not yet there, in order."""
        for source in sources:
            self.copy_in(source, (*path, "<<"))
            taken = {key for key in source.value if key not in out}
            for key, value in source.value.items():
                if key in taken:
                    out[key] = _copy(value)
            self.place(source.lines, path, taken)

    def place(self, table: list[tuple[KeyPath, int | None]], path: KeyPath, taken: set[str] | None) -> None:
        """An anchor's lines below ``path``; with ``taken``, only those keys, as merged-in ones."""
        lines = self.lines
        for relative, line in table:
            if taken is not None:
                if relative[0] not in taken:
                    continue
                if len(relative) == 1:
                    line = None
            full = (*path, *relative)
            if line is not None:
                lines[full] = line
                continue
            self.merged.add(full)
            parent = full[:-1]
            if parent in lines:
                lines[full] = lines[parent]


def _split_key(content: str) -> tuple[str | None, str] | None:
    """``key: rest`` -> (key, rest without its comment when rest is only a comment); None if not a key line.

    The key is None for the merge key ``<<`` (plain; a quoted ``"<<"`` is an ordinary key).
    """
    first = content[0]
    if first in "\"'":
        key, end = quoted(content, 0)
        after = content[end:].lstrip(" ")
        if not after.startswith(":") or (len(after) > 1 and after[1] != " "):
            return None
        rest = after[1:].lstrip(" ")
    else:
        if first in INDICATORS or (first == "-" and (len(content) == 1 or content[1] == " ")):
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
        rest = content[colon + 1 :].lstrip(" ")
        if raw == "<<":
            return None, "" if rest.startswith("#") else rest
        value = plain(raw)
        key = value if isinstance(value, str) else str(value)
    if rest.startswith("#"):
        rest = ""
    return key, rest


def _anchor(text: str) -> tuple[str, str]:
    """``&name rest`` -> (name, rest), rest empty when it is only a comment (the value is on the next lines)."""
    found = _ANCHOR.match(text)
    if found is None:
        raise Unsupported
    rest = text[found.end() :]
    return found[1], "" if rest.startswith("#") else rest


def _copy(value: Any) -> Any:
    """A fresh copy of parsed data (each alias and merge gets its own, as yamlfile gives)."""
    if isinstance(value, dict):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value
