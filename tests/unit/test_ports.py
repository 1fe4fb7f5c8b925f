"""Settling an instance's host ports with a scripted holder: preferred ports move, pinned ones refuse, choices stay."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from unistack import config
from unistack.config.model import Project
from unistack.errors import PortInUse
from unistack.ops import ports
from unistack.ops.holders import Holder

COMPOSE = """services:
  proxy:
    ports: ["127.0.0.1:${HTTP_PORT:-8080}:${HTTP_PORT:-8080}"]
    environment: {HTTP_PORT: "${HTTP_PORT:-8080}"}
    x-unistack: {process: {command: [caddy]}}
  admin:
    ports: ["127.0.0.1:9090:9090"]
    x-unistack: {process: {command: [admin]}}
"""
OTHER = Holder("instance `a`", "instance `a` of this project (.unistack/a)")


class Setup:
    def __init__(self, folder: Path, os_env: Mapping[str, str] | None = None) -> None:
        self.folder = folder
        (folder / "compose.yaml").write_text(COMPOSE)
        self.os_env = dict(os_env or {})
        self.held: set[int] = set()

    def load(self, overrides: Mapping[str, str]) -> Project:
        return config.load(env={**self.os_env, **overrides}, cwd=self.folder, project_name="b")

    def probe(self, host_ip: str, number: int, protocol: str, me: Path) -> Holder | None:
        return OTHER if number in self.held else None

    def settle(self, selected: list[str] | None = None) -> ports.Settled:
        project = self.load(ports.saved_overrides(self.load({}).state_dir, self.os_env))
        return ports.settle(project, selected or [], self.load, self.os_env, probe=self.probe)


def published(project: Project, service: str = "proxy") -> int | None:
    return project.services[service].ports[0].published


def test_the_variable_that_feeds_a_port_is_found_through_its_default(tmp_path: Path) -> None:
    setup = Setup(tmp_path)
    project = setup.load({})
    (use,) = ports.port_uses(project, setup.load)
    assert (use.variable, use.service, use.preferred) == ("HTTP_PORT", "proxy", 8080)


def test_a_free_preferred_port_is_kept(tmp_path: Path) -> None:
    settled = Setup(tmp_path).settle()
    assert settled.choices == [] and published(settled.project) == 8080


def test_a_taken_preferred_port_moves_the_variable_for_everything_that_reads_it(tmp_path: Path) -> None:
    setup = Setup(tmp_path)
    setup.held = {8080, 8081}
    settled = setup.settle()
    assert published(settled.project) == 8082
    assert settled.project.services["proxy"].environment["HTTP_PORT"] == "8082"  # the proxy listens there too
    assert ports.notes_for(settled) == {("proxy", 8082): "(8080 is used by instance `a`)"}


def test_the_saved_choice_comes_first_while_it_is_free(tmp_path: Path) -> None:
    setup = Setup(tmp_path)
    state_dir = setup.load({}).state_dir
    state_dir.mkdir(parents=True)
    ports.save(state_dir, [ports.Choice("HTTP_PORT", 8080, 8085, "")])
    settled = setup.settle()  # the preferred port is free, but the instance keeps its own
    assert published(settled.project) == 8085
    assert ports.notes_for(settled)[("proxy", 8085)] == "(kept for this instance; HTTP_PORT prefers 8080)"
    setup.held = {8085}
    assert published(setup.settle().project) == 8080  # taken meanwhile: the preferred one again
    ports.forget(state_dir)
    assert ports.saved_choices(state_dir) == {}


def test_a_pinned_variable_whose_port_is_taken_is_refused_with_the_holder_and_the_fix(tmp_path: Path) -> None:
    setup = Setup(tmp_path, {"HTTP_PORT": "9000"})
    setup.held = {9000}
    with pytest.raises(PortInUse) as caught:
        setup.settle()
    assert caught.value.lines == [
        "proxy cannot publish 127.0.0.1:9000/tcp: instance `a` of this project (.unistack/a) listens on "
        "127.0.0.1:9000; stop it, or set HTTP_PORT to a free port"
    ]


def test_a_literal_port_is_pinned_and_only_the_selected_services_count(tmp_path: Path) -> None:
    setup = Setup(tmp_path)
    setup.held = {9090}
    assert published(setup.settle(["proxy"]).project) == 8080  # admin is not started: its port is no matter
    with pytest.raises(PortInUse, match=r"publish another host port in services\.admin\.ports"):
        setup.settle(["admin"])
