"""The environment verbs: ``env list``, ``env diff A B``, ``env check [NAME | --all]``, ``env new NAME``.

The options and the output for people; what they find is in ``ops/env.py``, ``ops/env_diff.py`` and
``ops/scaffold.py``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from unistack.commands.options import Exit, Options, pass_options
from unistack.errors import UsageError
from unistack.printer import columns

if TYPE_CHECKING:
    from unistack.ops import env_diff as diffing

FORMAT = click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)


def _main(opts: Options) -> Path:
    from unistack.ops import env

    default_dir = os.environ.get("UNISTACK_DEFAULT_DIR")
    from unistack.commands.options import compose_file_above

    cwd = Path(default_dir) if not opts.files and default_dir and not compose_file_above(Path.cwd()) else None
    return env.main_file(opts.files or None, cwd)


@click.group("env")
def env_group() -> None:
    """Environments: environments/<env>.env and compose.<env>.yaml."""


@env_group.command("list")
@FORMAT
@pass_options
def env_list(opts: Options, fmt: str) -> None:
    """The environments, their project names, entry addresses, files, and whether one runs."""
    from unistack.ops import env

    main = _main(opts)
    infos = [
        env.describe(e, env.load_environment(main, e.name, files=opts.files or None, profiles=opts.profiles))
        for e in env.environments(main)
    ]
    if fmt == "json":
        click.echo(json.dumps([info.__dict__ for info in infos], indent=2))
        return
    rows = [("ENVIRONMENT", "PROJECT", "ADDRESS", "FILES", "RUNNING")]
    for info in infos:
        address = ", ".join(info.addresses) or "-"
        if info.problem:
            address = "(does not load)"
        rows.append(
            (info.name, info.project or "-", address, ", ".join(info.files) or "-", "yes" if info.running else "no")
        )
    click.echo(columns(rows))
    for info in infos:
        if info.missing:
            click.echo(
                f"{info.name}: {', '.join(info.missing)} not set (required); see `unistack env check {info.name}`"
            )
        if info.problem:
            click.echo(f"{info.name}: does not load: {info.problem}")


@env_group.command("diff")
@click.argument("left")
@click.argument("right")
@FORMAT
@pass_options
def env_diff_command(opts: Options, left: str, right: str, fmt: str) -> None:
    """Compare two environments' resolved configurations (exit 1 when they differ)."""
    from unistack.ops import env
    from unistack.ops import env_diff as diffing

    main = _main(opts)
    loaded = {}
    for name in (left, right):
        env.find_environment(main, name)
        loaded[name] = env.load_environment(main, name, files=opts.files or None, profiles=opts.profiles)
        loaded[name].checked()  # a configuration that does not load, beyond missing variables: ConfigError
    result = diffing.diff(left, loaded[left], right, loaded[right])
    if fmt == "json":
        click.echo(json.dumps(result.to_builtins(), indent=2))
    else:
        click.echo(_diff_text(result))
    if not result.equal:
        raise Exit(1)


def _side_text(name: str, width: int, side: diffing.Side) -> str:
    value = "(none)" if side.value is None else side.value
    where = f"  {side.origin}" if side.origin else ""
    via = "".join(f"\n{' ' * (width + 6)}<- {v.text}" for v in side.variables)
    return f"    {name:<{width}}  {value}{where}{via}"


def _diff_text(result: diffing.EnvDiff) -> str:
    if result.equal:
        head = f"{result.left} and {result.right} resolve to the same configuration"
    else:
        head = f"{result.left} and {result.right} differ: {len(result.differences)} keys"
        if result.only_left or result.only_right:
            head += f", {len(result.only_left) + len(result.only_right)} services in one only"
    lines = [head]
    for name, notes in result.notes.items():
        lines.extend(f"note: {name}: {note}" for note in notes)
    width = max(len(result.left), len(result.right))
    for who, only in ((result.left, result.only_left), (result.right, result.only_right)):
        for service, side in only:
            lines.append(f"only in {who}: service {service} ({side.value}, {side.origin})")
    current: str | None = ""
    for d in result.differences:
        if d.service != current:
            current = d.service
            lines.append("")
            lines.append(f"service {d.service}" if d.service else "project")
        prefix = f"services.{d.service}." if d.service else ""
        lines.append(f"  {d.key.removeprefix(prefix)}" + ("  (secret values differ)" if d.secret else ""))
        lines.append(_side_text(result.left, width, d.left))
        lines.append(_side_text(result.right, width, d.right))
    return "\n".join(lines)


@env_group.command("check")
@click.argument("name", required=False)
@click.option("--all", "every", is_flag=True, help="Check every environment.")
@FORMAT
@pass_options
def env_check(opts: Options, name: str | None, every: bool, fmt: str) -> None:
    """What an environment needs and lacks: variables not set, values of the wrong shape (exit 1 if any)."""
    from unistack.ops import env

    if name and every:
        raise UsageError("give an environment name or --all, not both")
    main = _main(opts)
    if every:
        names = [e.name for e in env.environments(main)]
    else:
        chosen = name or opts.env_name or os.environ.get("UNISTACK_ENV") or "local"
        names = [env.find_environment(main, chosen).name]
    report: dict[str, list[env.Finding]] = {}
    for each in names:
        report[each] = env.check(env.load_environment(main, each, files=opts.files or None, profiles=opts.profiles))
    failed = any(f.severity == "error" for findings in report.values() for f in findings)
    if fmt == "json":
        click.echo(json.dumps({n: [f.__dict__ for f in fs] for n, fs in report.items()}, indent=2))
    else:
        for each, findings in report.items():
            errors = sum(f.severity == "error" for f in findings)
            verdict = "ok" if not findings else f"{errors} problem{'s' if errors != 1 else ''}"
            warnings = len(findings) - errors
            if warnings:
                verdict += f", {warnings} warning{'s' if warnings != 1 else ''}"
            click.echo(f"{each}: {verdict}")
            for finding in findings:
                click.echo(f"  {'error' if finding.severity == 'error' else 'warning'}: {finding.text}")
    if failed:
        raise Exit(1)


@env_group.command("new")
@click.argument("name")
@click.option("--from", "base", default="local", show_default=True, metavar="BASE", help="The environment to copy.")
@pass_options
def env_new(opts: Options, name: str, base: str) -> None:
    """Make environments/NAME.env and compose.NAME.yaml from BASE's, with a project name and port of their own."""
    from unistack.ops import env, scaffold

    main = _main(opts)
    plan = scaffold.plan(main, name, env.find_environment(main, base))
    scaffold.write(plan)
    base_dir = main.parent
    for path in plan.files:
        click.echo(f"created {path.relative_to(base_dir)}")
    click.echo(f"project {plan.project_name}" + (f", {plan.port_variable}={plan.port}" if plan.port_variable else ""))
    for note in plan.notes:
        click.echo(f"note: {note}")
    command = f"unistack --env {name} up --wait"
    if plan.required:
        command = " ".join(f"{v}=..." for v in plan.required) + " " + command
    click.echo(f"next: {command}")
