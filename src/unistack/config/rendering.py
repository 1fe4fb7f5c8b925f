"""``unistack config``: the resolved document as YAML or JSON, a Compose file that reads back to the same project.

Owns serialisation in Compose long syntax (``$`` written ``$$``, as Compose writes it, so the output interpolates
to itself; unistack's own relative paths under ``x-unistack`` made absolute, as Compose makes its own) and
redaction, which masks by place, never by searching text:

- the value of an environment entry or build argument whose key looks secret (PASSWORD, SECRET, TOKEN, KEY,
  CREDENTIAL, ...), in a service's ``environment``, ``x-unistack.process.environment`` and ``build.args``;
- the password of a URL (``scheme://user:PASSWORD@host``) and the value of ``NAME=value`` where NAME looks secret,
  in any string;
- an argument (an item of a list after the first, as in ``command: [serve, --key, VALUE]``) equal to a secret: a
  secret-looking variable, a secret-keyed environment value or the variable a top-level secret reads (the
  secret itself shows only that variable's name; a secret's contents never appear in the document).

A secret that happens to equal a word of an unrelated value (``POSTGRES_PASSWORD=gitea``, ``image: gitea/gitea``)
leaves that value alone. Never changes the Project.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from unistack.config import yamlwriter
from unistack.config.model import Project

MASK = "********"
SECRET_KEY = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|KEY|CREDENTIAL|PRIVATE", re.IGNORECASE)
URL_PASSWORD = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)([^@/\s]+)(@)")
_ASSIGNMENT = re.compile(r"(\b[A-Za-z_][A-Za-z0-9_.-]*)=([^\s'\"&;|]+)")
_MIN_SECRET_LENGTH = 4  # shorter values ("1", "yes") would mask half the arguments
_ORDER = ("name", "services", "networks", "volumes", "secrets", "configs", "models")
_SECRET_MAPPINGS = ("environment", "args")  # service environment, x-unistack.process.environment, build.args


def is_secret_key(key: str) -> bool:
    return bool(SECRET_KEY.search(key))


def secret_values(project: Project) -> set[str]:
    """Every value known to be a secret: secret-looking variables and environment entries, and the variables
    top-level secrets read (``secrets: {name: {environment: VAR}}``)."""
    values = {v for k, v in project.variables.items() if is_secret_key(k)}
    for service in project.services.values():
        values.update(v for k, v in service.environment.items() if is_secret_key(k))
        if service.process is not None:
            values.update(v for k, v in service.process.environment.items() if is_secret_key(k))
    for secret in (project.spec.get("secrets") or {}).values():
        if isinstance(secret, dict) and isinstance(secret.get("environment"), str):
            values.add(project.variables.get(secret["environment"], ""))
    return {v for v in values if len(v) >= _MIN_SECRET_LENGTH}


def mask_text(text: str) -> str:
    """``text`` with URL passwords and the values of secret-looking ``NAME=value`` assignments masked."""
    text = URL_PASSWORD.sub(lambda m: m.group(1) + MASK + m.group(3), text)
    return _ASSIGNMENT.sub(lambda m: f"{m.group(1)}={MASK}" if is_secret_key(m.group(1)) else m.group(0), text)


def redact(value: Any, secrets: set[str], key: str | None = None, parent: str | None = None) -> Any:
    """A copy of ``value`` with secrets masked by place (see the module docstring)."""
    if isinstance(value, dict):
        return {k: redact(v, secrets, str(k), key) for k, v in value.items()}
    if isinstance(value, list):
        return [  # the first item is a program (or CMD), never a secret
            MASK if index and isinstance(v, str) and v in secrets else redact(v, secrets, None, key)
            for index, v in enumerate(value)
        ]
    if isinstance(value, str):
        if parent in _SECRET_MAPPINGS and key is not None and is_secret_key(key) and value:
            return MASK
        return mask_text(value)
    return value


def escape(value: Any) -> Any:
    """Every ``$`` in a value written ``$$``: the document has been interpolated, and must stay what it is."""
    if isinstance(value, str):
        return value.replace("$", "$$")
    if isinstance(value, dict):
        return {k: escape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [escape(v) for v in value]
    return value


def resolved_document(project: Project) -> dict[str, Any]:
    """The project's resolved Compose document, top-level keys in Compose's usual order, unistack's own paths
    (``x-unistack.process.working_dir``, ``x-unistack.dependencies`` manifests) absolute."""
    spec = dict(project.spec)
    spec["name"] = project.name
    services = dict(spec.get("services") or {})
    for name, service in project.services.items():
        if name in services:
            services[name] = _absolute_extension(services[name], service)
    spec["services"] = services
    ordered = {k: spec[k] for k in _ORDER if spec.get(k) not in (None, {})}
    ordered.update({k: v for k, v in spec.items() if k not in _ORDER})
    return ordered


def _absolute_extension(spec: dict[str, Any], service: Any) -> dict[str, Any]:
    extension = spec.get("x-unistack")
    if not isinstance(extension, dict):
        return spec
    extension = dict(extension)
    process = extension.get("process")
    if isinstance(process, dict) and service.process is not None:
        extension["process"] = {**process, "working_dir": str(service.process.working_dir)}
    dependencies = extension.get("dependencies")
    if isinstance(dependencies, dict) and service.dependencies is not None:
        extension["dependencies"] = {
            **dependencies,
            "manifests": [
                {"path": str(m.path), **({"target": m.target} if m.target is not None else {})}
                for m in service.dependencies.manifests
            ],
        }
    return {**spec, "x-unistack": extension}


def render(project: Project, fmt: Literal["yaml", "json"] = "yaml", *, redacted: bool = True) -> str:
    """The resolved configuration as ``yaml`` or ``json`` text; secrets masked unless ``redacted`` is False."""
    document = resolved_document(project)
    if redacted:
        document = redact(document, secret_values(project))
    document = escape(document)
    if fmt == "json":
        return json.dumps(document, indent=2) + "\n"
    if fmt != "yaml":
        raise ValueError(f"unknown format {fmt!r}; use yaml or json")
    return yamlwriter.to_yaml(document)
