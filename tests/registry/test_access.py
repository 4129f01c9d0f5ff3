"""Who may do what, where: a district's officer stays in the district, the auditor changes
nothing, only the province administers users."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest
from sqlalchemy import func, select

from kyso.errors import Forbidden
from kyso.registry import devices, minutes, spreadsheets, users
from kyso.registry import organizations as orgs
from kyso.registry import people as ppl
from kyso.registry.access import Principal, cli_principal, visible
from kyso.store.models import (
    DeviceHandover,
    DeviceStatus,
    KeyDevice,
    Organization,
    OrgKind,
    Person,
    Role,
    Sector,
)

ADMIN = cli_principal("cli:test")


def test_a_district_officer_sees_its_communes_people_but_no_other_district(registry) -> None:
    officer = registry.principal("babe")
    ba_be = registry.unit("UBND huyện Ba Bể")
    khang_ninh_person = registry.person_in("UBND xã Khang Ninh")
    cho_don_person = registry.person_in("UBND xã Bằng Lãng")
    with registry.ctx.db.read() as session:
        assert ppl.get(officer, session, khang_ninh_person.public_id).id == khang_ninh_person.id
        with pytest.raises(Forbidden):
            ppl.get(officer, session, cho_don_person.public_id)
        seen = ppl.search(officer, session, limit=500)
        everyone = ppl.search(ADMIN, session, limit=5000)
        assert 0 < seen.total < everyone.total
        units = {p.organization_id for p in seen.items}
        paths = {
            row.id: row.path
            for row in session.execute(
                select(orgs.Organization.id, orgs.Organization.path).where(
                    orgs.Organization.id.in_(units)
                )
            )
        }
        assert all(path.startswith(ba_be.path) for path in paths.values())
        assert khang_ninh_person.id in {p.id for p in seen.items}
        assert cho_don_person.id not in {p.id for p in seen.items}
        with pytest.raises(Forbidden):
            ppl.search(officer, session, under=registry.unit("UBND huyện Chợ Đồn").public_id)
        unit_names = {o.name for o in orgs.search(officer, session, limit=500).items}
        assert "UBND xã Khang Ninh" in unit_names and "UBND xã Bằng Lãng" not in unit_names
        exported = spreadsheets.export_people(officer, session, spreadsheets.Format.CSV)
        text = exported.decode("utf-8-sig")
        assert khang_ninh_person.full_name in text
        assert cho_don_person.id_number not in text


def test_a_unit_officer_cannot_create_units_nor_see_users(registry) -> None:
    officer = registry.principal("babe")
    ba_be = registry.unit("UBND huyện Ba Bể")
    with pytest.raises(Forbidden), registry.ctx.db.session() as session:
        orgs.create(
            officer,
            session,
            orgs.OrgInput(
                name="Phòng mới",
                kind=OrgKind.DEPARTMENT,
                sector=Sector.GOVERNMENT,
                parent=ba_be.public_id,
            ),
        )
    with pytest.raises(Forbidden), registry.ctx.db.read() as session:
        users.search(officer, session)
    with pytest.raises(Forbidden), registry.ctx.db.session() as session:
        users.create(
            officer,
            session,
            users.UserInput(
                username="xin.quyen",
                full_name="X",
                password="Mot-mat-khau-dai",
                role=Role.SIGNER,
                unit=ba_be.public_id,
            ),
        )
    with registry.ctx.db.read() as session:
        admin_user = users.by_username(session, "admin")
        assert admin_user is not None
        with pytest.raises(Forbidden):
            users.get(officer, session, admin_user.public_id)


def test_a_unit_officer_manages_people_of_its_communes_only(registry) -> None:
    officer = registry.principal("babe")
    with registry.ctx.db.session() as session:
        made = ppl.create(
            officer,
            session,
            ppl.PersonInput(
                full_name="Lường Văn Kiên",
                organization=registry.unit("UBND xã Khang Ninh").public_id,
                date_of_birth=date(1988, 8, 8),
                position="Văn thư",
            ),
        )
        assert made.public_id
    with pytest.raises(Forbidden), registry.ctx.db.session() as session:
        ppl.create(
            officer,
            session,
            ppl.PersonInput(
                full_name="Lường Văn Kiên",
                organization=registry.unit("UBND xã Bằng Lãng").public_id,
            ),
        )


def _auditor_writes(registry) -> list[tuple[str, Callable]]:
    province = registry.unit("UBND tỉnh Bắc Kạn")
    unit = registry.unit("UBND xã Khang Ninh")
    person = registry.person_in("UBND xã Khang Ninh")
    with registry.ctx.db.read() as session:
        device = session.execute(
            select(KeyDevice).where(KeyDevice.status == DeviceStatus.IN_STOCK).limit(1)
        ).scalar_one()
        issued = session.execute(
            select(KeyDevice).where(KeyDevice.status == DeviceStatus.ISSUED).limit(1)
        ).scalar_one()
        signer = users.by_username(session, "signer")
        assert signer is not None
    xlsx_org = spreadsheets._xlsx(
        spreadsheets.ORG_SHEET,
        spreadsheets.ORG_COLUMNS,
        [[1, "Sở Kiểm toán", None, province.code, "Sở, ban, ngành", "Chính quyền"]],
    )
    xlsx_person = spreadsheets._xlsx(
        spreadsheets.PERSON_SHEET,
        spreadsheets.PERSON_COLUMNS,
        [[1, "Hà Thị Mai", None, None, None, None, None, unit.code]],
    )
    org_in = orgs.OrgInput(
        name="Sở mới", kind=OrgKind.DEPARTMENT, sector=Sector.GOVERNMENT, parent=province.public_id
    )
    return [
        ("org.create", lambda p, s: orgs.create(p, s, org_in)),
        (
            "org.update",
            lambda p, s: orgs.update(p, s, unit.public_id, unit.version, {"address": "x"}),
        ),
        ("org.import", lambda p, s: spreadsheets.import_organizations(p, s, xlsx_org)),
        (
            "person.create",
            lambda p, s: ppl.create(
                p, s, ppl.PersonInput(full_name="Hà Thị Mai", organization=unit.public_id)
            ),
        ),
        (
            "person.update",
            lambda p, s: ppl.update(p, s, person.public_id, person.version, {"position": "x"}),
        ),
        ("person.delete", lambda p, s: ppl.delete(p, s, person.public_id, person.version)),
        ("person.import", lambda p, s: spreadsheets.import_people(p, s, xlsx_person)),
        ("device.add", lambda p, s: devices.add(p, s, devices.DeviceInput("AUD-1", "x"))),
        (
            "device.handover",
            lambda p, s: devices.handover(p, s, device.public_id, person.public_id),
        ),
        (
            "device.status",
            lambda p, s: devices.set_status(p, s, issued.public_id, DeviceStatus.LOCKED),
        ),
        ("device.pin", lambda p, s: devices.record_pin_change(p, s, issued.public_id)),
        ("device.lost", lambda p, s: devices.mark_lost(p, s, issued.public_id)),
        ("device.return", lambda p, s: devices.take_back(p, s, issued.public_id)),
        (
            "user.create",
            lambda p, s: users.create(
                p,
                s,
                users.UserInput(
                    username="kiem.toan",
                    full_name="X",
                    password="Mot-mat-khau-dai",
                    role=Role.SIGNER,
                    unit=unit.public_id,
                ),
            ),
        ),
        ("user.deactivate", lambda p, s: users.deactivate(p, s, signer.public_id)),
        (
            "user.reset",
            lambda p, s: users.reset_password(p, s, signer.public_id, "Mot-mat-khau-dai"),
        ),
        ("user.totp", lambda p, s: users.enrol_totp(p, s, signer.public_id)),
    ]


def test_the_auditor_changes_nothing(registry) -> None:
    auditor = registry.principal("auditor")
    refused = []
    for name, write in _auditor_writes(registry):
        try:
            with registry.ctx.db.session() as session:
                write(auditor, session)
        except Forbidden:
            refused.append(name)
    assert refused == [name for name, _ in _auditor_writes(registry)]


def test_the_auditor_reads_everything(registry) -> None:
    auditor = registry.principal("auditor")
    with registry.ctx.db.read() as session:
        assert ppl.search(auditor, session, limit=1).total >= 700
        assert orgs.search(auditor, session, limit=1).total >= 385
        assert devices.search(auditor, session, limit=1).total >= 40
        handover = session.execute(select(DeviceHandover).limit(1)).scalar_one()
        assert minutes.handover_pdf(auditor, session, handover.public_id).startswith(b"%PDF")
        assert spreadsheets.export_organizations(auditor, session, spreadsheets.Format.CSV)


def test_a_signer_reads_no_registry_of_people(registry) -> None:
    signer = registry.principal("signer")
    with registry.ctx.db.read() as session:
        with pytest.raises(Forbidden):
            ppl.search(signer, session)
        with pytest.raises(Forbidden):
            devices.search(signer, session)
        person = session.execute(select(Person).limit(1)).scalar_one()
        with pytest.raises(Forbidden):
            ppl.get(signer, session, person.public_id)


def test_a_unit_role_without_a_unit_sees_nothing_rather_than_everything(registry) -> None:
    """Fail closed: a unit officer or signer whose unit is missing is not province-wide."""
    for role in (Role.UNIT_OFFICER, Role.SIGNER):
        lost = Principal(actor="user:x", role=role, user_id=1, org_path=None)
        assert not lost.province_wide
        assert not lost.covers("/1/")
        with registry.ctx.db.read() as session:
            seen = session.scalar(
                select(func.count())
                .select_from(Organization)
                .where(visible(lost, Organization.path))
            )
        assert seen == 0
    admin = Principal(actor="user:y", role=Role.PROVINCE_ADMIN, org_path=None)
    assert admin.province_wide and admin.covers("/1/")
