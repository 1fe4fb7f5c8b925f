"""Declared ``command`` checks: a command run where the named service runs, as its health probe would be: in
its container (docker) or as a host process with its environment and working folder (process), through the
runtime's own ``probe``. Passes when it exits 0. Never starts or stops the service.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from unistack.ops.validate import Context, Outcome, failed, passed

if TYPE_CHECKING:
    from unistack.config.model import DeclaredCheck


def check(ctx: Context, declared: DeclaredCheck) -> Callable[[], Awaitable[Outcome]]:
    async def run() -> Outcome:
        from unistack.config.model import Healthcheck
        from unistack.runtimes.base import Handle

        name = declared.service or declared.component
        service = ctx.project.services.get(name)
        row = ctx.row(name)
        if service is None or row is None or not row.live:
            return failed(f"{name} is not running, so the command cannot run in it", f"`unistack start {name}`")
        if ctx.runtime is None:
            return failed("no runtime to run the command with")
        ident = row.container or str(row.pid)
        probe = Healthcheck(kind="CMD", test=declared.command, timeout=declared.timeout or ctx.timeout)
        result = await ctx.runtime().probe(ctx.project, service, Handle(name, ident, 0.0), probe)
        output = " ".join(result.output.split())[-300:]
        if result.ok:
            return passed(f"exit 0{': ' + output if output else ''}")
        return failed(f"exit {result.exit_code}: {output or '(no output)'}", f"see `unistack logs {name}`")

    return run
