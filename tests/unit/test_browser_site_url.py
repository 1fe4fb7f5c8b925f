"""Where ``validate --browser`` points Chromium: the entry's address as it is without a Host to send, else the
site's own URL with its name (an address, a name, an IPv6 literal) mapped to the entry's address and port."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from unistack.config.model import DeclaredCheck, Project
from unistack.engine.states import PublishedPort, ServiceRow
from unistack.ops import browser
from unistack.ops.browser import site_url
from unistack.ops.validate import Context, Outcome, passed


def test_without_a_host_the_address_itself() -> None:
    assert site_url("http://127.0.0.1:8080", "/", None) == ("http://127.0.0.1:8080/", ())


def test_the_sites_url_with_its_name_mapped_to_the_node() -> None:
    assert site_url("http://10.0.0.2:8082", "/notes", "127.0.0.1:8082") == (
        "http://127.0.0.1:8082/notes",
        ("--host-resolver-rules=MAP 127.0.0.1 10.0.0.2:8082",),
    )
    assert site_url("http://10.0.0.2:8082", "/", "shop.example") == (
        "http://shop.example/",  # Host without a port, as the site is named; the connection still to :8082
        ("--host-resolver-rules=MAP shop.example 10.0.0.2:8082",),
    )
    assert site_url("http://[fd00::2]:8082", "/", "[::1]:8082") == (
        "http://[::1]:8082/",
        ("--host-resolver-rules=MAP ::1 [fd00::2]:8082",),  # measured: a bracketed pattern matches nothing,
    )


def test_at_most_two_chromiums_run_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # one browser check per swarm node, all started at once: the third waits for a Chromium to end
    running, most = 0, 0

    async def load_page(chromium: str, url: str, declared: object, deadline: float, flags: object = ()) -> Outcome:
        nonlocal running, most
        running += 1
        most = max(most, running)
        assert deadline - time.monotonic() > 20  # its time counts from when its own Chromium starts
        await asyncio.sleep(0.05)
        running -= 1
        return passed("rendered")

    monkeypatch.setattr(browser, "load_page", load_page)
    row = ServiceRow(
        service="proxy", state="healthy", health="healthy", restarts=0, exit_code=None, started_at=None,
        last_check=None, pid=1, container=None, reason="",
        ports=[PublishedPort(host_ip="127.0.0.1", host_port=8080, target=80, protocol="tcp")],
    )  # fmt: skip
    project = Project(
        name="demo", environment="local", working_dir=Path("/"), files=(), state_dir=Path("/x"), services={}
    )
    ctx = Context(project, project, [row], "process", browser=True, chromium="/usr/bin/chromium")
    declared = DeclaredCheck(name="page", component="frontend", kind="browser")

    async def all_at_once() -> list[Outcome]:
        return list(await asyncio.gather(*(browser.check(ctx, declared)() for _ in range(5))))

    outcomes = asyncio.run(all_at_once())
    assert most == browser.AT_ONCE == 2 and len(outcomes) == 5
