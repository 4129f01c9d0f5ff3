"""The home page's figures, scoped to what the viewer may see.

Each figure is one grouped query (``GROUP BY`` in the database, not rows in Python), so the
dashboard stays fast with tens of thousands of certificates (benchmarks/bench_web.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Select, extract, func, select, true
from sqlalchemy.orm import Session

from kyso import clock
from kyso.registry.access import Action, Principal, require, visible
from kyso.store.models import (
    Certificate,
    CertificateRequest,
    CertStatus,
    DeviceHandover,
    DeviceStatus,
    KeyDevice,
    Organization,
    Profile,
    RequestState,
    Sector,
)

SUBSCRIBER_PROFILES = (Profile.ORGANIZATION, Profile.INDIVIDUAL, Profile.DEVICE)


@dataclass(frozen=True)
class PlanLine:
    """One line of the province's plan (MISSION: the plan's figures), counted from issuance."""

    key: str
    target: int
    profile: Profile
    sector: Sector | None = None
    done: int = 0

    @property
    def percent(self) -> int:
        return min(100, round(100 * self.done / self.target)) if self.target else 100


# The seed plan's certificate targets, 2015–2020: organization certificates (217 done by 2017,
# ~650 planned for 2017), individual certificates (632 done + >600 commune leaders 2017 +
# >1,300 education and health leaders 2018 + ~700 doctors 2019 + ~300 renewals 2020), and the
# doctors' line of 2019 on its own because the health sector tracks it.
PLAN = (
    PlanLine("organization", 217 + 650, Profile.ORGANIZATION),
    PlanLine("individual", 632 + 600 + 1300 + 700 + 300, Profile.INDIVIDUAL),
    PlanLine("health_individual", 700, Profile.INDIVIDUAL, Sector.HEALTH),
)


@dataclass
class ToDo:
    """What waits for the viewer; None where their role has nothing to do with it."""

    to_decide: int | None = None  # submitted requests (province)
    my_drafts: int | None = None  # drafts and rejected requests of my unit, to finish or fix
    to_hand_over: int | None = None  # issued, not yet handed over
    expiring_30: int | None = None
    pin_overdue: int | None = None


@dataclass
class Dashboard:
    months: list[str]  # "2026-11"
    issued: dict[Sector, list[int]]  # per sector, one count per month
    statuses: dict[str, int]  # good / suspended / revoked / expired
    plan: list[PlanLine]
    todo: ToDo
    total: int = 0
    units_with_certificates: int = 0
    sectors: list[Sector] = field(default_factory=lambda: list(Sector))


def _scoped(query: Select, principal: Principal) -> Select:  # type: ignore[type-arg]
    return query.where(_in_view(principal))


def _in_view(principal: Principal) -> ColumnElement[bool]:
    return true() if principal.province_wide else visible(principal, Organization.path)


def _month_list(now: datetime, months: int) -> list[tuple[int, int]]:
    local = clock.local(now)
    year, month = local.year, local.month
    out = []
    for _ in range(months):
        out.append((year, month))
        month -= 1
        if month == 0:
            year, month = year - 1, 12
    return list(reversed(out))


def issued_by_month(
    principal: Principal, session: Session, *, months: int = 12, now: datetime | None = None
) -> tuple[list[str], dict[Sector, list[int]]]:
    """Certificates issued per calendar month (UTC month boundaries) and sector."""
    now = now or clock.now()
    slots = _month_list(now, months)
    start = datetime(slots[0][0], slots[0][1], 1, tzinfo=now.tzinfo)
    year = extract("year", Certificate.not_before)
    month = extract("month", Certificate.not_before)
    query = (
        select(year, month, Organization.sector, func.count())
        .join(Organization, Certificate.organization_id == Organization.id)
        .where(
            Certificate.profile.in_(SUBSCRIBER_PROFILES),
            Certificate.not_before >= start - timedelta(days=1),
        )
        .group_by(year, month, Organization.sector)
    )
    index = {slot: i for i, slot in enumerate(slots)}
    counts: dict[Sector, list[int]] = {sector: [0] * len(slots) for sector in Sector}
    for y, m, sector, n in session.execute(_scoped(query, principal)):
        slot = (int(y), int(m))
        if slot in index:
            counts[Sector(sector)][index[slot]] += int(n)
    return [f"{y:04d}-{m:02d}" for y, m in slots], counts


def status_breakdown(
    principal: Principal, session: Session, *, now: datetime | None = None
) -> dict[str, int]:
    """good / suspended / revoked, with good-but-expired counted as 'expired'."""
    now = now or clock.now()
    expired = Certificate.not_after <= now
    query = (
        select(Certificate.status, expired, func.count())
        .join(Organization, Certificate.organization_id == Organization.id)
        .where(Certificate.profile.in_(SUBSCRIBER_PROFILES))
        .group_by(Certificate.status, expired)
    )
    result = {"good": 0, "suspended": 0, "revoked": 0, "expired": 0}
    for status, is_expired, n in session.execute(_scoped(query, principal)):
        key = "expired" if is_expired and status == CertStatus.GOOD else CertStatus(status).value
        result[key] += int(n)
    return result


def plan_progress(principal: Principal, session: Session) -> list[PlanLine]:
    """Certificates issued (any status) against the plan's targets."""
    query = (
        select(Certificate.profile, Organization.sector, func.count())
        .join(Organization, Certificate.organization_id == Organization.id)
        .where(Certificate.profile.in_((Profile.ORGANIZATION, Profile.INDIVIDUAL)))
        .group_by(Certificate.profile, Organization.sector)
    )
    rows = [
        (Profile(p), Sector(s), int(n)) for p, s, n in session.execute(_scoped(query, principal))
    ]
    lines = []
    for line in PLAN:
        done = sum(
            n
            for profile, sector, n in rows
            if profile is line.profile and (line.sector is None or sector is line.sector)
        )
        lines.append(PlanLine(line.key, line.target, line.profile, line.sector, done))
    return lines


def todo(
    principal: Principal, session: Session, *, pin_days: int, now: datetime | None = None
) -> ToDo:
    now = now or clock.now()
    result = ToDo()
    if principal.can(Action.REQUEST_DECIDE):
        result.to_decide = session.scalar(
            select(func.count())
            .select_from(CertificateRequest)
            .where(CertificateRequest.state == RequestState.SUBMITTED)
        )
    if principal.can(Action.REQUEST_CREATE):
        own = (
            select(func.count())
            .select_from(CertificateRequest)
            .join(Organization, CertificateRequest.organization_id == Organization.id)
            .where(_in_view(principal))
        )
        result.my_drafts = session.scalar(
            own.where(CertificateRequest.state.in_((RequestState.DRAFT, RequestState.REJECTED)))
        )
        result.to_hand_over = session.scalar(
            own.where(CertificateRequest.state == RequestState.ISSUED)
        )
    if principal.can(Action.CERT_READ):
        result.expiring_30 = session.scalar(
            _scoped(
                select(func.count())
                .select_from(Certificate)
                .join(Organization, Certificate.organization_id == Organization.id)
                .where(
                    Certificate.profile.in_(SUBSCRIBER_PROFILES),
                    Certificate.status == CertStatus.GOOD,
                    Certificate.not_after > now,
                    Certificate.not_after <= now + timedelta(days=30),
                ),
                principal,
            )
        )
    if principal.can(Action.DEVICE_READ):
        last_handover = (
            select(DeviceHandover.device_id, func.max(DeviceHandover.at).label("at"))
            .group_by(DeviceHandover.device_id)
            .subquery()
        )
        changed = func.coalesce(KeyDevice.last_pin_change_at, last_handover.c.at)
        result.pin_overdue = session.scalar(
            _scoped(
                select(func.count())
                .select_from(KeyDevice)
                .join(Organization, KeyDevice.organization_id == Organization.id)
                .outerjoin(last_handover, last_handover.c.device_id == KeyDevice.id)
                .where(
                    KeyDevice.status == DeviceStatus.ISSUED,
                    changed <= now - timedelta(days=pin_days),
                ),
                principal,
            )
        )
    return result


def dashboard(
    principal: Principal, session: Session, *, pin_days: int, now: datetime | None = None
) -> Dashboard:
    require(principal, Action.CERT_READ)
    now = now or clock.now()
    months, issued = issued_by_month(principal, session, now=now)
    statuses = status_breakdown(principal, session, now=now)
    return Dashboard(
        months=months,
        issued=issued,
        statuses=statuses,
        plan=plan_progress(principal, session),
        todo=todo(principal, session, pin_days=pin_days, now=now),
        total=sum(statuses.values()),
    )
