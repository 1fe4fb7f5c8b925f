"""An `up` whose runtime cannot even prepare leaves no instance behind: the next command is free to choose."""

from __future__ import annotations

from tests.integration.conftest import Instance

COMPOSE = """
services:
  web:
    image: debian:bookworm-slim
    x-unistack:
      process:
        command: ["sleep", "300"]
"""


def test_up_on_an_engine_that_does_not_answer_leaves_nothing_behind(instance: Instance) -> None:
    instance.write(COMPOSE)
    instance.env["DOCKER_HOST"] = f"unix://{instance.folder}/no-engine.sock"
    failed = instance.run("--runtime", "docker", "up", "-d")
    assert failed.returncode == 1
    assert "no Docker engine answers at unix://" in failed.stderr and "--runtime process" in failed.stderr
    assert not (instance.state_dir() / "state.json").exists()
    assert not (instance.state_dir() / "project.json").exists()

    started = instance.run("--runtime", "process", "up", "-d", check=True)  # not "runs on the docker runtime"
    assert "web: started" in started.stdout
    assert instance.ps()["web"]["state"] == "running"
    assert instance.run("down", check=True).returncode == 0
