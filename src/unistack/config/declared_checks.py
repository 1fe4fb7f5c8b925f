"""Building top-level ``x-unistack.validate``: the checks a project declares for ``unistack validate``.

Owns the file form of a declared check and its refusals: one kind per entry (``http``, ``websocket``, ``command``,
``assets``, ``browser``), unknown keys refused with the known ones listed, values of the wrong type reported at
their file and line. Never runs a check (``ops/`` does) and never reads files.

The file form::

    x-unistack:
      validate:
        - {name: api, component: backend, http: {path: /api/health, expect_status: 200}}
        - name: note round trip          # a sequence of requests; {id} is what an earlier step saved
          component: backend
          write: true                    # skipped in production unless `validate --write`
          http:
            - {method: POST, path: /api/notes, json: {title: t}, expect_status: 201, save: {id: id}}
            - {method: DELETE, path: "/api/notes/{id}", expect_status: 204, always: true}
        - {name: live feed, component: backend, websocket: {path: /api/ws}}
        - {name: assets, component: frontend, assets: {path: /, max_age: 31536000}}
        - {name: page, component: frontend, browser: {path: /, selector: "#count", text: "^\\\\d+$"}}
        - {name: db answers, component: db, service: db, command: [pg_isready]}
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from unistack.config.model import CheckKind, DeclaredCheck, HttpStep
from unistack.config.yamlfile import KeyPath

Report = Callable[[KeyPath, str, str | None], None]

KINDS: tuple[CheckKind, ...] = ("http", "websocket", "command", "assets", "browser")
ENTRY_KEYS = frozenset({"name", "component", "service", "write", "timeout", *KINDS})
STEP_KEYS = frozenset(
    {
        "path",
        "method",
        "headers",
        "origin",
        "json",
        "expect_status",
        "expect_header",
        "expect_no_header",
        "expect_json",
        "expect_env",
        "save",
        "always",
    }
)
PAGE_KEYS = {
    "websocket": frozenset({"path"}),
    "assets": frozenset({"path", "max_age", "encoding"}),
    "browser": frozenset({"path", "selector", "text"}),
}
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def known(keys: frozenset[str]) -> str:
    return ", ".join(sorted(keys))


class DeclaredChecks:
    """Reads the entries of ``x-unistack.validate``, reporting each problem through ``report``."""

    def __init__(self, report: Report, duration: Callable[[KeyPath, Any, float], float]) -> None:
        self.report = report
        self.duration = duration
        self.count = 0  # problems reported so far

    def problem(self, key: KeyPath, message: str, fix: str | None) -> None:
        self.count += 1
        self.report(key, message, fix)

    def build(self, doc: dict[str, Any]) -> tuple[DeclaredCheck, ...]:
        extension = doc.get("x-unistack")
        if not isinstance(extension, dict) or extension.get("validate") is None:
            return ()
        key: KeyPath = ("x-unistack", "validate")
        entries = extension["validate"]
        if not isinstance(entries, list):
            self.problem(key, "x-unistack.validate must be a list of checks.", "write - {name: ..., http: {...}}.")
            return ()
        checks = [check for i, entry in enumerate(entries) if (check := self.entry((*key, i), entry))]
        seen: set[str] = set()
        for index, check in enumerate(checks):
            if check.name in seen:
                self.problem((*key, index, "name"), f"two checks are named {check.name!r}.", "give each its own name.")
            seen.add(check.name)
        return tuple(checks)

    def entry(self, where: KeyPath, entry: Any) -> DeclaredCheck | None:
        if not isinstance(entry, dict):
            self.problem(where, "a check must be a mapping.", "write {name: ..., component: ..., http: {...}}.")
            return None
        problems_before = self.count
        for name in sorted(set(entry) - ENTRY_KEYS):
            self.problem((*where, name), f"unknown check key {name!r}.", f"use {known(ENTRY_KEYS)}.")
        kinds = [k for k in KINDS if k in entry]
        if len(kinds) != 1:
            found = ", ".join(kinds) or "none"
            self.problem(where, f"a check needs exactly one of {', '.join(KINDS)} (found: {found}).", None)
            return None
        kind = kinds[0]
        name = self.text((*where, "name"), entry.get("name"), required=True)
        component = self.text((*where, "component"), entry.get("component"), required=True)
        service = self.text((*where, "service"), entry.get("service"))
        write = self.flag((*where, "write"), entry.get("write"))
        timeout = None
        if entry.get("timeout") is not None:
            timeout = self.duration((*where, "timeout"), entry["timeout"], 5.0)
        fields: dict[str, Any] = {}
        body = entry[kind]
        if kind == "http":
            steps = body if isinstance(body, list) else [body]
            fields["http"] = tuple(
                step
                for i, s in enumerate(steps)
                if (step := self.step((*where, "http", i) if isinstance(body, list) else (*where, "http"), s))
            )
            if not steps:
                self.problem((*where, "http"), "an http check needs at least one request.", None)
        elif kind == "command":
            command = _command(body)
            if command is None:
                self.problem((*where, "command"), "a check's command must be a list or a string.", None)
            fields["command"] = command or ()
            if service is None:
                self.problem((*where, "service"), "a command check needs service: (where the command runs).", None)
        else:
            fields.update(self.page((*where, kind), kind, body))
        if name is None or component is None or self.count > problems_before:
            return None
        return DeclaredCheck(
            name=name, component=component, kind=kind, service=service, write=write, timeout=timeout, **fields
        )

    def step(self, where: KeyPath, step: Any) -> HttpStep | None:
        if not isinstance(step, dict):
            self.problem(where, "a request must be a mapping.", "write {path: /api/health, expect_status: 200}.")
            return None
        for name in sorted(set(step) - STEP_KEYS):
            self.problem((*where, name), f"unknown request key {name!r}.", f"use {known(STEP_KEYS)}.")
        method = str(step.get("method", "GET")).upper()
        if method not in METHODS:
            self.problem((*where, "method"), f"method {method!r} is not one of {known(METHODS)}.", None)
        statuses = step.get("expect_status")
        status_list = statuses if isinstance(statuses, list) else [] if statuses is None else [statuses]
        expect_status = []
        for value in status_list:
            number = int(value) if isinstance(value, str) and value.isdigit() else value
            if isinstance(number, bool) or not isinstance(number, int) or not 100 <= number <= 599:
                self.problem((*where, "expect_status"), f"{value!r} is not an HTTP status (100-599).", None)
            else:
                expect_status.append(number)
        headers = self.strings((*where, "expect_header"), step.get("expect_header"))
        for header, pattern in headers.items():
            if len(pattern) > 1 and pattern.startswith("/") and pattern.endswith("/"):
                try:
                    re.compile(pattern[1:-1])
                except re.error as exc:
                    self.problem((*where, "expect_header", header), f"bad regex {pattern!r}: {exc}.", None)
        no_header = step.get("expect_no_header") or []
        if not isinstance(no_header, list) or not all(isinstance(h, str) for h in no_header):
            self.problem((*where, "expect_no_header"), "expect_no_header must be a list of header names.", None)
            no_header = []
        expect_json = step.get("expect_json") or {}
        if not isinstance(expect_json, dict):
            self.problem((*where, "expect_json"), "expect_json must map dotted.paths to values.", None)
            expect_json = {}
        return HttpStep(
            path=self.path((*where, "path"), step.get("path", "/")),
            method=method,
            headers=self.strings((*where, "headers"), step.get("headers")),
            origin=self.text((*where, "origin"), step.get("origin")),
            body=step.get("json"),
            expect_status=tuple(expect_status),
            expect_header=headers,
            expect_no_header=tuple(str(h) for h in no_header),
            expect_json={str(k): v for k, v in expect_json.items()},
            expect_env=self.strings((*where, "expect_env"), step.get("expect_env")),
            save=self.strings((*where, "save"), step.get("save")),
            always=self.flag((*where, "always"), step.get("always")),
        )

    def page(self, where: KeyPath, kind: str, body: Any) -> dict[str, Any]:
        allowed = PAGE_KEYS[kind]
        if body is True or body is None:
            body = {}
        if not isinstance(body, dict):
            self.problem(where, f"{kind} must be a mapping ({known(allowed)}).", None)
            return {}
        for name in sorted(set(body) - allowed):
            self.problem((*where, name), f"unknown {kind} key {name!r}.", f"use {known(allowed)}.")
        fields: dict[str, Any] = {"path": self.path((*where, "path"), body.get("path", "/"))}
        if kind == "assets":
            max_age = body.get("max_age", 86400)
            if isinstance(max_age, bool) or not isinstance(max_age, int) or max_age < 0:
                self.problem((*where, "max_age"), f"{max_age!r} is not a number of seconds >= 0.", None)
            else:
                fields["max_age"] = max_age
            encoding = body.get("encoding", "gzip")
            fields["encoding"] = str(encoding) if encoding not in (None, False, "") else None
        if kind == "browser":
            fields["selector"] = self.text((*where, "selector"), body.get("selector"))
            fields["text"] = self.text((*where, "text"), body.get("text"))
            if fields["text"] is not None:
                try:
                    re.compile(fields["text"])
                except re.error as exc:
                    self.problem((*where, "text"), f"bad regex {fields['text']!r}: {exc}.", None)
        return fields

    # ----------------------------------------------------------------- values

    def text(self, where: KeyPath, value: Any, required: bool = False) -> str | None:
        if value is None:
            if required:
                self.problem(where, f"{where[-1]} is required.", None)
            return None
        if isinstance(value, dict | list) or str(value).strip() == "":
            self.problem(where, f"{where[-1]} must be a non-empty string.", None)
            return None
        return str(value)

    def path(self, where: KeyPath, value: Any) -> str:
        text = self.text(where, value) or "/"
        if not text.startswith("/"):
            self.problem(where, f"path {text!r} must start with /.", f"write /{text}.")
        return text

    def flag(self, where: KeyPath, value: Any) -> bool:
        if value is None:
            return False
        if not isinstance(value, bool):
            self.problem(where, f"{where[-1]} must be true or false, not {value!r}.", None)
            return False
        return value

    def strings(self, where: KeyPath, value: Any) -> dict[str, str]:
        if value is None:
            return {}
        if not isinstance(value, dict) or any(isinstance(v, dict | list) for v in value.values()):
            self.problem(where, f"{where[-1]} must map names to strings.", None)
            return {}
        return {str(k): _scalar(v) for k, v in value.items()}


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _command(value: Any) -> tuple[str, ...] | None:
    if isinstance(value, str) and value.strip():
        return ("/bin/sh", "-c", value)
    if isinstance(value, list) and value and all(isinstance(v, str | int | float) for v in value):
        return tuple(str(v) for v in value)
    return None
