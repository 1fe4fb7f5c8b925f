"""Fuzzing the loader: generated compose-like documents and mutated texts never break it.

Every input either loads or raises ConfigError (exit 2 at the CLI) whose problems name a file; none takes more than
2 s of CPU to load (a robustness bound against a hang or a blow-up, not a speed target; CPU time, so a busy
shared machine does not make it fail). Documents are valid skeletons with
random mutations (wrong types, deep nesting, aliases, odd scalars, unicode, huge numbers, duplicated keys, tabs),
written as block YAML (the fast reader) or flow/JSON (ruamel). Inputs that once broke the loader are kept in
``CRASHERS`` and run every time. In-process for speed; a few through the real CLI.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from unistack.config import load
from unistack.errors import ConfigError

BOUND_S = 2.0

SERVICE_KEYS = [
    "image", "build", "command", "entrypoint", "environment", "env_file", "ports", "expose", "volumes",
    "depends_on", "healthcheck", "restart", "deploy", "networks", "labels", "profiles", "stop_signal",
    "stop_grace_period", "user", "working_dir", "extends", "develop", "x-unistack", "secrets", "ulimits",
    "mem_limit", "cpus", "init", "tmpfs", "dns", "extra_hosts", "logging", "privileged", "read_only",
]  # fmt: skip
TOP_KEYS = ["services", "networks", "volumes", "secrets", "configs", "name", "include", "x-unistack", "x-common"]
ODD_TEXTS = [
    "80:80", "127.0.0.1:8080:80/tcp", "8000-8010:80", "abc", "1m30s", "-5s", "on-failure:3", "on-failure:x",
    "${X:-1}", "${X:?need X}", "${X", "$$", "CMD", "NONE", "CMD-SHELL", "service_healthy", "yes", "on", "0x1F",
    "1e400", "~", "-", "<<", "'", '"', "\t", "…", "\u2028", "\x85", "9" * 5000, "./data:/data:ro", "a:b:c:d",
    "nginx:latest", "", " ", "null", "true", "12:30", "0o777", "-1", "2024-01-01", "\U0001f600", "\ud7ff",
]  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(ODD_TEXTS),
)
keys = st.one_of(st.sampled_from(SERVICE_KEYS + TOP_KEYS + ["test", "interval", "target", "condition", "process"]),
                 st.text(min_size=1, max_size=8))  # fmt: skip
values = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=4)),
    max_leaves=16,
)
service_values = {
    "ports": st.lists(st.one_of(st.sampled_from(ODD_TEXTS[:4]), st.integers(-5, 70000), values), max_size=3),
    "healthcheck": st.one_of(
        st.fixed_dictionaries(
            {"test": st.sampled_from([["CMD", "true"], "true", ["NONE"], [], 5])},
            optional={"interval": scalars, "retries": scalars, "start_period": scalars},
        ),
        values,
    ),
    "depends_on": st.one_of(st.lists(st.sampled_from(["db", "web", "ghost"]), max_size=3), values),
    "x-unistack": st.one_of(
        st.fixed_dictionaries({"process": st.one_of(st.fixed_dictionaries({"command": values}), values)}), values
    ),
}
service = st.dictionaries(st.sampled_from(SERVICE_KEYS), st.deferred(lambda: values), max_size=6).flatmap(
    lambda base: st.fixed_dictionaries(
        {}, optional={k: service_values.get(k, values) for k in ["ports", "healthcheck", "depends_on", "x-unistack"]}
    ).map(lambda extra: {**base, **extra})
)
documents = st.fixed_dictionaries(
    {
        "services": st.one_of(
            st.dictionaries(st.sampled_from(["web", "db", "my web", "a.b", "-x"]), service, max_size=3), values
        )
    },
    optional={key: values for key in TOP_KEYS[1:]},
)


def _block(value: Any, indent: int = 0) -> str:
    """Block-style YAML (what the fast reader reads); keys and strings JSON-quoted, so any value round-trips."""
    pad = " " * indent
    if isinstance(value, dict) and value:
        out = []
        for key, item in value.items():
            nested = isinstance(item, dict | list) and item
            out.append(
                f"{pad}{json.dumps(str(key))}:" + ("\n" + _block(item, indent + 2) if nested else " " + _scalar(item))
            )
        return "\n".join(out)
    if isinstance(value, list) and value:
        return "\n".join(
            f"{pad}-" + ("\n" + _block(i, indent + 2) if isinstance(i, dict | list) and i else " " + _scalar(i))
            for i in value
        )
    return pad + _scalar(value)


def _scalar(value: Any) -> str:
    if isinstance(value, float) and value != value:
        return ".nan"
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        return ".inf" if value > 0 else "-.inf"
    return json.dumps(value, ensure_ascii=False)


SEEDS = [
    "services:\n  web:\n    image: nginx\n    ports: ['8080:80']\n    depends_on: {db: {condition: service_healthy}}\n"
    "  db:\n    image: postgres\n    healthcheck:\n      test: [CMD, pg_isready]\n      interval: 1s\n",
    "x-common: &common\n  restart: always\n  environment: {A: 1}\nservices:\n  a:\n    <<: *common\n    image: a\n"
    "  b:\n    <<: *common\n    image: b\n    depends_on: [a]\n",
    "services:\n  app:\n    x-unistack:\n      process:\n        command: [python, -m, http.server]\n"
    "        working_dir: .\n      restart: {max_attempts: 3}\n    healthcheck: {test: 'true', retries: 2}\n"
    "x-unistack:\n  notify:\n    - command: [cat]\n",
    (Path(__file__).resolve().parents[2] / "stack" / "compose.yaml").read_text(encoding="utf-8"),
]
SNIPPETS = [
    "\t", "&a ", "*a", "<<: *a\n", "- ", ": ", "{", "[", "]", "}", "'", '"', "#", "!reset ", "!override ", "\n",
    "    ", "---\n", "…", "\U0001f600", "9" * 400, "1e999", "${X:?boom}", "${", "$$", "? ", "|\n", ">-\n",
    "%YAML 1.2\n",
    "x-b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n", "[" * 300, "\x00", "\r\n", "\ufeff",
]  # fmt: skip


@st.composite
def mutated_texts(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 6))):
        position = draw(st.integers(0, len(text)))
        operation = draw(st.sampled_from(["insert", "delete", "duplicate", "tabs", "swap"]))
        if operation == "insert":
            text = text[:position] + draw(st.one_of(st.sampled_from(SNIPPETS), st.text(max_size=5))) + text[position:]
        elif operation == "delete":
            text = text[:position] + text[position + draw(st.integers(1, 40)) :]
        else:
            lines = text.split("\n")
            index = draw(st.integers(0, len(lines) - 1))
            if operation == "duplicate":
                lines.insert(index, lines[index])
            elif operation == "tabs":
                lines[index] = lines[index].replace("  ", "\t", 1)
            else:
                other = draw(st.integers(0, len(lines) - 1))
                lines[index], lines[other] = lines[other], lines[index]
            text = "\n".join(lines)
    return text


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="unistack-fuzz-") as name:
        yield Path(name)


def _load_bounded(folder: Path, text: str) -> None:
    """Load ``text`` as compose.yaml: it loads, or ConfigError with located problems; within the bound."""
    path = folder / "compose.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    start = time.process_time()  # CPU time: other work on a shared machine does not count
    try:
        load(cwd=folder, env={}, project_name="fuzz")
    except ConfigError as exc:
        assert exc.problems, text
        assert any(p.file is not None or p.variable is not None for p in exc.problems), (str(exc), text)
        for problem in exc.problems:  # a key the file has is on its line (include/extends may name other files)
            assert problem.file != path or problem.key is None or problem.line is not None, str(problem)
    finally:
        took = time.process_time() - start
    assert took < BOUND_S, f"{took:.2f} s of CPU to load: {text[:300]!r}"


@given(documents)
def test_generated_documents_load_or_are_refused_clearly(folder: Path, document: dict[str, Any]) -> None:
    _load_bounded(folder, _block(document) + "\n")


@given(documents)
def test_generated_documents_as_flow_yaml(folder: Path, document: dict[str, Any]) -> None:
    _load_bounded(folder, json.dumps(document, ensure_ascii=False, indent=None) + "\n")


@given(mutated_texts())
def test_mutated_texts_load_or_are_refused_clearly(folder: Path, text: str) -> None:
    _load_bounded(folder, text)


# The same documents as files that others name: an included file and a file a service extends. Fewer of them
# (they meet the same checks), the problems located in the file they are in.
NAMED_BY = {
    "include": "include: [named.yaml]\nservices:\n  app: {image: x}\n",
    "extends": "services:\n  app:\n    extends: {file: named.yaml, service: web}\n",
}


def _load_named_bounded(folder: Path, how: str, text: str) -> None:
    """Load a compose.yaml naming ``text`` as ``named.yaml`` (by ``how``): it loads, or ConfigError whose problems
    in ``named.yaml`` with a key have its line; within the bound."""
    named = folder / "named.yaml"
    named.write_text(text, encoding="utf-8", errors="surrogatepass")
    (folder / "compose.yaml").write_text(NAMED_BY[how], encoding="utf-8")
    start = time.process_time()
    try:
        load(cwd=folder, env={}, project_name="fuzz")
    except ConfigError as exc:
        assert exc.problems, text
        for problem in exc.problems:
            assert problem.file != named or problem.key is None or problem.line is not None, str(problem)
    finally:
        took = time.process_time() - start
    assert took < BOUND_S, f"{took:.2f} s of CPU to load: {text[:300]!r}"


@settings(max_examples=max(10, settings().max_examples // 4))
@given(st.sampled_from(sorted(NAMED_BY)), documents)
def test_generated_documents_as_included_or_extended_files(folder: Path, how: str, document: dict[str, Any]) -> None:
    _load_named_bounded(folder, how, _block(document) + "\n")


# Inputs that once broke the loader (a traceback, or a hang): each must load or be refused clearly.
CRASHERS = [
    "x-a: &a [1, *a]\nservices: {}\n",  # endless recursion converting the alias
    "x: " + "[" * 2000 + "]" * 2000 + "\n",  # RecursionError
    "services: {}\nnetworks: {':': true}\n",  # a name the schema's pattern does not cover, with a non-mapping
    "services:\n  web:\n    image: x\n    x-unistack: [1]\n",  # x-unistack.restart read from a list
    "services:\n  web:\n    image: x\n    healthcheck: {test: x, retries: '" + "9" * 5000 + "'}\n",  # int() limit
    "services:\n  web:\n    image: x\n    restart: on-failure:" + "9" * 5000 + "\n",
    "? services:\n  web: {}\n",  # a mapping as a key: TypeError in ruamel's constructor
    "x-c: &c\nx-c2: &c\n  restart: always\nservices:\n  a:\n    <<: *c\n    image: a\n",  # reused anchor: a warning
]


@pytest.mark.parametrize("text", CRASHERS)
def test_crashers_found_before_stay_fixed(folder: Path, text: str) -> None:
    _load_bounded(folder, text)


NAMED_CRASHERS = [  # (how the file is named, its text)
    ("include", "services: [lib]\n"),  # rebasing an included file's paths: 'list' object has no attribute 'values'
    ("extends", "services: [web]\n"),  # the same, for a file a service extends
    ("include", "services:\n  lib:\n    image: x\n    env_file: [{required: false}]\n"),  # path .../None
]


@pytest.mark.parametrize(("how", "text"), NAMED_CRASHERS)
def test_crashers_in_named_files_stay_fixed(folder: Path, how: str, text: str) -> None:
    _load_named_bounded(folder, how, text)


@pytest.mark.parametrize("text", [SEEDS[0].replace("image: nginx", "image: [nginx]"), CRASHERS[0], "services: 3\n"])
def test_through_the_cli_exit_0_or_2_and_no_traceback(tmp_path: Path, text: str) -> None:
    path = tmp_path / "compose.yaml"
    path.write_text(text, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "unistack", "-f", str(path), "config"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode in (0, 2), done.stderr
    assert "Traceback" not in done.stderr
