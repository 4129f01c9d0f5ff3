"""Certificates close to expiry, per unit: the lists a unit officer works through before the
renewal deadline (30, 60 or 90 days ahead; form 04 renews a certificate before it expires)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from kyso import clock
from kyso.errors import InvalidInput, NotFound
from kyso.registry.access import Action, Principal, require, visible
from kyso.store.models import Certificate, CertStatus, Organization, Person, Profile

THRESHOLDS = (30, 60, 90)
MAX_DAYS = 366


@dataclass(frozen=True)
class Expiring:
    serial: str
    subject: str
    profile: Profile
    not_after: datetime
    days_left: int
    holder: str | None  # the subscriber's name, for an individual certificate


@dataclass
class UnitExpiry:
    unit: str | None  # public id; None: certificates tied to no unit (issued outside requests)
    name: str
    certificates: list[Expiring] = field(default_factory=list)

    def within(self, days: int) -> int:
        return sum(1 for c in self.certificates if c.days_left < days)


def expiring(
    principal: Principal,
    session: Session,
    days: int,
    *,
    unit: str | None = None,
    now: datetime | None = None,
) -> list[UnitExpiry]:
    """Good certificates expiring within ``days`` days, by unit (unit order of the tree),
    soonest first within a unit."""
    require(principal, Action.CERT_READ)
    if not 1 <= days <= MAX_DAYS:
        raise InvalidInput(f"days must be 1 to {MAX_DAYS}", vi=f"số ngày phải từ 1 đến {MAX_DAYS}")
    now = now or clock.now()
    query = (
        select(Certificate, Organization, Person.full_name)
        .outerjoin(Organization, Certificate.organization_id == Organization.id)
        .outerjoin(Person, Certificate.person_id == Person.id)
        .where(
            Certificate.status == CertStatus.GOOD,
            Certificate.not_after > now,
            Certificate.not_after <= now + timedelta(days=days),
            Certificate.profile.in_([Profile.INDIVIDUAL, Profile.ORGANIZATION, Profile.DEVICE]),
        )
    )
    if not principal.province_wide:
        query = query.where(visible(principal, Organization.path))
    if unit is not None:
        root = session.execute(
            select(Organization).where(Organization.public_id == unit)
        ).scalar_one_or_none()
        if root is None:
            raise NotFound(f"organization {unit}", vi=f"đơn vị {unit}")
        require(principal, Action.CERT_READ, root.path)
        query = query.where(Organization.path.startswith(root.path, autoescape=True))
    groups: dict[str | None, UnitExpiry] = {}
    paths: dict[str | None, str] = {}
    for cert, org, holder in session.execute(query.order_by(Certificate.not_after)):
        key = org.public_id if org is not None else None
        if key not in groups:
            groups[key] = UnitExpiry(key, org.name if org is not None else "(chưa gắn đơn vị)")
            paths[key] = org.path if org is not None else "~"
        groups[key].certificates.append(
            Expiring(
                cert.serial,
                cert.subject,
                cert.profile,
                cert.not_after,
                (cert.not_after - now).days,
                holder,
            )
        )
    return [groups[k] for k in sorted(groups, key=lambda k: paths[k])]
