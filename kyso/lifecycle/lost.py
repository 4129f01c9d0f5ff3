"""A lost or stolen token, in one action and one transaction.

The device is recorded lost (the registry's :func:`kyso.registry.devices.mark_lost`), every
certificate whose key it holds is revoked for keyCompromise (RFC 5280 §5.3.1: whoever has
the token may have the key; the key is also barred from being certified again), and a draft
re-issue request is opened for each subscriber, ready for the unit officer to name a new
token and submit. If any step fails, none happened: a device is never "lost" with its
certificates still good.

Who may do it: whoever may report the device lost (its holder — a signer — or the unit's
officer). Revoking and opening the drafts are the consequences of that report, so they need
no further right.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from kyso import clock
from kyso.audit.log import Event, record
from kyso.lifecycle import forms, notify
from kyso.lifecycle.forms import KeyChoice, KeySource
from kyso.lifecycle.workflow.states import DEFAULT_ALGORITHM, Envelope, envelope
from kyso.pki import status
from kyso.pki.authority import Authority
from kyso.registry import devices
from kyso.registry import fields as f
from kyso.registry.access import Principal
from kyso.store.models import (
    Certificate,
    CertificateRequest,
    KeyDevice,
    Organization,
    Person,
    Profile,
    RequestEvent,
    RequestState,
    RequestType,
    RevocationReason,
)


@dataclass(frozen=True)
class LostReport:
    device: str  # public id
    serial: str  # the device's serial
    revoked: list[str]  # certificate serials
    drafts: list[str]  # public ids of the re-issue requests opened


def report_lost(
    principal: Principal,
    session: Session,
    authority: Authority,
    device_public_id: str,
    *,
    note: str | None = None,
) -> LostReport:
    cert_ids = devices.mark_lost(principal, session, device_public_id, note=note)
    device = session.execute(
        select(KeyDevice).where(KeyDevice.public_id == device_public_id)
    ).scalar_one()
    why = f"thiết bị {device.serial} bị mất" + (f": {note}" if note else "")
    revoked: list[Certificate] = []
    for cert_id in cert_ids:
        cert = session.get(Certificate, cert_id)
        assert cert is not None
        revoked.append(
            status.revoke(
                session,
                authority,
                cert.serial,
                RevocationReason.KEY_COMPROMISE,
                principal.actor,
                note=why,
            )
        )
    drafts = []
    seen: set[tuple[int | None, int | None]] = set()
    for cert in revoked:
        subscriber = (cert.person_id, None if cert.person_id else cert.organization_id)
        if subscriber in seen or subscriber == (None, None):
            continue
        seen.add(subscriber)
        draft = _reissue_draft(principal, session, cert, device)
        if draft is not None:
            drafts.append(draft.public_id)
    holder = session.get(Person, device.holder_person_id) if device.holder_person_id else None
    notify.lost(
        session, holder.email if holder else None, device.serial, [c.serial for c in revoked]
    )
    return LostReport(device.public_id, device.serial, [c.serial for c in revoked], drafts)


def _reissue_draft(
    principal: Principal, session: Session, cert: Certificate, device: KeyDevice
) -> CertificateRequest | None:
    """A new-issuance draft for the certificate's subscriber, from the request that made it
    (its form has every field) or else from the registry (the officer completes it)."""
    original = session.execute(
        select(CertificateRequest)
        .where(CertificateRequest.certificate_id == cert.id)
        .order_by(CertificateRequest.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    request_type, fields = _form_for(session, cert, original)
    if request_type is None:
        return None
    fields["old_certificate"] = cert.serial
    unit_id = original.organization_id if original is not None else cert.organization_id
    if unit_id is None:
        return None
    subject_unit = cert.organization_id or unit_id
    draft = CertificateRequest(
        public_id=f.new_public_id(),
        type=request_type,
        state=RequestState.DRAFT,
        organization_id=unit_id,
        person_id=cert.person_id,
        subject_organization_id=subject_unit,
        form=Envelope(fields, KeyChoice(KeySource.TOKEN, DEFAULT_ALGORITHM)).dumps(),
        required_approvals=original.required_approvals if original is not None else 1,
        created_by=principal.user_id,
        created_at=clock.now(),
    )
    session.add(draft)
    session.flush()
    session.add(
        RequestEvent(
            request_id=draft.id,
            at=clock.now(),
            actor=principal.actor,
            from_state=None,
            to_state=RequestState.DRAFT,
            note=f"cấp lại thay chứng thư {cert.serial} (thiết bị {device.serial} bị mất)",
        )
    )
    record(
        session,
        Event(
            principal.actor,
            "request.draft",
            draft.public_id,
            {"type": request_type.value, "reissue_of": cert.serial, "device": device.public_id},
        ),
    )
    return draft


def _form_for(
    session: Session, cert: Certificate, original: CertificateRequest | None
) -> tuple[RequestType | None, dict[str, object]]:
    if original is not None:
        fields = dict(envelope(original).fields)
        if original.type in (RequestType.NEW_INDIVIDUAL, RequestType.NEW_ORGANIZATION):
            return original.type, fields
        if original.type is RequestType.RENEWAL_CHANGE:
            for key, kind in (
                ("individual", RequestType.NEW_INDIVIDUAL),
                ("organization", RequestType.NEW_ORGANIZATION),
            ):
                if isinstance(fields.get(key), dict):
                    return kind, dict(fields[key])  # type: ignore[arg-type]
    if cert.profile is Profile.INDIVIDUAL and cert.person_id is not None:
        person = session.get(Person, cert.person_id)
        assert person is not None
        unit = session.get(Organization, person.organization_id)
        data: dict[str, object] = {
            "full_name": person.full_name,
            "date_of_birth": person.date_of_birth,
            "id_number": person.id_number,
            "id_issue_date": person.id_issue_date,
            "id_issue_place": person.id_issue_place,
            "email": person.email,
            "organization": unit.name if unit else None,
            "province": unit.province if unit else None,
            "position": person.position,
            "mobile": person.mobile,
        }
        form = forms.IndividualForm(**{k: v for k, v in data.items() if v is not None})  # type: ignore[arg-type]
        return RequestType.NEW_INDIVIDUAL, forms.to_json(form)
    if cert.profile is Profile.ORGANIZATION and cert.organization_id is not None:
        org = session.get(Organization, cert.organization_id)
        assert org is not None
        form2 = forms.OrganizationForm(
            name=org.name,
            address=org.address,
            tax_code=org.tax_code,
            budget_code=org.budget_code,
            province=org.province,
            email=org.email,
        )
        return RequestType.NEW_ORGANIZATION, forms.to_json(form2)
    return None, {}
