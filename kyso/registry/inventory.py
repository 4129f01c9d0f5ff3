"""The key-device inventory as the pages list it: filters the registry's plain search lacks
(kind, the holder's name, an overdue PIN), with unit and holder, paged and counted in SQL;
and the people a device may be handed over to."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from kyso import clock
from kyso.errors import KysoError
from kyso.registry import devices, organizations, people
from kyso.registry.access import Action, Principal, require, visible
from kyso.store.models import (
    DeviceHandover,
    DeviceKind,
    DeviceStatus,
    KeyDevice,
    Organization,
    Person,
)

PAGE_SIZE = 50


@dataclass(frozen=True)
class Filters:
    status: DeviceStatus | None = None
    kind: DeviceKind | None = None
    unit: str | None = None  # a unit's public id: that unit and the units below it
    q: str | None = None  # part of the serial, the model or the holder's name
    pin_overdue: bool = False


@dataclass(frozen=True)
class Row:
    device: KeyDevice
    unit_name: str | None
    holder_id: str | None
    holder_name: str | None
    holder_mobile: str | None
    pin_since: datetime | None  # the last PIN change, or the hand-over when there was none


@dataclass(frozen=True)
class Inventory:
    rows: list[Row]
    total: int
    offset: int
    limit: int


def inventory(
    principal: Principal,
    session: Session,
    filters: Filters,
    *,
    pin_days: int,
    offset: int = 0,
    limit: int = PAGE_SIZE,
    now: datetime | None = None,
) -> Inventory:
    """One page of the devices in the principal's view, with unit and holder, counted and
    paged in SQL (one query for the page, one for the count).

    The view is the registry's (``require`` DEVICE_READ, then ``visible`` on the unit's path:
    a unit officer sees the devices of their unit and the units below; devices in the
    province's central stock have no unit and are seen province-wide only), as in
    :func:`kyso.registry.devices.search`, which lacks the kind, holder-name and overdue-PIN
    filters. "PIN overdue" counts as the home page's tile does
    (:func:`kyso.reports.dashboard.todo`): a handed-out device whose last PIN change, or else
    its last hand-over, is ``pin_days`` old or older."""
    require(principal, Action.DEVICE_READ)
    now = now or clock.now()
    last_handover = (
        select(DeviceHandover.device_id, func.max(DeviceHandover.at).label("at"))
        .group_by(DeviceHandover.device_id)
        .subquery()
    )
    since = func.coalesce(KeyDevice.last_pin_change_at, last_handover.c.at)
    query = (
        select(
            KeyDevice,
            Organization.name,
            Person.public_id,
            Person.full_name,
            Person.mobile,
            since.label("since"),
        )
        .outerjoin(Organization, KeyDevice.organization_id == Organization.id)
        .outerjoin(Person, KeyDevice.holder_person_id == Person.id)
        .outerjoin(last_handover, last_handover.c.device_id == KeyDevice.id)
    )
    if not principal.province_wide:
        query = query.where(visible(principal, Organization.path))
    if filters.unit is not None:
        root = organizations.get(principal, session, filters.unit)
        query = query.where(Organization.path.startswith(root.path, autoescape=True))
    if filters.status is not None:
        query = query.where(KeyDevice.status == filters.status)
    if filters.kind is not None:
        query = query.where(KeyDevice.kind == filters.kind)
    if filters.q:
        query = query.where(
            or_(
                KeyDevice.serial.icontains(filters.q, autoescape=True),
                KeyDevice.model.icontains(filters.q, autoescape=True),
                Person.full_name.icontains(filters.q, autoescape=True),
            )
        )
    if filters.pin_overdue:
        query = query.where(
            KeyDevice.status == DeviceStatus.ISSUED, since <= now - timedelta(days=pin_days)
        )
        order: tuple[Any, ...] = (since, KeyDevice.serial)
    else:
        order = (KeyDevice.serial,)
    total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    rows = [
        Row(device, unit_name, holder_id, holder_name, mobile, pin_since)
        for device, unit_name, holder_id, holder_name, mobile, pin_since in session.execute(
            query.order_by(*order).offset(offset).limit(limit)
        )
    ]
    return Inventory(rows, total, offset, limit)


@dataclass(frozen=True)
class Recipients:
    """Whom a device may be handed over to, for the hand-over form: each person with the
    name of their unit."""

    device: KeyDevice
    unit: Organization | None
    people: list[tuple[Person, str | None]]
    total: int


def recipients(
    principal: Principal,
    session: Session,
    device_public_id: str,
    *,
    q: str | None = None,
    keep: str | None = None,
    limit: int = 200,
) -> Recipients:
    """The people of the device's unit (and the units below) first; a search ``q`` looks
    everywhere in view. ``keep`` (a person's public id, chosen before a refused post) stays
    on the list when the principal may see that person."""
    device = devices.get(principal, session, device_public_id)
    unit = session.get(Organization, device.organization_id) if device.organization_id else None
    under = unit.public_id if unit is not None and not q else None
    found = people.search(principal, session, q=q, under=under, limit=limit)
    listed = list(found.items)
    if keep and all(p.public_id != keep for p in listed):
        with contextlib.suppress(KysoError):  # gone, or outside the view: not offered
            listed.insert(0, people.get(principal, session, keep))
    units = organizations.by_ids(session, (p.organization_id for p in listed))
    return Recipients(
        device,
        unit,
        [
            (p, units[p.organization_id].name if p.organization_id in units else None)
            for p in listed
        ],
        found.total,
    )
