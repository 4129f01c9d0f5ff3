"""How long requests take: submission to issuance, per request and per unit — the figure the
plan wants shortened ("slow, complex issuance, change and revocation").

Times are wall-clock hours. Restoring a locked device (form 06) has a deadline of one
working day from a valid request (a province's rule, Đồng Tháp 2025): that one is measured
in working time — Monday to Friday, Vietnam time; public holidays are not known to kyso and
count as working days.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from kyso import clock
from kyso.errors import NotFound
from kyso.lifecycle.workflow.states import aware
from kyso.registry.access import Action, Principal, require, visible
from kyso.store.models import CertificateRequest, Organization, RequestType

UNLOCK_DEADLINE = timedelta(days=1)  # one working day


@dataclass(frozen=True)
class Stats:
    count: int
    median_hours: float | None
    p90_hours: float | None
    max_hours: float | None

    @classmethod
    def of(cls, hours: Sequence[float]) -> Stats:
        if not hours:
            return cls(0, None, None, None)
        ordered = sorted(hours)
        return cls(
            len(ordered),
            round(statistics.median(ordered), 3),
            round(percentile(ordered, 0.9), 3),
            round(ordered[-1], 3),
        )


def percentile(ordered: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if len(ordered) == 1:
        return ordered[0]
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class RequestTime:
    request: str
    type: RequestType
    unit: str
    submitted_at: datetime
    issued_at: datetime
    hours: float
    working_hours: float


@dataclass(frozen=True)
class UnitTurnaround:
    unit: str
    name: str
    stats: Stats


@dataclass(frozen=True)
class UnlockDeadline:
    count: int
    within: int  # restored within one working day
    late: list[str]  # request public ids


@dataclass(frozen=True)
class Turnaround:
    overall: Stats
    by_type: dict[RequestType, Stats]
    by_unit: list[UnitTurnaround]
    unlock: UnlockDeadline
    requests: list[RequestTime]


def working_time(start: datetime, end: datetime) -> timedelta:
    """Time between two moments not counting Saturdays and Sundays (Vietnam time)."""
    if end <= start:
        return timedelta(0)
    local_start, local_end = clock.local(start), clock.local(end)
    total = timedelta(0)
    cursor = local_start
    while cursor < local_end:
        next_midnight = (cursor + timedelta(days=1)).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
        segment_end = min(next_midnight, local_end)
        if cursor.weekday() < 5:
            total += segment_end - cursor
        cursor = segment_end
    return total


def report(
    principal: Principal,
    session: Session,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    type: RequestType | None = None,
    unit: str | None = None,
) -> Turnaround:
    """Requests carried out (issued, revoked, restored) in the window, by submission time."""
    require(principal, Action.REPORT_READ)
    query = (
        select(
            CertificateRequest.public_id,
            CertificateRequest.type,
            CertificateRequest.submitted_at,
            CertificateRequest.issued_at,
            Organization.public_id,
            Organization.name,
            Organization.path,
        )
        .join(Organization, CertificateRequest.organization_id == Organization.id)
        .where(
            CertificateRequest.submitted_at.is_not(None),
            CertificateRequest.issued_at.is_not(None),
            visible(principal, Organization.path),
        )
    )
    if since is not None:
        query = query.where(CertificateRequest.submitted_at >= aware(since))
    if until is not None:
        query = query.where(CertificateRequest.submitted_at < aware(until))
    if type is not None:
        query = query.where(CertificateRequest.type == type)
    if unit is not None:
        root = session.execute(select(Organization).where(Organization.public_id == unit)).scalar()
        if root is None:
            raise NotFound(f"organization {unit}", vi=f"đơn vị {unit}")
        require(principal, Action.REPORT_READ, root.path)
        query = query.where(Organization.path.startswith(root.path, autoescape=True))
    times: list[RequestTime] = []
    names: dict[str, tuple[str, str]] = {}
    for public_id, kind, submitted, issued, unit_id, unit_name, path in session.execute(
        query.order_by(CertificateRequest.submitted_at)
    ):
        names[unit_id] = (unit_name, path)
        assert submitted is not None and issued is not None
        times.append(
            RequestTime(
                public_id,
                kind,
                unit_id,
                submitted,
                issued,
                (issued - submitted).total_seconds() / 3600,
                working_time(submitted, issued).total_seconds() / 3600,
            )
        )
    by_type: dict[RequestType, list[float]] = defaultdict(list)
    by_unit: dict[str, list[float]] = defaultdict(list)
    for t in times:
        by_type[t.type].append(t.hours)
        by_unit[t.unit].append(t.hours)
    unlocks = [t for t in times if t.type is RequestType.DEVICE_UNLOCK]
    late = [t.request for t in unlocks if t.working_hours * 3600 > UNLOCK_DEADLINE.total_seconds()]
    return Turnaround(
        overall=Stats.of([t.hours for t in times]),
        by_type={k: Stats.of(v) for k, v in sorted(by_type.items())},
        by_unit=[
            UnitTurnaround(u, names[u][0], Stats.of(h))
            for u, h in sorted(by_unit.items(), key=lambda item: names[item[0]][1])
        ],
        unlock=UnlockDeadline(len(unlocks), len(unlocks) - len(late), late),
        requests=times,
    )
