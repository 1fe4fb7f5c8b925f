"""``.env`` files, parsed the way compose-go's dotenv package parses them.

Owns the syntax: ``KEY=value``, ``KEY: value``, an ``export`` prefix, inline ``#`` comments after a space,
single quotes (literal), double quotes (shell escapes, then ``${VAR}`` expansion), multi-line quoted values,
a bare ``KEY`` (taken from the environment if set there), keys starting with a digit (ignored), and expansion
of unquoted and double-quoted values from the given environment first, then the keys read earlier in the
same file. Never touches os.environ.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from unistack.config import inputs
from unistack.config.interpolation import InterpolationError, interpolate
from unistack.errors import ConfigError, Problem

_EXPORT = re.compile(r"export[ \t\v\f\r\x85\xa0]+")
_SPACE = " \t\v\f\r\x85\xa0"
_ESCAPE = re.compile(r"\\(?:[abcfnrtv$\"\\]|0[0-9]{0,3})")
_SIMPLE_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    '"': '"',
    "\\": "\\",
}


def parse_dotenv(text: str, env: Mapping[str, str] | None = None, *, file: Path | None = None) -> dict[str, str]:
    """Parse ``.env`` text into a mapping.

    ``env`` (the OS environment, say) is consulted first when expanding ``$VAR`` and for a bare ``KEY``
    line; keys defined earlier in the text come next. Errors raise ConfigError naming ``file`` and line.
    """
    return _Parser(text, env or {}, file).parse()


def read_env_file(path: Path, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Read and parse one ``.env`` file; a missing file is a ConfigError naming it."""
    return read_env_file_lines(path, env)[0]


def read_env_file_lines(path: Path, env: Mapping[str, str] | None = None) -> tuple[dict[str, str], dict[str, int]]:
    """Read and parse one ``.env`` file: its values, and the line where each was set (the last time)."""
    try:
        text = inputs.read_text(path)
    except FileNotFoundError:
        raise ConfigError(
            Problem(f"env file {path} does not exist.", file=path, fix="create it or remove the reference.")
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(Problem(f"cannot read env file {path}: {exc}.", file=path)) from None
    parser = _Parser(text, env or {}, path)
    values = parser.parse()
    return values, parser.lines(values)


class _Parser:
    def __init__(self, text: str, env: Mapping[str, str], file: Path | None) -> None:
        text = text.removeprefix("\ufeff").replace("\r\n", "\n")
        self.text = text
        self.pos = 0
        self.env = env
        self.file = file
        self.out: dict[str, str] = {}
        self.starts: dict[str, int] = {}  # where each key was last set (an offset; lines counted only when asked)

    @property
    def line(self) -> int:
        return self.text.count("\n", 0, self.pos) + 1

    def lines(self, keys: Iterable[str]) -> dict[str, int]:
        return {k: self.text.count("\n", 0, self.starts[k]) + 1 for k in keys if k in self.starts}

    def error(self, message: str, fix: str | None = None) -> ConfigError:
        return ConfigError(Problem(message, file=self.file, line=self.line, fix=fix))

    def parse(self) -> dict[str, str]:
        while self._statement_start():
            start = self.pos
            key, inherited = self._key()
            self.starts[key] = start
            if inherited:
                value = self.env.get(key)
                if value is not None:
                    self.out[key] = value
                continue
            self.out[key] = self._value()
        return {k: v for k, v in self.out.items() if not k[:1].isdigit()}  # as compose-go: ignored

    def _statement_start(self) -> bool:
        """Skip blank space and comment lines; False at the end of the text."""
        text = self.text
        while self.pos < len(text):
            char = text[self.pos]
            if char in _SPACE or char == "\n":
                self.pos += 1
            elif char == "#":
                end = text.find("\n", self.pos)
                self.pos = len(text) if end < 0 else end
            else:
                return True
        return False

    def _key(self) -> tuple[str, bool]:
        text = self.text
        if match := _EXPORT.match(text, self.pos):
            self.pos = match.end()
        start = self.pos
        while self.pos < len(text):
            char = text[self.pos]
            if char in "=:\n":
                key = text[start : self.pos].rstrip(_SPACE)
                self.pos += 1
                if not key:
                    raise self.error("a line has no variable name before '='.", "write lines as KEY=value.")
                if " " in key or "\t" in key:
                    raise self.error(f"key {key!r} cannot contain a space.", "remove the space or quote the value.")
                if char != "\n":
                    while self.pos < len(text) and text[self.pos] in _SPACE:
                        self.pos += 1
                return key, char == "\n"
            if not (char in _SPACE or char in "_.-[]" or char.isalnum()):
                first_line = text[start:].split("\n", 1)[0]
                raise self.error(
                    f"unexpected character {char!r} in variable name {first_line!r}.",
                    "write lines as KEY=value; names use letters, digits, '_', '.', '-'.",
                )
            self.pos += 1
        return text[start:].rstrip(_SPACE), True

    def _expand(self, value: str) -> str:
        try:
            return interpolate(value, {**self.out, **self.env})
        except InterpolationError as exc:
            raise self.error(exc.message + ".") from None

    def _value(self) -> str:
        text = self.text
        quote = text[self.pos] if self.pos < len(text) else ""
        if quote not in ("'", '"'):
            end = text.find("\n", self.pos)
            end = len(text) if end < 0 else end
            raw = text[self.pos : end]
            value = self._expand(raw.split(" #", 1)[0].rstrip())
            self.pos = end
            return value
        start = self.pos
        chars: list[str] = []
        escaped = False
        index = self.pos + 1
        while index < len(text):
            char = text[index]
            if char != quote:
                if not escaped and char == "\\":
                    escaped = True
                elif escaped:
                    escaped = False
                    chars.append("\\" + char)
                else:
                    chars.append(char)
                index += 1
                continue
            if escaped:
                escaped = False
                chars.append(char)
                index += 1
                continue
            self.pos = index + 1
            value = "".join(chars)
            return self._expand(_expand_escapes(value)) if quote == '"' else value
        self.pos = start
        first_line = text[start:].split("\n", 1)[0]
        raise self.error(f"unterminated quoted value {first_line}.", f"close the value with {quote}.")


def _expand_escapes(value: str) -> str:
    def replace(match: re.Match[str]) -> str:
        seq = match.group()
        if seq == "\\$":
            return "$$"
        if seq.startswith("\\0"):
            digits = seq[2:]  # Go reads "\0123" as the octal escape "\123"; anything else stays as written
            if len(digits) == 3 and all(d in "01234567" for d in digits) and int(digits, 8) < 256:
                return chr(int(digits, 8))
            return seq
        return _SIMPLE_ESCAPES.get(seq[1], seq)

    return _ESCAPE.sub(replace, value)
