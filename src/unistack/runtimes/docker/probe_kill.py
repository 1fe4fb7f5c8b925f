"""Ending a healthcheck that runs inside a container (``docker exec``) without orphaning any of its processes.

A check's main process may have children (``python3 check.py`` runs ``pg_isready``). Killing only the main process
orphans them: the kernel hands them to the container's PID 1, which is the service itself when the image has no
init. A server that reaps a child it never started may take it for one of its own: PostgreSQL as PID 1 reaps an
orphaned ``pg_isready`` that then died of SIGPIPE (its reader was gone) as "server process was terminated by
signal 13", kills every backend and, during a fast shutdown, gives up the shutdown checkpoint ("abnormal database
system shutdown": the next start runs crash recovery). So the tree is ended leaves first, each level left to its
own parent to reap before the parent is killed. Blocking (psutil; call it from a thread). Only for a local engine
(host pids); never signals a process whose command line is not the check's, nor anything outside its tree.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence

import psutil

REAP_WAIT = 2.0  # seconds a parent gets to reap its killed children before it is killed too


def end_check(pid: int, argv: Sequence[str]) -> bool:
    """SIGKILL the check whose main process is host pid ``pid`` (only when its command line is ``argv``), and all
    it started, leaves first. True when that is done or there is no such process (it ended, or it is on another
    machine); False when the process is not the check, or not yet: just after ``exec start`` the engine's pid is
    ``runc init`` until it execs the check (the caller asks again)."""
    try:
        root = psutil.Process(pid)
        if root.cmdline() != list(argv):
            return False
    except psutil.Error:
        return True
    _end_tree(root)
    return True


def _end_tree(process: psutil.Process) -> None:
    try:
        children = process.children()
    except psutil.Error:
        children = []
    for child in children:
        _end_tree(child)
    if children:  # its parent reaps each (a waiting check returns once its child is gone), or it is killed anyway
        deadline = time.monotonic() + REAP_WAIT
        while any(psutil.pid_exists(c.pid) and _parent_is(c, process) for c in children):
            if time.monotonic() > deadline:
                break
            time.sleep(0.01)
    with contextlib.suppress(psutil.Error):
        process.kill()


def _parent_is(child: psutil.Process, parent: psutil.Process) -> bool:
    """True while ``child`` (alive or a zombie not yet reaped) still belongs to ``parent``."""
    try:
        return child.ppid() == parent.pid
    except psutil.Error:
        return False
