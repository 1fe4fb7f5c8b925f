"""The instance's state files: written privately and atomically, read back, and damaged ones explained."""

from __future__ import annotations

from pathlib import Path

import pytest

from unistack.control import state
from unistack.errors import StateError


def test_state_and_project_round_trip_privately(tmp_path: Path) -> None:
    assert state.read_state(tmp_path) is None and state.read_project(tmp_path) is None
    state.write_state(tmp_path, {"up": True, "services": {"db": {"record": {"pid": 1}}}})
    state.write_project(tmp_path, {"name": "demo"})
    assert state.read_state(tmp_path) == {"up": True, "services": {"db": {"record": {"pid": 1}}}, "version": 1}
    assert state.read_project(tmp_path) == {"name": "demo"}
    assert state.state_file(tmp_path).stat().st_mode & 0o777 == 0o600
    state.remove_state(tmp_path)
    assert state.read_state(tmp_path) is None and state.read_project(tmp_path) is None


def test_a_project_sent_as_json_text_is_saved_as_it_came(tmp_path: Path) -> None:
    state.write_project(tmp_path, '{"name":"demo","services":{}}')
    assert state.project_file(tmp_path).read_text() == '{"name":"demo","services":{}}'
    assert state.read_project(tmp_path) == {"name": "demo", "services": {}}
    assert state.project_file(tmp_path).stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(("text", "words"), [("{not json", "cannot be read"), ('{"version": 99}', "another")])
def test_a_damaged_state_file_says_what_to_do(tmp_path: Path, text: str, words: str) -> None:
    state.state_file(tmp_path).write_text(text)
    with pytest.raises(StateError, match=words) as raised:
        state.read_state(tmp_path)
    assert "remove it to start afresh" in str(raised.value)


def test_a_state_write_that_fails_keeps_the_previous_file_whole(tmp_path: Path) -> None:
    state.write_state(tmp_path, {"up": True, "services": {"db": {"state": "healthy"}}})
    (tmp_path / "state.tmp").mkdir()  # the temp file cannot be written (as on a full disk)
    with pytest.raises(StateError, match=r"cannot write .*state\.json: .*the previous state\.json is kept"):
        state.write_state(tmp_path, {"up": True, "services": {}})
    assert state.read_state(tmp_path)["services"] == {"db": {"state": "healthy"}}  # type: ignore[index]
