"""The signer's phone (/m): pending signature requests and their approval, enrolling this
phone, my phones. An installable web app (manifest, service worker for Web Push), 390 px
first, Vietnamese first.

Pages answer in HTML and their forms work without a script (PIN + OTP, refusing,
revoking); the fingerprint/face steps and the list's refresh go through small JSON routes
under /m/api, which answer errors in JSON and check the CSRF token from the
``X-CSRF-Token`` header like any form. Every rule is in :mod:`kyso.remote.approvals`,
:mod:`kyso.remote.enrolment`, :mod:`kyso.remote.webauthn` and :mod:`kyso.remote.push`.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import segno
from fastapi import APIRouter, Body, Depends, Form, Query, Request
from fastapi.responses import JSONResponse, Response
from markupsafe import Markup

from kyso import clock
from kyso.errors import KysoError
from kyso.registry import users
from kyso.remote import approvals, enrolment, factors, push, webauthn
from kyso.remote.enrolment import Reauthentication
from kyso.store.models import AuthenticatorKind, SignApproval
from kyso.web.deps import context
from kyso.web.ratelimit import client_address, limiter
from kyso.web.ui import guard
from kyso.web.ui.guard import Ctx, SignedIn
from kyso.web.ui.templating import render

STATIC = Path(__file__).resolve().parent.parent / "static" / "phone"
SCOPE = "/m"


async def json_request(request: Request) -> None:
    """The page checks (CSRF on every unsafe method), with errors answered in JSON."""
    try:
        await guard.ui_request(request)
    finally:
        request.state.ui = False  # a refusal too is answered in JSON


router = APIRouter(dependencies=[Depends(guard.ui_request)])
api = APIRouter(prefix="/m/api", dependencies=[Depends(json_request)])

Pin = Annotated[str, Form(max_length=20)]
Code = Annotated[str, Form(max_length=20)]
Reason = Annotated[str, Form(max_length=1000)]
Password = Annotated[str, Form(max_length=1000)]
Json = Annotated[dict[str, Any], Body()]


def _throttle(request: Request) -> users.Throttle | None:
    found = limiter(request)
    return users.Throttle(client_address(request.scope), found.budgets) if found else None


def _seconds_left(approval: SignApproval) -> int:
    return max(0, int((approval.expires_at - clock.now()) / timedelta(seconds=1)))


def _view(ctx: Any, session: Any, approval: SignApproval, with_phone: bool) -> dict[str, Any]:
    return {
        "id": approval.public_id,
        "requester": approval.requester_name,
        "description": approval.description,
        "items": [{"title": i.title, "number": i.number} for i in approval.items],
        "count": len(approval.items),
        "seconds_left": _seconds_left(approval),
        "options": (
            webauthn.approval_options(ctx.settings, session, approval) if with_phone else None
        ),
    }


def _pending(request: Request, viewer: Any) -> tuple[list[dict[str, Any]], Any]:
    ctx = context(request)
    with ctx.db.read() as session:
        status = enrolment.status(ctx, viewer.principal, session)
        found = approvals.pending(viewer.principal, session)
        return [_view(ctx, session, a, status.phones > 0) for a in found], status


# -- pages -------------------------------------------------------------------------------------
@router.get("/m", include_in_schema=False)
def phone_home(request: Request, viewer: SignedIn) -> Response:
    pending, status = _pending(request, viewer)
    return render(request, "phone/index.html", {"pending": pending, "status": status})


@router.get("/m/list", include_in_schema=False)
def phone_list(request: Request, viewer: SignedIn) -> Response:
    """The list alone, swapped in by phone.js when the poll or a push says it changed."""
    pending, status = _pending(request, viewer)
    return render(request, "phone/_list.html", {"pending": pending, "status": status})


def _back(request: Request, message: str, kind: str = "ok", to: str = SCOPE) -> Response:
    return guard.redirect(request, to, message, kind)


@router.post("/m/approvals/{public_id}/pin", include_in_schema=False)
def approve_with_pin(
    request: Request, ctx: Ctx, viewer: SignedIn, public_id: str, pin: Pin = "", code: Code = ""
) -> Response:
    _ = guard.environment_gettext(request)
    try:
        approvals.approve(
            ctx, viewer.principal, public_id, factors.PinAndCode(pin.strip(), code.strip())
        )
    except KysoError as exc:
        return _back(request, exc.message(guard.language(request)), "error")
    return _back(request, _("Confirmed: the documents are being signed."))


@router.post("/m/approvals/{public_id}/refuse", include_in_schema=False)
def refuse(
    request: Request, ctx: Ctx, viewer: SignedIn, public_id: str, reason: Reason = ""
) -> Response:
    _ = guard.environment_gettext(request)
    try:
        with ctx.db.session() as session:
            approvals.refuse(viewer.principal, session, public_id, reason or None)
    except KysoError as exc:
        return _back(request, exc.message(guard.language(request)), "error")
    return _back(request, _("Refused: the request will not be signed."))


@router.get("/m/enrol", include_in_schema=False)
def enrol_page(request: Request, ctx: Ctx, viewer: SignedIn) -> Response:
    with ctx.db.read() as session:
        status = enrolment.status(ctx, viewer.principal, session)
    name = enrolment.default_name(viewer.user, request.headers.get("user-agent"))
    return render(
        request, "phone/enrol.html", {"status": status, "name": name, "errors": {}, "setup": None}
    )


@router.post("/m/enrol/pin", include_in_schema=False)
def enrol_pin(
    request: Request,
    ctx: Ctx,
    viewer: SignedIn,
    password: Password = "",
    code: Code = "",
    pin: Pin = "",
    pin_again: Pin = "",
) -> Response:
    _ = guard.environment_gettext(request)
    errors: dict[str, str] = {}
    setup = None
    if pin.strip() != pin_again.strip():
        errors["pin_again"] = _("The two PINs differ.")
    else:
        try:
            setup = enrolment.set_pin(
                ctx,
                viewer.principal,
                Reauthentication(password, code),
                pin.strip(),
                name=_("PIN + OTP code"),
                throttle=_throttle(request),
            )
        except KysoError as exc:
            errors["pin_form"] = exc.message(guard.language(request))
    with ctx.db.read() as session:
        status = enrolment.status(ctx, viewer.principal, session)
    qr = None
    if setup is not None and setup.totp_uri:
        qr = Markup(segno.make(setup.totp_uri, error="m").svg_inline(scale=4, border=2))  # noqa: S704
    return render(
        request,
        "phone/enrol.html",
        {
            "status": status,
            "name": enrolment.default_name(viewer.user, request.headers.get("user-agent")),
            "errors": errors,
            "setup": setup,
            "qr": qr,
        },
        status_code=422 if errors else 200,
    )


@router.get("/m/devices", include_in_schema=False)
def devices(
    request: Request, ctx: Ctx, viewer: SignedIn, user: Annotated[str, Query(max_length=40)] = ""
) -> Response:
    """My phones; with ``?user=``, a user's phones for their unit officer (a lost phone)."""
    owner = None
    with ctx.db.read() as session:
        status = enrolment.status(ctx, viewer.principal, session)
        if user and user != viewer.user.public_id:
            owner, found = enrolment.of_user(viewer.principal, session, user)
        else:
            found = enrolment.mine(viewer.principal, session)
    return render(
        request,
        "phone/devices.html",
        {
            "devices": found,
            "owner": owner,
            "status": status,
            "back": f"/m/devices?user={owner.public_id}" if owner else "/m/devices",
            "webauthn_kind": AuthenticatorKind.WEBAUTHN,
        },
    )


@router.post("/m/devices/{public_id}/revoke", include_in_schema=False)
def revoke(
    request: Request,
    ctx: Ctx,
    viewer: SignedIn,
    public_id: str,
    reason: Reason = "",
    back: Annotated[str, Form(max_length=100)] = "/m/devices",
) -> Response:
    _ = guard.environment_gettext(request)
    back = guard.safe_next(back, "/m/devices")
    try:
        with ctx.db.session() as session:
            enrolment.revoke(
                viewer.principal,
                session,
                public_id,
                reason=reason or None,
                keep_session=request.cookies.get(guard.SID),
            )
    except KysoError as exc:
        return _back(request, exc.message(guard.language(request)), "error", back)
    return _back(request, _("Revoked: it can no longer approve signatures."), "ok", back)


@router.get("/m/sw.js", include_in_schema=False)
def service_worker() -> Response:
    """Served under /m so that it may control /m (W3C Service Workers §4.2 scope): the
    header lets it claim /m itself, not only what lies below /m/."""
    return Response(
        (STATIC / "sw.js").read_bytes(),
        media_type="text/javascript",
        headers={
            "service-worker-allowed": SCOPE,
            "cache-control": "no-cache",
            "x-content-type-options": "nosniff",
        },
    )


# -- JSON for phone.js -------------------------------------------------------------------------
@api.get("/pending")
def pending_json(request: Request, viewer: SignedIn) -> dict[str, Any]:
    pending, status = _pending(request, viewer)
    return {
        "approvals": [{k: v for k, v in a.items() if k != "options"} for a in pending],
        "documents": sum(a["count"] for a in pending),
        "phones": status.phones,
    }


@api.post("/approvals/{public_id}/webauthn")
def approve_with_phone(ctx: Ctx, viewer: SignedIn, public_id: str, body: Json) -> dict[str, Any]:
    done = approvals.approve(ctx, viewer.principal, public_id, body.get("credential"))
    return {"id": done.public_id, "state": done.state.value}


@api.post("/enrol/options")
def enrol_options(request: Request, ctx: Ctx, viewer: SignedIn, body: Json) -> dict[str, Any]:
    again = Reauthentication(str(body.get("password") or ""), str(body.get("code") or ""))
    return enrolment.begin_phone(ctx, viewer.principal, again, throttle=_throttle(request))


@api.post("/enrol")
def enrol_finish(ctx: Ctx, viewer: SignedIn, body: Json) -> dict[str, Any]:
    device = enrolment.finish_phone(
        ctx, viewer.principal, body.get("credential"), name=str(body.get("name") or "")
    )
    return {"id": device.public_id, "name": device.name}


@api.get("/push/key")
def push_key(ctx: Ctx, viewer: SignedIn) -> dict[str, str]:
    return {"key": push.application_server_key(ctx.settings)}


@api.post("/push/subscribe")
def push_subscribe(ctx: Ctx, viewer: SignedIn, body: Json) -> JSONResponse:
    with ctx.db.session() as session:
        push.subscribe(ctx.settings, viewer.principal, session, body)
    return JSONResponse({"ok": True}, status_code=201)


@api.post("/push/unsubscribe")
def push_unsubscribe(ctx: Ctx, viewer: SignedIn, body: Json) -> dict[str, bool]:
    with ctx.db.session() as session:
        push.unsubscribe(viewer.principal, session, str(body.get("endpoint") or ""))
    return {"ok": True}
