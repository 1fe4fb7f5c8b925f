"""The load cache is sound: whatever a load would find differently is a miss, and a broken cache is only a miss.

Each test runs the entry point's flow in this process (``fastpath.main``, then on a miss the CLI, whose load is
stored when it succeeds) with ``config``, whose answer from the cache is the whole output: a hit prints exactly
what the CLI printed the first time. The files, variables and options are changed one at a time; the cache lives
in the test's own ``XDG_CACHE_HOME``.
"""

from __future__ import annotations

import marshal
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from unistack import cli, fastpath
from unistack.config import inputs, loadcache

COMPOSE = """\
services:
  web:
    image: nginx:${WEB_TAG:-1.27}
    environment:
      GREETING: ${GREETING:-hello}
  extra:
    image: busybox
    profiles: [extra]
"""


class Runner:
    """``unistack ARGV`` as ``entry.main`` runs it: answered from the cache, or by the CLI (then stored)."""

    def __init__(self, folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.folder, self.capsys = folder, capsys

    def run(self, *argv: str) -> tuple[str, str, int]:
        """(``hit`` or ``miss``, stdout, exit code)."""
        loadcache.pending = None
        output = fastpath.main(list(argv))
        if output is not None:
            return "hit", output, 0
        with pytest.raises(SystemExit) as done:
            cli.main(list(argv))
        code = done.value.code if isinstance(done.value.code, int) else 0
        if code == 0 and loadcache.pending is not None:
            loadcache.pending.store()
        loadcache.pending = None
        return "miss", self.capsys.readouterr().out, code

    def cached(self, *argv: str) -> str:
        """The command run twice: the first loads (or hits), the second must hit with the same output."""
        _, first, code = self.run(*argv)
        assert code == 0
        how, again, _ = self.run(*argv)
        assert (how, again) == ("hit", first)
        return first


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Iterator[Runner]:
    folder = tmp_path / "demo"
    folder.mkdir()
    (folder / "compose.yaml").write_text(COMPOSE)
    for name in ("UNISTACK_ENV", "UNISTACK_RUNTIME", "UNISTACK_DEFAULT_DIR", "COMPOSE_PROJECT_NAME", "COMPOSE_FILE"):
        monkeypatch.delenv(name, raising=False)
    for name in ("WEB_TAG", "GREETING", "COMPOSE_PROFILES", "UNISTACK_DEBUG_CACHE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.chdir(folder)
    yield Runner(folder, capsys)
    loadcache.pending = None


def rewrite_in_the_same_tick(path: Path, text: str) -> None:
    """New bytes of the same length, with the old modification time put back: only the bytes tell."""
    before = path.stat()
    assert len(text.encode()) == before.st_size
    path.write_text(text)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def test_a_second_run_hits_and_prints_the_same(runner: Runner) -> None:
    assert "nginx:1.27" in runner.cached("config")
    assert runner.cached("config", "--format", "json").lstrip().startswith("{")


def test_a_file_changed_within_the_same_mtime_tick_misses(runner: Runner) -> None:
    runner.cached("config")
    compose = runner.folder / "compose.yaml"
    rewrite_in_the_same_tick(compose, COMPOSE.replace("1.27", "1.28"))
    how, out, _ = runner.run("config")
    assert how == "miss" and "nginx:1.28" in out
    assert "nginx:1.28" in runner.cached("config")


@pytest.mark.parametrize("change", ["changed", "newly set", "unset"])
def test_a_variable_changed_set_or_unset_misses(runner: Runner, monkeypatch: pytest.MonkeyPatch, change: str) -> None:
    if change != "newly set":
        monkeypatch.setenv("WEB_TAG", "2.0")
        assert "nginx:2.0" in runner.cached("config")
    if change == "changed":
        monkeypatch.setenv("WEB_TAG", "3.0")
    elif change == "newly set":
        monkeypatch.setenv("WEB_TAG", "4.0")
        runner.cached("config")
        monkeypatch.setenv("GREETING", "hi")  # a variable never read before
    else:
        monkeypatch.delenv("WEB_TAG")
    how, out, _ = runner.run("config")
    assert how == "miss"
    expected = {"changed": "nginx:3.0", "newly set": "GREETING: hi", "unset": "nginx:1.27"}[change]
    assert expected in out


def test_a_variable_nothing_reads_still_misses(runner: Runner, monkeypatch: pytest.MonkeyPatch) -> None:
    runner.cached("config")
    monkeypatch.setenv("SOMETHING_ELSE", "1")  # the project keeps every variable (redaction): any one counts
    assert runner.run("config")[0] == "miss"


def test_an_env_file_changed_or_appearing_misses(runner: Runner) -> None:
    assert "nginx:1.27" in runner.cached("config")
    dotenv = runner.folder / ".env"
    dotenv.write_text("WEB_TAG=5.0\n")  # appears: its absence was an input
    how, out, _ = runner.run("config")
    assert how == "miss" and "nginx:5.0" in out
    runner.cached("config")
    rewrite_in_the_same_tick(dotenv, "WEB_TAG=6.0\n")
    how, out, _ = runner.run("config")
    assert how == "miss" and "nginx:6.0" in out


def test_an_included_file_changed_misses(runner: Runner) -> None:
    (runner.folder / "more.yaml").write_text("services:\n  db:\n    image: postgres:16\n")
    (runner.folder / "compose.yaml").write_text("include:\n  - more.yaml\n" + COMPOSE)
    assert "postgres:16" in runner.cached("config")
    rewrite_in_the_same_tick(runner.folder / "more.yaml", "services:\n  db:\n    image: postgres:17\n")
    how, out, _ = runner.run("config")
    assert how == "miss" and "postgres:17" in out


def test_an_override_file_appearing_misses(runner: Runner) -> None:
    runner.cached("config")
    (runner.folder / "compose.override.yaml").write_text("services:\n  web:\n    image: nginx:override\n")
    how, out, _ = runner.run("config")
    assert how == "miss" and "nginx:override" in out


def test_an_environment_overlay_appearing_misses(runner: Runner) -> None:
    (runner.folder / "environments").mkdir()
    (runner.folder / "environments" / "staging.env").write_text("GREETING=staged\n")
    assert "GREETING: staged" in runner.cached("--env", "staging", "config")
    (runner.folder / "compose.staging.yaml").write_text("services:\n  web:\n    image: nginx:staging\n")
    how, out, _ = runner.run("--env", "staging", "config")
    assert how == "miss" and "nginx:staging" in out


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (("-f", "other.yaml"), "nginx:other"),
        (("-p", "another"), "name: another"),
        (("--env", "staging"), "GREETING: staged"),
        (("--profile", "extra"), "busybox"),
        (("--env-file", "vars.env"), "nginx:from-vars"),
    ],
)
def test_an_option_that_reaches_the_load_misses(runner: Runner, options: tuple[str, ...], expected: str) -> None:
    (runner.folder / "other.yaml").write_text("services:\n  web:\n    image: nginx:other\n")
    (runner.folder / "environments").mkdir()
    (runner.folder / "environments" / "staging.env").write_text("GREETING=staged\n")
    (runner.folder / "vars.env").write_text("WEB_TAG=from-vars\n")
    assert expected not in runner.cached("config")
    how, out, _ = runner.run(*options, "config")
    assert how == "miss" and expected in out
    assert expected in runner.cached(*options, "config")


def test_a_symbolic_link_to_the_file_pointing_elsewhere_misses(runner: Runner, tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(COMPOSE)
    (tmp_path / "b.yaml").write_text(COMPOSE.replace("1.27", "9.99"))
    (runner.folder / "compose.yaml").unlink()
    (runner.folder / "compose.yaml").symlink_to(tmp_path / "a.yaml")
    runner.cached("config")
    (runner.folder / "compose.yaml").unlink()
    (runner.folder / "compose.yaml").symlink_to(tmp_path / "b.yaml")
    how, out, _ = runner.run("config")
    assert how == "miss" and "nginx:9.99" in out


def entries(runner: Runner) -> list[Path]:
    where = loadcache.folder(os.environ)
    assert where is not None
    return sorted(Path(where).glob("*.marshal"))


@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage", "another shape", "another code", "a folder"])
def test_a_damaged_cache_entry_is_a_miss_without_a_traceback(runner: Runner, damage: str) -> None:
    first = runner.cached("config")
    [path] = entries(runner)
    data = path.read_bytes()
    if damage == "empty":
        path.write_bytes(b"")
    elif damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(b"\xff\x00not marshal" * 50)
    elif damage == "another shape":
        entry = marshal.loads(data)
        entry["inputs"] = [["file", "x"]]
        path.write_bytes(marshal.dumps(entry))
    elif damage == "another code":
        entry = marshal.loads(data)
        entry["code"] = "0" * 16
        path.write_bytes(marshal.dumps(entry))
    else:
        path.unlink()
        path.mkdir()
    how, out, code = runner.run("config")
    assert (how, out, code) == ("miss", first, 0)
    if damage != "a folder":
        assert runner.run("config") == ("hit", first, 0)  # written again whole


def test_a_cache_folder_that_cannot_be_written_only_misses(
    runner: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))  # makedirs under a file fails, as root too
    how, first, code = runner.run("config")
    assert (how, code) == ("miss", 0) and "nginx:1.27" in first
    assert runner.run("config") == ("miss", first, 0)


def test_no_home_and_no_cache_folder_only_misses(runner: Runner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")  # not absolute: ignored, as the XDG spec says
    monkeypatch.delenv("HOME")
    how, first, code = runner.run("config")
    assert (how, code) == ("miss", 0)
    assert runner.run("config") == ("miss", first, 0)


def test_the_ports_an_earlier_up_chose_are_never_answered_from_the_cache(runner: Runner) -> None:
    runner.cached("config")
    state_dir = runner.folder / ".unistack" / "demo"
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "ports.json").write_text("{}")
    assert fastpath.main(["config"]) is None


def test_the_debug_variable_names_the_first_difference(
    runner: Runner, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("UNISTACK_DEBUG_CACHE", "1")  # part of the key, as every variable: set for both runs
    runner.cached("config")
    assert "unistack: answered from the load cache" in capsys.readouterr().err
    rewrite_in_the_same_tick(runner.folder / "compose.yaml", COMPOSE.replace("1.27", "1.29"))
    key = loadcache.material(fastpath.read(["config"]).options, str(Path.cwd()), os.environ)  # type: ignore[union-attr]
    assert loadcache.lookup(key, os.environ) is None
    assert f"unistack: load cache miss: {runner.folder / 'compose.yaml'} changed" in capsys.readouterr().err


def test_the_fast_path_reads_only_the_forms_it_knows() -> None:
    known = [["ps"], ["-p", "x", "ps", "--format", "json", "web"], ["config", "--no-redact"], ["logs", "-n", "5"]]
    assert all(fastpath.read(argv) is not None for argv in known)
    unknown = [
        ["ps", "--bogus"],
        ["--file=x.yaml", "ps"],
        ["ps", "--format=json"],
        ["-h"],
        ["config", "web"],
        ["logs", "web"],  # every line: the runtime reads them
        ["logs", "-f", "-n", "5"],
        ["-p", "a", "-p", "b", "ps"],
        ["ps", "--target", "swarm"],
        ["up"],
        ["-p"],
    ]
    assert all(fastpath.read(argv) is None for argv in unknown)


def test_the_fast_path_knows_every_option_the_cli_has() -> None:
    """A new global option or verb option must be looked at here: the fast path reads the words by hand."""
    from unistack.commands import inspect
    from unistack.control import client
    from unistack.runtimes import RUNTIME_CHOICES

    assert {p.name for p in cli.cli.params} == {*fastpath.GLOBAL.values(), "version"}  # --version: not a verb
    assert {p.name for p in inspect.ps.params} == {"fmt", "target", "services"}
    assert {p.name for p in inspect.config_command.params} == {"fmt", "no_redact"}
    assert {p.name for p in inspect.logs.params} == {"follow", "tail", "target", "services"}
    assert tuple(RUNTIME_CHOICES) == fastpath.RUNTIMES
    assert fastpath.LOGS_WITHIN == client.LOGS_WITHIN


def test_a_runtime_click_refuses_is_never_answered(runner: Runner, monkeypatch: pytest.MonkeyPatch) -> None:
    runner.cached("config")
    assert fastpath.main(["--runtime", "nosuch", "config"]) is None
    monkeypatch.setenv("UNISTACK_RUNTIME", "nosuch")
    assert fastpath.main(["config"]) is None


# calls that reach the disk in config/ besides inputs' own: (module, what), each for a reason
LOOKS_ELSEWHERE = {
    ("yamlfile.py", ".stat("),  # the size bound before reading, through inputs.read_text then
    ("examining.py", ".is_file("),  # `validate`'s and `env`'s view of the files, never the cache's load
    ("schema.py", ".read_text("),  # the schema: package data, in the code fingerprint
    ("schema.py", ".read_bytes("),  # the compiled schema's own cache, made from the schema
}
DISK = re.compile(
    r"(?<!inputs)\.(is_file|exists|is_dir|stat|read_text|read_bytes|iterdir|glob)\(|\bopen\(|os\.path\.(isfile|exists)"
)


def test_every_disk_access_of_the_loader_goes_through_inputs() -> None:
    folder = Path(inputs.__file__).parent
    found = set()
    for path in sorted(folder.glob("*.py")):
        if path.name in ("inputs.py", "loadcache.py"):
            continue
        for line in path.read_text().splitlines():
            code = line.split("#", 1)[0]
            for match in DISK.finditer(code):
                found.add((path.name, match.group(0)))
    assert found <= LOOKS_ELSEWHERE, found - LOOKS_ELSEWHERE


def test_a_removed_current_folder_is_left_to_the_cli(
    runner: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    assert fastpath.main(["config"]) is None
    assert loadcache.pending is None
