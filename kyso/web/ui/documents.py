"""Pages: signing a PDF with a key kyso holds (``/sign``) and verifying any signed file
(``/verify``, public).

Signing is three steps. The PDF is uploaded into a per-user temporary area under
``<home>/uploads/sign/<user>/<random id>/`` (checked as a PDF first, at most
``max_upload_bytes``, gone after an hour); ``/sign/{id}`` shows its pages as PNG images, rendered
by PDFium, where a click places the stamp (``sign.js`` turns the click into PDF points); the
signature is made by the same functions as ``POST /api/v1/sign/pdf`` (:mod:`kyso.signing.pades`
with a Decree 30/2020 :class:`~kyso.signing.stamps.Appearance`), after which only the signed
file is kept, for its owner, until the hour is over.

Verification runs :func:`kyso.validation.verify.verify` and keeps the report (not the file) for
an hour under an unguessable address, so the page can be shown again in the other language and
downloaded as PDF.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import threading
import time
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from kyso import clock
from kyso.context import Context
from kyso.errors import InvalidInput, KysoError, NotFound, TooLarge
from kyso.registry.access import Action
from kyso.registry.sessions import Viewer
from kyso.signing import keyuse, queue
from kyso.signing.keyuse import UsableKey
from kyso.signing.levels import Level
from kyso.signing.placement import Placement, Where
from kyso.signing.stamps import Appearance, CopyKind, StampKind
from kyso.validation.pool import ValidationPool
from kyso.validation.report import (
    Indication,
    RevocationStatus,
    ValidationReport,
)
from kyso.web import api_documents
from kyso.web.downloads import content_disposition
from kyso.web.ratelimit import spend_verification
from kyso.web.ui import guard
from kyso.web.ui.guard import Ctx, MaybeSignedIn
from kyso.web.ui.templating import render

router = APIRouter(dependencies=[Depends(guard.ui_request)])
Signer = Annotated[Viewer, guard.allowed(Action.DOCUMENT_SIGN)]

#: How long an uploaded PDF, a signed result or a validation report is kept.
KEEP_SECONDS = 3600
#: Uploads one user may have at once; older ones are dropped first.
MAX_UPLOADS_PER_USER = 20
#: Page previews: enough to read a document and place a stamp, small enough for a phone.
PREVIEW_DPI = 96
MAX_PREVIEW_PIXELS = 2000
MAX_PREVIEW_PAGES = 200
MAX_IMAGE_BYTES = 2 * 1024 * 1024
#: The levels a clerk chooses from (B-LTA is for archives, made by the archive system).
LEVELS = (Level.B_B, Level.B_T, Level.B_LT)
_ID = re.compile(r"[A-Za-z0-9_-]{22,40}")  # used with fullmatch

Text = Annotated[str, Form(max_length=300)]
Short = Annotated[str, Form(max_length=40)]
Upload = Annotated[UploadFile | None, File()]


def N_(message: str) -> str:
    return message


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
VERDICTS = {
    Indication.TOTAL_PASSED: N_("VALID"),
    Indication.TOTAL_FAILED: N_("NOT VALID"),
    Indication.INDETERMINATE: N_("NOT CONFIRMED"),
}
REVOCATION_LABELS = {
    RevocationStatus.GOOD: N_("not revoked"),
    RevocationStatus.REVOKED: N_("revoked"),
    RevocationStatus.SUSPENDED: N_("suspended"),
    RevocationStatus.UNKNOWN: N_("unknown"),
    RevocationStatus.NOT_CHECKED: N_("not checked"),
}


# -- the temporary area -------------------------------------------------------------------------
def _area(ctx: Context, *parts: str) -> Path:
    path = ctx.settings.home / "uploads"
    for part in parts:
        path = path / part
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def _expired(path: Path, now: float) -> bool:
    try:
        return now - path.stat().st_mtime > KEEP_SECONDS
    except FileNotFoundError:
        return False


def sweep(ctx: Context) -> None:
    """Delete what is older than an hour: uploads, signed files, reports."""
    now = time.time()
    for user in _area(ctx, "sign").iterdir():
        for folder in user.iterdir() if user.is_dir() else ():
            if _expired(folder, now):
                shutil.rmtree(folder, ignore_errors=True)
    for report in _area(ctx, "reports").iterdir():
        if _expired(report, now):
            report.unlink(missing_ok=True)


def _user_area(ctx: Context, viewer: Viewer) -> Path:
    return _area(ctx, "sign", viewer.user.public_id)


@dataclass
class SignUpload:
    """One PDF on its way to being signed (``meta.json`` beside it says what it is)."""

    id: str
    folder: Path
    meta: dict[str, Any]

    @property
    def original(self) -> Path:
        return self.folder / "original.pdf"

    @property
    def signed(self) -> Path:
        return self.folder / "signed.pdf"

    @property
    def name(self) -> str:
        return str(self.meta.get("name") or "document.pdf")

    @property
    def pages(self) -> list[dict[str, Any]]:
        return list(self.meta.get("pages") or [])

    @property
    def signed_name(self) -> str:
        stem = self.name[:-4] if self.name.lower().endswith(".pdf") else self.name
        return f"{stem}-da-ky.pdf"

    def save_meta(self) -> None:
        (self.folder / "meta.json").write_text(json.dumps(self.meta, ensure_ascii=False))


def _load(ctx: Context, viewer: Viewer, upload_id: str) -> SignUpload:
    """The viewer's own upload, or NotFound (another user's id is unknown here)."""
    if not _ID.fullmatch(upload_id):
        raise NotFound(f"upload {upload_id}", vi=f"tệp tải lên {upload_id}")
    folder = _user_area(ctx, viewer) / upload_id
    try:
        meta = json.loads((folder / "meta.json").read_text())
    except (FileNotFoundError, NotADirectoryError, ValueError) as exc:
        raise NotFound(
            "this upload (files are kept for an hour)",
            vi="tệp tải lên này (tệp chỉ được giữ trong một giờ)",
        ) from exc
    if _expired(folder, time.time()):
        shutil.rmtree(folder, ignore_errors=True)
        raise NotFound(
            "this upload (files are kept for an hour)",
            vi="tệp tải lên này (tệp chỉ được giữ trong một giờ)",
        )
    return SignUpload(upload_id, folder, meta)


def _clean_name(name: str | None) -> str:
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if ch.isprintable() and ch not in '"<>|:*?')[:150].strip()
    return base or "document.pdf"


def _attachment(filename: str) -> str:
    return content_disposition(filename)


# -- PDFium: page geometry and previews ----------------------------------------------------------
# PDFium is not thread-safe (pypdfium2's documentation): one document at a time.
_PDFIUM = threading.Lock()


def _pdfium_error() -> InvalidInput:
    from kyso.signing.pades import InvalidPdf

    return InvalidPdf("the pages cannot be drawn", vi="không hiển thị được các trang")


def page_geometry(data: bytes) -> list[dict[str, Any]]:
    """Each page's visible box (PDF points) and rotation: what ``sign.js`` needs to turn a
    click on the preview into PDF coordinates."""
    import pypdfium2 as pdfium

    with _PDFIUM:
        try:
            document = pdfium.PdfDocument(data)
            try:
                pages = []
                for index in range(len(document)):
                    page = document[index]
                    box = [round(float(v), 2) for v in page.get_cropbox()]
                    pages.append({"box": box, "rotation": int(page.get_rotation()) % 360})
                    page.close()
                return pages
            finally:
                document.close()
        except pdfium.PdfiumError as exc:
            raise _pdfium_error() from exc


def render_page(path: Path, index: int) -> bytes:
    import io

    import pypdfium2 as pdfium

    with _PDFIUM:
        try:
            document = pdfium.PdfDocument(path)
            try:
                page = document[index]
                # 96 dpi, but never more than MAX_PREVIEW_PIXELS on the longer side: a page
                # box of 14,400 points would otherwise cost gigabytes of memory.
                width, height = page.get_size()
                scale = min(PREVIEW_DPI / 72, MAX_PREVIEW_PIXELS / max(width, height, 1))
                image = page.render(scale=scale).to_pil()
                page.close()
            finally:
                document.close()
        except pdfium.PdfiumError as exc:
            raise _pdfium_error() from exc
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def store_upload(ctx: Context, viewer: Viewer, name: str, data: bytes) -> SignUpload:
    """Check ``data`` is a PDF kyso can sign (not broken, not encrypted), then keep it."""
    from kyso.signing.pades import open_pdf

    open_pdf(data)
    pages = page_geometry(data)
    if not pages:
        raise InvalidInput("the PDF has no page", vi="tệp PDF không có trang nào")
    sweep(ctx)
    area = _user_area(ctx, viewer)
    mine = sorted((p for p in area.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
    for old in mine[: max(0, len(mine) - MAX_UPLOADS_PER_USER + 1)]:
        shutil.rmtree(old, ignore_errors=True)
    upload_id = secrets.token_urlsafe(16)
    folder = area / upload_id
    folder.mkdir(mode=0o700)
    upload = SignUpload(
        upload_id,
        folder,
        {"name": _clean_name(name), "pages": pages, "uploaded": clock.now().isoformat()},
    )
    upload.original.write_bytes(data)
    upload.save_meta()
    return upload


# -- keys the viewer may sign with -----------------------------------------------------------------
def usable_keys(
    ctx: Context, viewer: Viewer, limit: int = 200, only: str | None = None
) -> list[UsableKey]:
    """The keys the signing service lets the viewer use (their own, their unit's seal)."""
    with ctx.db.read() as session:
        return keyuse.usable_keys(
            viewer.principal, session, ctx.keystore.name, limit=limit, only=only
        )


def _check_key(ctx: Context, viewer: Viewer, key_id: str) -> None:
    """The signing service's own check, before the form is read further (a 403 for a key that
    is not the viewer's, whatever else the form says)."""
    with ctx.db.read() as session:
        keyuse.authorize(viewer.principal, session, ctx.keystore.name, key_id)


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


async def _read_image(file: UploadFile | None) -> bytes | None:
    if file is None or not file.filename:
        return None
    data = await api_documents.read_upload(file, MAX_IMAGE_BYTES)
    return data or None


def _key_label(key: UsableKey, _: Any) -> str:
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
    keys = usable_keys(ctx, viewer)
    if not form.key_id and keys:
        form.key_id = keys[0].key_id
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
            "keys": keys,
            "key_options": [(k.key_id, _key_label(k, _)) for k in keys],
            "kinds": [(k.value, _(label)) for k, label in KIND_LABELS.items()],
            "levels": [(lv.value, _(LEVEL_LABELS[lv])) for lv in LEVELS],
            "wheres": [(w.value, _(label)) for w, label in WHERE_LABELS.items()],
            "copy_kinds": [(c.value, c.value) for c in CopyKind],
            "preview_dpi": PREVIEW_DPI,
        },
        status_code=status_code,
    )


@router.get("/sign")
def sign_start(request: Request, ctx: Ctx, viewer: Signer) -> Response:
    return _upload_page(request, ctx, {}, bool(usable_keys(ctx, viewer, limit=1)))


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
    upload = _load(ctx, viewer, upload_id)
    if not upload.original.exists():
        return guard.redirect(request, f"/sign/{upload.id}/done")
    return _sign_page(request, ctx, viewer, upload, SignForm(), {})


@router.get("/sign/{upload_id}/page/{number}.png")
def sign_preview(
    request: Request, ctx: Ctx, viewer: Signer, upload_id: str, number: str
) -> Response:
    upload = _load(ctx, viewer, upload_id)
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
    upload = _load(ctx, viewer, upload_id)
    if not upload.original.exists():
        return guard.redirect(request, f"/sign/{upload.id}/done")
    form = SignForm(
        key_id.strip(), kind, level, place, page, x, y, anchor, where, title, name, number,
        date, copy_kind, copying_org, received_number, received_date, receiving_org,
    )  # fmt: skip
    errors: dict[str, str] = {}
    if not form.key_id:
        errors["key_id"] = _("Choose the key to sign with.")
    else:
        await run_in_threadpool(_check_key, ctx, viewer, form.key_id)  # 403 if not hers
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
    upload.meta.update(
        {
            "signed": clock.now().isoformat(),
            "kind": form.kind,
            "level": form.level,
            "key": next(
                (k.holder for k in usable_keys(ctx, viewer, limit=1, only=form.key_id)),
                form.key_id,
            ),
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
    upload = _load(ctx, viewer, upload_id)
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
    upload = _load(ctx, viewer, upload_id)
    if not upload.signed.exists():
        raise NotFound("the signed file", vi="tệp đã ký")
    response = Response(
        upload.signed.read_bytes(),
        media_type="application/pdf",
        headers={"content-disposition": _attachment(upload.signed_name)},
    )
    guard.finish(request, response)  # security headers and no-store, as every page
    return response


# -- verifying -----------------------------------------------------------------------------------
def _run_verify(
    ctx: Context, pool: ValidationPool, content: bytes, name: str, original: bytes | None
) -> str:
    # in a worker process, bounded in time and memory (kyso.validation.pool)
    report = pool.validate(content, name=name, detached=original)
    sweep(ctx)
    token = secrets.token_urlsafe(24)
    path = _area(ctx, "reports") / f"{token}.json"
    path.write_text(json.dumps(report.to_dict(), ensure_ascii=False))
    return token


def _load_report(ctx: Context, token: str) -> ValidationReport:
    if not _ID.fullmatch(token):
        raise NotFound("this report", vi="báo cáo này")
    path = _area(ctx, "reports") / f"{token}.json"
    try:
        if _expired(path, time.time()):
            path.unlink(missing_ok=True)
            raise FileNotFoundError(path)
        return ValidationReport.from_dict(json.loads(path.read_text()))
    except (FileNotFoundError, ValueError, KeyError) as exc:
        raise NotFound(
            "this report (reports are kept for an hour)",
            vi="báo cáo này (báo cáo chỉ được giữ trong một giờ)",
        ) from exc


@router.get("/verify")
def verify_start(request: Request) -> Response:
    return render(request, "documents/verify_upload.html", {"errors": {}})


@router.post("/verify/report")
async def verify_document(
    request: Request,
    ctx: Ctx,
    viewer: MaybeSignedIn,
    file: Upload = None,
    data: Upload = None,
    signed: Annotated[str, Form(max_length=60)] = "",
) -> Response:
    """Validate an uploaded file (or, for its signer, a file just signed on /sign)."""
    if viewer is None:
        await spend_verification(request)
    _ = guard.environment_gettext(request)
    lang = guard.language(request)
    errors: dict[str, str] = {}
    status = 422
    limit = ctx.settings.max_upload_bytes
    content: bytes | None = None
    name = "document"
    try:
        if file is not None and file.filename:
            content = await api_documents.read_upload(file, limit)
            name = _clean_name(file.filename)
        elif signed and viewer is not None:
            upload = _load(ctx, viewer, signed)
            if not upload.signed.exists():
                raise NotFound("the signed file", vi="tệp đã ký")
            content, name = upload.signed.read_bytes(), upload.signed_name
        if not content:
            errors["file"] = _("Choose the signed file to check.")
    except KysoError as exc:
        errors["file"] = exc.message(lang)
        status = exc.http_status if exc.http_status in (404, 413, 422) else 422
    original = None
    if not errors and data is not None and data.filename:
        try:
            original = await api_documents.read_upload(data, limit)
        except TooLarge as exc:
            errors["data"] = exc.message(lang)
            status = 413
    if not errors:
        assert content is not None
        try:
            pool = api_documents.validation_pool(request)
            token = await run_in_threadpool(_run_verify, ctx, pool, content, name, original)
        except KysoError as exc:
            errors["file"] = exc.message(lang)
            status = exc.http_status if exc.http_status in (413, 422, 503) else 422
        else:
            return guard.redirect(request, f"/verify/report/{token}")
    return render(request, "documents/verify_upload.html", {"errors": errors}, status_code=status)


def _reasons(report: ValidationReport, lang: str) -> list[str]:
    """Why the document is not valid: each signature that did not pass, in plain words."""
    return [
        s.message(lang) for s in report.signatures if s.indication is not Indication.TOTAL_PASSED
    ]


@router.get("/verify/report/{token}.pdf")
def verify_report_pdf(request: Request, ctx: Ctx, token: str) -> Response:
    """The report as PDF, rendered once per language and kept beside its JSON, with the
    JSON's time (so both go after the same hour); another download reads the file."""
    from kyso.validation import render

    report = _load_report(ctx, token)
    lang = guard.language(request)
    reports = _area(ctx, "reports")
    cached = reports / f"{token}.{lang}.pdf"
    try:
        pdf = cached.read_bytes()
    except FileNotFoundError:
        pdf = render.to_pdf(report, lang)
        part = reports / f"{token}.{lang}.{secrets.token_hex(4)}.part"
        part.write_bytes(pdf)
        born = (reports / f"{token}.json").stat()
        os.utime(part, ns=(born.st_atime_ns, born.st_mtime_ns))
        part.replace(cached)  # whole or not at all, whoever renders it at the same time
    filename = _clean_name(report.document).rsplit(".", 1)[0] + "-bao-cao-xac-thuc.pdf"
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"content-disposition": _attachment(filename)},
    )


@router.get("/verify/report/{token}")
def verify_report(request: Request, ctx: Ctx, token: str) -> Response:
    report = _load_report(ctx, token)
    lang = guard.language(request)
    _ = guard.environment_gettext(request)
    return render(
        request,
        "documents/verify_report.html",
        {
            "report": report,
            "token": token,
            "verdict": _(VERDICTS[report.indication]),
            "summary": report.message_vi if lang == "vi" else report.message_en,
            "reasons": _reasons(report, lang),
            "revocation_labels": {k.value: _(v) for k, v in REVOCATION_LABELS.items()},
            "verdicts": {k.value: _(v) for k, v in VERDICTS.items()},
        },
    )


def _digits(text: str) -> bool:
    """ASCII digits only: ``str.isdigit`` also accepts '²' and other digits ``int`` refuses."""
    return text.isascii() and text.isdigit() and len(text) <= 9
