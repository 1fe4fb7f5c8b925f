"""Where ``validate --browser`` points Chromium: the entry's address as it is without a Host to send, else the
site's own URL with its name (an address, a name, an IPv6 literal) mapped to the entry's address and port."""

from __future__ import annotations

from unistack.ops.browser import site_url


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
