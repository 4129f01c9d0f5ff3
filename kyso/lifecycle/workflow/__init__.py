"""A request's life: draft → submitted → approved (or rejected, with a reason) → issued →
handed over; a draft may be cancelled.

Every move is checked against :data:`TRANSITIONS`, timestamped, written as a
``request_events`` row and an audit entry, by the principal who made it. A request type may
need several approvers (``KYSO_APPROVALS_REQUIRED``), each a different user; the last
approval carries the decision out in the same transaction — issuing the certificate
(server-held key or CSR), revoking (form 05) or restoring the device (form 06). A key made
on the subscriber's USB token needs the token and its PIN, so such a request waits,
approved, for :func:`issue`.

Two approvers pressing "approve" at the same moment must produce one certificate: the
request row is taken with ``SELECT … FOR UPDATE`` (PostgreSQL; SQLite's writers are already
serialized by ``BEGIN IMMEDIATE``) and its ``version`` column is checked on every UPDATE,
so the second approver waits, then finds the request already issued and is refused.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from cryptography import x509
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from kyso import clock
from kyso.audit.log import Event, record
from kyso.errors import Conflict, Forbidden, InvalidInput, InvalidTransition, NotFound
from kyso.keys.base import KeyAlgorithm
from kyso.lifecycle import forms, notify, subjects
from kyso.lifecycle.forms import (
    ISSUING_TYPES,
    TYPE_LABELS,
    ChangeKind,
    IndividualForm,
    KeyChoice,
    KeySource,
    OrganizationForm,
)
from kyso.pki import issuance, status
from kyso.pki.authority import Authority
from kyso.pki.csr import load_csr
from kyso.pki.names import parse_subject, subject_text
from kyso.registry import devices, people
from kyso.registry import fields as f
from kyso.registry.access import Action, Principal, require, visible
from kyso.registry.fields import FieldProblem
from kyso.settings import Settings
from kyso.store.models import (
    Approval,
    BatchJob,
    Certificate,
    CertificateRequest,
    CertStatus,
    DeviceStatus,
    KeyDevice,
    Organization,
    Person,
    Profile,
    RequestEvent,
    RequestState,
    RequestType,
    RevocationReason,
    Role,
    User,
)

S = RequestState

TRANSITIONS: dict[RequestState, frozenset[RequestState]] = {
    S.DRAFT: frozenset({S.SUBMITTED, S.CANCELLED}),
    S.SUBMITTED: frozenset({S.APPROVED, S.REJECTED}),
    # approved but not yet carried out (a token key waits for its token): can still be refused
    S.APPROVED: frozenset({S.ISSUED, S.REJECTED}),
    S.ISSUED: frozenset({S.HANDED_OVER}),
    S.REJECTED: frozenset(),
    S.HANDED_OVER: frozenset(),
    S.CANCELLED: frozenset(),
}

STATE_LABELS: dict[RequestState, str] = {
    S.DRAFT: "nháp",
    S.SUBMITTED: "đã gửi, chờ duyệt",
    S.APPROVED: "đã duyệt",
    S.REJECTED: "bị từ chối",
    S.ISSUED: "đã thực hiện",
    S.HANDED_OVER: "đã bàn giao",
    S.CANCELLED: "đã hủy",
}

_VERBS: dict[RequestState, tuple[str, str]] = {
    S.SUBMITTED: ("submitted", "gửi"),
    S.APPROVED: ("approved", "duyệt"),
    S.REJECTED: ("rejected", "từ chối"),
    S.ISSUED: ("issued", "thực hiện (cấp, thu hồi, khôi phục)"),
    S.HANDED_OVER: ("handed over", "bàn giao"),
    S.CANCELLED: ("cancelled", "hủy"),
}

# Keys made by kyso for one request: RSA-2048, what the government CA's tokens carry.
DEFAULT_ALGORITHM = KeyAlgorithm.RSA_2048


class RequestTransitionError(InvalidTransition):
    message_vi = "Yêu cầu không thể chuyển sang bước đó."
    message_en = "The request cannot take that step."


def _illegal(request: CertificateRequest, to: RequestState) -> RequestTransitionError:
    verb_en, verb_vi = _VERBS.get(to, (to.value, to.value))
    sources = [s for s, targets in TRANSITIONS.items() if to in targets]
    allowed_en = " or ".join(s.value for s in sources) or "no state"
    allowed_vi = " hoặc ".join(f"'{STATE_LABELS[s]}'" for s in sources) or "không trạng thái nào"
    if to is S.HANDED_OVER and request.type not in ISSUING_TYPES:
        return RequestTransitionError(
            f"request {request.public_id} ({request.type.value}) makes no certificate to hand over",
            vi=f"yêu cầu {request.public_id} không cấp chứng thư nên không có gì để bàn giao",
        )
    return RequestTransitionError(
        f"request {request.public_id} is {request.state.value}; it cannot be {verb_en} "
        f"(only a request that is {allowed_en} can)",
        vi=f"yêu cầu {request.public_id} đang ở trạng thái '{STATE_LABELS[request.state]}', "
        f"không thể {verb_vi} (chỉ yêu cầu ở trạng thái {allowed_vi} mới được)",
    )


# -- what is stored in ``certificate_requests.form`` ------------------------------------------
@dataclass(frozen=True)
class Envelope:
    """The form's fields, the key choice (issuing types) and, for an import, its row."""

    fields: dict[str, Any]
    key: KeyChoice | None = None
    row: int | None = None
    # The changes to an existing subscriber's record an approver saw and confirmed
    # ({field: [old, new]}); carrying out applies exactly these or refuses.
    confirmed: dict[str, list[str | None]] | None = None

    def dumps(self) -> str:
        data: dict[str, Any] = {"fields": self.fields}
        if self.key is not None:
            data["key"] = self.key.to_json()
        if self.row is not None:
            data["row"] = self.row
        if self.confirmed is not None:
            data["confirmed"] = self.confirmed
        return json.dumps(data, ensure_ascii=False, sort_keys=True)

    @classmethod
    def loads(cls, text: str) -> Envelope:
        data = json.loads(text)
        key = KeyChoice.from_json(data["key"]) if data.get("key") else None
        return cls(
            dict(data.get("fields") or {}), key, data.get("row"), data.get("confirmed") or None
        )


def envelope(request: CertificateRequest) -> Envelope:
    return Envelope.loads(request.form)


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


# -- loading ----------------------------------------------------------------------------------
def _not_found(public_id: str) -> NotFound:
    return NotFound(f"request {public_id}", vi=f"yêu cầu {public_id}")


def _lock(
    session: Session, public_id: str, *, lock: bool = True
) -> tuple[CertificateRequest, Organization]:
    """The request, locked until the transaction ends, with its (requesting) unit."""
    query = select(CertificateRequest).where(CertificateRequest.public_id == public_id)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    request = session.execute(query).scalar_one_or_none()
    if request is None:
        raise _not_found(public_id)
    unit = session.get(Organization, request.organization_id)
    assert unit is not None
    return request, unit


def _unit(session: Session, public_id: str) -> Organization:
    org = session.execute(
        select(Organization).where(Organization.public_id == public_id)
    ).scalar_one_or_none()
    if org is None:
        raise NotFound(f"organization {public_id}", vi=f"đơn vị {public_id}")
    return org


def _parent(session: Session, org: Organization) -> Organization | None:
    return session.get(Organization, org.parent_id) if org.parent_id is not None else None


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


def _acting(principal: Principal) -> Principal:
    """The decision's consequences (a subscriber's record, a restored device) are carried out
    under the approval, whose approver may hold only the ``requests:decide`` scope."""
    return Principal(actor=principal.actor, role=Role.PROVINCE_ADMIN, user_id=principal.user_id)


# -- moves --------------------------------------------------------------------------------------
def _flush(session: Session, request: CertificateRequest) -> None:
    try:
        session.flush()
    except StaleDataError as exc:
        raise Conflict(
            f"request {request.public_id} was changed by someone else; reload it and try again",
            vi=f"yêu cầu {request.public_id} vừa được người khác thay đổi; hãy tải lại",
        ) from exc


def _event(
    principal: Principal,
    session: Session,
    request: CertificateRequest,
    before: RequestState | None,
    after: RequestState,
    note: str | None = None,
    action: str | None = None,
) -> None:
    session.add(
        RequestEvent(
            request_id=request.id,
            at=clock.now(),
            actor=principal.actor,
            from_state=before,
            to_state=after,
            note=note,
        )
    )
    record(
        session,
        Event(
            principal.actor,
            action or f"request.{after.value}",
            request.public_id,
            {"type": request.type.value, "from": before.value if before else None, "note": note},
        ),
    )


def _move(
    principal: Principal,
    session: Session,
    request: CertificateRequest,
    to: RequestState,
    note: str | None = None,
) -> None:
    if to not in TRANSITIONS[request.state] or (
        to is S.HANDED_OVER and request.type not in ISSUING_TYPES
    ):
        raise _illegal(request, to)
    before = request.state
    now = clock.now()
    request.state = to
    if to is S.SUBMITTED:
        request.submitted_at = now
    elif to in (S.APPROVED, S.REJECTED):
        request.decided_at = now
    elif to is S.ISSUED:
        request.issued_at = now
    elif to is S.HANDED_OVER:
        request.handed_over_at = now
    _flush(session, request)
    _event(principal, session, request, before, to, note)


def aware(moment: datetime) -> datetime:
    """A time without a zone is Vietnam time (what a clerk types)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=clock.VIETNAM)


def _required(settings: Settings, request_type: RequestType) -> int:
    return settings.approvals_required.get(request_type.value, 1)


def _note(value: str | None, field: str = "note", *, required: bool = False) -> str | None:
    c = f.Collector()
    text = c.check(lambda: f.text(field, value, max_length=2000, required=required))
    c.raise_if_any()
    return text


# -- create and edit ----------------------------------------------------------------------------
def requesting_unit(principal: Principal, session: Session, ref: str | None) -> Organization:
    if ref is not None:
        return _unit(session, ref)
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
        required_approvals=_required(settings, data.type),
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
    _event(principal, session, request, None, S.DRAFT)
    return request


def _default_key(session: Session, request: CertificateRequest) -> KeyChoice | None:
    """A renewal or change keeps the old certificate's kind of key (token stays token)."""
    if request.type is not RequestType.RENEWAL_CHANGE or request.target_certificate_id is None:
        return None
    old = session.get(Certificate, request.target_certificate_id)
    if old is None:
        return None
    if old.key_location.startswith("token:"):
        return KeyChoice(KeySource.TOKEN, DEFAULT_ALGORITHM)
    if old.key_location == "csr":
        return KeyChoice(KeySource.CSR, DEFAULT_ALGORITHM)
    return KeyChoice(KeySource.SERVER, DEFAULT_ALGORITHM)


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
    subject_unit = _unit(session, subject_unit_ref) if subject_unit_ref else None
    if subject_unit is not None:
        require(principal, Action.REQUEST_CREATE, subject_unit.path)
    t = request.type
    if t in (RequestType.NEW_INDIVIDUAL, RequestType.DEVICE_SERVICE):
        target_unit = subject_unit or (
            session.get(Organization, request.subject_organization_id)
            if request.subject_organization_id
            else unit
        )
        assert target_unit is not None
        request.subject_organization_id = target_unit.id
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
        target_unit = subject_unit or (
            session.get(Organization, request.subject_organization_id)
            if request.subject_organization_id
            else unit
        )
        assert target_unit is not None
        request.subject_organization_id = target_unit.id
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
    request, unit = _lock(session, public_id)
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
    _flush(session, request)
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


# -- what issuance needs, checked on submission and again when carried out ---------------------
@dataclass(frozen=True)
class Prepared:
    form: Any
    profile: Profile | None = None
    name: x509.Name | None = None
    emails: tuple[str, ...] = ()
    key: KeyChoice | None = None
    subject_unit: Organization | None = None
    target: Certificate | None = None
    device: KeyDevice | None = None
    subscriber: IndividualForm | None = None  # whose registry record the issuance updates
    notify_to: str | None = None


def _problems_raise(problems: Sequence[FieldProblem]) -> None:
    if problems:
        raise f.invalid(list(problems))


def prepare(session: Session, request: CertificateRequest) -> Prepared:
    """Everything the request's execution needs, or InvalidInput listing what is wrong —
    so a subject too long for RFC 5280 is refused when the clerk submits, not at approval."""
    stored = envelope(request)
    form, problems = forms.check(request.type, stored.fields, complete=True)
    _problems_raise(problems)
    t = request.type
    if t is RequestType.DEVICE_UNLOCK:
        return Prepared(form, device=_check_unlock(session, request))
    unit = (
        session.get(Organization, request.subject_organization_id)
        if request.subject_organization_id
        else None
    )
    device = session.get(KeyDevice, request.device_id) if request.device_id else None
    key = stored.key
    if key is not None:
        if key.source is KeySource.TOKEN and device is None:
            _problems_raise(
                [
                    FieldProblem(
                        "device",
                        "a key made on a token needs the token: name the key device",
                        "khóa tạo trên thiết bị cần chọn thiết bị lưu khóa",
                    )
                ]
            )
        if key.source is KeySource.CSR and not key.csr:
            _problems_raise(
                [
                    FieldProblem(
                        "csr",
                        "attach the certificate request (CSR)",
                        "hãy đính kèm yêu cầu chứng thư (CSR)",
                    )
                ]
            )
        if (
            key.source is KeySource.TOKEN
            and device is not None
            and device.status in (DeviceStatus.LOST, DeviceStatus.DESTROYED, DeviceStatus.LOCKED)
        ):
            _problems_raise(
                [
                    FieldProblem(
                        "device",
                        f"device {device.serial} is {device.status.value}",
                        f"thiết bị {device.serial} đang ở trạng thái {device.status.value}",
                    )
                ]
            )
    if t is RequestType.NEW_INDIVIDUAL:
        assert unit is not None
        name, problems = subjects.individual(
            form.full_name,
            subjects.Placement(unit, _parent(session, unit)),
            form.province,
            form.id_number,
        )
        _problems_raise(problems)
        return Prepared(
            form, Profile.INDIVIDUAL, name, (form.email,), key, unit, None, device, form, form.email
        )
    if t is RequestType.NEW_ORGANIZATION:
        assert unit is not None
        if f.fold(form.name) != f.fold(unit.name):
            _problems_raise(
                [
                    FieldProblem(
                        "name",
                        f"differs from the registry's '{unit.name}': correct the registry "
                        "first (the certificate carries the registered name)",
                        f"khác tên trong danh mục '{unit.name}': hãy sửa danh mục trước (chứng thư "
                        "mang tên đã đăng ký)",
                    )
                ]
            )
        name, problems = subjects.organization(
            unit.name, _parent(session, unit), form.province, form.tax_code
        )
        _problems_raise(problems)
        return Prepared(
            form,
            Profile.ORGANIZATION,
            name,
            (form.email,),
            key,
            unit,
            None,
            device,
            None,
            form.email,
        )
    if t is RequestType.DEVICE_SERVICE:
        assert unit is not None
        name, problems = subjects.device(form.service_name, unit, form.province)
        _problems_raise(problems)
        return Prepared(form, Profile.DEVICE, name, (), key, unit, None, device, None, form.email)
    target = (
        session.get(Certificate, request.target_certificate_id)
        if request.target_certificate_id
        else None
    )
    if target is None:
        _problems_raise(
            [
                FieldProblem(
                    "certificate_serial", "names no certificate", "không chỉ ra chứng thư nào"
                )
            ]
        )
    assert target is not None
    if t is RequestType.REVOCATION:
        if target.status is CertStatus.REVOKED:
            _problems_raise(
                [
                    FieldProblem(
                        "certificate_serial",
                        f"{target.serial} is already revoked",
                        f"{target.serial} đã bị thu hồi",
                    )
                ]
            )
        return Prepared(form, target=target)
    return _prepare_change(session, request, form, key, unit, target, device)


def _prepare_change(
    session: Session,
    request: CertificateRequest,
    form: forms.RenewalChangeForm,
    key: KeyChoice | None,
    unit: Organization | None,
    target: Certificate,
    device: KeyDevice | None,
) -> Prepared:
    if target.status is not CertStatus.GOOD:
        _problems_raise(
            [
                FieldProblem(
                    "certificate_serial",
                    f"{target.serial} is "
                    f"{target.status.value}: request a new certificate "
                    "(form 01/02)",
                    f"{target.serial} không còn hiệu lực: hãy đề nghị cấp mới (mẫu 01/02)",
                )
            ]
        )
    if target.not_after <= clock.now():
        _problems_raise(
            [
                FieldProblem(
                    "certificate_serial",
                    f"{target.serial} has expired: request a new certificate",
                    f"{target.serial} đã hết hạn: hãy đề nghị cấp mới",
                )
            ]
        )
    old = x509.load_der_x509_certificate(target.der)
    emails: tuple[str, ...] = ()
    try:
        san = old.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        emails = tuple(san.get_values_for_type(x509.RFC822Name))
    except x509.ExtensionNotFound:
        pass
    if form.kind is ChangeKind.RENEWAL:
        return Prepared(
            form,
            target.profile,
            parse_subject(target.subject),
            emails,
            key,
            unit,
            target,
            device,
            None,
            _subscriber_email(session, target),
        )
    if target.profile is Profile.INDIVIDUAL:
        new = form.individual
        if new is None:
            _problems_raise(
                [
                    FieldProblem(
                        "individual",
                        "a change of an individual certificate needs the new information",
                        "cần thông tin mới của thuê bao cá nhân",
                    )
                ]
            )
        assert new is not None and unit is not None
        name, problems = subjects.individual(
            str(new.full_name),
            subjects.Placement(unit, _parent(session, unit)),
            str(new.province),
            new.id_number,
        )
        _problems_raise([FieldProblem(f"individual.{p.field}", p.en, p.vi) for p in problems])
        return Prepared(
            form,
            Profile.INDIVIDUAL,
            name,
            (str(new.email),),
            key,
            unit,
            target,
            device,
            new,
            new.email,
        )
    if target.profile is Profile.ORGANIZATION:
        org_form: OrganizationForm | None = form.organization
        if org_form is None or unit is None:
            _problems_raise(
                [
                    FieldProblem(
                        "organization",
                        "a change of an organization certificate needs the new information",
                        "cần thông tin mới của cơ quan, tổ chức",
                    )
                ]
            )
        assert org_form is not None and unit is not None
        name, problems = subjects.organization(
            str(org_form.name), _parent(session, unit), str(org_form.province), org_form.tax_code
        )
        _problems_raise([FieldProblem(f"organization.{p.field}", p.en, p.vi) for p in problems])
        return Prepared(
            form,
            Profile.ORGANIZATION,
            name,
            (str(org_form.email),),
            key,
            unit,
            target,
            device,
            None,
            org_form.email,
        )
    raise f.invalid(
        [
            FieldProblem(
                "certificate_serial",
                "a device certificate's information is changed with a new form 03",
                "thay đổi thông tin chứng thư thiết bị bằng mẫu 03 mới",
            )
        ]
    )


def _subscriber_email(session: Session, cert: Certificate) -> str | None:
    if cert.person_id is not None:
        person = session.get(Person, cert.person_id)
        if person is not None and person.email:
            return person.email
    if cert.organization_id is not None:
        org = session.get(Organization, cert.organization_id)
        return org.email if org is not None else None
    return None


def subscriber_name(session: Session, request: CertificateRequest) -> str | None:
    fields = envelope(request).fields
    for key in ("full_name", "name", "service_name", "holder_name"):
        if fields.get(key):
            return str(fields[key])
    if request.person_id is not None:
        person = session.get(Person, request.person_id)
        return person.full_name if person else None
    if request.target_certificate_id is not None:
        cert = session.get(Certificate, request.target_certificate_id)
        return cert.subject if cert else None
    return None


# -- submit, cancel, decide ---------------------------------------------------------------------
def submit(
    principal: Principal, session: Session, settings: Settings, public_id: str
) -> CertificateRequest:
    request, unit = _lock(session, public_id)
    require(principal, Action.REQUEST_CREATE, unit.path)
    if S.SUBMITTED not in TRANSITIONS[request.state]:
        raise _illegal(request, S.SUBMITTED)
    prepare(session, request)
    request.required_approvals = _required(settings, request.type)
    _move(principal, session, request, S.SUBMITTED)
    notify.submitted(
        session, request, TYPE_LABELS[request.type], unit.name, subscriber_name(session, request)
    )
    return request


def _check_unlock(session: Session, request: CertificateRequest) -> KeyDevice:
    device = session.get(KeyDevice, request.device_id) if request.device_id else None
    if device is None:
        _problems_raise(
            [
                FieldProblem(
                    "device_serial",
                    "names no registered device",
                    "không chỉ ra thiết bị nào đã đăng ký",
                )
            ]
        )
    assert device is not None
    if device.status is not DeviceStatus.LOCKED:
        _problems_raise(
            [
                FieldProblem(
                    "device_serial",
                    f"device {device.serial} is {device.status.value}, not locked",
                    f"thiết bị {device.serial} không ở trạng thái bị khóa",
                )
            ]
        )
    return device


def cancel(
    principal: Principal, session: Session, public_id: str, note: str | None = None
) -> CertificateRequest:
    request, unit = _lock(session, public_id)
    require(principal, Action.REQUEST_CREATE, unit.path)
    _move(principal, session, request, S.CANCELLED, _note(note))
    return request


def approve(
    principal: Principal,
    session: Session,
    authority: Authority,
    public_id: str,
    *,
    note: str | None = None,
    confirm_subscriber_changes: bool = False,
) -> CertificateRequest:
    """One approver's yes; the last one needed carries the request out in this transaction
    (except a token key, which waits for :func:`issue` with the token's PIN).

    A request that would move an existing subscriber to another unit or change their record
    is refused until the approver confirms those very changes (``subscriber_changes`` lists
    them); the confirmation is kept with the request and written to its history."""
    require(principal, Action.REQUEST_DECIDE)
    if principal.user_id is None:
        raise Forbidden(
            "an approval is given by a named user, not by a system token",
            vi="phê duyệt phải do một người dùng cụ thể thực hiện",
        )
    note = _note(note)
    request, unit = _lock(session, public_id)
    require(principal, Action.REQUEST_DECIDE, unit.path)
    if request.state is not S.SUBMITTED:
        raise _illegal(request, S.APPROVED)
    if request.batch_id is not None:
        job = session.get(BatchJob, request.batch_id)
        raise Conflict(
            f"request {public_id} belongs to batch {job.public_id if job else '?'}: approve the "
            "batch (a single request of it may be rejected)",
            vi=f"yêu cầu {public_id} thuộc lô {job.public_id if job else '?'}: hãy duyệt cả lô",
        )
    if session.execute(
        select(Approval.id).where(
            Approval.request_id == request.id, Approval.user_id == principal.user_id
        )
    ).first():
        raise Conflict(
            f"you have already approved request {public_id}; it needs another approver",
            vi=f"bạn đã duyệt yêu cầu {public_id}; cần một người duyệt khác",
        )
    pending = _pending_changes(session, request)
    if pending is not None:
        if not confirm_subscriber_changes:
            raise SubscriberChangesUnconfirmed(pending.summary("en"), vi=pending.summary("vi"))
        stored = envelope(request)
        request.form = replace(stored, confirmed=pending.key()).dumps()
        _event(
            principal,
            session,
            request,
            S.SUBMITTED,
            S.SUBMITTED,
            f"xác nhận thay đổi hồ sơ thuê bao {pending.person_public_id}: "
            + pending.summary("vi"),
            action="request.subscriber_changes_confirmed",
        )
    try:
        with session.begin_nested():
            session.add(Approval(request_id=request.id, user_id=principal.user_id, at=clock.now()))
    except IntegrityError as exc:
        raise Conflict(
            f"you have already approved request {public_id}", vi=f"bạn đã duyệt yêu cầu {public_id}"
        ) from exc
    count = session.execute(
        select(func.count()).select_from(Approval).where(Approval.request_id == request.id)
    ).scalar_one()
    tally = f"{count}/{request.required_approvals}"
    if count < request.required_approvals:
        _event(
            principal,
            session,
            request,
            S.SUBMITTED,
            S.SUBMITTED,
            f"phê duyệt {tally}" + (f": {note}" if note else ""),
            action="request.approval",
        )
        _flush(session, request)
        return request
    _move(
        principal,
        session,
        request,
        S.APPROVED,
        f"phê duyệt {tally}" + (f": {note}" if note else ""),
    )
    notify.decided(session, request, TYPE_LABELS[request.type], True, note)
    key = envelope(request).key
    if key is None or key.source is not KeySource.TOKEN:
        _carry_out(principal, session, authority, request)
    return request


def reject(
    principal: Principal, session: Session, public_id: str, reason: str
) -> CertificateRequest:
    reason_text = _note(reason, "reason", required=True)
    request, unit = _lock(session, public_id)
    require(principal, Action.REQUEST_DECIDE, unit.path)
    if S.REJECTED not in TRANSITIONS[request.state]:
        raise _illegal(request, S.REJECTED)
    request.decision_reason = reason_text
    _move(principal, session, request, S.REJECTED, reason_text)
    notify.decided(session, request, TYPE_LABELS[request.type], False, reason_text)
    return request


def issue(
    principal: Principal,
    session: Session,
    authority: Authority,
    public_id: str,
    *,
    token_pin: str | None = None,
) -> CertificateRequest:
    """Carry out an approved request that waited (a key to be made on a USB token)."""
    request, unit = _lock(session, public_id)
    require(principal, Action.CERT_ISSUE, unit.path)
    if request.state is not S.APPROVED:
        raise _illegal(request, S.ISSUED)
    _carry_out(principal, session, authority, request, token_pin=token_pin)
    return request


def _carry_out(
    principal: Principal,
    session: Session,
    authority: Authority,
    request: CertificateRequest,
    *,
    token_pin: str | None = None,
) -> None:
    t = request.type
    if t is RequestType.REVOCATION:
        prepared = prepare(session, request)
        form: forms.RevocationForm = prepared.form
        assert prepared.target is not None and form.reason is not None
        status.revoke(
            session,
            authority,
            prepared.target.serial,
            form.reason,
            principal.actor,
            note=f"yêu cầu {request.public_id}: {form.explanation}",
        )
        _move(
            principal,
            session,
            request,
            S.ISSUED,
            f"đã thu hồi {prepared.target.serial} ({form.reason.value})",
        )
        return
    if t is RequestType.DEVICE_UNLOCK:
        device = prepare(session, request).device
        assert device is not None
        devices.set_status(
            _acting(principal),
            session,
            device.public_id,
            DeviceStatus.ISSUED,
            note=f"yêu cầu {request.public_id} (mẫu 06)",
        )
        _move(principal, session, request, S.ISSUED, f"đã khôi phục thiết bị {device.serial}")
        return
    prepared = prepare(session, request)
    issued = _issue_certificate(
        principal, session, authority, request, prepared, token_pin=token_pin
    )
    request.certificate_id = issued.row.id
    _move(principal, session, request, S.ISSUED, f"chứng thư {issued.serial}")
    notify.enqueue(
        session,
        notify.issued_mail(
            prepared.notify_to,
            request.public_id,
            issued.serial,
            issued.row.subject,
            issued.row.not_after,
        ),
    )


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
    request, unit = _lock(session, public_id, lock=False)
    require(principal, Action.REQUEST_DECIDE, unit.path)
    return _pending_changes(session, request)


def _must_confirm(request_type: RequestType, update: Mapping[str, Any]) -> bool:
    """A new certificate for a person already on record (form 01, found by the CCCD, maybe
    in another unit) changes nothing of theirs unconfirmed; a change of information (form
    04) is asked for by the person's own unit, so only a move to another unit is confirmed."""
    if request_type is RequestType.NEW_INDIVIDUAL:
        return bool(update)
    return "organization" in update


def _pending_changes(session: Session, request: CertificateRequest) -> SubscriberChanges | None:
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


def _subscriber(
    principal: Principal, session: Session, request: CertificateRequest, prepared: Prepared
) -> int | None:
    """The registry's person for an individual certificate: found by identity number (or
    the request's link) and brought up to date with the form — only with the changes an
    approver confirmed — or created from it."""
    person, data, unit = _existing_subscriber(session, request, prepared)
    if data is None or unit is None:
        return request.person_id
    acting = _acting(principal)
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


def _issue_certificate(
    principal: Principal,
    session: Session,
    authority: Authority,
    request: CertificateRequest,
    prepared: Prepared,
    *,
    token_pin: str | None,
) -> issuance.Issued:
    assert prepared.profile is not None and prepared.name is not None
    key = prepared.key or KeyChoice(KeySource.SERVER, DEFAULT_ALGORITHM)
    person_id = _subscriber(principal, session, request, prepared)
    org_id = prepared.subject_unit.id if prepared.subject_unit else None
    device = prepared.device
    if key.source is KeySource.TOKEN:
        assert device is not None
        issued = _issue_on_token(principal, session, authority, prepared, key, device, token_pin)
        session.execute(
            update(Certificate)
            .where(Certificate.id == issued.row.id)
            .values(person_id=person_id, organization_id=org_id, device_id=device.id)
        )
        return issued
    public_key: Any
    if key.source is KeySource.CSR:
        assert key.csr is not None
        public_key = load_csr(key.csr.encode()).public_key()
        location = "csr"
    else:
        store = authority.keystore
        handle = store.generate(subject_text(prepared.name)[:64], key.algorithm)
        public_key, location = handle.public_key(), f"{store.name}:{handle.key_id}"
    spec = issuance.IssueSpec(
        prepared.profile,
        prepared.name,
        public_key,
        emails=prepared.emails,
        key_location=location,
        person_id=person_id,
        organization_id=org_id,
        # A CSR may come from a token (its key made there by the signing agent): the
        # certificate then lives on that device; a server-held key lives on none.
        device_id=device.id if device is not None and key.source is not KeySource.SERVER else None,
    )
    return issuance.issue(session, authority, spec, principal.actor)


def _issue_on_token(
    principal: Principal,
    session: Session,
    authority: Authority,
    prepared: Prepared,
    key: KeyChoice,
    device: KeyDevice,
    token_pin: str | None,
) -> issuance.Issued:
    from kyso.keys.pkcs11 import Pkcs11KeyStore

    settings = authority.settings
    module = settings.token_module or settings.pkcs11_module
    if not token_pin:
        raise f.invalid(
            [
                FieldProblem(
                    "token_pin",
                    "the key is made on the token: give its PIN",
                    "khóa được tạo trên thiết bị: hãy nhập mã PIN",
                )
            ]
        )
    if not module:
        raise InvalidInput(
            "set KYSO_TOKEN_MODULE (the tokens' PKCS#11 library)",
            vi="đặt KYSO_TOKEN_MODULE (thư viện PKCS#11 của thiết bị)",
        )
    assert prepared.profile is not None and prepared.name is not None
    store = Pkcs11KeyStore(module, device.serial, token_pin)  # the token's label is its serial
    try:
        return issuance.issue_on_token(
            session,
            authority,
            store,
            profile=prepared.profile,
            subject=subject_text(prepared.name),
            algorithm=key.algorithm,
            actor=principal.actor,
            emails=prepared.emails,
        )
    finally:
        store.close()


# -- hand-over ----------------------------------------------------------------------------------
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
    note = _note(note)
    request, unit = _lock(session, public_id)
    require(principal, Action.CERT_HANDOVER, unit.path)
    if request.state is not S.ISSUED or request.type not in ISSUING_TYPES:
        raise _illegal(request, S.HANDED_OVER)
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
    _move(principal, session, request, S.HANDED_OVER, note)
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


# -- reading ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RequestView:
    request: CertificateRequest
    unit: Organization
    envelope: Envelope
    subject_unit: Organization | None = None
    person: Person | None = None
    certificate: Certificate | None = None
    target: Certificate | None = None
    device: KeyDevice | None = None
    batch: str | None = None
    approvals: tuple[tuple[str, datetime], ...] = ()
    events: tuple[RequestEvent, ...] = ()

    @property
    def subscriber(self) -> str | None:
        fields = self.envelope.fields
        for key in ("full_name", "name", "service_name", "holder_name"):
            if fields.get(key):
                return str(fields[key])
        if self.person is not None:
            return self.person.full_name
        return self.target.subject if self.target is not None else None


def _view(
    session: Session, request: CertificateRequest, unit: Organization, detailed: bool
) -> RequestView:
    def get(model: Any, key: int | None) -> Any:
        return session.get(model, key) if key is not None else None

    approvals: tuple[tuple[str, datetime], ...] = ()
    events: tuple[RequestEvent, ...] = ()
    if detailed:
        approvals = tuple(
            (name, at)
            for name, at in session.execute(
                select(User.username, Approval.at)
                .join(User, Approval.user_id == User.id)
                .where(Approval.request_id == request.id)
                .order_by(Approval.at, Approval.id)
            )
        )
        events = tuple(
            session.execute(
                select(RequestEvent)
                .where(RequestEvent.request_id == request.id)
                .order_by(RequestEvent.id)
            ).scalars()
        )
    batch = get(BatchJob, request.batch_id)
    return RequestView(
        request,
        unit,
        envelope(request),
        get(Organization, request.subject_organization_id),
        get(Person, request.person_id),
        get(Certificate, request.certificate_id),
        get(Certificate, request.target_certificate_id),
        get(KeyDevice, request.device_id),
        batch.public_id if batch is not None else None,
        approvals,
        events,
    )


def get(principal: Principal, session: Session, public_id: str) -> RequestView:
    row = session.execute(
        select(CertificateRequest, Organization)
        .join(Organization, CertificateRequest.organization_id == Organization.id)
        .where(CertificateRequest.public_id == public_id)
    ).first()
    if row is None:
        raise _not_found(public_id)
    require(principal, Action.REQUEST_READ, row[1].path)
    return _view(session, row[0], row[1], detailed=True)


def search(
    principal: Principal,
    session: Session,
    *,
    state: RequestState | None = None,
    type: RequestType | None = None,
    unit: str | None = None,
    batch: str | None = None,
    q: str | None = None,
    since: datetime | None = None,
    offset: int = 0,
    limit: int = 50,
) -> f.Page[RequestView]:
    """Requests in view, newest first; ``unit`` keeps a unit's subtree, ``q`` matches the
    form's text (a name, an identity number, an e-mail)."""
    require(principal, Action.REQUEST_READ)
    query = (
        select(CertificateRequest, Organization)
        .join(Organization, CertificateRequest.organization_id == Organization.id)
        .where(visible(principal, Organization.path))
    )
    if state is not None:
        query = query.where(CertificateRequest.state == state)
    if type is not None:
        query = query.where(CertificateRequest.type == type)
    if unit is not None:
        root = _unit(session, unit)
        require(principal, Action.REQUEST_READ, root.path)
        query = query.where(Organization.path.startswith(root.path, autoescape=True))
    if batch is not None:
        job = session.execute(select(BatchJob.id).where(BatchJob.public_id == batch)).scalar()
        query = query.where(CertificateRequest.batch_id == (job if job is not None else -1))
    if q:
        query = query.where(CertificateRequest.form.contains(q.strip(), autoescape=True))
    if since is not None:
        query = query.where(CertificateRequest.created_at >= aware(since))
    total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    rows = session.execute(
        query.order_by(CertificateRequest.id.desc()).offset(offset).limit(limit)
    ).all()
    _preload(session, [r[0] for r in rows])
    return f.Page([_view(session, r[0], r[1], detailed=False) for r in rows], total, offset, limit)


def _preload(session: Session, requests: list[CertificateRequest]) -> None:
    """Load what a page of views refers to with one query per table, so that building each
    view finds its rows in the session instead of asking the database row by row."""
    wanted: list[tuple[Any, set[int]]] = [
        (Organization, {r.subject_organization_id for r in requests if r.subject_organization_id}),
        (Person, {r.person_id for r in requests if r.person_id}),
        (
            Certificate,
            {c for r in requests for c in (r.certificate_id, r.target_certificate_id) if c},
        ),
        (KeyDevice, {r.device_id for r in requests if r.device_id}),
        (BatchJob, {r.batch_id for r in requests if r.batch_id}),
    ]
    for model, ids in wanted:
        if ids:
            session.execute(select(model).where(model.id.in_(ids))).scalars().all()
