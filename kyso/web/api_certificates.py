"""REST: /api/v1/certificates. Routes only translate; the rules live in
:mod:`kyso.lifecycle.certificates` (who may see or change what) and :mod:`kyso.pki`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from cryptography.hazmat.primitives.serialization import Encoding
from fastapi import APIRouter, Depends, Query, Response
from pydantic import AfterValidator, BaseModel, Field
from starlette.concurrency import run_in_threadpool

from kyso.context import Context
from kyso.errors import KysoError
from kyso.lifecycle import certificates
from kyso.pki.names import check_email
from kyso.registry.access import Action, Principal
from kyso.store.models import Certificate, CertStatus, Profile, RevocationReason
from kyso.web.deps import context, principal

router = APIRouter(prefix="/api/v1/certificates", tags=["certificates"])
Ctx = Annotated[Context, Depends(context)]
Who = Annotated[Principal, Depends(principal)]


def _mailbox(value: str) -> str:
    try:
        return check_email(value)
    except KysoError as exc:
        raise ValueError(exc.detail) from exc


def _no_nul(value: str | None) -> str | None:
    # PostgreSQL text cannot hold U+0000 (psycopg raises DataError: a 500, not a 422).
    if value is not None and "\x00" in value:
        raise ValueError("must not contain the NUL character")
    return value


Email = Annotated[str, AfterValidator(_mailbox)]
Note = Annotated[str | None, Field(max_length=2000), AfterValidator(_no_nul)]


class IssueBody(BaseModel):
    profile: Profile = Field(description="organization, individual or device")
    csr: str = Field(max_length=64 * 1024, description="PKCS#10 request, PEM")
    subject: str | None = Field(
        None, max_length=1000, description="RFC 4514; the CSR's subject if absent"
    )
    emails: list[Email] = Field(default_factory=list, max_length=10)
    days: int | None = Field(None, ge=1, le=3650)


class CertificateOut(BaseModel):
    serial: str
    subject: str
    profile: Profile
    status: CertStatus
    not_before: datetime
    not_after: datetime
    revoked_at: datetime | None = None
    reason: RevocationReason | None = None


class IssuedOut(CertificateOut):
    certificate_pem: str
    chain_pem: str


class Page(BaseModel):
    items: list[CertificateOut]
    total: int
    offset: int
    limit: int


class RevokeBody(BaseModel):
    reason: RevocationReason = RevocationReason.UNSPECIFIED
    note: Note = None


class NoteBody(BaseModel):
    note: Note = None


def _out(row: Certificate) -> CertificateOut:
    return CertificateOut(
        serial=row.serial,
        subject=row.subject,
        profile=row.profile,
        status=row.status,
        not_before=row.not_before,
        not_after=row.not_after,
        revoked_at=row.revoked_at,
        reason=row.reason,
    )


def _issue(ctx: Context, body: IssueBody, who: Principal) -> IssuedOut:
    issued = certificates.issue_from_csr(  # group commit under concurrent requests
        who,
        ctx.batcher,
        body.csr.encode(),
        body.profile,
        subject=body.subject,
        emails=tuple(body.emails),
        days=body.days,
    )
    chain = "".join(i.pem() for i in ctx.authority.chain())
    return IssuedOut(**_out(issued.row).model_dump(), certificate_pem=issued.pem(), chain_pem=chain)


@router.post("", status_code=201, response_model=IssuedOut)
async def issue(body: IssueBody, ctx: Ctx, who: Who) -> IssuedOut:
    return await run_in_threadpool(_issue, ctx, body, who)


@router.get("", response_model=Page)
def list_certificates(
    ctx: Ctx,
    who: Who,
    status_filter: Annotated[CertStatus | None, Query(alias="status")] = None,
    profile: Profile | None = None,
    q: Annotated[
        str | None,
        Query(max_length=200, description="part of the subject"),
        AfterValidator(_no_nul),
    ] = None,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Page:
    filters = certificates.CertificateFilter(
        status=status_filter.value if status_filter is not None else None,
        profile=profile,
        text=q,
    )
    with ctx.db.read() as session:
        found = certificates.search(who, session, filters, offset=offset, limit=limit)
        rows = [_row_out(r) for r in found.rows]
    return Page(items=rows, total=found.total, offset=offset, limit=limit)


def _row_out(row: certificates.CertificateRow) -> CertificateOut:
    return CertificateOut(
        serial=row.serial,
        subject=row.subject,
        profile=Profile(row.profile),
        # the API reports the stored status; "expired" is a list filter, not a status
        status=CertStatus.GOOD if row.status == "expired" else CertStatus(row.status),
        not_before=row.not_before,
        not_after=row.not_after,
        revoked_at=row.revoked_at,
        reason=RevocationReason(row.reason) if row.reason else None,
    )


def _find(ctx: Context, serial: str, who: Principal, action: Action) -> Certificate:
    with ctx.db.read() as session:
        return certificates.get(who, session, serial, action)


@router.get("/{serial}", response_model=CertificateOut)
def show(serial: str, ctx: Ctx, who: Who) -> CertificateOut:
    return _out(_find(ctx, serial, who, Action.CERT_READ))


@router.get("/{serial}/pem")
def pem(serial: str, ctx: Ctx, who: Who) -> Response:
    from cryptography import x509

    cert = x509.load_der_x509_certificate(_find(ctx, serial, who, Action.CERT_READ).der)
    return Response(cert.public_bytes(Encoding.PEM), media_type="application/x-pem-file")


@router.post("/{serial}/suspend", response_model=CertificateOut)
def suspend(serial: str, body: NoteBody, ctx: Ctx, who: Who) -> CertificateOut:
    with ctx.db.session() as session:
        return _out(certificates.suspend(who, session, ctx.authority, serial, body.note))


@router.post("/{serial}/restore", response_model=CertificateOut)
def restore(serial: str, body: NoteBody, ctx: Ctx, who: Who) -> CertificateOut:
    with ctx.db.session() as session:
        return _out(certificates.restore(who, session, ctx.authority, serial, body.note))


@router.post("/{serial}/revoke", response_model=CertificateOut)
def revoke(serial: str, body: RevokeBody, ctx: Ctx, who: Who) -> CertificateOut:
    with ctx.db.session() as session:
        return _out(
            certificates.revoke(who, session, ctx.authority, serial, body.reason, body.note)
        )
