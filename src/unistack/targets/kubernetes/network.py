"""How the services reach each other in the cluster: the ports others reach, the ClusterIP and headless ready
Services, the entry point (an Ingress or a LoadBalancer Service) for the services with published ports only, and
a NetworkPolicy per workload mirroring the Compose networks. Pure data; never builds a pod (``pods.py``).
"""

from __future__ import annotations

import re
from typing import Any

from unistack.config.model import Project, Service
from unistack.targets.kubernetes import pods
from unistack.targets.kubernetes.pods import dns_name

_PORT_KEY = re.compile(r"(?:^|_)PORT$")


def ports(project: Project, service: Service) -> list[tuple[int, str, int | None]]:
    """(target port, protocol, published port or None) of what others reach: ``expose``, ``ports``, the
    ``<service>:<port>`` other services' environments name, the service's own ``PORT``/``*_PORT``."""
    found: dict[tuple[int, str], int | None] = {}
    for port in service.ports:
        found[(port.target, port.protocol)] = port.published or port.target
    for entry in service.spec.get("expose") or ():
        number, _, protocol = str(entry).partition("/")
        if number.isdigit():
            found.setdefault((int(number), protocol or "tcp"), None)
    mention = re.compile(rf"(?<![A-Za-z0-9_.-]){re.escape(service.name)}:(\d{{1,5}})(?![0-9])")
    for other in project.services.values():
        if other.name == service.name:
            continue
        for value in other.environment.values():
            for match in mention.finditer(value):
                found.setdefault((int(match.group(1)), "tcp"), None)
    for key, value in service.environment.items():
        if _PORT_KEY.search(key) and value.isdigit() and 0 < int(value) < 65536:
            found.setdefault((int(value), "tcp"), None)
    return [(target, protocol, published) for (target, protocol), published in sorted(found.items())]


def _port_name(target: int, protocol: str) -> str:
    return f"{protocol}-{target}"


def services(
    project: Project,
    service: Service,
    ports: list[tuple[int, str, int | None]],
    ready: bool,
    entry: str = "ingress",
    host: str | None = None,
    ingress_class: str | None = None,
) -> list[dict[str, Any]]:
    """The ClusterIP Service of its ports (a LoadBalancer for published ones with ``entry`` loadbalancer), the
    headless ``<name>-ready`` one when ``ready``, the Ingress of its published TCP port."""
    name = dns_name(service.name)
    select = pods.selector(project, service.name)
    found: list[dict[str, Any]] = []
    published = [(t, p, pub) for t, p, pub in ports if pub is not None]
    if ports:
        spec: dict[str, Any] = {"type": "ClusterIP", "selector": select}
        if published and entry == "loadbalancer":
            spec["type"] = "LoadBalancer"
        spec["ports"] = [
            {
                "name": _port_name(target, protocol),
                "port": (pub if spec["type"] == "LoadBalancer" and pub else target),
                "targetPort": target,
                "protocol": protocol.upper(),
            }
            for target, protocol, pub in ports
        ]
        found.append(
            {"apiVersion": "v1", "kind": "Service", "metadata": pods.meta(project, name, service.name), "spec": spec}
        )
    if ready:
        found.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": pods.meta(project, f"{name}-ready", service.name),
                "spec": {
                    "clusterIP": "None",  # headless: DNS answers with the ready pods' addresses only
                    "publishNotReadyAddresses": False,
                    "selector": select,
                    **(
                        {
                            "ports": [
                                {"name": _port_name(t, p), "port": t, "targetPort": t, "protocol": p.upper()}
                                for t, p, _ in ports
                            ]
                        }
                        if ports
                        else {}  # a headless Service needs none: DNS names the ready pods all the same
                    ),
                },
            }
        )
    http = [(t, p) for t, p, _ in published if p == "tcp"]
    if http and entry == "ingress":
        rule: dict[str, Any] = {
            "http": {
                "paths": [
                    {
                        "path": "/",
                        "pathType": "Prefix",
                        "backend": {"service": {"name": name, "port": {"number": http[0][0]}}},
                    }
                ]
            }
        }
        if host:
            rule = {"host": host, **rule}
        ingress: dict[str, Any] = {"rules": [rule]}
        if ingress_class:
            ingress = {"ingressClassName": ingress_class, **ingress}
        found.append(
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "Ingress",
                "metadata": pods.meta(project, name, service.name),
                "spec": ingress,
            }
        )
    return found


def _networks(service: Service) -> list[str]:
    if service.spec.get("network_mode") == "none":
        return []
    networks = service.spec.get("networks")
    return list(networks) if networks else ["default"]


def network_policy(project: Project, service: Service, ports: list[tuple[int, str, int | None]]) -> dict[str, Any]:
    """Ingress from the services that share a network with this one (and anyone on published ports); a service on
    ``internal`` networks only sends only to those peers and the cluster's DNS."""
    own = set(_networks(service))
    peers = sorted(
        dns_name(other.name)
        for other in project.services.values()
        if other.name != service.name and own & set(_networks(other))
    )
    part_of = dns_name(project.name)

    def from_peers() -> dict[str, Any]:
        return {
            "podSelector": {
                "matchLabels": {"app.kubernetes.io/part-of": part_of},
                "matchExpressions": [{"key": "app.kubernetes.io/name", "operator": "In", "values": peers}],
            }
        }

    spec: dict[str, Any] = {
        "podSelector": {"matchLabels": pods.selector(project, service.name)},
        "policyTypes": ["Ingress"],
    }
    rules: list[dict[str, Any]] = []
    if peers:
        rules.append({"from": [from_peers()]})
    published = [(t, p) for t, p, pub in ports if pub is not None]
    if published:
        rules.append({"ports": [{"port": t, "protocol": p.upper()} for t, p in published]})  # no "from": anyone
    spec["ingress"] = rules
    internal = bool(own) and all((project.networks.get(n) or {}).get("internal") for n in own)
    if internal or not own:
        spec["policyTypes"] = ["Ingress", "Egress"]
        egress: list[dict[str, Any]] = []
        if own:
            dns = [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]
            egress.append({"ports": dns, "to": [{"namespaceSelector": {}}]})
            if peers:
                egress.append({"to": [from_peers()]})
        spec["egress"] = egress
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": pods.meta(project, dns_name(service.name), service.name),
        "spec": spec,
    }
