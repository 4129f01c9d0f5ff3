"""Logging in (password, then a TOTP code for the roles that need one), logging out,
changing one's password, switching the language.

Attempts are throttled per client address (:class:`kyso.registry.users.Throttle`, budgets in
the database); every failure reads the same. Between the password and the code the browser
holds a single-use challenge bound to its browser id (:mod:`kyso.registry.login_challenges`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from kyso.errors import KysoError
from kyso.registry import login_challenges, sessions, users
from kyso.registry.fields import FieldErrors
from kyso.registry.users import LoginStatus
from kyso.store.models import User
from kyso.web.ratelimit import client_address, limiter
from kyso.web.ui import guard
from kyso.web.ui.guard import Ctx, SignedIn
from kyso.web.ui.templating import render

router = APIRouter(dependencies=[Depends(guard.ui_request)])
PENDING = "kyso_pending"  # between the password and the code: a login challenge's token

Short = Annotated[str, Form(max_length=200)]
Next = Annotated[str, Form(max_length=500)]


def _gettext(request: Request):  # type: ignore[no-untyped-def]
    return guard.environment_gettext(request)


def _throttle(request: Request) -> users.Throttle | None:
    found = limiter(request)
    if found is None:
        return None
    return users.Throttle(client_address(request.scope), found.budgets)


def _challenge_cookie(request: Request, response: Response, token: str) -> None:
    seconds = int(login_challenges.LIFETIME.total_seconds())
    guard.set_cookie(request, response, PENDING, token, max_age=seconds)


def _open_session(request: Request, session: Session, user: User) -> str:
    """The browser session of a user who has just logged in, written in the transaction
    that checked them (with its audit entry)."""
    return sessions.start(session, user, user_agent=request.headers.get("user-agent"))


def _logged_in(request: Request, token: str, next_url: str) -> Response:
    request.state.sid = token  # the new id replaces the anonymous one (no fixation)
    response = guard.redirect(request, guard.safe_next(next_url))
    response.delete_cookie(PENDING, path="/")
    return response


@router.get("/login", include_in_schema=False)
def login_page(
    request: Request, viewer: guard.MaybeSignedIn, next: str = Query("/", max_length=500)
) -> Response:
    if viewer is not None:
        return guard.redirect(request, guard.safe_next(next))
    return render(request, "auth/login.html", {"next": guard.safe_next(next), "errors": {}})


@router.post("/login", include_in_schema=False)
def login(
    request: Request,
    ctx: Ctx,
    username: Short = "",
    password: Annotated[str, Form(max_length=1000)] = "",
    next: Next = "/",
) -> Response:
    _ = _gettext(request)
    errors: dict[str, str] = {}
    if not username.strip():
        errors["username"] = _("Enter your user name.")
    if not password:
        errors["password"] = _("Enter your password.")
    if errors:
        return render(
            request,
            "auth/login.html",
            {"next": next, "errors": errors, "username": username},
            status_code=422,
        )
    logged_in = challenge = None
    with ctx.db.session() as session:
        result = users.login(session, username, password, throttle=_throttle(request))
        user = result.user
        if result.status is LoginStatus.OK and user is not None:
            logged_in = _open_session(request, session, user)
        elif result.status is LoginStatus.NEEDS_TOTP and user is not None:
            challenge = login_challenges.start(session, user, guard.sid(request))
    if logged_in is not None:
        return _logged_in(request, logged_in, next)
    if challenge is not None:
        response = render(request, "auth/totp.html", {"next": guard.safe_next(next), "errors": {}})
        _challenge_cookie(request, response, challenge)
        return response
    try:
        result.raise_for_status()
    except KysoError as exc:
        message = exc.message(guard.language(request))
    return render(
        request,
        "auth/login.html",
        {"next": next, "errors": {"form": message}, "username": username},
        status_code=429 if result.status is LoginStatus.THROTTLED else 401,
    )


@router.post("/login/code", include_in_schema=False)
def login_code(
    request: Request,
    ctx: Ctx,
    code: Annotated[str, Form(max_length=20)] = "",
    next: Next = "/",
) -> Response:
    _ = _gettext(request)
    code = code.replace(" ", "")
    if not (code.isascii() and code.isdigit() and len(code) == 6):
        return render(
            request,
            "auth/totp.html",
            {"next": next, "errors": {"code": _("The code is the 6 digits your app shows.")}},
            status_code=422,
        )
    browser = guard.sid(request)
    result = logged_in = again = None
    with ctx.db.session() as session:
        pending = login_challenges.spend(session, request.cookies.get(PENDING), browser)
        if pending is not None:
            result = users.second_factor(session, pending.user, code, throttle=_throttle(request))
            if result.ok and result.user is not None:
                logged_in = _open_session(request, session, result.user)
            elif not result.ok:
                again = login_challenges.retry(session, pending, browser)
    if result is None:
        response = guard.redirect(
            request,
            "/login",
            _("The login took too long or was already used; enter your password again."),
            "error",
        )
        response.delete_cookie(PENDING, path="/")
        return response
    if logged_in is not None:
        return _logged_in(request, logged_in, next)
    try:
        result.raise_for_status()
    except KysoError as exc:
        message = exc.message(guard.language(request))
    if again is None:
        response = guard.redirect(
            request, "/login", _("Too many wrong codes; enter your password again."), "error"
        )
        response.delete_cookie(PENDING, path="/")
        return response
    response = render(
        request, "auth/totp.html", {"next": next, "errors": {"code": message}}, status_code=401
    )
    _challenge_cookie(request, response, again)
    return response


@router.post("/logout", include_in_schema=False)
def logout(request: Request, ctx: Ctx) -> Response:
    with ctx.db.session() as session:
        sessions.end(session, request.cookies.get(guard.SID))
    request.state.viewer = None
    request.state.sid = guard.secrets.token_urlsafe(32)
    _ = _gettext(request)
    return guard.redirect(request, "/login", _("You have logged out."))


@router.get("/account/password", include_in_schema=False)
def password_page(request: Request, viewer: SignedIn) -> Response:
    return render(request, "auth/password.html", {"errors": {}})


@router.post("/account/password", include_in_schema=False)
def change_password(
    request: Request,
    ctx: Ctx,
    viewer: SignedIn,
    current: Annotated[str, Form(max_length=1000)] = "",
    new: Annotated[str, Form(max_length=1000)] = "",
    again: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    _ = _gettext(request)
    errors: dict[str, str] = {}
    if not current:
        errors["current"] = _("Enter your current password.")
    if not new:
        errors["new"] = _("Enter a new password.")
    elif new != again:
        errors["again"] = _("The two new passwords differ.")
    throttle = _throttle(request)
    if not errors:
        try:
            with ctx.db.session() as session:
                users.change_password(viewer.principal, session, current, new, throttle=throttle)
                sessions.end_others(session, viewer.user.id, request.cookies.get(guard.SID))
        except FieldErrors as exc:
            errors["new"] = "; ".join(
                p.vi if guard.language(request) == "vi" else p.en for p in exc.problems
            )
        except KysoError as exc:
            field = "current" if exc.code in ("forbidden", "rate_limited") else "new"
            errors[field] = exc.message(guard.language(request))
            if exc.code == "forbidden":
                with ctx.db.session() as session:
                    users.count_wrong_password(session, viewer.user.id, throttle=throttle)
    if errors:
        return render(request, "auth/password.html", {"errors": errors}, status_code=422)
    return guard.redirect(request, "/", _("Your password has been changed."))


@router.get("/lang/{code}", include_in_schema=False)
def switch_language(
    request: Request,
    code: Annotated[str, Path(pattern="^(vi|en)$")],
    next: str = Query("/", max_length=500),
) -> Response:
    response = guard.redirect(request, guard.safe_next(next))
    guard.set_cookie(request, response, guard.LANG, code, max_age=365 * 24 * 3600)
    return response
