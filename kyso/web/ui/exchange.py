"""Pages: documents between agencies (``/exchange``) — the records clerk's inbox and outbox.

The clerk sends a document to other units (its identifier code, mã định danh, routes it),
receives what arrives with the ĐẾN mark and the next incoming number, or refuses it with a
reason, and recalls what the unit sent. Every rule is :mod:`kyso.exchange.service`'s: these
pages read the form, call the service and show its answer (its errors next to the form,
with the values kept).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from kyso.context import Context
from kyso.errors import KysoError, NotFound
from kyso.exchange import edxml, service
from kyso.exchange.model import BusinessDocType, Package, Priority, SignerInfo
from kyso.exchange.status import StatusCode
from kyso.registry.access import Action, Principal
from kyso.registry.sessions import Viewer
from kyso.store.models import (
    ExchangeDirection,
    ExchangeMessage,
    ExchangeState,
    ExchangeStatusEntry,
)
from kyso.web.api_documents import read_upload
from kyso.web.ui import guard
from kyso.web.ui.exchange_forms import (
    chosen_files,
    file_response,
    form_errors,
    parse_day,
    passes_through,
    receiving_units,
    recipient_codes,
    seal_keys,
    sending_units,
)
from kyso.web.ui.guard import Ctx
from kyso.web.ui.labels import N_
from kyso.web.ui.templating import render

router = APIRouter(dependencies=[Depends(guard.ui_request)])
Clerk = Annotated[Viewer, guard.allowed(Action.DOCUMENT_EXCHANGE)]

# Form limits keep each value inside its stored column (ExchangeMessage.code is 100
# characters: number and notation with the slash); the service judges the rest.
Short = Annotated[str, Form(max_length=40)]
Text = Annotated[str, Form(max_length=200)]
Long = Annotated[str, Form(max_length=2000)]

# What the clerk reads for each state, and the colour of its badge (kyso.css's tones).
STATE_LABELS = {
    ExchangeState.ARRIVED: (N_("Waiting to be received"), "waiting"),
    ExchangeState.RECEIVED: (N_("Received by the clerk"), "signed"),
    ExchangeState.REFUSED: (N_("Refused by the recipient"), "rejected"),
    ExchangeState.RECALLED: (N_("Recalled by the sender"), "declined"),
    ExchangeState.QUEUED: (N_("Being sent"), "submitted"),
    ExchangeState.DELIVERED: (N_("Delivered to the recipient"), "approved"),
    ExchangeState.FAILED: (N_("Could not be delivered"), "revoked"),
}
BUSINESS_LABELS = {
    BusinessDocType.NEW: N_("New document"),
    BusinessDocType.RECALL: N_("Recall"),
    BusinessDocType.UPDATE: N_("Update"),
    BusinessDocType.REPLACE: N_("Replacement"),
}
# QCVN 102:2016 OtherInfo/Priority
PRIORITY_LABELS = {
    Priority.NORMAL: N_("Normal"),
    Priority.URGENT: N_("Urgent (Khẩn)"),
    Priority.VERY_URGENT: N_("Very urgent (Thượng khẩn)"),
    Priority.EXPRESS: N_("Express (Hỏa tốc)"),
    Priority.TIMED_EXPRESS: N_("Timed express (Hỏa tốc hẹn giờ)"),
}
# The kinds of administrative documents (Decree 30/2020/NĐ-CP, Art. 7), offered as a list
# the clerk may also type past: the value travels as edXML DocumentType/TypeName.
TYPE_NAMES = (
    "Công văn",
    "Quyết định",
    "Tờ trình",
    "Báo cáo",
    "Kế hoạch",
    "Thông báo",
    "Giấy mời",
    "Nghị quyết",
    "Chỉ thị",
    "Quy chế",
    "Quy định",
    "Hướng dẫn",
    "Chương trình",
    "Đề án",
    "Biên bản",
    "Công điện",
    "Giấy giới thiệu",
)
PDF = service.PDF
# The types an attachment is served as; anything else a sender declared goes out as bytes.
SAFE_TYPES = frozenset(
    {
        PDF,
        "application/xml",
        "text/xml",
        "application/msword",
        "application/vnd.ms-excel",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.oasis.opendocument.text",
        "application/vnd.oasis.opendocument.spreadsheet",
        "application/zip",
        "image/jpeg",
        "image/png",
        "image/tiff",
    }
)


def _state_names(_: Any) -> dict[str, tuple[str, str]]:
    return {state.value: (_(name), tone) for state, (name, tone) in STATE_LABELS.items()}


# Outgoing's attributes that the send form shows under another name.
_FORM_FIELDS = {"files": "document", "content": "subject"}


# -- the inbox and the outbox ----------------------------------------------------------------------
@router.get("/exchange")
def boxes(
    request: Request,
    ctx: Ctx,
    viewer: Clerk,
    box: Annotated[str, Query(max_length=10)] = "in",
) -> Response:
    _ = guard.environment_gettext(request)
    direction = ExchangeDirection.OUT if box == "out" else ExchangeDirection.IN
    with ctx.db.read() as session:
        messages = service.listing(viewer.principal, session, direction)
    return render(
        request,
        "exchange/list.html",
        {
            "box": direction.value,
            "messages": messages,
            "states": _state_names(_),
            "business": {int(k): _(v) for k, v in BUSINESS_LABELS.items()},
        },
    )


# -- sending ---------------------------------------------------------------------------------------
@dataclass
class SendForm:
    """What the send form said, kept as typed so the page can show it again."""

    unit: str = ""
    recipients: list[str] = field(default_factory=list)
    other_codes: str = ""
    code_number: str = ""
    code_notation: str = ""
    type_name: str = "Công văn"
    subject: str = ""
    place: str = ""
    promulgation_date: str = ""
    competence: str = ""
    position: str = ""
    full_name: str = ""
    priority: str = str(int(Priority.NORMAL))
    key_id: str = ""

    def organ_ids(self) -> list[str]:
        """The recipients' identifier codes: those ticked, then those typed (comma or
        semicolon separated), each once."""
        return recipient_codes(self.recipients, self.other_codes)


def _send_page(
    request: Request, ctx: Context, viewer: Viewer, form: SendForm, errors: dict[str, str],
    status_code: int = 200,
) -> Response:  # fmt: skip
    _ = guard.environment_gettext(request)
    senders = sending_units(viewer.principal, ctx)
    if not form.unit and senders:
        form.unit = senders[0][0]
    keys = seal_keys(ctx, viewer.principal, _)
    if not form.key_id and keys:
        form.key_id = keys[0][0]
    return render(
        request,
        "exchange/send.html",
        {
            "form": form,
            "errors": errors,
            "senders": senders,
            "directory": receiving_units(viewer.principal, ctx, form.unit),
            "keys": keys,
            "type_names": TYPE_NAMES,
            "priorities": [(str(int(p)), _(label)) for p, label in PRIORITY_LABELS.items()],
            "max_files": service.MAX_ATTACHMENTS,
            "max_mb": ctx.settings.max_upload_bytes // (1024 * 1024),
        },
        status_code=status_code,
    )


@router.get("/exchange/send")
def send_page(request: Request, ctx: Ctx, viewer: Clerk) -> Response:
    return _send_page(request, ctx, viewer, SendForm(), {})


def _content_type(data: bytes) -> str:
    # The declared type of an upload is the browser's guess from the name; a PDF says it is
    # one in its first bytes (ISO 32000-1 §7.5.2, the header within the first 1024 bytes).
    return PDF if b"%PDF-" in data[:1024] else "application/octet-stream"


@router.post("/exchange/send")
async def send(
    request: Request,
    ctx: Ctx,
    viewer: Clerk,
    unit: Short = "",
    recipients: Annotated[list[str] | None, Form()] = None,
    other_codes: Long = "",
    code_number: Annotated[str, Form(max_length=30)] = "",
    code_notation: Annotated[str, Form(max_length=60)] = "",
    type_name: Annotated[str, Form(max_length=100)] = "",
    subject: Long = "",
    place: Text = "",
    promulgation_date: Short = "",
    competence: Text = "",
    position: Text = "",
    full_name: Text = "",
    priority: Short = "0",
    key_id: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """The send form: ``document`` (the PDF itself) and ``attachments`` (appendices) are
    its file inputs, read by :func:`chosen_files`."""
    _ = guard.environment_gettext(request)
    lang = guard.language(request)
    form = SendForm(
        unit=unit.strip(),
        recipients=[r[:60] for r in recipients or []][:200],
        other_codes=other_codes,
        code_number=code_number,
        code_notation=code_notation,
        type_name=type_name,
        subject=subject,
        place=place,
        promulgation_date=promulgation_date,
        competence=competence,
        position=position,
        full_name=full_name,
        priority=priority,
        key_id=key_id.strip(),
    )
    errors: dict[str, str] = {}
    day = None
    if promulgation_date.strip():
        day = parse_day(promulgation_date)
        if day is None:
            errors["promulgation_date"] = _("Write the date as dd/mm/yyyy.")
    chosen_priority = next((p for p in Priority if str(int(p)) == priority.strip()), None)
    if chosen_priority is None:
        errors["priority"] = _("Choose how urgent the document is.")
    if not form.key_id:
        errors["key_id"] = _("Choose the unit's seal key to sign the package with.")
    files: list[service.OutgoingFile] = []
    status = 422
    for name in ("document", "attachments"):
        for upload in (await chosen_files(request, name))[: service.MAX_ATTACHMENTS + 1]:
            try:
                data = await read_upload(upload, ctx.settings.max_upload_bytes)
            except KysoError as exc:  # over the upload limit
                errors[name] = exc.message(lang)
                status = exc.http_status if exc.http_status in (413, 422) else 422
                continue
            files.append(service.OutgoingFile(upload.filename or "", data, _content_type(data)))
    if errors:
        return await run_in_threadpool(_send_page, request, ctx, viewer, form, errors, status)
    assert chosen_priority is not None
    signer = SignerInfo(competence.strip(), position.strip(), full_name.strip())
    outgoing = service.Outgoing(
        unit=form.unit,
        recipients=form.organ_ids(),
        code_number=code_number,
        code_notation=code_notation,
        type_name=type_name,
        subject=subject,
        files=files,
        key_id=form.key_id,
        promulgation_date=day,
        place=place,
        signer=signer if any((signer.competence, signer.position, signer.full_name)) else None,
        priority=chosen_priority,
    )
    try:
        made = await run_in_threadpool(service.send, ctx, viewer.principal, outgoing)
    except KysoError as exc:
        if passes_through(exc):
            raise
        errors = form_errors(request, exc, {service.NoRoute.code: "recipients"}, _FORM_FIELDS)
        return await run_in_threadpool(_send_page, request, ctx, viewer, form, errors, 422)
    return guard.redirect(
        request, f"/exchange/{made[0]}", _("The document is signed with the unit's seal and sent.")
    )


# -- one message -----------------------------------------------------------------------------------
@dataclass
class Opened:
    """A message as its page shows it: the row, what its package says, its history."""

    message: ExchangeMessage
    package: Package
    history: list[ExchangeStatusEntry]
    has_marked: bool


def _open(ctx: Context, principal: Principal, public_id: str) -> Opened:
    with ctx.db.read() as session:
        message = service.get(principal, session, public_id[:40])
        data = bytes(message.package)
        history = service.history(session, message)
        has_marked = service.has_marked_document(session, message)
    return Opened(message, edxml.parse(data), history, bool(has_marked))


def _status_label(code: str, lang: str) -> str:
    try:
        status = StatusCode(code)
    except ValueError:
        return code
    return status.label_vi if lang == "vi" else status.label_en


def _detail(
    request: Request, ctx: Context, viewer: Viewer, public_id: str,
    errors: dict[str, str] | None = None, status_code: int = 200,
    values: dict[str, str] | None = None,
) -> Response:  # fmt: skip
    _ = guard.environment_gettext(request)
    lang = guard.language(request)
    opened = _open(ctx, viewer.principal, public_id)
    message = opened.message
    can_receive = (
        message.direction is ExchangeDirection.IN and message.state is ExchangeState.ARRIVED
    )
    can_recall = (
        message.direction is ExchangeDirection.OUT
        and message.business == int(BusinessDocType.NEW)
        and message.state is not ExchangeState.RECALLED
    )
    keys = seal_keys(ctx, viewer.principal, _) if can_receive or can_recall else []
    trace = opened.package.traces[-1] if opened.package.traces else None
    return render(
        request,
        "exchange/detail.html",
        {
            "msg": message,
            "package": opened.package,
            "header": opened.package.header,
            "trace": trace,
            "history": [(entry, _status_label(entry.code, lang)) for entry in opened.history],
            "has_marked": opened.has_marked,
            "can_receive": can_receive,
            "can_recall": can_recall,
            "keys": keys,
            "states": _state_names(_),
            "business": _(BUSINESS_LABELS.get(BusinessDocType(message.business), ""))
            if message.business in set(BusinessDocType)
            else str(message.business),
            "priority": _(PRIORITY_LABELS[opened.package.header.priority]),
            "errors": errors or {},
            "values": values or {},
        },
        status_code=status_code,
    )


@router.get("/exchange/{public_id}")
def detail(request: Request, ctx: Ctx, viewer: Clerk, public_id: str) -> Response:
    return _detail(request, ctx, viewer, public_id[:40])


async def _act(
    request: Request, ctx: Context, viewer: Viewer, public_id: str,
    work: Callable[[], Any], done: Callable[[Any], str], values: dict[str, str],
    where: dict[str, str] | None = None,
) -> Response:  # fmt: skip
    """Run one of the clerk's actions: back to the message with the flash ``done`` makes of
    the service's answer, or the page again with the refusal beside the form, values kept."""
    try:
        answer = await run_in_threadpool(work)
    except KysoError as exc:
        if passes_through(exc):
            raise
        status = exc.http_status if exc.http_status in (409, 413, 422) else 422
        errors = form_errors(request, exc, where, _FORM_FIELDS)
        return await run_in_threadpool(
            _detail, request, ctx, viewer, public_id, errors, status, values
        )
    return guard.redirect(request, f"/exchange/{public_id}", done(answer))


@router.post("/exchange/{public_id}/accept")
async def accept(
    request: Request,
    ctx: Ctx,
    viewer: Clerk,
    public_id: str,
    key_id: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    _ = guard.environment_gettext(request)
    public_id = public_id[:40]
    if not key_id.strip():
        errors = {"key_id": _("Choose the unit's seal key to sign the ĐẾN mark with.")}
        return await run_in_threadpool(_detail, request, ctx, viewer, public_id, errors, 422)
    return await _act(
        request,
        ctx,
        viewer,
        public_id,
        lambda: service.accept(ctx, viewer.principal, public_id, key_id=key_id.strip()),
        lambda number: _("Received: incoming number %(number)s.") % {"number": number},
        {"key_id": key_id},
    )


@router.post("/exchange/{public_id}/refuse")
async def refuse(
    request: Request,
    ctx: Ctx,
    viewer: Clerk,
    public_id: str,
    reason: Long = "",
    key_id: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Refuse with a reason; the unit's key signs the status when the sender is in another
    system (the service says when it needs one)."""
    _ = guard.environment_gettext(request)
    public_id = public_id[:40]
    return await _act(
        request,
        ctx,
        viewer,
        public_id,
        lambda: service.refuse(ctx, viewer.principal, public_id, reason, key_id.strip() or None),
        lambda _answer: _("Refused: the sender is told why."),
        {"reason": reason, "key_id": key_id},
    )


@router.post("/exchange/{public_id}/recall")
async def recall(
    request: Request,
    ctx: Ctx,
    viewer: Clerk,
    public_id: str,
    reason: Long = "",
    key_id: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    _ = guard.environment_gettext(request)
    public_id = public_id[:40]
    values = {"reason": reason, "key_id": key_id}
    if not key_id.strip():
        errors = {"key_id": _("Choose the unit's seal key to sign the recall with.")}
        return await run_in_threadpool(
            _detail, request, ctx, viewer, public_id, errors, 422, values
        )
    return await _act(
        request,
        ctx,
        viewer,
        public_id,
        lambda: service.recall(
            ctx, viewer.principal, public_id, reason=reason, key_id=key_id.strip()
        ),
        lambda _answer: _("The recall is signed and sent to the recipient."),
        values,
    )


# -- files -----------------------------------------------------------------------------------------
@router.get("/exchange/{public_id}/files/{index}")
def attachment(request: Request, ctx: Ctx, viewer: Clerk, public_id: str, index: str) -> Response:
    """Attachment ``index`` (from 1, in the package's order) as the sender sent it."""
    opened = _open(ctx, viewer.principal, public_id)
    files = opened.package.attachments
    if not (index.isascii() and index.isdigit() and len(index) <= 4):
        raise NotFound(f"file {index[:20]}", vi=f"tệp {index[:20]}")
    if not 1 <= int(index) <= len(files):
        raise NotFound(f"file {index}", vi=f"tệp {index}")
    found = files[int(index) - 1]
    declared = found.content_type.split(";", 1)[0].strip().lower()
    media_type = declared if declared in SAFE_TYPES else "application/octet-stream"
    return file_response(request, found.content, media_type, found.name)


@router.get("/exchange/{public_id}/marked.pdf")
def marked(request: Request, ctx: Ctx, viewer: Clerk, public_id: str) -> Response:
    """The main PDF with the receiving unit's ĐẾN mark (a received IN message)."""
    with ctx.db.read() as session:
        message = service.get(viewer.principal, session, public_id[:40])
        data = service.marked_document(viewer.principal, session, public_id[:40])
        code, number = message.code, message.received_number
    if data is None:
        raise NotFound("the document with the ĐẾN mark", vi="văn bản có dấu ĐẾN")
    return file_response(request, bytes(data), PDF, f"{code} - đến số {number}.pdf")


@router.get("/exchange/{public_id}/package.xml")
def package(request: Request, ctx: Ctx, viewer: Clerk, public_id: str) -> Response:
    """The signed edXML package, byte for byte as sent or received."""
    with ctx.db.read() as session:
        message = service.get(viewer.principal, session, public_id[:40])
        data, code = bytes(message.package), message.code
    return file_response(request, data, "application/xml", f"edXML {code}.xml")
