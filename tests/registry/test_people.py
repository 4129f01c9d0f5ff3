"""Subscribers: form-01 fields checked (CCCD, e-mail, mobile), CRUD with optimistic locking."""

from __future__ import annotations

import unicodedata
from datetime import date

import pytest

from kyso.errors import Conflict, InvalidInput, NotFound
from kyso.registry import fields
from kyso.registry import people as ppl
from kyso.registry.access import cli_principal
from registry.conftest import cccd_for

ADMIN = cli_principal("cli:test")


@pytest.mark.parametrize(
    ("value", "born", "ok"),
    [
        ("006085001234", date(1985, 3, 2), True),
        ("006 085 001 234", date(1985, 3, 2), True),  # spaces as printed on the card
        ("001301004321", date(2001, 7, 9), True),  # woman born in the 2000s: digit 3
        ("00608500123", None, False),  # 11 digits
        ("0060850012345", None, False),  # 13 digits
        ("00608500123A", None, False),
        ("123456789", None, False),  # the old 9-digit CMND
        ("003085001234", None, False),  # 003 is no province code
        ("006085001234", date(1986, 1, 1), False),  # encodes 1985
        ("006285001234", date(1985, 1, 1), False),  # digit 2 means born 2000–2099
    ],
)
def test_cccd_is_twelve_digits_with_a_province_code_and_the_year_of_birth(value, born, ok) -> None:
    if ok:
        assert fields.cccd("id_number", value, born) == value.replace(" ", "")
    else:
        with pytest.raises(fields.FieldProblem):
            fields.cccd("id_number", value, born)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0912345678", "0912345678"),
        ("0912 345 678", "0912345678"),
        ("+84 912 345 678", "0912345678"),
        ("84912345678", "0912345678"),
        ("091.234.5678", "0912345678"),
        ("0387654321", "0387654321"),
        ("0212345678", None),  # 02x are landlines
        ("091234567", None),  # 9 digits
        ("09123456789", None),
        ("0912abc678", None),
    ],
)
def test_mobile_numbers_follow_the_vietnamese_plan(value, expected) -> None:
    if expected:
        assert fields.mobile("mobile", value) == expected
    else:
        with pytest.raises(fields.FieldProblem):
            fields.mobile("mobile", value)


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("lan.nt@backan.gov.vn", True),
        ("Lan.NT@BacKan.Gov.VN", True),
        ("lan@localhost", False),
        ("lan.nt@", False),
        ("lan nt@backan.gov.vn", False),
        ("lan..nt@backan.gov.vn", False),
        ("lân@backan.gov.vn", False),  # not an rfc822Name a certificate can carry
    ],
)
def test_official_email_must_fit_a_certificate(value, ok) -> None:
    if ok:
        assert fields.email("email", value).endswith("@backan.gov.vn")
    else:
        with pytest.raises(fields.FieldProblem):
            fields.email("email", value)


def test_every_bad_field_is_reported_at_once(registry) -> None:
    unit = registry.unit("UBND xã Khang Ninh")
    with pytest.raises(InvalidInput) as caught, registry.ctx.db.session() as session:
        ppl.create(
            ADMIN,
            session,
            ppl.PersonInput(
                full_name="  ",
                organization=unit.public_id,
                id_number="12345",
                email="x@",
                mobile="12345",
                date_of_birth=date(2990, 1, 1),
            ),
        )
    text = caught.value.message("en")
    for name in ("full_name", "id_number", "email", "mobile", "date_of_birth"):
        assert name in text
    assert "bắt buộc" in caught.value.message("vi")


def test_person_lifecycle_with_versions(registry) -> None:
    unit = registry.unit("UBND xã Nam Mẫu")
    decomposed = unicodedata.normalize("NFD", "Hoàng Thị Thu Hương")
    number = cccd_for(1990, female=True)
    with registry.ctx.db.session() as session:
        person = ppl.create(
            ADMIN,
            session,
            ppl.PersonInput(
                full_name=decomposed,
                organization=unit.public_id,
                date_of_birth=date(1990, 4, 30),
                id_number=number,
                id_issue_date=date(2022, 5, 1),
                id_issue_place="Cục Cảnh sát quản lý hành chính về trật tự xã hội",
                position="Văn thư",
                email="huonghtt@backan.gov.vn",
                mobile="+84 987 654 321",
            ),
        )
        public_id, version = person.public_id, person.version
    with registry.ctx.db.read() as session:
        stored = ppl.get(ADMIN, session, public_id)
        assert stored.full_name == "Hoàng Thị Thu Hương"  # stored composed (NFC)
        assert stored.mobile == "0987654321"
    with registry.ctx.db.session() as session:
        changed = ppl.update(ADMIN, session, public_id, version, {"position": "Phó Chủ tịch UBND"})
        assert changed.version == version + 1
    with pytest.raises(Conflict), registry.ctx.db.session() as session:
        ppl.update(ADMIN, session, public_id, version, {"position": "Chủ tịch UBND"})
    with pytest.raises(Conflict), registry.ctx.db.session() as session:  # same CCCD twice
        ppl.create(
            ADMIN,
            session,
            ppl.PersonInput(full_name="Người Khác", organization=unit.public_id, id_number=number),
        )
    with registry.ctx.db.session() as session:
        ppl.delete(ADMIN, session, public_id, version + 1)
    with pytest.raises(NotFound), registry.ctx.db.read() as session:
        ppl.get(ADMIN, session, public_id)


def test_search_finds_people_by_name_without_accents_or_by_cccd(registry) -> None:
    person = registry.person_in("UBND xã Khang Ninh")
    with registry.ctx.db.read() as session:
        plain = orgs_fold(person.full_name)
        found = ppl.search(ADMIN, session, q=plain.upper(), limit=500).items
        assert person.id in {p.id for p in found}
        assert [p.id for p in ppl.search(ADMIN, session, q=person.id_number).items] == [person.id]


def orgs_fold(text: str) -> str:
    return fields.fold(text)
