"""Compose's ``develop.watch`` for an instance that runs on Docker: turn file changes into actions on containers.

Modules, one job each: ``rules`` (the watch rules of the selected services and their ``.dockerignore``-style
``Patterns``), ``planning`` (pure: the plan for one batch of changes, debouncing, what to watch, what to copy)
and ``loop`` (the ``watch`` command: the file watcher, and carrying the plans out on containers and through the
daemon). This package only re-exports their public names.
"""

from unistack.watch.loop import PROCESS_MODE, RESTART_WAIT, run
from unistack.watch.planning import (
    LONGEST,
    QUIET,
    Debouncer,
    FileSync,
    Plan,
    Roots,
    initial_plan,
    plan,
    tar_entries,
    watch_roots,
)
from unistack.watch.rules import (
    ACTIONS,
    EDITOR_FILES,
    EDITOR_PATTERNS,
    RULE_KEYS,
    SYNCING,
    Action,
    Patterns,
    WatchRule,
    load_rules,
)

__all__ = [
    "ACTIONS",
    "EDITOR_FILES",
    "EDITOR_PATTERNS",
    "LONGEST",
    "PROCESS_MODE",
    "QUIET",
    "RESTART_WAIT",
    "RULE_KEYS",
    "SYNCING",
    "Action",
    "Debouncer",
    "FileSync",
    "Patterns",
    "Plan",
    "Roots",
    "WatchRule",
    "initial_plan",
    "load_rules",
    "plan",
    "run",
    "tar_entries",
    "watch_roots",
]
