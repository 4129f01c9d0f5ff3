"""The server's half of signing with a USB token through the local agent (:mod:`kyso.agent`).

``POST /api/v1/agent/prepare`` lays the signature out and answers the digest the token must
sign; ``POST /api/v1/agent/finish`` takes the token's signature back, and kyso checks it and
embeds it (:mod:`kyso.signing.deferred`). Between the two the page asks the agent on the
user's computer, which asks the PIN itself.

The caller is the signing page (the browser session, with the page's CSRF token in the
``X-CSRF-Token`` header, signing an upload of the hour-long area — the user's own file or a
document a colleague sent for signature) or a user's API token (the PDF in the request; the
signed PDF is the answer to ``finish``).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from kyso import clock
from kyso.context import Context
from kyso.errors import InvalidInput
from kyso.registry.access import Principal
from kyso.registry.sessions import Viewer
from kyso.signing import deferred, queue
from kyso.signing.keyuse import require_signer
from kyso.signing.levels import Level
from kyso.signing.stamps import Appearance, CopyKind
from kyso.web import deps
from kyso.web.api_documents import read_upload
from kyso.web.downloads import content_disposition
from kyso.web.ui import guard
from kyso.web.ui.uploads import SignUpload, clean_name, load_upload, page_geometry

router = APIRouter(prefix="/api/v1/agent", tags=["agent"])
Ctx = Annotated[Context, Depends(deps.context)]
Text = Annotated[str, Form(max_length=300)]
Short = Annotated[str, Form(max_length=40)]
Upload = Annotated[UploadFile | None, File()]


@dataclass(frozen=True)
class Caller:
    principal: Principal
    viewer: Viewer | None  # the browser session's viewer; None for an API token


def _same_site(request: Request, ctx: Context) -> bool:
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return True  # same-origin fetches may omit it; the CSRF token still decides
    host = urlsplit(origin).netloc
    return host in {request.headers.get("host", ""), urlsplit(ctx.settings.base_url).netloc}


def caller(request: Request) -> Caller:
    """A bearer token's principal, or the logged-in page's (with its CSRF token)."""
    if request.headers.get("authorization"):
        return Caller(deps.principal(request), None)
    viewer = guard.signed_in(request)
    sent = request.headers.get("x-csrf-token") or ""
    ctx = deps.context(request)
    if not _same_site(request, ctx) or not sent or not guard.same(sent, guard.csrf_token(request)):
        raise guard.CsrfRefused()
    return Caller(viewer.principal, viewer)


Who = Annotated[Caller, Depends(caller)]


def _certificate(text: str) -> bytes:
    try:
        der = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput("certificate: base64 DER", vi="chứng thư: DER dạng base64") from exc
    if not der:
        raise InvalidInput("choose the certificate", vi="hãy chọn chứng thư")
    return der


async def _appearance(
    request: Request, upload: SignUpload, form: Any, image: Upload, seal: Upload
) -> Appearance | None:
    """The Decree 30/2020 stamp the signing page's form describes (its own rules, in
    :func:`kyso.web.ui.sign.build_appearance`); none when no kind is chosen."""
    from kyso.web.ui.sign import MAX_IMAGE_BYTES, build_appearance

    if not form.kind:
        return None
    images: dict[str, bytes | None] = {}
    for name, file in (("image", image), ("seal", seal)):
        images[name] = (
            (await read_upload(file, MAX_IMAGE_BYTES)) or None
            if file is not None and file.filename
            else None
        )
    _ = guard.environment_gettext(request)
    look, errors = build_appearance(form, upload, images["image"], images["seal"], _)
    if errors:
        raise _FormProblems(errors)
    return look


class _FormProblems(InvalidInput):
    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__("; ".join(fields.values()))
        self.fields = fields


@router.post("/prepare", summary="Prepare a PDF for a signature by a USB token")
async def prepare(
    request: Request,
    ctx: Ctx,
    who: Who,
    certificate: Annotated[str, Form(max_length=20000)],
    upload: Annotated[str, Form(max_length=40)] = "",
    file: Upload = None,
    level: Short = Level.B_B.value,
    kind: Short = "",
    place: Short = "click",
    page: Short = "",
    x: Short = "",
    y: Short = "",
    anchor: Text = "",
    where: Short = "above",
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
    """The digest the token must sign (``digest``, base64, of ``hash``) and the ``id`` to
    finish with, within ``expires``. The certificate (base64 DER, from the agent's list) must
    be a valid one kyso issued to the caller."""
    from kyso.web.ui.sign import SignForm

    require_signer(who.principal)
    der = _certificate(certificate)
    chosen = next((lv for lv in deferred.LEVELS if lv.value == level), None)
    if chosen is None:
        raise InvalidInput("level: B-B or B-T", vi="mức ký: B-B hoặc B-T")
    context: dict[str, Any] = {}
    if who.viewer is not None and upload:
        target = load_upload(ctx, who.viewer, upload)
        try:
            content = target.original.read_bytes()
        except FileNotFoundError as exc:
            raise deferred.PreparedGone("already signed", vi="tài liệu đã được ký") from exc
        context.update(upload=target.id, name=target.name, task=target.meta.get("task"))
    elif file is not None and file.filename:
        content = await read_upload(file, ctx.settings.max_upload_bytes)
        name_ = clean_name(file.filename)
        geometry = await run_in_threadpool(page_geometry, content)
        target = SignUpload("", Path("."), {"name": name_, "pages": geometry})
        context.update(name=name_)
    else:
        raise InvalidInput("upload (the page) or file (the API)", vi="thiếu tài liệu cần ký")
    form = SignForm(
        "", kind, level, place, page, x, y, anchor, where, title, name, number, date,
        copy_kind, copying_org, received_number, received_date, receiving_org,
    )  # fmt: skip
    try:
        look = await _appearance(request, target, form, image, seal)
    except _FormProblems as exc:
        lang = guard.language(request)
        head = exc.to_dict(lang)
        return JSONResponse({**head, "fields": exc.fields}, status_code=422)
    context.update(number=number.strip() or None, kind=kind or None)
    prepared = await run_in_threadpool(
        deferred.prepare,
        ctx,
        who.principal,
        content,
        der,
        level=chosen,
        appearance=look,
        context=context,
    )
    return JSONResponse(
        {
            "id": prepared.id,
            "digest": base64.b64encode(prepared.digest).decode(),
            "hash": prepared.hash,
            "serial": prepared.serial,
            "expires": prepared.expires.isoformat(),
            "summary": context.get("name") or "",
        },
        headers={"cache-control": "no-store"},
    )


class FinishBody(BaseModel):
    id: str = Field(max_length=64)
    signature: str = Field(max_length=4096, description="the token's raw signature, base64")


@router.post("/finish", summary="Embed a USB token's signature into the prepared PDF")
async def finish(request: Request, ctx: Ctx, who: Who, body: FinishBody) -> Response:
    """The signature must verify with the prepared certificate over the prepared data, else
    nothing is signed. The page gets where to go next; an API token gets the signed PDF."""
    try:
        signature = base64.b64decode(body.signature, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput("signature: base64", vi="chữ ký: dạng base64") from exc
    finished = await run_in_threadpool(_finish, ctx, who, body.id, signature)
    upload_id = finished.context.get("upload")
    if who.viewer is None or not upload_id:
        name = str(finished.context.get("name") or "document.pdf")
        stem = name[:-4] if name.lower().endswith(".pdf") else name
        return Response(
            finished.signed,
            media_type="application/pdf",
            headers={"content-disposition": content_disposition(f"{stem}-da-ky.pdf")},
        )
    return JSONResponse({"next": await run_in_threadpool(_keep, ctx, who.viewer, finished)})


def _finish(ctx: Context, who: Caller, prepared_id: str, signature: bytes) -> deferred.Finished:
    # the audit log's entry points: the page, a colleague's document (the queue), the API
    entry = "page" if who.viewer is not None else "api"
    return deferred.finish(ctx, who.principal, prepared_id, signature, entry=entry)


def _keep(ctx: Context, viewer: Viewer, finished: deferred.Finished) -> str:
    """Keep the signed file where the signing page's result is kept (or send it back to the
    colleague who asked), and say where the page goes next."""
    upload = load_upload(ctx, viewer, str(finished.context["upload"]))
    upload.signed.write_bytes(finished.signed)
    upload.original.unlink(missing_ok=True)
    for preview in upload.folder.glob("page-*.png"):
        preview.unlink(missing_ok=True)
    upload.meta.update(
        {
            "signed": clock.now().isoformat(),
            "kind": finished.context.get("kind") or "",
            "level": finished.level.value,
            "key": finished.holder,
            "token": True,
        }
    )
    upload.save_meta()
    task = upload.meta.get("task")
    if task:
        with ctx.db.session() as session:
            queue.complete(viewer.principal, session, str(task), finished.signed)
        return f"/sign/requests/{task}"
    return f"/sign/{upload.id}/done"
