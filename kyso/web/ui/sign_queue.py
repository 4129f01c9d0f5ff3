"""Pages: documents waiting for a signature (kyso.signing.queue) — send a PDF to the leader
who signs it, find what waits for me, sign it on the signing page or decline it, download
the signed file."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from kyso.errors import KysoError
from kyso.registry.access import Action
from kyso.registry.fields import FieldErrors
from kyso.registry.sessions import Viewer
from kyso.signing import queue
from kyso.store.models import SignatureState
from kyso.web.api_documents import read_upload
from kyso.web.downloads import content_disposition
from kyso.web.ui import guard, uploads
from kyso.web.ui.guard import Ctx
from kyso.web.ui.templating import render

router = APIRouter(dependencies=[Depends(guard.ui_request)])
Signer = Annotated[Viewer, guard.allowed(Action.DOCUMENT_SIGN)]


def _errors(request: Request, exc: KysoError) -> dict[str, str]:
    lang = guard.language(request)
    if isinstance(exc, FieldErrors):
        return {p.field: (p.vi if lang == "vi" else p.en) for p in exc.problems}
    field = "file" if exc.code in ("invalid_input", "invalid_pdf") else "form"
    return {field: exc.message(lang)}


def _queue_page(
    request: Request, ctx: Ctx, viewer: Viewer, errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:  # fmt: skip
    from kyso.web.ui import sign

    _ = guard.environment_gettext(request)
    with ctx.db.read() as session:
        waiting, sent = queue.mine(viewer.principal, session)
        names = queue.people_named(viewer.principal, session, [*waiting, *sent])
    central_keys = [
        (sign.CENTRAL.prefix + k.key_id, sign.key_label(k, _))
        for k in (sign.central_keys(ctx, viewer) if waiting else [])
    ]
    return render(
        request,
        "documents/queue.html",
        {
            "waiting": waiting,
            "sent": sent,
            "names": names,
            "central_keys": central_keys,
            "levels": [(lv.value, _(sign.LEVEL_LABELS[lv])) for lv in sign.LEVELS],
            "batch_max": ctx.settings.approval_batch_max,
            "errors": errors or {},
        },
        status_code=status_code,
    )


@router.get("/sign/requests")
def requests_page(request: Request, ctx: Ctx, viewer: Signer) -> Response:
    return _queue_page(request, ctx, viewer)


@router.post("/sign/requests/batch")
async def sign_batch(
    request: Request,
    ctx: Ctx,
    viewer: Signer,
    key_id: Annotated[str, Form(max_length=200)] = "",
    level: Annotated[str, Form(max_length=10)] = "B-B",
    chosen: Annotated[list[str] | None, Form(alias="request")] = None,
) -> Response:
    """The leader ticks several documents waiting for them and signs them all with one
    approval on the phone (each document listed there); each signed file goes back to its
    sender (:func:`kyso.signing.queue.complete`)."""
    from kyso.remote import documents
    from kyso.web.ui import sign

    _ = guard.environment_gettext(request)
    picked = [p[:40] for p in (chosen or []) if p]
    kind, key = sign.kind_of(key_id.strip())
    chosen_level = next((lv for lv in sign.LEVELS if lv.value == level), None)
    errors: dict[str, str] = {}
    if not picked:
        errors["request"] = _("Tick the documents to sign.")
    if not key or not kind.waits:
        errors["key_id"] = _("Choose the central key to sign with.")
    if chosen_level is None:
        errors["level"] = _("Choose B-B, B-T or B-LT.")
    if errors:
        return _queue_page(request, ctx, viewer, errors, status_code=422)
    assert chosen_level is not None

    def work() -> str:
        with ctx.db.read() as session:
            batch = documents.from_queue(viewer.principal, session, picked, chosen_level)
        return documents.request_signatures(
            ctx, viewer.principal, key, batch, "kyso – văn bản chờ ký"
        ).public_id

    try:
        approval_id = await run_in_threadpool(work)
    except KysoError as exc:
        if exc.http_status in (401, 403, 404):
            raise
        return _queue_page(
            request, ctx, viewer, {"form": exc.message(guard.language(request))}, 422
        )
    return guard.redirect(request, f"/sign/approvals/{approval_id}")


def _new_form(
    request: Request, ctx: Ctx, viewer: Viewer, values: dict[str, str], errors: dict[str, str],
    status_code: int = 200,
) -> Response:  # fmt: skip
    with ctx.db.read() as session:
        people = [(u.public_id, u.full_name) for u in queue.signers(viewer.principal, session)]
    return render(
        request,
        "documents/queue_new.html",
        {"signers": people, "values": values, "errors": errors},
        status_code=status_code,
    )


@router.get("/sign/requests/new")
def new_page(request: Request, ctx: Ctx, viewer: Signer) -> Response:
    return _new_form(request, ctx, viewer, {}, {})


@router.post("/sign/requests/new")
async def send(
    request: Request,
    ctx: Ctx,
    viewer: Signer,
    file: Annotated[UploadFile | None, File()] = None,
    title: Annotated[str, Form(max_length=1000)] = "",
    signer: Annotated[str, Form(max_length=40)] = "",
    note: Annotated[str, Form(max_length=4000)] = "",
    then: Annotated[list[str] | None, Form(max_length=40)] = None,
) -> Response:
    _ = guard.environment_gettext(request)
    following = [p for p in (then or []) if p.strip()][: queue.MAX_CHAIN + 1]
    values = {"title": title, "signer": signer, "note": note}
    for index, public_id in enumerate(following[:2]):
        values[f"then{index + 1}"] = public_id
    if file is None or not file.filename:
        return _new_form(
            request, ctx, viewer, values, {"file": _("Choose the PDF file.")}, status_code=422
        )
    content = await read_upload(file, ctx.settings.max_upload_bytes)

    def work() -> str:
        with ctx.db.session() as session:
            made = queue.ask(
                viewer.principal,
                session,
                signer=signer,
                title=title,
                filename=file.filename or "document.pdf",
                document=content,
                note=note,
                then=following,
            )
            return made.public_id

    try:
        public_id = await run_in_threadpool(work)
    except KysoError as exc:
        if exc.http_status in (401, 403, 404) and not isinstance(exc, FieldErrors):
            raise
        return _new_form(request, ctx, viewer, values, _errors(request, exc), status_code=422)
    return guard.redirect(
        request, f"/sign/requests/{public_id}", _("Sent: it waits for the signer.")
    )


def _detail(
    request: Request, ctx: Ctx, viewer: Viewer, public_id: str,
    errors: dict[str, str] | None = None, status_code: int = 200,
) -> Response:  # fmt: skip
    with ctx.db.read() as session:
        item = queue.get(viewer.principal, session, public_id)
        names = queue.people_named(viewer.principal, session, [item])
    return render(
        request,
        "documents/queue_detail.html",
        {
            "item": item,
            "names": names,
            "mine_to_sign": item.signer_id == viewer.user.id
            and item.state is SignatureState.WAITING,
            "errors": errors or {},
        },
        status_code=status_code,
    )


@router.get("/sign/requests/{public_id}")
def detail(request: Request, ctx: Ctx, viewer: Signer, public_id: str) -> Response:
    return _detail(request, ctx, viewer, public_id[:40])


@router.post("/sign/requests/{public_id}/open")
def open_to_sign(request: Request, ctx: Ctx, viewer: Signer, public_id: str) -> Response:
    """Put the document on the signing page, marked as this request's."""
    with ctx.db.read() as session:
        item = queue.get(viewer.principal, session, public_id[:40], with_documents=True)
        document, filename, state = item.document, item.filename, item.state
        is_signer = item.signer_id == viewer.user.id
    if not is_signer or state is not SignatureState.WAITING:
        return _detail(request, ctx, viewer, public_id, status_code=409)
    upload = uploads.store_upload(ctx, viewer, filename, document)
    upload.meta["task"] = item.public_id
    upload.save_meta()
    return guard.redirect(request, f"/sign/{upload.id}")


@router.post("/sign/requests/{public_id}/decline")
def decline(
    request: Request,
    ctx: Ctx,
    viewer: Signer,
    public_id: str,
    reason: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    _ = guard.environment_gettext(request)
    try:
        with ctx.db.session() as session:
            queue.decline(viewer.principal, session, public_id[:40], reason)
    except FieldErrors as exc:
        return _detail(request, ctx, viewer, public_id, _errors(request, exc), status_code=422)
    return guard.redirect(request, f"/sign/requests/{public_id[:40]}", _("Declined."))


def _pdf(data: bytes, name: str) -> Response:
    response = Response(
        data,
        media_type="application/pdf",
        headers={"content-disposition": content_disposition(name)},
    )
    response.headers["cache-control"] = "no-store"
    return response


@router.get("/sign/requests/{public_id}/original.pdf")
def original(request: Request, ctx: Ctx, viewer: Signer, public_id: str) -> Response:
    with ctx.db.read() as session:
        item = queue.get(viewer.principal, session, public_id[:40], with_documents=True)
    return _pdf(item.document, item.filename)


@router.get("/sign/requests/{public_id}/signed.pdf")
def signed(request: Request, ctx: Ctx, viewer: Signer, public_id: str) -> Response:
    with ctx.db.read() as session:
        item = queue.get(viewer.principal, session, public_id[:40], with_documents=True)
    if item.signed_document is None:
        return _detail(request, ctx, viewer, public_id, status_code=404)
    stem = item.filename[:-4] if item.filename.lower().endswith(".pdf") else item.filename
    return _pdf(item.signed_document, f"{stem}-da-ky.pdf")
