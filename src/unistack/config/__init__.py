"""The Compose loader: Compose files in, one validated, immutable ``Project`` out.

Modules, one job each: ``yamlfile`` (YAML 1.2 with line numbers, ``!reset``/``!override``), ``yamlfast`` and
``yamlvalues`` (the subset most Compose files are written in, read fast), ``interpolation`` (``${VAR:-default}``),
``envfile`` (``.env``), ``merging`` (override files), ``discover`` (which files, project name, unistack's
variables), ``composition`` (include, extends, profiles), ``formats`` (the value formats), ``normalize`` (short
to long syntax), ``checks`` (whole-project checks), ``build`` (the model), ``loading`` (the named steps),
``rendering`` (``unistack config``) and ``model`` (the typed result); ``inputs`` (what a load read) and
``loadcache`` (a load remembered by them).
"""

from __future__ import annotations

from importlib import import_module

TYPE_CHECKING = False  # not typing's: the read-only verbs' fast path imports this package without ``typing``
if TYPE_CHECKING:
    from typing import Any

    from unistack.config.checks import check_for_process_runtime
    from unistack.config.envfile import parse_dotenv
    from unistack.config.examining import examine, find_state_dir, load_detailed
    from unistack.config.interpolation import interpolate
    from unistack.config.loading import load
    from unistack.config.merging import merge, merge_texts
    from unistack.config.model import (
        Dependency,
        Healthcheck,
        Notifier,
        Port,
        ProcessSpec,
        Project,
        RestartPolicy,
        Service,
    )
    from unistack.config.rendering import render
    from unistack.config.sources import Loaded, VariableSource

# Imported on first use: the daemon needs only the model, not the YAML parser and the loader behind it.
_WHERE = {
    "check_for_process_runtime": "checks",
    "parse_dotenv": "envfile",
    "interpolate": "interpolation",
    "load": "loading",
    "load_detailed": "examining",
    "examine": "examining",
    "find_state_dir": "examining",
    "Loaded": "sources",
    "VariableSource": "sources",
    "merge": "merging",
    "merge_texts": "merging",
    "render": "rendering",
    **dict.fromkeys(
        ["Dependency", "Healthcheck", "Notifier", "Port", "ProcessSpec", "Project", "RestartPolicy", "Service"],
        "model",
    ),
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f"unistack.config.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'unistack.config' has no attribute {name!r}")


__all__ = [
    "Dependency",
    "Healthcheck",
    "Loaded",
    "Notifier",
    "Port",
    "ProcessSpec",
    "Project",
    "RestartPolicy",
    "Service",
    "VariableSource",
    "check_for_process_runtime",
    "examine",
    "find_state_dir",
    "interpolate",
    "load",
    "load_detailed",
    "merge",
    "merge_texts",
    "parse_dotenv",
    "render",
]
