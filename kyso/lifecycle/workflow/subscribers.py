"""An existing subscriber's record, changed by a request only as an approver saw and
confirmed it.

A form 01 for a person already on record (found by the CCCD, maybe in another unit), or a
form 04 that moves a person to another unit, would change their record: :class:`SubscriberChanges`
says how, :func:`subscriber_changes` shows it to the approver, the confirmation is kept in
the request's :class:`~kyso.lifecycle.workflow.states.Envelope`, and
:func:`subscriber_person` applies exactly those changes or refuses — never a silent move
between units, never overwritten contact data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from kyso.errors import Conflict
from kyso.lifecycle.workflow.preparation import Prepared, prepare
from kyso.lifecycle.workflow.states import envelope, load
from kyso.registry import people
from kyso.registry.access import Action, Principal, require
from kyso.store.models import CertificateRequest, Organization, Person, RequestType


@dataclass(frozen=True)
class FieldChange:
    field: str
    label_vi: str
    label_en: str
    old: str | None
    new: str | None


@dataclass(frozen=True)
class SubscriberChanges:
    """What carrying out a request would change in an existing subscriber's record: shown to
    the approver, applied only once confirmed (never a silent move between units, never
    overwritten contact data)."""

    person_public_id: str
    person_name: str
    unit_name: str
    changes: tuple[FieldChange, ...]

    def key(self) -> dict[str, list[str | None]]:
        return {c.field: [c.old, c.new] for c in self.changes}

    def summary(self, lang: str = "vi") -> str:
        return "; ".join(
            f"{c.label_vi if lang == 'vi' else c.label_en}: {c.old or '—'} → {c.new or '—'}"
            for c in self.changes
        )


_PERSON_LABELS = {
    "organization": ("Đơn vị", "Unit"),
    "full_name": ("Họ và tên", "Full name"),
    "date_of_birth": ("Ngày sinh", "Date of birth"),
    "id_number": ("Số CCCD", "Citizen ID number"),
    "id_issue_date": ("Ngày cấp CCCD", "ID issue date"),
    "id_issue_place": ("Nơi cấp CCCD", "ID issue place"),
    "position": ("Chức vụ", "Position"),
    "email": ("Thư điện tử", "E-mail"),
    "mobile": ("Số điện thoại di động", "Mobile"),
}


def _shown(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _existing_subscriber(
    session: Session, request: CertificateRequest, prepared: Prepared
) -> tuple[Person | None, people.PersonInput | None, Organization | None]:
    form = prepared.subscriber
    if form is None or prepared.subject_unit is None:
        return None, None, None
    unit = prepared.subject_unit
    person = session.get(Person, request.person_id) if request.person_id else None
    if person is None and form.id_number:
        person = session.execute(
            select(Person).where(Person.id_number == form.id_number)
        ).scalar_one_or_none()
    data = people.PersonInput(
        full_name=form.full_name or "",
        organization=unit.public_id,
        date_of_birth=form.date_of_birth,
        id_number=form.id_number,
        id_issue_date=form.id_issue_date,
        id_issue_place=form.id_issue_place,
        position=form.position,
        email=form.email,
        mobile=form.mobile,
    )
    return person, data, unit


def _changes_to(
    session: Session, person: Person, data: people.PersonInput, unit: Organization
) -> tuple[dict[str, Any], SubscriberChanges]:
    """The update for ``person`` (as people.update takes it) and the same said for people."""
    current = {name: getattr(person, name) for name in people.EDITABLE - {"organization"}}
    update: dict[str, Any] = {
        name: getattr(data, name)
        for name in sorted(current)
        if getattr(data, name) is not None and getattr(data, name) != current[name]
    }
    shown = [
        FieldChange(name, *_PERSON_LABELS[name], _shown(current[name]), _shown(update[name]))
        for name in update
    ]
    old_unit = session.get(Organization, person.organization_id)
    if person.organization_id != unit.id:
        update["organization"] = unit.public_id
        shown.insert(
            0,
            FieldChange(
                "organization",
                *_PERSON_LABELS["organization"],
                old_unit.name if old_unit is not None else None,
                unit.name,
            ),
        )
    return update, SubscriberChanges(
        person.public_id,
        person.full_name,
        old_unit.name if old_unit is not None else "",
        tuple(shown),
    )


def subscriber_changes(
    principal: Principal, session: Session, public_id: str
) -> SubscriberChanges | None:
    """For an approver: what approving ``public_id`` would change in an existing subscriber's
    record (another unit's person, found by the CCCD on the form), or None."""
    request, unit = load(session, public_id, lock=False)
    require(principal, Action.REQUEST_DECIDE, unit.path)
    return pending_changes(session, request)


def _must_confirm(request_type: RequestType, update: Mapping[str, Any]) -> bool:
    """A new certificate for a person already on record (form 01, found by the CCCD, maybe
    in another unit) changes nothing of theirs unconfirmed; a change of information (form
    04) is asked for by the person's own unit, so only a move to another unit is confirmed."""
    if request_type is RequestType.NEW_INDIVIDUAL:
        return bool(update)
    return "organization" in update


def pending_changes(session: Session, request: CertificateRequest) -> SubscriberChanges | None:
    if request.type not in (RequestType.NEW_INDIVIDUAL, RequestType.RENEWAL_CHANGE):
        return None
    person, data, unit = _existing_subscriber(session, request, prepare(session, request))
    if person is None or data is None or unit is None:
        return None
    update, shown = _changes_to(session, person, data, unit)
    return shown if _must_confirm(request.type, update) else None


class SubscriberChangesUnconfirmed(Conflict):
    code = "subscriber_changes_unconfirmed"
    message_vi = (
        "Yêu cầu này sẽ thay đổi hồ sơ một thuê bao đã có; người duyệt cần xem và xác nhận "
        "các thay đổi trước khi duyệt."
    )
    message_en = (
        "This request would change an existing subscriber's record; the approver must see "
        "and confirm the changes before approving."
    )


def subscriber_person(
    acting: Principal, session: Session, request: CertificateRequest, prepared: Prepared
) -> int | None:
    """The registry's person for an individual certificate: found by identity number (or
    the request's link) and brought up to date with the form — only with the changes an
    approver confirmed — or created from it. ``acting`` is the principal the approval acts
    as (see :func:`kyso.lifecycle.workflow.execution.acting`)."""
    person, data, unit = _existing_subscriber(session, request, prepared)
    if data is None or unit is None:
        return request.person_id
    if person is None:
        person = people.insert(acting, session, data, unit)
    else:
        update, shown = _changes_to(session, person, data, unit)
        if _must_confirm(request.type, update) and envelope(request).confirmed != shown.key():
            raise SubscriberChangesUnconfirmed(shown.summary("en"), vi=shown.summary("vi"))
        if update:
            person = people.update(acting, session, person.public_id, person.version, update)
    request.person_id = person.id
    return person.id
