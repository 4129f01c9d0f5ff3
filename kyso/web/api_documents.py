"""Signing and validation over HTTP.

``POST /verify`` is public (no login): anyone who received a signed document uploads it and
reads the report. ``/api/v1/sign/*`` signs with keys kyso holds, for systems holding a
``documents:sign`` token (the document management system, the one-stop shop, e-mail): a
user's token with that user's own key or their unit's seal, a system token with the keys it
was given (:mod:`kyso.signing.keyuse`); every signature is an audit entry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Query, Request, Response, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

from kyso.context import Context
from kyso.errors import InvalidInput, TooLarge
from kyso.registry.access import Principal
from kyso.signing.levels import Level
from kyso.signing.service import level_support
from kyso.signing.stamps import StampKind
from kyso.validation.pool import ValidationPool
from kyso.web.deps import context, principal
from kyso.web.errors import language
from kyso.web.ratelimit import spend_verification

if TYPE_CHECKING:
    from kyso.signing.identity import SignerIdentity

router = APIRouter(tags=["documents"])
Ctx = Annotated[Context, Depends(context)]
Who = Annotated[Principal, Depends(principal)]


async def read_upload(upload: UploadFile, limit: int) -> bytes:
    """Read at most ``limit`` bytes; refuse larger uploads without keeping them."""
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise TooLarge(
            f"{upload.filename}: over {limit // (1024 * 1024)} MiB",
            vi=f"{upload.filename}: quá {limit // (1024 * 1024)} MiB",
        )
    return data


def validation_pool(request: Request) -> ValidationPool:
    """The application's pool of validation workers (made on first use by an application
    that did not make one)."""
    pool: ValidationPool | None = getattr(request.app.state, "validation_pool", None)
    if pool is None:
        pool = ValidationPool(request.app.state.context.settings)
        request.app.state.validation_pool = pool
    return pool


@router.post("/verify", summary="Validate any signed file (public)")
@router.post("/api/v1/verify", summary="Validate any signed file")
async def verify(
    request: Request,
    ctx: Ctx,
    file: Annotated[UploadFile, File(description="PDF, .p7s, XML or .eml")],
    data: Annotated[UploadFile | None, File(description="the original of a detached .p7s")] = None,
    output: Annotated[str, Query(alias="format", pattern="^(json|html|pdf)$")] = "json",
    lang: Annotated[str | None, Query(pattern="^(vi|en)$")] = None,
) -> Response:
    from kyso.validation import render

    await spend_verification(request)  # anonymous and CPU-bound: a budget per client
    limit = ctx.settings.max_upload_bytes
    content = await read_upload(file, limit)
    original = await read_upload(data, limit) if data is not None else None
    chosen = lang or language(request)
    pool = validation_pool(request)

    def work() -> Response:
        # in a worker process, bounded in time and memory (kyso.validation.pool)
        report = pool.validate(content, name=file.filename or "document", detached=original)
        if output == "html":
            return HTMLResponse(render.to_html(report, chosen))
        if output == "pdf":
            return Response(
                render.to_pdf(report, chosen),
                media_type="application/pdf",
                headers={"Content-Disposition": 'attachment; filename="validation-report.pdf"'},
            )
        return JSONResponse(report.to_dict())

    return await run_in_threadpool(work)


def _signed(data: bytes, media_type: str, filename: str) -> Response:
    from kyso.web.downloads import content_disposition

    return Response(
        data, media_type=media_type, headers={"Content-Disposition": content_disposition(filename)}
    )


@dataclass(frozen=True)
class Central:
    """A signature with a key in the central HSM (``key_id`` ``hsm:<id>``, or ``store=hsm``):
    it waits for the signer's approval on the phone (:mod:`kyso.remote.documents`)."""

    key_id: str
    callback_url: str | None = None
    signer: str | None = None
    title: str | None = None


def central_key(key_id: str, store: str | None) -> str | None:
    """The central key's id when the form names one, None for a key kyso holds itself."""
    from kyso.remote.central import PREFIX, STORE_NAME

    if key_id.startswith(PREFIX):
        return key_id.removeprefix(PREFIX)
    if store == STORE_NAME:
        return key_id
    if store:
        raise InvalidInput(f"unknown key store {store!r}", vi=f"không có kho khóa {store!r}")
    return None


def _central_form(
    key_id: str,
    store: str | None,
    callback_url: str | None,
    signer: str | None,
    title: str | None,
) -> Central | None:
    found = central_key(key_id, store)
    if found is None:
        if callback_url or signer:
            raise InvalidInput(
                "callback_url and signer are for central keys (store=hsm)",
                vi="callback_url và signer chỉ dùng với khóa tập trung (store=hsm)",
            )
        return None
    return Central(found, callback_url or None, signer or None, title or None)


def _approvals_url(ctx: Context, public_id: str) -> str:
    return f"{ctx.settings.base_url}/api/v1/sign/approvals/{public_id}"


async def _ask_central(
    ctx: Context,
    who: Principal,
    central: Central,
    content: bytes,
    name: str | None,
    **how: Any,
) -> Response:
    """202 Accepted: the approval waits on the signer's phone; poll ``status_url`` or wait
    for the webhook."""
    from kyso.remote import documents

    document = documents.DocumentToSign(
        title=central.title or name or "—", content=content, filename=name, entry="api", **how
    )
    requester = who.actor.split(":", 1)[-1]
    approval = await run_in_threadpool(
        lambda: documents.request_signatures(
            ctx,
            who,
            central.key_id,
            [document],
            requester,
            central.callback_url,
            signer=central.signer,
        )
    )
    url = _approvals_url(ctx, approval.public_id)
    return JSONResponse(
        {
            "status": approval.state.value,
            "id": approval.public_id,
            "status_url": url,
            "expires_at": approval.expires_at.isoformat(),
        },
        status_code=202,
        headers={"Location": url},
    )


async def _sign_upload(
    ctx: Context,
    who: Principal,
    file: UploadFile,
    key_id: str,
    sign: Callable[[bytes, SignerIdentity], bytes],
    media_type: str,
    filename: str,
    *,
    kind: str,
    level: Level | None = None,
    number: str | None = None,
    central: Central | None = None,
    how: dict[str, Any] | None = None,
) -> Response:
    """The steps every signing endpoint shares: the upload within its limit, then, off the
    event loop, the signing service (the right to use this key, the signature, the audit
    entry), and the file sent back. With a central key: the approval is asked for instead
    (``how`` says how to sign once it is given)."""
    from kyso.remote.documents import DocumentKind
    from kyso.signing.keyuse import require_signer
    from kyso.signing.service import sign_with_key

    require_signer(who)  # a token that signs nothing is refused before its upload is read
    content = await read_upload(file, ctx.settings.max_upload_bytes)
    if central is not None:
        return await _ask_central(
            ctx,
            who,
            central,
            content,
            file.filename,
            kind=DocumentKind(kind),
            number=number,
            level=level or Level.B_B,
            **(how or {}),
        )
    signed = await run_in_threadpool(
        lambda: sign_with_key(
            ctx,
            who,
            key_id,
            content,
            sign,
            kind=kind,
            entry="api",
            name=file.filename,
            number=number,
            level=level,
        )
    )
    return _signed(signed, media_type, filename)


@router.post("/api/v1/sign/pdf", summary="PAdES with a Decree 30/2020 stamp, with a key kyso holds")
async def sign_pdf(
    ctx: Ctx,
    who: Who,
    file: Annotated[UploadFile, File()],
    key_id: Annotated[str, Form(max_length=100)],
    level: Annotated[Level, Form()] = Level.B_B,
    kind: Annotated[StampKind | None, Form()] = None,
    page: Annotated[int | None, Form(ge=1, le=100_000)] = None,
    box: Annotated[str | None, Form(max_length=100)] = None,
    field: Annotated[str | None, Form(max_length=200)] = None,
    anchor: Annotated[str | None, Form(max_length=200)] = None,
    title: Annotated[str | None, Form(max_length=200)] = None,
    name: Annotated[str | None, Form(max_length=200)] = None,
    number: Annotated[str | None, Form(max_length=100)] = None,
    date: Annotated[str | None, Form(max_length=40)] = None,
    copy_kind: Annotated[str | None, Form(max_length=40)] = None,
    copying_org: Annotated[str | None, Form(max_length=300)] = None,
    received_number: Annotated[str | None, Form(max_length=100)] = None,
    received_date: Annotated[str | None, Form(max_length=40)] = None,
    receiving_org: Annotated[str | None, Form(max_length=300)] = None,
    image: Annotated[UploadFile | None, File(description="signature image, PNG")] = None,
    seal: Annotated[UploadFile | None, File(description="the organization's seal, PNG")] = None,
    store: Annotated[str | None, Form(max_length=20, description="hsm: a central key")] = None,
    callback_url: Annotated[str | None, Form(max_length=1000)] = None,
    signer: Annotated[
        str | None, Form(max_length=200, description="who approves (system tokens)")
    ] = None,
    document_title: Annotated[
        str | None, Form(max_length=300, description="as the phone lists it")
    ] = None,
) -> Response:
    from kyso.signing.options import StampOptions, appearance
    from kyso.signing.pades import sign_pdf as pades

    options = StampOptions(
        kind=kind,
        page=page,
        box=box,
        field=field,
        anchor=anchor,
        title=title,
        name=name,
        number=number,
        date=date,
        copy_kind=copy_kind,
        copying_org=copying_org,
        received_number=received_number,
        received_date=received_date,
        receiving_org=receiving_org,
        image=await read_upload(image, 2 * 1024 * 1024) if image is not None else None,
        seal=await read_upload(seal, 2 * 1024 * 1024) if seal is not None else None,
    )

    central = _central_form(key_id, store, callback_url, signer, document_title)

    def sign(content: bytes, identity: SignerIdentity) -> bytes:
        stamper, trust = level_support(ctx, level, trust_from=Level.B_T)
        return pades(
            content,
            identity,
            level=level,
            appearance=appearance(options),
            timestamper=stamper,
            trust=trust,
        )

    return await _sign_upload(
        ctx,
        who,
        file,
        key_id,
        sign,
        "application/pdf",
        file.filename or "signed.pdf",
        kind="pdf",
        level=level,
        number=number,
        central=central,
        how={"appearance": appearance(options)} if central is not None else None,
    )


@router.post("/api/v1/sign/cms", summary="Detached CAdES signature with a key kyso holds")
async def sign_cms(
    ctx: Ctx,
    who: Who,
    file: Annotated[UploadFile, File()],
    key_id: Annotated[str, Form(max_length=100)],
    level: Annotated[Level, Form()] = Level.B_B,
    store: Annotated[str | None, Form(max_length=20, description="hsm: a central key")] = None,
    callback_url: Annotated[str | None, Form(max_length=1000)] = None,
    signer: Annotated[
        str | None, Form(max_length=200, description="who approves (system tokens)")
    ] = None,
    title: Annotated[str | None, Form(max_length=300, description="as the phone lists it")] = None,
) -> Response:
    from kyso.signing.cades import sign_cms as cades

    central = _central_form(key_id, store, callback_url, signer, title)

    def sign(content: bytes, identity: SignerIdentity) -> bytes:
        stamper, trust = level_support(ctx, level)
        return cades(content, identity, level=level, timestamper=stamper, trust=trust)

    return await _sign_upload(
        ctx,
        who,
        file,
        key_id,
        sign,
        "application/pkcs7-signature",
        f"{file.filename or 'document'}.p7s",
        kind="cms",
        level=level,
        central=central,
    )


@router.post("/api/v1/sign/xml", summary="Enveloped XAdES signature with a key kyso holds")
async def sign_xml(
    ctx: Ctx,
    who: Who,
    file: Annotated[UploadFile, File()],
    key_id: Annotated[str, Form(max_length=100)],
    level: Annotated[Level, Form()] = Level.B_B,
    parent_xpath: Annotated[str | None, Form(max_length=500)] = None,
    parallel: Annotated[
        bool,
        Form(
            description="leave room for more signatures (XPath Filter 2.0, EU DSS's form); "
            "off by default because .NET's SignedXml cannot check it"
        ),
    ] = False,
    store: Annotated[str | None, Form(max_length=20, description="hsm: a central key")] = None,
    callback_url: Annotated[str | None, Form(max_length=1000)] = None,
    signer: Annotated[
        str | None, Form(max_length=200, description="who approves (system tokens)")
    ] = None,
    title: Annotated[str | None, Form(max_length=300, description="as the phone lists it")] = None,
) -> Response:
    from kyso.signing.xades import sign_xml as xades

    central = _central_form(key_id, store, callback_url, signer, title)

    def sign(content: bytes, identity: SignerIdentity) -> bytes:
        stamper, trust = level_support(ctx, level)
        return xades(
            content,
            identity,
            level=level,
            timestamper=stamper,
            parent_xpath=parent_xpath,
            trust=trust,
            parallel=parallel,
        )

    return await _sign_upload(
        ctx,
        who,
        file,
        key_id,
        sign,
        "application/xml",
        file.filename or "signed.xml",
        kind="xml",
        level=level,
        central=central,
        how={"parent_xpath": parent_xpath, "parallel": parallel},
    )


@router.post("/api/v1/sign/email", summary="S/MIME-sign an e-mail with a key kyso holds")
async def sign_email(
    ctx: Ctx,
    who: Who,
    file: Annotated[UploadFile, File()],
    key_id: Annotated[str, Form(max_length=100)],
) -> Response:
    from kyso.signing.smime import sign_email as smime

    return await _sign_upload(
        ctx,
        who,
        file,
        key_id,
        smime,
        "message/rfc822",
        file.filename or "signed.eml",
        kind="email",
    )


@router.get(
    "/api/v1/sign/approvals/{public_id}",
    summary="A central-key signature's status: waiting, done, expired, refused or failed",
)
async def approval_status(request: Request, ctx: Ctx, who: Who, public_id: str) -> Response:
    """For the system or person that asked, and for the signer; ``download`` links once the
    documents are signed."""
    from kyso.remote import documents

    def read() -> dict[str, Any]:
        with ctx.db.read() as session:
            found = documents.status(who, session, public_id[:40])
        body = found.to_dict(language(request))
        base = _approvals_url(ctx, found.public_id)
        for item in body["documents"]:
            item["download"] = f"{base}/documents/{item['position']}" if item["signed"] else None
        return body

    return JSONResponse(await run_in_threadpool(read))


@router.get(
    "/api/v1/sign/approvals/{public_id}/documents/{position}",
    summary="A signed document of a central-key approval",
)
async def approval_document(ctx: Ctx, who: Who, public_id: str, position: int) -> Response:
    from kyso.remote import documents

    def read() -> documents.SignedFile:
        with ctx.db.read() as session:
            return documents.result(who, session, public_id[:40], position)

    found = await run_in_threadpool(read)
    return _signed(found.content, found.media_type, found.filename)
