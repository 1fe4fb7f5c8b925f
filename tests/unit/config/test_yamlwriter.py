"""The fast YAML writer against ruamel: whatever it writes, ruamel reads back to the same document.

Read back twice, as YAML 1.2 (ruamel's default, as Compose's yaml.v3) and as YAML 1.1 (where ``yes``, ``on``,
``1:30`` and ``2001-12-14`` are not strings), with types and key order compared. The documents are the stack's
resolved configurations, a handwritten list of awkward strings, and hypothesis-generated trees of scalars whose
strings are drawn from YAML's indicators, digits, letters and spaces, so that near-misses are common. The writer
may decline (None: ruamel writes the document); it must decline only for what it says it leaves to ruamel.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from unistack import config
from unistack.config import yamlwriter
from unistack.config.rendering import render

ROOT = Path(__file__).resolve().parents[3]

AWKWARD = [
    "",
    " ",
    "a ",
    " a",
    "-",
    "- a",
    "-a",
    "--extra",
    "---",
    "...",
    "?",
    "? a",
    ":",
    "a:",
    "a: b",
    "a:b",
    "#",
    "a #b",
    "a#b",
    "&a",
    "*a",
    "!a",
    "|",
    ">",
    "'",
    '"',
    "%a",
    "@a",
    "`a",
    "[a]",
    "{a}",
    "a,b",
    "a, b",
    "y",
    "n",
    "yes",
    "No",
    "on",
    "OFF",
    "true",
    "False",
    "null",
    "Null",
    "~",
    "=",
    "<<",
    ".inf",
    "-.inf",
    ".NaN",
    "0",
    "-1",
    "+1",
    "007",
    "0o7",
    "0x1f",
    "0b101",
    "1_000",
    "1.5",
    "1.",
    ".5",
    "1e3",
    "1E-3",
    "1:30",
    "190:20:30",
    "22:22",
    "80:80",
    "3000:3000",
    "127.0.0.1:8080:80",
    "2001-12-14",
    "2001-12-14t21:59:43.10-05:00",
    "5s",
    "200ms",
    "1.2.3",
    "16-alpine",
    ".env",
    "./app",
    "/data/uploads",
    "$$HOME",
    "$${X:-y}",
    "it's",
    "a 'b' c",
    'say "hi"',
    "http://u:p@h:80/x?y=1&z=2",
    "postgres://app:pw@db:5432/app",
    "CMD-SHELL",
    "exit 0 || exit 1",
    "a\\b",
    "a\nb",
    "a\n",
    "\n",
    "tab\there",
    'x\\n"\n"y',
    "é",
    "\x85",
    "\u2028",
]


def _read(text: str, version: tuple[int, int] | None) -> Any:
    yaml = YAML(typ="safe", pure=True)
    if version is not None:
        yaml.version = version
    return yaml.load(io.StringIO(text))


def _same(a: Any, b: Any) -> bool:
    """Equal with types (1 != 1.0 != True) and key order."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


def _check(document: Any) -> str | None:
    text = yamlwriter.dump(document)
    if text is not None:
        for version in (None, (1, 1)):
            back = _read(text, version)
            assert _same(back, document), f"YAML {version or '1.2'} reads back\n{back!r}\nfrom\n{text}"
    return text


@pytest.mark.parametrize("value", AWKWARD)
def test_each_awkward_string_reads_back_as_itself(value: str) -> None:
    text = _check({"key": value, value or "k": [value, {value or "k": value}]})
    leaves_to_ruamel = any(c not in "\n\t" and not (" " <= c <= "~") for c in value)
    assert (text is None) == leaves_to_ruamel


def test_the_stack_configurations_are_written_fast_and_read_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTGRES_PASSWORD", "a-password")
    for env in ("local", "staging", "production"):
        project = config.load([str(ROOT / "stack" / "compose.yaml")], env_name=env)
        for redacted in (True, False):
            text = render(project, "yaml", redacted=redacted)
            document = _read(text, None)
            assert yamlwriter.dump(document) == text, "the stack's document took ruamel's path"


_ALPHABET = list("aZ09_-.:/ #&*!|>'\"%@`,[]{}?~=<$\\+eExob\n\t")
_text = st.text(alphabet=st.sampled_from(_ALPHABET), max_size=8) | st.sampled_from(AWKWARD)
_scalars = st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.floats(allow_nan=False) | _text
_documents = st.recursive(
    _scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_text, children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(_text, _documents, max_size=5))
def test_generated_documents_read_back(document: dict[str, Any]) -> None:
    _check(document)
