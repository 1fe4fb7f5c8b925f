"""The ``unistack`` command's entry point (and ``python -m unistack``'s): what runs before the CLI is imported.

``up`` needs a supervisor daemon, and starting Python and importing the daemon's code takes longer than the
CLI's own start and loading of the files. So for ``up`` the daemon's interpreter is started first, before the CLI
imports anything (``control.client.prestart``), and the two start in parallel; the CLI tells it which instance
to run once it knows (or discards it). Nothing else happens here.
"""

from __future__ import annotations

import sys


def main() -> None:
    # a cheap look at the words: a false positive (a service named "up") only costs a process discarded at exit
    if "up" in sys.argv[1:]:
        from unistack.control import client

        client.prestart()
    from unistack.cli import main as cli_main

    cli_main()
