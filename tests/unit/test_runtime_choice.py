"""``--runtime auto``: the runtime a file can run on, from its services' forms and whether an engine answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from unistack.config.model import ProcessSpec, Project, Service
from unistack.runtimes import choose_runtime

SOCKET = "unix:///var/run/docker.sock"


def _service(name: str, *, container: bool, process: bool) -> Service:
    spec: dict[str, Any] = {"image": f"{name}:1"} if container else {}
    form = ProcessSpec(command=("sleep", "1"), working_dir=Path("/srv")) if process else None
    return Service(name=name, spec=spec, process=form)


def _project(*services: Service) -> Project:
    return Project(
        name="p",
        environment="local",
        working_dir=Path("/srv"),
        files=(Path("/srv/compose.yaml"),),
        state_dir=Path("/srv/.unistack/p"),
        services={s.name: s for s in services},
    )


class Engine:
    """A scripted engine probe: the address it answers at (or None), and how often it was asked."""

    def __init__(self, address: str | None) -> None:
        self.address, self.asked = address, 0

    def __call__(self) -> str | None:
        self.asked += 1
        return self.address


@pytest.mark.parametrize("address", [SOCKET, None])
def test_host_processes_only_run_as_processes_even_when_an_engine_answers(address: str | None) -> None:
    engine = Engine(address)
    choice = choose_runtime(_project(_service("a", container=False, process=True)), engine)
    assert (choice.name, str(choice)) == ("process", "runtime: process (no service has an image or a build)")
    assert engine.asked == 0  # nothing to decide: no 2 s engine probe


@pytest.mark.parametrize("address", [SOCKET, None])
def test_images_without_a_process_form_run_on_docker(address: str | None) -> None:
    engine = Engine(address)
    project = _project(_service("a", container=True, process=False), _service("b", container=True, process=False))
    choice = choose_runtime(project, engine)
    assert (choice.name, choice.reason) == ("docker", "no service has an x-unistack.process form")
    assert engine.asked == 0


def test_both_forms_run_on_docker_when_an_engine_answers_else_as_processes() -> None:
    project = _project(_service("a", container=True, process=True), _service("b", container=False, process=True))
    assert str(choose_runtime(project, Engine(SOCKET))) == f"runtime: docker (an engine answers at {SOCKET})"
    assert str(choose_runtime(project, Engine(None))) == "runtime: process (no Docker engine answers)"


def test_a_mix_of_container_only_and_both_forms_follows_the_engine() -> None:
    project = _project(_service("db", container=True, process=False), _service("web", container=True, process=True))
    assert choose_runtime(project, Engine(SOCKET)).name == "docker"
    assert choose_runtime(project, Engine(None)).name == "process"  # whose check names db as container-only
