"""`kyso init --demo`'s registry: the Bắc Kạn tree with the right parents, a few hundred
well-formed subscribers, one user per role, key devices; deterministic but for the secrets."""

from __future__ import annotations

import csv
import stat

import pytest
from sqlalchemy import select

from kyso.demo import UNITS_CSV, load_demo
from kyso.errors import Conflict
from kyso.registry import fields
from kyso.store.models import Organization, Person, Role, User


def test_the_demo_tree_has_every_unit_under_its_parent(registry) -> None:
    with open(UNITS_CSV, encoding="utf-8", newline="") as handle:
        expected = list(csv.DictReader(handle))
    assert len(expected) > 300
    with registry.ctx.db.read() as session:
        units = {o.name: o for o in session.execute(select(Organization)).scalars()}
    by_id = {o.id: o for o in units.values()}
    for row in expected:
        unit = units[row["name"]]
        if row["parent"]:
            parent = by_id[unit.parent_id]
            assert parent.name == row["parent"]
            assert unit.path == f"{parent.path}{unit.id}/"
        else:
            assert unit.parent_id is None and unit.path == f"/{unit.id}/"
    assert units["Trạm Y tế xã Khang Ninh"].kind.value == "health_station"
    assert units["Hội Nông dân tỉnh"].sector.value == "party_front"
    codes = [units[r["name"]].code for r in expected if units[r["name"]].code]
    assert len(codes) == len(set(codes)) >= 300
    assert all(fields.agency_code("code", c) == c for c in codes)
    assert units["UBND tỉnh Bắc Kạn"].code == "000.00.00.H06"


def test_the_demo_has_a_few_hundred_well_formed_subscribers(registry) -> None:
    with registry.ctx.db.read() as session:
        persons = list(session.execute(select(Person)).scalars())
    assert len(persons) >= 300
    positions = {p.position for p in persons}
    for wanted in (
        "Chủ tịch UBND",
        "Phó Chủ tịch UBND",
        "Giám đốc",
        "Hiệu trưởng",
        "Bác sỹ",
        "Văn thư",
        "Chánh Văn phòng",
    ):
        assert wanted in positions
    demo = [p for p in persons if p.id_issue_place and p.id_issue_place.startswith("Cục")]
    assert len(demo) >= 300
    for p in demo:
        assert fields.cccd("id_number", p.id_number, p.date_of_birth) == p.id_number
        assert fields.email("email", p.email) == p.email
        assert fields.mobile("mobile", p.mobile) == p.mobile
        assert len(p.full_name.split()) >= 3
    assert len({p.email for p in demo}) == len(demo)
    assert any("ễ" in p.full_name or "ị" in p.full_name for p in demo)  # diacritics kept


def test_the_demo_users_and_their_credentials_file(registry) -> None:
    data = registry.demo
    assert {(u.username, u.role) for u in data.users} == {
        ("admin", Role.PROVINCE_ADMIN),
        ("auditor", Role.AUDITOR),
        ("babe", Role.UNIT_OFFICER),
        ("signer", Role.SIGNER),
        ("lanhdao", Role.SIGNER),  # signs with a key in the central HSM
        ("vanthu", Role.SIGNER),  # applies the district's central seal
    }
    mode = stat.S_IMODE(data.credentials_file.stat().st_mode)
    assert mode == 0o600
    text = data.credentials_file.read_text(encoding="utf-8")
    for user in data.users:
        assert user.username in text and user.password in text
        assert (user.totp_secret is not None) == (
            user.role in (Role.PROVINCE_ADMIN, Role.AUDITOR) or user.signing_pin is not None
        )
        if user.totp_secret:
            assert user.totp_secret in text
        if user.signing_pin:
            assert user.signing_pin in text
    with registry.ctx.db.read() as session:
        signer = session.execute(select(User).where(User.username == "signer")).scalar_one()
        assert signer.person_id is not None
        admin = session.execute(select(User).where(User.username == "admin")).scalar_one()
        assert admin.password_hash != registry.password("admin")


def test_the_demo_loads_only_into_an_empty_registry(registry) -> None:
    with pytest.raises(Conflict):
        load_demo(registry.ctx, "cli:test")


def test_the_demo_is_deterministic(registry, request) -> None:
    if registry.backend != "sqlite":
        pytest.skip("one backend is enough to compare two loads")
    empty_instance = request.getfixturevalue("empty_instance")
    again = load_demo(empty_instance, "cli:test")
    assert again.people == registry.demo.people
    assert {u.password for u in again.users}.isdisjoint({u.password for u in registry.demo.users})

    def people(ctx) -> set[tuple]:
        with ctx.db.read() as session:
            return set(
                session.execute(
                    select(
                        Person.full_name, Person.id_number, Person.position, Organization.name
                    ).join(Organization, Person.organization_id == Organization.id)
                ).all()
            )

    assert people(empty_instance) <= people(registry.ctx)
