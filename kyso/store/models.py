"""The tables kyso keeps. Times are UTC; serials are lower-case hex of a 128-bit random int."""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, gives back aware UTC, so SQLite and PostgreSQL behave alike."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    pass


def _enum(cls: type[enum.Enum]) -> Enum:
    """Enums stored by value as plain strings (no native PG enum types to migrate)."""
    return Enum(
        cls,
        native_enum=False,
        create_constraint=False,
        length=32,
        values_callable=lambda members: [m.value for m in members],
    )


class IdentityRole(enum.StrEnum):
    ROOT = "root"
    ISSUING = "issuing"
    OCSP = "ocsp"
    TSA = "tsa"
    AUDIT = "audit"  # signs the audit log's checkpoints (kyso.audit.checkpoints), nothing else


class Profile(enum.StrEnum):
    ORGANIZATION = "organization"
    INDIVIDUAL = "individual"
    DEVICE = "device"
    TSA = "tsa"
    OCSP = "ocsp"
    SUB_CA = "sub-ca"
    ROOT_CA = "root-ca"
    AUDIT = "audit"


class CertStatus(enum.StrEnum):
    GOOD = "good"
    SUSPENDED = "suspended"
    REVOKED = "revoked"


class RevocationReason(enum.StrEnum):
    """RFC 5280 §5.3.1 CRLReason, named as the CLI spells them."""

    UNSPECIFIED = "unspecified"
    KEY_COMPROMISE = "key-compromise"
    CA_COMPROMISE = "ca-compromise"
    AFFILIATION_CHANGED = "affiliation-changed"
    SUPERSEDED = "superseded"
    CESSATION_OF_OPERATION = "cessation-of-operation"
    CERTIFICATE_HOLD = "certificate-hold"
    REMOVE_FROM_CRL = "remove-from-crl"
    PRIVILEGE_WITHDRAWN = "privilege-withdrawn"
    AA_COMPROMISE = "aa-compromise"

    @property
    def code(self) -> int:
        return _REASON_CODES[self]


_REASON_CODES = {
    RevocationReason.UNSPECIFIED: 0,
    RevocationReason.KEY_COMPROMISE: 1,
    RevocationReason.CA_COMPROMISE: 2,
    RevocationReason.AFFILIATION_CHANGED: 3,
    RevocationReason.SUPERSEDED: 4,
    RevocationReason.CESSATION_OF_OPERATION: 5,
    RevocationReason.CERTIFICATE_HOLD: 6,
    RevocationReason.REMOVE_FROM_CRL: 8,
    RevocationReason.PRIVILEGE_WITHDRAWN: 9,
    RevocationReason.AA_COMPROMISE: 10,
}


class CertEventKind(enum.StrEnum):
    ISSUED = "issued"
    SUSPENDED = "suspended"
    RESTORED = "restored"
    REVOKED = "revoked"


class CaIdentity(Base):
    """A certificate kyso signs with itself: root, issuing CA, OCSP responder, TSA."""

    __tablename__ = "ca_identities"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    role: Mapped[IdentityRole] = mapped_column(_enum(IdentityRole))
    name: Mapped[str] = mapped_column(String(400))
    keystore: Mapped[str] = mapped_column(String(32))
    key_id: Mapped[str] = mapped_column(String(200))
    serial: Mapped[str] = mapped_column(String(40), unique=True)
    key_hash_sha1: Mapped[str] = mapped_column(String(40), index=True)
    certificate_der: Mapped[bytes] = mapped_column(LargeBinary)
    not_after: Mapped[datetime] = mapped_column(UTCDateTime)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Certificate(Base):
    __tablename__ = "certificates"
    __table_args__ = (Index("ix_certificates_status_not_after", "status", "not_after"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    serial: Mapped[str] = mapped_column(String(40), unique=True)
    issuer_id: Mapped[int] = mapped_column(ForeignKey("ca_identities.id"))
    profile: Mapped[Profile] = mapped_column(_enum(Profile))
    subject: Mapped[str] = mapped_column(Text)
    spki_sha256: Mapped[str] = mapped_column(String(64), index=True)
    key_location: Mapped[str] = mapped_column(String(200))
    not_before: Mapped[datetime] = mapped_column(UTCDateTime)
    not_after: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[CertStatus] = mapped_column(_enum(CertStatus), default=CertStatus.GOOD)
    status_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    reason: Mapped[RevocationReason | None] = mapped_column(_enum(RevocationReason), nullable=True)
    der: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Who the certificate belongs to (registry links; empty for the CA's own certificates).
    person_id: Mapped[int | None] = mapped_column(
        ForeignKey("people.id"), nullable=True, index=True
    )
    organization_id: Mapped[int | None] = mapped_column(
        ForeignKey("organizations.id"), nullable=True, index=True
    )
    device_id: Mapped[int | None] = mapped_column(
        ForeignKey("key_devices.id"), nullable=True, index=True
    )

    events: Mapped[list[CertificateEvent]] = relationship(
        back_populates="certificate", order_by="CertificateEvent.id"
    )


class CertificateEvent(Base):
    """One status change; the CRL builder reads these for delta CRLs."""

    __tablename__ = "certificate_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    certificate_id: Mapped[int] = mapped_column(ForeignKey("certificates.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    kind: Mapped[CertEventKind] = mapped_column(_enum(CertEventKind))
    reason: Mapped[RevocationReason | None] = mapped_column(_enum(RevocationReason), nullable=True)
    actor: Mapped[str] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(Text, nullable=True)

    certificate: Mapped[Certificate] = relationship(back_populates="events")


class CompromisedKey(Base):
    """Public keys revoked for key compromise: never certified again."""

    __tablename__ = "compromised_keys"

    spki_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    certificate_serial: Mapped[str] = mapped_column(String(40))
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class Crl(Base):
    __tablename__ = "crls"
    __table_args__ = (UniqueConstraint("issuer_id", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    issuer_id: Mapped[int] = mapped_column(ForeignKey("ca_identities.id"))
    number: Mapped[int] = mapped_column(BigInteger)
    is_delta: Mapped[bool] = mapped_column(Boolean)
    base_number: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    this_update: Mapped[datetime] = mapped_column(UTCDateTime)
    next_update: Mapped[datetime] = mapped_column(UTCDateTime)
    entries: Mapped[int] = mapped_column(Integer)
    der: Mapped[bytes] = mapped_column(LargeBinary)
    # The issuer's status-change counter (kyso.pki.crl.status_counter) when it was made: a
    # stored CRL is reused only while the counter is unchanged (a clock-free test).
    events_seen: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class Counter(Base):
    """Named monotonic counters (CRL numbers); rows are locked while incremented."""

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)


class OcspResponse(Base):
    """A pre-signed OCSP response per certificate (RFC 5019 style), replaced on every change."""

    __tablename__ = "ocsp_responses"
    __table_args__ = (UniqueConstraint("issuer_id", "serial"),)

    certificate_id: Mapped[int] = mapped_column(ForeignKey("certificates.id"), primary_key=True)
    issuer_id: Mapped[int] = mapped_column(ForeignKey("ca_identities.id"))
    serial: Mapped[str] = mapped_column(String(40))
    produced_at: Mapped[datetime] = mapped_column(UTCDateTime)
    next_update: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    der: Mapped[bytes] = mapped_column(LargeBinary)


class AuditEntry(Base):
    """Append-only, hash-chained: ``hash = SHA-256(prev_hash || canonical entry)``."""

    __tablename__ = "audit_entries"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(100), index=True)
    target: Mapped[str | None] = mapped_column(String(400), nullable=True)
    details: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """One row: the chain's last seq and hash. Locked by every append."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


class ApiClient(Base):
    """A system that calls the API with a bearer token; only the token's SHA-256 is kept."""

    __tablename__ = "api_clients"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[str] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # A token acts as its user (role and unit), narrowed to its scopes; a token without a user
    # is a system integration acting province-wide within its scopes.
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)


class ApiClientKey(Base):
    """A key a system token (one without a user) may sign documents with, named when the
    client is made: a system token signs with no other key."""

    __tablename__ = "api_client_keys"

    client_id: Mapped[int] = mapped_column(ForeignKey("api_clients.id"), primary_key=True)
    key_location: Mapped[str] = mapped_column(String(200), primary_key=True)


class AuditCheckpoint(Base):
    """A signed, time-stamped statement of the audit chain's length and head hash, so a
    truncated, re-chained or emptied log is found (also written outside the database)."""

    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, index=True)
    head_hash: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    statement: Mapped[str] = mapped_column(Text)  # the canonical JSON that was signed
    signature: Mapped[bytes] = mapped_column(LargeBinary)  # detached CMS over ``statement``
    timestamp_token: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    signer_serial: Mapped[str] = mapped_column(String(40))


class RateBucket(Base):
    """Rate-limit state shared by every process (GCRA: the theoretical arrival time of the
    next request, in seconds since the epoch)."""

    __tablename__ = "rate_buckets"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    tat: Mapped[float] = mapped_column(Float, index=True)


class TrustAnchor(Base):
    """A root certificate imported as trusted for validation (beside kyso's own root)."""

    __tablename__ = "trust_anchors"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    subject: Mapped[str] = mapped_column(Text)
    der: Mapped[bytes] = mapped_column(LargeBinary)
    not_after: Mapped[datetime] = mapped_column(UTCDateTime)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)


# --- the registration authority (registry, users, requests) -------------------------------------


class OrgKind(enum.StrEnum):
    PROVINCE = "province"
    DEPARTMENT = "department"
    DISTRICT = "district"
    COMMUNE = "commune"
    HOSPITAL = "hospital"
    HEALTH_CENTRE = "health_centre"
    HEALTH_STATION = "health_station"
    SCHOOL = "school"
    ASSOCIATION = "association"
    OTHER = "other"


class Sector(enum.StrEnum):
    GOVERNMENT = "government"
    HEALTH = "health"
    EDUCATION = "education"
    PARTY_FRONT = "party_front"  # Party, Fatherland Front, associations and unions
    OTHER = "other"


class Organization(Base):
    """A unit in the province's tree. ``path`` is the materialized ancestry (``/1/5/23/``) so
    "this unit and everything below it" is one indexed prefix query."""

    __tablename__ = "organizations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    code: Mapped[str | None] = mapped_column(String(40), unique=True, nullable=True)
    name: Mapped[str] = mapped_column(String(300))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("organizations.id"), nullable=True)
    path: Mapped[str] = mapped_column(String(400), index=True)
    kind: Mapped[OrgKind] = mapped_column(_enum(OrgKind))
    sector: Mapped[Sector] = mapped_column(_enum(Sector))
    address: Mapped[str | None] = mapped_column(String(500), nullable=True)
    province: Mapped[str | None] = mapped_column(String(100), nullable=True)
    tax_code: Mapped[str | None] = mapped_column(String(20), nullable=True)
    budget_code: Mapped[str | None] = mapped_column(String(20), nullable=True)
    email: Mapped[str | None] = mapped_column(String(200), nullable=True)
    phone: Mapped[str | None] = mapped_column(String(40), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 (SQLAlchemy's API)


class Person(Base):
    """A subscriber: the columns of request form 01 (Decree 68/2024/NĐ-CP)."""

    __tablename__ = "people"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    full_name: Mapped[str] = mapped_column(String(200), index=True)
    date_of_birth: Mapped[date | None] = mapped_column(Date, nullable=True)
    id_number: Mapped[str | None] = mapped_column(String(20), unique=True, nullable=True)
    id_issue_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    id_issue_place: Mapped[str | None] = mapped_column(String(200), nullable=True)
    position: Mapped[str | None] = mapped_column(String(200), nullable=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    email: Mapped[str | None] = mapped_column(String(200), nullable=True)
    mobile: Mapped[str | None] = mapped_column(String(20), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012


class Role(enum.StrEnum):
    PROVINCE_ADMIN = "province_admin"  # Sở TTTT: approves, issues, revokes, sees everything
    UNIT_OFFICER = "unit_officer"  # requests for its unit and the units below
    SIGNER = "signer"  # leaders, doctors, records clerks: sign documents
    AUDITOR = "auditor"  # reads everything, changes nothing


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    full_name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(200), nullable=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[Role] = mapped_column(_enum(Role))
    organization_id: Mapped[int | None] = mapped_column(
        ForeignKey("organizations.id"), nullable=True
    )
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"), nullable=True)
    totp_secret: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The last TOTP time step accepted: a code is never accepted twice (RFC 6238 §5.2).
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # The TOTP secret sealed (AES-GCM) with the key store's data key; ``totp_secret`` is the
    # clear form rows had before migration 0007, emptied when the secret is sealed.
    totp_secret_sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    # The PIN that, with a TOTP code, approves central signatures when no phone authenticator
    # (WebAuthn) is enrolled (Argon2); wrong PINs are counted and block it at the limit.
    signing_pin_hash: Mapped[str | None] = mapped_column(String(200), nullable=True)
    signing_pin_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    password_changed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class DeviceKind(enum.StrEnum):
    USB_TOKEN = "usb_token"  # noqa: S105 (not a secret)
    HSM_SLOT = "hsm_slot"


class DeviceStatus(enum.StrEnum):
    IN_STOCK = "in_stock"
    ISSUED = "issued"
    LOCKED = "locked"
    LOST = "lost"
    RETURNED = "returned"
    DESTROYED = "destroyed"


class KeyDevice(Base):
    """A USB token or HSM slot that keeps private keys, and who holds it."""

    __tablename__ = "key_devices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    serial: Mapped[str] = mapped_column(String(100), unique=True)
    model: Mapped[str] = mapped_column(String(200))
    kind: Mapped[DeviceKind] = mapped_column(_enum(DeviceKind))
    status: Mapped[DeviceStatus] = mapped_column(_enum(DeviceStatus))
    organization_id: Mapped[int | None] = mapped_column(
        ForeignKey("organizations.id"), nullable=True
    )
    holder_person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"), nullable=True)
    last_pin_change_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012


class DeviceHandover(Base):
    """Hand-over minutes (biên bản bàn giao): who gave the device to whom, when (form 07)."""

    __tablename__ = "device_handovers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("key_devices.id"), index=True)
    from_name: Mapped[str] = mapped_column(String(200))
    to_person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"), nullable=True)
    to_name: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    recorded_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)


class RequestType(enum.StrEnum):
    """After the official forms of Decree 68/2024/NĐ-CP."""

    NEW_INDIVIDUAL = "new_individual"  # form 01
    NEW_ORGANIZATION = "new_organization"  # form 02
    DEVICE_SERVICE = "device_service"  # form 03
    RENEWAL_CHANGE = "renewal_change"  # form 04: renewal or change of information
    REVOCATION = "revocation"  # form 05
    DEVICE_UNLOCK = "device_unlock"  # form 06: restoring a locked key device


class RequestState(enum.StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    APPROVED = "approved"
    REJECTED = "rejected"
    ISSUED = "issued"  # for revocation/unlock: "done"
    HANDED_OVER = "handed_over"
    CANCELLED = "cancelled"


class CertificateRequest(Base):
    __tablename__ = "certificate_requests"
    __table_args__ = (Index("ix_requests_org_state", "organization_id", "state"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    type: Mapped[RequestType] = mapped_column(_enum(RequestType))
    state: Mapped[RequestState] = mapped_column(_enum(RequestState))
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"))  # requesting unit
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"), nullable=True)
    subject_organization_id: Mapped[int | None] = mapped_column(
        ForeignKey("organizations.id"), nullable=True
    )
    certificate_id: Mapped[int | None] = mapped_column(
        ForeignKey("certificates.id"), nullable=True
    )  # issued
    target_certificate_id: Mapped[int | None] = mapped_column(
        ForeignKey("certificates.id"), nullable=True
    )  # renewal / change / revocation
    device_id: Mapped[int | None] = mapped_column(ForeignKey("key_devices.id"), nullable=True)
    batch_id: Mapped[int | None] = mapped_column(
        ForeignKey("batch_jobs.id"), nullable=True, index=True
    )
    form: Mapped[str] = mapped_column(Text)  # JSON: the form's own fields
    required_approvals: Mapped[int] = mapped_column(Integer, default=1)
    decision_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    issued_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    handed_over_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012


class RequestEvent(Base):
    __tablename__ = "request_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("certificate_requests.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(200))
    from_state: Mapped[RequestState | None] = mapped_column(_enum(RequestState), nullable=True)
    to_state: Mapped[RequestState] = mapped_column(_enum(RequestState))
    note: Mapped[str | None] = mapped_column(Text, nullable=True)


class Approval(Base):
    """One approver's yes; a request needs ``required_approvals`` distinct ones."""

    __tablename__ = "approvals"
    __table_args__ = (UniqueConstraint("request_id", "user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("certificate_requests.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class JobState(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class BatchJob(Base):
    """A bulk job (XLSX import, batch approval and issuance) whose progress pages poll."""

    __tablename__ = "batch_jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    kind: Mapped[str] = mapped_column(String(50))
    state: Mapped[JobState] = mapped_column(_enum(JobState))
    organization_id: Mapped[int | None] = mapped_column(
        ForeignKey("organizations.id"), nullable=True
    )
    total: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of {row, column, message}
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Notification(Base):
    """E-mail outbox: written in the transaction that causes it, sent afterwards (so a
    rolled-back action never mails anyone, and a mail server outage loses nothing)."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    to_address: Mapped[str] = mapped_column(String(200))
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(50), index=True)
    dedupe_key: Mapped[str | None] = mapped_column(String(200), unique=True, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)


class WebSession(Base):
    """A browser's login. The cookie holds a random token; only its SHA-256 is stored, so a
    copy of the database opens no session. Ended at logout, at a password change, after
    ``idle`` minutes without a request and at the absolute ``expires_at``."""

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    user_agent: Mapped[str | None] = mapped_column(String(300), nullable=True)


class LoginChallenge(Base):
    """The second login step (TOTP) waiting for its code: bound to the browser that passed
    the password step and used once."""

    __tablename__ = "login_challenges"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    browser_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class SignatureState(enum.StrEnum):
    WAITING = "waiting"
    SIGNED = "signed"
    DECLINED = "declined"


class SignatureRequest(Base):
    """A document a colleague (a records clerk, a unit officer) asks someone to sign: the
    leader finds it waiting on their home page, signs it with their key, and the sender
    downloads the signed file. The PDFs are kept here, not in the hour-long upload area."""

    __tablename__ = "signature_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    title: Mapped[str] = mapped_column(String(300))
    filename: Mapped[str] = mapped_column(String(200))
    document: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    signed_document: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True, deferred=True)
    requested_by: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    signer_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    state: Mapped[SignatureState] = mapped_column(_enum(SignatureState))
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Sequential sign-offs (the deputy, then the head): who signs after this signer (user
    # public ids, in order, JSON), and the request this one continues.
    next_signers: Mapped[str | None] = mapped_column(Text, nullable=True)
    previous_id: Mapped[int | None] = mapped_column(
        ForeignKey("signature_requests.id"), nullable=True
    )


# --- Remote signing (issue 10): central keys, consent on the phone, single-use SADs ---------


class KeyDelegate(Base):
    """A user (a records clerk) allowed to apply a unit's central seal key. Central seals are
    used only by the people listed here, not by everyone of the unit."""

    __tablename__ = "key_delegates"

    key_location: Mapped[str] = mapped_column(String(200), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    granted_by: Mapped[str] = mapped_column(String(200))
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AuthenticatorKind(enum.StrEnum):
    WEBAUTHN = "webauthn"  # a phone's platform authenticator (fingerprint, face)
    PIN_TOTP = "pin-totp"  # the fallback: the signing PIN and a TOTP code from the phone


class Authenticator(Base):
    """A phone enrolled to approve signatures. Re-enrolling a new phone adds a row; a lost
    phone's row is revoked (kept, for the audit trail)."""

    __tablename__ = "authenticators"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    kind: Mapped[AuthenticatorKind] = mapped_column(_enum(AuthenticatorKind))
    name: Mapped[str] = mapped_column(String(100))
    credential_id: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True, unique=True)
    public_key: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # COSE key
    sign_count: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_reason: Mapped[str | None] = mapped_column(String(200), nullable=True)


class PushSubscription(Base):
    """Where Web Push (RFC 8030, VAPID RFC 8292) reaches an enrolled phone's browser."""

    __tablename__ = "push_subscriptions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    endpoint: Mapped[str] = mapped_column(String(1000), unique=True)
    p256dh: Mapped[str] = mapped_column(String(200))
    auth: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    failures: Mapped[int] = mapped_column(Integer, default=0)


class ApprovalState(enum.StrEnum):
    WAITING = "waiting"  # on the signer's phone
    APPROVED = "approved"  # consent given; the SAD or the signatures are being made
    DONE = "done"
    REFUSED = "refused"
    EXPIRED = "expired"
    FAILED = "failed"


class ApprovalPurpose(enum.StrEnum):
    CSC = "csc"  # a CSC client asked for a SAD over hashes it will sign with signHash
    DOCUMENT = "document"  # kyso itself signs the listed documents once approved


class SignApproval(Base):
    """One request for the signer's consent, listing each document (or hash) it covers."""

    __tablename__ = "sign_approvals"
    __table_args__ = (Index("ix_sign_approvals_user_state", "user_id", "state"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    key_location: Mapped[str] = mapped_column(String(200))
    purpose: Mapped[ApprovalPurpose] = mapped_column(_enum(ApprovalPurpose))
    requester: Mapped[str] = mapped_column(String(200))  # "api:erp", "user:lan", ...
    requester_name: Mapped[str] = mapped_column(String(200))  # as the phone shows it
    client_id: Mapped[int | None] = mapped_column(ForeignKey("api_clients.id"), nullable=True)
    hash_algorithm: Mapped[str] = mapped_column(String(40))
    description: Mapped[str | None] = mapped_column(String(500), nullable=True)
    state: Mapped[ApprovalState] = mapped_column(_enum(ApprovalState))
    challenge: Mapped[bytes] = mapped_column(LargeBinary)  # WebAuthn challenge, fresh per request
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    authenticator_id: Mapped[int | None] = mapped_column(
        ForeignKey("authenticators.id"), nullable=True
    )
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    callback_url: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    sad_issued: Mapped[bool] = mapped_column(Boolean, default=False)
    # The outcome's webhook (kyso.remote.webhooks): tries so far, when to try again (None:
    # nothing to send), when it was delivered, and the last failure.
    webhook_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    webhook_next_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    webhook_delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    webhook_error: Mapped[str | None] = mapped_column(String(500), nullable=True)

    items: Mapped[list[SignApprovalItem]] = relationship(
        back_populates="approval", order_by="SignApprovalItem.position"
    )


class SignApprovalItem(Base):
    """One document (or one hash, for CSC) in an approval, as the signer sees it listed."""

    __tablename__ = "sign_approval_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    approval_id: Mapped[int] = mapped_column(ForeignKey("sign_approvals.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(300))
    number: Mapped[str | None] = mapped_column(String(100), nullable=True)
    digest: Mapped[str] = mapped_column(String(200))  # base64 of the hash consented to
    kind: Mapped[str | None] = mapped_column(String(20), nullable=True)  # pdf, xml, cms, ...
    filename: Mapped[str | None] = mapped_column(String(200), nullable=True)
    document: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True, deferred=True)
    options: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON: how to sign it
    signed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True, deferred=True)
    signature_request_id: Mapped[int | None] = mapped_column(
        ForeignKey("signature_requests.id"), nullable=True
    )
    error: Mapped[str | None] = mapped_column(Text, nullable=True)

    approval: Mapped[SignApproval] = relationship(back_populates="items")


class SignActivation(Base):
    """A Signature Activation Data (SAD, CSC API; SCAL2 of CEN EN 419 241-1): single use,
    short-lived, bound to the user, the credential and the exact hashes. Only its SHA-256 is
    kept; it is consumed by one conditional UPDATE, so two processes never both honour it."""

    __tablename__ = "sign_activations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sad_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    client_id: Mapped[int | None] = mapped_column(ForeignKey("api_clients.id"), nullable=True)
    key_location: Mapped[str] = mapped_column(String(200))
    hash_algorithm: Mapped[str] = mapped_column(String(40))
    hashes: Mapped[str] = mapped_column(Text)  # JSON list of base64 digests, sorted
    approval_id: Mapped[int | None] = mapped_column(ForeignKey("sign_approvals.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class CscAccessToken(Base):
    """A bearer token from CSC ``auth/login`` (a user) or ``oauth2/token`` (a system's client
    credentials); short-lived, only its SHA-256 kept."""

    __tablename__ = "csc_access_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    client_id: Mapped[int | None] = mapped_column(ForeignKey("api_clients.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class WebAuthnChallenge(Base):
    """A WebAuthn registration ceremony waiting for the phone's answer (W3C WebAuthn §7.1
    step 8: the challenge must be the one the server sent): made after the user typed their
    password again, bound to that user, used once, five minutes at most. Only its SHA-256
    is kept; the phone's answer carries the challenge back in its clientDataJSON."""

    __tablename__ = "webauthn_challenges"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    challenge_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


# --- Exchange between agencies (issue 11): edXML packages, inboxes and outboxes --------------


class ExchangeDirection(enum.StrEnum):
    OUT = "out"  # sent by a unit of this installation
    IN = "in"  # received by a unit of this installation


class ExchangeState(enum.StrEnum):
    """Where a message stands for the local unit (the QCVN 102:2016 status in brackets)."""

    QUEUED = "queued"  # out: signed, waiting for delivery (retried while the other side is down)
    DELIVERED = "delivered"  # out: the recipient's system took it (01)
    ARRIVED = "arrived"  # in: in the unit's inbox, not yet received by its records clerk (01)
    RECEIVED = "received"  # in: the clerk received it, with its ĐẾN mark (03); out: told so
    REFUSED = "refused"  # not valid on arrival, or refused by the clerk (02)
    RECALLED = "recalled"  # the sender recalled it and the recipient agreed (13/15)
    FAILED = "failed"  # out: not delivered after every retry


class ExchangeMessage(Base):
    """One edXML package between one local unit and one other agency. A package to several
    recipients is one OUT message per recipient (each has its own fate); the signed package
    is kept as sent or received, byte for byte. ``package_sha256`` with the unit and the
    direction is unique: a message delivered twice is stored once."""

    __tablename__ = "exchange_messages"
    __table_args__ = (
        UniqueConstraint("organization_id", "direction", "package_sha256", name="uq_exchange_once"),
        UniqueConstraint(
            "organization_id", "received_year", "received_number", name="uq_received_number"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    direction: Mapped[ExchangeDirection] = mapped_column(_enum(ExchangeDirection))
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    peer_organ_id: Mapped[str] = mapped_column(String(60))
    peer_name: Mapped[str] = mapped_column(String(300))
    document_id: Mapped[str] = mapped_column(String(300), index=True)
    code: Mapped[str] = mapped_column(String(100))  # number/notation
    subject: Mapped[str] = mapped_column(String(500))
    type_name: Mapped[str] = mapped_column(String(100))
    business: Mapped[int] = mapped_column(Integer, default=0)  # 0 new, 1 recall, 2/3 update
    package_sha256: Mapped[str] = mapped_column(String(64))
    package: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    state: Mapped[ExchangeState] = mapped_column(_enum(ExchangeState), index=True)
    status_code: Mapped[str | None] = mapped_column(String(2), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    received_number: Mapped[str | None] = mapped_column(String(40), nullable=True)  # số đến
    received_year: Mapped[int | None] = mapped_column(Integer, nullable=True)  # its register
    marked_document: Mapped[bytes | None] = mapped_column(
        LargeBinary, nullable=True, deferred=True
    )  # in: the main PDF with the ĐẾN mark
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    actor: Mapped[str] = mapped_column(String(200))  # who sent it, or "exchange:<peer>"
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ExchangeStatusEntry(Base):
    """A status (QCVN 102:2016 codes 01–16) said about a message, by either side, kept as
    its history."""

    __tablename__ = "exchange_statuses"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("exchange_messages.id"), index=True)
    code: Mapped[str] = mapped_column(String(2))
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    organ_id: Mapped[str] = mapped_column(String(60))  # who said it
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ExchangeStatusOut(Base):
    """A signed status message (QCVN 102:2016) for a sender in another installation — 03
    when the clerk received the document, 02 when they refused it — kept until delivered,
    retried like packages."""

    __tablename__ = "exchange_status_outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("exchange_messages.id"), index=True)
    organ_id: Mapped[str] = mapped_column(String(60))  # the sender it goes to
    code: Mapped[str] = mapped_column(String(2))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Delivery(enum.StrEnum):
    """How a type of document goes out, as the province sets it in its catalogue (the plan:
    which types are electronic only, which with paper in parallel)."""

    ELECTRONIC = "electronic"  # electronic only, with the specialized signature
    PARALLEL = "parallel"  # electronic, and paper in parallel
    PAPER = "paper"  # paper only


class DocumentType(Base):
    """A type of administrative document (Decree 30/2020, Annex III: its name and the
    abbreviation its notation starts with) and how it is delivered."""

    __tablename__ = "document_types"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    abbreviation: Mapped[str] = mapped_column(String(20), unique=True)  # "QĐ"; "CV" for công văn
    name: Mapped[str] = mapped_column(String(100))
    delivery: Mapped[Delivery] = mapped_column(_enum(Delivery))
    position: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_by: Mapped[str] = mapped_column(String(200))


class RegisteredDocument(Base):
    """A document a unit issued, in its register (sổ văn bản đi): its number in the unit's
    yearly sequence, notation, date, type and subject; the issued PDF (the leader's signature
    with the unit's seal over it); and whether it went out electronically — the records the
    plan's 90 % figure is computed from."""

    __tablename__ = "registered_documents"
    __table_args__ = (
        UniqueConstraint("organization_id", "year", "number", name="uq_register_number"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    year: Mapped[int] = mapped_column(Integer)
    number: Mapped[int] = mapped_column(Integer)
    notation: Mapped[str] = mapped_column(String(60))
    type_id: Mapped[int] = mapped_column(ForeignKey("document_types.id"))
    delivery: Mapped[Delivery] = mapped_column(_enum(Delivery))  # the type's, when issued
    issued_on: Mapped[date] = mapped_column(Date, index=True)
    subject: Mapped[str] = mapped_column(String(500))
    signer_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    document: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True, deferred=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    actor: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The e-gazette (công báo điện tử): published for anyone to read, with the verdict of
    # kyso's validation when it was published (JSON: indication, signers, when).
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    published_report: Mapped[str | None] = mapped_column(Text, nullable=True)


# --- The electronic archive (issue 11) ---------------------------------------------------------


class ArchiveRecord(Base):
    """One file kept in the archive, with the fields of the archiving rules (code, number
    and notation, date, issuer, subject, type, pages, retention). The content itself is in
    the content-addressed store (``KYSO_HOME/archive``), named by its SHA-256: the row says
    what it is, the name proves it was not changed."""

    __tablename__ = "archive_records"
    __table_args__ = (UniqueConstraint("source", "sha256", name="uq_archive_once"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # issued, sent, received
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    media_type: Mapped[str] = mapped_column(String(100))
    filename: Mapped[str] = mapped_column(String(200))
    code: Mapped[str] = mapped_column(String(100))  # số và ký hiệu
    document_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    issuer: Mapped[str] = mapped_column(String(300))
    subject: Mapped[str] = mapped_column(String(500))
    type_name: Mapped[str] = mapped_column(String(100))
    pages: Mapped[int | None] = mapped_column(Integer, nullable=True)
    retention: Mapped[str] = mapped_column(String(40))  # "vĩnh viễn", "10 năm", …
    source: Mapped[str] = mapped_column(String(100))  # "register:<id>", "exchange:<id>"
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # PAdES B-LTA: until when the last archival time-stamp's TSA certificate is valid, and
    # the file as it was before that time-stamp was added (the store keeps both)
    timestamped_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    previous_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)


class ExchangeSubscription(Base):
    """A system (an API client) told of every status of a unit's messages, by a signed
    webhook: the document management system learns at once that a document arrived or was
    received, refused or recalled."""

    __tablename__ = "exchange_subscriptions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("api_clients.id"), index=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id"), index=True)
    url: Mapped[str] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ExchangeEvent(Base):
    """One webhook to send (and retry) to one subscription; ``event_key`` (message and
    status) is its Idempotency-Key, unique per subscription: an event is queued once."""

    __tablename__ = "exchange_events"
    __table_args__ = (UniqueConstraint("subscription_id", "event_key", name="uq_exchange_event"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("exchange_subscriptions.id"))
    event_key: Mapped[str] = mapped_column(String(100))
    payload: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class IdempotentRequest(Base):
    """A request a system sent with an ``Idempotency-Key`` (an IETF draft every payment API
    follows): the answer kept, so the same key again gets the same answer instead of a
    second document; the same key with another request is refused."""

    __tablename__ = "idempotent_requests"
    __table_args__ = (UniqueConstraint("client_id", "key", name="uq_idempotency_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("api_clients.id"))
    key: Mapped[str] = mapped_column(String(200))
    request_sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[int | None] = mapped_column(Integer, nullable=True)  # None: in progress
    response: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
