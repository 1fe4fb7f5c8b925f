"""Integration fixtures: a project in a temp folder, driven through the real CLI, torn down after each test."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

SERVICE_PY = Path(__file__).with_name("service.py")


class Instance:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.env = {
            **os.environ,
            "NO_COLOR": "1",
            "UNISTACK_RUNTIME": "process",
            "PYTHON": sys.executable,
            "SERVICE_PY": str(SERVICE_PY),
        }
        self.env.pop("UNISTACK_ENV", None)
        self.projects: set[str | None] = set()

    def write(self, text: str, name: str = "compose.yaml") -> Path:
        path = self.folder / name
        path.write_text(text)
        return path

    def run(
        self, *args: str, timeout: float = 60, check: bool = False, project: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        self.projects.add(project)
        argv = [sys.executable, "-m", "unistack", *(["-p", project] if project else []), *args]
        result = subprocess.run(argv, cwd=self.folder, env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
        return result

    def ps(self, project: str | None = None) -> dict[str, dict[str, Any]]:
        out = self.run("ps", "--format", "json", check=True, project=project).stdout
        return {row["service"]: row for row in json.loads(out)}

    def state_dir(self, project: str | None = None) -> Path:
        return self.folder / ".unistack" / (project or self.folder.name.lower())

    def events(self, project: str | None = None) -> list[dict[str, Any]]:
        path = self.state_dir(project) / "logs" / "events.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def wait_for(self, what: Callable[[], Any], timeout: float = 30, message: str = "") -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = what()
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"timed out after {timeout}s waiting for {message or what}")

    def teardown(self) -> None:
        for project in self.projects:
            self.run("down", "-t", "1", project=project, timeout=60)
            state = self.state_dir(project) / "state.json"
            if state.exists():  # the test left something behind on purpose or by failure: kill it all
                data = json.loads(state.read_text())
                for info in data.get("services", {}).values():
                    if info.get("record"):
                        with contextlib.suppress(ProcessLookupError):
                            os.killpg(int(info["record"]["pgid"]), signal.SIGKILL)


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[Instance]:
    folder = tmp_path / "demo"
    folder.mkdir()
    inst = Instance(folder)
    try:
        yield inst
    finally:
        inst.teardown()
