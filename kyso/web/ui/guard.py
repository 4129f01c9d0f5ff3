"""Who is looking at a page, and whether a form really comes from one of our pages.

- Every browser gets a random ``kyso_sid`` cookie on its first page. Logging in replaces it
  with a fresh session token (:mod:`kyso.registry.sessions`), so a token planted before the
  login opens nothing afterwards.
- CSRF: every form carries ``csrf_token`` = HMAC(instance secret, ``kyso_sid``). A form posted
  from elsewhere cannot know it (the cookie is HttpOnly and SameSite=Lax); the router checks
  it on every unsafe method, so no page can forget. A foreign ``Origin`` is refused too.
- Flash messages ride one redirect in a signed cookie.

Cookies are HttpOnly and SameSite=Lax always, and Secure when the page is served over HTTPS
(directly or behind a trusted proxy that says so) or the instance's base URL is https.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse, Response

from kyso.context import Context
from kyso.errors import Forbidden, InvalidInput, KysoError
from kyso.registry import sessions
from kyso.registry.access import Action, Principal
from kyso.registry.sessions import Viewer
from kyso.web.deps import context
from kyso.web.ui import i18n

SID = "kyso_sid"
LANG = "kyso_lang"
FLASH = "kyso_flash"
CSRF_FIELD = "csrf_token"
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class LoginRequired(KysoError):
    """A page that needs a login was asked for without one: answered by a redirect."""

    code = "login_required"
    http_status = 401
    message_vi = "Cần đăng nhập."
    message_en = "Please log in."


class CsrfRefused(KysoError):
    code = "csrf"
    http_status = 403
    message_vi = "Biểu mẫu đã hết hạn hoặc không đến từ kyso; hãy tải lại trang và gửi lại."
    message_en = (
        "The form has expired or did not come from kyso; reload the page and send it again."
    )


@lru_cache(maxsize=8)
def _secret(home: Path) -> bytes:
    """The instance's key for CSRF tokens and flash cookies: made once, kept 0600."""
    path = home / "web-secret"
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        home.mkdir(parents=True, exist_ok=True)
        value = secrets.token_bytes(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(value.hex())
        return value
    except ValueError as exc:
        raise RuntimeError(f"{path} is damaged; delete it to make a new one") from exc


def _ctx(request: Request) -> Context:
    return context(request)


def _sign(request: Request, message: str) -> str:
    key = _secret(_ctx(request).settings.home)
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def sid(request: Request) -> str:
    """This browser's id (made now if it has none; :func:`finish` sets the cookie)."""
    value = getattr(request.state, "sid", None)
    if value is None:
        cookie = request.cookies.get(SID)
        value = cookie if cookie and 20 <= len(cookie) <= 100 else secrets.token_urlsafe(32)
        request.state.sid = value
    return str(value)


def same(sent: str, expected: str) -> bool:
    """Constant-time comparison that a hostile value cannot crash (``compare_digest`` raises
    on non-ASCII text)."""
    return hmac.compare_digest(sent.encode("utf-8", "replace"), expected.encode())


def csrf_token(request: Request) -> str:
    return _sign(request, "csrf:" + sid(request))


def secure(request: Request) -> bool:
    # The scheme is the proxy's X-Forwarded-Proto only for `kyso serve --forwarded-allow-ips`
    # (uvicorn sets it); a header from anyone else changes nothing.
    return request.url.scheme == "https" or _ctx(request).settings.base_url.startswith("https://")


def set_cookie(request: Request, response: Response, name: str, value: str, **extra: Any) -> None:
    response.set_cookie(
        name,
        value,
        httponly=True,
        samesite="lax",
        secure=secure(request),
        path="/",
        **extra,
    )


# -- flash messages ----------------------------------------------------------------------------
def flash(request: Request, response: Response, message: str, kind: str = "ok") -> None:
    """One message for the next page (after a redirect): 'Đã gửi yêu cầu', an error …"""
    payload = base64.urlsafe_b64encode(json.dumps([kind, message]).encode()).decode()
    set_cookie(request, response, FLASH, f"{payload}.{_sign(request, 'flash:' + payload)}")


def _read_flash(request: Request) -> tuple[str, str] | None:
    raw = request.cookies.get(FLASH)
    if not raw or "." not in raw:
        return None
    payload, mac = raw.rsplit(".", 1)
    if not same(mac, _sign(request, "flash:" + payload)):
        return None
    try:
        kind, message = json.loads(base64.urlsafe_b64decode(payload))
    except (ValueError, TypeError):
        return None
    return str(kind), str(message)


# -- the page state templates see --------------------------------------------------------------
@dataclass
class PageState:
    request: Request
    lang: str
    viewer: Viewer | None
    csrf: str
    flash: tuple[str, str] | None
    nav: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def path(self) -> str:
        return self.request.url.path

    @property
    def principal(self) -> Principal | None:
        return self.viewer.principal if self.viewer else None

    def can(self, action: str) -> bool:
        return self.viewer is not None and self.viewer.principal.can(Action(action))

    def url(self, **changes: Any) -> str:
        """This page's URL with some query parameters changed (filters, pages)."""
        params = dict(self.request.query_params)
        for key, value in changes.items():
            if value is None or value == "":
                params.pop(key, None)
            else:
                params[key] = str(value)
        query = "&".join(f"{quote(k)}={quote(v)}" for k, v in params.items())
        return self.path + (f"?{query}" if query else "")


def language(request: Request) -> str:
    return i18n.pick(request.cookies.get(LANG), request.headers.get("accept-language"))


def page_state(request: Request) -> PageState:
    state = getattr(request.state, "page", None)
    if state is None:
        state = PageState(
            request=request,
            lang=language(request),
            viewer=getattr(request.state, "viewer", None),
            csrf=csrf_token(request),
            flash=_read_flash(request),
        )
        request.state.page = state
    return state


def finish(request: Request, response: Response) -> None:
    """What every page response carries: the browser id, the consumed flash, the headers."""
    from kyso.web.ui.templating import SECURITY_HEADERS

    if request.cookies.get(SID) != sid(request):
        set_cookie(request, response, SID, sid(request))
    if request.cookies.get(FLASH) and getattr(request.state, "page", None) is not None:
        response.delete_cookie(FLASH, path="/")
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if getattr(request.state, "viewer", None) is not None:
        response.headers["cache-control"] = "no-store"


def redirect(request: Request, url: str, message: str | None = None, kind: str = "ok") -> Response:
    """303 to another page of ours (never elsewhere), optionally with a flash message."""
    response = RedirectResponse(safe_next(url), status_code=303)
    if message:
        flash(request, response, message, kind)
    finish(request, response)
    return response


def safe_next(url: str | None, default: str = "/") -> str:
    """Only a path on this site: no scheme, no host, no '//' (no open redirect)."""
    if not url:
        return default
    parts = urlsplit(url)
    if parts.scheme or parts.netloc or not url.startswith("/") or url.startswith("//"):
        return default
    if "\\" in url or any(ord(ch) < 32 for ch in url):
        return default
    return url


# -- dependencies ------------------------------------------------------------------------------
def _find_viewer(request: Request) -> Viewer | None:
    if hasattr(request.state, "viewer"):
        return request.state.viewer  # type: ignore[no-any-return]
    ctx = _ctx(request)
    token = request.cookies.get(SID)
    viewer = None
    touch = False
    if token:
        with ctx.db.read() as session:
            viewer = sessions.find(session, token)
            touch = viewer is not None and sessions.needs_touch(session, viewer)
    if viewer is not None and touch:
        with ctx.db.session() as session:
            sessions.touch(session, viewer.session_id)
    request.state.viewer = viewer
    return viewer


async def ui_request(request: Request) -> None:
    """Router-wide: mark the request as a page (errors answer in HTML), refuse text no field
    may hold, and check CSRF on every unsafe method before any handler runs."""
    request.state.ui = True
    if any(_unstorable(v) for v in request.query_params.values()):
        raise _nul_refused()
    if request.method not in UNSAFE:
        return
    origin = request.headers.get("origin")
    if origin and origin != "null":
        host = urlsplit(origin).netloc
        if host and host not in _own_hosts(request):
            raise CsrfRefused("origin")
    form = await request.form()
    if any(isinstance(v, str) and _unstorable(v) for v in form.values()):
        raise _nul_refused()
    sent = request.headers.get("x-csrf-token")
    if sent is None:
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if not sent or not same(sent, csrf_token(request)):
        raise CsrfRefused()


def _unstorable(text: str) -> bool:
    # PostgreSQL text cannot hold U+0000; no form field has a use for it either.
    return "\x00" in text


def _nul_refused() -> KysoError:
    return InvalidInput("a field contains the NUL character", vi="một trường chứa ký tự NUL")


def _own_hosts(request: Request) -> set[str]:
    """This site's names: the Host the browser used and the configured public URL's (a
    reverse proxy may rewrite Host)."""
    hosts = {request.headers.get("host", request.url.netloc)}
    configured = urlsplit(_ctx(request).settings.base_url).netloc
    if configured:
        hosts.add(configured)
    return hosts


def optional_viewer(request: Request) -> Viewer | None:
    return _find_viewer(request)


def signed_in(request: Request) -> Viewer:
    viewer = _find_viewer(request)
    if viewer is None:
        raise LoginRequired()
    return viewer


def allowed(*actions: Action) -> Any:
    """A dependency: a logged-in viewer whose role has every one of ``actions``."""

    def check(viewer: Annotated[Viewer, Depends(signed_in)]) -> Viewer:
        for action in actions:
            if not viewer.principal.can(action):
                raise Forbidden(action.value, vi=f"thao tác {action.value}")
        return viewer

    return Depends(check)


SignedIn = Annotated[Viewer, Depends(signed_in)]
MaybeSignedIn = Annotated[Viewer | None, Depends(optional_viewer)]
Ctx = Annotated[Context, Depends(context)]


def environment_gettext(request: Request) -> Any:
    """``_`` in the request's language, for text built in Python."""
    return i18n.translations(language(request)).gettext
