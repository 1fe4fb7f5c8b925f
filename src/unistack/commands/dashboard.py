"""The ``dashboard`` verb: serve the instance's dashboard on 127.0.0.1 (``dashboard.server``) until Ctrl+C,
print its address with the token, and open a browser when there is one. Refuses an instance that is not up.
aiohttp is imported only here, when the verb runs. Never supervises (the daemon does) and never prints errors.
"""

from __future__ import annotations

import asyncio
import os
import signal
import webbrowser
from typing import TYPE_CHECKING

import click

from unistack.commands.options import Options, pass_options
from unistack.control import state
from unistack.errors import UsageError

if TYPE_CHECKING:
    from unistack.dashboard.server import Dashboard

SHUTDOWN_WITHIN = 2.0  # seconds open streams get to end at Ctrl+C


@click.command("dashboard")
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True, help="Port (0: any free one).")
@click.option("--no-open", is_flag=True, help="Do not open a browser.")
@pass_options
def dashboard(opts: Options, port: int, no_open: bool) -> None:
    """Serve a live web dashboard of the instance on 127.0.0.1 (until Ctrl+C)."""
    project = opts.project(saved_ok=True)  # the files may no longer load: the instance still can be looked at
    saved = state.read_state(project.state_dir) or {}
    if not state.daemon_alive(project.state_dir) and not saved.get("up"):
        raise UsageError(
            f"{project.name} is not up (no supervisor daemon and no state in {project.state_dir}); "
            "run `unistack up` first, then `unistack dashboard`"
        )
    runtime = str(saved.get("runtime") or opts.runtime_name())
    from unistack.dashboard.server import Dashboard
    from unistack.dashboard.sources import InstanceSources

    args = [a for f in opts.files for a in ("-f", f)] + ["-p", project.name, "--runtime", runtime]
    args += [a for f in opts.env_files for a in ("--env-file", f)] + [
        a for p in opts.profiles for a in ("--profile", p)
    ]
    if opts.env_name:
        args += ["--env", opts.env_name]
    board = Dashboard(InstanceSources(project, runtime, args))
    asyncio.run(_serve(board, port, not no_open and _browser_here()))


async def _serve(board: Dashboard, port: int, open_browser: bool) -> None:
    from aiohttp import web

    runner = web.AppRunner(board.app(), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, shutdown_timeout=SHUTDOWN_WITHIN)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise UsageError(
            f"cannot listen on 127.0.0.1:{port} ({exc.strerror or exc}); pick another --port, or 0"
        ) from None
    board.port = runner.addresses[0][1]
    url = f"http://127.0.0.1:{board.port}/?token={board.token}"
    click.echo(f"dashboard: {url}")
    click.echo(f"{board.sources.project}: serving its dashboard until Ctrl+C (only on this machine)")
    if open_browser:
        await asyncio.to_thread(webbrowser.open, url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def _browser_here() -> bool:
    """A browser can be opened: a display (or macOS), and not CI."""
    if os.environ.get("CI"):
        return False
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or os.uname().sysname == "Darwin")
