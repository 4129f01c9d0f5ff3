"""Domain errors to HTTP in one place: a stable ``{code, message}`` body, never a traceback."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from kyso.errors import KysoError

log = logging.getLogger("kyso.web")


def language(request: Request) -> str:
    accept = request.headers.get("accept-language", "vi")
    return "en" if accept.lower().startswith("en") else "vi"


def install(app: FastAPI) -> None:
    from kyso.web.ui import errors as pages

    @app.exception_handler(KysoError)
    async def _domain(request: Request, exc: KysoError) -> Response:
        if exc.http_status >= 500:
            log.error("request failed: %s %s: %s", request.method, request.url.path, exc.code)
        if pages.is_page(request):
            return pages.for_domain(request, exc)
        return JSONResponse(exc.to_dict(language(request)), status_code=exc.http_status)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        if pages.is_page(request):
            return pages.for_invalid(request)
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'body'}: {e.get('msg', '')}"
            for e in exc.errors()
        )
        lang = language(request)
        head = "Dữ liệu không hợp lệ" if lang == "vi" else "The input is not valid"
        return JSONResponse(
            {"code": "invalid_input", "message": f"{head}: {problems}"}, status_code=422
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if pages.is_page(request):
            return pages.for_http(request, exc.status_code)
        code = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(
            exc.status_code, "http_error"
        )
        return JSONResponse({"code": code, "message": str(exc.detail)}, status_code=exc.status_code)

    @app.exception_handler(ClientDisconnect)
    async def _gone(request: Request, exc: ClientDisconnect) -> Response:
        # The client hung up mid-request (a load generator stopping, a closed tab): nobody is
        # left to answer and nothing went wrong on our side.
        return Response(status_code=499)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        if pages.is_page(request):
            return pages.for_unexpected(request)
        lang = language(request)
        message = (
            "Lỗi hệ thống; đã ghi nhật ký."
            if lang == "vi"
            else "Internal error; it has been logged."
        )
        return JSONResponse({"code": "internal_error", "message": message}, status_code=500)
