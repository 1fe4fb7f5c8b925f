"""The data verbs: ``backup [SERVICE...] [--output PATH] [--keep N]``, ``backup list``, ``restore ARCHIVE [--yes]
[--force]`` and ``reset [--yes] [--logs]``. Each loads the project, asks (a terminal) or needs ``--yes``, takes
the instance lock, and drives ``ops/backup.py``, ``ops/restore.py`` and ``ops/reset.py`` with the instance's
daemon stopping and starting services. Shows progress on a terminal only. Never prints an error (``cli.py``).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from unistack.commands.options import Exit, Options, check_services, pass_options, waiting_for_lock
from unistack.control import client as daemon_client
from unistack.control import state
from unistack.errors import UnistackError, UsageError
from unistack.printer import Printer, columns

if TYPE_CHECKING:
    from unistack.config.model import Project
    from unistack.engine.states import ServiceRow
    from unistack.runtimes.datastreams import DataStreams


def human_size(size: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


class _Bar:
    """What a progress bar shows: the part being moved and its bytes so far."""

    def __init__(self, label: str) -> None:
        self.what, self.done, self.shown = label, 0, 0.0

    def show(self, item: Any) -> str:
        return f"{self.what}: {human_size(self.done)}"


@contextmanager
def progress_bar(total: int, label: str, parts: bool = False) -> Iterator[Callable[[str, int], None]]:
    """On a terminal (stderr), a bar of ``total`` bytes, or with ``parts`` of ``total`` parts (the bytes of the
    one being moved shown beside it: a backup cannot know its size ahead); elsewhere nothing. The callback takes
    (what, bytes of it so far)."""
    if not sys.stderr.isatty():
        yield lambda what, done: None
        return
    current = _Bar(label)
    with click.progressbar(
        length=max(total, 1), label=label, file=sys.stderr, item_show_func=current.show, show_eta=not parts, width=24
    ) as bar:

        def report(what: str, done: int) -> None:
            if parts:
                if what != current.what and current.done:
                    bar.update(1)  # the one before is in
                current.what, current.done = what, done
                now = time.monotonic()
                if now - current.shown > 0.1:
                    bar.render_progress()
                    current.shown = now
                return
            grew = done - current.done if what == current.what else done
            current.what, current.done = what, done
            bar.update(max(0, grew))

        yield report
        if parts:
            bar.update(1)


def _say(printer: Printer, text: str) -> None:
    """A line while a progress bar may be drawn on the terminal: the bar's line cleared first (it is drawn again
    at its next update)."""
    if sys.stderr.isatty():
        sys.stderr.write("\r\033[K")
        sys.stderr.flush()
    printer.say(text)


def _live(opts: Options, project: Project) -> tuple[daemon_client.DaemonClient, list[ServiceRow]]:
    client = daemon_client.existing(project.state_dir)
    if client is None:
        raise UsageError(f"{project.name} is not up; run `unistack up` first (its data is read where it runs)")
    return client, client.ps()


def _streams(opts: Options, project: Project, rows: list[ServiceRow], needed: set[str]) -> DataStreams:
    from unistack.runtimes.datastreams import open_streams

    live = {r.service: str(r.container or r.pid) for r in rows if r.live and (r.container or r.pid)}
    if missing := sorted(needed - set(live)):
        raise UsageError(
            f"service {missing[0]!r} is not running, and its data is read (and restored) where it runs; "
            f"`unistack start {missing[0]}` first"
        )
    return open_streams(opts.runtime_name(), project, live)


# ----------------------------------------------------------------------------------------------- backup


@click.command("backup")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Archive file or folder (default: backups/).")
@click.option("--keep", type=click.IntRange(min=1), metavar="N", help="Then keep only the newest N archives.")
@click.argument("services", nargs=-1)
@pass_options
def backup(opts: Options, output: Path | None, keep: int | None, services: tuple[str, ...]) -> None:
    """Save the declared data (x-unistack.backup) into one archive, online; `backup list` lists them."""
    import os

    from unistack.ops import backup as ops

    steps = ops.Steps() if os.environ.get(ops.DEBUG) else None
    mark = steps or (lambda what: None)
    mark("the command began (the interpreter started, the CLI imported)")
    project = opts.remembered_project()  # from the load cache when every input is as it was: backup writes no state
    mark("the project loaded")
    if services[:1] == ("list",) and "list" not in project.services:
        if len(services) > 1:
            raise UsageError("`unistack backup list` takes no service names")
        _list(project)
        return
    planned = ops.plan(project, check_services(project, services))
    printer = Printer(list(project.services))
    with state.instance_lock(project.state_dir, on_wait=lambda: waiting_for_lock(printer)):
        mark("the instance lock taken")
        _, rows = _live(opts, project)
        mark("the daemon asked which services run")
        streams = _streams(opts, project, rows, {p.service.name for p in planned if p.part.kind != "volume"})
        path = ops.output_path(project, output, time.time())
        started = time.monotonic()
        mark("the runtime's data streams ready")
        with progress_bar(len(planned), "backup", parts=True) as report:
            ops.take(project, planned, streams, opts.runtime_name(), path, report, mark)
    size = path.stat().st_size  # the archive file, as `backup list` shows it (the parts, their headers, the manifest)
    printer.say(
        f"{project.name}: backed up {', '.join(p.label for p in planned)} into {path} ({human_size(size)} in "
        f"{time.monotonic() - started:.1f} s)"
    )
    if keep is not None:
        for removed in ops.prune(path.parent, project.name, keep):
            printer.say(f"removed the older archive {removed}")
    if steps is not None:
        mark("done")
        sys.stderr.write("".join(f"{ops.DEBUG}: {line}\n" for line in steps.lines()))


def _list(project: Project) -> None:
    from unistack.ops.archive import archives_in, read_manifest
    from unistack.ops.backup import backups_dir

    folder = backups_dir(project)
    found = archives_in(folder, project.name)
    printer = Printer([])
    if not found:
        printer.say(f"no archives of {project.name} in {folder}; `unistack backup` makes one")
        return
    lines = [["ARCHIVE", "CREATED", "ENVIRONMENT", "SIZE", "PARTS"]]
    for path in reversed(found):  # newest first
        manifest = read_manifest(path)
        if manifest is None:
            lines.append([path.name, "?", "?", human_size(path.stat().st_size), "(not readable)"])
            continue
        what = ", ".join(f"{p.service} {p.volume or p.kind}" for p in manifest.parts)
        lines.append([path.name, manifest.created, manifest.environment, human_size(path.stat().st_size), what])
    printer.say(f"{folder}:\n" + columns(lines))


# ----------------------------------------------------------------------------------------------- restore


def _confirm(yes: bool, question: str, printer: Printer, lines: list[str]) -> None:
    for line in lines:
        printer.say(line)
    if yes:
        return
    if not sys.stdin.isatty():
        raise UsageError(f"{question} Not a terminal, so nothing was asked or changed: add --yes to go ahead")
    if not click.confirm(question, default=False, err=True):
        raise Exit(1)


@click.command("restore")
@click.argument("archive", type=click.Path(path_type=Path))
@click.option("-y", "--yes", is_flag=True, help="Do not ask (needed when stdin is not a terminal).")
@click.option("--force", is_flag=True, help="Restore another project's archive, or a dump from a newer server.")
@pass_options
def restore(opts: Options, archive: Path, yes: bool, force: bool) -> None:
    """Put an archive's data back: verified first, the services that use it stopped, restored, started again."""
    from unistack.errors import ArchiveRefused
    from unistack.ops import parts
    from unistack.ops import restore as ops
    from unistack.ops.archive import Archive

    project = opts.remembered_project()  # from the load cache when every input is as it was: restore writes no state
    printer = Printer(list(project.services))
    opened = Archive(archive)
    try:
        client, rows = _live(opts, project)
        live = {r.service: r.live for r in rows if r.live or (r.state == "exited" and r.exit_code == 0)}
        planned = ops.plan(project, opened.manifest, live, force)
        total = sum(step.record.size for step in planned.steps)
        with progress_bar(total, "verifying") as report:
            checked = 0

            def verified(n: int) -> None:
                nonlocal checked
                checked += n
                report("verifying", checked)

            opened.verify(verified)
        streams = _streams(opts, project, rows, {s.service.name for s in planned.steps if s.part.kind != "volume"})
        warnings = planned.warnings + ops.newer_servers(planned.steps, streams)
        if warnings and not force:
            raise ArchiveRefused(
                f"{warnings[0]}; nothing was changed. Restore into a server of that version or newer, or add --force"
            )
        manifest = opened.manifest
        lines = [f"{archive} ({manifest.project}, {manifest.environment}, {manifest.created}): verified"]
        lines += [f"  forced: {w}" for w in warnings]
        lines += [f"  replaces {step.label} ({human_size(step.record.size)})" for step in planned.steps]
        if planned.stopped:
            lines.append(f"  stops {', '.join(planned.stopped)} meanwhile, then starts them again")
        _confirm(yes, f"Replace the data of {project.name} with the archive's?", printer, lines)
        with state.instance_lock(project.state_dir, on_wait=lambda: waiting_for_lock(printer)):
            started = time.monotonic()
            parts.restore_began(project.state_dir)  # a backup meanwhile or after a kill removes its leftovers first
            clean = True
            with progress_bar(total, "restoring") as report:
                moved = 0

                def count(n: int) -> None:
                    nonlocal moved
                    moved += n
                    report("restoring", moved)

                for phase in planned.phases:
                    clean = _restore_phase(opts, project, client, phase, opened, count, printer) and clean
            if clean:
                parts.restore_ended(project.state_dir)
    finally:
        opened.close()
    printer.say(f"{project.name}: restored from {archive} in {time.monotonic() - started:.1f} s; all ready")


def _restore_phase(
    opts: Options,
    project: Project,
    client: daemon_client.DaemonClient,
    phase: Any,
    opened: Any,
    count: Callable[[int], None],
    printer: Printer,
) -> bool:
    """Stop what uses the phase's data, restore its parts, start them again and wait until they are ready; whether
    what they replaced is removed."""
    from unistack.ops import restore as ops
    from unistack.printer import wait_report

    if phase.stop:
        _say(printer, f"stopping {', '.join(phase.stop)}")
        client.call("stop", services=phase.stop, timeout=None)
    cleanups = []
    try:
        # the services as they run now (a phase before may have restarted some)
        streams = _streams(opts, project, client.ps(), {s.service.name for s in phase.steps if s.part.kind != "volume"})
        for step in phase.steps:
            if (cleanup := ops.run_step(step, opened, streams, count)) is not None:
                cleanups.append((step, cleanup))
            _say(printer, f"restored {step.label}")
    finally:  # the services come back on whatever data is there: the old one when the restore failed
        if phase.start:
            _say(printer, f"starting {', '.join(phase.start)}")
            client.call("start", services=phase.start)
    # the replaced data is removed while the services start (a database's drop waits for a checkpoint)
    problems: list[str] = []

    def clean() -> None:
        for step, cleanup in cleanups:
            try:
                cleanup()
            except UnistackError as exc:
                problems.append(
                    f"the replaced data of {step.label} is left (the next backup or restore removes it): {exc}"
                )

    cleaner = threading.Thread(target=clean, name="restore-cleanup")
    cleaner.start()
    try:
        result = client.call("wait", services=phase.start, timeout=300) if phase.start else {"ok": True}
    finally:
        cleaner.join()
    for problem in problems:
        printer.say(problem)
    if not result["ok"]:
        printer.say(wait_report(result))
        raise Exit(1)
    return not problems


# ----------------------------------------------------------------------------------------------- reset


@click.command("reset")
@click.option("-y", "--yes", is_flag=True, help="Do not ask (needed when stdin is not a terminal).")
@click.option("--logs", is_flag=True, help="Delete the logs too.")
@pass_options
def reset(opts: Options, yes: bool, logs: bool) -> None:
    """Stop the instance and delete all its data (volumes, database, uploads; logs with --logs); keep backups."""
    import asyncio

    from unistack.ops import reset as ops
    from unistack.ops.backup import backups_dir
    from unistack.runtimes import DOCKER, PROCESS, create_runtime

    project = opts.project(saved_ok=True)
    printer = Printer(list(project.services))
    docker_volumes = _docker_volumes(project)
    doomed = ops.plan(project, logs, docker_volumes)
    if not doomed:
        printer.say(f"{project.name} has no data to delete")
    lines = [f"{project.name}: reset deletes"] + [
        f"  {item.what}" + (f" ({human_size(item.size)})" if item.size is not None else "") for item in doomed
    ]
    lines.append(f"  (kept: the archives in {backups_dir(project)}" + (")" if logs else ", and the logs)"))
    _confirm(yes, f"Delete all the data of {project.name}?", printer, lines)
    with state.instance_lock(project.state_dir, on_wait=lambda: waiting_for_lock(printer)):
        client = daemon_client.existing(project.state_dir)
        if client is not None:
            printer.say(f"stopping {project.name}")
            client.call("down", volumes=True, timeout=None)
            deadline = time.monotonic() + 30
            while state.daemon_alive(project.state_dir) and time.monotonic() < deadline:
                time.sleep(0.05)
        runtimes = [PROCESS] + ([DOCKER] if docker_volumes is not None else [])
        for name in runtimes:
            asyncio.run(create_runtime(name).cleanup(project, remove_volumes=True))
        problems = ops.delete(doomed)
    if problems:
        raise UsageError("\n".join(problems))
    printer.say(f"{project.name}: reset; nothing of its data is left (`unistack up` starts afresh)")


def _docker_volumes(project: Project) -> dict[str, int | None] | None:
    """The instance's Docker volumes with their sizes, or None when no engine answers (or nothing uses one)."""
    if not any(s.spec.get("image") or s.spec.get("build") for s in project.services.values()):
        return None
    from unistack.runtimes import docker_engine_answers

    if not docker_engine_answers():
        return None
    from unistack.runtimes.docker.data import instance_volumes

    return instance_volumes(project)
