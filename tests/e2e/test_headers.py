"""What the proxy adds to every kind of response: security headers, no server banner, caching, compression, the
SPA fallback against real 404s, and refusing oversized request bodies.

Kinds: HTML (`/` and a client-side route), a content-hashed asset (its URL read from index.html), the API, and a
missing asset (404 from Caddy itself).
"""

from __future__ import annotations

import gzip
import http.client
import re
import socket
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import httpx
import pytest
import zstandard

from .conftest import Stack

pytestmark = pytest.mark.e2e

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "strict-origin-when-cross-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=()",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
}
# The static build has no inline script or style, so nothing is relaxed (dev mode adds 'unsafe-inline' styles).
CSP = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'", "data:"],
    "connect-src": ["'self'", "ws:", "wss:"],
    "frame-ancestors": ["'none'"],
    "base-uri": ["'self'"],
    "form-action": ["'self'"],
}
BANNERS = ("server", "via", "x-powered-by")
HTML = "no-cache"
HASHED = "public, max-age=31536000, immutable"
API = "no-store"
ERROR = "no-store"
PROXY_MAX_BODY = 20_000_000  # request_body max_size 20MB in stack/proxy/Caddyfile

# name -> (path or asset kind, status, Cache-Control, media type, compressible)
ROUTES: dict[str, tuple[str, int, str, str, bool]] = {
    "html-root": ("/", 200, HTML, "text/html", True),
    "html-spa-route": ("/notes/1", 200, HTML, "text/html", True),
    "html-deep-spa-route": ("/notes/1/edit", 200, HTML, "text/html", True),
    "asset-js": ("asset:js", 200, HASHED, "text/javascript", True),
    "asset-css": ("asset:css", 200, HASHED, "text/css", True),
    "public-file": ("/favicon.svg", 200, HTML, "image/svg+xml", False),
    "api-list": ("/api/notes", 200, API, "application/json", False),
    "api-openapi": ("/api/openapi.json", 200, API, "application/json", True),
    "api-404": ("/api/notes/99999999", 404, API, "application/json", False),
    "asset-404": ("/assets/nope-1234.js", 404, ERROR, "text/plain", False),
    "file-404": ("/favicon.ico", 404, ERROR, "text/plain", False),
    "proxy-health": ("/_proxy/health", 200, ERROR, "text/plain", False),
}
COMPRESSIBLE = [name for name, route in ROUTES.items() if route[4]]


def csp_directives(value: str) -> dict[str, list[str]]:
    directives = (part.split() for part in value.split(";") if part.strip())
    return {words[0].lower(): words[1:] for words in directives}


def assert_security_headers(response: httpx.Response | http.client.HTTPResponse, what: str) -> None:
    headers = {name.lower(): value for name, value in response.headers.items()}
    for name, value in SECURITY_HEADERS.items():
        assert headers.get(name) == value, f"{what}: {name} is {headers.get(name)!r}, expected {value!r}"
    assert "content-security-policy" in headers, f"{what}: no Content-Security-Policy"
    csp = csp_directives(headers["content-security-policy"])
    assert csp == CSP, f"{what}: Content-Security-Policy {headers['content-security-policy']!r}"
    assert headers.get("x-frame-options") == "DENY" or csp.get("frame-ancestors") == ["'none'"], what
    present = [name for name in BANNERS if name in headers]
    assert not present, f"{what}: {present} reveal the server ({[headers[n] for n in present]})"


@pytest.fixture(scope="module")
def index_html(stack: Stack) -> str:
    with stack.client() as client:
        response = client.get("/")
        assert response.status_code == 200
        return response.text


@pytest.fixture(scope="module")
def urls(index_html: str) -> dict[str, str]:
    """Each route's path; the hashed assets are the ones index.html links (as a browser finds them)."""
    found = {
        "asset:js": re.findall(r'<script[^>]+src="(/assets/[^"]+\.js)"', index_html),
        "asset:css": re.findall(r'<link[^>]+href="(/assets/[^"]+\.css)"', index_html),
    }
    for kind, paths in found.items():
        assert paths, f"index.html links no {kind}: {index_html[:500]}"
        assert all(re.fullmatch(r"/assets/[\w.-]+-[\w-]{8,}\.(js|css)", p) for p in paths), paths  # content hash
    return {name: found[path][0] if path in found else path for name, (path, *_) in ROUTES.items()}


@pytest.mark.parametrize("route", list(ROUTES))
def test_headers_and_caching(api: httpx.Client, urls: dict[str, str], route: str) -> None:
    _, status, cache_control, media_type, _ = ROUTES[route]
    response = api.get(urls[route])
    what = f"GET {urls[route]}"
    assert response.status_code == status, f"{what}: {response.status_code} {response.text[:200]}"
    assert response.headers["content-type"].split(";")[0] == media_type, what
    assert response.headers.get("cache-control") == cache_control, what
    assert_security_headers(response, what)
    if status == 404 and not route.startswith("api"):
        assert "<html" not in response.text.lower(), f"{what}: a missing file must not get index.html"


def test_spa_routes_get_index_html(api: httpx.Client, index_html: str) -> None:
    for path in ("/notes/1", "/notes/1/edit", "/settings"):
        assert api.get(path).text == index_html, path


@pytest.mark.parametrize("path_of", ["html-root", "html-spa-route", "asset-js"])
def test_revalidation_by_etag(api: httpx.Client, urls: dict[str, str], path_of: str) -> None:
    path = urls[path_of]
    first = api.get(path, headers={"Accept-Encoding": "identity"})
    etag = first.headers.get("etag")
    assert etag, f"GET {path}: no ETag"
    again = api.get(path, headers={"Accept-Encoding": "identity", "If-None-Match": etag})
    assert (again.status_code, again.content) == (304, b""), path
    assert_security_headers(again, f"304 for {path}")


def raw_get(api: httpx.Client, path: str, encoding: str) -> tuple[httpx.Headers, bytes]:
    """The response's headers and its bytes as sent (not decoded)."""
    with api.stream("GET", path, headers={"Accept-Encoding": encoding}) as response:
        assert response.status_code == 200, path
        return response.headers, b"".join(response.iter_raw())


@pytest.mark.parametrize("encoding", ["zstd", "gzip"])
@pytest.mark.parametrize("route", COMPRESSIBLE)
def test_compression(api: httpx.Client, urls: dict[str, str], route: str, encoding: str) -> None:
    path = urls[route]
    plain_headers, plain = raw_get(api, path, "identity")
    assert "content-encoding" not in plain_headers
    assert len(plain) > 1024, f"{path} is too small to show compression"

    headers, sent = raw_get(api, path, encoding)
    assert headers.get("content-encoding") == encoding, f"GET {path} with Accept-Encoding: {encoding}"
    assert "accept-encoding" in headers.get("vary", "").lower(), f"{path}: caches must key on Accept-Encoding"
    decoded = (
        zstandard.ZstdDecompressor().decompressobj().decompress(sent) if encoding == "zstd" else gzip.decompress(sent)
    )
    assert decoded == plain, f"{path}: the {encoding} body does not decode to the file"
    assert len(sent) < len(plain), path
    assert headers["cache-control"] == plain_headers["cache-control"], path

    # both offered, with no preference: either is right (Caddy follows the client's order for precompressed files)
    both, _ = raw_get(api, path, "gzip, zstd")
    assert both.get("content-encoding") in ("zstd", "gzip"), path


# ------------------------------------------------------------------------------------------------- bodies


def raw_post(port: int, path: str, head: dict[str, str], body: Iterable[bytes], timeout: float = 60) -> dict[str, Any]:
    """POSTs over a plain socket, sending the body from another thread while the response is read here, as a
    browser or curl would: a server that answers before reading the whole body is seen answering (an HTTP
    client that writes everything first would only see the connection reset)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close", *map(": ".join, head.items())]
    sent = {"bytes": 0}

    def send() -> None:
        try:
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
            for chunk in body:
                sock.sendall(chunk)
                sent["bytes"] += len(chunk)
        except OSError:
            pass  # the server answered and closed: what this is about

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        response = http.client.HTTPResponse(sock, method="POST")
        response.begin()  # skips any 100 Continue
        content = response.read()
        return {"status": response.status, "headers": response.headers, "body": content, "response": response}
    finally:
        sock.close()
        sender.join(timeout=10)


def multipart(size: int, boundary: str = "e2e-boundary") -> tuple[str, Iterator[bytes], int]:
    """A multipart body with one file of `size` zero bytes: its content type, its chunks and its total size."""
    start = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="huge.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    end = f"\r\n--{boundary}--\r\n".encode()
    block = b"\0" * (1 << 20)

    def chunks() -> Iterator[bytes]:
        yield start
        left = size
        while left > 0:
            yield block[: min(left, len(block))]
            left -= len(block)
        yield end

    return f"multipart/form-data; boundary={boundary}", chunks(), len(start) + size + len(end)


def as_chunked(chunks: Iterator[bytes]) -> Iterator[bytes]:
    for chunk in chunks:
        yield f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    yield b"0\r\n\r\n"


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_body_over_the_proxy_limit_is_refused(stack: Stack, api: httpx.Client, framing: str) -> None:
    """25 MB, over Caddy's 20 MB request_body limit, to the upload route: refused with 413, nothing stored.

    The backend's own limit (MAX_UPLOAD_BYTES plus 64 KiB of form overhead) is lower, so on this route the
    backend answers first, with its JSON message (README: users see the backend's 413). Either answer is a refusal;
    what matters is that the body is not taken in, and that the refusal is an ordinary response of the proxy.
    """
    note = api.post("/api/notes", json={"title": "oversized body"}).json()
    try:
        content_type, chunks, total = multipart(25_000_000)
        assert total > PROXY_MAX_BODY
        head = {"Content-Type": content_type}
        if framing == "content-length":
            head["Content-Length"] = str(total)
            body: Iterator[bytes] = chunks
        else:
            head["Transfer-Encoding"] = "chunked"
            body = as_chunked(chunks)
        answer = raw_post(stack.port, f"/api/notes/{note['id']}/attachments", head, body)
        assert answer["status"] == 413, answer["body"][:300]
        limit = api.get("/api/info").json()["max_upload_bytes"]
        assert answer["body"] in (
            f'{{"detail":"The file is larger than the limit of {limit} bytes."}}'.encode(),  # the backend's
            b"413 Request Entity Too Large",  # Caddy's own (handle_errors)
        ), answer["body"][:300]
        assert answer["headers"]["Cache-Control"] == "no-store"
        assert_security_headers(answer["response"], f"413 ({framing})")
        assert api.get(f"/api/notes/{note['id']}").json()["attachments"] == []
    finally:
        api.delete(f"/api/notes/{note['id']}")


def test_security_headers_survive_expect_100_continue(stack: Stack, api: httpx.Client) -> None:
    note = api.post("/api/notes", json={"title": "expect 100-continue"}).json()
    try:
        content_type, chunks, total = multipart(4096)
        head = {"Content-Type": content_type, "Content-Length": str(total), "Expect": "100-continue"}
        answer = raw_post(stack.port, f"/api/notes/{note['id']}/attachments", head, chunks)
        assert answer["status"] == 201, answer["body"][:300]
        assert_security_headers(answer["response"], "201 after 100 Continue")
    finally:
        api.delete(f"/api/notes/{note['id']}")
