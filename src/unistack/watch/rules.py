"""The rules of Compose's ``develop.watch``: which host paths concern which service, and what to do about them.

Owns reading the watch rules of the selected services (``path`` resolved against the project folder, the
``.dockerignore`` of the build context, the rule's ``ignore``/``include`` patterns, editors' temporary files and
``.git`` left out, sync rules under a bind mount skipped as Compose skips them), the ``.dockerignore``-style
``Patterns`` they match with, and the closed list of actions. Every malformed rule is reported at once.

Never plans a batch of changes (``planning`` does), never watches the disk and never touches a container or the
daemon (``loop`` does).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal, cast

from docker.utils.build import Pattern

from unistack import graph
from unistack.config.model import Project
from unistack.errors import ConfigError, Problem, UsageError

Action = Literal["sync", "sync+restart", "restart", "rebuild"]
ACTIONS: tuple[Action, ...] = ("sync", "sync+restart", "restart", "rebuild")
SYNCING: frozenset[str] = frozenset({"sync", "sync+restart"})
RULE_KEYS = frozenset({"action", "path", "target", "ignore", "include", "initial_sync", "exec"})
EDITOR_FILES = ("*___jb_old___", "*___jb_tmp___", ".#*", "4913", "*~", ".*.swp", ".*.swx", ".*.swo", ".*.swn")


@dataclass(frozen=True)
class Patterns:
    """``.dockerignore``-style patterns rooted at a folder, matched as Compose matches them: a path is taken when
    it or one of its parent folders matches, and the last matching pattern decides (``!`` takes back)."""

    root: Path
    patterns: tuple[Pattern, ...] = ()

    @classmethod
    def parse(cls, root: Path, lines: Iterable[str]) -> Patterns:
        kept = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
        if "*" in kept:  # as Compose: a bare "*" would hide every watched path; only its exceptions count
            kept = [line for line in kept if line.startswith("!")]
        return cls(root, tuple(p for p in (Pattern(line) for line in kept) if p.dirs))

    def matches(self, path: Path) -> bool:
        try:
            parts = path.relative_to(self.root).parts
        except ValueError:
            return False
        prefixes = ["/".join(parts[:i]) for i in range(len(parts), 0, -1)]
        matched = False
        for pattern in self.patterns:
            if any(pattern.match(prefix) for prefix in prefixes):
                matched = not pattern.exclusion
        return matched


EDITOR_PATTERNS = tuple(Pattern(p) for p in EDITOR_FILES)


@dataclass(frozen=True)
class WatchRule:
    """One entry of a service's ``develop.watch``, with its paths resolved."""

    service: str
    action: Action
    path: Path  # absolute, on the host
    target: str | None = None  # absolute, in the container (sync actions)
    ignore: Patterns | None = None  # rooted at ``path``
    include: Patterns | None = None  # rooted at ``path``; None: everything
    dockerignore: Patterns | None = None  # the build context's, rooted at the context
    initial_sync: bool = False

    def takes(self, path: Path) -> bool:
        """Whether a change to ``path`` concerns this rule (under its path and not ignored)."""
        if path != self.path and self.path not in path.parents:
            return False
        rel = path.relative_to(self.path).parts
        if ".git" in rel or ".idea" in rel or (rel and any(p.match(rel[-1]) for p in EDITOR_PATTERNS)):
            return False
        if self.include is not None and not self.include.matches(path):
            return False
        return not any(p is not None and p.matches(path) for p in (self.ignore, self.dockerignore))

    def container_path(self, path: Path) -> str:
        rel = path.relative_to(self.path).as_posix()
        target = PurePosixPath(self.target or "/")
        return str(target if rel == "." else target / rel)


def load_rules(project: Project, services: Sequence[str] = ()) -> tuple[list[WatchRule], list[str]]:
    """The watch rules of ``services`` and what they depend on (every service when none is named), and warnings
    for rules that are skipped. Raises ConfigError listing every malformed rule."""
    deps = {name: list(svc.depends_on) for name, svc in project.services.items()}
    chosen = graph.closure(deps, services) if services else set(deps)
    rules: list[WatchRule] = []
    warnings: list[str] = []
    problems: list[Problem] = []
    file = project.files[0] if project.files else None
    for name, service in project.services.items():
        develop = service.spec.get("develop")
        if name not in chosen or develop is None:
            continue
        entries = develop.get("watch") if isinstance(develop, Mapping) else None
        if not isinstance(entries, list):
            problems.append(Problem("develop.watch must be a list of rules.", file, key=f"services.{name}.develop"))
            continue
        build = service.spec.get("build")
        ignored = _dockerignore(project, build) if isinstance(build, Mapping) else None
        binds = [
            _absolute(project, str(v["source"]))
            for v in service.spec.get("volumes") or []
            if isinstance(v, Mapping) and v.get("type") == "bind" and v.get("source")
        ]
        for index, raw in enumerate(entries):
            rule, messages = _rule(project, name, raw, ignored, isinstance(build, Mapping))
            key = f"services.{name}.develop.watch[{index}]"
            problems.extend(Problem(message, file, key=key) for message in messages)
            if rule is None:
                continue
            manifests = {m.path for m in service.dependencies.manifests} if service.dependencies else set()
            if rule.action == "rebuild" and rule.path in manifests:
                warnings.append(
                    f"{name}: {shown(project, rule.path)} is one of its x-unistack.dependencies manifests, which "
                    "the daemon installs into the running container (no image build); its rebuild rule is skipped"
                )
                continue
            if rule.action in SYNCING and any(rule.path == b or b in rule.path.parents for b in binds):
                warnings.append(
                    f"{name}: {shown(project, rule.path)} is bind-mounted into the container, which sees your "
                    f"changes already; its {rule.action} rule is skipped"
                )
                continue
            rules.append(rule)
    if problems:
        raise ConfigError(problems)
    return rules, warnings


def _rule(
    project: Project, service: str, raw: Any, dockerignore: Patterns | None, has_build: bool
) -> tuple[WatchRule | None, list[str]]:
    """One rule, or the sentences that say what is wrong with it."""
    if not isinstance(raw, Mapping):
        return None, ["a watch rule must be a mapping with action and path."]
    problems = [
        f"unknown key {key!r}; a watch rule has {', '.join(sorted(RULE_KEYS))}."
        for key in sorted(str(k) for k in raw)
        if key not in RULE_KEYS and not key.startswith("x-")
    ]
    action, path, target = raw.get("action"), raw.get("path"), raw.get("target")
    if action == "sync+exec":
        problems.append("action sync+exec is not supported by unistack watch; use sync+restart.")
    elif action not in ACTIONS:
        problems.append(f"action {action!r} is not one of {', '.join(ACTIONS)}.")
    elif action in SYNCING and (not isinstance(target, str) or not target.startswith("/")):
        problems.append(f"{action} needs a target: the absolute path in the container that path is copied to.")
    elif action == "rebuild" and not has_build:
        problems.append(f"service {service!r} has no build section, so rebuild cannot build its image; add one.")
    if not isinstance(path, str) or not path:
        problems.append("path is missing: the host file or folder to watch, relative to the compose file.")
    for name in ("ignore", "include"):
        value = raw.get(name)
        if value is not None and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
            problems.append(f"{name} must be a list of patterns (relative to path).")
    if problems:
        return None, problems
    where = _absolute(project, str(path))
    include = raw.get("include")
    return WatchRule(
        service=service,
        action=cast(Action, action),
        path=where,
        target=str(target) if action in SYNCING else None,
        ignore=Patterns.parse(where, raw.get("ignore") or []),
        include=None if include is None else Patterns.parse(where, include),
        dockerignore=dockerignore,
        initial_sync=bool(raw.get("initial_sync")) and action in SYNCING,
    ), []


def _absolute(project: Project, path: str) -> Path:
    return Path(os.path.normpath(project.working_dir / Path(path).expanduser()))


def shown(project: Project, path: Path) -> str:
    """A path as the user reads it: relative to the project folder when it is inside it."""
    with contextlib.suppress(ValueError):
        return "./" + path.relative_to(project.working_dir).as_posix()
    return str(path)


def _dockerignore(project: Project, build: Mapping[str, Any]) -> Patterns:
    """The context's ``<Dockerfile>.dockerignore``, else its ``.dockerignore`` (as Compose reads them)."""
    context = _absolute(project, str(build.get("context") or "."))
    dockerfile = str(build.get("dockerfile") or "Dockerfile")
    for path in (context / f"{dockerfile}.dockerignore", context / ".dockerignore"):
        text = _read_text(path)
        if text is not None:
            return Patterns.parse(context, text.splitlines())
    return Patterns(context)


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from exc
