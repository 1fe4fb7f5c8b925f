"""Bad input through the real CLI: a message naming file, line and key, exit code 2, nothing started."""

from __future__ import annotations

import psutil
import pytest

from .conftest import Instance

pytestmark = pytest.mark.integration

CMD = '    x-unistack: {process: {command: [sleep, "30"]}}\n'

CASES = {
    "yaml syntax": ("services:\n  a:\n    image: x\n   bad: [\n", ["compose.yaml:4", "YAML"]),
    "unknown key": ("services:\n  a:\n" + CMD + "    depend_on: [b]\n", ["compose.yaml:4", "depend_on", "depends_on"]),
    "cycle": (
        "services:\n  a:\n" + CMD + "    depends_on: [b]\n  b:\n" + CMD + "    depends_on: [a]\n",
        ["a -> b -> a"],
    ),
    "unknown dependency": ("services:\n  a:\n" + CMD + "    depends_on: [nope]\n", ["compose.yaml:4", "'nope'"]),
    "missing variables": (
        "services:\n  a:\n" + CMD + "    image: ${A:?set A}\n    environment:\n      B: ${B?need B}\n",
        ["compose.yaml:4", "set A", "compose.yaml:6", "need B"],
    ),
    "bad duration": ("services:\n  a:\n" + CMD + "    stop_grace_period: 10 parsecs\n", ["compose.yaml:4", "parsecs"]),
    "negative retries": (
        "services:\n  a:\n" + CMD + "    healthcheck: {test: [CMD, 'true'], retries: -1}\n",
        ["compose.yaml:4", "retries"],
    ),
    "restart word": (
        "services:\n  a:\n" + CMD + "    restart: sometimes\n",
        ["compose.yaml:4", "sometimes", "on-failure"],
    ),
    "same host port": (
        "services:\n  a:\n" + CMD + "    ports: ['8080:80']\n  b:\n" + CMD + "    ports: ['127.0.0.1:8080:81']\n",
        ["8080", "'a'", "'b'"],
    ),
    "no process command": ("services:\n  a:\n    image: nginx\n", ["'a'", "x-unistack", "command"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_configuration_is_refused_before_anything_starts(instance: Instance, case: str) -> None:
    text, expected = CASES[case]
    instance.write(text)
    result = instance.run("up", "-d")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    for fragment in expected:
        assert fragment in result.stderr, f"{fragment!r} not in:\n{result.stderr}"
    assert not (instance.folder / ".unistack").exists()  # nothing was started or even prepared
    # not even the daemon that ``up`` starts ahead while it reads the configuration
    here = str(instance.folder)
    mine = [p.pid for p in psutil.process_iter(["cmdline"]) if here in " ".join(p.info["cmdline"] or [])]
    assert not mine


def test_missing_compose_file(instance: Instance) -> None:
    result = instance.run("up", "-d")
    assert result.returncode == 2
    assert "compose.yaml" in result.stderr and "-f" in result.stderr
    result = instance.run("-f", "nowhere.yaml", "ps")
    assert result.returncode == 2 and "nowhere.yaml" in result.stderr


def test_unknown_service_on_the_command_line(instance: Instance) -> None:
    instance.write("services:\n  a:\n" + CMD)
    result = instance.run("up", "-d", "b")
    assert result.returncode == 2 and "no such service: b" in result.stderr


def test_unknown_runtime_and_flags_are_usage_errors(instance: Instance) -> None:
    instance.write("services:\n  a:\n" + CMD)
    assert instance.run("--runtime", "podman", "ps").returncode == 2
    assert instance.run("up", "--no-such-flag").returncode == 2
