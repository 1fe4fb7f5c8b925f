"""Conformance of unistack's Compose loader against public test vectors.

The vectors (../shared/conformance, or UNISTACK_CONFORMANCE_DIR) are data taken from the test suites of
compose-spec/compose-go (commit e70e961, Apache-2.0) and the merge chapter of the Compose Specification
(compose-spec/compose-spec commit 170098b, Apache-2.0). Only the data was taken, no code.

Every vector is one parametrised test (id = the vector's id). Vectors we knowingly do not pass are listed with
a reason in known_differences.json and marked xfail(strict=True), so fixing one forces updating the list.
Merge results are compared through a canonical view: KEY=VALUE lists equal mappings, set-like lists compare
as sets, and empty collections equal absent keys.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from unistack.config import interpolate, merge_texts, parse_dotenv
from unistack.config.interpolation import interpolate_tree
from unistack.config.yamlfile import parse_yaml, strip_markers
from unistack.errors import ConfigError


def _vectors_dir() -> Path:
    configured = os.environ.get("UNISTACK_CONFORMANCE_DIR")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2].parent / "shared" / "conformance"


VECTORS = _vectors_dir()
if not (VECTORS / "template_cases.json").is_file():
    pytest.skip(f"conformance vectors not found in {VECTORS}", allow_module_level=True)

KNOWN: dict[str, str] = json.loads((Path(__file__).parent / "known_differences.json").read_text())
TEMPLATE_ENV = {"FOO": "first", "BAR": "", "JSON": '{"json":2}'}


def _load(name: str) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = json.loads((VECTORS / name).read_text(encoding="utf-8"))
    return records


# --- one runner per vector file ----------------------------------------------------------------------------


def _operator_outcomes(operator: str, argument: str) -> dict[str, str | None]:
    """What ``${VARNAME<op><arg>}`` gives when VARNAME is unset, empty, or "x" (None = an error)."""
    table: dict[str, tuple[str | None, str | None, str | None]] = {
        ":-": (argument, argument, "x"),
        "-": (argument, "", "x"),
        ":?": (None, None, "x"),
        "?": (None, "", "x"),
        ":+": ("", "", argument),
        "+": ("", argument, argument),
    }
    unset, empty, present = table[operator]
    return {"unset": unset, "empty": empty, "set": present}


def run_template(case: dict[str, Any]) -> None:
    if case.get("kind") == "operator_choice":
        inner: str = case["inner"]
        operator: str = case["operator"]
        argument = inner[len("VARNAME") + len(operator) :]
        envs: dict[str, dict[str, str]] = {"unset": {}, "empty": {"VARNAME": ""}, "set": {"VARNAME": "x"}}
        for state, expected in _operator_outcomes(operator, argument).items():
            template = "${" + inner + "}"
            if expected is None:
                with pytest.raises(ConfigError):
                    interpolate(template, envs[state])
            else:
                assert interpolate(template, envs[state]) == expected, state
        return
    env = case.get("env", TEMPLATE_ENV)
    missing: list[str] = []
    if "error_contains" in case:
        with pytest.raises(ConfigError) as raised:
            interpolate(case["template"], env)
        assert case["error_contains"] in str(raised.value)
        return
    assert interpolate(case["template"], env, on_missing=missing.append) == case["expected"]
    if "warnings" in case:
        assert len(missing) == case["warnings"], missing


def run_interpolation(case: dict[str, Any]) -> None:
    keys = case["path"].split(".")
    tree: Any = case["template"]
    for key in reversed(keys):
        tree = {key: tree}
    if "error_equals" in case:
        with pytest.raises(ConfigError) as raised:
            interpolate_tree(tree, case["env"])
        assert [p.message for p in raised.value.problems] == [case["error_equals"]]
        return
    result = interpolate_tree(tree, case["env"])
    for key in keys:
        result = result[key]
    assert result == case["expected"]


def run_dotenv(case: dict[str, Any]) -> None:
    kind = case.get("kind")
    if kind == "expand_value":
        if case.get("error"):
            with pytest.raises(ConfigError):
                parse_dotenv(case["input"], case["env"])
            return
        key, _, _ = case["input"].partition("=")
        assert f"{key}={parse_dotenv(case['input'], case['env'])[key]}" == case["expected"]
        return
    presets: dict[str, str] = case.get("presets_not_overridden", {})
    env = {**case.get("os_env", {}), **presets}
    if case.get("error"):
        with pytest.raises(ConfigError):
            parse_dotenv(case["input"], env)
        return
    result = parse_dotenv(case["input"], env)
    result.update(presets)  # loading never overrides what the environment already sets
    if case.get("partial", False):
        result = {k: v for k, v in result.items() if k in case["expect"]}
    assert result == case["expect"]


_KV_KEYS = {"environment", "labels", "annotations", "args", "sysctls", "additional_contexts"}
_SET_KEYS = {
    "profiles",
    "cap_add",
    "cap_drop",
    "dns",
    "dns_opt",
    "dns_search",
    "tmpfs",
    "env_file",
    "platform",
    "tags",
    "extra_hosts",
    "links",
    "devices",
    "expose",
}


def _scalar_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def canonical(value: Any, key: str | None = None) -> Any:
    """The comparable view of a merged Compose document (see the module docstring)."""
    if key in _KV_KEYS and isinstance(value, list | dict):
        if isinstance(value, list):
            pairs = [str(item).partition("=") for item in value]
            return {k: (v if sep else None) for k, sep, v in pairs}
        return {k: _scalar_text(v) for k, v in value.items()}
    if key in _SET_KEYS:
        items = value if isinstance(value, list) else [value]
        if isinstance(value, dict):
            items = [f"{k}={v}" for k, vs in value.items() for v in (vs if isinstance(vs, list) else [vs])]
        flat = []
        for item in items:
            if isinstance(item, dict) and set(item) <= {"path", "required"} and item.get("required", True):
                item = item["path"]
            flat.append(json.dumps(item, sort_keys=True) if isinstance(item, dict) else str(item))
        return sorted(set(flat))
    if key == "models" and isinstance(value, list):
        return {str(item): None for item in value}
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            c = canonical(v, k)
            if c in ({}, []):
                continue
            out[k] = c
        return out
    if isinstance(value, list):
        return [canonical(item) for item in value]
    return value


def run_merge(case: dict[str, Any]) -> None:
    merged = merge_texts(case["base"], case["override"])
    expected = strip_markers(parse_yaml(case["expected"]).data)
    assert canonical(merged) == canonical(expected)


FILES: dict[str, Callable[[dict[str, Any]], None]] = {
    "template_cases.json": run_template,
    "interpolation_cases.json": run_interpolation,
    "dotenv_cases.json": run_dotenv,
    "merge_cases.json": run_merge,
    "spec_merge_examples.json": run_merge,
}


def _params(name: str) -> list[Any]:
    params = []
    for case in _load(name):
        marks = []
        if case["id"] in KNOWN:
            marks.append(pytest.mark.xfail(reason=KNOWN[case["id"]], strict=True))
        params.append(pytest.param(case, id=case["id"], marks=marks))
    return params


@pytest.mark.parametrize("case", _params("template_cases.json"))
def test_template(case: dict[str, Any]) -> None:
    run_template(case)


@pytest.mark.parametrize("case", _params("interpolation_cases.json"))
def test_interpolation(case: dict[str, Any]) -> None:
    run_interpolation(case)


@pytest.mark.parametrize("case", _params("dotenv_cases.json"))
def test_dotenv(case: dict[str, Any]) -> None:
    run_dotenv(case)


@pytest.mark.parametrize("case", _params("merge_cases.json") + _params("spec_merge_examples.json"))
def test_merge(case: dict[str, Any]) -> None:
    run_merge(case)


def _pass_rate(names: list[str]) -> float:
    passed = total = 0
    for name in names:
        runner = FILES[name]
        for case in _load(name):
            total += 1
            try:
                runner(case)
            except (AssertionError, ConfigError, pytest.fail.Exception):
                continue
            passed += 1
    return passed / total


def test_pass_rates_meet_targets() -> None:
    assert _pass_rate(["template_cases.json", "interpolation_cases.json"]) >= 0.95
    assert _pass_rate(["dotenv_cases.json"]) >= 0.90
    assert _pass_rate(["merge_cases.json", "spec_merge_examples.json"]) >= 0.90


def test_known_differences_name_real_vectors() -> None:
    ids = {case["id"] for name in FILES for case in _load(name)}
    assert set(KNOWN) <= ids
