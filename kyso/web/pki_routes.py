"""The public PKI endpoints named inside certificates: CA certificates, CRLs, OCSP, TSA.

No login (relying parties fetch these), size-limited, and answered with the media types
RFC 2585, RFC 6960 and RFC 3161 name. OCSP (``POST /ocsp``, ``GET /ocsp/{b64}``) is answered
before the framework, by :mod:`kyso.web.ocsp_front`. A time-stamp costs a signature: it is
made on a signing thread, within a budget per client address (``KYSO_TSA_PER_MINUTE``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from kyso.context import Context
from kyso.errors import NotFound, TooLarge
from kyso.pki import crl as crl_service
from kyso.pki import tsa as tsa_service
from kyso.pki.authority import Identity
from kyso.ratelimit import Purpose, RateLimited
from kyso.store.models import IdentityRole
from kyso.web.deps import context
from kyso.web.ratelimit import Busy, SigningPool, spend

router = APIRouter()
Ctx = Annotated[Context, Depends(context)]

MAX_TSA_REQUEST_BYTES = 16 * 1024
_TSR = "application/timestamp-reply"
# Row ids are 32-bit on PostgreSQL; a larger number in a URL names nothing, and must not reach
# the database (OverflowError on SQLite, DataError on PostgreSQL: a 500 instead of a 404).
_MAX_ID = 2**31 - 1


def _ca(ctx: Context, identity_id: int, what: str) -> Identity:
    if not 1 <= identity_id <= _MAX_ID:
        raise NotFound(what, vi=what)
    identity = ctx.authority.identity_by_id(identity_id)
    if identity.role not in (IdentityRole.ROOT, IdentityRole.ISSUING):
        raise NotFound(what, vi=what)
    return identity


@router.get("/ca/{identity_id}.crt", tags=["pki"])
def ca_certificate(identity_id: int, ctx: Ctx) -> Response:
    identity = _ca(ctx, identity_id, f"CA {identity_id}")
    return Response(identity.der, media_type="application/pkix-cert")


@router.get("/ca/chain.pem", tags=["pki"])
def ca_chain(ctx: Ctx) -> Response:
    return Response(
        "".join(i.pem() for i in ctx.authority.chain()),
        media_type="application/pem-certificate-chain",
    )


@router.get("/crl/{name}.crl", tags=["pki"])
def crl(name: str, ctx: Ctx) -> Response:
    delta = name.endswith("-delta")
    try:
        identity_id = int(name.removesuffix("-delta"))
    except ValueError as exc:
        raise NotFound(f"CRL {name}", vi=f"CRL {name}") from exc
    issuer = _ca(ctx, identity_id, f"CRL {name}")
    der = crl_service.current(ctx.authority, issuer, delta=delta)
    return Response(der, media_type="application/pkix-crl")


@router.post("/tsa", tags=["pki"])
async def tsa(request: Request, ctx: Ctx) -> Response:
    body = await request.body()
    if len(body) > MAX_TSA_REQUEST_BYTES:
        raise TooLarge(
            f"over {MAX_TSA_REQUEST_BYTES} bytes", vi=f"quá {MAX_TSA_REQUEST_BYTES} byte"
        )
    pool: SigningPool = request.app.state.signing_pool

    def stamp() -> bytes:
        spend(request, Purpose.TSA)
        return ctx.tsa.respond(body)

    try:
        return Response(await pool.run(stamp), media_type=_TSR)
    except RateLimited as exc:  # RFC 6585 §4: 429 and when to come back
        refused = tsa_service.refusal(f"too many requests; retry after {exc.retry_after} s")
        return Response(refused, 429, {"retry-after": str(exc.retry_after)}, media_type=_TSR)
    except Busy:
        refused = tsa_service.refusal("the time-stamping service is busy; retry in a moment")
        return Response(refused, 503, {"retry-after": "1"}, media_type=_TSR)
