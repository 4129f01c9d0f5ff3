"""Documents between agencies over HTTP: the REST API for systems (document management, the
one-stop shop) and the endpoint another kyso installation delivers packages to.

``/api/v1/exchange/*`` needs a token with ``documents:exchange`` (a records clerk's token, or
a system's acting for units in its view); every rule is :mod:`kyso.exchange.service`'s.

``POST /exchange/v1/messages`` is anonymous — the other installation proves nothing but the
package's signature, which is exactly what is judged: the package is parsed safely, its
signatures validated with kyso's trust anchors, and the answer is the status on arrival (01,
or 02 with the reason). It has a budget per client address (``KYSO_EXCHANGE_PER_MINUTE``)
and the upload limit of every other upload.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, Response, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from kyso.api import idempotency
from kyso.context import Context
from kyso.errors import TooLarge
from kyso.exchange import register, service
from kyso.exchange.model import Priority, SignerInfo
from kyso.ratelimit import Purpose
from kyso.registry.access import Principal
from kyso.store.models import ExchangeDirection, ExchangeMessage
from kyso.web.api_documents import read_upload
from kyso.web.deps import context, principal
from kyso.web.ratelimit import spend_async

router = APIRouter(tags=["exchange"])
Ctx = Annotated[Context, Depends(context)]
Who = Annotated[Principal, Depends(principal)]


def _message(m: ExchangeMessage) -> dict[str, Any]:
    return {
        "id": m.public_id,
        "direction": m.direction.value,
        "peer": {"organ_id": m.peer_organ_id, "name": m.peer_name},
        "document_id": m.document_id,
        "code": m.code,
        "subject": m.subject,
        "type": m.type_name,
        "business": m.business,
        "state": m.state.value,
        "status": m.status_code,
        "reason": m.reason,
        "received_number": m.received_number,
        "sha256": m.package_sha256,
        "created_at": m.created_at.isoformat(),
        "updated_at": m.updated_at.isoformat(),
    }


@router.post("/exchange/v1/messages", summary="Deliver an edXML package (another installation)")
async def deliver(request: Request, ctx: Ctx) -> Response:
    await spend_async(request, Purpose.EXCHANGE)
    limit = ctx.settings.max_upload_bytes
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > limit:
            raise TooLarge(
                f"the package is over {limit // (1024 * 1024)} MiB",
                vi=f"gói tin quá {limit // (1024 * 1024)} MiB",
            )
    outcome = await run_in_threadpool(
        service.receive,
        ctx,
        bytes(data),
        via=f"http:{request.client.host if request.client else '?'}",
    )
    return JSONResponse(
        {
            "status": outcome.code.value,
            "description": outcome.description,
            "label": outcome.code.label_vi,
        }
    )


@router.post("/exchange/v1/statuses", summary="Deliver a status message (another installation)")
async def deliver_status(request: Request, ctx: Ctx) -> dict[str, Any]:
    await spend_async(request, Purpose.EXCHANGE)
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > 1024 * 1024:
            raise TooLarge("the status is over 1 MiB", vi="thông điệp trạng thái quá 1 MiB")
    via = f"http:{request.client.host if request.client else '?'}"
    changed = await run_in_threadpool(lambda: service.receive_status(ctx, bytes(data), via=via))
    return {"updated": changed}


def _fingerprint(path: str, fields: dict[str, Any], files: list[bytes]) -> str:
    """What makes two requests the same for an Idempotency-Key: the path, the fields and
    each file's SHA-256."""
    import hashlib
    import json

    digests = [hashlib.sha256(f).hexdigest() for f in files]
    body = json.dumps({"fields": fields, "files": digests}, sort_keys=True, default=str).encode()
    return idempotency.fingerprint("POST", path, body)


@router.post("/api/v1/exchange/send", summary="Sign and send a document to other agencies")
async def send(
    request: Request,
    ctx: Ctx,
    who: Who,
    unit: Annotated[str, Form(max_length=40)],
    recipients: Annotated[list[str], Form()],
    code_number: Annotated[str, Form(max_length=20)],
    code_notation: Annotated[str, Form(max_length=80)],
    type_name: Annotated[str, Form(max_length=100)],
    subject: Annotated[str, Form(max_length=500)],
    key_id: Annotated[str, Form(max_length=100)],
    files: Annotated[list[UploadFile], File(description="the document first, then annexes")],
    place: Annotated[str, Form(max_length=200)] = "",
    content: Annotated[str, Form(max_length=4000)] = "",
    competence: Annotated[str, Form(max_length=100)] = "",
    position: Annotated[str, Form(max_length=100)] = "",
    signer_name: Annotated[str, Form(max_length=200)] = "",
    priority: Annotated[Priority, Form()] = Priority.NORMAL,
) -> Response:
    limit = ctx.settings.max_upload_bytes
    read = [
        service.OutgoingFile(
            f.filename or "document.pdf", await read_upload(f, limit), f.content_type or service.PDF
        )
        for f in files[: service.MAX_ATTACHMENTS + 1]
    ]
    outgoing = service.Outgoing(
        unit=unit,
        recipients=[r for item in recipients for r in item.split(",")],
        code_number=code_number,
        code_notation=code_notation,
        type_name=type_name,
        subject=subject,
        files=read,
        key_id=key_id,
        place=place,
        content=content,
        signer=SignerInfo(competence, position, signer_name) if signer_name else None,
        priority=priority,
    )

    def work() -> idempotency.Answer:
        ids = service.send(ctx, who, outgoing)
        return idempotency.Answer(202, {"messages": _read_many(ctx, who, ids)})

    fields = {k: v for k, v in outgoing.__dict__.items() if k != "files"}
    done = await run_in_threadpool(
        idempotency.run,
        ctx,
        who.client_id,
        request.headers.get("idempotency-key"),
        _fingerprint("/api/v1/exchange/send", fields, [f.content for f in read]),
        work,
    )
    return JSONResponse(done.body, done.status)


def _read_many(ctx: Context, who: Principal, ids: list[str]) -> list[dict[str, Any]]:
    with ctx.db.read() as session:
        return [_message(service.get(who, session, i)) for i in ids]


@router.get("/api/v1/exchange/inbox", summary="Documents received by the units in view")
@router.get("/api/v1/exchange/outbox", summary="Documents sent by the units in view")
def listing(request: Request, ctx: Ctx, who: Who) -> dict[str, Any]:
    direction = (
        ExchangeDirection.IN if request.url.path.endswith("/inbox") else ExchangeDirection.OUT
    )
    with ctx.db.read() as session:
        return {"messages": [_message(m) for m in service.listing(who, session, direction)]}


@router.get("/api/v1/exchange/messages/{public_id}", summary="One message and its statuses")
def detail(ctx: Ctx, who: Who, public_id: str) -> dict[str, Any]:
    with ctx.db.read() as session:
        message = service.get(who, session, public_id)
        return {
            **_message(message),
            "history": [
                {
                    "status": s.code,
                    "description": s.description,
                    "organ_id": s.organ_id,
                    "at": s.created_at.isoformat(),
                }
                for s in service.history(session, message)
            ],
        }


@router.get("/api/v1/exchange/messages/{public_id}/package", summary="The signed edXML")
def package(ctx: Ctx, who: Who, public_id: str) -> Response:
    with ctx.db.read() as session:
        data = bytes(service.get(who, session, public_id).package)
    return Response(data, media_type="application/xml")


class Receive(BaseModel):
    key_id: str = Field(max_length=100)


class Refuse(BaseModel):
    reason: str = Field(max_length=2000)
    key_id: str | None = Field(default=None, max_length=100)  # for a sender elsewhere


class Recall(BaseModel):
    reason: str = Field(max_length=2000)
    key_id: str = Field(max_length=100)


@router.post("/api/v1/exchange/messages/{public_id}/receive", summary="Receive (ĐẾN, status 03)")
async def receive(ctx: Ctx, who: Who, public_id: str, body: Receive) -> dict[str, Any]:
    number = await run_in_threadpool(
        lambda: service.accept(ctx, who, public_id, key_id=body.key_id)
    )
    return {"id": public_id, "received_number": number, "status": "03"}


@router.post("/api/v1/exchange/messages/{public_id}/refuse", summary="Refuse (status 02)")
async def refuse(ctx: Ctx, who: Who, public_id: str, body: Refuse) -> dict[str, Any]:
    await run_in_threadpool(service.refuse, ctx, who, public_id, body.reason, body.key_id)
    return {"id": public_id, "status": "02"}


@router.post("/api/v1/exchange/messages/{public_id}/recall", summary="Recall a sent document")
async def recall(ctx: Ctx, who: Who, public_id: str, body: Recall) -> Response:
    ids = await run_in_threadpool(
        lambda: service.recall(ctx, who, public_id, reason=body.reason, key_id=body.key_id)
    )
    return JSONResponse({"messages": await run_in_threadpool(_read_many, ctx, who, ids)}, 202)


# -- the register of issued documents and the 90 % figure ---------------------------------------
def _registered(row: Any) -> dict[str, Any]:
    return {
        "id": row.public_id,
        "number": row.number,
        "notation": row.notation,
        "code": f"{row.number}/{row.notation}",
        "year": row.year,
        "issued_on": row.issued_on.isoformat(),
        "subject": row.subject,
        "signer": row.signer_name,
        "delivery": row.delivery.value,
        "sent_at": row.sent_at.isoformat() if row.sent_at else None,
    }


@router.post("/api/v1/register/issue", summary="Issue a signed draft: number, seal, register")
async def issue(
    request: Request,
    ctx: Ctx,
    who: Who,
    unit: Annotated[str, Form(max_length=40)],
    type: Annotated[str, Form(max_length=20)],
    notation: Annotated[str, Form(max_length=100)],
    subject: Annotated[str, Form(max_length=1000)],
    key_id: Annotated[str, Form(max_length=100)],
    document: Annotated[UploadFile, File(description="the draft the leader signed")],
    seal_image: Annotated[UploadFile, File(description="the unit's seal, a transparent PNG")],
    signer_name: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    limit = ctx.settings.max_upload_bytes
    what = register.Issue(
        unit=unit,
        type=type,
        notation=notation,
        subject=subject,
        document=await read_upload(document, limit),
        seal_image=await read_upload(seal_image, 2 * 1024 * 1024),
        key_id=key_id,
        signer_name=signer_name,
    )

    def work() -> idempotency.Answer:
        return idempotency.Answer(201, _registered(register.issue(ctx, who, what)))

    fields = {k: v for k, v in what.__dict__.items() if k not in ("document", "seal_image")}
    done = await run_in_threadpool(
        idempotency.run,
        ctx,
        who.client_id,
        request.headers.get("idempotency-key"),
        _fingerprint("/api/v1/register/issue", fields, [what.document, what.seal_image]),
        work,
    )
    return JSONResponse(done.body, done.status)


@router.get("/api/v1/register", summary="The register of the units in view")
def register_entries(ctx: Ctx, who: Who, year: int | None = None) -> dict[str, Any]:
    with ctx.db.read() as session:
        return {"documents": [_registered(r) for r in register.entries(who, session, year=year)]}


@router.get("/api/v1/register/{public_id}/document", summary="The issued PDF")
def register_document(ctx: Ctx, who: Who, public_id: str) -> Response:
    with ctx.db.read() as session:
        data = bytes(register.get(who, session, public_id).document or b"")
    return Response(data, media_type="application/pdf")


class SendIssued(BaseModel):
    recipients: list[str] = Field(min_length=1, max_length=100)
    key_id: str = Field(max_length=100)


@router.post("/api/v1/register/{public_id}/send", summary="Send an issued document")
async def send_issued(ctx: Ctx, who: Who, public_id: str, body: SendIssued) -> Response:
    ids = await run_in_threadpool(
        lambda: register.send(ctx, who, public_id, body.recipients, body.key_id)
    )
    return JSONResponse({"messages": await run_in_threadpool(_read_many, ctx, who, ids)}, 202)


@router.get("/api/v1/reports/electronic", summary="Documents issued and sent electronically")
def electronic(ctx: Ctx, who: Who, start: date, end: date) -> dict[str, Any]:
    """The plan's 90 % figure per unit in view and per level, for the period."""
    with ctx.db.read() as session:
        shares = register.electronic_share(who, session, start, end)
    return {
        "target": register.TARGET,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "units": [
            {
                "unit": s.unit,
                "name": s.name,
                "level": s.level,
                "issued": s.issued,
                "electronic": s.electronic,
                "share": s.share,
                "meets_target": s.meets_target,
            }
            for s in shares
        ],
        "levels": {
            level: {
                "issued": issued,
                "electronic": sent,
                "share": sent / issued if issued else None,
            }
            for level, (issued, sent) in register.by_level(shares).items()
        },
    }


@router.post("/api/v1/register/{public_id}/publish", summary="Publish in the e-gazette")
async def publish(ctx: Ctx, who: Who, public_id: str) -> dict[str, Any]:
    found = await run_in_threadpool(register.publish, ctx, who, public_id)
    return {
        "id": found.public_id,
        "published_at": found.published_at.isoformat(),
        "verdict": found.verdict,
    }


@router.delete("/api/v1/register/{public_id}/publish", summary="Withdraw from the e-gazette")
async def unpublish(ctx: Ctx, who: Who, public_id: str) -> Response:
    await run_in_threadpool(register.unpublish, ctx, who, public_id)
    return Response(status_code=204)


class Subscribe(BaseModel):
    unit: str = Field(max_length=40)
    url: str = Field(max_length=1000)


@router.post("/api/v1/exchange/subscriptions", summary="Be told of a unit's messages (webhook)")
async def subscribe(ctx: Ctx, who: Who, body: Subscribe) -> Response:
    from kyso.exchange import webhooks

    made = await run_in_threadpool(webhooks.subscribe, ctx, who, body.unit, body.url)
    return JSONResponse({"id": made}, 201)


@router.delete("/api/v1/exchange/subscriptions/{public_id}", summary="Stop the webhook")
async def unsubscribe(ctx: Ctx, who: Who, public_id: str) -> Response:
    from kyso.exchange import webhooks

    await run_in_threadpool(webhooks.unsubscribe, ctx, who, public_id)
    return Response(status_code=204)
