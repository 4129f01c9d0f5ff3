"""Creating a request and editing it while it is a draft.

A draft may lack fields but what it has must be right. :func:`create` and :func:`edit` tie
the request to the registry (``_link``): the subscriber's unit, the certificate a renewal or
revocation names, the key device — each only within the requester's view. A CCCD from
another district links no one (the approver sees and decides, see
:mod:`kyso.lifecycle.workflow.subscribers`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from cryptography import x509
from sqlalchemy import select
from sqlalchemy.orm import Session

from kyso import clock
from kyso.audit.log import Event, record
from kyso.errors import Conflict, Forbidden, NotFound
from kyso.keys.base import KeyAlgorithm
from kyso.lifecycle import forms
from kyso.lifecycle.forms import ISSUING_TYPES, KeyChoice, KeySource
from kyso.lifecycle.workflow.states import (
    DEFAULT_ALGORITHM,
    STATE_LABELS,
    Envelope,
    RequestTransitionError,
    S,
    approvals_required,
    envelope,
    find_unit,
    flush,
    load,
    write_event,
)
from kyso.pki import status
from kyso.pki.csr import load_csr
from kyso.registry import devices
from kyso.registry import fields as f
from kyso.registry.access import Action, Principal, require
from kyso.registry.fields import FieldProblem
from kyso.remote import central
from kyso.settings import Settings
from kyso.store.models import (
    Certificate,
    CertificateRequest,
    KeyDevice,
    Organization,
    Person,
    RequestType,
)


# -- inputs -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class NewRequest:
    type: RequestType
    form: Mapping[str, Any]
    unit: str | None = None  # requesting unit (public id); the principal's own by default
    subject_unit: str | None = None  # the subscriber's unit (01, 03, 04) or the organization (02)
    key_source: KeySource | None = None
    key_algorithm: KeyAlgorithm | None = None
    csr: str | None = None  # PEM
    device: str | None = None  # the key device (public id) that will hold a token key


@dataclass(frozen=True)
class DraftChanges:
    """Edits to a draft; None leaves a part as it is. ``form`` keys replace the stored ones
    (a key set to None removes it)."""

    form: Mapping[str, Any] | None = None
    subject_unit: str | None = None
    key_source: KeySource | None = None
    key_algorithm: KeyAlgorithm | None = None
    csr: str | None = None
    device: str | None = None


# -- what a draft refers to, in the requester's view ---------------------------------------
def _certificate(session: Session, serial: str) -> Certificate:
    cert = session.execute(
        select(Certificate).where(Certificate.serial == serial)
    ).scalar_one_or_none()
    if cert is None:
        raise f.invalid(
            [
                FieldProblem(
                    "certificate_serial",
                    f"no certificate has serial {serial}",
                    f"không có chứng thư số hiệu {serial}",
                )
            ]
        )
    return cert


def _cert_path(session: Session, cert: Certificate) -> str | None:
    if cert.organization_id is None:
        return None
    org = session.get(Organization, cert.organization_id)
    return org.path if org is not None else None


def _require_cert(
    principal: Principal, session: Session, action: Action, cert: Certificate
) -> None:
    if status.is_ca_own(session, cert):  # no request form reaches the CA's own certificates
        raise status.CaCertificateProtected(cert.serial)
    path = _cert_path(session, cert)
    require(principal, action, path)
    if path is None and not principal.province_wide:
        raise Forbidden("outside your unit", vi="ngoài phạm vi đơn vị của bạn")


def _device(principal: Principal, session: Session, ref: str) -> KeyDevice:
    """A device by public id or serial, in the principal's view."""
    device = (
        session.execute(
            select(KeyDevice).where(
                (KeyDevice.public_id == ref) | (KeyDevice.serial == ref.strip())
            )
        )
        .scalars()
        .first()
    )
    if device is None:
        raise NotFound(f"key device {ref}", vi=f"thiết bị {ref}")
    return devices.get(principal, session, device.public_id)


# -- create and edit ----------------------------------------------------------------------------
def requesting_unit(principal: Principal, session: Session, ref: str | None) -> Organization:
    if ref is not None:
        return find_unit(session, ref)
    if principal.organization_id is None:
        raise f.invalid(
            [
                FieldProblem(
                    "unit",
                    "name the requesting unit (you act for the whole province)",
                    "hãy chọn đơn vị đề nghị",
                )
            ]
        )
    org = session.get(Organization, principal.organization_id)
    if org is None:
        raise NotFound("your unit", vi="đơn vị của bạn")
    return org


def _key_choice(
    request_type: RequestType,
    source: KeySource | None,
    algorithm: KeyAlgorithm | None,
    csr: str | None,
    device: KeyDevice | None,
    default: KeyChoice | None = None,
) -> KeyChoice | None:
    """A CSR if one is attached; a token if a device is named; else a server-held key."""
    if request_type not in ISSUING_TYPES:
        return None
    if source is None:
        if csr is not None:
            source = KeySource.CSR
        elif default is not None:
            source = default.source
        else:
            source = KeySource.TOKEN if device is not None else KeySource.SERVER
    if csr is not None and source is not KeySource.CSR:
        raise f.invalid(
            [
                FieldProblem(
                    "csr",
                    f"a CSR is attached but the key source is {source.value}",
                    f"đã đính kèm CSR nhưng nguồn khóa là {source.value}",
                )
            ]
        )
    if source is KeySource.CSR:
        pem = csr if csr is not None else (default.csr if default else None)
        if pem is None:  # attached before submission
            return KeyChoice(source, algorithm or DEFAULT_ALGORITHM)
        public_key = load_csr(pem.encode()).public_key()  # MalformedCSR / WeakKeyError now
        return KeyChoice(source, KeyAlgorithm.of_public_key(public_key), pem)
    algorithm = algorithm or (default.algorithm if default else None) or DEFAULT_ALGORITHM
    return KeyChoice(source, algorithm)


def create(
    principal: Principal, session: Session, settings: Settings, data: NewRequest
) -> CertificateRequest:
    """A new draft. Fields may be missing; what is given must be right."""
    require(principal, Action.REQUEST_CREATE)
    unit = requesting_unit(principal, session, data.unit)
    require(principal, Action.REQUEST_CREATE, unit.path)
    form = forms.parse(data.type, data.form, complete=False)
    device = _device(principal, session, data.device) if data.device else None
    request = CertificateRequest(
        public_id=f.new_public_id(),
        type=data.type,
        state=S.DRAFT,
        organization_id=unit.id,
        required_approvals=approvals_required(settings, data.type),
        created_by=principal.user_id,
        created_at=clock.now(),
        form="{}",
    )
    form = _link(principal, session, request, form, unit, data.subject_unit, device)
    key = _key_choice(
        data.type,
        data.key_source,
        data.key_algorithm,
        data.csr,
        device,
        _default_key(session, request),
    )
    request.form = Envelope(forms.to_json(form), key).dumps()
    session.add(request)
    session.flush()
    write_event(principal, session, request, None, S.DRAFT)
    return request


def _default_key(session: Session, request: CertificateRequest) -> KeyChoice | None:
    """A renewal or change keeps the old certificate's kind of key (token stays token; a
    central key stays central, a new one made in the HSM with the old one's algorithm)."""
    if request.type is not RequestType.RENEWAL_CHANGE or request.target_certificate_id is None:
        return None
    old = session.get(Certificate, request.target_certificate_id)
    if old is None:
        return None
    if central.is_central(old.key_location):
        public_key = x509.load_der_x509_certificate(old.der).public_key()
        return KeyChoice(KeySource.CENTRAL, KeyAlgorithm.of_public_key(public_key))
    if old.key_location.startswith("token:"):
        return KeyChoice(KeySource.TOKEN, DEFAULT_ALGORITHM)
    if old.key_location == "csr":
        return KeyChoice(KeySource.CSR, DEFAULT_ALGORITHM)
    return KeyChoice(KeySource.SERVER, DEFAULT_ALGORITHM)


def _subject_unit(
    session: Session,
    request: CertificateRequest,
    named: Organization | None,
    requesting: Organization,
) -> Organization:
    """The unit a new certificate is for, kept on the request: the one the form names, else
    the one already linked, else the requester's own."""
    found = named or (
        session.get(Organization, request.subject_organization_id)
        if request.subject_organization_id
        else requesting
    )
    assert found is not None
    request.subject_organization_id = found.id
    return found


def _link(
    principal: Principal,
    session: Session,
    request: CertificateRequest,
    form: Any,
    unit: Organization,
    subject_unit_ref: str | None,
    device: KeyDevice | None,
) -> Any:
    """Tie the request to the registry (subscriber, unit, certificate, device) and fill the
    form's unit fields from it. Returns the form, completed."""
    if device is not None:
        request.device_id = device.id
    subject_unit = find_unit(session, subject_unit_ref) if subject_unit_ref else None
    if subject_unit is not None:
        require(principal, Action.REQUEST_CREATE, subject_unit.path)
    t = request.type
    if t in (RequestType.NEW_INDIVIDUAL, RequestType.DEVICE_SERVICE):
        target_unit = _subject_unit(session, request, subject_unit, unit)
        if form.organization is None:
            form = replace(form, organization=target_unit.name)
        if form.province is None and target_unit.province:
            form = replace(form, province=target_unit.province)
        if t is RequestType.NEW_INDIVIDUAL and form.id_number:
            # Only a person the requester may see: a CCCD from another district must not
            # show its holder's record (the approver sees and decides, see subscriber_changes).
            known = session.execute(
                select(Person.id, Organization.path)
                .join(Organization, Organization.id == Person.organization_id)
                .where(Person.id_number == form.id_number)
            ).first()
            request.person_id = known.id if known and principal.covers(known.path) else None
    elif t is RequestType.NEW_ORGANIZATION:
        target_unit = _subject_unit(session, request, subject_unit, unit)
        defaults = {
            "name": target_unit.name,
            "address": target_unit.address,
            "tax_code": target_unit.tax_code,
            "budget_code": target_unit.budget_code,
            "province": target_unit.province,
            "email": target_unit.email,
        }
        form = replace(
            form,
            **{k: v for k, v in defaults.items() if getattr(form, k) is None and v is not None},
        )
    elif t in (RequestType.RENEWAL_CHANGE, RequestType.REVOCATION):
        if form.certificate_serial:
            cert = _certificate(session, form.certificate_serial)
            _require_cert(principal, session, Action.REQUEST_CREATE, cert)
            request.target_certificate_id = cert.id
            request.person_id = cert.person_id
            request.subject_organization_id = (
                subject_unit.id
                if subject_unit is not None and t is RequestType.RENEWAL_CHANGE
                else cert.organization_id
            )
            if (
                t is RequestType.RENEWAL_CHANGE
                and device is None
                and cert.device_id
                and cert.key_location.startswith("token:")
            ):
                request.device_id = cert.device_id
    elif t is RequestType.DEVICE_UNLOCK and form.device_serial:
        target = _device(principal, session, form.device_serial)
        request.device_id = target.id
        request.person_id = target.holder_person_id
    return form


def _can_edit(principal: Principal, request: CertificateRequest, unit: Organization) -> None:
    require(principal, Action.REQUEST_CREATE, unit.path)
    if request.state is not S.DRAFT:
        raise RequestTransitionError(
            f"request {request.public_id} is {request.state.value}; only a draft can be edited",
            vi=f"yêu cầu {request.public_id} đang ở trạng thái '{STATE_LABELS[request.state]}'; "
            "chỉ sửa được bản nháp",
        )


def edit(
    principal: Principal,
    session: Session,
    public_id: str,
    changes: DraftChanges,
    *,
    version: int | None = None,
) -> CertificateRequest:
    request, unit = load(session, public_id)
    _can_edit(principal, request, unit)
    if version is not None and version != request.version:
        raise Conflict(
            f"request {public_id} was changed since you read it (version {version}, now "
            f"{request.version}); reload it",
            vi=f"yêu cầu {public_id} đã thay đổi kể từ khi bạn mở (phiên bản {version}, nay "
            f"{request.version}); hãy tải lại",
        )
    stored = envelope(request)
    merged = dict(stored.fields)
    for name, value in (changes.form or {}).items():
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = value
    form = forms.parse(request.type, merged, complete=False)
    device = (
        _device(principal, session, changes.device)
        if changes.device
        else (session.get(KeyDevice, request.device_id) if request.device_id else None)
    )
    form = _link(principal, session, request, form, unit, changes.subject_unit, device)
    key = stored.key
    if request.type in ISSUING_TYPES and (
        changes.key_source or changes.key_algorithm or changes.csr or changes.device
    ):
        key = _key_choice(
            request.type, changes.key_source, changes.key_algorithm, changes.csr, device, stored.key
        )
    request.form = Envelope(forms.to_json(form), key, stored.row).dumps()
    flush(session, request)
    record(
        session,
        Event(
            principal.actor,
            "request.edited",
            request.public_id,
            {"fields": sorted((changes.form or {}).keys())},
        ),
    )
    return request
