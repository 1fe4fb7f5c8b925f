"""The resolved Project as Kubernetes manifests (plain dicts), grouped by service and by dependency layer. Pure:
no cluster, no files read except the top-level secrets' and configs' own files (their content goes into the
Secret or ConfigMap). Never writes anything (``write.py`` does).

What maps to what (docs/deployment.md, Kubernetes):

- a long-running service -> a Deployment, or a StatefulSet (with ``volumeClaimTemplates``) when it writes a named
  volume that no other service mounts and it is not updated start-first (a database: one identity, its own disk);
- a one-shot (a dependent waits for it with ``service_completed_successfully``) -> a Job named by the hash of its
  pod template (a Job's template cannot change: new content is a new Job), except one that only fills a named
  volume for its dependents (``frontend-build``): it becomes an init container of each dependent, the volume an
  emptyDir of that pod;
- ``service_healthy`` -> an init container waiting for the dependency's headless ``<name>-ready`` Service (only
  ready pods are published); a Job's completion -> the apply order (``apply.sh`` waits with ``kubectl wait``);
- ports others reach (``expose``, ``ports`` targets, ``<service>:<port>`` in another service's environment, the
  service's own ``PORT``/``*_PORT``) -> a ClusterIP Service; published ports -> the entry point: an Ingress (or a
  LoadBalancer Service) for those services only;
- networks -> a NetworkPolicy per workload admitting only the services it shares a network with (and anyone on the
  entry point's ports); a member of ``internal`` networks only may also send only to them (and DNS);
- environment -> a ConfigMap, the secret-looking entries (``config.rendering``'s rules) a Secret, both ``envFrom``;
  top-level secrets -> Secrets and configs -> ConfigMaps, mounted as files.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from unistack import graph
from unistack.config.model import Project, Service
from unistack.errors import ConfigError, Problem
from unistack.targets.kubernetes import environment, network, pods
from unistack.targets.kubernetes.pods import Findings, dns_name

Entry = Literal["ingress", "loadbalancer"]
HASH_ANNOTATION = "unistack.dev/config-hash"


@dataclass(frozen=True)
class Options:
    registry: str | None = None  # prefixed to every image name: where the cluster pulls from
    entry: Entry = "ingress"
    host: str | None = None  # the Ingress rule's host (none: every host)
    ingress_class: str | None = None
    volume_size: str = "1Gi"  # each PersistentVolumeClaim's request


@dataclass(frozen=True)
class Rendered:
    project: str
    objects: dict[str, list[dict[str, Any]]]  # "" (project-wide) or a service -> its objects, in apply order
    layers: tuple[tuple[str, ...], ...]  # the services in dependency order
    jobs: dict[str, str] = field(default_factory=dict)  # one-shot service -> its Job's name
    workloads: dict[str, str] = field(default_factory=dict)  # service -> "deployment/NAME" or "statefulset/NAME"
    warnings: tuple[str, ...] = ()

    def all(self) -> list[dict[str, Any]]:
        found = list(self.objects.get("", []))
        for layer in self.layers:
            for name in layer:
                found.extend(self.objects.get(name, []))
        return found


Locate = Callable[[tuple[str, ...]], tuple[Path | None, int | None]]


def render(project: Project, options: Options = Options(), locate: Locate | None = None) -> Rendered:
    """Every object; every refusal found is reported at once (ConfigError, each at the file and line ``locate``
    finds for its key: the overlay that wrote it), warnings are returned."""
    findings = Findings(project.files[0] if project.files else None)
    services = project.services
    _check_names(project, findings)
    completed = {
        d
        for s in services.values()
        for d, dep in s.depends_on.items()
        if dep.condition == "service_completed_successfully"
    }
    completed |= {  # and a service never restarted (Swarm's way of writing a one-shot)
        n
        for n, s in services.items()
        if ((s.spec.get("deploy") or {}).get("restart_policy") or {}).get("condition") == "none"
    }
    folded = {name for name in completed if name in services and _fills_only(project, services[name])}
    jobs = completed - folded
    claims = _claims(project, folded, jobs, findings)
    ports = {name: network.ports(project, service) for name, service in services.items()}
    waited = {d for s in services.values() for d, dep in s.depends_on.items() if dep.condition == "service_healthy"}
    objects: dict[str, list[dict[str, Any]]] = {"": _shared(project, folded, claims, options)}
    rendered_jobs: dict[str, str] = {}
    workloads: dict[str, str] = {}
    for name, service in services.items():
        if name in folded:
            continue
        found = objects.setdefault(name, [])
        found.extend(environment.objects(project, service))
        workload = _workload(project, service, name in jobs, folded, claims, options, findings)
        found.append(workload)
        reference = f"{workload['kind'].lower()}/{workload['metadata']['name']}"
        if name in jobs:
            rendered_jobs[name] = workload["metadata"]["name"]
        else:
            workloads[name] = reference
        found.extend(
            network.services(
                project,
                service,
                ports[name],
                name in waited or workload["kind"] == "StatefulSet",
                options.entry,
                options.host,
                options.ingress_class,
            )
        )
        found.append(network.network_policy(project, service, ports[name]))
    if findings.refusals:
        problems = []
        for where, message, fix in findings.refusals:
            file, line = locate(tuple(where.split("."))) if locate else (findings.file, None)
            problems.append(Problem(message, file=file, line=line, key=where, fix=fix))
        raise ConfigError(problems)
    edges = {
        n: [d for d in s.depends_on if d in services and d not in folded]
        for n, s in services.items()
        if n not in folded
    }
    order = tuple(tuple(layer) for layer in graph.layers(edges))
    return Rendered(project.name, objects, order, rendered_jobs, workloads, tuple(findings.warnings))


def _check_names(project: Project, findings: Findings) -> None:
    seen: dict[str, str] = {}
    for name in project.services:
        label = dns_name(name)
        if label in seen:
            findings.refuse(
                f"services.{name}",
                f"service {name!r} and {seen[label]!r} are both {label!r} as a Kubernetes name",
                "rename one of them (lower-case letters, digits and dashes)",
            )
        seen[label] = name
        if label != name:
            findings.warn(f"services.{name}", f"named {label!r} in the cluster: other services must use that name")


def _named_mounts(project: Project, service: Service) -> list[dict[str, Any]]:
    return [
        v
        for v in service.spec.get("volumes") or ()
        if isinstance(v, dict) and v.get("type", "volume") == "volume" and v.get("source") in project.volumes
    ]


def _fills_only(project: Project, one_shot: Service) -> bool:
    """A one-shot that writes named volumes which only its dependents (waiting for its completion) mount."""
    written = {str(v["source"]) for v in _named_mounts(project, one_shot) if not v.get("read_only")}
    if not written:
        return False
    for other in project.services.values():
        if other.name == one_shot.name:
            continue
        mounts = {str(v["source"]) for v in _named_mounts(project, other)} & written
        dependency = other.depends_on.get(one_shot.name)
        if mounts and (dependency is None or dependency.condition != "service_completed_successfully"):
            return False
    return True


def _start_first(service: Service) -> bool:
    update = (service.spec.get("deploy") or {}).get("update_config") or {}
    return str(update.get("order") or "") == "start-first"


def _claims(project: Project, folded: set[str], jobs: set[str], findings: Findings) -> dict[str, str]:
    """named volume -> "template" (its one writer is a StatefulSet), "emptyDir" (filled by a folded one-shot),
    or "shared" (a standalone PersistentVolumeClaim); bind mounts refused."""
    mounters: dict[str, list[tuple[Service, bool]]] = {}
    for service in project.services.values():
        for volume in service.spec.get("volumes") or ():
            kind = str(volume.get("type", "volume"))
            if kind == "bind":
                findings.refuse(
                    f"services.{service.name}.volumes",
                    f"bind mount of the host path {volume.get('source')!r} at {volume.get('target')!r}: a pod runs on "
                    "any node, which has no such folder",
                    "use a named volume, a config or secret for a file, or an environment without it (--env NAME)",
                )
            elif kind == "volume" and volume.get("source") in project.volumes:
                mounters.setdefault(str(volume["source"]), []).append((service, not volume.get("read_only")))
    found: dict[str, str] = {}
    for volume, users in mounters.items():
        if any(s.name in folded for s, _ in users):
            found[volume] = "emptyDir"
        elif len(users) == 1 and users[0][1] and users[0][0].name not in jobs and not _start_first(users[0][0]):
            found[volume] = "template"
        else:
            found[volume] = "shared"
            if len(users) > 1 or _start_first(users[0][0]):
                names = ", ".join(s.name for s, _ in users)
                findings.warn(
                    f"volumes.{volume}",
                    f"mounted by {names} (or by two pods during a start-first update): a ReadWriteMany claim, which "
                    "needs a storage class that offers it",
                )
    return found


def _pvc(project: Project, volume: str, options: Options, many: bool, service: str | None = None) -> dict[str, Any]:
    spec = project.volumes.get(volume) or {}
    name = dns_name(str(spec.get("name") or volume))
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": pods.meta(project, name, service),
        "spec": {
            "accessModes": ["ReadWriteMany" if many else "ReadWriteOnce"],
            "resources": {"requests": {"storage": options.volume_size}},
        },
    }


def _shared(project: Project, folded: set[str], claims: dict[str, str], options: Options) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = environment.top_level(project)
    for name in sorted(folded):
        objects.extend(environment.objects(project, project.services[name]))
    for volume, how in claims.items():
        if how == "shared" and not (project.volumes.get(volume) or {}).get("external"):
            users = [
                s for s in project.services.values() if volume in {str(v["source"]) for v in _named_mounts(project, s)}
            ]
            many = len(users) > 1 or any(_start_first(s) for s in users)
            objects.append(_pvc(project, volume, options, many))
    return objects


def _pod_parts(
    project: Project, service: Service, folded: set[str], claims: dict[str, str], options: Options, findings: Findings
) -> tuple[dict[str, Any], dict[str, Any], str]:
    """(the pod spec, the container, a hash of its environment) with volumes and init containers."""
    pod_security, security = pods.security(service, findings)
    volumes, mounts = pods.memory_dirs(service)
    for kind in ("secrets", "configs"):
        more_volumes, more_mounts = pods.file_mounts(project, service, kind)
        volumes += more_volumes
        mounts += more_mounts
    for volume in _named_mounts(project, service):
        source = str(volume["source"])
        name = dns_name(str((project.volumes.get(source) or {}).get("name") or source))
        mounts.append({"name": name, "mountPath": str(volume["target"]), "readOnly": bool(volume.get("read_only"))})
        if claims.get(source) == "emptyDir":
            volumes.append({"name": name, "emptyDir": {}})
        elif claims.get(source) == "shared":
            volumes.append({"name": name, "persistentVolumeClaim": {"claimName": name}})
    for volume in service.spec.get("volumes") or ():
        if volume.get("type") == "tmpfs":
            index = len(volumes)
            volumes.append({"name": f"tmpfs-{index}", "emptyDir": {"medium": "Memory"}})
            mounts.append({"name": f"tmpfs-{index}", "mountPath": str(volume["target"])})
    sources, digest = environment.sources(project, service)
    container = pods.container(project, service, options.registry, sources, mounts, security, findings, probed=True)
    inits: list[dict[str, Any]] = []
    for dependency, condition in service.depends_on.items():
        if dependency not in project.services:
            continue
        if dependency in folded:
            init, more_volumes = _folded_init(project, project.services[dependency], options, findings)
            inits.append(init)
            volumes += more_volumes
        elif condition.condition == "service_healthy":
            inits.append(pods.wait_for(dependency, container))
    have = {v["name"] for v in volumes}
    for init in inits:  # a folded one-shot's volume that the dependent itself does not mount
        for mount in init.get("volumeMounts", []):
            if mount["name"] not in have:
                volumes.append({"name": mount["name"], "emptyDir": {}})
                have.add(mount["name"])
    pod: dict[str, Any] = {
        "automountServiceAccountToken": False,  # nothing here talks to the Kubernetes API
        "enableServiceLinks": False,  # no BACKEND_PORT=tcp://... variables over the service's own
        "securityContext": pod_security,
        "terminationGracePeriodSeconds": pods.seconds(service.stop_grace_period),
    }
    if service.spec.get("hostname"):
        pod["hostname"] = dns_name(str(service.spec["hostname"]))
    if inits:
        pod["initContainers"] = inits
    pod["containers"] = [container]
    if volumes:
        pod["volumes"] = volumes
    return pod, container, digest


def _folded_init(
    project: Project, one_shot: Service, options: Options, findings: Findings
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The volume-filling one-shot as an init container of its dependent (its image, command, environment and
    hardening) and the memory volumes it brings; its named volumes are the dependent pod's emptyDirs."""
    _, security = pods.security(one_shot, findings)
    volumes, mounts = pods.memory_dirs(one_shot)
    prefix = dns_name(one_shot.name)
    for item in (*volumes, *mounts):
        item["name"] = f"{prefix}-{item['name']}"
    for volume in _named_mounts(project, one_shot):
        source = str(volume["source"])
        name = dns_name(str((project.volumes.get(source) or {}).get("name") or source))
        mounts.append({"name": name, "mountPath": str(volume["target"])})
    sources, _ = environment.sources(project, one_shot)
    init = pods.container(project, one_shot, options.registry, sources, mounts, security, findings, probed=False)
    init.pop("lifecycle", None)  # an init container may have no hooks (it runs to its end anyway)
    return init, volumes


def _workload(
    project: Project,
    service: Service,
    is_job: bool,
    folded: set[str],
    claims: dict[str, str],
    options: Options,
    findings: Findings,
) -> dict[str, Any]:
    spec = service.spec
    where = f"services.{service.name}"
    network_mode = str(spec.get("network_mode") or "")
    if network_mode == "host" or network_mode.startswith(("service:", "container:")):
        findings.refuse(
            f"{where}.network_mode",
            f"network_mode {network_mode!r} cannot map to a pod (a pod has its own network)",
            "remove network_mode, or put the two containers in one service",
        )
    pods.unmapped(service, findings)
    pod, _, digest = _pod_parts(project, service, folded, claims, options, findings)
    name = dns_name(service.name)
    annotations = {HASH_ANNOTATION: digest}
    labels = pods.pairs(spec.get("labels"))
    template = {
        "metadata": {"labels": pods.labels(project, service.name), "annotations": {**labels, **annotations}},
        "spec": pod,
    }
    deploy = spec.get("deploy") or {}
    if is_job:
        pod["restartPolicy"] = "Never"
        template_hash = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:8]
        return {
            "apiVersion": "batch/v1",
            "kind": "Job",
            # a Job's name is also its pods' label value: 63 characters at most
            "metadata": pods.meta(project, f"{name[:54]}-{template_hash}", service.name),
            "spec": {"backoffLimit": 0, "template": template},  # a one-shot runs once, as with restart: "no"
        }
    if deploy.get("mode") == "global":
        findings.warn(
            f"{where}.deploy.mode", "global: rendered as one replica (a DaemonSet would run it on every node)"
        )
    replicas = int(deploy.get("replicas", 1))
    select = {"matchLabels": pods.selector(project, service.name)}
    templates = [
        _pvc(project, str(v["source"]), options, False)
        for v in _named_mounts(project, service)
        if claims.get(str(v["source"])) == "template"
    ]
    if templates:
        for claim in templates:
            del claim["apiVersion"], claim["kind"]
        return {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": pods.meta(project, name, service.name),
            "spec": {
                "serviceName": f"{name}-ready",
                "replicas": replicas,
                "selector": select,
                "template": template,
                "volumeClaimTemplates": templates,
            },
        }
    order = str((deploy.get("update_config") or {}).get("order") or "")
    if order == "start-first" or (service.healthcheck is not None and order != "stop-first"):
        strategy: dict[str, Any] = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    else:
        strategy = {"type": "Recreate"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": pods.meta(project, name, service.name),
        "spec": {"replicas": replicas, "selector": select, "strategy": strategy, "template": template},
    }
