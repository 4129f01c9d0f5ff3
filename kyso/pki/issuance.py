"""Issuing subscriber certificates: from a CSR, into a token, or as a PKCS#12 file.

Every certificate is linted with pkilint before it is released (when ``lint_on_issue`` is
on), stored whole with its first status event, and recorded in the audit log, all in the
caller's transaction: a failure leaves nothing behind.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import cast

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12
from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session

from kyso import clock
from kyso.audit.log import Event, record_many
from kyso.errors import CompromisedKey, InvalidInput, LintFailed
from kyso.keys.base import KeyAlgorithm, KeyStore, SigningKey
from kyso.keys.pkcs11 import Pkcs11KeyStore
from kyso.keys.software import generate_private_key
from kyso.observability import metrics
from kyso.pki import lint, profiles
from kyso.pki.authority import Authority, Identity, spki_sha256
from kyso.pki.csr import load_csr
from kyso.pki.names import check_email, check_subject, parse_subject, subject_text
from kyso.pki.x509sign import sign_certificate
from kyso.store.models import (
    CertEventKind,
    Certificate,
    CertificateEvent,
    CertStatus,
    IdentityRole,
    Profile,
)
from kyso.store.models import (
    CompromisedKey as CompromisedKeyRow,
)

# X.509 allows backdating; one minute absorbs clock skew between kyso and relying parties.
BACKDATE_SECONDS = 60


def new_serial() -> int:
    """128 random bits, positive, at least 2^64 so the encoding never shrinks much."""
    while True:
        serial = secrets.randbits(128)
        if serial >= 1 << 64:
            return serial


def serial_hex(serial: int) -> str:
    return format(serial, "x")


@dataclass(frozen=True)
class IssueSpec:
    profile: Profile
    subject: x509.Name
    public_key: PublicKeyTypes
    emails: tuple[str, ...] = ()
    days: int | None = None
    key_location: str = "csr"
    # registry links (set by the registration authority)
    person_id: int | None = None
    organization_id: int | None = None
    device_id: int | None = None


@dataclass
class Issued:
    row: Certificate
    certificate: x509.Certificate
    chain: list[Identity] = field(default_factory=list)

    @property
    def serial(self) -> str:
        return self.row.serial

    def pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()


def check_spec(spec: IssueSpec) -> None:
    """Refuse a request that can never be issued (profile, key, validity, e-mail)."""
    if spec.profile not in profiles.SUBSCRIBER_PROFILES:
        raise InvalidInput(
            f"profile {spec.profile.value} is not for subscribers",
            vi=f"hồ sơ {spec.profile.value} không dành cho thuê bao",
        )
    check_subject(spec.subject)
    KeyAlgorithm.of_public_key(spec.public_key)
    if spec.days is not None and not 1 <= spec.days <= 10 * 365:
        raise InvalidInput("validity must be 1 to 3650 days", vi="thời hạn phải từ 1 đến 3650 ngày")
    for email in spec.emails:
        check_email(email)


def _public_der(key: PublicKeyTypes) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def issue_many(
    session: Session, authority: Authority, specs: Sequence[IssueSpec], actor: str
) -> list[Issued]:
    """Issue a batch in the caller's transaction; all or nothing."""
    issuer = authority.identity(IdentityRole.ISSUING)
    view = authority.issuer_view(issuer)
    settings = authority.settings
    fingerprints = []
    for spec in specs:
        check_spec(spec)
        fingerprints.append(spki_sha256(_public_der(spec.public_key)))
    _refuse_compromised(session, fingerprints)

    now = clock.now()
    not_before = now - timedelta(seconds=BACKDATE_SECONDS)
    issued: list[Issued] = []
    events: list[Event] = []
    serials = [new_serial() for _ in specs]
    builders = [
        profiles.build(
            profiles.SPECS[spec.profile],
            subject=spec.subject,
            public_key=spec.public_key,
            serial=serial,
            not_before=not_before,
            days=spec.days,
            issuer=view,
            policy_oid=settings.policy_oid,
            emails=spec.emails,
        )
        for spec, serial in zip(specs, serials, strict=True)
    ]
    certificates = _sign_all(builders, issuer.key)
    for spec, fingerprint, serial, cert in zip(
        specs, fingerprints, serials, certificates, strict=True
    ):
        der = cert.public_bytes(serialization.Encoding.DER)
        if settings.lint_on_issue:
            problems = lint.errors(lint.lint_certificate(der))
            if problems:
                raise LintFailed(lint.describe(problems))
        row = Certificate(
            serial=serial_hex(serial),
            issuer_id=issuer.id,
            profile=spec.profile,
            subject=subject_text(spec.subject),
            spki_sha256=fingerprint,
            key_location=spec.key_location,
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            status=CertStatus.GOOD,
            der=der,
            created_at=now,
            person_id=spec.person_id,
            organization_id=spec.organization_id,
            device_id=spec.device_id,
        )
        issued.append(Issued(row, cert, [issuer]))
        events.append(
            Event(
                actor,
                "certificate.issued",
                row.serial,
                {"profile": spec.profile.value, "subject": row.subject, "key": spec.key_location},
            )
        )
    _store(session, issued, actor, now)
    record_many(session, events)
    metrics.certificates_issued(session, (spec.profile.value for spec in specs))
    return issued


# cryptography releases the GIL while it signs, so a batch signs on every core at once.
_PARALLEL_FROM = 8
_signers: ThreadPoolExecutor | None = None
_signers_lock = threading.Lock()


def _sign_all(builders: list[x509.CertificateBuilder], key: SigningKey) -> list[x509.Certificate]:
    """Sign a batch's certificates, on all cores for a software key (an HSM key signs through
    its own session lock, one at a time, so it gains nothing from threads)."""
    global _signers
    cores = os.cpu_count() or 1
    if len(builders) < _PARALLEL_FROM or cores < 2 or key.cryptography_key() is None:
        return [sign_certificate(builder, key) for builder in builders]
    with _signers_lock:
        if _signers is None:
            _signers = ThreadPoolExecutor(max_workers=cores, thread_name_prefix="x509-sign")
    return list(_signers.map(lambda builder: sign_certificate(builder, key), builders))


_CERT_COLUMNS = (
    "serial",
    "issuer_id",
    "profile",
    "subject",
    "spki_sha256",
    "key_location",
    "not_before",
    "not_after",
    "status",
    "der",
    "created_at",
    "person_id",
    "organization_id",
    "device_id",
)


def _store(session: Session, issued: list[Issued], actor: str, now: datetime) -> None:
    """Insert the batch with two multi-row INSERTs instead of one ORM flush per object
    (the ORM unit of work cost about as much as signing, see benchmarks/bench_ca.py).
    The returned rows are detached snapshots carrying their new ids."""
    if not issued:
        return
    values = [{c: getattr(i.row, c) for c in _CERT_COLUMNS} for i in issued]
    conn = session.connection()  # Core: the ORM's bulk path cost more than the signature
    table = cast(Table, Certificate.__table__)
    ids = (
        conn.execute(insert(table).returning(table.c.id, sort_by_parameter_order=True), values)
        .scalars()
        .all()
    )
    conn.execute(
        insert(cast(Table, CertificateEvent.__table__)),
        [
            {
                "certificate_id": id_,
                "at": now,
                "kind": CertEventKind.ISSUED,
                "actor": actor,
                "reason": None,
                "note": None,
            }
            for id_ in ids
        ],
    )
    for item, id_ in zip(issued, ids, strict=True):
        item.row.id = id_


def issue(session: Session, authority: Authority, spec: IssueSpec, actor: str) -> Issued:
    return issue_many(session, authority, [spec], actor)[0]


def _refuse_compromised(session: Session, fingerprints: list[str]) -> None:
    if not fingerprints:
        return
    column = CompromisedKeyRow.__table__.c.spki_sha256
    known = (
        session.connection()
        .execute(select(column).where(column.in_(sorted(set(fingerprints)))).limit(1))
        .first()
    )
    if known is not None:
        raise CompromisedKey()


def pkcs12_bundle(issued: Issued, private_key: object, password: str, friendly_name: str) -> bytes:
    """PKCS#12 with the key, the certificate and the chain; AES-256 + PBKDF2-SHA256.

    The low-assurance path: the key existed outside any device. For tests, demos and
    subscribers whose rules allow a software key.
    """
    if len(password) < 8:
        raise InvalidInput(
            "the PKCS#12 password needs at least 8 characters",
            vi="mật khẩu tệp PKCS#12 cần ít nhất 8 ký tự",
        )
    encryption = (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(100_000)
        .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
        .hmac_hash(hashes.SHA256())
        .build(password.encode("utf-8"))
    )
    return pkcs12.serialize_key_and_certificates(
        friendly_name.encode("utf-8"),
        private_key,  # type: ignore[arg-type]
        issued.certificate,
        [i.certificate for i in issued.chain],
        encryption,
    )


def generate_for_pkcs12(algorithm: KeyAlgorithm) -> object:
    return generate_private_key(algorithm)


def spec_from_csr(
    csr_data: bytes,
    profile: Profile,
    *,
    subject: str | None = None,
    emails: tuple[str, ...] = (),
    days: int | None = None,
) -> IssueSpec:
    """An issuance request from a CSR; the subject given by the RA wins over the CSR's.

    A CA that copies subjects from CSRs lets requesters name themselves, so the CSR's subject
    is used only when none is given, and is checked like a typed one.
    """
    csr = load_csr(csr_data)
    name = parse_subject(subject) if subject else parse_subject(subject_text(csr.subject))
    return IssueSpec(profile, name, csr.public_key(), emails=emails, days=days, key_location="csr")


def issue_on_token(
    session: Session,
    authority: Authority,
    token: Pkcs11KeyStore,
    *,
    profile: Profile,
    subject: str,
    algorithm: KeyAlgorithm,
    actor: str,
    emails: tuple[str, ...] = (),
    days: int | None = None,
) -> Issued:
    """Make the key inside the subscriber's token, certify it, write the certificate beside it."""
    name = parse_subject(subject)
    key = token.generate(subject_text(name)[:64], algorithm)
    issued = issue(
        session,
        authority,
        IssueSpec(
            profile,
            name,
            key.public_key(),
            emails=emails,
            days=days,
            key_location=f"token:{token.token_label}:{key.key_id}",
        ),
        actor,
    )
    token.store_certificate(key.key_id, issued.row.der, subject_text(name)[:64])
    return issued


def issue_with_server_key(
    session: Session,
    authority: Authority,
    *,
    profile: Profile,
    subject: str,
    algorithm: KeyAlgorithm,
    actor: str,
    emails: tuple[str, ...] = (),
    days: int | None = None,
    store: KeyStore | None = None,
) -> Issued:
    """Make the key in kyso's own key store (software or HSM) for a signer the server holds
    keys for — an organization's seal kept by the records office, or a remote-signing user
    (``store``: the central signing HSM, :mod:`kyso.remote.central`). The certificate's
    ``key_location`` is ``<store>:<key id>``, which signing looks up."""
    name = parse_subject(subject)
    store = store or authority.keystore
    key = store.generate(subject_text(name)[:64], algorithm)
    return issue(
        session,
        authority,
        IssueSpec(
            profile,
            name,
            key.public_key(),
            emails=emails,
            days=days,
            key_location=f"{store.name}:{key.key_id}",
        ),
        actor,
    )
