"""The CSC API's routes (``/csc/v1/...``, ``/csc/v2/...``): bytes in, :mod:`kyso.remote.csc`
out. The body is read up to a cap, parsed as JSON (an object) and handed to the service;
every refusal is the specification's ``{"error", "error_description"}`` with its status."""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from kyso.context import Context
from kyso.errors import KysoError
from kyso.remote import csc, csc_tokens
from kyso.remote.csc import V1, V2, Answer, CscError
from kyso.web.deps import context
from kyso.web.ratelimit import client_address, limiter

log = logging.getLogger("kyso.web")
router = APIRouter(tags=["csc"])

_SMALL = 256 * 1024  # every CSC body but signDoc's is a few kilobytes


async def _body(request: Request, limit: int) -> bytes:
    chunks: list[bytes] = []
    seen = 0
    try:
        async for chunk in request.stream():
            seen += len(chunk)
            if seen > limit:
                raise CscError("invalid_request", f"Request body over {limit} bytes", 413)
            chunks.append(chunk)
    except StarletteHTTPException as exc:  # the application-wide BodyLimit
        raise CscError("invalid_request", "Request body too large", 413) from exc
    return b"".join(chunks)


async def _json(request: Request, limit: int = _SMALL) -> dict[str, Any]:
    raw = await _body(request, limit)
    if not raw.strip():
        return {}
    return await _parsed_json(raw)


def _respond(answer: Answer) -> Response:
    headers = {}
    if answer.status == 401 and answer.body and answer.body.get("error") == "invalid_token":
        headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
    if answer.body is None:
        return Response(status_code=answer.status, headers=headers)
    return JSONResponse(answer.body, status_code=answer.status, headers=headers)


async def _run(work: Callable[[], Awaitable[Answer]]) -> Response:
    try:
        return _respond(await work())
    except KysoError as exc:
        return _respond(csc.answer_for(exc))
    except Exception:
        log.exception("CSC request failed")
        return _respond(
            Answer(500, {"error": "server_error", "error_description": "Internal error"})
        )


async def _caller(ctx: Context, request: Request) -> csc_tokens.Caller:
    return await run_in_threadpool(
        csc_tokens.authenticate, ctx, request.headers.get("authorization")
    )


def _authenticated(
    version: str, service: Callable[[Context, csc_tokens.Caller, str, dict[str, Any]], Any]
) -> Callable[[Request], Awaitable[Response]]:
    """A route whose service takes (ctx, caller, version, body) and returns a dict (200)."""

    async def endpoint(request: Request) -> Response:
        async def work() -> Answer:
            ctx = context(request)
            caller = await _caller(ctx, request)
            body = await _json(request)
            result = await run_in_threadpool(service, ctx, caller, version, body)
            return result if isinstance(result, Answer) else Answer(200, result)

        return await _run(work)

    return endpoint


def _info(version: str) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        async def work() -> Answer:
            await _json(request)  # a malformed body is still refused
            return Answer(200, csc.info(context(request), version))

        return await _run(work)

    return endpoint


def _basic(header: str | None) -> tuple[str, str]:
    if not header or header[:6].lower() != "basic ":
        raise CscError("invalid_request", "HTTP Basic authentication is required", 401)
    try:
        user, sep, password = base64.b64decode(header[6:].strip()).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise CscError("invalid_request", "Malformed HTTP Basic authorization", 401) from None
    if not sep or not user:
        raise CscError("invalid_request", "Malformed HTTP Basic authorization", 401)
    return user, password


async def login(request: Request) -> Response:
    async def work() -> Answer:
        ctx = context(request)
        username, password = _basic(request.headers.get("authorization"))
        body = await _json(request)
        otp = body.get("OTP")
        if otp is not None and not isinstance(otp, str):
            raise csc.missing("string", "OTP")
        found = limiter(request)
        from kyso.registry.users import Throttle

        throttle = (
            Throttle(client_address(request.scope), found.budgets) if found is not None else None
        )
        token, seconds = await run_in_threadpool(
            lambda: csc_tokens.login(ctx, username, password, otp, throttle=throttle)
        )
        return Answer(200, {"access_token": token, "expires_in": seconds})

    return await _run(work)


async def revoke(request: Request) -> Response:
    async def work() -> Answer:
        ctx = context(request)
        caller = await _caller(ctx, request)
        body = await _json(request)
        token = body.get("token")
        if token is not None and not isinstance(token, str):
            raise csc.missing("string", "token")
        await run_in_threadpool(csc_tokens.revoke, ctx, caller, token)
        return Answer(204, None)

    return await _run(work)


async def oauth2_token(request: Request) -> Response:
    """RFC 6749 §4.4 client credentials: form-encoded (or JSON) body; the client's id and
    secret in the body or in HTTP Basic (§2.3.1)."""

    async def work() -> Answer:
        ctx = context(request)
        raw = await _body(request, _SMALL)
        fields: dict[str, Any]
        if request.headers.get("content-type", "").startswith("application/json"):
            fields = await _parsed_json(raw)
        else:
            fields = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
        if fields.get("grant_type") != "client_credentials":
            raise CscError("unsupported_grant_type", "Only client_credentials is supported")
        client_id, secret = fields.get("client_id"), fields.get("client_secret")
        header = request.headers.get("authorization")
        if header and header[:6].lower() == "basic ":
            client_id, secret = _basic(header)
        if not isinstance(client_id, str) or not isinstance(secret, str):
            raise CscError("invalid_client", "Client authentication failed", 401)
        token, seconds = await run_in_threadpool(
            csc_tokens.client_credentials, ctx, client_id, secret
        )
        return Answer(200, {"access_token": token, "token_type": "Bearer", "expires_in": seconds})

    return await _run(work)


async def _parsed_json(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: [[[[…]]]]
        raise CscError("invalid_request", "Malformed JSON body") from None
    if not isinstance(data, dict):
        raise CscError("invalid_request", "The request body must be a JSON object")
    return data


def _authorize(version: str) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        async def work() -> Answer:
            ctx = context(request)
            caller = await _caller(ctx, request)
            body = await _json(request)
            return await csc.authorize(ctx, caller, version, body)

        return await _run(work)

    return endpoint


async def authorize_check(request: Request) -> Response:
    async def work() -> Answer:
        ctx = context(request)
        caller = await _caller(ctx, request)
        body = await _json(request)
        return await run_in_threadpool(csc.authorize_check, ctx, caller, body)

    return await _run(work)


def _timestamp(version: str) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        async def work() -> Answer:
            ctx = context(request)
            await _caller(ctx, request)
            body = await _json(request)
            return Answer(200, await run_in_threadpool(csc.timestamp, ctx, version, body))

        return await _run(work)

    return endpoint


async def sign_doc(request: Request) -> Response:
    async def work() -> Answer:
        ctx = context(request)
        caller = await _caller(ctx, request)
        # documents travel in base64: a third larger than the upload limit, plus the JSON
        body = await _json(request, ctx.settings.max_upload_bytes * 4 // 3 + _SMALL)
        return Answer(200, await run_in_threadpool(csc.sign_doc, ctx, caller, body))

    return await _run(work)


def _send_otp(
    ctx: Context, caller: csc_tokens.Caller, version: str, body: dict[str, Any]
) -> Answer:
    return csc.send_otp(ctx, caller, body)


for _version in (V1, V2):
    _base = f"/csc/{_version}"
    router.add_api_route(
        f"{_base}/info", _info(_version), methods=["GET", "POST"], summary=f"CSC {_version} info"
    )
    router.add_api_route(f"{_base}/auth/login", login, methods=["POST"], summary="HTTP Basic login")
    router.add_api_route(f"{_base}/auth/revoke", revoke, methods=["POST"], summary="Revoke a token")
    router.add_api_route(
        f"{_base}/oauth2/token", oauth2_token, methods=["POST"], summary="Client credentials"
    )
    for _path, _service in (
        ("credentials/list", csc.list_credentials),
        ("credentials/info", csc.credential_info),
        ("credentials/sendOTP", _send_otp),
        ("signatures/signHash", csc.sign_hash),
    ):
        router.add_api_route(
            f"{_base}/{_path}", _authenticated(_version, _service), methods=["POST"], summary=_path
        )
    router.add_api_route(
        f"{_base}/credentials/authorize",
        _authorize(_version),
        methods=["POST"],
        summary="SAD over exact hashes (PIN + OTP, or the phone)",
    )
    router.add_api_route(
        f"{_base}/signatures/timestamp",
        _timestamp(_version),
        methods=["POST"],
        summary="RFC 3161 time-stamp from kyso's TSA",
    )
router.add_api_route(
    "/csc/v2/credentials/authorizeCheck",
    authorize_check,
    methods=["POST"],
    summary="Poll an asynchronous authorize",
)
router.add_api_route(
    "/csc/v2/signatures/signDoc", sign_doc, methods=["POST"], summary="PAdES/CAdES/XAdES by kyso"
)
