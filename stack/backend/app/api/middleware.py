"""HTTP middleware for the API, as plain ASGI (no response buffering, WebSockets untouched).

- `NoStoreMiddleware`: `Cache-Control: no-store` on every response under the API prefix.
- `BodyLimitMiddleware`: refuses a request body over the cap with a JSON 413, before reading it when
  Content-Length says so, else as soon as the bytes received pass the cap. (FastAPI's own `max_body_size`
  answers a declared-too-large body in plain text; the frontend gets one JSON shape for every 413 here.)
"""

from fastapi import HTTPException, status
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class NoStoreMiddleware:
    def __init__(self, app: ASGIApp, prefix: str) -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or not (path == self.prefix or path.startswith(self.prefix + "/")):
            await self.app(scope, receive, send)
            return

        async def send_no_store(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_no_store)


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_body_size: int, detail: str) -> None:
        self.app = app
        self.max_body_size = max_body_size
        self.detail = detail

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_size:
            response = JSONResponse({"detail": self.detail}, status_code=status.HTTP_413_CONTENT_TOO_LARGE)
            await response(scope, receive, send)
            return

        received = 0

        async def receive_within_limit() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_size:
                    # Raised while the route reads its body; FastAPI's handlers turn it into the JSON 413.
                    raise HTTPException(status_code=status.HTTP_413_CONTENT_TOO_LARGE, detail=self.detail)
            return message

        await self.app(scope, receive_within_limit, send)
