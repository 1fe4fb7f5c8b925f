"""Reading Compose YAML: text in, plain Python data plus the line of every key out.

Owns the YAML 1.2 round-trip parse (``22:22`` and ``on`` stay strings), Compose's ``!reset`` and ``!override``
tags (kept as ``RESET`` / ``Override(value)`` markers for ``merge``), the side table of line numbers and the
``Locations`` that answer "where was this key written?" across several files. Never interpolates, merges or
interprets Compose keys. Texts in the plain subset of YAML that ``yamlfast`` reads (most Compose files) are read
by it, about 50 times faster; everything else, and every error, goes through ruamel (imported only then). Both
keep to ``yamlbounds``: the file size, the nesting depth and what aliases expand to are bounded.
"""

from __future__ import annotations

import datetime
import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unistack.config import inputs, yamlbounds, yamlfast
from unistack.errors import ConfigError, Problem

KeyPath = tuple[str | int, ...]


class _Reset:
    """The value of a ``!reset`` node: remove what the files before this one said."""

    _instance: _Reset | None = None

    def __new__(cls) -> _Reset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "RESET"


RESET = _Reset()


@dataclass(frozen=True)
class Override:
    """The value of an ``!override`` node: replace what the files before this one said, without merging."""

    value: Any


@dataclass
class YamlDocument:
    """One parsed file: plain data (dicts, lists, str, int, float, bool, None, markers) and key lines."""

    path: Path | None
    data: dict[str, Any]
    lines: dict[KeyPath, int] = field(default_factory=dict)


def read_yaml_file(path: Path) -> YamlDocument:
    """Read and parse one Compose file; a missing or unreadable file is a ConfigError naming it."""
    try:
        size = path.stat().st_size
        if size > yamlbounds.MAX_FILE_BYTES:
            raise yamlbounds.too_big(path, size)
        text = inputs.read_text(path)
    except FileNotFoundError:
        raise ConfigError(
            Problem(
                f"compose file {path} does not exist.",
                file=path,
                fix="run in a folder with compose.yaml or pass -f FILE.",
            )
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(Problem(f"cannot read compose file {path}: {exc}.", file=path)) from None
    return parse_yaml(text, path)


def parse_yaml(text: str, path: Path | None = None) -> YamlDocument:
    """Parse Compose YAML text; syntax errors become a ConfigError with file and line."""
    if len(text) > yamlbounds.MAX_FILE_BYTES:
        raise yamlbounds.too_big(path, len(text.encode("utf-8", "surrogatepass")))
    fast = yamlfast.parse(text)
    if fast is not None:
        data, lines = fast
        return YamlDocument(path, data, lines)
    return _parse_with_ruamel(text, path)


def _parse_with_ruamel(text: str, path: Path | None) -> YamlDocument:
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap
    from ruamel.yaml.composer import MaxDepthExceededError
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    yaml = YAML(typ="rt")
    yaml.version = (1, 2)
    yaml.max_depth = yamlbounds.MAX_DEPTH + 1  # the top mapping is depth 1
    yaml.Composer = _bounded_composer()
    try:
        root = yaml.load(text)
    except MaxDepthExceededError as exc:
        mark = exc.problem_mark
        raise yamlbounds.too_deep(path, mark.line + 1 if mark is not None else None) from None
    except _Refused as exc:
        raise exc.error(path, exc.line) from None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        what = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise ConfigError(
            Problem(
                f"invalid YAML: {what or exc}.",
                file=path,
                line=line,
                fix="check the indentation and quoting on that line.",
            )
        ) from None
    except YAMLError as exc:
        raise ConfigError(Problem(f"invalid YAML: {exc}.", file=path)) from None
    except (TypeError, ValueError) as exc:  # ruamel's constructor: a key that is a mapping or list (``? {a: 1}``)
        raise ConfigError(
            Problem(
                f"invalid YAML: a key that is not a plain value ({exc}).",
                file=path,
                fix="Compose keys are names: write them as plain words, not as mappings or lists.",
            )
        ) from None
    if root is None:
        return YamlDocument(path, {})
    if not isinstance(root, CommentedMap):
        raise ConfigError(
            Problem(
                "a compose file must be a mapping at the top (services:, volumes:, ...).",
                file=path,
                line=1,
                fix="start the file with 'services:'.",
            )
        )
    lines: dict[KeyPath, int] = {}
    data = _plain(root, (), lines)
    assert isinstance(data, dict)
    return YamlDocument(path, data, lines)


class _Refused(Exception):
    """Raised inside ruamel's composer: which bound (a ``yamlbounds`` function) and the line of the alias."""

    def __init__(self, error: Callable[[Path | None, int | None], ConfigError], line: int) -> None:
        super().__init__(line)
        self.error = error
        self.line = line


@functools.cache
def _bounded_composer() -> Any:
    """ruamel's Composer, counting what each alias copies in (as if written out) before it is used.

    ruamel shares an aliased node instead of copying it, so reading a "billion laughs" file is quick; what is
    bounded here is what converting it to plain data (``_plain``) would make: the values and the depth.
    """
    from ruamel.yaml.composer import Composer
    from ruamel.yaml.events import AliasEvent
    from ruamel.yaml.nodes import MappingNode, ScalarNode

    class BoundedComposer(Composer):
        copied = 0

        def __init__(self, loader: Any = None) -> None:
            super().__init__(loader)
            self.warn_double_anchors = False  # a reused anchor: the later one wins, as in Compose (no warning)

        measured: dict[int, tuple[int, int]]  # id(node) -> (values, height), for nodes already measured

        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.parser.check_event(AliasEvent):
                event = self.parser.peek_event()
                target = self.anchors.get(event.anchor)
                if target is not None:
                    line = event.start_mark.line + 1
                    values, height = self.measure(target, line)
                    self.copied += values
                    if self.copied > yamlbounds.MAX_ALIAS_VALUES:
                        raise _Refused(yamlbounds.too_many_aliases, line)
                    if self.depth + height > yamlbounds.MAX_DEPTH + 1:
                        raise _Refused(yamlbounds.too_deep, line)
            return super().compose_node(parent, index)

        def measure(self, node: Any, line: int) -> tuple[int, int]:
            if not hasattr(self, "measured"):
                self.measured = {}
            if isinstance(node, ScalarNode):
                return 1, 0
            known = self.measured.get(id(node))
            if known is not None:
                return known
            if node.end_mark is None:  # still being composed: the alias is inside its own anchor
                raise _Refused(yamlbounds.recursive_alias, line)
            children = [v for _, v in node.value] if isinstance(node, MappingNode) else node.value
            values, height = 1, 0
            for child in children:
                child_values, child_height = self.measure(child, line)
                values += child_values
                height = max(height, child_height + 1)
            self.measured[id(node)] = (values, height)
            return values, height

    return BoundedComposer


_INT = re.compile(r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")


def _resolve_scalar(text: str, style: str | None) -> Any:
    """YAML 1.2 core schema for the text of a tagged scalar (``!override 3`` is the int 3)."""
    if style:
        return text
    if text in ("", "~", "null", "Null", "NULL"):
        return None
    if text in ("true", "True", "TRUE"):
        return True
    if text in ("false", "False", "FALSE"):
        return False
    if _INT.fullmatch(text):
        return int(text, 0) if text[:2] in ("0o", "0x") else int(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    return text


def _tag(node: Any) -> str | None:
    tag = getattr(node, "tag", None)
    value = getattr(tag, "value", None)
    return value if isinstance(value, str) else None


def _plain(node: Any, path: KeyPath, lines: dict[KeyPath, int]) -> Any:
    """Convert ruamel's round-trip node to plain data, recording the line of every key and item."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar

    tag = _tag(node) if isinstance(node, CommentedMap | CommentedSeq | TaggedScalar) else None
    if tag == "!reset":
        return RESET
    if tag == "!override":
        inner = _resolve_scalar(str(node.value), node.style) if isinstance(node, TaggedScalar) else node
        if isinstance(inner, CommentedMap | CommentedSeq):
            inner = _plain_container(inner, path, lines)
        return Override(inner)
    if isinstance(node, CommentedMap | CommentedSeq):
        return _plain_container(node, path, lines)
    if isinstance(node, TaggedScalar):
        return _resolve_scalar(str(node.value), node.style)
    return _plain_scalar(node)


def _plain_container(node: Any, path: KeyPath, lines: dict[KeyPath, int]) -> Any:
    from ruamel.yaml.comments import CommentedMap

    if isinstance(node, CommentedMap):
        out: dict[str, Any] = {}
        for key in node:
            name = key if isinstance(key, str) else str(_plain_scalar(key))
            child = (*path, name)
            line = _key_line(node, key)
            if line is not None:
                lines[child] = line
            elif path in lines:
                lines.setdefault(child, lines[path])
            out[name] = _plain(node[key], child, lines)
        return out
    items: list[Any] = []
    for index, item in enumerate(node):
        child = (*path, index)
        try:
            lines[child] = node.lc.item(index)[0] + 1
        except (KeyError, IndexError, TypeError, AttributeError):
            if path in lines:
                lines[child] = lines[path]
        items.append(_plain(item, child, lines))
    return items


def _key_line(node: Any, key: Any) -> int | None:
    try:
        return int(node.lc.key(key)[0]) + 1
    except (KeyError, IndexError, TypeError, AttributeError):
        return None  # a key that came in through a '<<' merge key


def _plain_scalar(value: Any) -> Any:
    from ruamel.yaml.scalarbool import ScalarBoolean

    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, ScalarBoolean):  # an anchored true or false: an int subclass, kept for its anchor
        return bool(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value


def strip_markers(value: Any) -> Any:
    """Plain data without ``!reset``/``!override`` markers (what a single file means on its own)."""
    if isinstance(value, Override):
        return strip_markers(value.value)
    if isinstance(value, dict):
        return {k: strip_markers(v) for k, v in value.items() if v is not RESET}
    if isinstance(value, list):
        return [strip_markers(v) for v in value if v is not RESET]
    return value


@dataclass
class Locations:
    """Where keys were written, across every file that went into a document (later files win)."""

    documents: list[tuple[Path | None, dict[KeyPath, int]]] = field(default_factory=list)

    def add(self, path: Path | None, lines: dict[KeyPath, int], prefix: KeyPath = ()) -> None:
        table = {(*prefix, *k): v for k, v in lines.items()} if prefix else lines
        self.documents.append((path, table))

    def find(self, key: Iterable[str | int]) -> tuple[Path | None, int | None]:
        """The file and line that last set ``key``, or of its nearest written parent."""
        path = tuple(key)
        while path:
            for file, table in reversed(self.documents):
                if path in table:
                    return file, table[path]
            path = path[:-1]
        for file, _ in self.documents:
            return file, None
        return None, None

    def problem(self, key: Iterable[str | int], message: str, fix: str | None = None) -> Problem:
        """A Problem located at ``key`` (file, line, dotted key path)."""
        parts = tuple(key)
        file, line = self.find(parts)
        return Problem(message, file=file, line=line, key=dotted(parts), fix=fix)


def dotted(key: Iterable[str | int]) -> str:
    """``("services", "web", "ports", 0)`` -> ``services.web.ports[0]``."""
    text = ""
    for part in key:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text
