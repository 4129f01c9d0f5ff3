"""Errors on pages: a page in the reader's language with what to do next, never JSON and
never a traceback. A page that needs a login sends the browser to the login form instead."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import Request
from fastapi.responses import Response

from kyso.errors import KysoError, Unauthenticated
from kyso.web.ui import guard
from kyso.web.ui.templating import render

_API_PREFIXES = ("/api/", "/ocsp", "/crl/", "/tsa", "/ca/", "/healthz", "/docs", "/openapi")


def is_page(request: Request) -> bool:
    """Whether to answer in HTML: a page route, or a browser asking for a path we lack."""
    if getattr(request.state, "ui", False):
        return True
    path = request.url.path
    if path.startswith(_API_PREFIXES) or (path == "/verify" and request.method == "POST"):
        return False
    return "text/html" in request.headers.get("accept", "")


def page_for(request: Request, status: int, message: str, code: str) -> Response:
    if isinstance(code, str) and code in {"login_required", "unauthenticated"} and status == 401:
        target = request.url.path
        if request.url.query and request.method == "GET":
            target += "?" + request.url.query
        return guard.redirect(request, "/login?next=" + quote(target, safe=""))
    return render(
        request,
        "error.html",
        {"status": status, "message": message, "code": code},
        status_code=status,
    )


def for_domain(request: Request, exc: KysoError) -> Response:
    lang = guard.language(request)
    code = "login_required" if isinstance(exc, Unauthenticated) else exc.code
    return page_for(request, exc.http_status, exc.message(lang), code)


def for_http(request: Request, status: int) -> Response:
    _ = guard.environment_gettext(request)
    messages = {
        404: _("This page does not exist, or it has been removed."),
        405: _("This address does not accept that kind of request."),
        413: _("The file is too large."),
    }
    return page_for(request, status, messages.get(status, _("The request is not valid.")), "http")


def for_invalid(request: Request) -> Response:
    _ = guard.environment_gettext(request)
    return page_for(request, 422, _("Some of the data sent is not valid."), "invalid_input")


def for_unexpected(request: Request) -> Response:
    _ = guard.environment_gettext(request)
    message = _("Something went wrong on our side; it has been logged. Please try again.")
    return page_for(request, 500, message, "internal_error")
