"""Subscribers (thuê bao): the people certificates are issued to, with the columns of request
form 01 (Decree 68/2024/NĐ-CP): full name, date of birth, identity number with its date and
place of issue, official e-mail, unit, position, mobile.

A person belongs to one unit; whoever may act on that unit may act on its people.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from kyso import clock
from kyso.audit.log import Event, record
from kyso.errors import Conflict, NotFound
from kyso.registry import devices, organizations
from kyso.registry import fields as f
from kyso.registry.access import Action, Principal, require, visible
from kyso.store.models import (
    Certificate,
    CertificateRequest,
    DeviceHandover,
    KeyDevice,
    Organization,
    Person,
    User,
)


@dataclass(frozen=True)
class PersonInput:
    """A subscriber as a form or a spreadsheet row gives it (``organization``: public id)."""

    full_name: str
    organization: str
    date_of_birth: date | None = None
    id_number: str | None = None
    id_issue_date: date | None = None
    id_issue_place: str | None = None
    position: str | None = None
    email: str | None = None
    mobile: str | None = None


EDITABLE = frozenset(x.name for x in fields(PersonInput))


def clean(data: PersonInput, today: date | None = None) -> PersonInput:
    """Every field checked and normalized; all problems reported at once."""
    today = today or clock.local(clock.now()).date()
    c = f.Collector()
    born = c.check(lambda: f.past_date("date_of_birth", data.date_of_birth, today))
    issued = c.check(lambda: f.past_date("id_issue_date", data.id_issue_date, today))
    if born is not None and issued is not None and issued < born:
        c.problems.append(
            f.FieldProblem("id_issue_date", "is before the date of birth", "trước ngày sinh")
        )
    full_name = c.check(lambda: f.text("full_name", data.full_name, max_length=200, required=True))
    cleaned = PersonInput(
        full_name=full_name or "",
        organization=data.organization,
        date_of_birth=born,
        id_number=c.check(lambda: f.cccd("id_number", data.id_number, born)),
        id_issue_date=issued,
        id_issue_place=c.check(
            lambda: f.text("id_issue_place", data.id_issue_place, max_length=200)
        ),
        position=c.check(lambda: f.text("position", data.position, max_length=200)),
        email=c.check(lambda: f.email("email", data.email)),
        mobile=c.check(lambda: f.mobile("mobile", data.mobile)),
    )
    c.raise_if_any()
    return cleaned


def _not_found(public_id: str) -> NotFound:
    return NotFound(f"person {public_id}", vi=f"thuê bao {public_id}")


def _load(session: Session, public_id: str) -> tuple[Person, Organization]:
    row = session.execute(
        select(Person, Organization)
        .join(Organization, Person.organization_id == Organization.id)
        .where(Person.public_id == public_id)
    ).first()
    if row is None:
        raise _not_found(public_id)
    return row[0], row[1]


def get(principal: Principal, session: Session, public_id: str) -> Person:
    person, org = _load(session, public_id)
    require(principal, Action.PERSON_READ, org.path)
    return person


def get_with_unit(
    principal: Principal, session: Session, public_id: str, action: Action = Action.PERSON_READ
) -> tuple[Person, Organization]:
    """A person in view and their unit, if ``principal`` may also do ``action`` on them
    (``PERSON_WRITE``: edit them)."""
    person, org = _load(session, public_id)
    require(principal, Action.PERSON_READ, org.path)
    if action is not Action.PERSON_READ:
        require(principal, action, org.path)
    return person, org


@dataclass
class PersonDetail:
    """One subscriber's page: the person, their unit and its ancestry, and what the viewer
    may read of their certificates and key devices (None: not shown to this viewer)."""

    person: Person
    unit: Organization
    trail: list[tuple[Organization, bool]]
    certificates: list[Certificate] | None
    devices: list[KeyDevice] | None
    may_write: bool


def detail(
    principal: Principal, session: Session, public_id: str, *, limit: int = 20
) -> PersonDetail:
    """A person in view with their newest ``limit`` certificates (for a viewer who reads
    certificates) and the key devices they hold (for a viewer who reads devices)."""
    person, unit = get_with_unit(principal, session, public_id)
    certificates = None
    if principal.can(Action.CERT_READ):  # the person is in view, and so are their certificates
        certificates = list(
            session.execute(
                select(Certificate)
                .where(Certificate.person_id == person.id)
                .order_by(Certificate.id.desc())
                .limit(limit)
            ).scalars()
        )
    held = (
        devices.search(principal, session, holder=person.public_id, limit=limit).items
        if principal.can(Action.DEVICE_READ)
        else None
    )
    return PersonDetail(
        person=person,
        unit=unit,
        trail=organizations.trail(principal, session, unit),
        certificates=certificates,
        devices=held,
        may_write=principal.can(Action.PERSON_WRITE) and principal.covers(unit.path),
    )


def by_ids(session: Session, ids: Iterable[int | None]) -> dict[int, Person]:
    """Row id → person for the people a batch of records names (devices' holders, hand-overs'
    recipients), one query. No check of its own: the records were read through a checked
    service, and who holds a device is part of the device."""
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return {p.id: p for p in session.execute(select(Person).where(Person.id.in_(wanted))).scalars()}


def _id_conflict(id_number: str) -> Conflict:
    return Conflict(
        f"identity number {id_number} is already registered",
        vi=f"số CCCD {id_number} đã có trong danh sách thuê bao",
    )


def _unit(principal: Principal, session: Session, public_id: str) -> Organization:
    org = session.execute(
        select(Organization).where(Organization.public_id == public_id)
    ).scalar_one_or_none()
    if org is None:
        raise NotFound(f"organization {public_id}", vi=f"đơn vị {public_id}")
    require(principal, Action.PERSON_WRITE, org.path)
    return org


def create(principal: Principal, session: Session, data: PersonInput) -> Person:
    org = _unit(principal, session, data.organization)
    data = clean(data)
    if f.taken(session, Person.id_number, data.id_number):
        assert data.id_number is not None
        raise _id_conflict(data.id_number)
    return insert(principal, session, data, org)


def insert(principal: Principal, session: Session, data: PersonInput, org: Organization) -> Person:
    """Add an already-cleaned person to ``org``."""
    return insert_many(principal, session, [(data, org)])[0]


def insert_many(
    principal: Principal, session: Session, rows: Sequence[tuple[PersonInput, Organization]]
) -> list[Person]:
    """Add already-cleaned people (imports, the demo): access checked per unit, one flush
    and one audit append for all."""
    now = clock.now()
    made = []
    for data, org in rows:
        require(principal, Action.PERSON_WRITE, org.path)
        made.append(
            Person(
                public_id=f.new_public_id(),
                full_name=data.full_name,
                date_of_birth=data.date_of_birth,
                id_number=data.id_number,
                id_issue_date=data.id_issue_date,
                id_issue_place=data.id_issue_place,
                position=data.position,
                organization_id=org.id,
                email=data.email,
                mobile=data.mobile,
                created_at=now,
                updated_at=now,
            )
        )
    session.add_all(made)
    try:
        session.flush()
    except IntegrityError as exc:
        raise Conflict(
            "an identity number is already registered",
            vi="có số CCCD đã có trong danh sách thuê bao",
        ) from exc
    record(
        session,
        *(
            Event(
                principal.actor,
                "person.created",
                person.public_id,
                {"full_name": person.full_name, "organization": org.public_id},
            )
            for person, (_, org) in zip(made, rows, strict=True)
        ),
    )
    return made


def update(
    principal: Principal,
    session: Session,
    public_id: str,
    version: int,
    changes: Mapping[str, Any],
) -> Person:
    """Change some fields of a person read at ``version``; moving to another unit needs
    write access to both units."""
    person, org = _load(session, public_id)
    require(principal, Action.PERSON_WRITE, org.path)
    unknown = set(changes) - EDITABLE
    if unknown:
        names = ", ".join(sorted(unknown))
        raise f.invalid([f.FieldProblem(names, "cannot be changed", "không sửa được")])
    if person.version != version:
        raise organizations.stale(f"person {person.full_name}")
    target = org
    if "organization" in changes and not changes["organization"]:
        raise f.invalid([f.FieldProblem("organization", "is required", "bắt buộc phải có")])
    if "organization" in changes and changes["organization"] != org.public_id:
        target = _unit(principal, session, str(changes["organization"]))
    current = PersonInput(
        organization=org.public_id,
        **{name: getattr(person, name) for name in EDITABLE - {"organization"}},
    )
    merged = clean(replace(current, **dict(changes)))
    if f.taken(session, Person.id_number, merged.id_number, other_than=(Person.id, person.id)):
        assert merged.id_number is not None
        raise _id_conflict(merged.id_number)
    changed: dict[str, Any] = {
        name: getattr(merged, name)
        for name in sorted(EDITABLE - {"organization"})
        if getattr(merged, name) != getattr(person, name)
    }
    if target.id != person.organization_id:
        person.organization_id = target.id
        changed["organization"] = target.public_id
    if not changed:
        return person
    for name, value in changed.items():
        if name != "organization":
            setattr(person, name, value)
    person.updated_at = clock.now()
    try:
        session.flush()
    except StaleDataError as exc:
        raise organizations.stale(f"person {person.full_name}") from exc
    except IntegrityError as exc:
        raise _id_conflict(merged.id_number or "") from exc
    # Which fields changed, not their values: identity numbers stay out of the log.
    record(
        session,
        Event(principal.actor, "person.updated", person.public_id, {"changed": sorted(changed)}),
    )
    return person


def delete(principal: Principal, session: Session, public_id: str, version: int) -> None:
    """Remove a person nothing refers to yet (certificates, requests, devices, users keep
    their subscriber for the record)."""
    person, org = _load(session, public_id)
    require(principal, Action.PERSON_WRITE, org.path)
    if person.version != version:
        raise organizations.stale(f"person {person.full_name}")
    for model, column in (
        (Certificate, Certificate.person_id),
        (CertificateRequest, CertificateRequest.person_id),
        (KeyDevice, KeyDevice.holder_person_id),
        (DeviceHandover, DeviceHandover.to_person_id),
        (User, User.person_id),
    ):
        if session.execute(select(model.id).where(column == person.id).limit(1)).first():
            raise Conflict(
                f"{person.full_name} has {model.__tablename__} on record and cannot be deleted",
                vi=f"{person.full_name} đã có hồ sơ liên quan ({model.__tablename__}), "
                "không xóa được",
            )
    session.delete(person)
    try:
        session.flush()
    except StaleDataError as exc:
        raise organizations.stale(f"person {person.full_name}") from exc
    record(
        session,
        Event(
            principal.actor,
            "person.deleted",
            public_id,
            {"full_name": person.full_name, "organization": org.public_id},
        ),
    )


def search(
    principal: Principal,
    session: Session,
    *,
    q: str | None = None,
    under: str | None = None,
    position: str | None = None,
    offset: int = 0,
    limit: int = 50,
) -> f.Page[Person]:
    """People in view, by unit then name; ``q`` matches part of the name, the identity
    number or the e-mail (case and diacritics ignored); ``under`` keeps one unit's subtree."""
    require(principal, Action.PERSON_READ)
    query = (
        select(Person.id, Person.full_name, Person.id_number, Person.email, Person.position)
        .join(Organization, Person.organization_id == Organization.id)
        .where(visible(principal, Organization.path))
    )
    if under is not None:
        root = organizations.get(principal, session, under)
        require(principal, Action.PERSON_READ, root.path)
        query = query.where(Organization.path.startswith(root.path, autoescape=True))
    rows = session.execute(query.order_by(Organization.path, Person.full_name, Person.id)).all()
    if q:
        needle = f.fold(q)
        rows = [
            r
            for r in rows
            if needle in f.fold(r.full_name)
            or (r.id_number and needle in r.id_number)
            or (r.email and needle in r.email.casefold())
        ]
    if position:
        wanted = f.fold(position)
        rows = [r for r in rows if r.position and wanted in f.fold(r.position)]
    ids = [r.id for r in rows[offset : offset + limit]]
    by_id = {p.id: p for p in session.execute(select(Person).where(Person.id.in_(ids))).scalars()}
    return f.Page([by_id[i] for i in ids], len(rows), offset, limit)
