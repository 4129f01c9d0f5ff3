"""Pages: certificate requests (the six forms of Decree 68/2024, drafts, submission, history),
bulk XLSX lists with their jobs, and the province's approval queue.

Routes only translate between the browser and :mod:`kyso.lifecycle`, which checks every
right itself (``viewer.principal``); a page merely hides the buttons its viewer cannot use.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, cast

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from fastapi import APIRouter, BackgroundTasks, Depends, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile

from kyso import clock
from kyso.context import Context
from kyso.errors import Forbidden, KysoError, NotFound
from kyso.lifecycle import bulk, workflow
from kyso.lifecycle.forms import ISSUING_TYPES, REVOCATION_REASONS, ChangeKind, KeySource
from kyso.registry import organizations
from kyso.registry.access import Action, Principal
from kyso.registry.fields import FieldErrors
from kyso.registry.sessions import Viewer
from kyso.store.models import JobState, RequestState, RequestType
from kyso.web.api_documents import read_upload
from kyso.web.downloads import content_disposition
from kyso.web.ui import guard
from kyso.web.ui.guard import Ctx, SignedIn
from kyso.web.ui.labels import N_
from kyso.web.ui.templating import render

router = APIRouter(dependencies=[Depends(guard.ui_request)])
Decider = Annotated[Viewer, guard.allowed(Action.REQUEST_DECIDE)]

PAGE = 50


def _checked_id(value: str, what: str) -> str:
    """An id from the address: anything but a plausible public id is simply not found."""
    if not (0 < len(value) <= 40 and value.isascii() and value.isalnum()):
        raise NotFound(f"{what} {value[:40]!r}", vi=f"{what} {value[:40]!r}")
    return value


def _request_id(public_id: Annotated[str, PathParam(max_length=200)]) -> str:
    return _checked_id(public_id, "request")


def _job_id(job_id: Annotated[str, PathParam(max_length=200)]) -> str:
    return _checked_id(job_id, "job")


PublicId = Annotated[str, Depends(_request_id)]
JobId = Annotated[str, Depends(_job_id)]

# The forms by their number on the Decree's annex (01 … 06) and by their stored code.
NUMBERS: dict[RequestType, str] = {
    RequestType.NEW_INDIVIDUAL: "01",
    RequestType.NEW_ORGANIZATION: "02",
    RequestType.DEVICE_SERVICE: "03",
    RequestType.RENEWAL_CHANGE: "04",
    RequestType.REVOCATION: "05",
    RequestType.DEVICE_UNLOCK: "06",
}

PURPOSES: dict[RequestType, str] = {
    RequestType.NEW_INDIVIDUAL: N_("A certificate for a person: a leader, an official who signs."),
    RequestType.NEW_ORGANIZATION: N_(
        "A certificate for an agency or organization: its seal, kept by the records clerk."
    ),
    RequestType.DEVICE_SERVICE: N_(
        "A certificate for a device, a service or a piece of software (a server that signs)."
    ),
    RequestType.RENEWAL_CHANGE: N_(
        "Renew a certificate before it expires, or change the information it carries."
    ),
    RequestType.REVOCATION: N_("Revoke a certificate that must no longer be used."),
    RequestType.DEVICE_UNLOCK: N_("Restore a key device locked after too many wrong PINs."),
}


# -- the forms' fields, with the official form's words ----------------------------------------
@dataclass(frozen=True)
class Field:
    name: str  # the form key (kyso.lifecycle.forms); nested ones as "individual.full_name"
    label: str  # English msgid; the Vietnamese catalog holds the form's own words
    kind: str = "text"
    required: bool = False
    choices: str | None = None  # "change_kind" | "revocation_reason"
    hint: str = ""
    attrs: str = ""


FROM_REGISTRY = N_("Left empty: taken from the unit chosen above.")


def _individual(prefix: str = "", required: bool = True) -> list[Field]:
    p = prefix
    return [
        Field(p + "full_name", N_("Full name"), required=required, attrs='autocomplete="name"'),
        Field(p + "date_of_birth", N_("Date of birth"), "date", required),
        Field(
            p + "id_number",
            N_("Citizen identity number (CCCD)"),
            required=required,
            hint=N_("12 digits"),
            attrs='inputmode="numeric"',
        ),
        Field(p + "id_issue_date", N_("Date of issue"), "date", required),
        Field(p + "id_issue_place", N_("Place of issue"), required=required),
        Field(p + "email", N_("Official e-mail"), "email", required),
        Field(p + "organization", N_("Agency or unit"), hint=FROM_REGISTRY),
        Field(p + "province", N_("Province or city"), hint=FROM_REGISTRY),
        Field(p + "position", N_("Position"), required=required),
        Field(p + "mobile", N_("Mobile phone number"), "tel"),
        Field(p + "old_certificate", N_("Serial number of the old certificate")),
    ]


def _organization(prefix: str = "", required: bool = True) -> list[Field]:
    p = prefix
    return [
        Field(p + "name", N_("Name of the agency or organization"), hint=FROM_REGISTRY),
        Field(p + "address", N_("Address"), hint=FROM_REGISTRY),
        Field(p + "tax_code", N_("Tax code")),
        Field(p + "budget_code", N_("Budget relationship code")),
        Field(p + "province", N_("Province or city"), required=False),
        Field(p + "email", N_("Official e-mail"), "email", required=False),
        Field(p + "recipient_name", N_("Person who receives the token"), required=required),
        Field(p + "recipient_id_number", N_("Recipient's CCCD number")),
        Field(p + "recipient_position", N_("Recipient's position")),
        Field(p + "recipient_mobile", N_("Recipient's phone number"), "tel"),
        Field(p + "old_certificate", N_("Serial number of the old certificate")),
    ]


FIELDS: dict[RequestType, list[Field]] = {
    RequestType.NEW_INDIVIDUAL: _individual(),
    RequestType.NEW_ORGANIZATION: _organization(),
    RequestType.DEVICE_SERVICE: [
        Field("service_name", N_("Name of the device, service or software"), required=True),
        Field("host", N_("Domain name or address"), hint=N_("e.g. vanban.backan.gov.vn")),
        Field("organization", N_("Managing agency")),
        Field("province", N_("Province or city")),
        Field("email", N_("Contact e-mail"), "email", True),
        Field("responsible_name", N_("Person responsible"), required=True),
        Field("responsible_mobile", N_("Phone number of the person responsible"), "tel"),
    ],
    RequestType.RENEWAL_CHANGE: [
        Field(
            "kind",
            N_("Kind of request (renewal / change of information)"),
            "select",
            True,
            "change_kind",
        ),
        Field(
            "certificate_serial",
            N_("Certificate serial number"),
            required=True,
            hint=N_("As printed on the certificate, e.g. 54:01:2f:…"),
        ),
        Field("reason", N_("Reason"), "textarea"),
    ],
    RequestType.REVOCATION: [
        Field(
            "certificate_serial",
            N_("Certificate serial number"),
            required=True,
            hint=N_("As printed on the certificate, e.g. 54:01:2f:…"),
        ),
        Field("reason", N_("Reason for revocation"), "select", True, "revocation_reason"),
        Field("explanation", N_("Explanation"), "textarea", True),
    ],
    RequestType.DEVICE_UNLOCK: [
        Field("device_serial", N_("Serial number of the device"), required=True),
        Field("holder_name", N_("Holder of the device"), required=True),
        Field("reason", N_("Reason"), "textarea", True),
        Field("contact_mobile", N_("Contact phone number"), "tel"),
    ],
}
# Form 04: the information after a change, one group or the other.
NESTED: dict[str, tuple[str, list[Field]]] = {
    "individual": (
        N_("New information of the individual subscriber"),
        _individual("individual.", False),
    ),
    "organization": (
        N_("New information of the agency or organization"),
        _organization("organization.", False),
    ),
}
KEY_FIELDS = ("key_source", "csr", "csr_file", "device")


def _all_fields(request_type: RequestType) -> list[Field]:
    extra = [f for _, group in NESTED.values() for f in group]
    return FIELDS[request_type] + (extra if request_type is RequestType.RENEWAL_CHANGE else [])


def _type(value: str) -> RequestType:
    """A form by its code (new_individual) or its number (01, 1)."""
    for request_type, number in NUMBERS.items():
        if value in (request_type.value, number, number.lstrip("0")):
            return request_type
    raise NotFound(f"form {value}", vi=f"mẫu {value}")


def _enum(kind: Any, value: str | None) -> Any:
    """A filter's value, or None when absent or unknown (a bad query gives a clean page)."""
    if not value:
        return None
    try:
        return kind(value)
    except ValueError:
        return None


# -- reading a posted form ---------------------------------------------------------------------
def _text(form: FormData, name: str, limit: int = 2000) -> str:
    value = form.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""


def _posted_fields(
    request_type: RequestType, form: FormData
) -> tuple[dict[str, Any], dict[str, str]]:
    """The form's fields as the service wants them (nested for form 04; empty ones None) and
    what the user typed, to show again."""
    typed: dict[str, str] = {}
    data: dict[str, Any] = {}
    for spec in _all_fields(request_type):
        value = _text(form, spec.name)
        typed[spec.name] = value
        head, _, rest = spec.name.partition(".")
        if rest:
            group = data.setdefault(head, {})
            if value:
                group[rest] = value
        else:
            data[spec.name] = value or None
    for head in NESTED:
        if head in data and not data[head]:
            data[head] = None  # an empty group: no new information given
    return data, typed


@dataclass(frozen=True)
class KeyInput:
    source: KeySource | None
    csr: str | None
    device: str | None


async def _key_input(ctx: Context, form: FormData, typed: dict[str, str]) -> KeyInput:
    source = _enum(KeySource, _text(form, "key_source"))
    typed["key_source"] = source.value if source else ""
    csr = _text(form, "csr", 64 * 1024) or None
    upload = form.get("csr_file")
    if isinstance(upload, UploadFile) and upload.filename:
        data = await read_upload(cast(Any, upload), min(ctx.settings.max_upload_bytes, 64 * 1024))
        csr = data.decode("utf-8", errors="replace").strip() or csr
    typed["csr"] = csr or ""
    device = _text(form, "device", 100) or None
    typed["device"] = device or ""
    return KeyInput(source, csr, device)


def _field_errors(request: Request, exc: KysoError, known: set[str]) -> dict[str, str]:
    """The service's problems, each next to its field (the rest above the form)."""
    lang = guard.language(request)
    errors: dict[str, str] = {}
    if isinstance(exc, FieldErrors):
        loose: list[str] = []
        for problem in exc.problems:
            text = problem.vi if lang == "vi" else problem.en
            name = problem.field
            if name == "device_serial" and "device_serial" not in known:
                name = "device"
            if name in known:
                errors[name] = f"{errors[name]}; {text}" if name in errors else text
            else:
                loose.append(f"{problem.field}: {text}")
        if loose:
            errors["form"] = "; ".join(loose)
        return errors
    if exc.code in ("malformed_csr", "weak_key") and "csr" in known:
        return {"csr": exc.message(lang)}
    return {"form": exc.message(lang)}


# -- list ----------------------------------------------------------------------------------------
def _units(principal: Principal, session: Any) -> list[tuple[str, str]]:
    if not principal.can(Action.ORG_READ):
        return []
    units = organizations.search(principal, session, limit=2000).items
    top = min((u.path.strip("/").count("/") for u in units), default=0)
    return [(u.public_id, "— " * (u.path.strip("/").count("/") - top) + u.name) for u in units]


@router.get("/requests", include_in_schema=False)
def list_requests(
    request: Request,
    ctx: Ctx,
    viewer: SignedIn,
    state: Annotated[str | None, Query(max_length=40)] = None,
    type: Annotated[str | None, Query(max_length=40)] = None,
    unit: Annotated[str | None, Query(max_length=40)] = None,
    batch: Annotated[str | None, Query(max_length=40)] = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> Response:
    who = viewer.principal
    chosen_state = _enum(RequestState, state)
    chosen_type = _enum(RequestType, type)
    q = (q or "").replace("\x00", "").strip() or None
    with ctx.db.read() as session:
        units = _units(who, session)
        if unit and unit not in {u for u, _ in units}:
            unit = None  # not a unit this viewer sees: the whole view instead of an error
        page = workflow.search(
            who,
            session,
            state=chosen_state,
            type=chosen_type,
            unit=unit or None,
            batch=batch or None,
            q=q,
            offset=offset,
            limit=PAGE,
        )
    return render(
        request,
        "requests/list.html",
        {
            "rows": page.items,
            "total": page.total,
            "offset": offset,
            "limit": PAGE,
            "state": chosen_state.value if chosen_state else "",
            "type": chosen_type.value if chosen_type else "",
            "unit": unit or "",
            "batch": batch or "",
            "q": q or "",
            "units": units,
            "numbers": NUMBERS,
        },
    )


# -- new request -----------------------------------------------------------------------------
@router.get("/requests/new", include_in_schema=False)
def choose_form(request: Request, viewer: SignedIn) -> Response:
    if not viewer.principal.can(Action.REQUEST_CREATE):
        raise _forbidden()
    return render(
        request,
        "requests/choose.html",
        {"types": list(NUMBERS), "numbers": NUMBERS, "purposes": PURPOSES},
    )


def _forbidden() -> KysoError:
    return Forbidden(Action.REQUEST_CREATE.value, vi="tạo yêu cầu")


def _refusal(
    request: Request, exc: KysoError, request_type: RequestType, typed: Mapping[str, Any]
) -> dict[str, str]:
    """A refused form, its problems by field; what is no form problem goes on as an error."""
    if exc.http_status not in (404, 409, 422, 400) or exc.code == "too_large":
        raise exc
    known = {f.name for f in _all_fields(request_type)} | set(KEY_FIELDS) | {"subject_unit"}
    errors = _field_errors(request, exc, known)
    if exc.http_status == 404 and typed.get("device"):  # the token named is not known
        errors = {"device": exc.message(guard.language(request))}
    return errors


def _form_again(
    request: Request,
    ctx: Context,
    who: Principal,
    request_type: RequestType,
    typed: Mapping[str, Any],
    errors: Mapping[str, str],
    subject_unit: str | None,
    *,
    action: str,
    editing: Any = None,
) -> Response:
    """The form once more, with what was typed and each problem next to its field."""
    with ctx.db.read() as session:
        units = _units(who, session)
    return render(
        request,
        "requests/form.html",
        _form_context(
            request_type,
            typed,
            errors,
            units,
            subject_unit=subject_unit or "",
            action=action,
            editing=editing,
        ),
        status_code=422,
    )


def _form_context(
    request_type: RequestType,
    values: Mapping[str, Any],
    errors: Mapping[str, str],
    units: list[tuple[str, str]],
    *,
    subject_unit: str = "",
    action: str,
    editing: Any = None,
) -> dict[str, Any]:
    return {
        "type": request_type,
        "number": NUMBERS[request_type],
        "purpose": PURPOSES[request_type],
        "fields": FIELDS[request_type],
        "nested": NESTED if request_type is RequestType.RENEWAL_CHANGE else {},
        "open_groups": {
            head
            for head, (_, group) in NESTED.items()
            if any(name.startswith(head + ".") for name in errors)
            or any(values.get(spec.name) for spec in group)
        },
        "issuing": request_type in ISSUING_TYPES,
        "values": values,
        "errors": errors,
        "units": units,
        "subject_unit": subject_unit,
        "action": action,
        "editing": editing,
        "change_kinds": [(k.value, k.value) for k in ChangeKind],
        "revocation_reasons": [r.value for r in REVOCATION_REASONS],
    }


@router.get("/requests/new/{type_code}", include_in_schema=False)
def new_form(request: Request, ctx: Ctx, viewer: SignedIn, type_code: str) -> Response:
    request_type = _type(type_code)
    if not viewer.principal.can(Action.REQUEST_CREATE):
        raise _forbidden()
    with ctx.db.read() as session:
        units = _units(viewer.principal, session)
    return render(
        request,
        "requests/form.html",
        _form_context(
            request_type,
            {"key_source": KeySource.SERVER.value},
            {},
            units,
            action=f"/requests/new/{request_type.value}",
        ),
    )


@router.post("/requests/new/{type_code}", include_in_schema=False)
async def create_request(request: Request, ctx: Ctx, viewer: SignedIn, type_code: str) -> Response:
    request_type = _type(type_code)
    who = viewer.principal
    form = await request.form()
    data, typed = _posted_fields(request_type, form)
    subject_unit = _text(form, "subject_unit", 40) or None
    errors: dict[str, str] = {}
    key = KeyInput(None, None, None)
    try:
        if request_type in ISSUING_TYPES:
            key = await _key_input(ctx, form, typed)
        submit = _text(form, "action") == "submit"
        public_id = await run_in_threadpool(
            _create, ctx, who, request_type, data, subject_unit, key, submit
        )
    except (FieldErrors, KysoError) as exc:
        errors = _refusal(request, exc, request_type, typed)
    if errors:
        return _form_again(
            request, ctx, who, request_type, typed, errors, subject_unit,
            action=f"/requests/new/{request_type.value}",
        )  # fmt: skip
    _ = guard.environment_gettext(request)
    message = (
        _("The request has been submitted for approval.")
        if submit
        else _("The draft has been saved.")
    )
    return guard.redirect(request, f"/requests/{public_id}", message)


def _create(
    ctx: Context,
    who: Principal,
    request_type: RequestType,
    data: dict[str, Any],
    subject_unit: str | None,
    key: KeyInput,
    submit: bool,
) -> str:
    with ctx.db.session() as session:
        made = workflow.create(
            who,
            session,
            ctx.settings,
            workflow.NewRequest(
                type=request_type,
                form={k: v for k, v in data.items() if v is not None},
                subject_unit=subject_unit if request_type is not RequestType.REVOCATION else None,
                key_source=key.source if request_type in ISSUING_TYPES else None,
                key_algorithm=None,
                csr=key.csr if key.source in (None, KeySource.CSR) else None,
                device=key.device if key.source in (None, KeySource.TOKEN) else None,
            ),
        )
        if submit:
            workflow.submit(who, session, ctx.settings, made.public_id)
        return made.public_id


# -- bulk lists (before /requests/{id}: "bulk" is not a request) ----------------------------
@router.get("/requests/bulk", include_in_schema=False)
def bulk_page(
    request: Request,
    ctx: Ctx,
    viewer: SignedIn,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> Response:
    with ctx.db.read() as session:
        jobs = bulk.search(viewer.principal, session, ctx.settings, offset=offset, limit=20)
        units = _units(viewer.principal, session)
    return render(
        request,
        "requests/bulk.html",
        {
            "jobs": jobs,
            "units": units,
            "errors": {},
            "row_errors": [],
            "unit": "",
            "key_source": "server",
            "offset": offset,
        },
    )


@router.get("/requests/bulk/template", include_in_schema=False)
def bulk_template(viewer: SignedIn) -> Response:
    del viewer
    return Response(
        bulk.template(),
        media_type=bulk.XLSX_TYPE,
        headers={"content-disposition": content_disposition("mau-01-danh-sach.xlsx")},
    )


@router.post("/requests/bulk", include_in_schema=False)
async def bulk_upload(request: Request, ctx: Ctx, viewer: SignedIn) -> Response:
    _ = guard.environment_gettext(request)
    lang = guard.language(request)
    form = await request.form()
    unit = _text(form, "unit", 40) or None
    source = _enum(KeySource, _text(form, "key_source")) or KeySource.SERVER
    upload = form.get("file")
    errors: dict[str, str] = {}
    row_errors: list[dict[str, Any]] = []
    if not isinstance(upload, UploadFile) or not upload.filename:
        errors["file"] = _("Choose the XLSX file of the list.")
    else:
        data = await read_upload(cast(Any, upload), ctx.settings.max_upload_bytes)
        try:
            job = await run_in_threadpool(_bulk_upload, ctx, viewer.principal, data, unit, source)
            return guard.redirect(
                request,
                f"/requests/bulk/{job}",
                _("The list has been received; every row was checked and submitted."),
            )
        except bulk.BulkRejected as exc:
            errors["form"] = exc.message(lang)
            row_errors = [e.to_json() for e in exc.errors]
        except KysoError as exc:
            if exc.code == "too_large" or exc.http_status in (401, 403, 404):
                raise
            errors["file" if exc.code == "invalid_input" else "form"] = exc.message(lang)
    with ctx.db.read() as session:
        jobs = bulk.search(viewer.principal, session, ctx.settings, limit=20)
        units = _units(viewer.principal, session)
    return render(
        request,
        "requests/bulk.html",
        {
            "jobs": jobs,
            "units": units,
            "errors": errors,
            "row_errors": row_errors,
            "unit": unit or "",
            "key_source": source.value,
            "offset": 0,
        },
        status_code=422,
    )


def _bulk_upload(
    ctx: Context, who: Principal, data: bytes, unit: str | None, source: KeySource
) -> str:
    with ctx.db.session() as session:
        return bulk.upload(who, session, ctx.settings, data, unit=unit, key_source=source).public_id


def _job(ctx: Context, who: Principal, job_id: str) -> bulk.JobView:
    with ctx.db.read() as session:
        return bulk.get(who, session, ctx.settings, job_id)


@router.get("/requests/bulk/{job_id}", include_in_schema=False)
def job_page(request: Request, ctx: Ctx, viewer: SignedIn, job_id: JobId) -> Response:
    job = _job(ctx, viewer.principal, job_id)
    return render(request, "requests/job.html", {"job": job})


@router.get("/requests/bulk/{job_id}/progress", include_in_schema=False)
def job_progress(request: Request, ctx: Ctx, viewer: SignedIn, job_id: JobId) -> Response:
    job = _job(ctx, viewer.principal, job_id)
    return render(request, "requests/_progress.html", {"job": job})


def _run_job(ctx: Context, who: Principal, job_id: str, force: bool = False) -> None:
    try:
        bulk.run(who, ctx.authority, job_id, force=force)
    except Exception:  # a background task answers nobody: the job row says it failed
        import logging

        logging.getLogger("kyso.web").exception("batch %s could not run", job_id)


@router.post("/requests/bulk/{job_id}/approve", include_in_schema=False)
def approve_job(
    request: Request, ctx: Ctx, viewer: SignedIn, job_id: JobId, tasks: BackgroundTasks
) -> Response:
    _ = guard.environment_gettext(request)
    try:
        with ctx.db.session() as session:
            decision = bulk.approve(viewer.principal, session, job_id)
    except KysoError as exc:
        if exc.http_status in (401, 403, 404):
            raise
        return guard.redirect(
            request, f"/requests/bulk/{job_id}", exc.message(guard.language(request)), "error"
        )
    if decision.runnable:
        tasks.add_task(_run_job, ctx, viewer.principal, job_id)
        message = _("The batch is approved; its certificates are being issued.")
    elif decision.approved:
        message = _("The batch is approved; each certificate waits for its token.")
    else:
        message = _("Your approval is recorded; the batch needs another approver.")
    response = guard.redirect(request, f"/requests/bulk/{job_id}", message)
    response.background = tasks
    return response


@router.post("/requests/bulk/{job_id}/run", include_in_schema=False)
def rerun_job(
    request: Request, ctx: Ctx, viewer: SignedIn, job_id: JobId, tasks: BackgroundTasks
) -> Response:
    _ = guard.environment_gettext(request)
    try:
        with ctx.db.read() as session:
            bulk.check_runnable(viewer.principal, session, job_id)
    except KysoError as exc:
        if exc.http_status in (401, 403, 404):
            raise
        return guard.redirect(
            request, f"/requests/bulk/{job_id}", exc.message(guard.language(request)), "error"
        )
    tasks.add_task(_run_job, ctx, viewer.principal, job_id)
    response = guard.redirect(
        request, f"/requests/bulk/{job_id}", _("The batch is being issued again.")
    )
    response.background = tasks
    return response


# -- one request --------------------------------------------------------------------------------
def _detail(ctx: Context, who: Principal, public_id: str) -> workflow.RequestView:
    with ctx.db.read() as session:
        return workflow.get(who, session, public_id)


def _pending_changes(
    ctx: Context, who: Principal, view: workflow.RequestView
) -> workflow.SubscriberChanges | None:
    """For an approver, before the decision: the existing subscriber's record this request
    would change (another unit's person found by the CCCD), to be seen and confirmed."""
    if view.request.state is not RequestState.SUBMITTED or not who.can(Action.REQUEST_DECIDE):
        return None
    try:
        with ctx.db.read() as session:
            return workflow.subscriber_changes(who, session, view.request.public_id)
    except KysoError:  # an incomplete form: the approval itself says what is wrong
        return None


def _fields_shown(view: workflow.RequestView) -> list[tuple[str, Any, str | None]]:
    """(label msgid, value, kind of choice) of the stored form, in the form's order."""
    stored = view.envelope.fields
    shown: list[tuple[str, Any, str | None]] = []
    for spec in _all_fields(view.request.type):
        head, _, rest = spec.name.partition(".")
        value = (stored.get(head) or {}).get(rest) if rest else stored.get(spec.name)
        if value not in (None, ""):
            if spec.kind == "date" and isinstance(value, str) and len(value) == 10:
                value = "/".join(reversed(value.split("-")))  # 1978-04-12 → 12/04/1978
            shown.append((spec.label, value, spec.choices))
    return shown


@router.get("/requests/{public_id}", include_in_schema=False)
def show_request(request: Request, ctx: Ctx, viewer: SignedIn, public_id: PublicId) -> Response:
    view = _detail(ctx, viewer.principal, public_id)
    changes = _pending_changes(ctx, viewer.principal, view)
    return render(request, "requests/detail.html", _detail_context(view, {}, changes))


def _detail_context(
    view: workflow.RequestView,
    errors: Mapping[str, str],
    changes: workflow.SubscriberChanges | None = None,
) -> dict[str, Any]:
    r = view.request
    key = view.envelope.key
    waits_for_token = (
        r.state is RequestState.APPROVED and key is not None and key.source is KeySource.TOKEN
    )
    return {
        "view": view,
        "r": r,
        "key": key,
        "number": NUMBERS[r.type],
        "shown": _fields_shown(view),
        "issuing": r.type in ISSUING_TYPES,
        "waits_for_token": waits_for_token,
        "approved_count": len(view.approvals),
        "errors": errors,
        "subscriber_changes": changes,
    }


def _pem(view: workflow.RequestView) -> bytes:
    if view.certificate is None:
        raise NotFound(
            f"request {view.request.public_id} has no certificate yet",
            vi=f"yêu cầu {view.request.public_id} chưa có chứng thư",
        )
    return x509.load_der_x509_certificate(view.certificate.der).public_bytes(Encoding.PEM)


@router.get("/requests/{public_id}/certificate.pem", include_in_schema=False)
def certificate_pem(ctx: Ctx, viewer: SignedIn, public_id: PublicId) -> Response:
    view = _detail(ctx, viewer.principal, public_id)
    pem = _pem(view)
    assert view.certificate is not None
    return Response(
        pem,
        media_type="application/x-pem-file",
        headers={
            "content-disposition": content_disposition(f"{view.certificate.serial}.pem"),
            "cache-control": "no-store",
        },
    )


@router.get("/requests/{public_id}/certificate.cer", include_in_schema=False)
def certificate_der(ctx: Ctx, viewer: SignedIn, public_id: PublicId) -> Response:
    view = _detail(ctx, viewer.principal, public_id)
    _pem(view)
    assert view.certificate is not None
    return Response(
        view.certificate.der,
        media_type="application/pkix-cert",
        headers={
            "content-disposition": content_disposition(f"{view.certificate.serial}.cer"),
            "cache-control": "no-store",
        },
    )


# -- editing a draft ------------------------------------------------------------------------------
def _stored_values(view: workflow.RequestView) -> dict[str, str]:
    stored = view.envelope.fields
    values: dict[str, str] = {}
    for spec in _all_fields(view.request.type):
        head, _, rest = spec.name.partition(".")
        value = (stored.get(head) or {}).get(rest) if rest else stored.get(spec.name)
        values[spec.name] = "" if value is None else str(value)
    key = view.envelope.key
    values["key_source"] = key.source.value if key else KeySource.SERVER.value
    values["csr"] = key.csr or "" if key else ""
    values["device"] = view.device.serial if view.device else ""
    return values


@router.get("/requests/{public_id}/edit", include_in_schema=False)
def edit_form(request: Request, ctx: Ctx, viewer: SignedIn, public_id: PublicId) -> Response:
    with ctx.db.read() as session:
        view = workflow.get(viewer.principal, session, public_id)
        units = _units(viewer.principal, session)
    if view.request.state is not RequestState.DRAFT:
        return guard.redirect(request, f"/requests/{public_id}")
    return render(
        request,
        "requests/form.html",
        _form_context(
            view.request.type,
            _stored_values(view),
            {},
            units,
            subject_unit=view.subject_unit.public_id if view.subject_unit else "",
            action=f"/requests/{public_id}/edit",
            editing=view.request,
        ),
    )


@router.post("/requests/{public_id}/edit", include_in_schema=False)
async def edit_request(
    request: Request, ctx: Ctx, viewer: SignedIn, public_id: PublicId
) -> Response:
    who = viewer.principal
    view = await run_in_threadpool(_detail, ctx, who, public_id)
    request_type = view.request.type
    form = await request.form()
    data, typed = _posted_fields(request_type, form)
    subject_unit = _text(form, "subject_unit", 40) or None
    version_text = _text(form, "version", 12)
    version = int(version_text) if version_text.isascii() and version_text.isdigit() else None
    submit = _text(form, "action") == "submit"
    errors: dict[str, str] = {}
    try:
        key = (
            await _key_input(ctx, form, typed)
            if request_type in ISSUING_TYPES
            else KeyInput(None, None, None)
        )
        await run_in_threadpool(
            _edit, ctx, who, public_id, data, subject_unit, key, version, submit
        )
    except KysoError as exc:
        errors = _refusal(request, exc, request_type, typed)
    if errors:
        return _form_again(
            request, ctx, who, request_type, typed, errors, subject_unit,
            action=f"/requests/{public_id}/edit", editing=view.request,
        )  # fmt: skip
    _ = guard.environment_gettext(request)
    message = (
        _("The request has been submitted for approval.")
        if submit
        else _("The draft has been saved.")
    )
    return guard.redirect(request, f"/requests/{public_id}", message)


def _edit(
    ctx: Context,
    who: Principal,
    public_id: str,
    data: dict[str, Any],
    subject_unit: str | None,
    key: KeyInput,
    version: int | None,
    submit: bool,
) -> None:
    with ctx.db.session() as session:
        workflow.edit(
            who,
            session,
            public_id,
            workflow.DraftChanges(
                form=data,
                subject_unit=subject_unit,
                key_source=key.source,
                csr=key.csr if key.source is KeySource.CSR else None,
                device=key.device if key.source is KeySource.TOKEN else None,
            ),
            version=version,
        )
        if submit:
            workflow.submit(who, session, ctx.settings, public_id)


# -- moves ----------------------------------------------------------------------------------------
def _move_failed(
    request: Request,
    ctx: Ctx,
    who: Principal,
    public_id: str,
    exc: KysoError,
    field: str | None = None,
) -> Response:
    """A refused move: 403/404 as error pages; a field's problem next to that field on the
    request's page (422); a wrong state or a stale page as a message above it."""
    if exc.http_status in (401, 403, 404) or exc.code == "too_large":
        raise exc
    view = _detail(ctx, who, public_id)
    known = {"reason", "token_pin", "note", "from_name", "to_person"}
    errors = _field_errors(request, exc, known)
    if field and "form" in errors and not isinstance(exc, FieldErrors) and exc.http_status == 422:
        errors = {field: errors["form"]}
    if isinstance(exc, workflow.SubscriberChangesUnconfirmed):
        _ = guard.environment_gettext(request)
        errors = {"confirm_subscriber_changes": _("Read the changes and confirm them first.")}
    status = 422 if exc.http_status in (400, 422) else exc.http_status
    changes = _pending_changes(ctx, who, view)
    return render(
        request,
        "requests/detail.html",
        _detail_context(view, errors, changes),
        status_code=status,
    )


def _simple_move(
    request: Request,
    ctx: Ctx,
    viewer: Any,
    public_id: str,
    action: Any,
    message: str | Callable[[Any], str],
    field: str | None = None,
) -> Response:
    """Carry out one step; the message may depend on what the step returned."""
    try:
        with ctx.db.session() as session:
            result = action(session)
    except KysoError as exc:
        return _move_failed(request, ctx, viewer.principal, public_id, exc, field)
    text = message(result) if callable(message) else message
    return guard.redirect(request, f"/requests/{public_id}", text)


@router.post("/requests/{public_id}/submit", include_in_schema=False)
def submit_request(request: Request, ctx: Ctx, viewer: SignedIn, public_id: PublicId) -> Response:
    _ = guard.environment_gettext(request)
    return _simple_move(
        request,
        ctx,
        viewer,
        public_id,
        lambda s: workflow.submit(viewer.principal, s, ctx.settings, public_id),
        _("The request has been submitted for approval."),
    )


@router.post("/requests/{public_id}/cancel", include_in_schema=False)
async def cancel_request(
    request: Request, ctx: Ctx, viewer: SignedIn, public_id: PublicId
) -> Response:
    _ = guard.environment_gettext(request)
    note = _text(await request.form(), "note") or None
    return await run_in_threadpool(
        _simple_move,
        request,
        ctx,
        viewer,
        public_id,
        lambda s: workflow.cancel(viewer.principal, s, public_id, note),
        _("The request has been cancelled."),
        "note",
    )


@router.post("/requests/{public_id}/approve", include_in_schema=False)
async def approve_request(
    request: Request, ctx: Ctx, viewer: SignedIn, public_id: PublicId
) -> Response:
    _ = guard.environment_gettext(request)
    form = await request.form()
    note = _text(form, "note") or None
    confirmed = _text(form, "confirm_subscriber_changes") == "yes"

    def said(done: Any) -> str:
        if done.state is RequestState.ISSUED:
            return str(_("Approved: the certificate has been issued."))
        if done.state is RequestState.APPROVED:
            return str(_("Approved: the certificate waits for the token and its PIN."))
        return str(_("Your approval has been recorded."))

    return await run_in_threadpool(
        _simple_move,
        request,
        ctx,
        viewer,
        public_id,
        lambda s: workflow.approve(
            viewer.principal,
            s,
            ctx.authority,
            public_id,
            note=note,
            confirm_subscriber_changes=confirmed,
        ),
        said,
        "note",
    )


@router.post("/requests/{public_id}/reject", include_in_schema=False)
async def reject_request(
    request: Request, ctx: Ctx, viewer: SignedIn, public_id: PublicId
) -> Response:
    _ = guard.environment_gettext(request)
    reason = _text(await request.form(), "reason")
    return await run_in_threadpool(
        _simple_move,
        request,
        ctx,
        viewer,
        public_id,
        lambda s: workflow.reject(viewer.principal, s, public_id, reason),
        _("The request has been rejected."),
        "reason",
    )


@router.post("/requests/{public_id}/issue", include_in_schema=False)
async def issue_request(
    request: Request, ctx: Ctx, viewer: SignedIn, public_id: PublicId
) -> Response:
    _ = guard.environment_gettext(request)
    pin = _text(await request.form(), "token_pin", 64) or None
    return await run_in_threadpool(
        _simple_move,
        request,
        ctx,
        viewer,
        public_id,
        lambda s: workflow.issue(viewer.principal, s, ctx.authority, public_id, token_pin=pin),
        _("The certificate has been issued."),
        "token_pin",
    )


@router.post("/requests/{public_id}/handover", include_in_schema=False)
async def handover_request(
    request: Request, ctx: Ctx, viewer: SignedIn, public_id: PublicId
) -> Response:
    _ = guard.environment_gettext(request)
    form = await request.form()
    from_name = _text(form, "from_name", 200) or None
    note = _text(form, "note") or None
    return await run_in_threadpool(
        _simple_move,
        request,
        ctx,
        viewer,
        public_id,
        lambda s: workflow.hand_over(
            viewer.principal, s, ctx.authority, public_id, from_name=from_name, note=note
        ),
        _("The hand-over has been recorded."),
        "note",
    )


# -- the approval queue -------------------------------------------------------------------------
def _oldest_first(
    who: Principal, session: Any, offset: int, limit: int
) -> tuple[list[workflow.RequestView], int]:
    """Submitted requests, the longest-waiting first. The service lists newest first, so the
    page is read from the other end (two queries, both offset/limit in SQL)."""
    total = workflow.search(who, session, state=RequestState.SUBMITTED, limit=1).total
    if offset >= total:
        return [], total
    count = min(limit, total - offset)
    page = workflow.search(
        who, session, state=RequestState.SUBMITTED, offset=total - offset - count, limit=count
    )
    return list(reversed(page.items)), total


def _waiting(request: Request, since: datetime | None) -> str:
    if since is None:
        return "—"
    from kyso.web.ui import i18n

    ngettext = i18n.translations(guard.language(request)).ngettext
    minutes = max(int((clock.now() - since).total_seconds() // 60), 0)
    if minutes < 60:
        return ngettext("%(n)s minute", "%(n)s minutes", minutes) % {"n": minutes}
    hours = minutes // 60
    if hours < 48:
        return ngettext("%(n)s hour", "%(n)s hours", hours) % {"n": hours}
    days = hours // 24
    return ngettext("%(n)s day", "%(n)s days", days) % {"n": days}


def _queue(
    request: Request,
    ctx: Context,
    viewer: Any,
    offset: int,
    errors: Mapping[str, str],
    chosen: Sequence[str] = (),
    reason: str = "",
    status: int = 200,
) -> Response:
    who = viewer.principal
    with ctx.db.read() as session:
        rows, total = _oldest_first(who, session, offset, PAGE)
        jobs = [
            j
            for j in bulk.search(who, session, ctx.settings, limit=50).items
            if j.requests.get("submitted") and j.state is JobState.PENDING
        ]
    return render(
        request,
        "requests/approvals.html",
        {
            "rows": rows,
            "waiting": {
                v.request.public_id: _waiting(request, v.request.submitted_at) for v in rows
            },
            "total": total,
            "offset": offset,
            "limit": PAGE,
            "jobs": jobs,
            "errors": errors,
            "chosen": set(chosen),
            "reason": reason,
        },
        status_code=status,
    )


@router.get("/approvals", include_in_schema=False)
def approvals(
    request: Request,
    ctx: Ctx,
    viewer: Decider,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> Response:
    return _queue(request, ctx, viewer, offset, {})


@router.post("/approvals", include_in_schema=False)
async def decide_many(request: Request, ctx: Ctx, viewer: Decider) -> Response:
    _ = guard.environment_gettext(request)
    form = await request.form()
    chosen = [v for v in form.getlist("request") if isinstance(v, str) and v.isalnum()][:500]
    decision = _text(form, "decision")
    reason = _text(form, "reason")
    errors: dict[str, str] = {}
    if decision not in ("approve", "reject"):
        errors["form"] = _("Choose approve or reject.")
    if not chosen:
        errors["form"] = _("Tick at least one request.")
    if decision == "reject" and not reason:
        errors["reason"] = _("Give the reason for the rejection; the unit will read it.")
    if errors:
        return await run_in_threadpool(_queue, request, ctx, viewer, 0, errors, chosen, reason, 422)
    done, failed = await run_in_threadpool(
        _decide_all, ctx, viewer.principal, chosen, decision, reason, guard.language(request)
    )
    if decision == "approve":
        message = _("%(n)s request(s) approved.") % {"n": done}
    else:
        message = _("%(n)s request(s) rejected.") % {"n": done}
    if failed:
        message += " " + _("Not done: %(list)s") % {"list": "; ".join(failed[:10])}
    return guard.redirect(request, "/approvals", message, "warn" if failed else "ok")


def _decide_all(
    ctx: Context, who: Principal, chosen: list[str], decision: str, reason: str, lang: str
) -> tuple[int, list[str]]:
    """Each request in its own transaction: one that cannot be decided (taken by another
    approver, part of a batch) does not hold back the others."""
    done, failed = 0, []
    for public_id in chosen:
        try:
            with ctx.db.session() as session:
                if decision == "approve":
                    workflow.approve(who, session, ctx.authority, public_id)
                else:
                    workflow.reject(who, session, public_id, reason)
            done += 1
        except KysoError as exc:
            failed.append(f"{public_id}: {exc.message(lang)}")
    return done, failed
