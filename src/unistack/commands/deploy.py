"""The verbs that put the project on a cluster: ``deploy`` (build, push to the registry, apply layer by layer and
wait) and ``undeploy`` (remove it, volumes only with ``-v``), plus what ``ps``/``logs``/``validate --target swarm``
show (validate: the same checks as on one host, through each node's entry point). The
target is the Swarm the Docker API points at (``DOCKER_HOST`` or the default socket).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import re
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import click

from unistack.commands.options import Options, check_services, pass_options
from unistack.errors import ConfigError, UsageError
from unistack.printer import Printer

if TYPE_CHECKING:
    from unistack.config.model import Project
    from unistack.ops.validate import CheckResult

TARGETS = ("swarm",)


@contextlib.contextmanager
def _engine_errors(doing: str) -> Iterator[None]:
    """The SDK's and the connection's errors as RuntimeFailure (what the engine said), never a traceback."""
    from unistack.runtimes.docker import engine

    try:
        yield
    except engine.Errors as exc:
        raise engine.failure(doing, exc) from exc


def _client() -> Any:
    from unistack.runtimes.docker import engine

    client = engine.client(timeout=300)
    from unistack.targets.swarm.driver import manager_problem

    if problem := manager_problem(client):
        raise UsageError(f"{problem} (the engine at {engine.engine_address(os.environ)})")
    return client


@click.command()
@click.option("--target", type=click.Choice(TARGETS), default="swarm", show_default=True, help="Where to deploy.")
@click.option("--registry", metavar="HOST:PORT", help="Registry the nodes pull the images from (needed with 2+ nodes).")
@click.option(
    "--endpoint-mode",
    type=click.Choice(["auto", "vip", "dnsrr"]),
    default="auto",
    show_default=True,
    help="auto: vip and ingress ports where this kernel has IPVS, else dnsrr and host-mode ports.",
)
@click.option("--timeout", default=300.0, show_default=True, metavar="S", help="Seconds each layer may take.")
@click.option("--strict", is_flag=True, help="Refuse (exit 2) when a setting of the file cannot be carried.")
@click.argument("services", nargs=-1)
@pass_options
def deploy(
    opts: Options,
    target: str,
    registry: str | None,
    endpoint_mode: str,
    timeout: float,
    strict: bool,
    services: tuple[str, ...],
) -> None:
    """Deploy the project onto the swarm: in dependency order, each layer healthy before the next; again: a
    rolling update of what changed."""
    from unistack.targets.swarm import driver, export, images

    project = opts.project()
    selected = check_services(project, services)
    if endpoint_mode == "auto":
        modes = export.Modes.detect()
    else:
        modes = export.Modes("vip", "ingress") if endpoint_mode == "vip" else export.Modes("dnsrr", "host")
    plan = export.export(project, modes, selected or None)
    if plan.warnings and strict:
        raise UsageError(
            "--strict: the swarm would not have these settings of the file:\n"
            + "\n".join(f"  {w}" for w in plan.warnings)
            + "\nremove them for the cluster (an override file with !reset), or deploy without --strict"
        )
    for warning in plan.warnings:
        click.echo(f"warning: {warning}", err=True)
    printer = Printer([])
    client = _client()
    nodes = len(client.nodes.list())
    if registry is None and nodes > 1:
        raise UsageError(
            f"the swarm has {nodes} nodes and they need the images: pass --registry HOST:PORT, a registry every node "
            "can pull from (Debian's docker-registry started on the manager does; docs/deployment.md)"
        )
    printer.say(
        f"deploying {project.name} to a swarm of {nodes} node(s): {modes.endpoint} endpoints, {modes.publish} ports"
    )
    with _engine_errors(f"deploying {project.name}"):
        refs = images.ship(client, project, plan, registry, printer.say)
        outcomes = driver.Driver(client, printer.say, timeout=timeout).deploy(plan, refs)
    changed = [o.service for o in outcomes if o.action != "unchanged"]
    printer.say(f"deployed {project.name}: {len(changed)} changed, {len(outcomes) - len(changed)} unchanged")


@click.command()
@click.option("--target", type=click.Choice(TARGETS), default="swarm", show_default=True)
@click.option("-v", "--volumes", is_flag=True, help="Remove the stack's volumes too (on the node this talks to).")
@pass_options
def undeploy(opts: Options, target: str, volumes: bool) -> None:
    """Remove the deployment from the swarm (its volumes only with -v)."""
    from unistack.targets.swarm import driver

    project = opts.project(saved_ok=True)
    printer = Printer([])
    with _engine_errors(f"removing {project.name}"):
        removed = driver.Driver(_client(), printer.say).undeploy(project.name, volumes)
    for what in removed:
        printer.say(f"removed {what}")
    if not removed:
        printer.say(f"{project.name} is not deployed on this swarm")


def swarm_ps(opts: Options, fmt: str) -> None:
    """``ps --target swarm``: every task of the deployment (per node: state, health, last error)."""
    from unistack.targets.swarm import status

    project = opts.project(saved_ok=True)
    with _engine_errors(f"listing the tasks of {project.name}"):
        rows = status.tasks(_client(), project.name)
    click.echo(json.dumps([dataclasses.asdict(r) for r in rows], indent=2) if fmt == "json" else status.table(rows))


def swarm_logs(opts: Options, count: int | None, names: list[str]) -> None:
    """``logs --target swarm``: each service's last lines, from every node's tasks."""
    from unistack.targets.swarm.driver import Driver

    project = opts.project(saved_ok=True)
    printer = Printer(names)
    reader = Driver(_client(), printer.say)
    for name in names:
        with _engine_errors(f"reading the logs of {name}"):
            lines = reader.last_logs(f"{project.name}_{name}", count or 10_000)
        for line in lines:
            printer.log(name, line)


_HINTS = (  # one host's commands in the checks' hints, as they are for a deployment
    (re.compile(r"`unistack logs "), "`unistack logs --target swarm "),
    (re.compile(r"`unistack ps`"), "`unistack ps --target swarm`"),
    (re.compile(r"`unistack (?:start [^`]*|up)`"), "`unistack deploy`"),
)


def validate_deployment(
    project: Project,
    selected: Sequence[str],
    nodes: Sequence[str],
    *,
    timeout: float,
    browser: bool,
    write: bool,
    host_header: str | None,
) -> list[CheckResult]:
    """``validate --target swarm``: the built-in and declared checks on rows read from the tasks, the entry-point
    checks once per node address (``NAME @ ADDRESS``); UsageError when the project is not deployed there."""
    import msgspec

    from unistack.ops.validate import FLAPPING_WINDOW, Check, Context, failed, plan, run_checks
    from unistack.runtimes import DOCKER
    from unistack.targets.swarm.validating import Deployment

    with _engine_errors(f"reading the deployment of {project.name}"):
        deployment = Deployment(_client(), project, time.time())
        if not deployment.services:
            raise UsageError(f"{project.name} is not deployed on this swarm; deploy it with `unistack deploy`")
        known = deployment.addresses()
        if unknown := [n for n in nodes if n not in known]:
            raise UsageError(
                f"no node of this swarm has the address {', '.join(unknown)}; its nodes: {', '.join(known)}"
            )
        addresses = list(nodes) or known
        problem = changed = None
        try:
            changed = deployment.changed(selected)
        except ConfigError as exc:
            problem = f"the files do not export to Swarm ({exc})"
        rows = {address: deployment.rows(address, FLAPPING_WINDOW) for address in addresses}
    host = host_header or _site(project)
    checks: list[Check] = []
    for index, address in enumerate(addresses):
        ctx = Context(
            project=project,
            running=None,
            rows=rows[address],
            runtime_name=DOCKER,
            selected=selected,
            timeout=timeout,
            write=write,
            browser=browser,
            host_header=host,
            changed=changed,
            files_problem=problem,
        )
        found = plan(ctx, entry_only=index > 0)
        if len(addresses) > 1:
            entry = {c.name for c in plan(ctx, entry_only=True)}
            found = [dataclasses.replace(c, name=f"{c.name} @ {address}") if c.name in entry else c for c in found]
        checks += found
    if down := deployment.down():
        outcome = failed(f"not ready: {', '.join(down)}", "see `docker node ls` on a manager")

        async def nodes_down() -> Any:
            return outcome

        checks.append(Check("swarm nodes ready", "swarm", nodes_down))
    results = asyncio.run(run_checks(checks, timeout))
    return [msgspec.structs.replace(r, hint=_swarm_hint(r.hint)) for r in results]


def _swarm_hint(hint: str) -> str:
    for pattern, replacement in _HINTS:
        hint = pattern.sub(replacement, hint)
    return hint


def _site(project: Project) -> str | None:
    """The Host of the one port published on a specific address (the stack's ``127.0.0.1:8082``): the site the
    entry answers there, which every node's port then serves (Swarm publishes on all of a node's addresses)."""
    sites = {
        f"{port['host_ip']}:{port.get('published') or port['target']}"
        for service in project.services.values()
        for port in service.spec.get("ports") or ()
        if str(port.get("host_ip") or "") not in ("", "0.0.0.0", "::") and port.get("protocol", "tcp") == "tcp"
    }
    return sites.pop() if len(sites) == 1 else None
