"""The request forms of Decree 68/2024/NĐ-CP as typed records, with their checks.

Form 01 individual certificate, 02 organization certificate, 03 device / service / software,
04 renewal or change of information, 05 revocation, 06 restoring the key-storage device.
(Form 07, the hand-over notice, is the registry's hand-over minutes.)

A draft may be incomplete (a re-issue draft opened by the lost-token action knows only what
the registry knows); :func:`parse` with ``complete=True`` — done on submission — demands
every field the form requires. Every problem names its field, so the API reports
"id_number: …" and a spreadsheet import reports "row 7, column D (Số CCCD): …" from the same
rule (the field rules themselves are the registry's, :mod:`kyso.registry.fields`).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from datetime import date, datetime
from typing import Any, ClassVar, TypeVar

from kyso import clock
from kyso.errors import InvalidInput
from kyso.keys.base import KeyAlgorithm
from kyso.registry import fields as f
from kyso.registry.fields import Collector, FieldProblem
from kyso.store.models import RequestType, RevocationReason


class KeySource(enum.StrEnum):
    """Where the subscriber's key is made."""

    TOKEN = "token"  # noqa: S105 (on the subscriber's USB token, at issuance, with its PIN)
    SERVER = "server"  # in kyso's key store: signed by the server for its holder
    CSR = "csr"  # by the requester, who sends a PKCS#10 request
    # "central HSM": in the central signing HSM (kyso.remote.central), non-extractable; each
    # signature is approved by its holder on the phone (a seal: by the clerks named for it).
    CENTRAL = "central"


TYPE_LABELS: dict[RequestType, str] = {
    RequestType.NEW_INDIVIDUAL: "cấp mới chứng thư số cá nhân (mẫu 01)",
    RequestType.NEW_ORGANIZATION: "cấp mới chứng thư số cơ quan, tổ chức (mẫu 02)",
    RequestType.DEVICE_SERVICE: "cấp chứng thư số cho thiết bị, dịch vụ, phần mềm (mẫu 03)",
    RequestType.RENEWAL_CHANGE: "gia hạn, thay đổi thông tin chứng thư số (mẫu 04)",
    RequestType.REVOCATION: "thu hồi chứng thư số (mẫu 05)",
    RequestType.DEVICE_UNLOCK: "khôi phục thiết bị lưu khóa bí mật (mẫu 06)",
}

# Types whose approval makes a certificate (the others revoke or unlock).
ISSUING_TYPES = frozenset(
    {
        RequestType.NEW_INDIVIDUAL,
        RequestType.NEW_ORGANIZATION,
        RequestType.DEVICE_SERVICE,
        RequestType.RENEWAL_CHANGE,
    }
)


def _date(field: str, value: object) -> date | None:
    """A date as JSON, a spreadsheet cell or a clerk writes it (31/12/1980 first)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        text = value.strip()
        for pattern in ("%d/%m/%Y", "%Y-%m-%d", "%d-%m-%Y", "%d.%m.%Y"):
            try:
                return datetime.strptime(text, pattern).date()
            except ValueError:
                continue
    raise FieldProblem(field, "is not a date such as 31/12/1980", "không phải ngày dạng 31/12/1980")


def _digits(value: object) -> object:
    """Spreadsheets turn identity numbers and phones into numbers and drop leading zeros.

    A CCCD always has 12 digits and a mobile 10 starting with 0, so a number is padded back
    (a CCCD of Hà Nội, 001…, arrives as 1…)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return str(int(value))
    return value


def _cccd(field: str, value: object, born: date | None) -> str | None:
    value = _digits(value)
    if isinstance(value, str) and value.isdigit() and 9 <= len(value) < 12:
        value = value.zfill(12)
    return f.cccd(field, _str(value, field), born)


def _mobile(field: str, value: object) -> str | None:
    value = _digits(value)
    if isinstance(value, str) and value.isdigit() and len(value) == 9:
        value = "0" + value
    return f.mobile(field, _str(value, field))


def _str(value: object, field: str = "value") -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(_digits(value))
    raise FieldProblem(field, "must be text", "phải là chữ")


def _text(field: str, value: object, max_length: int) -> str | None:
    try:
        return f.text(field, _str(value, field), max_length=max_length)
    except FieldProblem as problem:
        raise FieldProblem(field, problem.en, problem.vi) from None


_SERIAL = re.compile(r"[0-9a-f]{1,40}")


def serial(field: str, value: object) -> str | None:
    """A certificate serial as people copy it: hex, any case, with colons or spaces."""
    text = _text(field, value, 120)
    if text is None:
        return None
    cleaned = text.lower().replace(":", "").replace(" ", "").removeprefix("0x").lstrip("0")
    if not _SERIAL.fullmatch(cleaned or "0"):
        raise FieldProblem(
            field,
            "is not a certificate serial number (hexadecimal, e.g. 54:01:2f:…)",
            "không phải số hiệu chứng thư (hệ 16, ví dụ 54:01:2f:…)",
        )
    return cleaned or "0"


def _choice(field: str, value: object, kind: type[enum.StrEnum]) -> Any:
    if value is None or value == "":
        return None
    try:
        return kind(str(value).strip())
    except ValueError:
        allowed = ", ".join(m.value for m in kind)
        raise FieldProblem(
            field, f"must be one of {allowed}", f"phải là một trong {allowed}"
        ) from None


@dataclass(frozen=True)
class IndividualForm:
    """Form 01: a certificate for a person (the columns of the form's list)."""

    full_name: str | None = None
    date_of_birth: date | None = None
    id_number: str | None = None  # CCCD
    id_issue_date: date | None = None
    id_issue_place: str | None = None
    email: str | None = None  # official e-mail (thư điện tử công vụ)
    organization: str | None = None  # the unit, as written on the form
    province: str | None = None
    position: str | None = None
    mobile: str | None = None
    old_certificate: str | None = None  # serial of a previous certificate, if any

    REQUIRED: ClassVar[tuple[str, ...]] = (
        "full_name",
        "date_of_birth",
        "id_number",
        "id_issue_date",
        "id_issue_place",
        "email",
        "organization",
        "province",
        "position",
    )
    LABELS: ClassVar[dict[str, str]] = {
        "full_name": "Họ và tên",
        "date_of_birth": "Ngày sinh",
        "id_number": "Số CCCD",
        "id_issue_date": "Ngày cấp",
        "id_issue_place": "Nơi cấp",
        "email": "Thư điện tử công vụ",
        "organization": "Cơ quan, đơn vị",
        "province": "Tỉnh/Thành phố",
        "position": "Chức vụ",
        "mobile": "Số điện thoại di động",
        "old_certificate": "Số hiệu chứng thư số cũ",
    }

    @classmethod
    def clean(cls, c: Collector, data: Mapping[str, Any], today: date) -> IndividualForm:
        born = c.check(
            lambda: f.past_date(
                "date_of_birth", _date("date_of_birth", data.get("date_of_birth")), today
            )
        )
        issued = c.check(
            lambda: f.past_date(
                "id_issue_date", _date("id_issue_date", data.get("id_issue_date")), today
            )
        )
        if born is not None and issued is not None and issued < born:
            c.problems.append(
                FieldProblem("id_issue_date", "is before the date of birth", "trước ngày sinh")
            )
        if born is not None and (today.year - born.year) < 16:
            c.problems.append(
                FieldProblem(
                    "date_of_birth",
                    "makes the subscriber younger than 16",
                    "cho thấy thuê bao chưa đủ 16 tuổi",
                )
            )
        return cls(
            full_name=c.check(lambda: _text("full_name", data.get("full_name"), 64)),
            date_of_birth=born,
            id_number=c.check(lambda: _cccd("id_number", data.get("id_number"), born)),
            id_issue_date=issued,
            id_issue_place=c.check(
                lambda: _text("id_issue_place", data.get("id_issue_place"), 200)
            ),
            email=c.check(lambda: f.email("email", _str(data.get("email"), "email"))),
            organization=c.check(lambda: _text("organization", data.get("organization"), 300)),
            province=c.check(lambda: _text("province", data.get("province"), 100)),
            position=c.check(lambda: _text("position", data.get("position"), 200)),
            mobile=c.check(lambda: _mobile("mobile", data.get("mobile"))),
            old_certificate=c.check(lambda: serial("old_certificate", data.get("old_certificate"))),
        )


@dataclass(frozen=True)
class OrganizationForm:
    """Form 02: a certificate for an agency or organization (its seal, signed by the records
    clerk), and the person who receives the token."""

    name: str | None = None
    address: str | None = None
    tax_code: str | None = None  # MST
    budget_code: str | None = None  # mã quan hệ ngân sách
    province: str | None = None
    email: str | None = None
    recipient_name: str | None = None
    recipient_id_number: str | None = None
    recipient_position: str | None = None
    recipient_mobile: str | None = None
    old_certificate: str | None = None

    REQUIRED: ClassVar[tuple[str, ...]] = (
        "name",
        "address",
        "province",
        "email",
        "recipient_name",
    )
    LABELS: ClassVar[dict[str, str]] = {
        "name": "Tên cơ quan, tổ chức",
        "address": "Địa chỉ",
        "tax_code": "Mã số thuế",
        "budget_code": "Mã quan hệ ngân sách",
        "province": "Tỉnh/Thành phố",
        "email": "Thư điện tử công vụ",
        "recipient_name": "Người nhận thiết bị",
        "recipient_id_number": "Số CCCD người nhận",
        "recipient_position": "Chức vụ người nhận",
        "recipient_mobile": "Số điện thoại người nhận",
        "old_certificate": "Số hiệu chứng thư số cũ",
    }

    @classmethod
    def clean(cls, c: Collector, data: Mapping[str, Any], today: date) -> OrganizationForm:
        return cls(
            name=c.check(lambda: _text("name", data.get("name"), 64)),
            address=c.check(lambda: _text("address", data.get("address"), 500)),
            tax_code=c.check(
                lambda: f.tax_code("tax_code", _str(_digits(data.get("tax_code")), "tax_code"))
            ),
            budget_code=c.check(
                lambda: f.budget_code(
                    "budget_code", _str(_digits(data.get("budget_code")), "budget_code")
                )
            ),
            province=c.check(lambda: _text("province", data.get("province"), 100)),
            email=c.check(lambda: f.email("email", _str(data.get("email"), "email"))),
            recipient_name=c.check(
                lambda: _text("recipient_name", data.get("recipient_name"), 200)
            ),
            recipient_id_number=c.check(
                lambda: _cccd("recipient_id_number", data.get("recipient_id_number"), None)
            ),
            recipient_position=c.check(
                lambda: _text("recipient_position", data.get("recipient_position"), 200)
            ),
            recipient_mobile=c.check(
                lambda: _mobile("recipient_mobile", data.get("recipient_mobile"))
            ),
            old_certificate=c.check(lambda: serial("old_certificate", data.get("old_certificate"))),
        )


@dataclass(frozen=True)
class DeviceServiceForm:
    """Form 03: a certificate for a device, a service or a piece of software (e.g. the
    document management system's server that signs receipts)."""

    service_name: str | None = None
    host: str | None = None  # DNS name or address where it runs
    organization: str | None = None  # the unit that operates it
    province: str | None = None
    email: str | None = None
    responsible_name: str | None = None
    responsible_mobile: str | None = None

    REQUIRED: ClassVar[tuple[str, ...]] = (
        "service_name",
        "organization",
        "province",
        "email",
        "responsible_name",
    )
    LABELS: ClassVar[dict[str, str]] = {
        "service_name": "Tên thiết bị, dịch vụ, phần mềm",
        "host": "Tên miền / địa chỉ",
        "organization": "Cơ quan quản lý",
        "province": "Tỉnh/Thành phố",
        "email": "Thư điện tử liên hệ",
        "responsible_name": "Người chịu trách nhiệm",
        "responsible_mobile": "Số điện thoại người chịu trách nhiệm",
    }

    @classmethod
    def clean(cls, c: Collector, data: Mapping[str, Any], today: date) -> DeviceServiceForm:
        return cls(
            service_name=c.check(lambda: _text("service_name", data.get("service_name"), 64)),
            host=c.check(lambda: _host("host", data.get("host"))),
            organization=c.check(lambda: _text("organization", data.get("organization"), 300)),
            province=c.check(lambda: _text("province", data.get("province"), 100)),
            email=c.check(lambda: f.email("email", _str(data.get("email"), "email"))),
            responsible_name=c.check(
                lambda: _text("responsible_name", data.get("responsible_name"), 200)
            ),
            responsible_mobile=c.check(
                lambda: _mobile("responsible_mobile", data.get("responsible_mobile"))
            ),
        )


_HOST = re.compile(r"([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9-]{1,63}")


def _host(field: str, value: object) -> str | None:
    text = _text(field, value, 253)
    if text is not None and not _HOST.fullmatch(text):
        raise FieldProblem(
            field,
            "is not a host name such as vanban.backan.gov.vn",
            "không phải tên miền dạng vanban.backan.gov.vn",
        )
    return text.lower() if text else None


class ChangeKind(enum.StrEnum):
    RENEWAL = "renewal"  # gia hạn: a successor with the same information
    CHANGE = "change"  # thay đổi thông tin: a new certificate with the new information


@dataclass(frozen=True)
class RenewalChangeForm:
    """Form 04: renew a certificate before it expires, or change its information (the new
    certificate replaces the old one, which is revoked as superseded once handed over)."""

    kind: ChangeKind | None = None
    certificate_serial: str | None = None
    reason: str | None = None
    # The information after the change (one of the two, matching the certificate).
    individual: IndividualForm | None = None
    organization: OrganizationForm | None = None

    REQUIRED: ClassVar[tuple[str, ...]] = ("kind", "certificate_serial")
    LABELS: ClassVar[dict[str, str]] = {
        "kind": "Loại đề nghị (gia hạn / thay đổi thông tin)",
        "certificate_serial": "Số hiệu chứng thư số",
        "reason": "Lý do",
        "individual": "Thông tin thuê bao cá nhân sau thay đổi",
        "organization": "Thông tin cơ quan, tổ chức sau thay đổi",
    }

    @classmethod
    def clean(cls, c: Collector, data: Mapping[str, Any], today: date) -> RenewalChangeForm:
        individual = _nested(c, "individual", IndividualForm, data.get("individual"), today)
        organization = _nested(c, "organization", OrganizationForm, data.get("organization"), today)
        if individual is not None and organization is not None:
            c.problems.append(
                FieldProblem(
                    "individual",
                    "give the new information of one subscriber only",
                    "chỉ điền thông tin của một thuê bao",
                )
            )
        return cls(
            kind=c.check(lambda: _choice("kind", data.get("kind"), ChangeKind)),
            certificate_serial=c.check(
                lambda: serial("certificate_serial", data.get("certificate_serial"))
            ),
            reason=c.check(lambda: _text("reason", data.get("reason"), 2000)),
            individual=individual,
            organization=organization,
        )


REVOCATION_REASONS = tuple(
    r
    for r in RevocationReason
    if r not in (RevocationReason.CERTIFICATE_HOLD, RevocationReason.REMOVE_FROM_CRL)
)


@dataclass(frozen=True)
class RevocationForm:
    """Form 05: revoke a certificate, with the RFC 5280 reason."""

    certificate_serial: str | None = None
    reason: RevocationReason | None = None
    explanation: str | None = None

    REQUIRED: ClassVar[tuple[str, ...]] = ("certificate_serial", "reason", "explanation")
    LABELS: ClassVar[dict[str, str]] = {
        "certificate_serial": "Số hiệu chứng thư số",
        "reason": "Lý do thu hồi",
        "explanation": "Giải trình",
    }

    @classmethod
    def clean(cls, c: Collector, data: Mapping[str, Any], today: date) -> RevocationForm:
        reason = c.check(lambda: _choice("reason", data.get("reason"), RevocationReason))
        if reason is not None and reason not in REVOCATION_REASONS:
            c.problems.append(
                FieldProblem(
                    "reason",
                    f"'{reason.value}' is not a revocation reason (use suspension)",
                    f"'{reason.value}' không phải lý do thu hồi (dùng tạm dừng)",
                )
            )
            reason = None
        return cls(
            certificate_serial=c.check(
                lambda: serial("certificate_serial", data.get("certificate_serial"))
            ),
            reason=reason,
            explanation=c.check(lambda: _text("explanation", data.get("explanation"), 2000)),
        )


@dataclass(frozen=True)
class DeviceUnlockForm:
    """Form 06: restore a key-storage device locked after too many wrong PINs (a province's
    rule, Đồng Tháp 2025: within one working day of a valid request)."""

    device_serial: str | None = None
    holder_name: str | None = None
    reason: str | None = None
    contact_mobile: str | None = None

    REQUIRED: ClassVar[tuple[str, ...]] = ("device_serial", "holder_name", "reason")
    LABELS: ClassVar[dict[str, str]] = {
        "device_serial": "Số sê-ri thiết bị",
        "holder_name": "Người giữ thiết bị",
        "reason": "Lý do",
        "contact_mobile": "Số điện thoại liên hệ",
    }

    @classmethod
    def clean(cls, c: Collector, data: Mapping[str, Any], today: date) -> DeviceUnlockForm:
        return cls(
            device_serial=c.check(lambda: _text("device_serial", data.get("device_serial"), 100)),
            holder_name=c.check(lambda: _text("holder_name", data.get("holder_name"), 200)),
            reason=c.check(lambda: _text("reason", data.get("reason"), 2000)),
            contact_mobile=c.check(lambda: _mobile("contact_mobile", data.get("contact_mobile"))),
        )


Form = (
    IndividualForm
    | OrganizationForm
    | DeviceServiceForm
    | RenewalChangeForm
    | RevocationForm
    | DeviceUnlockForm
)

FORMS: dict[RequestType, type[Any]] = {
    RequestType.NEW_INDIVIDUAL: IndividualForm,
    RequestType.NEW_ORGANIZATION: OrganizationForm,
    RequestType.DEVICE_SERVICE: DeviceServiceForm,
    RequestType.RENEWAL_CHANGE: RenewalChangeForm,
    RequestType.REVOCATION: RevocationForm,
    RequestType.DEVICE_UNLOCK: DeviceUnlockForm,
}

F = TypeVar("F")


def _nested(c: Collector, prefix: str, kind: type[F], value: object, today: date) -> F | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        c.problems.append(
            FieldProblem(
                prefix, "must be an object of form fields", "phải là một nhóm trường của mẫu"
            )
        )
        return None
    inner = Collector()
    form = _clean(inner, kind, value, today)
    for problem in inner.problems:
        c.problems.append(FieldProblem(f"{prefix}.{problem.field}", problem.en, problem.vi))
    return form


def _clean(c: Collector, kind: type[F], data: Mapping[str, Any], today: date) -> F:
    known = {x.name for x in fields(kind)}  # type: ignore[arg-type]
    for name in data:
        if name not in known:
            c.problems.append(
                FieldProblem(
                    str(name), "is not a field of this form", "không phải trường của mẫu này"
                )
            )
    cleaner: Callable[[Collector, Mapping[str, Any], date], F] = kind.clean  # type: ignore[attr-defined]
    return cleaner(c, data, today)


def missing(form: Any) -> list[FieldProblem]:
    """The required fields a form still lacks (nested forms included)."""
    problems = [
        FieldProblem(name, "is required", "bắt buộc phải có")
        for name in form.REQUIRED
        if getattr(form, name) in (None, "")
    ]
    if isinstance(form, RenewalChangeForm):
        for prefix in ("individual", "organization"):
            inner = getattr(form, prefix)
            if inner is not None:
                problems += [
                    FieldProblem(f"{prefix}.{p.field}", p.en, p.vi) for p in missing(inner)
                ]
        if form.kind is ChangeKind.CHANGE and form.individual is None and form.organization is None:
            problems.append(
                FieldProblem(
                    "individual",
                    "a change needs the new information",
                    "đề nghị thay đổi cần thông tin mới",
                )
            )
    return problems


def check(
    request_type: RequestType,
    data: Mapping[str, Any],
    *,
    complete: bool,
    today: date | None = None,
) -> tuple[Any, list[FieldProblem]]:
    """The typed form and every problem found (none: the form is good)."""
    if not isinstance(data, Mapping):
        return None, [FieldProblem("form", "must be an object", "phải là một đối tượng")]
    today = today or clock.local(clock.now()).date()
    c = Collector()
    form = _clean(c, FORMS[request_type], data, today)
    if complete:  # a field already refused is not "missing" as well
        refused = {p.field for p in c.problems}
        c.problems += [p for p in missing(form) if p.field not in refused]
    return form, c.problems


def parse(
    request_type: RequestType,
    data: Mapping[str, Any],
    *,
    complete: bool,
    today: date | None = None,
) -> Any:
    """The typed form, or :class:`InvalidInput` listing every problem."""
    form, problems = check(request_type, data, complete=complete, today=today)
    if problems:
        raise f.invalid(problems)
    return form


def to_json(form: Any) -> dict[str, Any]:
    """The form as stored and shown: dates ISO 8601, empty fields left out."""

    def encode(value: Any) -> Any:
        if isinstance(value, date):
            return value.isoformat()
        if isinstance(value, enum.Enum):
            return value.value
        if isinstance(value, dict):
            return {k: encode(v) for k, v in value.items() if v is not None}
        return value

    return {k: encode(v) for k, v in asdict(form).items() if v is not None}


def label(request_type: RequestType, field: str) -> str:
    """The form's own words for a field (nested fields: the inner form's)."""
    kind = FORMS[request_type]
    head, _, rest = field.partition(".")
    if rest and head in ("individual", "organization"):
        inner = IndividualForm if head == "individual" else OrganizationForm
        return str(inner.LABELS.get(rest, rest))
    return str(kind.LABELS.get(field, field))


@dataclass(frozen=True)
class KeyChoice:
    """How the subscriber's key is made for an issuing request."""

    source: KeySource
    algorithm: KeyAlgorithm
    csr: str | None = None  # PEM, for KeySource.CSR

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"source": self.source.value, "algorithm": self.algorithm.value}
        if self.csr is not None:
            data["csr"] = self.csr
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> KeyChoice:
        return cls(KeySource(data["source"]), KeyAlgorithm(data["algorithm"]), data.get("csr"))


def invalid(problems: list[FieldProblem]) -> InvalidInput:
    return f.invalid(problems)
