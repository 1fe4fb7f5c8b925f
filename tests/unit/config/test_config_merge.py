"""Override merging with the Compose rules, including ``!reset`` and ``!override``."""

from __future__ import annotations

from unistack.config import merge, merge_texts


def _service(base: str, override: str) -> dict:  # type: ignore[type-arg]
    merged = merge_texts(f"services:\n  s:\n{base}", f"services:\n  s:\n{override}")
    return merged["services"]["s"]  # type: ignore[no-any-return]


def test_mappings_merge_and_scalars_replace() -> None:
    assert _service("    image: a\n    user: u\n", "    image: b\n    init: true\n") == {
        "image": "b",
        "user": "u",
        "init": True,
    }


def test_command_entrypoint_and_healthcheck_test_are_replaced() -> None:
    merged = _service(
        "    command: [a, b]\n    entrypoint: [x]\n    healthcheck: {test: [CMD, a], retries: 3}\n",
        "    command: [c]\n    entrypoint: [y]\n    healthcheck: {test: [CMD, b]}\n",
    )
    assert merged == {"command": ["c"], "entrypoint": ["y"], "healthcheck": {"test": ["CMD", "b"], "retries": 3}}


def test_environment_merges_as_mapping_whatever_the_form() -> None:
    merged = _service("    environment: [A=1, B=2]\n", "    environment: {B: 3, C: null}\n")
    assert merged["environment"] == {"A": "1", "B": 3, "C": None}


def test_set_like_sequences_are_unique_by_their_key() -> None:
    merged = _service(
        "    ports: ['8080:80', '9000:9000']\n"
        "    volumes: ['./a:/data', 'logs:/logs']\n"
        "    secrets: [db, {source: api, target: /run/secrets/api}]\n"
        "    expose: [80]\n"
        "    profiles: [a]\n",
        "    ports: ['8080:80', '7000:70']\n"
        "    volumes: [{type: volume, source: other, target: /data}]\n"
        "    secrets: [{source: db2, target: /run/secrets/db}, api]\n"
        "    expose: [80, 81]\n"
        "    profiles: [a, b]\n",
    )
    assert merged["ports"] == ["8080:80", "9000:9000", "7000:70"]
    assert merged["volumes"] == [{"type": "volume", "source": "other", "target": "/data"}, "logs:/logs"]
    assert merged["secrets"] == [{"source": "db2", "target": "/run/secrets/db"}, "api"]
    assert merged["expose"] == [80, 81]
    assert merged["profiles"] == ["a", "b"]


def test_depends_on_list_and_mapping_merge() -> None:
    merged = _service("    depends_on: [db]\n", "    depends_on: {cache: {condition: service_healthy}}\n")
    assert merged["depends_on"] == {
        "db": {"condition": "service_started", "required": True},
        "cache": {"condition": "service_healthy"},
    }


def test_reset_removes_and_override_replaces() -> None:
    merged = _service(
        "    ports: ['8080:80']\n    environment: {FOO: bar, KEEP: 1}\n    labels: {a: b}\n",
        "    ports: !reset []\n    environment: {FOO: !reset null}\n    labels: !override {c: d}\n",
    )
    assert merged == {"environment": {"KEEP": 1}, "labels": {"c": "d"}}


def test_x_unistack_is_merged_and_its_command_replaced() -> None:
    merged = _service(
        "    x-unistack:\n      process: {command: [a], working_dir: ./w, environment: {A: '1'}}\n",
        "    x-unistack:\n      process: {command: [b], environment: {B: '2'}}\n",
    )
    assert merged["x-unistack"] == {
        "process": {"command": ["b"], "working_dir": "./w", "environment": {"A": "1", "B": "2"}}
    }


def test_other_extensions_are_replaced_whole() -> None:
    assert merge({"x-a": {"k": 1}}, {"x-a": {"j": 2}}) == {"x-a": {"j": 2}}


def test_merge_does_not_change_its_inputs() -> None:
    base = {"services": {"s": {"environment": {"A": "1"}}}}
    merge(base, {"services": {"s": {"environment": {"B": "2"}}}})
    assert base == {"services": {"s": {"environment": {"A": "1"}}}}


def test_new_services_are_added() -> None:
    merged = merge_texts("services:\n  a: {image: x}\n", "services:\n  b: {image: y}\n")
    assert merged == {"services": {"a": {"image": "x"}, "b": {"image": "y"}}}
