"""`unistack dashboard --no-open --port 0` as a child process, for the integration and e2e tests: started as a
user starts it, its address and token read from what it prints, stopped with Ctrl-C (SIGKILL after 15 s). Owns
nothing else: the tests bring the instance and the files; this never looks at the instance itself."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

URL_LINE = re.compile(r"dashboard: (http://127\.0\.0\.1:\d+)/\?token=([A-Za-z0-9_-]+)")
START_TIMEOUT = 60.0  # it prints its URL once it listens (a loaded machine imports slowly)


class DashboardProcess:
    """The dashboard for the instance the global options ``cli`` name, run in ``cwd`` with ``env``; its stderr
    goes to ``stderr_path`` (for the artefacts), its stdout is read in a thread."""

    def __init__(
        self, cli: Sequence[str], cwd: Path, env: Mapping[str, str], stderr_path: Path, timeout: float = START_TIMEOUT
    ) -> None:
        self.output: list[str] = []
        self.stderr_path = stderr_path
        argv = [sys.executable, "-m", "unistack", *cli, "dashboard", "--no-open", "--port", "0"]
        with stderr_path.open("w") as stderr:
            self.process = subprocess.Popen(
                argv,
                cwd=cwd,
                env={**env, "PYTHONUNBUFFERED": "1", "DISPLAY": "", "BROWSER": ""},
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        deadline = time.monotonic() + timeout
        while (found := self._url()) is None:
            if self.process.poll() is not None or time.monotonic() >= deadline:
                ended = f"exited with {self.process.returncode}" if self.process.poll() is not None else "timed out"
                self.stop()
                raise AssertionError(f"the dashboard never printed its URL ({ended})\n{self.describe()}")
            time.sleep(0.1)
        self.origin, self.token = found
        self.url_with_token = f"{self.origin}/?token={self.token}"

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:  # ends when the process does
            self.output.append(line)

    def _url(self) -> tuple[str, str] | None:
        for line in list(self.output):
            if found := URL_LINE.search(line):
                return found.group(1), found.group(2)
        return None

    def describe(self) -> str:
        stderr = self.stderr_path.read_text(errors="replace")[-3000:] if self.stderr_path.exists() else ""
        return f"--- dashboard stdout\n{''.join(self.output)[-3000:]}--- dashboard stderr\n{stderr}"

    def client(self, *, with_token: bool = False, **kwargs: Any) -> httpx.Client:
        """An HTTP client on the dashboard; ``with_token`` puts the token in every request's query."""
        if with_token:
            kwargs["params"] = {"token": self.token}
        return httpx.Client(base_url=self.origin, timeout=30.0, trust_env=False, **kwargs)

    def stop(self) -> None:
        """Ctrl-C, as a user stops it; SIGKILL after 15 s."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(15)
        self.reader.join(5)
        if self.process.stdout is not None:
            self.process.stdout.close()
