"""The keeper of a one-shot's exit code: the parent of a host process whose exit code its dependents wait for.

A process's exit status goes to its parent only. A daemon that re-adopts a service after the previous one was
killed (or handed over) is not its parent, so it would see the process go but never its code, and a dependent
waiting for ``service_completed_successfully`` (the stack's backend for its ``migrate``) would have to be refused.
So a service with such a dependent runs under this keeper (``python -I -S exitkeeper.py FD FOLDER NAME -- ARGV``,
started in the service's session by ``children.popen_kept``): it starts ``ARGV`` (the same environment and working
folder), tells its starter the child's pid (or why it could not start) on descriptor ``FD``, waits for it and
writes ``FOLDER/exit-NAME-PID.json`` (``{"pid": PID, "exit_code": N}``, shell-style: 128 + N for signal N)
before it exits with the same status. Whoever supervises the service, first daemon or a later one, reads the
file once the pid is gone.

The keeper shares the service's process group, so a stop signalled to the group reaches both: the keeper's
handlers do nothing (handlers, unlike ignored signals, are reset to their defaults in the child at exec, so the
service sees every signal as it would without a keeper) and it ends when the service does. A SIGKILL of the
group ends it too; then no file says anything and the exit code is unknown, as it is killed. This module
imports the standard library only (``-I -S``: ~10 ms, a few MB) and decides nothing about the service.
"""

from __future__ import annotations

import json
import os
import signal
import sys

PASSED_ON = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


def status_path(folder: str, service: str, pid: int) -> str:
    return os.path.join(folder, f"exit-{service}-{pid}.json")  # noqa: PTH118 (no pathlib: a fast start)


def exit_status(wait_status: int) -> int:
    """The shell-style exit status of a ``waitpid`` status: 128 + N when signal N ended it."""
    code = os.waitstatus_to_exitcode(wait_status)
    return 128 - code if code < 0 else code


def _nothing(signum: int, frame: object) -> None:
    """The group's signal was for the service: it acts on it; the keeper waits for it to end."""


def main(argv: list[str]) -> int:
    if len(argv) < 5 or argv[3] != "--" or not argv[0].isdigit():
        sys.stderr.write("usage: exitkeeper.py FD FOLDER SERVICE -- COMMAND...\n")
        return 2
    report, folder, service, command = int(argv[0]), argv[1], argv[2], argv[4:]
    os.set_inheritable(report, False)  # the starter's line ("pid N" or "error ERRNO TEXT"): never the service's
    for signum in PASSED_ON:
        signal.signal(signum, _nothing)
    try:
        pid = os.posix_spawnp(command[0], command, os.environ, setsigdef=PASSED_ON)
    except OSError as exc:
        os.write(report, f"error {exc.errno} {exc.strerror}\n".encode())
        return 127
    os.write(report, f"pid {pid}\n".encode())
    os.close(report)
    while True:
        try:
            _, wait_status = os.waitpid(pid, 0)  # retried after a signal's handler ran (PEP 475)
            break
        except ChildProcessError:
            return 0  # cannot happen: it is this process's only child
    code = exit_status(wait_status)
    path = status_path(folder, service, pid)
    partial = path + ".partial"
    try:
        with open(partial, "w") as out:
            json.dump({"pid": pid, "exit_code": code}, out)
        os.replace(partial, path)  # noqa: PTH105
    except OSError:
        pass  # the starter, if it still runs, has the code from this process's own exit status
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
