"""Pages: verifying any signed file (``/verify``, public).

Validation runs in the bounded worker pool (:mod:`kyso.validation.pool`) and the report (not
the file) is kept for an hour under an unguessable address (:mod:`kyso.web.ui.uploads`), so the
page can be shown again in the other language and downloaded as PDF (rendered once per
language).
"""

from __future__ import annotations

import json
import os
import secrets
import time
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from kyso.context import Context
from kyso.errors import KysoError, NotFound, TooLarge
from kyso.validation.pool import ValidationPool
from kyso.validation.report import (
    Indication,
    RevocationStatus,
    ValidationReport,
)
from kyso.web import api_documents
from kyso.web.ratelimit import spend_verification
from kyso.web.ui import guard
from kyso.web.ui.guard import Ctx, MaybeSignedIn
from kyso.web.ui.labels import N_
from kyso.web.ui.templating import render
from kyso.web.ui.uploads import (
    UPLOAD_ID,
    area,
    attachment,
    clean_name,
    expired,
    load_upload,
)

router = APIRouter(dependencies=[Depends(guard.ui_request)])

Upload = Annotated[UploadFile | None, File()]

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


# -- verifying -----------------------------------------------------------------------------------
def _run_verify(
    ctx: Context, pool: ValidationPool, content: bytes, name: str, original: bytes | None
) -> str:
    # in a worker process, bounded in time and memory (kyso.validation.pool)
    report = pool.validate(content, name=name, detached=original)
    token = secrets.token_urlsafe(24)
    path = area(ctx, "reports") / f"{token}.json"
    path.write_text(json.dumps(report.to_dict(), ensure_ascii=False))
    return token


def _load_report(ctx: Context, token: str) -> ValidationReport:
    if not UPLOAD_ID.fullmatch(token):
        raise NotFound("this report", vi="báo cáo này")
    path = area(ctx, "reports") / f"{token}.json"
    try:
        if expired(path, time.time()):
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
            name = clean_name(file.filename)
        elif signed and viewer is not None:
            upload = load_upload(ctx, viewer, signed)
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
    reports = area(ctx, "reports")
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
    filename = clean_name(report.document).rsplit(".", 1)[0] + "-bao-cao-xac-thuc.pdf"
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"content-disposition": attachment(filename)},
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
