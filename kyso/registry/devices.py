"""Private-key storage devices (USB tokens, HSM slots): the inventory, who holds each one,
hand-over records (form 07 of Decree 68/2024/NĐ-CP), PIN changes and lost devices.

A device moves only along :data:`TRANSITIONS`; anything else is refused with the reason.
Reporting a device lost changes its status only: revoking its certificates is the
lifecycle's job, which calls :func:`mark_lost` and revokes what it returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from kyso import clock
from kyso.audit.log import Event, record
from kyso.errors import Conflict, Forbidden, NotFound
from kyso.registry import fields as f
from kyso.registry import organizations
from kyso.registry.access import Action, Principal, require, visible
from kyso.store.models import (
    Certificate,
    CertStatus,
    DeviceHandover,
    DeviceKind,
    DeviceStatus,
    KeyDevice,
    Organization,
    Person,
    User,
)

S = DeviceStatus
TRANSITIONS: dict[DeviceStatus, frozenset[DeviceStatus]] = {
    S.IN_STOCK: frozenset({S.ISSUED, S.DESTROYED}),
    # issued → issued: handed on to another holder (minutes recorded)
    S.ISSUED: frozenset({S.ISSUED, S.LOCKED, S.LOST, S.RETURNED}),
    # locked (PIN tries used up) → issued: restored (form 06)
    S.LOCKED: frozenset({S.ISSUED, S.LOST, S.RETURNED}),
    S.LOST: frozenset({S.RETURNED, S.DESTROYED}),  # found again: back for checking
    S.RETURNED: frozenset({S.IN_STOCK, S.ISSUED, S.DESTROYED}),
    S.DESTROYED: frozenset(),
}

STATUS_LABELS: dict[DeviceStatus, str] = {
    S.IN_STOCK: "Trong kho",
    S.ISSUED: "Đã cấp phát",
    S.LOCKED: "Bị khóa",
    S.LOST: "Bị mất",
    S.RETURNED: "Đã thu hồi",
    S.DESTROYED: "Đã hủy",
}


@dataclass(frozen=True)
class DeviceInput:
    serial: str
    model: str
    kind: DeviceKind = DeviceKind.USB_TOKEN
    unit: str | None = None  # public id of the unit that keeps it in stock; None: the province


@dataclass(frozen=True)
class OverduePin:
    device: KeyDevice
    holder: Person | None
    unit: Organization | None
    since: datetime  # the last PIN change, or the hand-over when there was none
    days: int  # days since then


def _not_found(what: str) -> NotFound:
    return NotFound(f"key device {what}", vi=f"thiết bị {what}")


def _load(session: Session, public_id: str) -> tuple[KeyDevice, str | None]:
    row = session.execute(
        select(KeyDevice, Organization.path)
        .outerjoin(Organization, KeyDevice.organization_id == Organization.id)
        .where(KeyDevice.public_id == public_id)
    ).first()
    if row is None:
        raise _not_found(public_id)
    return row[0], row[1]


def _require(principal: Principal, action: Action, path: str | None) -> None:
    """A device with no unit is in the province's central stock: province-wide principals."""
    require(principal, action, path)
    if path is None and not principal.province_wide:
        raise Forbidden("outside your unit", vi="ngoài phạm vi đơn vị của bạn")


def get(principal: Principal, session: Session, public_id: str) -> KeyDevice:
    device, path = _load(session, public_id)
    _require(principal, Action.DEVICE_READ, path)
    return device


def by_serial(principal: Principal, session: Session, serial: str) -> KeyDevice:
    public_id = session.execute(
        select(KeyDevice.public_id).where(KeyDevice.serial == serial.strip())
    ).scalar_one_or_none()
    if public_id is None:
        raise _not_found(serial)
    return get(principal, session, public_id)


def add(principal: Principal, session: Session, data: DeviceInput) -> KeyDevice:
    """A new device enters the stock (of a unit, or of the province)."""
    unit = organizations.get(principal, session, data.unit) if data.unit else None
    _require(principal, Action.DEVICE_WRITE, unit.path if unit else None)
    c = f.Collector()
    serial = c.check(lambda: f.text("serial", data.serial, max_length=100, required=True))
    model = c.check(lambda: f.text("model", data.model, max_length=200, required=True))
    kind = c.check(lambda: _kind(data.kind))
    c.raise_if_any()
    assert serial is not None and model is not None and kind is not None
    if session.execute(select(KeyDevice.id).where(KeyDevice.serial == serial)).first():
        raise Conflict(
            f"device {serial} is already registered", vi=f"thiết bị {serial} đã có trong danh sách"
        )
    now = clock.now()
    device = KeyDevice(
        public_id=f.new_public_id(),
        serial=serial,
        model=model,
        kind=kind,
        status=S.IN_STOCK,
        organization_id=unit.id if unit else None,
        created_at=now,
        updated_at=now,
    )
    session.add(device)
    try:
        session.flush()
    except IntegrityError as exc:
        raise Conflict(
            f"device {serial} is already registered", vi=f"thiết bị {serial} đã có trong danh sách"
        ) from exc
    record(
        session,
        Event(
            principal.actor,
            "device.added",
            device.public_id,
            {
                "serial": serial,
                "model": model,
                "kind": kind.value,
                "unit": unit.public_id if unit else None,
            },
        ),
    )
    return device


def _kind(value: Any) -> DeviceKind:
    try:
        return DeviceKind(value)
    except ValueError:
        allowed = ", ".join(k.value for k in DeviceKind)
        raise f.FieldProblem(
            "kind", f"must be one of {allowed}", f"phải là một trong {allowed}"
        ) from None


def _move(device: KeyDevice, to: DeviceStatus) -> None:
    if to not in TRANSITIONS[device.status]:
        raise Conflict(
            f"device {device.serial} cannot go from {device.status.value} to {to.value}",
            vi=f"thiết bị {device.serial} không thể chuyển từ "
            f"'{STATUS_LABELS[device.status]}' sang '{STATUS_LABELS[to]}'",
        )
    device.status = to
    device.updated_at = clock.now()


def _flush(session: Session, device: KeyDevice) -> None:
    try:
        session.flush()
    except StaleDataError as exc:
        raise organizations.stale(f"device {device.serial}") from exc


def _recorder_name(session: Session, principal: Principal) -> str:
    if principal.user_id is not None:
        user = session.get(User, principal.user_id)
        if user is not None:
            return user.full_name
    return principal.actor


def handover(
    principal: Principal,
    session: Session,
    device_public_id: str,
    to_person: str,
    *,
    from_name: str | None = None,
    note: str | None = None,
    at: datetime | None = None,
) -> DeviceHandover:
    """Give a device to a person (its holder from now on) and keep the minutes' record.

    The device joins the person's unit; the principal must act on both the device's current
    unit and the person's."""
    device, path = _load(session, device_public_id)
    _require(principal, Action.DEVICE_WRITE, path)
    row = session.execute(
        select(Person, Organization)
        .join(Organization, Person.organization_id == Organization.id)
        .where(Person.public_id == to_person)
    ).first()
    if row is None:
        raise NotFound(f"person {to_person}", vi=f"thuê bao {to_person}")
    person, unit = row[0], row[1]
    require(principal, Action.DEVICE_WRITE, unit.path)
    if device.holder_person_id == person.id and device.status is S.ISSUED:
        raise Conflict(
            f"{person.full_name} already holds device {device.serial}",
            vi=f"{person.full_name} đang giữ thiết bị {device.serial}",
        )
    if device.status is S.LOCKED:
        raise Conflict(
            f"device {device.serial} is locked: restore it before handing it over",
            vi=f"thiết bị {device.serial} đang bị khóa: khôi phục trước khi bàn giao",
        )
    c = f.Collector()
    giver = c.check(lambda: f.text("from_name", from_name, max_length=200))
    note_text = c.check(lambda: f.text("note", note, max_length=2000))
    c.raise_if_any()
    if giver is None:
        previous = session.get(Person, device.holder_person_id) if device.holder_person_id else None
        giver = previous.full_name if previous else _recorder_name(session, principal)
    _move(device, S.ISSUED)
    device.holder_person_id = person.id
    device.organization_id = unit.id
    moment = at or clock.now()
    record_row = DeviceHandover(
        public_id=f.new_public_id(),
        device_id=device.id,
        from_name=giver,
        to_person_id=person.id,
        to_name=person.full_name,
        at=moment,
        recorded_by=principal.user_id,
        note=note_text,
    )
    session.add(record_row)
    _flush(session, device)
    record(
        session,
        Event(
            principal.actor,
            "device.handed_over",
            device.public_id,
            {"serial": device.serial, "to": person.public_id, "handover": record_row.public_id},
        ),
    )
    return record_row


def take_back(
    principal: Principal,
    session: Session,
    device_public_id: str,
    *,
    received_by: str | None = None,
    note: str | None = None,
) -> DeviceHandover:
    """The holder returns the device (leaving the post, a found device): status returned,
    with minutes from the holder to ``received_by``."""
    device, path = _load(session, device_public_id)
    _require(principal, Action.DEVICE_WRITE, path)
    holder = session.get(Person, device.holder_person_id) if device.holder_person_id else None
    c = f.Collector()
    receiver = c.check(lambda: f.text("received_by", received_by, max_length=200))
    note_text = c.check(lambda: f.text("note", note, max_length=2000))
    c.raise_if_any()
    _move(device, S.RETURNED)
    device.holder_person_id = None
    record_row = DeviceHandover(
        public_id=f.new_public_id(),
        device_id=device.id,
        from_name=holder.full_name if holder else "—",
        to_person_id=None,
        to_name=receiver or _recorder_name(session, principal),
        at=clock.now(),
        recorded_by=principal.user_id,
        note=note_text,
    )
    session.add(record_row)
    _flush(session, device)
    record(
        session,
        Event(
            principal.actor,
            "device.returned",
            device.public_id,
            {"serial": device.serial, "handover": record_row.public_id},
        ),
    )
    return record_row


def set_status(
    principal: Principal,
    session: Session,
    device_public_id: str,
    status: DeviceStatus,
    *,
    note: str | None = None,
) -> KeyDevice:
    """Lock, restore, restock or destroy. Hand-over, return and loss have their own calls
    (they keep minutes or hand certificates to the lifecycle)."""
    status = DeviceStatus(status)
    device, path = _load(session, device_public_id)
    _require(principal, Action.DEVICE_WRITE, path)
    restoring = status is S.ISSUED and device.status is S.LOCKED  # form 06: same holder
    if status in (S.ISSUED, S.RETURNED, S.LOST) and not restoring:
        use = {S.ISSUED: "handover", S.RETURNED: "take_back", S.LOST: "mark_lost"}[status]
        raise Conflict(f"use {use} for {status.value}", vi=f"dùng thao tác {use}")
    before = device.status
    _move(device, status)
    if status in (S.IN_STOCK, S.DESTROYED):
        device.holder_person_id = None
    _flush(session, device)
    record(
        session,
        Event(
            principal.actor,
            "device.status_changed",
            device.public_id,
            {"serial": device.serial, "from": before.value, "to": status.value, "note": note},
        ),
    )
    return device


def _own_person_id(session: Session, principal: Principal) -> int | None:
    if principal.user_id is None:
        return None
    return session.execute(
        select(User.person_id).where(User.id == principal.user_id)
    ).scalar_one_or_none()


def held_by(principal: Principal, session: Session) -> list[KeyDevice]:
    """The devices the logged-in user holds (handed over to their subscriber record): what a
    signer may see of the inventory, so they can report their own token lost."""
    person_id = _own_person_id(session, principal)
    if person_id is None:
        return []
    return list(
        session.execute(
            select(KeyDevice)
            .where(
                KeyDevice.holder_person_id == person_id,
                KeyDevice.status.in_((S.ISSUED, S.LOCKED)),
            )
            .order_by(KeyDevice.serial)
        ).scalars()
    )


def mark_lost(
    principal: Principal, session: Session, device_public_id: str, *, note: str | None = None
) -> list[int]:
    """Record the device as lost; return the ids of its certificates that are not revoked
    yet — the ones the lifecycle must now revoke (RFC 5280 keyCompromise).

    A unit's officer reports any device of the unit; a holder without that right (a signer)
    only the device they hold."""
    device, path = _load(session, device_public_id)
    _require(principal, Action.DEVICE_REPORT_LOST, path)
    if not principal.can(Action.DEVICE_WRITE) and (
        device.holder_person_id is None
        or device.holder_person_id != _own_person_id(session, principal)
    ):
        raise Forbidden(
            "only the device's holder or the unit's officer reports it lost",
            vi="chỉ người giữ thiết bị hoặc cán bộ quản lý của đơn vị được báo mất",
        )
    _move(device, S.LOST)
    _flush(session, device)
    ids = list(
        session.execute(
            select(Certificate.id)
            .where(Certificate.device_id == device.id, Certificate.status != CertStatus.REVOKED)
            .order_by(Certificate.id)
        ).scalars()
    )
    record(
        session,
        Event(
            principal.actor,
            "device.lost",
            device.public_id,
            {"serial": device.serial, "certificates": len(ids), "note": note},
        ),
    )
    return ids


def record_pin_change(
    principal: Principal, session: Session, device_public_id: str, *, at: datetime | None = None
) -> KeyDevice:
    """The holder changed the device's PIN (the time only: kyso never sees a PIN)."""
    device, path = _load(session, device_public_id)
    _require(principal, Action.DEVICE_WRITE, path)
    if device.status is not S.ISSUED:
        raise Conflict(
            f"device {device.serial} is not with a holder",
            vi=f"thiết bị {device.serial} không ở trạng thái đã cấp phát",
        )
    moment = at or clock.now()
    if moment.tzinfo is None:
        raise f.invalid([f.FieldProblem("at", "needs a time zone", "cần múi giờ")])
    if moment > clock.now() + timedelta(minutes=5):
        raise f.invalid([f.FieldProblem("at", "is in the future", "ở tương lai")])
    device.last_pin_change_at = moment
    device.updated_at = clock.now()
    _flush(session, device)
    record(
        session,
        Event(
            principal.actor,
            "device.pin_changed",
            device.public_id,
            {"serial": device.serial, "at": moment.isoformat()},
        ),
    )
    return device


def search(
    principal: Principal,
    session: Session,
    *,
    status: DeviceStatus | None = None,
    under: str | None = None,
    holder: str | None = None,
    q: str | None = None,
    offset: int = 0,
    limit: int = 50,
) -> f.Page[KeyDevice]:
    """Devices in view; ``holder`` is a person's public id, ``q`` part of serial or model."""
    require(principal, Action.DEVICE_READ)
    query = select(KeyDevice).outerjoin(Organization, KeyDevice.organization_id == Organization.id)
    if not principal.province_wide:
        query = query.where(visible(principal, Organization.path))
    if under is not None:
        root = organizations.get(principal, session, under)
        query = query.where(Organization.path.startswith(root.path, autoescape=True))
    if status is not None:
        query = query.where(KeyDevice.status == status)
    if holder is not None:
        query = query.join(Person, KeyDevice.holder_person_id == Person.id).where(
            Person.public_id == holder
        )
    if q:
        needle = q.strip()
        query = query.where(
            KeyDevice.serial.contains(needle, autoescape=True)
            | KeyDevice.model.contains(needle, autoescape=True)
        )
    total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    rows = (
        session.execute(query.order_by(KeyDevice.serial).offset(offset).limit(limit))
        .scalars()
        .all()
    )
    return f.Page(list(rows), total, offset, limit)


def certificates(session: Session, device: KeyDevice) -> list[Certificate]:
    """The certificates whose keys live on the device (read access checked by the caller)."""
    return list(
        session.execute(
            select(Certificate).where(Certificate.device_id == device.id).order_by(Certificate.id)
        ).scalars()
    )


@dataclass(frozen=True)
class DeviceDetail:
    """One device's page: where it is, who holds it, the keys on it, its hand-overs that
    concern the viewer's units (oldest first) and how its PIN stands."""

    device: KeyDevice
    unit: Organization | None  # None: the province's central stock
    holder: Person | None
    holder_unit: Organization | None
    certificates: list[Certificate]
    history: list[DeviceHandover]
    pin_since: datetime | None  # the last PIN change, or the last hand-over when there was none
    pin_overdue: bool


def detail(
    principal: Principal,
    session: Session,
    public_id: str,
    *,
    pin_days: int,
    now: datetime | None = None,
) -> DeviceDetail:
    """A device in view with what its page shows. Its PIN is overdue when it is with a
    holder who has not changed it for ``pin_days`` days (counted from the last hand-over
    when it was never changed), as the inventory and the home page count it."""
    device = get(principal, session, public_id)
    history = handovers(principal, session, public_id)
    unit = session.get(Organization, device.organization_id) if device.organization_id else None
    holder = session.get(Person, device.holder_person_id) if device.holder_person_id else None
    holder_unit = (
        unit
        if holder is None or (unit is not None and unit.id == holder.organization_id)
        else session.get(Organization, holder.organization_id)
    )
    last_handover = max((h.at for h in history if h.to_person_id is not None), default=None)
    pin_since = device.last_pin_change_at or last_handover
    now = now or clock.now()
    return DeviceDetail(
        device=device,
        unit=unit,
        holder=holder,
        holder_unit=holder_unit,
        certificates=certificates(session, device),
        history=history,
        pin_since=pin_since,
        pin_overdue=(
            device.status is S.ISSUED
            and pin_since is not None
            and pin_since <= now - timedelta(days=pin_days)
        ),
    )


def home_unit(principal: Principal, session: Session) -> Organization | None:
    """Where a new device goes unless the form says otherwise: a unit officer's own unit;
    None (the province's central stock) for the province."""
    require(principal, Action.DEVICE_WRITE)
    if principal.province_wide or principal.organization_id is None:
        return None
    return session.get(Organization, principal.organization_id)


def handovers(
    principal: Principal, session: Session, device_public_id: str
) -> list[DeviceHandover]:
    """The device's hand-overs that concern the viewer's units. A device moves between units;
    its earlier holders' minutes (with their identity numbers) stay with their own unit."""
    device = get(principal, session, device_public_id)
    rows = session.execute(
        select(DeviceHandover, Organization.path)
        .outerjoin(Person, DeviceHandover.to_person_id == Person.id)
        .outerjoin(Organization, Person.organization_id == Organization.id)
        .where(DeviceHandover.device_id == device.id)
        .order_by(DeviceHandover.at, DeviceHandover.id)
    ).all()
    shown, holder_path = [], None
    for handover, path in rows:
        if handover.to_person_id is not None:
            holder_path = path
        # a return belongs with the hand-over it ends (the holder giving the device back)
        if principal.covers(holder_path if handover.to_person_id is None else path):
            shown.append(handover)
    return shown


def get_handover(
    principal: Principal, session: Session, handover_public_id: str
) -> tuple[DeviceHandover, KeyDevice]:
    """One hand-over, for the unit of the person who received the device (wherever the
    device is now); a return, for the unit of the holder who gave it back."""
    row = session.execute(
        select(DeviceHandover, KeyDevice, Organization.path)
        .join(KeyDevice, DeviceHandover.device_id == KeyDevice.id)
        .outerjoin(Person, DeviceHandover.to_person_id == Person.id)
        .outerjoin(Organization, Person.organization_id == Organization.id)
        .where(DeviceHandover.public_id == handover_public_id)
    ).first()
    if row is None:
        raise NotFound(f"hand-over {handover_public_id}", vi=f"biên bản {handover_public_id}")
    handover, device = row[0], row[1]
    recipient_path: str | None = row[2]
    if handover.to_person_id is None:  # a return: the unit of the holder who gave it back
        recipient_path = session.execute(
            select(Organization.path)
            .select_from(DeviceHandover)
            .join(Person, DeviceHandover.to_person_id == Person.id)
            .join(Organization, Person.organization_id == Organization.id)
            .where(DeviceHandover.device_id == device.id, DeviceHandover.id < handover.id)
            .order_by(DeviceHandover.id.desc())
            .limit(1)
        ).scalar_one_or_none()
        if recipient_path is None:
            return handover, get(principal, session, device.public_id)
    _require(principal, Action.DEVICE_READ, recipient_path)
    return handover, device


def pin_overdue(
    principal: Principal, session: Session, *, days: int, now: datetime | None = None
) -> list[OverduePin]:
    """Holders who have not changed their device's PIN for more than ``days`` days (counted
    from the last change, or from the hand-over when they never changed it), longest first."""
    require(principal, Action.DEVICE_READ)
    now = now or clock.now()
    last_handover = (
        select(DeviceHandover.device_id, func.max(DeviceHandover.at).label("at"))
        .where(DeviceHandover.to_person_id.is_not(None))
        .group_by(DeviceHandover.device_id)
        .subquery()
    )
    query = (
        select(KeyDevice, Person, Organization, last_handover.c.at)
        .outerjoin(Person, KeyDevice.holder_person_id == Person.id)
        .outerjoin(Organization, KeyDevice.organization_id == Organization.id)
        .outerjoin(last_handover, last_handover.c.device_id == KeyDevice.id)
        .where(KeyDevice.status == S.ISSUED)
    )
    if not principal.province_wide:
        query = query.where(visible(principal, Organization.path))
    limit = now - timedelta(days=days)
    overdue = []
    for device, person, unit, handed_at in session.execute(query):
        if handed_at is not None and handed_at.tzinfo is None:  # an aggregate skips the type
            handed_at = handed_at.replace(tzinfo=now.tzinfo)
        since = device.last_pin_change_at or handed_at or device.created_at
        if since < limit:
            overdue.append(OverduePin(device, person, unit, since, (now - since).days))
    overdue.sort(key=lambda item: item.since)
    return overdue
