"""What carrying a request out needs, checked when it is submitted and again when it is
carried out: the subject it makes (RFC 5280 lengths), the profile, the key, the target
certificate or device — so a subject too long is refused when the clerk submits, not at
approval.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from sqlalchemy.orm import Session

from kyso import clock
from kyso.lifecycle import forms, subjects
from kyso.lifecycle.forms import ChangeKind, IndividualForm, KeyChoice, KeySource, OrganizationForm
from kyso.lifecycle.workflow.states import envelope
from kyso.pki.names import parse_subject
from kyso.registry import fields as f
from kyso.registry.fields import FieldProblem
from kyso.store.models import (
    Certificate,
    CertificateRequest,
    CertStatus,
    DeviceStatus,
    KeyDevice,
    Organization,
    Person,
    Profile,
    RequestType,
)


def _parent(session: Session, org: Organization) -> Organization | None:
    return session.get(Organization, org.parent_id) if org.parent_id is not None else None


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
    prepared = _prepare(session, request)
    key = prepared.key
    if key is not None and key.source is KeySource.CENTRAL and prepared.profile is Profile.DEVICE:
        # A central key signs only with its holder's consent on the phone (SCAL2); a device
        # or a service signs unattended, so its key cannot live there.
        raise f.invalid(
            [
                FieldProblem(
                    "key_source",
                    "a device or service certificate cannot have its key in the central HSM "
                    "(each signature there is approved by a person)",
                    "chứng thư thiết bị, dịch vụ không thể để khóa trong HSM ký tập trung "
                    "(mỗi lần ký ở đó cần một người xác nhận)",
                )
            ]
        )
    return prepared


def _prepare(session: Session, request: CertificateRequest) -> Prepared:
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
            raise f.invalid(
                [
                    FieldProblem(
                        "device",
                        "a key made on a token needs the token: name the key device",
                        "khóa tạo trên thiết bị cần chọn thiết bị lưu khóa",
                    )
                ]
            )
        if key.source is KeySource.CSR and not key.csr:
            raise f.invalid(
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
            raise f.invalid(
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
            raise f.invalid(
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
        raise f.invalid(
            [
                FieldProblem(
                    "certificate_serial", "names no certificate", "không chỉ ra chứng thư nào"
                )
            ]
        )
    if t is RequestType.REVOCATION:
        if target.status is CertStatus.REVOKED:
            raise f.invalid(
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
        raise f.invalid(
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
        raise f.invalid(
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
            raise f.invalid(
                [
                    FieldProblem(
                        "individual",
                        "a change of an individual certificate needs the new information",
                        "cần thông tin mới của thuê bao cá nhân",
                    )
                ]
            )
        assert unit is not None
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
            raise f.invalid(
                [
                    FieldProblem(
                        "organization",
                        "a change of an organization certificate needs the new information",
                        "cần thông tin mới của cơ quan, tổ chức",
                    )
                ]
            )
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


def _check_unlock(session: Session, request: CertificateRequest) -> KeyDevice:
    device = session.get(KeyDevice, request.device_id) if request.device_id else None
    if device is None:
        raise f.invalid(
            [
                FieldProblem(
                    "device_serial",
                    "names no registered device",
                    "không chỉ ra thiết bị nào đã đăng ký",
                )
            ]
        )
    if device.status is not DeviceStatus.LOCKED:
        raise f.invalid(
            [
                FieldProblem(
                    "device_serial",
                    f"device {device.serial} is {device.status.value}, not locked",
                    f"thiết bị {device.serial} không ở trạng thái bị khóa",
                )
            ]
        )
    return device
