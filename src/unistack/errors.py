"""Every failure unistack reports to a user is one of these.

The tree::

    UnistackError                 base; ``exit_code`` says how the CLI exits
    ├── UsageError                bad command line (exit 2)
    ├── ConfigError               bad configuration (exit 2); carries a list of Problems
    │   └── (Problem: file, line, key path, message, fix)
    ├── PortInUse                 a pinned host port is held by someone else; nothing started (exit 2)
    ├── ArchiveRefused            a backup archive that restore will not use (damaged, another project's,
    │                             a newer database); nothing changed (exit 2)
    ├── StateError                the instance's state folder or lock cannot be used (exit 1)
    ├── RuntimeFailure            a runtime could not do what was asked (exit 1)
    │   ├── PermanentFailure      ... and retrying cannot help (a port in use, a command not found): fatal at once
    │   └── NotSupported          the chosen runtime cannot give this feature (exit 2)
    ├── ServiceFailure            a service failed, went fatal or never became ready (exit 1)
    └── DaemonError               the supervisor daemon could not be reached or started (exit 1)
        └── DaemonNotAnswering    it holds the instance but does not answer (stopped, hung)

Third-party exceptions (OSError, docker errors, YAML errors) are translated into this tree at the edge
where they happen. Only ``cli.py`` prints these and exits.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class UnistackError(Exception):
    """Base of every error a user sees."""

    exit_code = 1


class UsageError(UnistackError):
    """The command line asks for something that cannot be done."""

    exit_code = 2


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the configuration, located as precisely as we can."""

    message: str
    file: Path | None = None
    line: int | None = None
    key: str | None = None
    fix: str | None = None
    variable: str | None = None  # a variable that is not set: ``message`` names every use, so no place is shown

    def __str__(self) -> str:
        if self.variable is not None:  # one line per missing variable: "X is not set (required by ...): set X in ..."
            return f"{self.message}: {self.fix}" if self.fix else self.message
        where = ""
        if self.file is not None:
            where = str(self.file)
            if self.line is not None:
                where += f":{self.line}"
        if self.key:
            where = f"{where} ({self.key})" if where else self.key
        text = f"{where}: {self.message}" if where else self.message
        if self.fix:
            text += f" Fix: {self.fix}"
        return text


class ConfigError(UnistackError):
    """The configuration is invalid; every problem found is listed at once."""

    exit_code = 2

    def __init__(self, problems: list[Problem] | Problem | str) -> None:
        if isinstance(problems, str):
            problems = [Problem(problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems: list[Problem] = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class PortInUse(UnistackError):
    """Host ports the user pinned (or the file wrote as numbers) are taken: one line per port, naming the holder and
    the fix. Found before anything starts."""

    exit_code = 2

    def __init__(self, lines: list[str]) -> None:
        self.lines = list(lines)
        super().__init__("\n".join(self.lines))


class ArchiveRefused(UnistackError):
    """A backup archive is refused before anything is touched: incomplete or damaged (a checksum), another
    project's, or a database dump from a newer server than the one it would go into (``--force`` for the last
    two)."""

    exit_code = 2


class StateError(UnistackError):
    """The instance's state folder, state file or lock cannot be used."""


class RuntimeFailure(UnistackError):
    """A runtime (host processes, Docker) failed to carry out an action."""


class PermanentFailure(RuntimeFailure):
    """A start that cannot succeed by retrying: a published port in use, a container name owned by another
    instance, an image that is missing and cannot be built or pulled, a command or working_dir not found. The
    engine makes the service fatal at once instead of spending its restart budget on it."""


class NotSupported(RuntimeFailure):
    """The chosen runtime cannot give this feature."""

    exit_code = 2


class ServiceFailure(UnistackError):
    """A service failed, went fatal, or did not become ready in time."""


class DaemonError(UnistackError):
    """The per-instance supervisor daemon could not be reached or started."""


class DaemonNotAnswering(DaemonError):
    """The daemon holds the instance but does not answer (stopped with SIGSTOP, or hung)."""
