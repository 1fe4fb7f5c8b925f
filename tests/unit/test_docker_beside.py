"""A start-first update's second container in Docker: the address it asks for, and the networks that allow one."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from unistack import config
from unistack.runtimes.docker import beside, resources


def test_the_new_container_takes_the_highest_free_address_never_one_the_service_had() -> None:
    assert beside.choose_address("192.168.64.0/20", []) == "192.168.79.254"
    taken = ["192.168.79.254/20", "192.168.79.253", "192.168.64.2"]
    assert beside.choose_address("192.168.64.0/20", taken) == "192.168.79.252"
    assert beside.choose_address("10.0.0.0/30", ["10.0.0.2", "10.0.0.1"]) is None  # full
    assert beside.choose_address("10.0.0.0/30", ["10.0.0.2"]) == "10.0.0.1"
    assert beside.choose_address("fd00::/64", []) is None  # IPv6: Docker picks


def test_the_addresses_a_service_had_are_carried_from_one_incarnation_to_the_next() -> None:
    live = {
        "NetworkSettings": {"Networks": {"p_default": {"IPAddress": "10.1.0.9"}, "p_back": {"IPAddress": ""}}},
        "Config": {"Labels": {beside.RETIRED_LABEL: json.dumps(["10.1.0.8", "10.1.0.9", 7])}},
    }
    assert beside.retired(live) == ["10.1.0.9", "10.1.0.8"]
    assert beside.retired(None) == []
    broken = {"NetworkSettings": {"Networks": {}}, "Config": {"Labels": {beside.RETIRED_LABEL: "{"}}}
    assert beside.retired(broken) == []
    many = {
        "NetworkSettings": {},
        "Config": {"Labels": {beside.RETIRED_LABEL: json.dumps([f"10.0.0.{i}" for i in range(40)])}},
    }
    assert len(beside.retired(many)) == beside.REMEMBERED


def test_networks_of_start_first_services_get_a_fixed_subnet(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text(
        textwrap.dedent(
            """
            services:
              web:
                image: busybox
                networks: [front, planned, v6]
                deploy: {update_config: {order: start-first}}
              db: {image: busybox, networks: [back]}
            networks:
              front: {}
              back: {}
              planned: {ipam: {config: [{subnet: 172.30.0.0/24}]}}
              v6: {enable_ipv6: true}
            """
        )
    )
    project = config.load([str(tmp_path / "compose.yaml")], env={}, project_name="demo")
    plans = {p.key: p for p in resources.network_plans(project)}
    assert plans["front"].pin_subnet and plans["front"].create["labels"][resources.SUBNET_LABEL] == "fixed"
    assert not plans["back"].pin_subnet and resources.SUBNET_LABEL not in plans["back"].create["labels"]
    assert not plans["planned"].pin_subnet and plans["planned"].create["labels"][resources.SUBNET_LABEL] == "fixed"
    assert not plans["v6"].pin_subnet and resources.SUBNET_LABEL not in plans["v6"].create["labels"]
