"""``kyso init``: the root CA, the issuing CA, the OCSP responder, the TSA and the audit signer.

The CA's own certificates are stored twice: as identities (what the CA signs with) and as
ordinary certificate rows under their issuer, so the root's CRL and the issuing CA's OCSP
can speak about them like about any other certificate.

The audit signer (issued by the issuing CA, profile ``audit``) signs the audit log's
checkpoints, so no CA key ever signs arbitrary data; instances made before it existed get
one from :func:`ensure_audit_signer` (``kyso init --exist-ok`` and server start).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from sqlalchemy import select
from sqlalchemy.orm import Session

from kyso import clock
from kyso.audit.log import Event, record
from kyso.errors import AlreadyInitialized, LintFailed
from kyso.keys.base import KeyAlgorithm, KeyStore
from kyso.pki import crl, lint, profiles
from kyso.pki.authority import Authority, Identity, key_hash_hex, spki_sha256
from kyso.pki.issuance import new_serial, serial_hex
from kyso.pki.names import parse_subject, subject_text
from kyso.pki.x509sign import sign_certificate
from kyso.settings import Settings
from kyso.store.models import (
    CaIdentity,
    CertEventKind,
    Certificate,
    CertificateEvent,
    IdentityRole,
    Profile,
)

_AUDIT_CN_EN = "Kyso Audit Log Signer"
_AUDIT_CN_VI = "Dịch vụ ký nhật ký hệ thống"


@dataclass(frozen=True)
class CaNames:
    root: str = "CN=Kyso Root CA,O=Kyso,C=VN"
    issuing: str = "CN=Kyso Issuing CA,O=Kyso,C=VN"
    ocsp: str = "CN=Kyso OCSP Responder,O=Kyso,C=VN"
    tsa: str = "CN=Kyso Time Stamping Authority,O=Kyso,C=VN"
    audit: str = f"CN={_AUDIT_CN_EN},O=Kyso,C=VN"

    @classmethod
    def for_organization(cls, organization: str, locality: str | None = None) -> CaNames:
        """Vietnamese names for a province's CA, e.g. ``O=UBND tỉnh Bắc Kạn,L=Bắc Kạn``."""
        tail = f",O={organization}" + (f",L={locality}" if locality else "") + ",C=VN"
        return cls(
            root=f"CN=CA gốc chuyên dùng{tail}",
            issuing=f"CN=CA cấp chứng thư chuyên dùng{tail}",
            ocsp=f"CN=Dịch vụ OCSP{tail}",
            tsa=f"CN=Dịch vụ cấp dấu thời gian{tail}",
            audit=f"CN={_AUDIT_CN_VI}{tail}",
        )


@dataclass(frozen=True)
class InitResult:
    identities: list[Identity]
    passphrase_file: str | None


def ensure_passphrase(settings: Settings) -> str | None:
    """For a software store without a configured passphrase, make one in a 0600 file.

    Returns the file's path when one was made, so the operator is told where it is.
    """
    if settings.keystore != "software" or settings.keystore_passphrase:
        return None
    path = settings.passphrase_file
    if path.exists():
        return None
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(32) + "\n")
    return str(path)


def initialize(
    session: Session,
    authority: Authority,
    keystore: KeyStore,
    *,
    names: CaNames = CaNames(),
    algorithm: KeyAlgorithm = KeyAlgorithm.RSA_3072,
    signer_algorithm: KeyAlgorithm = KeyAlgorithm.RSA_2048,
    actor: str = "system",
) -> list[Identity]:
    """Create the CA in the caller's transaction; refuses an already initialized instance."""
    if session.execute(select(CaIdentity.id).limit(1)).first() is not None:
        raise AlreadyInitialized()
    subjects = {role: parse_subject(getattr(names, role.value)) for role in IdentityRole}
    now = clock.now()
    made: list[Identity] = []

    def make(
        role: IdentityRole, profile: Profile, key_algorithm: KeyAlgorithm, issuer: Identity | None
    ) -> Identity:
        identity = _make_identity(
            session, authority, keystore, role, profile, subjects[role], key_algorithm, issuer,
            actor, now,
        )  # fmt: skip
        made.append(identity)
        return identity

    root = make(IdentityRole.ROOT, Profile.ROOT_CA, algorithm, None)
    issuing = make(IdentityRole.ISSUING, Profile.SUB_CA, algorithm, root)
    make(IdentityRole.OCSP, Profile.OCSP, signer_algorithm, issuing)
    make(IdentityRole.TSA, Profile.TSA, signer_algorithm, issuing)
    make(IdentityRole.AUDIT, Profile.AUDIT, signer_algorithm, issuing)
    session.flush()
    record(
        session,
        Event(
            actor,
            "ca.initialized",
            None,
            {i.role.value: subject_text(i.certificate.subject) for i in made}
            | {"keystore": keystore.name, "algorithm": algorithm.value},
        ),
    )
    crl.generate(session, authority, root, actor=actor)
    crl.generate(session, authority, issuing, actor=actor)
    return made


def _make_identity(
    session: Session,
    authority: Authority,
    keystore: KeyStore,
    role: IdentityRole,
    profile: Profile,
    subject: x509.Name,
    key_algorithm: KeyAlgorithm,
    issuer: Identity | None,
    actor: str,
    now: datetime,
) -> Identity:
    """A new key in the store and its certificate, stored as an identity and a certificate
    row (``issuer`` None: self-signed, the root)."""
    key = keystore.generate(f"kyso-{role.value}", key_algorithm)
    spec = profiles.SPECS[profile]
    serial = new_serial()
    builder = profiles.build(
        spec,
        subject=subject,
        public_key=key.public_key(),
        serial=serial,
        not_before=now,
        days=None,
        issuer=authority.issuer_view(issuer) if issuer else None,
        policy_oid=authority.settings.policy_oid,
    )
    cert = sign_certificate(builder, issuer.key if issuer else key)
    der = cert.public_bytes(serialization.Encoding.DER)
    problems = lint.errors(lint.lint_certificate(der))
    if problems:
        raise LintFailed(lint.describe(problems))
    row = CaIdentity(
        role=role,
        name=subject_text(cert.subject),
        keystore=keystore.name,
        key_id=key.key_id,
        serial=serial_hex(serial),
        key_hash_sha1=key_hash_hex(der),
        certificate_der=der,
        not_after=cert.not_valid_after_utc,
        active=True,
        created_at=now,
    )
    session.add(row)
    session.flush()
    identity = Identity(row.id, role, der, key)
    issuer_identity = issuer or identity
    cert_row = Certificate(
        serial=row.serial,
        issuer_id=issuer_identity.id,
        profile=profile,
        subject=row.name,
        spki_sha256=spki_sha256(_spki(cert)),
        key_location=f"{keystore.name}:{key.key_id}",
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        der=der,
        created_at=now,
    )
    cert_row.events.append(CertificateEvent(at=now, kind=CertEventKind.ISSUED, actor=actor))
    session.add(cert_row)
    authority._by_id[identity.id] = identity
    return identity


def ensure_audit_signer(
    session: Session,
    authority: Authority,
    keystore: KeyStore,
    *,
    algorithm: KeyAlgorithm = KeyAlgorithm.RSA_2048,
    actor: str = "system",
) -> Identity | None:
    """Give an instance made before the audit signer existed one (issued by its issuing CA,
    named after it); None when there is one already or no CA yet.

    The issuing CA's row is locked first, so servers starting together make one, not two.
    """
    issuing_row = session.execute(
        select(CaIdentity)
        .where(CaIdentity.role == IdentityRole.ISSUING, CaIdentity.active.is_(True))
        .order_by(CaIdentity.id.desc())
        .limit(1)
        .with_for_update()
    ).scalar_one_or_none()
    if issuing_row is None:
        return None
    existing = session.execute(
        select(CaIdentity.id).where(
            CaIdentity.role == IdentityRole.AUDIT, CaIdentity.active.is_(True)
        )
    ).first()
    if existing is not None:
        return None
    issuer = authority.identity_by_id(issuing_row.id)
    subject = _audit_subject(issuer.certificate.subject)
    identity = _make_identity(
        session,
        authority,
        keystore,
        IdentityRole.AUDIT,
        Profile.AUDIT,
        subject,
        algorithm,
        issuer,
        actor,
        clock.now(),
    )
    record(
        session,
        Event(
            actor,
            "ca.audit_signer_created",
            serial_hex(identity.certificate.serial_number),
            {"subject": subject_text(subject), "keystore": keystore.name},
        ),
    )
    return identity


def _audit_subject(issuing: x509.Name) -> x509.Name:
    """The issuing CA's name with the audit signer's CN (English for kyso's default names)."""
    common = [a.value for a in issuing.get_attributes_for_oid(NameOID.COMMON_NAME)]
    cn = _AUDIT_CN_EN if all(str(v).isascii() for v in common) else _AUDIT_CN_VI
    rdns = [
        x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        if any(a.oid == NameOID.COMMON_NAME for a in rdn)
        else rdn
        for rdn in issuing.rdns
    ]
    return x509.Name(rdns)


def _spki(cert: x509.Certificate) -> bytes:
    return cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
