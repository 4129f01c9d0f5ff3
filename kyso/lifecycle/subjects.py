"""Subject names built from the registry and the form, never typed by the requester.

Individual: ``CN=<name>, OU=<unit>, O=<the unit's parent body>, L=<province>, C=VN,
UID=CCCD:<number>``; organization: ``CN=<organization>, O=<parent body>, L=<province>, C=VN,
UID=MST:<tax code>``; device or service: ``CN=<service>, O=<operating unit>, L=<province>,
C=VN``. Values are UTF-8 (TCVN 6909:2001 is Unicode), C is PrintableString (RFC 5280).
The RDNs are encoded C, L, O, OU, CN, UID — the order of the government CA's subscriber
certificates (VIETNAM.md) — so RFC 4514 shows them reversed.

RFC 5280 Appendix A caps CN, O and OU at 64 characters and L at 128. A name that does not
fit is refused with the form field (or the registry unit) it came from — never truncated,
because a truncated name on a certificate is a wrong name.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import NameOID

from kyso.errors import InvalidInput
from kyso.pki.names import check_subject
from kyso.registry.fields import FieldProblem
from kyso.store.models import Organization

_LIMITS = {
    NameOID.COMMON_NAME: 64,
    NameOID.ORGANIZATION_NAME: 64,
    NameOID.ORGANIZATIONAL_UNIT_NAME: 64,
    NameOID.LOCALITY_NAME: 128,
}
_SHORT = {
    NameOID.COMMON_NAME: "CN",
    NameOID.ORGANIZATION_NAME: "O",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
    NameOID.LOCALITY_NAME: "L",
}


@dataclass(frozen=True)
class Part:
    """One attribute and where its value came from, for the error message."""

    oid: x509.ObjectIdentifier
    value: str
    field: str  # the form field (or "organization" for a registry unit)
    origin_vi: str
    origin_en: str


@dataclass(frozen=True)
class Placement:
    """Where a subscriber sits in the tree: its unit and the body above it."""

    unit: Organization
    parent: Organization | None

    @property
    def body(self) -> str:
        """O=: the parent body, or the unit itself at the top of the tree."""
        return (self.parent or self.unit).name


def _check(parts: list[Part]) -> list[FieldProblem]:
    problems = []
    for part in parts:
        limit = _LIMITS.get(part.oid)
        if limit and len(part.value) > limit:
            short = _SHORT[part.oid]
            problems.append(
                FieldProblem(
                    part.field,
                    f"{short} ({part.origin_en} '{part.value}') is {len(part.value)} characters;"
                    f" RFC 5280 allows at most {limit}: register a shorter name",
                    f"{short} ({part.origin_vi} '{part.value}') dài {len(part.value)} ký tự;"
                    f" RFC 5280 chỉ cho phép tối đa {limit}: hãy đăng ký tên ngắn hơn",
                )
            )
    return problems


def _name(parts: list[Part]) -> x509.Name:
    order = [
        NameOID.COUNTRY_NAME,
        NameOID.LOCALITY_NAME,
        NameOID.ORGANIZATION_NAME,
        NameOID.ORGANIZATIONAL_UNIT_NAME,
        NameOID.COMMON_NAME,
        NameOID.USER_ID,
    ]
    attributes = [x509.NameAttribute(NameOID.COUNTRY_NAME, "VN")]
    for oid in order[1:]:
        attributes += [x509.NameAttribute(p.oid, p.value) for p in parts if p.oid == oid]
    name = x509.Name(attributes)
    try:
        return check_subject(name)
    except InvalidInput as exc:  # e.g. an empty value: reported against the whole subject
        raise FieldProblem("subject", exc.detail or "", exc.detail_vi or "") from exc


def _unit_parts(placement: Placement, field: str) -> list[Part]:
    parts = []
    if placement.parent is not None:
        parts.append(
            Part(
                NameOID.ORGANIZATIONAL_UNIT_NAME,
                placement.unit.name,
                field,
                "tên đơn vị trong danh mục",
                "the unit's name in the registry",
            )
        )
    parts.append(
        Part(
            NameOID.ORGANIZATION_NAME,
            placement.body,
            field,
            "tên cơ quan chủ quản trong danh mục",
            "the parent body's name in the registry",
        )
    )
    return parts


def _problems_or_name(parts: list[Part]) -> tuple[x509.Name | None, list[FieldProblem]]:
    problems = _check(parts)
    if problems:
        return None, problems
    try:
        return _name(parts), []
    except FieldProblem as problem:
        return None, [problem]


def individual(
    full_name: str, placement: Placement, province: str, id_number: str | None
) -> tuple[x509.Name | None, list[FieldProblem]]:
    parts = [
        Part(NameOID.COMMON_NAME, full_name, "full_name", "họ và tên", "the full name"),
        *_unit_parts(placement, "organization"),
        Part(NameOID.LOCALITY_NAME, province, "province", "tỉnh/thành phố", "the province"),
    ]
    if id_number:
        kind = "CCCD" if len(id_number) == 12 else "CMND"
        parts.append(
            Part(
                NameOID.USER_ID,
                f"{kind}:{id_number}",
                "id_number",
                "số CCCD",
                "the identity number",
            )
        )
    return _problems_or_name(parts)


def organization(
    name: str, parent: Organization | None, province: str, tax_code: str | None
) -> tuple[x509.Name | None, list[FieldProblem]]:
    parts = [
        Part(NameOID.COMMON_NAME, name, "name", "tên cơ quan, tổ chức", "the organization's name")
    ]
    if parent is not None:
        parts.append(
            Part(
                NameOID.ORGANIZATION_NAME,
                parent.name,
                "name",
                "tên cơ quan chủ quản trong danh mục",
                "the parent body's name in the registry",
            )
        )
    parts.append(
        Part(NameOID.LOCALITY_NAME, province, "province", "tỉnh/thành phố", "the province")
    )
    if tax_code:
        parts.append(
            Part(NameOID.USER_ID, f"MST:{tax_code}", "tax_code", "mã số thuế", "the tax code")
        )
    return _problems_or_name(parts)


def device(
    service_name: str, unit: Organization, province: str
) -> tuple[x509.Name | None, list[FieldProblem]]:
    parts = [
        Part(
            NameOID.COMMON_NAME,
            service_name,
            "service_name",
            "tên thiết bị, dịch vụ",
            "the service's name",
        ),
        Part(
            NameOID.ORGANIZATION_NAME,
            unit.name,
            "organization",
            "tên đơn vị quản lý trong danh mục",
            "the operating unit's name in the registry",
        ),
        Part(NameOID.LOCALITY_NAME, province, "province", "tỉnh/thành phố", "the province"),
    ]
    return _problems_or_name(parts)
