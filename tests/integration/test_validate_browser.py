"""`validate --browser` in real headless Chromium on a small project: a page that renders what its script
fetched passes; a page that logs a console error or throws fails, quoting what the browser said."""

from __future__ import annotations

import json
import sys

import pytest

from tests.integration.conftest import Instance
from tests.loopback import free_port
from unistack.ops.browser import find_chromium

pytestmark = pytest.mark.skipif(find_chromium() is None, reason="no Chromium (Debian's chromium package)")

GOOD = """<!doctype html><html><body><p id="count">...</p>
<script>
fetch("/data.json").then(r => r.json()).then(d => { document.getElementById("count").textContent = `(${d.n})`; });
</script>
</body></html>"""
NOISY = """<!doctype html><html><body><p id="count">(3)</p>
<script>console.error("the API said 500"); throw new Error("render failed");</script></body></html>"""


def test_a_page_that_renders_passes_and_console_errors_fail(instance: Instance) -> None:
    site = instance.folder / "site"
    site.mkdir()
    (site / "index.html").write_text(GOOD)
    (site / "noisy.html").write_text(NOISY)
    (site / "data.json").write_text(json.dumps({"n": 3}))
    port = free_port()
    instance.write(
        f"""
services:
  web:
    ports: ["127.0.0.1:{port}:{port}"]
    x-unistack:
      process:
        command: ["{sys.executable}", "-m", "http.server", "{port}", "--bind", "127.0.0.1", "-d", "site"]
x-unistack:
  validate:
    - {{name: renders, component: web, browser: {{path: /, selector: "#count", text: '^\\(3\\)$'}}}}
    - {{name: noisy, component: web, browser: {{path: /noisy.html, selector: "#count", text: '^\\(3\\)$'}}}}
"""
    )
    instance.run("up", "--wait", check=True, timeout=60)
    result = instance.run("validate", "--browser", "--format", "json", timeout=120)
    verdicts = {r["name"]: r for r in json.loads(result.stdout)}
    assert result.returncode == 1
    assert verdicts["renders"]["verdict"] == "pass", verdicts["renders"]["detail"]
    noisy = verdicts["noisy"]
    assert noisy["verdict"] == "fail"
    assert "console error: the API said 500" in noisy["detail"] and "render failed" in noisy["detail"]

    without = {r["name"]: r["verdict"] for r in json.loads(instance.run("validate", "--format", "json").stdout)}
    assert without["renders"] == without["noisy"] == "skip"
