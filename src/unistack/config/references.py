"""Whole-project checks that what a service names exists, as Compose checks it: the named volumes, networks,
secrets and configs it uses are declared at the top level, and it has something to run (an image, a build, or
unistack's ``x-unistack.process``). Each problem names the service and says what to declare. Never changes the
document.
"""

from __future__ import annotations

from typing import Any

from unistack.config.yamlfile import Locations
from unistack.errors import Problem

Document = dict[str, Any]


def _names(section: str, spec: dict[str, Any]) -> list[str]:
    entries = spec.get(section)
    if section == "networks":
        return [str(n) for n in entries] if isinstance(entries, dict | list) else []
    if not isinstance(entries, list):
        return []
    if section == "volumes":
        return [
            str(v["source"]) for v in entries if isinstance(v, dict) and v.get("type") == "volume" and v.get("source")
        ]
    return [e if isinstance(e, str) else str(e.get("source")) for e in entries if isinstance(e, str | dict)]


def check_references(doc: Document, locations: Locations) -> list[Problem]:
    """Every named volume, network, secret and config a service uses is declared at the top level."""
    services = doc.get("services") if isinstance(doc.get("services"), dict) else {}
    problems = []
    for name, spec in (services or {}).items():
        if not isinstance(spec, dict):
            continue
        for section, singular in (
            ("volumes", "volume"),
            ("networks", "network"),
            ("secrets", "secret"),
            ("configs", "config"),
        ):
            declared = doc.get(section) if isinstance(doc.get(section), dict) else {}
            for used in _names(section, spec):
                if used in (declared or {}) or (section == "networks" and used == "default"):
                    continue
                problems.append(
                    locations.problem(
                        ("services", name, section),
                        f"service {name!r} uses the {singular} {used!r}, which is not declared.",
                        f"declare it under the top-level '{section}:' ({used}: {{}}), or fix the name.",
                    )
                )
    return problems


def check_something_to_run(doc: Document, locations: Locations) -> list[Problem]:
    """A service needs an image, a build, or an ``x-unistack.process`` (the host-process form)."""
    services = doc.get("services") if isinstance(doc.get("services"), dict) else {}
    problems = []
    for name, spec in (services or {}).items():
        if not isinstance(spec, dict) or spec.get("image") or spec.get("build"):
            continue
        extension = spec.get("x-unistack")
        if isinstance(extension, dict) and extension.get("process") is not None:
            continue
        problems.append(
            locations.problem(
                ("services", name),
                f"service {name!r} has neither an image nor a build (nor an x-unistack.process command).",
                "give it image: NAME, build: ./folder, or x-unistack: {process: {command: [...]}}.",
            )
        )
    return problems
