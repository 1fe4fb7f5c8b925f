"""`validate --browser` in real headless Chromium on a small project: a page that renders what its script
fetched passes; a page that logs a console error or throws fails, quoting what the browser said; a site that
answers only its own Host, on another address (a swarm node's case), loads at its name."""

from __future__ import annotations

import asyncio
import http.server
import json
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.integration.conftest import Instance
from tests.loopback import free_port
from unistack import config
from unistack.engine.states import PublishedPort, ServiceRow
from unistack.ops import browser
from unistack.ops.browser import find_chromium
from unistack.ops.validate import Context, Outcome

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


SITE_PAGE = """<!doctype html><html><body><p id="out">...</p>
<script>
Promise.all([fetch("/data.json").then(r => r.json()), fetch("/origin", {method: "POST"}).then(r => r.text())])
  .then(([d, origin]) => { document.getElementById("out").textContent = `${d.n} ${origin} ${document.cookie}`; });
</script></body></html>"""


class _OneSite(http.server.BaseHTTPRequestHandler):
    """Answers only its site's Host, as the stack's Caddy does (421 otherwise); sets a cookie with the page."""

    site = ""

    def _answer(self, body: str, kind: str = "text/plain", cookie: bool = False) -> None:
        ok = self.headers.get("host") == self.site
        data = (body if ok else f"wrong host {self.headers.get('host')}").encode()
        self.send_response(200 if ok else 421)
        self.send_header("content-type", kind if ok else "text/plain")
        if cookie and ok:
            self.send_header("set-cookie", "visited=yes; Path=/")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/data.json":
            self._answer('{"n": 3}', "application/json")
        else:
            self._answer(SITE_PAGE, "text/html", cookie=self.path == "/")

    def do_POST(self) -> None:
        self._answer(self.headers.get("origin") or "none")

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize("name", ["127.0.0.1", "site.test"])
def test_a_site_on_another_address_loads_at_its_own_name(tmp_path: Path, name: str) -> None:
    """A swarm node's case on loopback: the entry at 127.0.0.2 answers only its site's Host (the stack's is
    127.0.0.1:PORT). With the Host given, the page, its fetches, its Origin and its cookie are the site's."""
    server = http.server.ThreadingHTTPServer(("127.0.0.2", 0), _OneSite)
    port = server.server_address[1]
    _OneSite.site = f"{name}:{port}"
    (tmp_path / "compose.yaml").write_text(
        f"""
services:
  web: {{image: web, ports: ["127.0.0.2:{port}:80"]}}
x-unistack:
  validate:
    - {{name: renders, component: web, browser: {{path: /, selector: "#out", text: '^3 '}}}}
"""
    )
    project = config.load([str(tmp_path / "compose.yaml")], env={})
    row = ServiceRow(
        service="web", state="running", health="none", restarts=0, exit_code=None, started_at=None,
        last_check=None, pid=None, container=None, reason="",
        ports=[PublishedPort(host_ip="127.0.0.2", host_port=port, target=80, protocol="tcp")],
    )  # fmt: skip
    (declared,) = project.validate

    def outcome(host_header: str) -> Outcome:
        ctx = Context(
            project=project, running=None, rows=[row], runtime_name="docker", browser=True, host_header=host_header
        )
        return asyncio.run(browser.check(ctx, declared)())

    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        loaded = outcome(f"{name}:{port}")
        assert loaded.verdict == "pass", loaded.detail
        assert f"'3 http://{name}:{port} visited=yes'" in loaded.detail
        with pytest.raises(urllib.error.HTTPError) as refused:  # the address as Host, as Chromium sent it before
            urllib.request.urlopen(f"http://127.0.0.2:{port}/", timeout=10)
        refused.value.close()
        assert refused.value.code == 421
    finally:
        server.shutdown()
        server.server_close()
