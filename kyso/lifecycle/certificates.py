"""The certificate service: find, list, read, suspend, restore and revoke certificates for a
:class:`~kyso.registry.access.Principal`.

The web pages, the REST API and the CLI all come here, so the rules are said once: a unit's
people see the certificates of their unit and the units below it; the province sees all;
status changes need ``cert.revoke`` on a certificate in view, and the CA's own certificates
are refused by :mod:`kyso.pki.status` whoever asks. The CA (``kyso.pki``) carries out the
change; this module decides who may ask for it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from kyso import clock
from kyso.errors import Forbidden, NotFound
from kyso.pki import issuance, status
from kyso.pki.authority import Authority
from kyso.pki.batcher import IssuanceBatcher
from kyso.registry import organizations
from kyso.registry.access import Action, Principal, require, visible
from kyso.store.models import (
    Certificate,
    CertificateEvent,
    CertificateRequest,
    CertStatus,
    KeyDevice,
    Organization,
    Person,
    Profile,
    RevocationReason,
    Sector,
    User,
)

# The statuses a person filters on: "expired" is a good certificate past its end.
SHOWN_STATUSES = ("good", "suspended", "revoked", "expired")
SUBSCRIBER_PROFILES = (Profile.INDIVIDUAL, Profile.ORGANIZATION, Profile.DEVICE)


@dataclass(frozen=True)
class CertificateFilter:
    """What a list asks for; every field optional. ``unit`` is a unit's public id (its
    subtree); ``status`` one of :data:`SHOWN_STATUSES`; ``expiring`` a number of days."""

    unit: str | None = None
    sector: Sector | None = None
    status: str | None = None
    profile: Profile | None = None
    expiring: int | None = None
    text: str | None = None  # part of the subject or holder's name, or the start of a serial


@dataclass(frozen=True)
class CertificateRow:
    """One line of a list: never the DER."""

    serial: str
    subject: str
    holder: str
    profile: str
    status: str  # good / suspended / revoked / expired (good but past not_after)
    not_before: datetime
    not_after: datetime
    days_left: int
    revoked_at: datetime | None
    reason: str | None
    unit_name: str | None
    unit_id: str | None
    sector: str | None


@dataclass(frozen=True)
class Page:
    rows: list[CertificateRow]
    total: int


@dataclass
class CertificateDetail:
    """One certificate with what its page shows: holder, unit, device, history."""

    cert: Certificate
    organization: Organization | None
    person: Person | None
    device: KeyDevice | None
    events: list[CertificateEvent]
    actor_names: dict[str, str] = field(default_factory=dict)
    request_id: str | None = None
    ca_own: bool = False


_CN = re.compile(r"(?:^|,)CN=((?:\\.|[^,\\])*)")


def common_name(subject: str) -> str:
    """The CN of an RFC 4514 subject as stored (the name people know the holder by)."""
    found = _CN.search(subject)
    if found is None:
        return subject
    return re.sub(r"\\(.)", r"\1", found.group(1))


def shown_status(value: CertStatus | str, not_after: datetime, now: datetime) -> str:
    text = value.value if isinstance(value, CertStatus) else str(value)
    return "expired" if text == CertStatus.GOOD.value and not_after <= now else text


def serial_prefix(text: str) -> str | None:
    """The start of a serial as people type it (colons, spaces, 0x), or None if it is not one."""
    serial = text.lower().replace(":", "").replace(" ", "").removeprefix("0x").lstrip("0")
    if serial and len(serial) <= 40 and all(c in "0123456789abcdef" for c in serial):
        return serial
    return None


def _query(
    principal: Principal, session: Session, filters: CertificateFilter, now: datetime
) -> Select[*tuple[Any, ...]]:
    """The certificates in view matching the filters: the list's columns only, one statement
    whatever the page size."""
    require(principal, Action.CERT_READ)
    query = (
        select(
            Certificate.id,
            Certificate.serial,
            Certificate.subject,
            Certificate.profile,
            Certificate.status,
            Certificate.not_before,
            Certificate.not_after,
            Certificate.revoked_at,
            Certificate.reason,
            Organization.name.label("unit_name"),
            Organization.public_id.label("unit_id"),
            Organization.sector,
            Person.full_name.label("holder"),
        )
        .select_from(Certificate)
        .outerjoin(Organization, Certificate.organization_id == Organization.id)
        .outerjoin(Person, Certificate.person_id == Person.id)
    )
    if not principal.province_wide:  # a unit sees its own certificates and those below it
        query = query.where(visible(principal, Organization.path))
    if filters.unit:
        root = organizations.get(principal, session, filters.unit)  # 404 / 403 outside the view
        query = query.where(Organization.path.startswith(root.path, autoescape=True))
    if filters.sector is not None:
        query = query.where(Organization.sector == filters.sector)
    if filters.profile is not None:
        query = query.where(Certificate.profile == filters.profile)
    if filters.status == "good":
        query = query.where(Certificate.status == CertStatus.GOOD, Certificate.not_after > now)
    elif filters.status == "expired":
        query = query.where(Certificate.status == CertStatus.GOOD, Certificate.not_after <= now)
    elif filters.status:
        query = query.where(Certificate.status == CertStatus(filters.status))
    if filters.expiring:
        # kyso.lifecycle.expiry's rule: valid now, ending within the window, a subscriber's
        # certificate (the home page's tile counts the same).
        query = query.where(
            Certificate.status == CertStatus.GOOD,
            Certificate.not_after > now,
            Certificate.not_after <= now + timedelta(days=filters.expiring),
            Certificate.profile.in_(SUBSCRIBER_PROFILES),
        )
    text = (filters.text or "").strip()
    if text:
        matches = [
            Certificate.subject.icontains(text, autoescape=True),
            Person.full_name.icontains(text, autoescape=True),
        ]
        serial = serial_prefix(text)
        if serial is not None:
            matches.append(Certificate.serial.startswith(serial, autoescape=True))
        query = query.where(or_(*matches))
    return query


def _rows(result: Any, now: datetime) -> list[CertificateRow]:
    return [
        CertificateRow(
            serial=r.serial,
            subject=r.subject,
            holder=r.holder or common_name(r.subject),
            profile=r.profile.value,
            status=shown_status(r.status, r.not_after, now),
            not_before=r.not_before,
            not_after=r.not_after,
            days_left=(r.not_after - now).days,
            revoked_at=r.revoked_at,
            reason=r.reason.value if r.reason else None,
            unit_name=r.unit_name,
            unit_id=r.unit_id,
            sector=r.sector.value if r.sector is not None else None,
        )
        for r in result
    ]


def search(
    principal: Principal,
    session: Session,
    filters: CertificateFilter,
    *,
    offset: int = 0,
    limit: int = 50,
    count: bool = True,
) -> Page:
    """A page of the certificates in view, newest first, with the total (unless ``count`` is
    off, for exports)."""
    now = clock.now()
    query = _query(principal, session, filters, now)
    total = (
        session.execute(
            select(func.count()).select_from(query.order_by(None).subquery())
        ).scalar_one()
        if count
        else 0
    )
    rows = _rows(
        session.execute(query.order_by(Certificate.id.desc()).offset(offset).limit(limit)), now
    )
    return Page(rows, total)


def get(
    principal: Principal, session: Session, serial: str, action: Action = Action.CERT_READ
) -> Certificate:
    """The certificate, if ``principal`` may do ``action`` on it (its unit must be in view;
    a certificate of no unit, as the CA's own, is the province's)."""
    require(principal, action)
    row = session.execute(
        select(Certificate).where(Certificate.serial == status.normalize_serial(serial))
    ).scalar_one_or_none()
    if row is None:
        raise NotFound(f"certificate {serial}", vi=f"chứng thư {serial}")
    path = None
    if row.organization_id is not None:
        path = session.execute(
            select(Organization.path).where(Organization.id == row.organization_id)
        ).scalar_one_or_none()
    if not principal.province_wide and (path is None or not principal.covers(path)):
        raise Forbidden("outside your unit", vi="ngoài phạm vi đơn vị của bạn")
    return row


def detail(principal: Principal, session: Session, serial: str) -> CertificateDetail:
    """Everything one certificate's page shows, after the same check as :func:`get`."""
    row = get(principal, session, serial)

    def load(model: Any, key: int | None) -> Any:
        return session.get(model, key) if key is not None else None

    events = list(
        session.execute(
            select(CertificateEvent)
            .where(CertificateEvent.certificate_id == row.id)
            .order_by(CertificateEvent.at.desc(), CertificateEvent.id.desc())
        ).scalars()
    )
    request_id = (
        session.execute(
            select(CertificateRequest.public_id)
            .where(CertificateRequest.certificate_id == row.id)
            .order_by(CertificateRequest.id)
        )
        .scalars()
        .first()
    )
    return CertificateDetail(
        cert=row,
        organization=load(Organization, row.organization_id),
        person=load(Person, row.person_id),
        device=load(KeyDevice, row.device_id),
        events=events,
        actor_names=_actor_names(session, {e.actor for e in events}),
        request_id=request_id,
        ca_own=status.is_ca_own(session, row),
    )


def _actor_names(session: Session, actors: set[str]) -> dict[str, str]:
    """'user:lan' → 'Nguyễn Thị Lan' for the people named in a history (one query)."""
    names = {a.removeprefix("user:") for a in actors if a.startswith("user:")}
    if not names:
        return {}
    rows = session.execute(
        select(User.username, User.full_name).where(User.username.in_(names))
    ).all()
    return {f"user:{r.username}": r.full_name for r in rows}


def issue_from_csr(
    principal: Principal,
    batcher: IssuanceBatcher,
    csr_pem: bytes,
    profile: Profile,
    *,
    subject: str | None = None,
    emails: tuple[str, ...] = (),
    days: int | None = None,
) -> issuance.Issued:
    """A certificate straight from a CSR for a system holding ``certificates:issue`` (the
    requests of Decree 68 go through :mod:`kyso.lifecycle.workflow` instead). Checked here,
    before the request joins the batcher's group commit, which takes only the actor."""
    require(principal, Action.CERT_ISSUE)
    spec = issuance.spec_from_csr(csr_pem, profile, subject=subject, emails=emails, days=days)
    return batcher.issue(spec, principal.actor)


def suspend(
    principal: Principal,
    session: Session,
    authority: Authority,
    serial: str,
    note: str | None = None,
) -> Certificate:
    """Put a certificate on hold (certificateHold), if ``principal`` may revoke it."""
    row = get(principal, session, serial, Action.CERT_REVOKE)
    return status.suspend(session, authority, row.serial, principal.actor, note)


def restore(
    principal: Principal,
    session: Session,
    authority: Authority,
    serial: str,
    note: str | None = None,
) -> Certificate:
    row = get(principal, session, serial, Action.CERT_REVOKE)
    return status.restore(session, authority, row.serial, principal.actor, note)


def revoke(
    principal: Principal,
    session: Session,
    authority: Authority,
    serial: str,
    reason: RevocationReason,
    note: str | None = None,
) -> Certificate:
    row = get(principal, session, serial, Action.CERT_REVOKE)
    return status.revoke(session, authority, row.serial, reason, principal.actor, note)
