"""Handing an issued certificate (and its token) over to the subscriber (form 07).

For a change of information the old certificate is revoked at hand-over, as superseded
(RFC 5280 §5.3.1): not before, so the subscriber is never left without a working certificate.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from kyso.errors import NotFound
from kyso.lifecycle import forms
from kyso.lifecycle.forms import ISSUING_TYPES, ChangeKind
from kyso.lifecycle.workflow.states import S, checked_note, envelope, illegal, load, move
from kyso.pki import status
from kyso.pki.authority import Authority
from kyso.registry import devices
from kyso.registry import fields as f
from kyso.registry.access import Action, Principal, require
from kyso.registry.fields import FieldProblem
from kyso.store.models import (
    Certificate,
    CertificateRequest,
    CertStatus,
    DeviceStatus,
    KeyDevice,
    Person,
    RequestType,
    RevocationReason,
)


def hand_over(
    principal: Principal,
    session: Session,
    authority: Authority,
    public_id: str,
    *,
    to_person: str | None = None,
    from_name: str | None = None,
    note: str | None = None,
) -> CertificateRequest:
    """The subscriber has the certificate (and its token, with minutes — form 07). For a
    change of information the old certificate is revoked now, as superseded (RFC 5280
    §5.3.1): not before, so the subscriber is never left without a working certificate."""
    note = checked_note(note)
    request, unit = load(session, public_id)
    require(principal, Action.CERT_HANDOVER, unit.path)
    if request.state is not S.ISSUED or request.type not in ISSUING_TYPES:
        raise illegal(request, S.HANDED_OVER)
    device = session.get(KeyDevice, request.device_id) if request.device_id else None
    new_cert = session.get(Certificate, request.certificate_id) if request.certificate_id else None
    if device is not None and new_cert is not None and new_cert.device_id == device.id:
        person: Person | None = None
        if to_person is not None:
            person = session.execute(
                select(Person).where(Person.public_id == to_person)
            ).scalar_one_or_none()
            if person is None:
                raise NotFound(f"person {to_person}", vi=f"thuê bao {to_person}")
        elif request.person_id is not None:
            person = session.get(Person, request.person_id)
        if person is None:
            raise f.invalid(
                [
                    FieldProblem(
                        "to_person",
                        "name the person who receives the token",
                        "hãy chọn người nhận thiết bị",
                    )
                ]
            )
        if not (device.holder_person_id == person.id and device.status is DeviceStatus.ISSUED):
            devices.handover(
                principal,
                session,
                device.public_id,
                person.public_id,
                from_name=from_name,
                note=note,
            )
    move(principal, session, request, S.HANDED_OVER, note)
    if request.type is RequestType.RENEWAL_CHANGE and request.target_certificate_id:
        stored = forms.parse(request.type, envelope(request).fields, complete=False)
        old = session.get(Certificate, request.target_certificate_id)
        if (
            stored.kind is ChangeKind.CHANGE
            and old is not None
            and old.status is not CertStatus.REVOKED
        ):
            status.revoke(
                session,
                authority,
                old.serial,
                RevocationReason.SUPERSEDED,
                principal.actor,
                note=f"thay bằng {new_cert.serial if new_cert else '?'} "
                f"(yêu cầu {request.public_id})",
            )
    return request
