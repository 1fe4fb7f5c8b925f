"""``unistack config``: the resolved document as YAML or JSON, with secrets redacted.

Owns redaction (environment values whose key looks secret - PASSWORD, SECRET, TOKEN, KEY, CREDENTIAL - and
every occurrence of such a value elsewhere, shown as ``********``) and serialisation in Compose long syntax.
Never changes the Project.
"""

from __future__ import annotations

import io
import json
import re
from typing import Any, Literal

from ruamel.yaml import YAML

from unistack.config.model import Project

MASK = "********"
SECRET_KEY = re.compile(r"PASSWORD|SECRET|TOKEN|KEY|CREDENTIAL", re.IGNORECASE)
_MIN_SECRET_LENGTH = 4  # shorter values ("1", "yes") would mask half the document
_ORDER = ("name", "services", "networks", "volumes", "secrets", "configs", "models")


def is_secret_key(key: str) -> bool:
    return bool(SECRET_KEY.search(key))


def secret_values(project: Project) -> set[str]:
    """Every value of a secret-looking variable: interpolation variables and service environments."""
    values = {v for k, v in project.variables.items() if is_secret_key(k)}
    for service in project.services.values():
        values.update(v for k, v in service.environment.items() if is_secret_key(k))
        if service.process is not None:
            values.update(v for k, v in service.process.environment.items() if is_secret_key(k))
    return {v for v in values if len(v) >= _MIN_SECRET_LENGTH}


def redact(value: Any, secrets: set[str], key: str | None = None, parent: str | None = None) -> Any:
    """A copy of ``value`` with secret environment values and every occurrence of a secret masked."""
    if isinstance(value, dict):
        return {k: redact(v, secrets, str(k), key) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, secrets, None, key) for v in value]
    if isinstance(value, str):
        if parent == "environment" and key is not None and is_secret_key(key):
            return MASK
        for secret in sorted(secrets, key=len, reverse=True):
            value = value.replace(secret, MASK)
        return value
    return value


def resolved_document(project: Project) -> dict[str, Any]:
    """The project's resolved Compose document, top-level keys in Compose's usual order."""
    spec = dict(project.spec)
    spec["name"] = project.name
    ordered = {k: spec[k] for k in _ORDER if spec.get(k) not in (None, {})}
    ordered.update({k: v for k, v in spec.items() if k not in _ORDER})
    return ordered


def render(project: Project, fmt: Literal["yaml", "json"] = "yaml") -> str:
    """The resolved configuration, secrets redacted, as ``yaml`` or ``json`` text."""
    document = redact(resolved_document(project), secret_values(project))
    if fmt == "json":
        return json.dumps(document, indent=2) + "\n"
    if fmt != "yaml":
        raise ValueError(f"unknown format {fmt!r}; use yaml or json")
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.sort_base_mapping_type_on_output = False  # type: ignore[assignment]
    stream = io.StringIO()
    yaml.dump(document, stream)
    return stream.getvalue()
