"""The model's JSON: what the CLI sends the daemon and the daemon saves, decoded with every type checked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from unistack.config import model
from unistack.config.model import Healthcheck, ProcessSpec, Project, Service


def _project() -> Project:
    check = Healthcheck(kind="CMD-SHELL", test=("test -f ready",), interval=5.0, start_interval=0.05)
    process = ProcessSpec(command=("python3", "app.py"), working_dir=Path("/srv/app"), environment={"A": "1"})
    return Project(
        name="demo",
        environment="local",
        working_dir=Path("/srv"),
        files=(Path("/srv/compose.yaml"),),
        state_dir=Path("/srv/.unistack/demo"),
        services={"app": Service(name="app", healthcheck=check, process=process, spec={"ports": []})},
    )


def test_a_project_comes_back_from_its_json_equal_with_paths_and_tuples() -> None:
    project = _project()
    again = model.project_from_json(model.to_json(project))
    assert again == project
    assert isinstance(again.working_dir, Path) and again.files == (Path("/srv/compose.yaml"),)
    assert again.services["app"].process is not None and again.services["app"].process.command == ("python3", "app.py")
    assert model.check(project) is None


def test_decoding_refuses_unknown_fields_and_wrong_types_saying_where() -> None:
    data = json.loads(model.to_json(_project()))
    data["services"]["app"]["healthcheck"]["retries"] = -1
    with pytest.raises(ValueError, match=r"retries"):
        model.project_from_json(json.dumps(data))
    data = json.loads(model.to_json(_project()))
    data["services"]["app"]["colour"] = "blue"
    with pytest.raises(ValueError, match="unknown field `colour`"):
        model.project_from_json(json.dumps(data))
    data = json.loads(model.to_json(_project()))
    data["working_dir"] = 5
    with pytest.raises(ValueError, match=r"path.*\$\.working_dir"):
        model.project_from_json(json.dumps(data))


def test_check_names_what_the_builder_let_through() -> None:
    bad = model.replace(_project(), name=5)
    assert "name" in (model.check(bad) or "")
