"""Pages: signing a PDF with a key kyso holds (``/sign``).

Three steps. The PDF is uploaded into the signer's hour-long area (:mod:`kyso.web.ui.uploads`);
``/sign/{id}`` shows its pages as PNG images, rendered by PDFium, where a click places the stamp
(``sign.js`` turns the click into PDF points); the signature is made by the signing service
(:func:`kyso.signing.service.sign_with_key`: the key's use checked, the audit entry written),
with the same functions as ``POST /api/v1/sign/pdf`` (:mod:`kyso.signing.pades` with a Decree
30/2020 :class:`~kyso.signing.stamps.Appearance`), after which only the signed file is kept, for
its owner, until the hour is over.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from kyso import clock
from kyso.context import Context
from kyso.errors import InvalidInput, KysoError, NotFound
from kyso.registry.access import Action
from kyso.registry.sessions import Viewer
from kyso.remote import central
from kyso.signing import keyuse, queue
from kyso.signing.keyuse import UsableKey
from kyso.signing.levels import Level
from kyso.signing.placement import Placement, Where
from kyso.signing.stamps import Appearance, CopyKind, StampKind
from kyso.web import api_documents
from kyso.web.ui import guard
from kyso.web.ui.guard import Ctx
from kyso.web.ui.labels import N_
from kyso.web.ui.templating import render
from kyso.web.ui.uploads import (
    MAX_IMAGE_BYTES,
    MAX_PREVIEW_PAGES,
    PREVIEW_DPI,
    SignUpload,
    attachment,
    load_upload,
    render_page,
    store_upload,
)

router = APIRouter(dependencies=[Depends(guard.ui_request)])
Signer = Annotated[Viewer, guard.allowed(Action.DOCUMENT_SIGN)]

#: The levels a clerk chooses from (B-LTA is for archives, made by the archive system).
LEVELS = (Level.B_B, Level.B_T, Level.B_LT)

Text = Annotated[str, Form(max_length=300)]
Short = Annotated[str, Form(max_length=40)]
Upload = Annotated[UploadFile | None, File()]


# Decree 30/2020/NĐ-CP Annex I names the kinds of signatures on an electronic document.
KIND_LABELS = {
    StampKind.APPROVAL: N_("Approval (the competent person's signature)"),
    StampKind.ISSUING: N_("Issuing (the organization's red seal)"),
    StampKind.ATTACHMENT: N_("Attachment or appendix"),
    StampKind.COPY: N_("Copy (SAO Y, SAO LỤC, TRÍCH SAO)"),
    StampKind.INCOMING: N_("Incoming (the ĐẾN mark)"),
}
LEVEL_LABELS = {
    Level.B_B: N_("B-B: basic signature"),
    Level.B_T: N_("B-T: with a time-stamp from kyso"),
    Level.B_LT: N_("B-LT: with the revocation data, for long-term keeping"),
}
WHERE_LABELS = {
    Where.ABOVE: N_("above the text"),
    Where.BELOW: N_("below the text"),
    Where.OVER: N_("over the text"),
    Where.LEFT: N_("left of the text"),
    Where.RIGHT: N_("right of the text"),
}


# -- keys the viewer may sign with -----------------------------------------------------------------
def usable_keys(
    ctx: Context, viewer: Viewer, limit: int = 200, only: str | None = None
) -> list[UsableKey]:
    """The keys the signing service lets the viewer use (their own, their unit's seal)."""
    with ctx.db.read() as session:
        return keyuse.usable_keys(
            viewer.principal, session, ctx.keystore.name, limit=limit, only=only
        )


def central_keys(ctx: Context, viewer: Viewer, limit: int = 200) -> list[UsableKey]:
    """The viewer's keys in the central HSM (their own, the seals they are a delegate of):
    they sign only after the viewer approves on the phone (:mod:`kyso.remote.documents`)."""
    with ctx.db.read() as session:
        return keyuse.usable_keys(viewer.principal, session, central.STORE_NAME, limit=limit)


@dataclass(frozen=True)
class KeyKind:
    """One kind of key the signing form offers. The form's value is ``prefix`` + the key's
    id, so the kinds never mix up their keys; a kind with ``waits`` signs after a consent
    elsewhere (the phone) instead of in place. Another kind is one more entry of
    :data:`KEY_KINDS`."""

    prefix: str  # "" for the keys kyso holds itself
    store: Callable[[Context], str]  # the key store's name, as keyuse knows it
    keys: Callable[[Context, Viewer], list[UsableKey]]
    suffix: str | None = None  # said after the key's label (msgid)
    waits: bool = False


HELD = KeyKind("", lambda ctx: ctx.keystore.name, lambda ctx, v: usable_keys(ctx, v))
CENTRAL = KeyKind(
    central.PREFIX,
    lambda ctx: central.STORE_NAME,
    lambda ctx, v: central_keys(ctx, v),
    suffix=N_("Central HSM – approve on the phone"),
    waits=True,
)
KEY_KINDS = (HELD, CENTRAL)


def kind_of(value: str) -> tuple[KeyKind, str]:
    """The kind of key a form value names, and the key's id in its store."""
    for kind in sorted(KEY_KINDS, key=lambda k: -len(k.prefix)):
        if kind.prefix and value.startswith(kind.prefix):
            return kind, value.removeprefix(kind.prefix)
    return HELD, value


def key_options(ctx: Context, viewer: Viewer, _: Any) -> list[tuple[str, str]]:
    """(form value, label) of every key the viewer may sign with, kind after kind."""
    options = []
    for kind in KEY_KINDS:
        for key in kind.keys(ctx, viewer):
            label = key_label(key, _)
            if kind.suffix:
                label = f"{label} — {_(kind.suffix)}"
            options.append((kind.prefix + key.key_id, label))
    return options


def _check_key(ctx: Context, viewer: Viewer, value: str) -> UsableKey:
    """The signing service's own check, before the form is read further (a 403 for a key that
    is not the viewer's, whatever else the form says)."""
    kind, key_id = kind_of(value)
    with ctx.db.read() as session:
        return keyuse.authorize(viewer.principal, session, kind.store(ctx), key_id)


# -- signing -------------------------------------------------------------------------------------
@dataclass
class SignForm:
    """What the signing form sent, kept as typed so the page can show it again."""

    key_id: str = ""
    kind: str = ""
    level: str = Level.B_B.value
    place: str = "click"
    page: str = ""
    x: str = ""
    y: str = ""
    anchor: str = ""
    where: str = Where.ABOVE.value
    title: str = ""
    name: str = ""
    number: str = ""
    date: str = ""
    copy_kind: str = CopyKind.SAO_Y.value
    copying_org: str = ""
    received_number: str = ""
    received_date: str = ""
    receiving_org: str = ""


def _number(text: str) -> float | None:
    try:
        value = float(text.strip().replace(",", "."))
    except ValueError:
        return None
    return value if value == value and abs(value) < 1e6 else None  # no NaN, no infinity


def _day(text: str) -> date | None:
    text = text.strip()
    for pattern in ("%Y-%m-%d", "%d/%m/%Y"):
        try:
            return datetime.strptime(text, pattern).date()
        except ValueError:
            continue
    return None


def build_appearance(
    form: SignForm,
    upload: SignUpload,
    image: bytes | None,
    seal: bytes | None,
    _: Any,
) -> tuple[Appearance | None, dict[str, str]]:
    """The Decree 30/2020 appearance the form describes, or the errors to show by its fields."""
    from kyso.signing import stamps

    errors: dict[str, str] = {}
    try:
        kind = StampKind(form.kind)
    except ValueError:
        return None, {"kind": _("Choose the kind of signature.")}
    need: dict[StampKind, list[tuple[str, bytes | str | None, str]]] = {
        StampKind.APPROVAL: [("image", image, _("Add the image of the handwritten signature."))],
        StampKind.ISSUING: [
            ("seal", seal, _("Add the image of the organization's seal.")),
            ("number", form.number.strip(), _("Enter the document's number and notation.")),
            ("date", form.date.strip(), _("Enter the document's date.")),
        ],
        StampKind.ATTACHMENT: [
            ("number", form.number.strip(), _("Enter the document's number and notation."))
        ],
        StampKind.COPY: [
            ("copying_org", form.copying_org.strip(), _("Enter the copying organization."))
        ],
        StampKind.INCOMING: [
            ("received_number", form.received_number.strip(), _("Enter the received number.")),
            ("received_date", form.received_date.strip(), _("Enter the received date.")),
        ],
    }
    for name, value, message in need[kind]:
        if not value:
            errors[name] = message
    document_date = _day(form.date) if form.date.strip() else None
    if form.date.strip() and document_date is None:
        errors["date"] = _("Write the date as dd/mm/yyyy.")
    received_date = _day(form.received_date) if form.received_date.strip() else None
    if form.received_date.strip() and received_date is None:
        errors["received_date"] = _("Write the date as dd/mm/yyyy.")
    if kind is StampKind.COPY and form.copy_kind not in {c.value for c in CopyKind}:
        errors["copy_kind"] = _("Choose SAO Y, SAO LỤC or TRÍCH SAO.")
    if errors:
        return None, errors
    look = Appearance(
        kind=kind,
        position_title=form.title.strip() or None,
        full_name=form.name.strip() or None,
        number=form.number.strip() or None,
        date=document_date,
        copy_kind=form.copy_kind if kind is StampKind.COPY else None,
        copying_org=form.copying_org.strip() or None,
        received_number=form.received_number.strip() or None,
        received_date=received_date,
        receiving_org=form.receiving_org.strip() or None,
        signature_image=image if kind is StampKind.APPROVAL else None,
        seal_image=seal if kind is StampKind.ISSUING else None,
    )
    if form.place == "click":
        page = int(form.page) if _digits(form.page.strip()) else None
        x, y = _number(form.x), _number(form.y)
        if page is None or not 1 <= page <= len(upload.pages):
            errors["page"] = _("Click on a page, or enter a page number from 1 to %(n)s.") % {
                "n": len(upload.pages)
            }
        if x is None:
            errors["x"] = _("Click on a page, or enter the distance in points.")
        if y is None:
            errors["y"] = _("Click on a page, or enter the distance in points.")
        if errors:
            return None, errors
        assert page is not None and x is not None and y is not None
        # The click is the centre of the stamp (for an issuing seal: of the leader's signature,
        # which the seal overlaps by a third, Decree 30/2020 Annex I).
        width, height = stamps.natural_size(look)
        box = (x - width / 2, y - height / 2, x + width / 2, y + height / 2)
        look.placement = Placement.at(page - 1, tuple(round(v, 2) for v in box))  # type: ignore[arg-type]
    elif form.place == "anchor":
        if not form.anchor.strip():
            return None, {"anchor": _("Enter a text printed in the document, e.g. the name.")}
        try:
            where = Where(form.where)
        except ValueError:
            where = Where.ABOVE
        look.placement = Placement.by_anchor(form.anchor.strip(), where=where)
    elif form.place == "corner":
        if kind in (StampKind.APPROVAL, StampKind.ISSUING):
            return None, {
                "place": _("An approval or issuing signature goes where you click or by a text.")
            }
    else:
        return None, {"place": _("Choose where the stamp goes.")}
    return look, {}


def _sign_pdf(
    ctx: Context,
    viewer: Viewer,
    upload: SignUpload,
    key_id: str,
    level: Level,
    look: Appearance,
    number: str | None,
) -> None:
    """Sign through the same service as ``POST /api/v1/sign/pdf`` (the key's check, the
    audit entry), keep the result, drop the original."""
    from kyso.signing.pades import sign_pdf
    from kyso.signing.service import level_support, sign_with_key

    try:
        content = upload.original.read_bytes()
    except FileNotFoundError:
        return  # a second click: the first one signed it, and the result page shows that
    stamper, trust = level_support(ctx, level, trust_from=Level.B_T)
    signed = sign_with_key(
        ctx,
        viewer.principal,
        key_id,
        content,
        lambda data, signer: sign_pdf(
            data, signer, level=level, appearance=look, timestamper=stamper, trust=trust
        ),
        kind="pdf",
        entry="queue" if upload.meta.get("task") else "page",
        name=upload.name,
        number=number,
        level=level,
    )
    upload.signed.write_bytes(signed)
    upload.original.unlink(missing_ok=True)
    for preview in upload.folder.glob("page-*.png"):
        preview.unlink(missing_ok=True)


def _ask_central(
    ctx: Context,
    viewer: Viewer,
    upload: SignUpload,
    key_id: str,
    level: Level,
    look: Appearance,
    number: str | None,
) -> str:
    """Put the document on the viewer's phone for approval; kyso signs it with the central
    key once approved (:func:`kyso.remote.documents.complete`). Returns the approval's id."""
    from kyso.remote import documents

    task = upload.meta.get("task")
    approval = documents.request_signatures(
        ctx,
        viewer.principal,
        key_id,
        [
            documents.DocumentToSign(
                title=upload.name,
                content=upload.original.read_bytes(),
                filename=upload.name,
                number=number,
                level=level,
                appearance=look,
                entry="queue" if task else "page",
                signature_request=str(task) if task else None,
            )
        ],
        "kyso",
    )
    return approval.public_id


async def _read_image(file: UploadFile | None) -> bytes | None:
    if file is None or not file.filename:
        return None
    data = await api_documents.read_upload(file, MAX_IMAGE_BYTES)
    return data or None


def key_label(key: UsableKey, _: Any) -> str:
    until = clock.local(key.not_after).strftime("%d/%m/%Y")
    if key.personal:
        return _("%(holder)s (your own key), valid until %(date)s") % {
            "holder": key.holder,
            "date": until,
        }
    return _("%(holder)s (%(unit)s), valid until %(date)s") % {
        "holder": key.holder,
        "unit": key.unit or "—",
        "date": until,
    }


def _sign_page(
    request: Request,
    ctx: Context,
    viewer: Viewer,
    upload: SignUpload,
    form: SignForm,
    errors: dict[str, str],
    status_code: int = 200,
) -> Response:
    _ = guard.environment_gettext(request)
    options = key_options(ctx, viewer, _)
    if not form.key_id and options:
        form.key_id = options[0][0]
    if not form.name:
        form.name = viewer.user.full_name
    shown = upload.pages[:MAX_PREVIEW_PAGES]
    return render(
        request,
        "documents/sign_place.html",
        {
            "upload": upload,
            "pages": shown,
            "more_pages": len(upload.pages) - len(shown),
            "form": form,
            "errors": errors,
            "keys": options,
            "key_options": options,
            "kinds": [(k.value, _(label)) for k, label in KIND_LABELS.items()],
            "levels": [(lv.value, _(LEVEL_LABELS[lv])) for lv in LEVELS],
            "wheres": [(w.value, _(label)) for w, label in WHERE_LABELS.items()],
            "copy_kinds": [(c.value, c.value) for c in CopyKind],
            "preview_dpi": PREVIEW_DPI,
        },
        status_code=status_code,
        talks_to_agent=True,  # the USB-token signing box (documents/sign_agent.html)
    )


# -- waiting for the phone (central keys) --------------------------------------------------------
def _approval_status(ctx: Context, viewer: Viewer, approval_id: str, lang: str) -> dict[str, Any]:
    """The approval as the page's script reads it, with the page's own download links."""
    from kyso.remote import documents

    with ctx.db.read() as session:
        found = documents.status(viewer.principal, session, approval_id[:40])
        tasks = documents.queue_requests(viewer.principal, session, found.public_id)
    body = found.to_dict(lang)
    base = f"/sign/approvals/{found.public_id}/documents"
    for item in body["documents"]:
        item["download"] = f"{base}/{item['position']}" if item["signed"] else None
        task = tasks.get(item["position"])
        item["request"] = f"/sign/requests/{task}" if task else None
    return body


@router.get("/sign/approvals/{approval_id}")
def approval_page(request: Request, ctx: Ctx, viewer: Signer, approval_id: str) -> Response:
    """The status box: waiting on the phone (with the time left), then done, refused,
    expired or failed; ``sign.js`` asks :func:`approval_json` every 2 seconds."""
    from kyso.remote import documents

    lang = guard.language(request)
    with ctx.db.read() as session:
        found = documents.status(viewer.principal, session, approval_id[:40])
    return render(
        request,
        "documents/sign_waiting.html",
        {
            "approval": found,
            "error": (found.error or {}).get(lang) if found.error else None,
            "status": _approval_status(ctx, viewer, found.public_id, lang),
        },
    )


@router.get("/sign/approvals/{approval_id}/status")
def approval_json(request: Request, ctx: Ctx, viewer: Signer, approval_id: str) -> Response:
    response = JSONResponse(_approval_status(ctx, viewer, approval_id, guard.language(request)))
    guard.finish(request, response)
    response.headers["cache-control"] = "no-store"
    return response


@router.get("/sign/approvals/{approval_id}/documents/{position}")
def approval_download(
    request: Request, ctx: Ctx, viewer: Signer, approval_id: str, position: str
) -> Response:
    from kyso.remote import documents

    if not _digits(position):
        raise NotFound(f"document {position}", vi=f"văn bản {position}")
    with ctx.db.read() as session:
        found = documents.result(viewer.principal, session, approval_id[:40], int(position))
    response = Response(
        found.content,
        media_type=found.media_type,
        headers={"content-disposition": attachment(found.filename)},
    )
    guard.finish(request, response)
    return response


@router.get("/sign")
def sign_start(request: Request, ctx: Ctx, viewer: Signer) -> Response:
    has_keys = bool(usable_keys(ctx, viewer, limit=1) or central_keys(ctx, viewer, limit=1))
    return _upload_page(request, ctx, {}, has_keys)


def _upload_page(
    request: Request, ctx: Context, errors: dict[str, str], has_keys: bool, status_code: int = 200
) -> Response:
    return render(
        request,
        "documents/sign_upload.html",
        {
            "errors": errors,
            "has_keys": has_keys,
            "max_mb": ctx.settings.max_upload_bytes // (1024 * 1024),
        },
        status_code=status_code,
    )


@router.post("/sign")
async def sign_upload(request: Request, ctx: Ctx, viewer: Signer, file: Upload = None) -> Response:
    _ = guard.environment_gettext(request)
    lang = guard.language(request)
    errors: dict[str, str] = {}
    status = 422
    if file is None or not file.filename:
        errors["file"] = _("Choose the PDF file to sign.")
    else:
        try:
            data = await api_documents.read_upload(file, ctx.settings.max_upload_bytes)
            if not data:
                raise InvalidInput("the file is empty", vi="tệp rỗng")
            upload = await run_in_threadpool(store_upload, ctx, viewer, file.filename, data)
        except KysoError as exc:
            errors["file"] = exc.message(lang)
            status = exc.http_status if exc.http_status in (413, 422) else 422
        else:
            return guard.redirect(request, f"/sign/{upload.id}")
    return _upload_page(request, ctx, errors, True, status)


@router.get("/sign/{upload_id}")
def sign_place(request: Request, ctx: Ctx, viewer: Signer, upload_id: str) -> Response:
    upload = load_upload(ctx, viewer, upload_id)
    if not upload.original.exists():
        return guard.redirect(request, f"/sign/{upload.id}/done")
    return _sign_page(request, ctx, viewer, upload, SignForm(), {})


@router.get("/sign/{upload_id}/page/{number}.png")
def sign_preview(
    request: Request, ctx: Ctx, viewer: Signer, upload_id: str, number: str
) -> Response:
    upload = load_upload(ctx, viewer, upload_id)
    if not _digits(number) or not 1 <= int(number) <= len(upload.pages):
        raise NotFound(f"page {number}", vi=f"trang {number}")
    cached = upload.folder / f"page-{int(number)}.png"
    if cached.exists():
        png = cached.read_bytes()
    elif upload.original.exists():
        png = render_page(upload.original, int(number) - 1)
        cached.write_bytes(png)
    else:
        raise NotFound("the page (the document is already signed)", vi="trang (tài liệu đã ký)")
    # A preview of a document that may be confidential: never kept by a shared office PC.
    response = Response(png, media_type="image/png")
    guard.finish(request, response)
    response.headers["cache-control"] = "no-store"
    return response


@router.post("/sign/{upload_id}")
async def sign_document(
    request: Request,
    ctx: Ctx,
    viewer: Signer,
    upload_id: str,
    key_id: Annotated[str, Form(max_length=200)] = "",
    kind: Short = "",
    level: Short = Level.B_B.value,
    place: Short = "click",
    page: Short = "",
    x: Short = "",
    y: Short = "",
    anchor: Text = "",
    where: Short = Where.ABOVE.value,
    title: Text = "",
    name: Text = "",
    number: Text = "",
    date: Short = "",
    copy_kind: Short = CopyKind.SAO_Y.value,
    copying_org: Text = "",
    received_number: Text = "",
    received_date: Short = "",
    receiving_org: Text = "",
    image: Upload = None,
    seal: Upload = None,
) -> Response:
    _ = guard.environment_gettext(request)
    lang = guard.language(request)
    upload = load_upload(ctx, viewer, upload_id)
    if not upload.original.exists():
        return guard.redirect(request, f"/sign/{upload.id}/done")
    form = SignForm(
        key_id.strip(), kind, level, place, page, x, y, anchor, where, title, name, number,
        date, copy_kind, copying_org, received_number, received_date, receiving_org,
    )  # fmt: skip
    errors: dict[str, str] = {}
    chosen_key: UsableKey | None = None
    if not form.key_id:
        errors["key_id"] = _("Choose the key to sign with.")
    else:
        chosen_key = await run_in_threadpool(_check_key, ctx, viewer, form.key_id)  # 403
    chosen_level = next((lv for lv in LEVELS if lv.value == level), None)
    if chosen_level is None:
        errors["level"] = _("Choose B-B, B-T or B-LT.")
    images: dict[str, bytes | None] = {}
    for field, file in (("image", image), ("seal", seal)):
        try:
            images[field] = await _read_image(file)
        except KysoError as exc:
            errors[field] = exc.message(lang)
    look, problems = build_appearance(form, upload, images.get("image"), images.get("seal"), _)
    errors.update(problems)
    key_kind, key_id = kind_of(form.key_id)
    if not errors and key_kind.waits:
        assert look is not None and chosen_level is not None and chosen_key is not None
        try:
            approval_id = await run_in_threadpool(
                _ask_central,
                ctx,
                viewer,
                upload,
                key_id,
                chosen_level,
                look,
                form.number.strip() or None,
            )
        except KysoError as exc:
            errors["form"] = exc.message(lang)
        else:
            upload.meta.update({"approval": approval_id, "key": chosen_key.holder})
            upload.save_meta()
            return guard.redirect(request, f"/sign/approvals/{approval_id}")
    if not errors:
        assert look is not None and chosen_level is not None
        try:
            await run_in_threadpool(
                _sign_pdf,
                ctx,
                viewer,
                upload,
                form.key_id,
                chosen_level,
                look,
                form.number.strip() or None,
            )
        except KysoError as exc:
            field = "anchor" if form.place == "anchor" and exc.code == "not_found" else "form"
            if exc.code == "invalid_input" and form.place == "click":
                field = "page" if "page" in exc.message("en") else "form"
            errors[field] = exc.message(lang)
    if errors:
        return _sign_page(request, ctx, viewer, upload, form, errors, status_code=422)
    assert chosen_key is not None
    upload.meta.update(
        {
            "signed": clock.now().isoformat(),
            "kind": form.kind,
            "level": form.level,
            "key": chosen_key.holder,
        }
    )
    upload.save_meta()
    task = upload.meta.get("task")
    if task:  # a document a colleague sent: the signed file goes back to them
        with ctx.db.session() as session:
            queue.complete(viewer.principal, session, str(task), upload.signed.read_bytes())
        return guard.redirect(
            request, f"/sign/requests/{task}", _("The document is signed and sent back.")
        )
    return guard.redirect(request, f"/sign/{upload.id}/done", _("The document is signed."))


@router.get("/sign/{upload_id}/done")
def sign_done(request: Request, ctx: Ctx, viewer: Signer, upload_id: str) -> Response:
    upload = load_upload(ctx, viewer, upload_id)
    if not upload.signed.exists():
        return guard.redirect(request, f"/sign/{upload.id}")
    _ = guard.environment_gettext(request)
    kind = upload.meta.get("kind")
    return render(
        request,
        "documents/sign_done.html",
        {
            "upload": upload,
            "kind_label": _(KIND_LABELS[StampKind(kind)]) if kind in set(StampKind) else "",
            "level_label": _(LEVEL_LABELS[Level(upload.meta["level"])])
            if upload.meta.get("level") in set(Level) and Level(upload.meta["level"]) in LEVELS
            else "",
            "signed_at": datetime.fromisoformat(upload.meta["signed"])
            if upload.meta.get("signed")
            else None,
        },
    )


@router.get("/sign/{upload_id}/signed.pdf")
def sign_download(request: Request, ctx: Ctx, viewer: Signer, upload_id: str) -> Response:
    upload = load_upload(ctx, viewer, upload_id)
    if not upload.signed.exists():
        raise NotFound("the signed file", vi="tệp đã ký")
    response = Response(
        upload.signed.read_bytes(),
        media_type="application/pdf",
        headers={"content-disposition": attachment(upload.signed_name)},
    )
    guard.finish(request, response)  # security headers and no-store, as every page
    return response


def _digits(text: str) -> bool:
    """ASCII digits only: ``str.isdigit`` also accepts '²' and other digits ``int`` refuses."""
    return text.isascii() and text.isdigit() and len(text) <= 9
