"""Every Dockerfile of the stack: hadolint-clean at the warning threshold, built from the one base given as a build
argument, running as a non-root user, and never copying the build-time CA bundle into the final stage."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILES = sorted((REPO / "stack").glob("*/Dockerfile"))
HADOLINT = Path(sys.executable).parent / "hadolint"

pytestmark = pytest.mark.integration


def stages(text: str) -> list[str]:
    """The Dockerfile's stages, each as its text from its FROM line on."""
    parts = re.split(r"(?im)^(?=FROM\s)", text)
    return [part for part in parts if part.upper().startswith("FROM")]


def test_every_service_that_builds_has_a_dockerfile() -> None:
    assert {p.parent.name for p in DOCKERFILES} == {"backend", "db", "frontend", "proxy"}


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_hadolint_is_clean_at_the_warning_threshold(dockerfile: Path) -> None:
    result = subprocess.run(
        [str(HADOLINT), "--failure-threshold", "warning", "--no-color", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_one_base_non_root_and_no_ca_in_the_final_stage(dockerfile: Path) -> None:
    text = dockerfile.read_text()
    assert re.search(r"(?m)^ARG BASE=debian:bookworm-slim$", text), "the base is a build argument"
    external = [
        line.split()[1]
        for line in text.splitlines()
        if line.upper().startswith("FROM ") and not re.match(r"(?i)FROM\s+\$\{?BASE\}?", line)
    ]
    own = {m.lower() for m in re.findall(r"(?im)^FROM\s+\S+\s+AS\s+(\S+)", text)}
    assert all(image.lower() in own for image in external), f"FROM something other than the base: {external}"
    all_stages = stages(text)
    # the default target is the last stage; a frontend also has a dev target: check every stage a service runs
    for index, stage in enumerate(all_stages):
        header = stage.splitlines()[0]
        if index == len(all_stages) - 1 or re.search(r"(?i)\bAS\s+dev\b", header):
            users = re.findall(r"(?m)^USER\s+(\S+)", stage)
            assert users and users[-1].split(":")[0] not in ("0", "root"), f"{header}: runs as root"
            copies = [line for line in stage.splitlines() if line.startswith(("COPY", "ADD"))]
            assert not [c for c in copies if "unistack-ca" in c and "--from" not in c], f"{header}: copies the CA"
