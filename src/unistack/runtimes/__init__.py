"""Runtime drivers: how services become host processes or containers. They carry out; they never decide."""

from __future__ import annotations

from collections.abc import Mapping

from unistack.errors import NotSupported, UsageError
from unistack.runtimes.base import Runtime

RUNTIMES = ("process", "docker", "auto")


def resolve_runtime_name(name: str) -> str:
    """``auto`` becomes a concrete runtime; unknown names are refused with the known ones."""
    if name not in RUNTIMES:
        raise UsageError(f"unknown runtime {name!r}; use one of: {', '.join(RUNTIMES)}")
    if name == "auto":
        return "process"  # the Docker runtime is not part of this version yet
    if name == "docker":
        raise NotSupported(
            "the docker runtime is not available in this version of unistack; use --runtime process "
            "(or leave --runtime at auto)"
        )
    return name


def create_runtime(name: str, environ: Mapping[str, str] | None = None) -> Runtime:
    from unistack.runtimes.process import ProcessRuntime

    if resolve_runtime_name(name) == "process":
        return ProcessRuntime(dict(environ) if environ else None)
    raise NotSupported(f"runtime {name!r} is not available")
