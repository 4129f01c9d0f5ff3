"""What the units, subscribers and devices pages read, decided by the registry with the
viewer's principal (kyso.registry.directory, organizations, people, devices, inventory): the
pages only show it. A district officer (Ba Bể) browses Ba Bể and its communes; a commune's
signer sees their commune's units but none of its people; the auditor reads and changes
nothing."""

from __future__ import annotations

import secrets

import pytest

from kyso.errors import Forbidden
from kyso.registry import devices, directory, inventory, people
from kyso.registry import organizations as orgs
from kyso.registry.access import Action, cli_principal
from kyso.store.models import DeviceKind, OrgKind, Sector
from registry.conftest import new_code

ADMIN = cli_principal("cli:test")
EM = "\u2003"


def test_an_officer_browses_from_their_own_unit_and_chooses_among_its_units_only(
    registry,
) -> None:
    officer = registry.principal("babe")
    ba_be, khang_ninh = registry.unit("UBND huyện Ba Bể"), registry.unit("UBND xã Khang Ninh")
    cho_don = registry.unit("UBND huyện Chợ Đồn")
    with registry.ctx.db.read() as session:
        assert [o.id for o in directory.roots(officer, session)] == [ba_be.id]
        (branch,) = directory.browse(officer, session, limit=100)
        assert branch.root.org.id == ba_be.id
        assert khang_ninh.id in {row.org.id for row in branch.rows}
        assert all(row.org.parent_id == ba_be.id for row in branch.rows)

        choices = dict(orgs.choices_in_view(officer, session))
        assert choices[ba_be.public_id] == ba_be.name  # the top of the view, not indented
        assert choices[khang_ninh.public_id] == EM + khang_ninh.name
        assert cho_don.public_id not in choices
        assert cho_don.public_id in dict(orgs.choices_in_view(ADMIN, session))


def test_a_unit_page_shows_people_only_to_who_reads_them_and_offers_only_allowed_changes(
    registry,
) -> None:
    khang_ninh = registry.unit("UBND xã Khang Ninh")
    with registry.ctx.db.read() as session:
        signer = directory.unit(registry.principal("signer"), session, khang_ninh.public_id)
        assert signer.members == [] and signer.members_total == 0
        assert signer.subtree_people is None
        assert signer.row.certificates is not None  # a signer reads certificates
        assert not signer.may_write and not signer.may_add_person

        officer = directory.unit(registry.principal("babe"), session, khang_ninh.public_id)
        assert officer.members and officer.members_total >= len(officer.members)
        assert officer.subtree_people is not None
        assert officer.subtree_people >= officer.members_total
        assert [crumb.name for crumb, _ in officer.trail][-1] == "UBND huyện Ba Bể"
        assert not officer.may_write  # units are the province's to change
        assert officer.may_add_person

        auditor = directory.unit(registry.principal("auditor"), session, khang_ninh.public_id)
        assert auditor.members_total == officer.members_total
        assert not auditor.may_write and not auditor.may_add_person

        with pytest.raises(Forbidden):
            directory.unit(
                registry.principal("babe"), session, registry.unit("UBND huyện Chợ Đồn").public_id
            )


def test_a_breadcrumb_above_an_officers_unit_is_named_but_not_opened(registry) -> None:
    khang_ninh = registry.unit("UBND xã Khang Ninh")
    with registry.ctx.db.read() as session:
        trail = orgs.trail(registry.principal("babe"), session, khang_ninh)
    assert [(unit.name, may_open) for unit, may_open in trail] == [
        ("UBND tỉnh Bắc Kạn", False),
        ("UBND huyện Ba Bể", True),
    ]


def test_an_agency_code_finds_its_unit_first_but_never_one_outside_the_view(registry) -> None:
    code = new_code()
    with registry.ctx.db.session() as session:
        hidden = orgs.create(
            ADMIN,
            session,
            orgs.OrgInput(
                name=f"Phòng Thử {secrets.token_hex(3)}",
                kind=OrgKind.OTHER,
                sector=Sector.GOVERNMENT,
                parent=registry.unit("UBND huyện Chợ Đồn").public_id,
                code=code,
            ),
        )
    with registry.ctx.db.read() as session:
        found = directory.search(ADMIN, session, q=code.lower())
        assert [row.org.id for row in found.rows] == [hidden.id] and found.total == 1
        assert [a.name for a in found.rows[0].trail] == ["UBND tỉnh Bắc Kạn", "UBND huyện Chợ Đồn"]
        outside = directory.search(registry.principal("babe"), session, q=code)
        assert outside.rows == [] and outside.total == 0
        # A filter the unit does not match keeps it out, code or not.
        assert directory.search(ADMIN, session, q=code, kind=OrgKind.SCHOOL).total == 0


def test_what_a_viewer_may_change_is_checked_when_the_record_is_read(registry) -> None:
    officer, auditor = registry.principal("babe"), registry.principal("auditor")
    khang_ninh = registry.unit("UBND xã Khang Ninh")
    person = registry.person_in("UBND xã Khang Ninh")
    with registry.ctx.db.read() as session:
        assert orgs.get(officer, session, khang_ninh.public_id, Action.PERSON_WRITE)
        with pytest.raises(Forbidden):
            orgs.get(officer, session, khang_ninh.public_id, Action.ORG_WRITE)
        with pytest.raises(Forbidden):
            orgs.get(auditor, session, khang_ninh.public_id, Action.PERSON_WRITE)
        unit, parent = orgs.get_with_parent(officer, session, khang_ninh.public_id)
        assert unit.id == khang_ninh.id and parent is not None and parent.name == "UBND huyện Ba Bể"

        found, its_unit = people.get_with_unit(
            officer, session, person.public_id, Action.PERSON_WRITE
        )
        assert found.id == person.id and its_unit.id == khang_ninh.id
        with pytest.raises(Forbidden):
            people.get_with_unit(auditor, session, person.public_id, Action.PERSON_WRITE)


def test_a_person_page_shows_certificates_and_devices_to_who_reads_them(registry) -> None:
    person = registry.person_in("UBND xã Khang Ninh")
    with registry.ctx.db.read() as session:
        officer = people.detail(registry.principal("babe"), session, person.public_id)
        assert officer.unit.name == "UBND xã Khang Ninh"
        assert officer.certificates is not None and officer.devices is not None
        assert officer.may_write
        auditor = people.detail(registry.principal("auditor"), session, person.public_id)
        assert auditor.certificates is not None and not auditor.may_write
        with pytest.raises(Forbidden):  # a signer reads no subscriber, not even a neighbour
            people.detail(registry.principal("signer"), session, person.public_id)
        with pytest.raises(Forbidden):
            people.detail(
                registry.principal("babe"),
                session,
                registry.person_in("UBND xã Bằng Lãng").public_id,
            )


def _device(registry, unit: str):
    with registry.ctx.db.session() as session:
        return devices.add(
            ADMIN,
            session,
            devices.DeviceInput(
                serial=f"T-{secrets.token_hex(5)}",
                model="ePass2003",
                kind=DeviceKind.USB_TOKEN,
                unit=registry.unit(unit).public_id,
            ),
        )


def test_a_new_device_goes_to_the_officers_unit_or_to_the_province_stock(registry) -> None:
    with registry.ctx.db.read() as session:
        own = devices.home_unit(registry.principal("babe"), session)
        assert own is not None and own.name == "UBND huyện Ba Bể"
        assert devices.home_unit(ADMIN, session) is None
        with pytest.raises(Forbidden):
            devices.home_unit(registry.principal("auditor"), session)


def test_a_device_is_handed_only_to_people_in_view_even_one_chosen_before(registry) -> None:
    device = _device(registry, "UBND xã Khang Ninh")
    officer = registry.principal("babe")
    neighbour = registry.person_in("UBND xã Khang Ninh")
    elsewhere = registry.person_in("UBND xã Bằng Lãng")
    with registry.ctx.db.read() as session:
        offered = inventory.recipients(officer, session, device.public_id, keep=elsewhere.public_id)
        ids = {p.id for p, _ in offered.people}
        assert neighbour.id in ids and elsewhere.id not in ids
        assert dict((p.id, name) for p, name in offered.people)[neighbour.id] == (
            "UBND xã Khang Ninh"
        )
        kept = inventory.recipients(
            ADMIN, session, device.public_id, q="không ai tên thế này", keep=elsewhere.public_id
        )
        assert [p.id for p, _ in kept.people] == [elsewhere.id]
        shown = devices.detail(officer, session, device.public_id, pin_days=180)
        assert shown.unit is not None and shown.unit.id == device.organization_id
        assert shown.holder is None and not shown.pin_overdue
        with pytest.raises(Forbidden):  # a signer has no view of the inventory
            devices.detail(registry.principal("signer"), session, device.public_id, pin_days=180)
