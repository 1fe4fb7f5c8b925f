"""The restore's switch of a container volume (``volume_folder.SWITCH``), run by a real POSIX shell on folders left
in each state a restore can be killed in: it completes a switch whose new files were complete, drops new files
that were not, resumes halfway through either phase, and keeps odd names (dot files, a leading dash, spaces,
symlinks). With the host's ``sh`` and, where installed, BusyBox's (the shell, find and mv of small images)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from unistack.runtimes.datastreams import PREVIOUS, STAGING
from unistack.runtimes.docker.volume_folder import DONE, LEFT_BY_RESTORE, SWITCH, SWITCHING

pytestmark = pytest.mark.integration

OLD = {"old/file": "old", ".old-hidden": "old", "-n": "old", "same": "old"}
NEW = {"new dir/file": "new", ".hidden": "new", "-e": "new", "same": "new", "with space": "new"}


@pytest.fixture(params=["sh", "busybox", "without find"])
def shell(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, str]]:
    """The host's sh; BusyBox's sh, find and mv (small images); or a PATH with sh, mv and rm only (no find)."""
    if request.param == "sh":
        return "sh", dict(os.environ)
    bin_dir = tmp_path_factory.mktemp("bin")
    if request.param == "busybox":
        busybox = shutil.which("busybox")
        if busybox is None:
            pytest.skip("BusyBox is not installed")
        for applet in ("sh", "find", "mv", "rm", "mkdir"):
            (bin_dir / applet).symlink_to(busybox)
    else:
        for tool in ("sh", "mv", "rm", "mkdir"):
            (bin_dir / tool).symlink_to(shutil.which(tool) or f"/bin/{tool}")
    return str(bin_dir / "sh"), {"PATH": str(bin_dir)}


def put(folder: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)


def tree(folder: Path) -> dict[str, str | None]:
    """Every entry under ``folder``: a file's text, a symlink's target, None for a folder."""
    found: dict[str, str | None] = {}
    for path in sorted(folder.rglob("*")):
        name = str(path.relative_to(folder))
        if path.is_symlink():
            found[name] = f"-> {path.readlink()}"
        elif path.is_file():
            found[name] = path.read_text()
        else:
            found[name] = None
    return found


def switch(shell: tuple[str, dict[str, str]], folder: Path) -> str:
    done = subprocess.run([shell[0], "-c", SWITCH, "switch", str(folder)], env=shell[1], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def volume(tmp_path: Path) -> Path:
    folder = tmp_path / "v"
    put(folder, OLD)
    (folder / "link").symlink_to("nowhere")
    put(folder / STAGING, NEW)
    (folder / STAGING / "new link").symlink_to("new dir/file")
    return folder


EXPECTED_NEW = {**NEW, "new dir": None, "new link": "-> new dir/file"}
EXPECTED_OLD = {**OLD, "old": None, "link": "-> nowhere"}


def test_complete_new_files_are_switched_in(shell: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    folder = volume(tmp_path)
    (folder / DONE).touch()
    assert switch(shell, folder) == "switched"
    assert tree(folder) == EXPECTED_NEW
    assert not [name for name in LEFT_BY_RESTORE if os.path.lexists(folder / name)]


def test_new_files_not_complete_are_dropped(shell: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    folder = volume(tmp_path)
    assert switch(shell, folder) == "dropped"
    assert tree(folder) == EXPECTED_OLD


def test_killed_while_the_old_entries_went_aside(shell: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    folder = volume(tmp_path)
    (folder / DONE).touch()
    (folder / PREVIOUS).mkdir()
    (folder / "old").rename(folder / PREVIOUS / "old")  # some aside, no switching mark yet
    assert switch(shell, folder) == "switched"
    assert tree(folder) == EXPECTED_NEW


def test_killed_while_the_new_entries_came_in(shell: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    folder = volume(tmp_path)
    (folder / DONE).touch()
    (folder / PREVIOUS).mkdir()
    for name in ("old", ".old-hidden", "-n", "same", "link"):
        (folder / name).rename(folder / PREVIOUS / name)
    (folder / SWITCHING).touch()  # every old entry aside
    (folder / STAGING / "new dir").rename(folder / "new dir")  # and one new entry in
    assert switch(shell, folder) == "switched"
    assert tree(folder) == EXPECTED_NEW


def test_many_entries(shell: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    folder = tmp_path / "v"
    put(folder, {f"old-{i}": "old" for i in range(3000)})
    put(folder / STAGING, {f"new-{i}": "new" for i in range(3000)})
    (folder / DONE).touch()
    assert switch(shell, folder) == "switched"
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"new-{i}" for i in range(3000))
