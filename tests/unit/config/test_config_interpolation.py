"""Interpolation: the template language and whole-document interpolation with every problem listed."""

from __future__ import annotations

from pathlib import Path

import pytest

from unistack.config import interpolate
from unistack.config.interpolation import InterpolationError, interpolate_tree
from unistack.config.yamlfile import Locations, parse_yaml
from unistack.errors import ConfigError

ENV = {"SET": "value", "EMPTY": ""}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("$SET", "value"),
        ("${SET}", "value"),
        ("${UNSET}", ""),
        ("${UNSET:-default}", "default"),
        ("${EMPTY:-default}", "default"),
        ("${EMPTY-default}", ""),
        ("${UNSET-default}", "default"),
        ("${SET:+alt}", "alt"),
        ("${EMPTY:+alt}", ""),
        ("${EMPTY+alt}", "alt"),
        ("${UNSET+alt}", ""),
        ("${SET?err}", "value"),
        ("${EMPTY?err}", ""),
        ("${A:-${B:-x}}", "x"),
        ("${UNSET:-${SET}}/path", "value/path"),
        ("$$SET", "$SET"),
        ("$${SET}", "${SET}"),
        ("cost: 5$", "cost: 5$"),
        ("$SET-suffix", "value-suffix"),
        ("22:22", "22:22"),
    ],
)
def test_templates(template: str, expected: str) -> None:
    assert interpolate(template, ENV) == expected


@pytest.mark.parametrize("template", ["${", "${}", "${ SET}", "${SET }", "${SET!}", "${9X}"])
def test_invalid_templates_raise(template: str) -> None:
    with pytest.raises(InterpolationError, match="Invalid template"):
        interpolate(template, ENV)


@pytest.mark.parametrize("template", ["${UNSET:?must be set}", "${EMPTY:?must be set}", "${UNSET?must be set}"])
def test_required_variables(template: str) -> None:
    with pytest.raises(ConfigError) as raised:
        interpolate(template, ENV)
    assert "must be set" in str(raised.value)
    assert raised.value.variable is not None  # type: ignore[attr-defined]


def test_defaults_are_lazy() -> None:
    missing: list[str] = []
    assert interpolate("${SET:-${NOPE}}", ENV, on_missing=missing.append) == "value"
    assert missing == []
    interpolate("${UNSET:-${NOPE}}", ENV, on_missing=missing.append)
    assert missing == ["NOPE"]


def test_tree_interpolates_values_not_keys() -> None:
    tree = {"services": {"${SET}": {"image": "${SET}", "ports": ["${SET}", 80], "x": None}}}
    assert interpolate_tree(tree, ENV) == {
        "services": {"${SET}": {"image": "value", "ports": ["value", 80], "x": None}}
    }


def test_tree_lists_every_missing_variable_with_file_line_and_key() -> None:
    path = Path("/p/compose.yaml")
    document = parse_yaml(
        "services:\n"
        "  web:\n"
        "    image: ${IMAGE:?set IMAGE}\n"
        "    environment:\n"
        "      A: ${A:?}\n"
        "      B: ${B:?set B} and ${C:?set C}\n",
        path,
    )
    locations = Locations()
    locations.add(path, document.lines)
    with pytest.raises(ConfigError) as raised:
        interpolate_tree(document.data, {}, locations=locations)
    problems = raised.value.problems
    assert [(p.line, p.key) for p in problems] == [
        (3, "services.web.image"),
        (5, "services.web.environment.A"),
        (6, "services.web.environment.B"),
        (6, "services.web.environment.B"),
    ]
    assert all(p.file == path for p in problems)
    text = str(raised.value)
    for name in ("IMAGE", "A", "B", "C"):
        assert f"{name} is not set (required by compose.yaml:" in text  # one line per variable
    assert "compose.yaml:3" in text
