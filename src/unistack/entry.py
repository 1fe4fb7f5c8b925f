"""The ``unistack`` command's entry point (and ``python -m unistack``'s): what runs before the CLI is imported.

``up`` needs a supervisor daemon, and starting Python and importing the daemon's code takes longer than the
CLI's own start and loading of the files. So for ``up`` the daemon's interpreter is started first, before the CLI
imports anything (``control.client.prestart``), and the two start in parallel; the CLI tells it which instance
to run once it knows (or discards it). The read-only verbs' common forms are answered by ``fastpath`` from a
remembered load when it can; when it could have but missed, the CLI's load is stored once the command succeeded.
Nothing else happens here.
"""

from __future__ import annotations

import sys


def main() -> None:
    argv = sys.argv[1:]
    # a cheap look at the words: a false positive (a service named "up") only costs a process discarded at exit
    if "up" in argv:
        from unistack.control import client

        client.prestart()
    else:
        from unistack import fastpath

        try:
            output = fastpath.main(argv)
        except Exception:  # only a shortcut: whatever went wrong there, the CLI answers as it always did
            from unistack.config import loadcache

            output, loadcache.pending = None, None
        if output is not None:
            sys.stdout.write(output)
            sys.exit(0)
    from unistack.cli import main as cli_main

    try:
        cli_main()
    except SystemExit as done:
        if done.code in (0, None) and "unistack.fastpath" in sys.modules:
            import contextlib  # here, not at the top: the CLI has imported it; the fast path does not

            from unistack.config import loadcache

            if loadcache.pending is not None:
                with contextlib.suppress(Exception):  # a cache not written is only a miss next time
                    loadcache.pending.store()
        raise
