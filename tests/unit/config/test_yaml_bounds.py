"""The YAML readers' bounds (config/yamlbounds.py): alias bombs, deep nesting and huge files are refused, quickly,
with file and line, by the fast reader and by ruamel alike."""

from __future__ import annotations

from pathlib import Path

import pytest

from unistack.config import yamlbounds, yamlfast
from unistack.config.yamlfile import parse_yaml, read_yaml_file
from unistack.errors import ConfigError


def _laughs(levels: int, block: bool) -> str:
    """A 'billion laughs' file: each anchor ten aliases of the one before (10**levels values)."""
    lines = ['x-l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels + 1):
        if block:
            lines.append(f"x-l{level}: &l{level}")
            lines.extend(f"  - *l{level - 1}" for _ in range(10))
        else:
            lines.append(f"x-l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * 10) + "]")
    return "\n".join([*lines, "services:", "  web:", "    image: nginx", ""])


def _refusal(text: str) -> str:
    with pytest.raises(ConfigError) as raised:
        parse_yaml(text, Path("compose.yaml"))
    (problem,) = raised.value.problems
    assert problem.file == Path("compose.yaml")
    assert problem.line is not None
    return problem.message


@pytest.mark.parametrize("block", [True, False], ids=["block", "flow"])
def test_a_billion_laughs_is_refused_as_excessive_aliasing(block: bool) -> None:
    assert "excessive aliasing" in _refusal(_laughs(9, block))
    assert "100,000" in _refusal(_laughs(5, block))  # 10**5 * 1.1 values: just over the bound


def test_aliases_well_under_the_bound_are_read() -> None:
    document = parse_yaml(_laughs(3, block=True))
    assert len(document.data["x-l3"]) == 10
    assert yamlfast.parse(_laughs(3, block=True)) is not None  # the fast reader still reads it


def test_an_alias_inside_its_own_anchor_is_refused() -> None:
    assert "endless" in _refusal("x-a: &a [1, *a]\nservices: {}\n")
    assert "endless" in _refusal("x-a: &a\n  b: *a\n")


def _deep_block(levels: int) -> str:
    return "\n".join(" " * i + f"k{i}:" for i in range(levels)) + " 1\n"


@pytest.mark.parametrize(
    "text",
    [
        "x: " + "[" * 2000 + "]" * 2000 + "\n",
        "x: " + "{a: " * 200 + "1" + "}" * 200 + "\n",
        _deep_block(500),
        "x-a: &a " + "[" * 60 + "1" + "]" * 60 + "\nx-b: &b " + "[" * 40 + "*a" + "]" * 40 + "\nx-c: [[[*b]]]\n",
    ],
    ids=["flow-2000", "flow-map-200", "block-500", "through-aliases"],
)
def test_nesting_deeper_than_the_bound_is_refused(text: str) -> None:
    assert f"deeper than {yamlbounds.MAX_DEPTH}" in _refusal(text)


def test_nesting_at_the_bound_is_read_by_both_readers() -> None:
    text = _deep_block(yamlbounds.MAX_DEPTH)
    fast = yamlfast.parse(text)
    assert fast is not None
    assert parse_yaml(text).data == fast[0]


def test_a_file_over_the_size_bound_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "compose.yaml"
    with path.open("w") as out:
        out.write("services: {}\n")
        out.truncate(yamlbounds.MAX_FILE_BYTES + 1)
    with pytest.raises(ConfigError) as raised:
        read_yaml_file(path)
    assert raised.value.problems[0].file == path
    assert "at most 10 MB" in str(raised.value)
