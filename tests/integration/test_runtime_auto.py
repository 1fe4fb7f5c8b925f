"""``--runtime auto`` through the CLI: ``up`` says which runtime it chose and why, and the instance keeps it."""

from __future__ import annotations

import pytest

from .conftest import Instance

pytestmark = pytest.mark.integration

PROCESS_ONLY = """
services:
  app:
    x-unistack:
      process:
        command: ["${PYTHON}", "-c", "import time; time.sleep(60)"]
"""

BOTH_FORMS = """
services:
  app:
    image: busybox
    x-unistack:
      process:
        command: ["${PYTHON}", "-c", "import time; time.sleep(60)"]
"""


def test_host_processes_only_run_as_processes_and_up_says_why(instance: Instance) -> None:
    instance.env["UNISTACK_RUNTIME"] = "auto"  # whether or not an engine answers on this machine
    instance.write(PROCESS_ONLY)
    result = instance.run("up", "-d", check=True)
    assert "runtime: process (no service has an image or a build)" in result.stdout
    assert instance.ps()["app"]["pid"]


def test_both_forms_without_an_engine_run_as_processes_until_down(instance: Instance) -> None:
    instance.env.update(UNISTACK_RUNTIME="auto", DOCKER_HOST=f"unix://{instance.folder}/no-engine.sock")
    instance.write(BOTH_FORMS)
    result = instance.run("up", "-d", check=True)
    assert "runtime: process (no Docker engine answers)" in result.stdout
    again = instance.run("up", "-d", check=True)  # the instance keeps the runtime it was started with
    assert "runtime: process (" in again.stdout and "runs on it until `unistack down`" in again.stdout


def test_images_only_run_on_docker_and_without_an_engine_say_how_to_start_one(instance: Instance) -> None:
    instance.env.update(UNISTACK_RUNTIME="auto", DOCKER_HOST=f"unix://{instance.folder}/no-engine.sock")
    instance.write("services:\n  app:\n    image: busybox\n")
    result = instance.run("up", "-d")
    assert "runtime: docker (no service has an x-unistack.process form)" in result.stdout
    assert result.returncode == 1 and "no Docker engine answers" in result.stderr and "start dockerd" in result.stderr
