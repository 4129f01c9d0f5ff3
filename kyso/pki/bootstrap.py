"""``kyso init``: the root CA, the issuing CA, the OCSP responder and the TSA.

The CA's own certificates are stored twice: as identities (what the CA signs with) and as
ordinary certificate rows under their issuer, so the root's CRL and the issuing CA's OCSP
can speak about them like about any other certificate.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
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


@dataclass(frozen=True)
class CaNames:
    root: str = "CN=Kyso Root CA,O=Kyso,C=VN"
    issuing: str = "CN=Kyso Issuing CA,O=Kyso,C=VN"
    ocsp: str = "CN=Kyso OCSP Responder,O=Kyso,C=VN"
    tsa: str = "CN=Kyso Time Stamping Authority,O=Kyso,C=VN"

    @classmethod
    def for_organization(cls, organization: str, locality: str | None = None) -> CaNames:
        """Vietnamese names for a province's CA, e.g. ``O=UBND tỉnh Bắc Kạn,L=Bắc Kạn``."""
        tail = f",O={organization}" + (f",L={locality}" if locality else "") + ",C=VN"
        return cls(
            root=f"CN=CA gốc chuyên dùng{tail}",
            issuing=f"CN=CA cấp chứng thư chuyên dùng{tail}",
            ocsp=f"CN=Dịch vụ OCSP{tail}",
            tsa=f"CN=Dịch vụ cấp dấu thời gian{tail}",
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
    settings = authority.settings
    subjects = {role: parse_subject(getattr(names, role.value)) for role in IdentityRole}
    now = clock.now()
    made: list[Identity] = []

    def make(
        role: IdentityRole, profile: Profile, key_algorithm: KeyAlgorithm, issuer: Identity | None
    ) -> Identity:
        key = keystore.generate(f"kyso-{role.value}", key_algorithm)
        spec = profiles.SPECS[profile]
        serial = new_serial()
        builder = profiles.build(
            spec,
            subject=subjects[role],
            public_key=key.public_key(),
            serial=serial,
            not_before=now,
            days=None,
            issuer=authority.issuer_view(issuer) if issuer else None,
            policy_oid=settings.policy_oid,
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
        made.append(identity)
        return identity

    root = make(IdentityRole.ROOT, Profile.ROOT_CA, algorithm, None)
    issuing = make(IdentityRole.ISSUING, Profile.SUB_CA, algorithm, root)
    make(IdentityRole.OCSP, Profile.OCSP, signer_algorithm, issuing)
    make(IdentityRole.TSA, Profile.TSA, signer_algorithm, issuing)
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


def _spki(cert: x509.Certificate) -> bytes:
    return cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
