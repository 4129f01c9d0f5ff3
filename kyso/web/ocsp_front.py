"""OCSP over HTTP (RFC 6960 Appendix A, RFC 5019), answered before the web framework.

A relying party asks the responder once per certificate it checks, so this is kyso's
busiest endpoint, and each answer is already signed and stored: the framework's routing,
dependency and middleware layers cost more than the answer itself (benchmarks/bench_ca.py,
py-spy). This ASGI layer sits outermost and answers ``POST /ocsp`` and ``GET /ocsp/{b64}``
itself; every other request goes on to the application unchanged.

Answers already signed (and errors) are given on the event loop: they cost one indexed read.
A request that needs a signature now (a nonce, a SHA-256 CertID, several certificates, a
serial never issued) is signed on a :class:`~kyso.web.ratelimit.SigningPool` thread within
the client's budget; over the budget, or with every signing thread busy, the answer is
``tryLater`` (RFC 6960 §2.3), unsigned, as the RFC has it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
from email.utils import format_datetime
from urllib.parse import unquote

from starlette.types import ASGIApp, Receive, Scope, Send

from kyso import clock
from kyso.context import Context
from kyso.errors import TooManyRequests
from kyso.observability import metrics
from kyso.pki.ocsp import MALFORMED, MAX_REQUEST_BYTES, Answer, Query, error_response
from kyso.ratelimit import Limiter, Purpose
from kyso.web.ratelimit import SigningPool, client_address

log = logging.getLogger("kyso.web")
INTERNAL_ERROR = error_response("internal_error")
TRY_LATER = error_response("try_later")
_MEDIA_TYPE = b"application/ocsp-response"


def answer_headers(answer: Answer) -> list[tuple[bytes, bytes]]:
    """RFC 5019 §6: a pre-signed answer may be cached until its nextUpdate; others not."""
    if answer.cacheable and answer.produced_at and answer.next_update:
        max_age = max(0, int((answer.next_update - clock.now()).total_seconds()))
        return [
            (
                b"cache-control",
                f"max-age={max_age}, public, no-transform, must-revalidate".encode(),
            ),
            (b"last-modified", format_datetime(answer.produced_at, usegmt=True).encode()),
            (b"expires", format_datetime(answer.next_update, usegmt=True).encode()),
            (
                b"etag",
                b'"' + hashlib.sha1(answer.der, usedforsecurity=False).hexdigest().encode() + b'"',
            ),
        ]
    return [(b"cache-control", b"no-cache, no-store")]


class OcspFront:
    def __init__(
        self,
        app: ASGIApp,
        context: Context,
        limiter: Limiter | None = None,
        pool: SigningPool | None = None,
    ) -> None:
        self.app = app
        self.context = context
        self.limiter = limiter
        self.pool = pool or SigningPool()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            method: str = scope["method"]
            if path == "/ocsp" and method == "POST":
                body = await _read(receive, MAX_REQUEST_BYTES)
                if body is None:
                    await _too_large(send)  # no OCSP request is that big
                else:
                    await self._answer(scope, send, body)
                return
            if path.startswith("/ocsp/") and method in ("GET", "HEAD"):
                await self._answer(scope, send, _decode(scope), head=method == "HEAD")
                return
        await self.app(scope, receive, send)

    async def _answer(
        self, scope: Scope, send: Send, request_der: bytes | None, head: bool = False
    ) -> None:
        source = "refused"  # malformed, or an issuer not ours (counted by kyso's metrics)
        if request_der is None:
            answer = Answer(MALFORMED)
        else:
            try:
                responder = self.context.responder
                query = responder.read(request_der)
                if isinstance(query, Answer):  # malformed, or an issuer not ours
                    answer = query
                elif (stored := responder.stored(query)) is not None:
                    answer, source = stored, "presigned"
                else:
                    answer = await self.pool.run(self._sign, client_address(scope), query)
                    source = "signed"
            except TooManyRequests:  # over the client's budget, or every thread busy
                answer, source = Answer(TRY_LATER), "try_later"
            except Exception:  # the relying party gets internalError, the log the cause
                log.exception("OCSP request failed")
                answer, source = Answer(INTERNAL_ERROR), "internal_error"
        metrics.ocsp_answered(source)
        headers = [
            (b"content-type", _MEDIA_TYPE),
            (b"content-length", str(len(answer.der)).encode()),
            *answer_headers(answer),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if head else answer.der})

    def _sign(self, client: str, query: Query) -> Answer:
        """On a signing thread, for the request the event loop read: a known certificate's
        answer signed and stored (free: once per certificate), or the client's budget, then
        the signature."""
        responder = self.context.responder
        stored = responder.store(query)
        if stored is not None:
            return stored
        if self.limiter is not None:
            self.limiter.take(Purpose.OCSP_SIGNING, client)
        return responder.sign(query)


async def _too_large(send: Send) -> None:
    body = json.dumps(
        {
            "code": "too_large",
            "message": f"Yêu cầu OCSP quá lớn (tối đa {MAX_REQUEST_BYTES} byte).",
        },
        ensure_ascii=False,
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _read(receive: Receive, limit: int) -> bytes | None:
    """The request body, or None once it passes ``limit`` (the rest is not kept)."""
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            return None  # the client went away
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


def _decode(scope: Scope) -> bytes | None:
    """RFC 6960 Appendix A.1: the DER request, base64, then URL-encoded, in the path."""
    raw = scope.get("raw_path") or scope["path"].encode()
    encoded = raw.decode("latin-1").split("?", 1)[0].removeprefix("/ocsp/")
    if len(encoded) > MAX_REQUEST_BYTES * 2:
        return None
    try:
        return base64.b64decode(unquote(encoded), validate=True)
    except (binascii.Error, ValueError):
        return None
