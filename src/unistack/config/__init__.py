"""The Compose loader: Compose files in, one validated, immutable ``Project`` out.

Modules, one job each: ``yamlfile`` (YAML 1.2 with line numbers, ``!reset``/``!override``), ``interpolation``
(``${VAR:-default}``), ``envfile`` (``.env``), ``merge`` (override files), ``discover`` (which files, project
name, unistack's variables), ``composition`` (include, extends, profiles), ``normalize`` (short to long
syntax), ``checks`` (whole-project checks), ``build`` (the model), ``load`` (the named steps), ``render``
(``unistack config``) and ``model`` (the typed result).
"""

from unistack.config.checks import check_for_process_runtime
from unistack.config.envfile import parse_dotenv
from unistack.config.interpolation import interpolate
from unistack.config.load import load
from unistack.config.merge import merge, merge_texts
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
from unistack.config.render import render

__all__ = [
    "Dependency",
    "Healthcheck",
    "Notifier",
    "Port",
    "ProcessSpec",
    "Project",
    "RestartPolicy",
    "Service",
    "check_for_process_runtime",
    "interpolate",
    "load",
    "merge",
    "merge_texts",
    "parse_dotenv",
    "render",
]
