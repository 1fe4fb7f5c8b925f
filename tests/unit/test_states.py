"""The service state vocabulary is closed, and the ps row is a typed record with the documented fields."""

from __future__ import annotations

import msgspec
import pytest

from unistack.engine.states import FAILED, LIVE, SETTLED, STATES, rows_from, rows_to_builtins

ROW = {
    "service": "db",
    "state": "healthy",
    "health": "healthy",
    "restarts": 1,
    "exit_code": None,
    "started_at": "2026-01-01T00:00:00.000Z",
    "last_check": {"at": "2026-01-01T00:00:01.000Z", "ok": True, "exit_code": 0, "output": "accepting"},
    "pid": 42,
    "container": None,
    "ports": [{"host_ip": "127.0.0.1", "host_port": 8080, "target": 80, "protocol": "tcp"}],
    "reason": "",
    "restarted_at": ["2026-01-01T00:00:00.000Z"],
    "restarts_recent": [{"at": "2026-01-01T00:00:00.000Z", "cause": "exited"}],
    "update": "",
}


def test_a_row_round_trips_through_its_json_form() -> None:
    (row,) = rows_from([ROW])
    assert row.live and not row.failed and row.last_check is not None and row.last_check.ok
    assert rows_to_builtins([row]) == [ROW]


def test_an_unknown_state_is_refused_with_its_place() -> None:
    with pytest.raises(msgspec.ValidationError, match=r"state"):
        rows_from([{**ROW, "state": "zombie"}])


def test_the_state_sets_are_drawn_from_the_vocabulary() -> None:
    assert set(STATES) >= LIVE | FAILED | SETTLED
    assert not LIVE & SETTLED
    (exited,) = rows_from([{**ROW, "state": "exited", "exit_code": 3}])
    assert exited.failed and not exited.live
