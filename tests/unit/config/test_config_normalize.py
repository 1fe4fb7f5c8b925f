"""Value formats and short-to-long syntax."""

from __future__ import annotations

from pathlib import Path

import pytest

from unistack.config.formats import (
    environment_mapping,
    healthcheck_test,
    parse_bytes,
    parse_duration,
    parse_port,
    parse_restart,
    parse_volume,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1m30s", 90.0), ("10s", 10.0), ("1.5s", 1.5), ("100ms", 0.1), ("1h", 3600.0), ("2h45m", 9900.0), (5, 5.0)],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["10 parsecs", "", "s", "10", "1m 30s", True, -1])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError, match=r"duration|negative"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "size"), [("512m", 512 * 1024**2), ("1g", 1024**3), ("100kb", 102400), (1024, 1024), ("2GiB", 2 * 1024**3)]
)
def test_byte_sizes(text: object, size: int) -> None:
    assert parse_bytes(text) == size


def test_bad_byte_size() -> None:
    with pytest.raises(ValueError, match="byte size"):
        parse_bytes("lots")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (80, [{"target": 80, "protocol": "tcp"}]),
        ("8080:80", [{"target": 80, "published": 8080, "protocol": "tcp"}]),
        ("127.0.0.1:8080:80/udp", [{"target": 80, "published": 8080, "host_ip": "127.0.0.1", "protocol": "udp"}]),
        ("[::1]:8080:80", [{"target": 80, "published": 8080, "host_ip": "::1", "protocol": "tcp"}]),
        (
            "8000-8001:80-81",
            [
                {"target": 80, "published": 8000, "protocol": "tcp"},
                {"target": 81, "published": 8001, "protocol": "tcp"},
            ],
        ),
        ({"target": 80, "published": "8080"}, [{"target": 80, "published": 8080, "protocol": "tcp"}]),
    ],
)
def test_ports(value: object, expected: list[dict[str, object]]) -> None:
    assert parse_port(value) == expected


@pytest.mark.parametrize("value", ["x:80", "8080:99999", "1:2:3:4:5-9", {"published": 80}])
def test_bad_ports(value: object) -> None:
    with pytest.raises(ValueError):
        parse_port(value)


def test_volumes(tmp_path: Path) -> None:
    assert parse_volume("./data:/data:ro", tmp_path) == {
        "type": "bind",
        "source": str(tmp_path / "data"),
        "target": "/data",
        "read_only": True,
        "bind": {"create_host_path": True},  # as Compose expands the short syntax
    }
    assert parse_volume("pgdata:/var/lib/postgresql", tmp_path) == {
        "type": "volume",
        "source": "pgdata",
        "target": "/var/lib/postgresql",
    }
    assert parse_volume("/tmp", tmp_path) == {"type": "volume", "target": "/tmp"}
    assert parse_volume({"type": "bind", "source": "../x", "target": "/x"}, tmp_path / "p")["source"] == str(
        tmp_path / "x"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (["CMD", "pg_isready", "-q"], ["CMD", "pg_isready", "-q"]),
        (["CMD-SHELL", "curl -f localhost"], ["CMD-SHELL", "curl -f localhost"]),
        ("curl -f localhost", ["CMD-SHELL", "curl -f localhost"]),
        (["NONE"], None),
    ],
)
def test_healthcheck_tests(value: object, expected: list[str] | None) -> None:
    assert healthcheck_test(value) == expected


def test_bad_healthcheck_test() -> None:
    with pytest.raises(ValueError, match="CMD"):
        healthcheck_test(["RUN", "x"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("no", ("no", None)),
        ("always", ("always", None)),
        ("on-failure", ("on-failure", None)),
        ("on-failure:5", ("on-failure", 5)),
        ("unless-stopped", ("unless-stopped", None)),
    ],
)
def test_restart_words(text: str, expected: tuple[str, int | None]) -> None:
    assert parse_restart(text) == expected


@pytest.mark.parametrize("text", ["sometimes", "always:3", "on-failure:x", "on-failure:-1"])
def test_bad_restart_lists_known_words(text: str) -> None:
    with pytest.raises(ValueError, match="no, always, on-failure, unless-stopped, on-failure:N"):
        parse_restart(text)


def test_environment_list_and_mapping() -> None:
    variables = {"FROM_ENV": "x"}
    assert environment_mapping(["A=1", "B=", "FROM_ENV", "UNSET"], variables) == {"A": "1", "B": "", "FROM_ENV": "x"}
    assert environment_mapping({"A": 1, "B": True, "C": None, "FROM_ENV": None}, variables) == {
        "A": "1",
        "B": "true",
        "FROM_ENV": "x",
    }
