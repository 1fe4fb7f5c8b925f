"""The ``validate`` verb: prove that a running instance works end to end and say which component does not.

Reads the instance (the daemon's rows, the project it runs), or with ``--target swarm`` a deployment (rows from
its tasks, targets/swarm/validating.py; the checks through the entry point again for each node's address), runs
``ops.validate``'s checks and prints them as a table, JSON or JUnit XML. Exit 0: every check passed; 1: one
failed (``Exit``); 2: bad usage, or the instance is not up (``UsageError``). ``up --wait --validate`` calls
``validate_instance`` too.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from unistack.commands.options import Exit, Options, check_services, create_runtime, pass_options
from unistack.control import client as daemon_client
from unistack.control import state
from unistack.errors import UsageError
from unistack.runtimes import PROCESS
from unistack.runtimes import runtime_name as runtime_name_of

if TYPE_CHECKING:
    from unistack.config.model import Project
    from unistack.ops.validate import CheckResult


@click.command("validate")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "junit"]), default="text", show_default=True)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=5.0,
    show_default=True,
    metavar="S",
    help="Give each check up to S seconds.",
)
@click.option("--browser", is_flag=True, help="Also load the page in headless Chromium (browser checks).")
@click.option("--write", is_flag=True, help="Run the checks that change data in production too.")
@click.option("--target", type=click.Choice(["swarm"]), help="Validate the deployment on a swarm instead.")
@click.option(
    "--node",
    "nodes",
    multiple=True,
    metavar="ADDRESS",
    help="With --target swarm: through this node's address only (repeat for more; default: every node).",
)
@click.option(
    "--host-header",
    metavar="HOST[:PORT]",
    help="With --target swarm: the Host the entry's site answers (default: the file's host_ip:port, if any).",
)
@click.argument("services", nargs=-1)
@pass_options
def validate_command(
    opts: Options,
    fmt: str,
    timeout: float,
    browser: bool,
    write: bool,
    target: str | None,
    nodes: tuple[str, ...],
    host_header: str | None,
    services: tuple[str, ...],
) -> None:
    """Check that the running instance works end to end (exit 1 names what does not)."""
    project = opts.project(saved_ok=True)  # the files may no longer load: the instance still can be checked
    selected = check_services(project, services)
    if browser and not any(c.kind == "browser" for c in project.validate):
        click.echo("note: --browser: the project declares no browser check (x-unistack.validate)", err=True)
    elif browser:
        from unistack.ops.browser import find_chromium

        if find_chromium() is None:
            click.echo("note: --browser: no Chromium found (apt-get install chromium); browser checks skip", err=True)
    if (nodes or host_header) and target is None:
        raise UsageError("--node and --host-header go with --target swarm")
    began = time.monotonic()
    if target is not None:
        from unistack.commands.deploy import validate_deployment

        results = validate_deployment(
            project, selected, list(nodes), timeout=timeout, browser=browser, write=write, host_header=host_header
        )
    else:
        results = validate_instance(
            project, selected, timeout=timeout, browser=browser, write=write, files_problem=opts.files_problem
        )
    elapsed = time.monotonic() - began
    from unistack.ops import report

    if fmt == "json":
        click.echo(report.to_json(results))
    elif fmt == "junit":
        click.echo(report.junit(results, project.name))
    else:
        click.echo(report.text(results, elapsed))
    if any(r.verdict == "fail" for r in results):
        raise Exit(1)


def validate_instance(
    project: Project,
    selected: Sequence[str],
    *,
    timeout: float = 5.0,
    browser: bool = False,
    write: bool = False,
    files_problem: str | None = None,
) -> list[CheckResult]:
    """Every check against the running instance of ``project``; UsageError when it is not up."""
    from unistack.config.model import Project as ProjectModel
    from unistack.config.model import from_data
    from unistack.ops.validate import Context, plan, run_checks

    client = daemon_client.existing(project.state_dir)
    rows = client.ps() if client is not None else []
    if not rows:
        raise UsageError(f"{project.name} is not up; start it with `unistack up --wait`")
    saved = state.read_state(project.state_dir) or {}
    running = None
    if (data := state.read_project(project.state_dir)) is not None:
        try:
            running = from_data(data, ProjectModel)
        except ValueError:  # saved by another unistack version: no drift check
            running = None
    runtime_name = runtime_name_of(str(saved.get("runtime") or PROCESS))
    ctx = Context(
        project=project,
        running=running,
        rows=rows,
        runtime_name=runtime_name,
        selected=selected,
        timeout=timeout,
        write=write,
        browser=browser,
        runtime=functools.cache(lambda: create_runtime(runtime_name)),
        files_problem=files_problem,
    )
    return asyncio.run(run_checks(plan(ctx), timeout))


def check_up_and_validate(opts: Options, project: Project, selected: list[str]) -> None:
    """``up --wait --validate``: the table, and exit 1 when a check failed."""
    from unistack.ops import report

    results = validate_instance(project, selected)
    click.echo(report.text(results))
    if any(r.verdict == "fail" for r in results):
        raise Exit(1)
