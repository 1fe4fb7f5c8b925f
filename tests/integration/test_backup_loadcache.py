"""``backup`` and ``backup list`` take their project from the load cache (``config.loadcache``) when every input of
the load is as it was, and print what they print without it; a changed file or variable is loaded again.

"Without the cache" is the same command with a fresh, empty ``XDG_CACHE_HOME`` (a miss: the load as before).
``UNISTACK_DEBUG_CACHE=1`` makes the CLI say on stderr when the project came from the cache.
"""

from __future__ import annotations

import marshal
import re
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from unistack.commands.options import PROJECT_OUTPUT

from .conftest import Instance

pytestmark = pytest.mark.integration

COMPOSE = """
services:
  app:
    environment:
      GREETING: ${GREETING:-hello}
    volumes: [files:/files, other:/other]
    x-unistack:
      backup:
        - volume: ${BACKED_UP:-files}
      process:
        command: ["sleep", "300"]
volumes:
  files: {}
  other: {}
"""
FROM_CACHE = "unistack: the project from the load cache\n"


@pytest.fixture
def up(instance: Instance) -> Iterator[Instance]:
    instance.env |= {"XDG_CACHE_HOME": str(instance.folder.parent / "cache"), "UNISTACK_DEBUG_CACHE": "1"}
    instance.write(COMPOSE)
    instance.run("up", "-d", check=True)
    (instance.state_dir() / "volumes" / "files").mkdir(parents=True, exist_ok=True)
    (instance.state_dir() / "volumes" / "files" / "a.txt").write_text("files\n")
    (instance.state_dir() / "volumes" / "other").mkdir(parents=True, exist_ok=True)
    (instance.state_dir() / "volumes" / "other" / "b.txt").write_text("other\n")
    yield instance


def uncached(instance: Instance, *args: str, fresh: Path) -> subprocess.CompletedProcess[str]:
    saved = instance.env["XDG_CACHE_HOME"]
    instance.env["XDG_CACHE_HOME"] = str(fresh)
    try:
        return instance.run(*args)
    finally:
        instance.env["XDG_CACHE_HOME"] = saved


def from_cache(instance: Instance, *args: str) -> subprocess.CompletedProcess[str]:
    """The command with its project from the cache: the run before stored it; one after it misses only when the
    code changed in between (another engineer's edit in a shared working tree), so it is tried a few times."""
    for _ in range(5):
        result = instance.run(*args)
        assert result.returncode == 0, result.stdout + result.stderr
        if FROM_CACHE in result.stderr:
            return result
    raise AssertionError(f"never from the cache: {args}: {result.stderr}")


def parts_of(instance: Instance, result: subprocess.CompletedProcess[str]) -> list[str]:
    """The archive a backup wrote (named in its line), as the names of its members."""
    found = re.search(r" into (\S+\.tar) \(", result.stdout)
    assert found, result.stdout
    with tarfile.open(found.group(1)) as archive:
        return archive.getnames()


def said(result: subprocess.CompletedProcess[str]) -> str:
    """A backup's line without what differs from one run to the next (the archive's name and the time taken)."""
    return re.sub(r" into \S+ \((.*) in [0-9.]+ s\)", r" into ARCHIVE (\1)", result.stdout)


def test_backup_from_the_cache_is_the_backup_without_it(up: Instance, tmp_path: Path) -> None:
    up.run("backup", check=True)  # a miss: the load stored
    cached = from_cache(up, "backup")
    plain = uncached(up, "backup", fresh=tmp_path / "fresh1")
    assert FROM_CACHE not in plain.stderr and plain.returncode == 0
    assert said(cached) == said(plain) and "app (volume files)" in cached.stdout
    assert parts_of(up, cached) == parts_of(up, plain)
    listed = from_cache(up, "backup", "list")
    assert listed.stdout == uncached(up, "backup", "list", fresh=tmp_path / "fresh2").stdout
    assert listed.stdout.count("app files") == 3


def test_a_changed_file_or_variable_is_loaded_again(up: Instance, tmp_path: Path) -> None:
    up.run("backup", check=True)
    from_cache(up, "backup")
    compose = up.folder / "compose.yaml"
    compose.write_text(COMPOSE.replace("${BACKED_UP:-files}", "${BACKED_UP:-other}"))
    changed = up.run("backup")
    assert changed.returncode == 0 and FROM_CACHE not in changed.stderr, changed.stderr
    assert "app (volume other)" in changed.stdout
    assert said(changed) == said(uncached(up, "backup", fresh=tmp_path / "fresh1"))
    compose.write_text(COMPOSE)
    from_cache(up, "backup")  # as it was: loaded again once (the entry held the edited file), then from the cache
    up.env["BACKED_UP"] = "other"
    changed = up.run("backup")
    assert changed.returncode == 0 and FROM_CACHE not in changed.stderr, changed.stderr
    assert "app (volume other)" in changed.stdout
    again = from_cache(up, "backup")
    assert said(again) == said(changed)


def test_ps_stores_the_project_and_restore_takes_it_from_the_cache(up: Instance) -> None:
    up.run("ps", check=True)  # the fast path missed: the CLI's load stored, the project with it
    loads = Path(up.env["XDG_CACHE_HOME"]) / "unistack" / "loads"
    entries = [marshal.loads(p.read_bytes()) for p in loads.glob("*.marshal")]
    assert [PROJECT_OUTPUT in e["outputs"] for e in entries] == [True]
    done = from_cache(up, "backup")
    archive = re.search(r" into (\S+\.tar) \(", done.stdout)
    assert archive, done.stdout
    kept = up.state_dir() / "volumes" / "files" / "a.txt"
    kept.write_text("changed\n")
    restored = from_cache(up, "restore", archive.group(1), "--yes")
    assert "restored from" in restored.stdout and kept.read_text() == "files\n"
