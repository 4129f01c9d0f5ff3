"""Pages: key devices (USB tokens, HSM slots) — the inventory, one device's story, hand-over
with printable minutes (biên bản bàn giao, form 07 of Decree 68/2024/NĐ-CP), PIN changes and
"report lost" as one action.

Every change goes through :mod:`kyso.registry.devices` (and a lost report through
:func:`kyso.lifecycle.lost.report_lost`, the same call as ``POST /api/v1/devices/{id}/lost``),
which check the viewer's rights; the pages only hide the buttons a viewer cannot use.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time
from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import Response

from kyso import clock
from kyso.errors import Conflict, KysoError, NotFound
from kyso.lifecycle import lost
from kyso.registry import devices, minutes, organizations
from kyso.registry import fields as f
from kyso.registry.access import Action
from kyso.registry.inventory import Filters, inventory, recipients
from kyso.registry.sessions import Viewer
from kyso.store.models import CertStatus, DeviceKind, DeviceStatus, KeyDevice
from kyso.web.downloads import content_disposition
from kyso.web.ui import guard
from kyso.web.ui.guard import Ctx, SignedIn
from kyso.web.ui.templating import render

router = APIRouter(dependencies=[Depends(guard.ui_request)])

# Only to show the form; adding checks the right again (and the unit) in the registry.
DeviceWriter = Annotated[Viewer, guard.allowed(Action.DEVICE_WRITE)]

PEOPLE_SHOWN = 200  # people offered in the hand-over list; a search narrows it
_PUBLIC_ID = re.compile(r"[A-Za-z0-9_-]{1,40}")

# Form values are checked by the services (length, control characters); these bounds only keep
# a hostile body from being read into memory whole.
Short = Annotated[str, Form(max_length=1000)]
Long = Annotated[str, Form(max_length=10000)]
Filter = Annotated[str, Query(max_length=200)]


def _check_id(public_id: str, handover: bool = False) -> str:
    """Ids in URLs are opaque and URL-safe; anything else cannot exist (a 404, not a 422)."""
    if not _PUBLIC_ID.fullmatch(public_id):
        shown = public_id[:40]
        if handover:
            raise NotFound(f"hand-over {shown!r}", vi=f"biên bản {shown!r}")
        raise NotFound(f"key device {shown!r}", vi=f"thiết bị {shown!r}")
    return public_id


def _clean_text(value: str | None) -> str | None:
    """A search word as typed, or None when it holds characters no serial or name has
    (PostgreSQL refuses NUL in text)."""
    if value is None or not value.strip():
        return None
    try:
        return f.text("q", value, max_length=200)
    except f.FieldProblem:
        return None


_CN = re.compile(r"(?:^|,)CN=((?:[^,\\]|\\.)+)")


def _common_name(subject: str) -> str:
    """The name a person reads in a certificate's subject (its CN), else the whole subject."""
    found = _CN.search(subject)
    return found.group(1).replace("\\", "") if found else subject


def _errors(exc: KysoError, lang: str, default_field: str = "form") -> dict[str, str]:
    """A service's refusal as messages next to the fields it names."""
    if isinstance(exc, f.FieldErrors):
        errors: dict[str, str] = {}
        for problem in exc.problems:
            errors.setdefault(problem.field, problem.vi if lang == "vi" else problem.en)
        return errors
    return {default_field: exc.message(lang)}


# -- the inventory ------------------------------------------------------------------------------
def _enum_or_none(kind: type[Any], value: str | None) -> Any:
    try:
        return kind(value) if value else None
    except ValueError:
        return None  # an unknown filter value from an old link: show everything


@router.get("/devices", include_in_schema=False)
def device_list(
    request: Request,
    ctx: Ctx,
    viewer: SignedIn,
    status: Filter = "",
    kind: Filter = "",
    unit: Filter = "",
    q: Filter = "",
    pin_overdue: Filter = "",
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> Response:
    principal = viewer.principal
    filters = Filters(
        status=_enum_or_none(DeviceStatus, status),
        kind=_enum_or_none(DeviceKind, kind),
        unit=unit if unit and _PUBLIC_ID.fullmatch(unit) else None,
        q=_clean_text(q),
        pin_overdue=pin_overdue in ("1", "true", "on"),
    )
    with ctx.db.read() as session:
        units = organizations.choices_in_view(principal, session)
        try:
            found = inventory(
                principal, session, filters, pin_days=ctx.settings.pin_change_days, offset=offset
            )
        except NotFound:  # a unit that is gone (or never was): the unfiltered list
            filters = Filters(filters.status, filters.kind, None, filters.q, filters.pin_overdue)
            found = inventory(
                principal, session, filters, pin_days=ctx.settings.pin_change_days, offset=offset
            )
    return render(
        request,
        "devices/list.html",
        {
            "found": found,
            "filters": filters,
            "units": units,
            "pin_days": ctx.settings.pin_change_days,
            "now": clock.now(),
        },
    )


# -- adding a device ------------------------------------------------------------------------------
def _new_form(
    request: Request,
    ctx: Ctx,
    viewer: Viewer,
    form: dict[str, str],
    errors: dict[str, str],
    status_code: int = 200,
) -> Response:
    with ctx.db.read() as session:
        units = organizations.choices_in_view(viewer.principal, session)
    return render(
        request,
        "devices/new.html",
        {
            "form": form,
            "errors": errors,
            "units": units,
            "province_stock": viewer.principal.province_wide,
        },
        status_code=status_code,
    )


@router.get("/devices/new", include_in_schema=False)
def new_device_page(request: Request, ctx: Ctx, viewer: DeviceWriter) -> Response:
    with ctx.db.read() as session:
        unit = devices.home_unit(viewer.principal, session)
    default_unit = unit.public_id if unit else ""
    form = {"serial": "", "model": "", "kind": DeviceKind.USB_TOKEN.value, "unit": default_unit}
    return _new_form(request, ctx, viewer, form, {})


@router.post("/devices/new", include_in_schema=False)
def new_device(
    request: Request,
    ctx: Ctx,
    viewer: SignedIn,
    serial: Short = "",
    model: Short = "",
    kind: Short = DeviceKind.USB_TOKEN.value,
    unit: Short = "",
) -> Response:
    _ = guard.environment_gettext(request)
    lang = guard.language(request)
    form = {"serial": serial, "model": model, "kind": kind, "unit": unit}
    try:
        with ctx.db.session() as session:
            device = devices.add(
                viewer.principal,
                session,
                devices.DeviceInput(
                    serial=serial,
                    model=model,
                    # as typed: the registry refuses an unknown kind next to the field
                    kind=cast(DeviceKind, kind or DeviceKind.USB_TOKEN.value),
                    unit=unit or None,
                ),
            )
            public_id, added = device.public_id, device.serial
    except f.FieldErrors as exc:
        return _new_form(request, ctx, viewer, form, _errors(exc, lang), 422)
    except Conflict as exc:  # the serial is in the inventory already
        return _new_form(request, ctx, viewer, form, _errors(exc, lang, "serial"), 422)
    except NotFound as exc:  # the unit chosen is gone
        return _new_form(request, ctx, viewer, form, _errors(exc, lang, "unit"), 422)
    return guard.redirect(
        request,
        f"/devices/{public_id}",
        _("Device %(serial)s added to the inventory.") % {"serial": added},
    )


# -- one device -----------------------------------------------------------------------------------
def _status_choices(device: KeyDevice, _: Any) -> list[tuple[str, str]]:
    """The plain status changes open to the device now (hand-over, return and loss have
    their own forms), as (value, plain words)."""
    names = {
        DeviceStatus.ISSUED: _("Restored for the same holder (form 06)"),
        DeviceStatus.LOCKED: _("Locked (PIN tries used up)"),
        DeviceStatus.IN_STOCK: _("Back in stock"),
        DeviceStatus.DESTROYED: _("Destroyed"),
    }
    allowed = devices.TRANSITIONS[device.status]
    wanted = [DeviceStatus.LOCKED, DeviceStatus.IN_STOCK, DeviceStatus.DESTROYED]
    if device.status is DeviceStatus.LOCKED:
        wanted.insert(0, DeviceStatus.ISSUED)
    return [(s.value, names[s]) for s in wanted if s in allowed]


def _detail(
    request: Request,
    ctx: Ctx,
    viewer: Viewer,
    public_id: str,
    *,
    errors: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
    status_code: int = 200,
    minutes_for: str | None = None,
) -> Response:
    now = clock.now()
    with ctx.db.read() as session:
        shown = devices.detail(
            viewer.principal,
            session,
            _check_id(public_id),
            pin_days=ctx.settings.pin_change_days,
            now=now,
        )
    device, certificates = shown.device, shown.certificates
    fresh = next((h for h in shown.history if h.public_id == minutes_for), None)
    return render(
        request,
        "devices/detail.html",
        {
            "device": device,
            "unit": shown.unit,
            "holder": shown.holder,
            "holder_unit": shown.holder_unit,
            "certificates": [(c, _common_name(c.subject)) for c in certificates],
            "history": list(reversed(shown.history)),
            "fresh": fresh,
            "pin_since": shown.pin_since,
            "pin_overdue": shown.pin_overdue,
            "pin_days": ctx.settings.pin_change_days,
            "status_choices": _status_choices(device, guard.environment_gettext(request)),
            "errors": errors or {},
            "form": form or {},
            "today": clock.local(now).date().isoformat(),
            "live": [c for c in certificates if c.status is not CertStatus.REVOKED],
        },
        status_code=status_code,
    )


@router.get("/my-devices", include_in_schema=False)
def my_devices(request: Request, ctx: Ctx, viewer: SignedIn) -> Response:
    """The devices the viewer holds, each with the one action a holder needs: report it lost.
    Signers have no view of the inventory; this is their part of it."""
    with ctx.db.read() as session:
        held = devices.held_by(viewer.principal, session)
        rows = []
        for device in held:
            certificates = devices.certificates(session, device)
            rows.append(
                (
                    device,
                    [
                        (c, _common_name(c.subject))
                        for c in certificates
                        if c.status is not CertStatus.REVOKED
                    ],
                )
            )
    return render(request, "devices/mine.html", {"rows": rows})


@router.get("/devices/{public_id}", include_in_schema=False)
def device_page(
    request: Request,
    ctx: Ctx,
    viewer: SignedIn,
    public_id: str,
    minutes: Annotated[str, Query(max_length=40)] = "",
) -> Response:
    return _detail(request, ctx, viewer, public_id, minutes_for=minutes or None)


def _refused(
    request: Request,
    ctx: Ctx,
    viewer: Viewer,
    public_id: str,
    exc: KysoError,
    form: dict[str, str],
) -> Response:
    """The device page again, with the service's reason next to the form that failed.
    Being outside one's rights is not a form error: the error page says so."""
    if exc.http_status in (401, 403, 404) and not isinstance(exc, f.FieldErrors):
        raise exc
    status = 422 if isinstance(exc, f.FieldErrors) or exc.http_status == 422 else exc.http_status
    # Field problems go next to their field; a refusal about the device's state (already
    # lost, not with a holder …) at the top of the page, where every form can see it.
    errors = _errors(exc, guard.language(request))
    return _detail(request, ctx, viewer, public_id, errors=errors, form=form, status_code=status)


@router.post("/devices/{public_id}/return", include_in_schema=False)
def take_back(
    request: Request,
    ctx: Ctx,
    viewer: SignedIn,
    public_id: str,
    received_by: Short = "",
    return_note: Long = "",
) -> Response:
    _ = guard.environment_gettext(request)
    form = {"received_by": received_by, "return_note": return_note}
    try:
        with ctx.db.session() as session:
            record = devices.take_back(
                viewer.principal,
                session,
                _check_id(public_id),
                received_by=received_by or None,
                note=return_note or None,
            )
            reference = record.public_id
    except KysoError as exc:
        if isinstance(exc, f.FieldErrors):
            exc = f.invalid(
                [
                    f.FieldProblem("return_note", p.en, p.vi) if p.field == "note" else p
                    for p in exc.problems
                ]
            )
        return _refused(request, ctx, viewer, public_id, exc, form)
    return guard.redirect(
        request,
        f"/devices/{public_id}?minutes={reference}#minutes",
        _("The device was taken back. Print the minutes and have both sides sign them."),
    )


def _pin_moment(day: str) -> datetime | None:
    """A date from the form as a moment: now when it is today, else that day's start in
    Vietnam (kyso keeps when, never the PIN)."""
    if not day:
        return None
    try:
        chosen = date.fromisoformat(day)
    except ValueError:
        raise f.invalid(
            [f.FieldProblem("at", "is not a date (dd/mm/yyyy)", "không phải ngày (dd/mm/yyyy)")]
        ) from None
    now = clock.now()
    if chosen == clock.local(now).date():
        return now
    return datetime.combine(chosen, time(0, 0), tzinfo=clock.VIETNAM)


@router.post("/devices/{public_id}/pin", include_in_schema=False)
def pin_change(
    request: Request, ctx: Ctx, viewer: SignedIn, public_id: str, at: Short = ""
) -> Response:
    _ = guard.environment_gettext(request)
    try:
        moment = _pin_moment(at.strip())
        with ctx.db.session() as session:
            devices.record_pin_change(viewer.principal, session, _check_id(public_id), at=moment)
    except KysoError as exc:
        return _refused(request, ctx, viewer, public_id, exc, {"at": at})
    return guard.redirect(request, f"/devices/{public_id}", _("PIN change recorded."))


@router.post("/devices/{public_id}/status", include_in_schema=False)
def change_status(
    request: Request,
    ctx: Ctx,
    viewer: SignedIn,
    public_id: str,
    status: Short = "",
    status_note: Long = "",
) -> Response:
    _ = guard.environment_gettext(request)
    form = {"status": status, "status_note": status_note}
    try:
        try:
            target = DeviceStatus(status)
        except ValueError:
            raise f.invalid(
                [f.FieldProblem("status", "choose a new status", "hãy chọn trạng thái mới")]
            ) from None
        cleaned = f.text("status_note", status_note, max_length=2000)
        with ctx.db.session() as session:
            devices.set_status(
                viewer.principal, session, _check_id(public_id), target, note=cleaned
            )
    except f.FieldProblem as problem:
        return _refused(request, ctx, viewer, public_id, f.invalid([problem]), form)
    except KysoError as exc:
        return _refused(request, ctx, viewer, public_id, exc, form)
    return guard.redirect(request, f"/devices/{public_id}", _("Device status changed."))


@router.post("/devices/{public_id}/lost", include_in_schema=False)
def report_lost(
    request: Request, ctx: Ctx, viewer: SignedIn, public_id: str, lost_note: Long = ""
) -> Response:
    """The one action of a lost token: the device is lost, every certificate on it revoked for
    keyCompromise and a re-issue draft opened for each subscriber, in one transaction."""
    _ = guard.environment_gettext(request)
    try:
        cleaned = f.text("lost_note", lost_note, max_length=2000)
        with ctx.db.session() as session:
            report = lost.report_lost(
                viewer.principal, session, ctx.authority, _check_id(public_id), note=cleaned
            )
    except f.FieldProblem as problem:
        if not viewer.principal.can(Action.DEVICE_READ):
            return guard.redirect(
                request,
                "/my-devices",
                problem.vi if guard.language(request) == "vi" else problem.en,
                "error",
            )
        return _refused(
            request, ctx, viewer, public_id, f.invalid([problem]), {"lost_note": lost_note}
        )
    except KysoError as exc:
        if not viewer.principal.can(Action.DEVICE_READ) and exc.http_status not in (403, 404):
            return guard.redirect(
                request, "/my-devices", exc.message(guard.language(request)), "error"
            )
        return _refused(request, ctx, viewer, public_id, exc, {"lost_note": lost_note})
    message = _(
        "Device %(serial)s recorded as lost: %(revoked)s certificate(s) revoked, "
        "%(drafts)s re-issue request(s) opened as drafts."
    ) % {"serial": report.serial, "revoked": len(report.revoked), "drafts": len(report.drafts)}
    # A holder without the inventory (a signer) goes back to their own devices.
    back = f"/devices/{public_id}" if viewer.principal.can(Action.DEVICE_READ) else "/my-devices"
    return guard.redirect(request, back, message, "warn")


# -- hand-over ------------------------------------------------------------------------------------
def _handover_form(
    request: Request,
    ctx: Ctx,
    viewer: Viewer,
    public_id: str,
    q: str | None,
    form: dict[str, str],
    errors: dict[str, str],
    status_code: int = 200,
) -> Response:
    with ctx.db.read() as session:
        # The people of the device's unit first; a search looks everywhere in view; what was
        # chosen before a refused post stays on the list.
        found = recipients(
            viewer.principal,
            session,
            _check_id(public_id),
            q=q,
            keep=form.get("person") or None,
            limit=PEOPLE_SHOWN,
        )
    choices = [
        (p.public_id, " — ".join(part for part in (p.full_name, p.position, unit_name) if part))
        for p, unit_name in found.people
    ]
    return render(
        request,
        "devices/handover.html",
        {
            "device": found.device,
            "unit": found.unit,
            "choices": choices,
            "total": found.total,
            "q": q or "",
            "form": form,
            "errors": errors,
        },
        status_code=status_code,
    )


@router.get("/devices/{public_id}/handover", include_in_schema=False)
def handover_page(
    request: Request, ctx: Ctx, viewer: SignedIn, public_id: str, q: Filter = ""
) -> Response:
    return _handover_form(request, ctx, viewer, public_id, _clean_text(q), {}, {})


@router.post("/devices/{public_id}/handover", include_in_schema=False)
def handover(
    request: Request,
    ctx: Ctx,
    viewer: SignedIn,
    public_id: str,
    person: Short = "",
    from_name: Short = "",
    note: Long = "",
) -> Response:
    _ = guard.environment_gettext(request)
    lang = guard.language(request)
    form = {"person": person, "from_name": from_name, "note": note}
    _check_id(public_id)
    if not person or not _PUBLIC_ID.fullmatch(person):
        errors = {"person": _("Choose the person who receives the device.")}
        return _handover_form(request, ctx, viewer, public_id, None, form, errors, 422)
    with ctx.db.read() as session:
        devices.get(viewer.principal, session, public_id)  # outside one's view: the error page
    try:
        with ctx.db.session() as session:
            record = devices.handover(
                viewer.principal,
                session,
                public_id,
                person,
                from_name=from_name or None,
                note=note or None,
            )
            reference = record.public_id
    except KysoError as exc:
        if exc.http_status == 403 and not isinstance(exc, f.FieldErrors):
            errors = {"person": exc.message(lang)}  # a person outside one's units
            status = 403
        elif isinstance(exc, NotFound):
            errors = {"person": exc.message(lang)}
            status = 422
        else:
            errors = _errors(exc, lang)
            status = 422 if isinstance(exc, f.FieldErrors) else exc.http_status
        return _handover_form(request, ctx, viewer, public_id, None, form, errors, status)
    return guard.redirect(
        request,
        f"/devices/{public_id}?minutes={reference}#minutes",
        _("Hand-over recorded. Print the minutes and have both sides sign them."),
    )


@router.get("/devices/handovers/{handover_id}/minutes.pdf", include_in_schema=False)
def minutes_pdf(request: Request, ctx: Ctx, viewer: SignedIn, handover_id: str) -> Response:
    """The printable minutes (biên bản bàn giao) of one hand-over or return."""
    _check_id(handover_id, handover=True)
    with ctx.db.read() as session:
        pdf = minutes.handover_pdf(viewer.principal, session, handover_id)
    response = Response(
        pdf,
        media_type="application/pdf",
        headers={
            "content-disposition": content_disposition(
                f"bien-ban-ban-giao-{handover_id}.pdf", "inline"
            )
        },
    )
    guard.finish(request, response)
    return response
