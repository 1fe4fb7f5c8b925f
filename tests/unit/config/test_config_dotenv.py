"""``.env`` parsing (compose-go's dotenv rules) and its errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from unistack.config import parse_dotenv
from unistack.errors import ConfigError


def test_basic_forms() -> None:
    text = """
# a comment
PLAIN=value
SPACED = spaced value  # comment
export EXPORTED=1
YAML: style
SINGLE='literal $PLAIN \\n'
DOUBLE="tab\\tand ${PLAIN}"
HASH="a#b" # trailing
EMPTY=
MULTI="line one
line two"
"""
    assert parse_dotenv(text) == {
        "PLAIN": "value",
        "SPACED": "spaced value",
        "EXPORTED": "1",
        "YAML": "style",
        "SINGLE": "literal $PLAIN \\n",
        "DOUBLE": "tab\tand value",
        "HASH": "a#b",
        "EMPTY": "",
        "MULTI": "line one\nline two",
    }


def test_expansion_prefers_the_given_environment_then_earlier_keys() -> None:
    text = "A=file\nB=${A}\nC=$UNSET_HERE\nD=${A:-x}-${Z:-z}"
    assert parse_dotenv(text, {"A": "os"}) == {"A": "file", "B": "os", "C": "", "D": "os-z"}
    assert parse_dotenv(text)["B"] == "file"


def test_bare_key_comes_from_the_environment_or_is_dropped() -> None:
    assert parse_dotenv("HOME\nOTHER\n", {"HOME": "/root"}) == {"HOME": "/root"}


def test_escaped_dollar_is_literal() -> None:
    assert parse_dotenv('A=x\nB="\\${A} $$A ${A}"') == {"A": "x", "B": "${A} $A x"}


@pytest.mark.parametrize(
    ("text", "line"),
    [('A=1\nB="unterminated\n', 2), ("A=1\n\nlol$wut\n", 3), ("A=1\nB C=2\n", 2), ("A=${X:?needed}\n", 1)],
)
def test_errors_name_file_and_line(text: str, line: int) -> None:
    path = Path("/p/.env")
    with pytest.raises(ConfigError) as raised:
        parse_dotenv(text, file=path)
    problem = raised.value.problems[0]
    assert problem.file == path
    assert problem.line == line
