"""The built-in checks that hold for any Compose file: every selected service ready (one-shots exited 0) with
its last health check, none flapping (restarted by the supervisor after a crash or a failed healthcheck within
the last minutes, even if healthy now; planned restarts never count), and no drift
between the configuration the instance runs (the daemon's ``project.json``) and what the files give now.

Reads only the ``ps`` rows and the two projects; never talks to a service (isolation.py and checks_http.py do).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from unistack.engine import exits
from unistack.ops.validate import Check, Context, Outcome, constant, failed, passed, skipped
from unistack.runtimes import PROCESS, RuntimeName

if TYPE_CHECKING:
    from unistack.config.model import Project, Service
    from unistack.engine.states import ServiceRow

DRIFT_COMPONENT = "configuration"


def checks(ctx: Context) -> list[Check]:
    names = [name for name in ctx.project.services if ctx.wanted(name)]
    found = [
        *(Check(f"{name} ready", name, constant(ready(ctx, name))) for name in names),
        *(Check(f"{name} not flapping", name, constant(flapping(ctx, name))) for name in names if ctx.row(name)),
        Check("configuration unchanged", DRIFT_COMPONENT, constant(drift(ctx))),
    ]
    return found


def ready(ctx: Context, name: str) -> Outcome:
    row = ctx.row(name)
    service = ctx.project.services[name]
    if row is None:
        return failed(
            f"{name} is not part of the running instance",
            "started from an older configuration: run `unistack up`",
        )
    check = last_check(row)
    logs = f"see `unistack logs {name}`"
    if row.state == "exited":
        if row.exit_code == 0:
            return passed(f"exited 0 (one-shot){check}")
        return failed(f"{exits.ended(row.exit_code)}{_reason(row)}{check}", logs)
    if row.state == "healthy":
        return passed(f"healthy{check}")
    if row.state == "running" and service.healthcheck is None:
        return passed("running (no healthcheck)")
    if row.state in ("stopped", "created"):
        return failed(f"{row.state}{_reason(row)}", f"start it with `unistack start {name}`")
    return failed(f"{row.state}{_reason(row)}{check}", logs)


def last_check(row: ServiceRow) -> str:
    check = row.last_check
    if check is None:
        return ""
    output = " ".join(check.output.split())[-200:]
    verdict = "ok" if check.ok else f"failed (exit {check.exit_code})"
    return f"; last check {check.at} {verdict}" + (f": {output}" if output else "")


def _reason(row: ServiceRow) -> str:
    return f" ({row.reason})" if row.reason else ""


def flapping(ctx: Context, name: str) -> Outcome:
    """Flapping: restarted by the supervisor (after a crash or a failed healthcheck) within the window. Planned
    restarts (``restart``, the dashboard's button, an update, an install) never count."""
    row = ctx.row(name)
    assert row is not None

    def within(at: str) -> bool:
        return bool(at) and ctx.now - _epoch(at) <= ctx.flapping_window

    recent = [at for at in row.unplanned_restarts() if within(at)]
    if not recent:
        planned = [r.cause for r in row.restarts_recent if r.planned and within(r.at)]
        also = f"; {len(planned)} planned ({', '.join(dict.fromkeys(planned))})" if planned else ""
        return passed(f"{row.restarts} restarts, none unplanned in the last {ctx.flapping_window:g}s{also}")
    return failed(
        f"restarted {len(recent)} time(s) in the last {ctx.flapping_window:g}s (last at {recent[-1]}), now {row.state}",
        f"see why in `unistack logs {name}`",
    )


def _epoch(iso: str) -> float:
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def drift(ctx: Context) -> Outcome:
    if ctx.changed is not None:  # a deployment: its target compared what runs with the files
        if not ctx.changed:
            return passed("the deployment runs what the files give")
        return failed(
            "deployed from another configuration: " + "; ".join(ctx.changed),
            "run `unistack deploy` to apply the files (or validate with the options it was deployed with)",
        )
    running = ctx.running
    if ctx.files_problem is not None:
        return skipped(f"{ctx.files_problem}: nothing to compare the running configuration with")
    if running is None:
        return skipped("the instance saved no configuration (project.json) to compare with")
    changes = differences(running, ctx.project, [n for n in {**running.services, **ctx.project.services}])
    changes = [c for c in changes if ctx.wanted(c.split(" ", 1)[0])]
    if running.environment != ctx.project.environment:
        changes.insert(0, f"environment {running.environment} -> {ctx.project.environment}")
    if not changes:
        return passed(f"the instance runs what the files give ({running.environment})")
    return failed(
        "started from an older configuration: " + "; ".join(changes),
        "run `unistack up` to apply the files (or validate with the options the instance was started with)",
    )


def differences(old: Project, new: Project, names: list[str]) -> list[str]:
    """Per service: added, removed, or the settings that differ (names only: values may be secrets)."""
    from unistack.config.model import to_data

    found = []
    for name in names:
        before, after = old.services.get(name), new.services.get(name)
        if before is None:
            found.append(f"{name} added")
        elif after is None:
            found.append(f"{name} removed")
        elif before != after:
            keys = _changed_keys(to_data(before), to_data(after))
            found.append(f"{name} ({', '.join(keys[:6])}{', ...' if len(keys) > 6 else ''})")
    return found


def _changed_keys(before: dict[str, Any], after: dict[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for key in sorted({*before, *after}):
        a, b = before.get(key), after.get(key)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict) and key in ("environment", "process", "spec"):
            keys += _changed_keys(a, b, f"{prefix}{key}.")
        else:
            keys.append(prefix + key)
    return list(dict.fromkeys(k.replace("spec.environment", "environment") for k in keys))


def service_environment(project: Project, service: Service, runtime_name: RuntimeName) -> dict[str, str]:
    """The environment the service runs with in this runtime (a host process: x-unistack.process's over it)."""
    if runtime_name == PROCESS and service.process is not None:
        return dict(service.process.environment)
    return dict(service.environment)
