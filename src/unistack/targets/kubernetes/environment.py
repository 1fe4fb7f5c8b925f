"""What a service is given besides its image: its environment as a ConfigMap ``<service>-env`` and a Secret of the
same name for the secret-looking entries (``config.rendering``'s rules: a secret-looking key, a URL with a
password, a value holding a secret), both ``envFrom``; the top-level secrets as Secrets and configs as ConfigMaps
(one key, ``content``, mounted as a file by ``pods.file_mounts``). Never writes a plain secret into a pod spec.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from unistack.config import rendering
from unistack.config.model import Project, Service
from unistack.errors import ConfigError, Problem
from unistack.targets.kubernetes import pods
from unistack.targets.kubernetes.pods import dns_name


def blob(project: Project, kind: str, key: str, spec: Mapping[str, Any]) -> bytes:
    if "content" in spec:
        return str(spec["content"]).encode()
    if "environment" in spec:
        return project.variables.get(str(spec["environment"]), "").encode()
    path = Path(str(spec.get("file", "")))
    path = path if path.is_absolute() else project.working_dir / path
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(Problem(f"cannot read {path}: {exc.strerror}", key=f"{kind}.{key}.file")) from None


def _is_secret(key: str, value: str, secrets: set[str]) -> bool:
    return (
        rendering.is_secret_key(key) or bool(rendering.URL_PASSWORD.search(value)) or any(s in value for s in secrets)
    )


def _split_environment(project: Project, service: Service) -> tuple[dict[str, str], dict[str, str]]:
    secrets = rendering.secret_values(project)
    plain: dict[str, str] = {}
    hidden: dict[str, str] = {}
    for key, value in service.environment.items():
        (hidden if _is_secret(key, value, secrets) else plain)[key] = value
    return plain, hidden


def objects(project: Project, service: Service) -> list[dict[str, Any]]:
    """The ConfigMap ``<service>-env`` and the Secret ``<service>-env`` (its secret-looking entries)."""
    plain, hidden = _split_environment(project, service)
    name = f"{dns_name(service.name)}-env"
    found: list[dict[str, Any]] = []
    if plain:
        found.append(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": pods.meta(project, name, service.name), "data": plain}
        )
    if hidden:
        found.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": pods.meta(project, name, service.name),
                "type": "Opaque",
                "stringData": hidden,
            }
        )
    return found


def sources(project: Project, service: Service) -> tuple[list[dict[str, Any]], str]:
    plain, hidden = _split_environment(project, service)
    name = f"{dns_name(service.name)}-env"
    sources: list[dict[str, Any]] = []
    if plain:
        sources.append({"configMapRef": {"name": name}})
    if hidden:
        sources.append({"secretRef": {"name": name}})
    digest = hashlib.sha256(json.dumps([plain, hidden], sort_keys=True).encode()).hexdigest()[:16]
    return sources, digest


def top_level(project: Project) -> list[dict[str, Any]]:
    """A Secret per top-level secret, a ConfigMap per config (external ones: the cluster has them)."""
    found: list[dict[str, Any]] = []
    for kind in ("secrets", "configs"):
        for key, spec in (project.spec.get(kind) or {}).items():
            spec = spec or {}
            if spec.get("external"):
                continue
            data = blob(project, kind, key, spec)
            meta = pods.meta(project, pods.object_name(project, key))
            if kind == "secrets":
                encoded = {"content": base64.b64encode(data).decode()}
                found.append(
                    {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": "Opaque", "data": encoded}
                )
                continue
            try:
                content: dict[str, Any] = {"data": {"content": data.decode()}}
            except UnicodeDecodeError:
                content = {"binaryData": {"content": base64.b64encode(data).decode()}}
            found.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, **content})
    return found
