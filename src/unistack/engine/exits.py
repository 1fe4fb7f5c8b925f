"""How an incarnation ended, in words, for events, reasons, notifications and ``validate``.

Owns the wording of an end from what the runtime reports: an exit code, shell-style (128 + N when signal N ended
it, as both runtimes and Docker report it: a SIGKILLed host process or container has 137), or None when the
exit code cannot be known, with the runtime's reason (``Runtime.unknown_exit``: a host process this daemon
re-adopted is not its child, and the kernel tells its exit status to its parent only; a removed container), and
what the runtime knows beyond it (``Runtime.exit_detail``: Docker's OOMKilled).
Pure: no I/O, never "None" in a sentence.
"""

from __future__ import annotations

import signal

NOT_TOLD = "the runtime could not tell it"


def signal_of(code: int | None) -> int | None:
    """The signal that ended it (shell-style code 128 + N), or None when it exited by itself or nobody knows."""
    if code is None or code <= 128:
        return None
    number = code - 128
    try:
        signal.Signals(number)
    except ValueError:
        return None  # an exit code above 128 that names no signal: the program's own
    return number


def ended(code: int | None, unknown: str = NOT_TOLD, detail: str = "") -> str:
    """``exited with code 1``, ``was killed by signal 9 (SIGKILL, exit code 137)`` or ``exited (exit code unknown:
    <unknown>)``: the words after a service's name, then ``: <detail>`` when the runtime knows more (Docker's
    OOMKilled)."""
    if code is None:
        words = f"exited (exit code unknown: {unknown})"
    elif (number := signal_of(code)) is None:
        words = f"exited with code {code}"
    else:
        words = f"was killed by signal {number} ({signal.Signals(number).name}, exit code {code})"
    return f"{words}: {detail}" if detail else words
