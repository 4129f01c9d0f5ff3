"""Trust anchors and revocation evidence, for validators and for signers that embed it.

Anchors are kyso's own root plus roots an administrator imported (`kyso trust add`, e.g.
the government's "RootCA chuyên dùng Chính phủ G2"). For certificates kyso issued, revocation
evidence is made in-process: the current CRL and a freshly signed OCSP answer of kyso's own
CA — real, signed evidence, without a network round trip to ourselves. Other certificates
rely on evidence embedded in the document (LTV) or, when allowed, fetched.

Validation (:mod:`kyso.validation`) judges with it; signing (:mod:`kyso.signing`) embeds the
same evidence at B-LT. It lives below both so that neither imports the other.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime

from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp as x509_ocsp
from pyhanko_certvalidator import ValidationContext
from sqlalchemy import select
from sqlalchemy.orm import Session

from kyso import clock
from kyso.audit.log import Event, record
from kyso.context import Context
from kyso.errors import Conflict, InvalidInput
from kyso.pki import crl as crl_service
from kyso.store.models import IdentityRole, TrustAnchor


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _asn1(cert: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(_der(cert))


@dataclass
class TrustContext:
    """What a validator needs: anchors, known intermediates, and kyso's own revocation data."""

    anchors: list[x509.Certificate]
    intermediates: list[x509.Certificate] = field(default_factory=list)
    ctx: Context | None = None

    def is_ours(self, cert: x509.Certificate) -> bool:
        return any(cert.issuer == i.subject for i in self.intermediates) or any(
            cert.issuer == a.subject for a in self.anchors[:1]
        )

    def own_revocation_data(self, certs: list[x509.Certificate]) -> tuple[list[bytes], list[bytes]]:
        """(CRLs, OCSP responses) from kyso's CA for the certificates it issued."""
        if self.ctx is None:
            return [], []
        authority = self.ctx.authority
        issuing_ca = authority.identity(IdentityRole.ISSUING)
        # The issuing CA's full CRL names its delta in freshestCRL (RFC 5280 §5.2.6); a relying
        # party that cannot find the delta must not rely on the full CRL, so both go together.
        crls = [
            crl_service.current(authority, issuing_ca),
            crl_service.current(authority, issuing_ca, delta=True),
            crl_service.current(authority, authority.identity(IdentityRole.ROOT)),
        ]
        ocsps = []
        issuing = authority.identity(IdentityRole.ISSUING).certificate
        for cert in certs:
            if cert.issuer != issuing.subject:
                continue
            request = (
                x509_ocsp.OCSPRequestBuilder()
                .add_certificate(cert, issuing, hashes.SHA1())  # noqa: S303 (RFC 5019 CertID)
                .build()
                .public_bytes(serialization.Encoding.DER)
            )
            answer = self.ctx.responder.respond(request)
            if asn1_ocsp.OCSPResponse.load(answer.der)["response_status"].native == "successful":
                ocsps.append(answer.der)
        return crls, ocsps

    def validation_context(
        self,
        *,
        moment: datetime | None = None,
        for_certs: list[x509.Certificate] | None = None,
        extra_crls: list[bytes] | None = None,
        extra_ocsps: list[bytes] | None = None,
        allow_fetching: bool = False,
    ) -> ValidationContext:
        """A pyHanko/certvalidator context; hard-fail revocation: no evidence, no pass."""
        crls, ocsps = self.own_revocation_data(for_certs or [])
        return ValidationContext(
            trust_roots=[_asn1(a) for a in self.anchors],
            other_certs=[_asn1(c) for c in self.intermediates],
            crls=crls + list(extra_crls or []),
            ocsps=ocsps + list(extra_ocsps or []),
            allow_fetching=allow_fetching,
            revocation_mode="hard-fail",
            moment=moment,
            retroactive_revinfo=True,
        )


def trust_context(ctx: Context) -> TrustContext:
    """kyso's root first, then imported anchors; kyso's issuing CA as a known intermediate."""
    root = ctx.authority.identity(IdentityRole.ROOT).certificate
    issuing = ctx.authority.identity(IdentityRole.ISSUING).certificate
    with ctx.db.read() as session:
        imported = [
            x509.load_der_x509_certificate(r.der)
            for r in session.execute(
                select(TrustAnchor).where(TrustAnchor.removed_at.is_(None))
            ).scalars()
        ]
    return TrustContext([root, *imported], [issuing], ctx)


def add_anchor(
    session: Session, pem_or_der: bytes, actor: str, note: str | None = None
) -> TrustAnchor:
    """Import a root certificate as a trust anchor (self-signed CA certificates only)."""
    try:
        cert = (
            x509.load_pem_x509_certificate(pem_or_der)
            if b"-----BEGIN" in pem_or_der
            else x509.load_der_x509_certificate(pem_or_der)
        )
    except ValueError as exc:
        raise InvalidInput("not an X.509 certificate", vi="không phải chứng thư X.509") from exc
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        is_ca = constraints.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca or cert.issuer != cert.subject:
        raise InvalidInput(
            "a trust anchor must be a self-signed CA certificate",
            vi="điểm tin cậy phải là chứng thư CA tự ký",
        )
    der = _der(cert)
    fingerprint = hashlib.sha256(der).hexdigest()
    existing = session.execute(
        select(TrustAnchor).where(TrustAnchor.sha256 == fingerprint)
    ).scalar_one_or_none()
    if existing is not None and existing.removed_at is None:
        raise Conflict("this root is already trusted", vi="chứng thư gốc này đã được tin cậy")
    anchor = TrustAnchor(
        sha256=fingerprint,
        subject=cert.subject.rfc4514_string(),
        der=der,
        not_after=cert.not_valid_after_utc,
        added_at=clock.now(),
        note=note,
    )
    if existing is not None:
        session.delete(existing)
        session.flush()
    session.add(anchor)
    record(session, Event(actor, "trust.anchor_added", fingerprint, {"subject": anchor.subject}))
    session.flush()
    return anchor


def list_anchors(ctx: Context) -> list[tuple[str, str, datetime, bool]]:
    """(sha256, subject, not_after, built_in) for every anchor, kyso's own root first."""
    root = ctx.authority.identity(IdentityRole.ROOT).certificate
    rows = [
        (
            hashlib.sha256(_der(root)).hexdigest(),
            root.subject.rfc4514_string(),
            root.not_valid_after_utc,
            True,
        )
    ]
    with ctx.db.read() as session:
        for a in session.execute(
            select(TrustAnchor).where(TrustAnchor.removed_at.is_(None))
        ).scalars():
            rows.append((a.sha256, a.subject, a.not_after, False))
    return rows
