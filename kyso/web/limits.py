"""Request size limits enforced before a body is read into memory."""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyLimit:
    """Refuse bodies over ``max_bytes`` (413) whether or not Content-Length is honest.

    The refusal is raised where the application reads the body, so the app's own error
    handlers answer it: JSON for the API, the site's error page for a browser's form."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = 0
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = self.max_bytes + 1
        seen = 0
        responded = False

        async def limited() -> Message:
            nonlocal seen
            if declared > self.max_bytes:
                raise _TooLarge(self.max_bytes)  # without reading a byte of it
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal responded
            if message["type"] == "http.response.start":
                responded = True
            await send(message)

        try:
            await self.app(scope, limited, tracking_send)
        except _TooLarge:
            if not responded:
                await _too_large(send, self.max_bytes)


class _TooLarge(HTTPException):
    """Raised from ``receive`` once a body without an honest Content-Length passes the limit.

    An HTTPException so that FastAPI's JSON body reader lets it through (it turns any other
    exception into "400 There was an error parsing the body") and the handler in
    ``kyso.web.errors`` answers 413 ``too_large``.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(413, _message(limit))


def _message(limit: int) -> str:
    return f"Yêu cầu quá lớn (tối đa {limit} byte)."


async def _too_large(send: Send, limit: int) -> None:
    body = json.dumps(
        {"code": "too_large", "message": _message(limit)}, ensure_ascii=False
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
