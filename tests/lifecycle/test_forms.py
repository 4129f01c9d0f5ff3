"""The forms' field rules and the subject names built from them."""

from __future__ import annotations

import unicodedata
from datetime import date

import pytest
from cryptography.x509.oid import NameOID

from kyso.errors import InvalidInput
from kyso.lifecycle import forms, subjects
from kyso.store.models import Organization, OrgKind, RequestType, Sector

from .conftest import individual_form, new_cccd


def _unit(name: str, parent: Organization | None = None) -> Organization:
    return Organization(
        id=hash(name) % 10_000,
        name=name,
        kind=OrgKind.OTHER,
        sector=Sector.GOVERNMENT,
        path="/1/",
        public_id="x",
        parent_id=parent.id if parent else None,
    )


def test_form_01_normalizes_what_clerks_and_spreadsheets_write() -> None:
    born = date(1980, 3, 5)
    number = new_cccd(born)
    form = forms.parse(
        RequestType.NEW_INDIVIDUAL,
        individual_form(
            full_name="  " + unicodedata.normalize("NFD", "Nguyễn   Văn An") + " ",  # a Mac's NFD
            date_of_birth="05/03/1980",
            id_number=int(number),
            mobile=912345678,
            email="An.NV@BaBe.BacKan.gov.vn",
        ),
        complete=True,
    )
    assert form.full_name == "Nguyễn Văn An"
    assert unicodedata.is_normalized("NFC", form.full_name)
    assert form.id_number == number  # the leading zeros Excel dropped are back
    assert form.mobile == "0912345678"
    assert form.email == "An.NV@babe.backan.gov.vn"
    assert form.date_of_birth == born


def test_form_problems_name_every_field_at_once() -> None:
    _, problems = forms.check(
        RequestType.NEW_INDIVIDUAL,
        {
            "full_name": "",
            "date_of_birth": "1/13/1980",
            "id_number": "0061234",
            "email": "an@",
            "mobile": "12345",
            "nickname": "An",
        },
        complete=True,
    )
    fields = {p.field for p in problems}
    assert {
        "date_of_birth",
        "id_number",
        "email",
        "mobile",
        "nickname",
        "full_name",
        "id_issue_place",
        "province",
    } <= fields
    with pytest.raises(InvalidInput) as refused:
        forms.parse(RequestType.NEW_INDIVIDUAL, {"id_number": "0061234"}, complete=False)
    assert "12 chữ số" in refused.value.message("vi")


def test_a_revocation_reason_must_be_a_revocation_reason() -> None:
    _, problems = forms.check(
        RequestType.REVOCATION,
        {"certificate_serial": "5f:83:16", "reason": "certificate-hold", "explanation": "x"},
        complete=True,
    )
    assert [p.field for p in problems] == ["reason"]
    form = forms.parse(
        RequestType.REVOCATION,
        {"certificate_serial": "5F:83:16", "reason": "key-compromise", "explanation": "mất"},
        complete=True,
    )
    assert form.certificate_serial == "5f8316"


def test_an_individual_subject_is_built_in_the_government_cas_order() -> None:
    district = _unit("UBND huyện Ba Bể")
    unit = _unit("Phòng Tài nguyên và Môi trường", district)
    name, problems = subjects.individual(
        "Hoàng Thị Mai", subjects.Placement(unit, district), "Bắc Kạn", "006178123456"
    )
    assert problems == [] and name is not None
    assert [a.oid for a in name] == [
        NameOID.COUNTRY_NAME,
        NameOID.LOCALITY_NAME,
        NameOID.ORGANIZATION_NAME,
        NameOID.ORGANIZATIONAL_UNIT_NAME,
        NameOID.COMMON_NAME,
        NameOID.USER_ID,
    ]
    assert name.get_attributes_for_oid(NameOID.USER_ID)[0].value == "CCCD:006178123456"
    assert name.get_attributes_for_oid(NameOID.COMMON_NAME)[0]._type.name == "UTF8String"


def test_names_over_rfc_5280_limits_are_refused_never_truncated() -> None:
    parent = _unit("Văn phòng Đoàn đại biểu Quốc hội và Hội đồng nhân dân tỉnh Bắc Kạn")
    unit = _unit("Phòng Hành chính")
    name, problems = subjects.individual(
        "Hoàng Thị Mai", subjects.Placement(unit, parent), "Bắc Kạn", None
    )
    assert name is None
    [problem] = problems
    assert problem.field == "organization"
    assert problem.en.startswith("O (the parent body's name in the registry 'Văn phòng Đoàn")
    assert "is 66 characters; RFC 5280 allows at most 64" in problem.en
    _, problems = subjects.organization("A" * 65, None, "Bắc Kạn", "4700123456")
    assert [p.field for p in problems] == ["name"]
