"""A service's networks, ports and host names as container-create arguments: pure, no engine, no files.

Owns ``networks`` (each a declared network of the project, in Compose's priority order, joined under the service's
name and its ``aliases``, with a fixed ``ipv4_address``/``ipv6_address``/``link_local_ips``), ``network_mode``
(``service:NAME`` as that service's container; refused beside ``networks``), the published ``ports`` (from
``Service.ports``; refused with a ``network_mode`` other than bridge) and ``extra_hosts``. The networks
themselves are created by ``resources``; the first attachment is given at create, the others are connected
before start (``containers``). Never talks to Docker.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from unistack.runtimes.docker.resources import network_name, service_networks
from unistack.runtimes.docker.spec_state import Translation


@dataclass(frozen=True)
class Attachment:
    """One network a container joins, with its DNS aliases (the service name first)."""

    network: str
    aliases: tuple[str, ...]
    ipv4_address: str | None = None
    ipv6_address: str | None = None
    link_local_ips: tuple[str, ...] = ()

    def endpoint(self) -> dict[str, Any]:
        """The Engine API's EndpointSettings for ``networking_config``."""
        config: dict[str, Any] = {"Aliases": list(self.aliases)}
        ipam = {
            key: value
            for key, value in {
                "IPv4Address": self.ipv4_address,
                "IPv6Address": self.ipv6_address,
                "LinkLocalIPs": list(self.link_local_ips),
            }.items()
            if value
        }
        if ipam:
            config["IPAMConfig"] = ipam
        return config


def ports_and_networks(translation: Translation) -> None:
    mode = translation.spec.get("network_mode")
    networks = service_networks(translation.service)
    if mode is not None:
        if networks:
            translation.refuse("network_mode", "cannot be combined with networks", "use one of them")
        if translation.service.ports and mode != "bridge":
            translation.refuse("ports", f"cannot be published with network_mode {mode!r}", "remove them")
        try:
            translation.create["network_mode"] = translation.service_reference(str(mode))
        except ValueError as exc:
            translation.refuse("network_mode", str(exc), "name a service of this project")
    else:
        _networks(translation, networks or {"default": None})
    bindings: dict[str, list[Any]] = {}
    for port in translation.service.ports:
        binding: Any = port.published
        if port.host_ip:
            binding = (port.host_ip, port.published) if port.published is not None else (port.host_ip,)
        bindings.setdefault(f"{port.target}/{port.protocol}", []).append(binding)
    if bindings:
        translation.create["ports"] = bindings


def _networks(translation: Translation, networks: dict[str, Any]) -> None:
    def priority(item: tuple[str, Any]) -> tuple[int, str]:
        return (-int((item[1] or {}).get("priority", 0)), item[0])

    for key, options in sorted(networks.items(), key=priority):
        options = options or {}
        if key != "default" and key not in translation.project.networks:
            translation.refuse(f"networks.{key}", "is not declared under the top-level networks", "declare it there")
            continue
        for unsupported in sorted(set(options) - {"aliases", "ipv4_address", "ipv6_address", "link_local_ips"}):
            if unsupported not in ("priority", "gw_priority"):
                translation.refuse(f"networks.{key}.{unsupported}", "is not supported by the docker runtime")
        aliases = [translation.service.name, *(str(a) for a in options.get("aliases") or [])]
        translation.attachments.append(
            Attachment(
                network=network_name(translation.project, key),
                aliases=tuple(dict.fromkeys(aliases)),
                ipv4_address=options.get("ipv4_address"),
                ipv6_address=options.get("ipv6_address"),
                link_local_ips=tuple(str(ip) for ip in options.get("link_local_ips") or []),
            )
        )


def extra_hosts(translation: Translation, value: Any) -> None:
    pairs: list[tuple[str, str]] = []
    if isinstance(value, Mapping):
        for host, ips in value.items():
            pairs.extend((str(host), str(ip)) for ip in (ips if isinstance(ips, list) else [ips]))
    else:
        for item in value:
            text = str(item)
            host, sep, ip = text.partition("=")
            if not sep:
                host, _, ip = text.partition(":")
            pairs.append((host, ip))
    translation.create["extra_hosts"] = [f"{host}:{ip}" for host, ip in pairs]
