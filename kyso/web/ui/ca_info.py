"""Page: the CA in public (no login) — its chain with fingerprints to compare, where to
download it, the CRL, OCSP and time-stamping addresses written into every certificate, and
how to install the root so that Windows, macOS, Firefox, Adobe Reader and Linux trust
documents signed under it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from cryptography.x509.oid import NameOID
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from kyso.pki.authority import Identity
from kyso.store.models import IdentityRole
from kyso.web.ui import guard
from kyso.web.ui.certificates import colons, key_text
from kyso.web.ui.guard import Ctx, MaybeSignedIn
from kyso.web.ui.templating import render

router = APIRouter(dependencies=[Depends(guard.ui_request)])


@dataclass(frozen=True)
class CaView:
    id: int
    role: str  # root / issuing
    name: str  # the CN
    subject: str
    organization: str | None
    serial: str
    not_before: datetime
    not_after: datetime
    key: str
    sha256: str
    sha1: str  # what Windows calls the thumbprint
    download: str
    crl: str


def _view(identity: Identity, crl_url: str) -> CaView:
    cert = identity.certificate
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    org = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return CaView(
        id=identity.id,
        role=identity.role.value,
        name=str(cn[0].value) if cn else cert.subject.rfc4514_string(),
        subject=cert.subject.rfc4514_string(),
        organization=str(org[0].value) if org else None,
        serial=format(cert.serial_number, "X"),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        key=key_text(cert),
        sha256=colons(hashlib.sha256(identity.der).digest()),
        sha1=colons(hashlib.sha1(identity.der, usedforsecurity=False).digest()),
        download=f"/ca/{identity.id}.crt",
        crl=crl_url,
    )


@router.get("/about-ca", include_in_schema=False)
def about_ca(request: Request, ctx: Ctx, viewer: MaybeSignedIn) -> Response:
    authority = ctx.authority
    root = authority.identity(IdentityRole.ROOT)
    issuing = authority.identity(IdentityRole.ISSUING)
    base = ctx.settings.base_url
    return render(
        request,
        "ca/about.html",
        {
            "root": _view(root, authority.crl_url(root.id)),
            "issuing": _view(issuing, authority.crl_url(issuing.id)),
            "delta_crl": authority.crl_url(issuing.id, delta=True),
            "ocsp": authority.ocsp_url,
            "tsa": f"{base}/tsa",
            "base": base,
        },
    )
