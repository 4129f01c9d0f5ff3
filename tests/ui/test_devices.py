"""Key device pages: the inventory in each role's view, adding a device, hand-over with its
printable minutes, PIN changes, and "report lost" revoking everything on the token."""

from __future__ import annotations

import re
import secrets
import shutil
import subprocess
from collections.abc import Callable
from datetime import date, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select
from support.world import World, individual_form, make_csr, new_cccd

from kyso import clock
from kyso.lifecycle import workflow
from kyso.lifecycle.workflow import NewRequest
from kyso.registry import devices, people, users
from kyso.registry.access import cli_principal
from kyso.store.models import (
    Certificate,
    CertStatus,
    DeviceKind,
    DeviceStatus,
    KeyDevice,
    Person,
    RequestType,
    RevocationReason,
    Role,
    User,
)

from .conftest import Web

CLI = cli_principal("cli:test")


def _device(world: World, unit: str | None = "babe", serial: str | None = None) -> KeyDevice:
    with world.ctx.db.session() as session:
        return devices.add(
            CLI,
            session,
            devices.DeviceInput(
                serial=serial or f"TK-{secrets.token_hex(5).upper()}",
                model="ePass2003",
                unit=world.unit(unit).public_id if unit else None,
            ),
        )


def _person(world: World, unit: str = "babe", name: str = "Hoàng Thị Mai") -> Person:
    with world.ctx.db.session() as session:
        return people.create(
            CLI,
            session,
            people.PersonInput(
                full_name=name,
                organization=world.unit(unit).public_id,
                date_of_birth=date(1980, 5, 17),
                id_number=new_cccd(date(1980, 5, 17), female=True),
                position="Chuyên viên",
            ),
        )


def _handed_over(world: World, unit: str, name: str, days_ago: int = 0) -> KeyDevice:
    device = _device(world, unit)
    holder = _person(world, unit, name)
    with world.ctx.db.session() as session:
        devices.handover(
            CLI,
            session,
            device.public_id,
            holder.public_id,
            at=clock.now() - timedelta(days=days_ago),
        )
    return device


def _stored(world: World, public_id: str) -> KeyDevice:
    with world.ctx.db.read() as session:
        return session.execute(
            select(KeyDevice).where(KeyDevice.public_id == public_id)
        ).scalar_one()


def _token_with_a_certificate(world: World) -> tuple[KeyDevice, str]:
    """A token in Ba Bể holding a certificate issued through the whole workflow."""
    device = _device(world, "babe")
    with world.ctx.db.session() as session:
        request = workflow.create(
            world.who("officer"),
            session,
            world.ctx.settings,
            NewRequest(
                RequestType.NEW_INDIVIDUAL,
                individual_form(full_name="Ma Văn Tín"),
                csr=make_csr(),
                device=device.public_id,
            ),
        )
        workflow.submit(world.who("officer"), session, world.ctx.settings, request.public_id)
        workflow.approve(world.who("admin1"), session, world.ctx.authority, request.public_id)
        workflow.hand_over(world.who("officer"), session, world.ctx.authority, request.public_id)
        serial = session.get(Certificate, request.certificate_id).serial
    return device, serial


def _field_error(html: str, field: str) -> str:
    found = re.search(rf'<p class="error" id="e-{field}">([^<]+)</p>', html)
    assert found, f"no error next to {field}"
    return found.group(1)


# -- the inventory ---------------------------------------------------------------------------------
def test_the_inventory_shows_each_role_only_its_own_units_devices(
    world: World, web_for: Callable[..., Web]
) -> None:
    babe = _handed_over(world, "babe", "Triệu Thị Hoa")
    ngan = _device(world, "nganson")
    central = _device(world, None)

    admin = web_for("admin1").get("/devices?q=TK-")
    assert admin.status_code == 200
    assert {babe.serial, ngan.serial, central.serial} <= set(
        re.findall(r"TK-[0-9A-F]+", admin.text)
    )
    assert "Triệu Thị Hoa" in admin.text and "Kho của tỉnh" in admin.text

    officer_ns = web_for("officer_ns")
    page = officer_ns.get("/devices")
    assert page.status_code == 200
    assert ngan.serial in page.text
    assert babe.serial not in page.text and central.serial not in page.text
    assert officer_ns.get(f"/devices/{babe.public_id}").status_code == 403
    assert officer_ns.get(f"/devices/{central.public_id}").status_code == 403
    # searching for the other district's serial finds nothing either
    search = officer_ns.get(f"/devices?q={babe.serial}").text
    assert f'href="/devices/{babe.public_id}"' not in search and "Triệu Thị Hoa" not in search

    officer = web_for("officer")
    mine = officer.get(f"/devices/{babe.public_id}")
    assert mine.status_code == 200
    assert "Triệu Thị Hoa" in mine.text and "UBND huyện Ba Bể" in mine.text
    assert officer.get(f"/devices/{ngan.public_id}").status_code == 403


def test_the_inventory_filters_by_status_kind_unit_and_holder_name(
    world: World, web_for: Callable[..., Web]
) -> None:
    held = _handed_over(world, "chuhuong", "Nông Văn Thắng")
    stock = _device(world, "tnmt")
    with world.ctx.db.session() as session:
        hsm = devices.add(
            CLI,
            session,
            devices.DeviceInput(
                serial=f"HSM-{secrets.token_hex(4)}",
                model="Thales Luna 7",
                kind=DeviceKind.HSM_SLOT,
                unit=world.unit("babe").public_id,
            ),
        )
    officer = web_for("officer")

    issued = officer.get("/devices?status=issued").text
    assert held.serial in issued and stock.serial not in issued
    slots = officer.get("/devices?kind=hsm_slot").text
    assert hsm.serial in slots and held.serial not in slots and stock.serial not in slots
    in_tnmt = officer.get(f"/devices?unit={world.unit('tnmt').public_id}").text
    assert stock.serial in in_tnmt and held.serial not in in_tnmt
    by_name = officer.get("/devices", params={"q": "Văn Thắng"}).text
    assert held.serial in by_name and stock.serial not in by_name
    # a unit outside the officer's view is refused by the registry
    outside = officer.get(f"/devices?unit={world.unit('nganson').public_id}")
    assert outside.status_code == 403


def test_pin_overdue_lists_only_holders_past_the_policy(
    world: World, web_for: Callable[..., Web]
) -> None:
    days = world.ctx.settings.pin_change_days
    never_changed = _handed_over(world, "babe", "Lục Văn Cũ", days_ago=days + 20)
    changed_long_ago = _handed_over(world, "tnmt", "Đinh Thị Lâu", days_ago=days + 60)
    recent = _handed_over(world, "babe", "Hà Thị Mới", days_ago=days + 60)
    with world.ctx.db.session() as session:
        devices.record_pin_change(
            CLI, session, changed_long_ago.public_id, at=clock.now() - timedelta(days=days + 5)
        )
        devices.record_pin_change(
            CLI, session, recent.public_id, at=clock.now() - timedelta(days=3)
        )
    fresh = _handed_over(world, "babe", "Vi Văn Trẻ", days_ago=2)

    officer = web_for("officer")
    overdue = officer.get("/devices?pin_overdue=1")
    assert overdue.status_code == 200
    serials = re.findall(r"TK-[0-9A-F]+", overdue.text)
    assert never_changed.serial in serials and changed_long_ago.serial in serials
    assert recent.serial not in serials and fresh.serial not in serials
    # longest overdue first: the hand-over 20 days past the limit before the change 5 days past
    assert serials.index(never_changed.serial) < serials.index(changed_long_ago.serial)
    assert "Lục Văn Cũ" in overdue.text
    everything = officer.get("/devices").text
    assert recent.serial in everything and fresh.serial in everything
    # the officer of Ngân Sơn sees none of Ba Bể's overdue holders
    other = web_for("officer_ns").get("/devices?pin_overdue=1").text
    assert never_changed.serial not in other and changed_long_ago.serial not in other


# -- adding a device -------------------------------------------------------------------------------
def test_an_officer_adds_a_device_to_the_inventory(
    world: World, web_for: Callable[..., Web]
) -> None:
    officer = web_for("officer")
    form = officer.get("/devices/new")
    assert form.status_code == 200 and 'name="serial"' in form.text
    serial = f"TK-{secrets.token_hex(5).upper()}"
    answer = officer.post(
        "/devices/new",
        {
            "serial": serial,
            "model": "SafeNet eToken 5110",
            "kind": "usb_token",
            "unit": world.unit("chuhuong").public_id,
        },
    )
    assert answer.status_code == 303
    with world.ctx.db.read() as session:
        device = session.execute(select(KeyDevice).where(KeyDevice.serial == serial)).scalar_one()
        assert device.model == "SafeNet eToken 5110"
        assert device.status is DeviceStatus.IN_STOCK
        assert device.organization_id == world.unit("chuhuong").id
    assert answer.headers["location"] == f"/devices/{device.public_id}"
    shown = officer.get(answer.headers["location"])
    assert "SafeNet eToken 5110" in shown.text and "UBND xã Chu Hương" in shown.text


def test_adding_a_device_refuses_a_known_serial_and_an_empty_model_next_to_the_field(
    world: World, web_for: Callable[..., Web]
) -> None:
    existing = _device(world, "babe")
    officer = web_for("officer")
    unit = world.unit("babe").public_id

    duplicate = officer.post(
        "/devices/new",
        {"serial": existing.serial, "model": "ePass2003", "kind": "usb_token", "unit": unit},
    )
    assert duplicate.status_code == 422
    assert "đã có trong danh sách" in _field_error(duplicate.text, "serial")
    assert f'value="{existing.serial}"' in duplicate.text  # what was typed is kept

    serial = f"TK-{secrets.token_hex(5).upper()}"
    empty = officer.post(
        "/devices/new", {"serial": serial, "model": "  ", "kind": "usb_token", "unit": unit}
    )
    assert empty.status_code == 422
    assert "bắt buộc" in _field_error(empty.text, "model")
    assert f'value="{serial}"' in empty.text
    bad_kind = officer.post(
        "/devices/new", {"serial": serial, "model": "x", "kind": "floppy", "unit": unit}
    )
    assert bad_kind.status_code == 422 and _field_error(bad_kind.text, "kind")
    with world.ctx.db.read() as session:
        assert session.execute(select(KeyDevice).where(KeyDevice.serial == serial)).first() is None


# -- hand-over and the minutes ---------------------------------------------------------------------
def _pdf_text(data: bytes) -> str:
    from io import BytesIO

    from pdfminer.high_level import extract_text

    return extract_text(BytesIO(data))


def test_a_hand_over_offers_printable_minutes_with_the_holders_vietnamese_name(
    world: World, web_for: Callable[..., Web]
) -> None:
    device = _device(world, "babe")
    holder = _person(world, "tnmt", "Nguyễn Thị Ngọc Ánh")
    officer = web_for("officer")

    form = officer.get(f"/devices/{device.public_id}/handover")
    assert form.status_code == 200 and "Nguyễn Thị Ngọc Ánh" in form.text
    missing = officer.post(f"/devices/{device.public_id}/handover", {"person": ""})
    assert missing.status_code == 422 and _field_error(missing.text, "person")

    done = officer.post(
        f"/devices/{device.public_id}/handover",
        {"person": holder.public_id, "from_name": "Lý Văn Cán", "note": "Kèm phong bì PIN"},
    )
    assert done.status_code == 303
    reference = parse_qs(urlsplit(done.headers["location"]).query)["minutes"][0]
    stored = _stored(world, device.public_id)
    assert stored.status is DeviceStatus.ISSUED and stored.holder_person_id == holder.id
    assert stored.organization_id == world.unit("tnmt").id

    page = officer.get(done.headers["location"])
    link = f"/devices/handovers/{reference}/minutes.pdf"
    assert page.status_code == 200 and link in page.text
    assert "Biên bản bàn giao" in page.text and "Tải biên bản bàn giao (PDF)" in page.text

    pdf = officer.get(link)
    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF-")
    text = _pdf_text(pdf.content)
    assert "Nguyễn Thị Ngọc Ánh" in text
    assert "BIÊN BẢN BÀN GIAO" in text and device.serial in text

    # handing it again to the same holder is refused with the reason, nothing recorded
    again = officer.post(f"/devices/{device.public_id}/handover", {"person": holder.public_id})
    assert again.status_code == 409 and "đang giữ" in again.text
    # another district's officer cannot read the minutes
    assert web_for("officer_ns").get(link).status_code == 403


def test_minutes_are_readable_by_pdftotext_too(world: World, web_for: Callable[..., Web]) -> None:
    if shutil.which("pdftotext") is None:
        pytest.skip("poppler-utils (pdftotext) is not installed")
    device = _handed_over(world, "babe", "Đàm Thị Hương")
    officer = web_for("officer")
    page = officer.get(f"/devices/{device.public_id}")
    link = re.search(r"/devices/handovers/[A-Za-z0-9_-]+/minutes\.pdf", page.text).group(0)
    out = subprocess.run(
        ["pdftotext", "-enc", "UTF-8", "-", "-"],
        input=officer.get(link).content,
        capture_output=True,
        check=True,
    ).stdout.decode()
    assert "Đàm Thị Hương" in out


def test_taking_a_device_back_and_recording_a_pin_change(
    world: World, web_for: Callable[..., Web]
) -> None:
    device = _handed_over(world, "babe", "Bế Văn Đông")
    officer = web_for("officer")

    future = (clock.local(clock.now()).date() + timedelta(days=3)).isoformat()
    refused = officer.post(f"/devices/{device.public_id}/pin", {"at": future})
    assert refused.status_code == 422 and "tương lai" in _field_error(refused.text, "at")
    assert _stored(world, device.public_id).last_pin_change_at is None
    garbage = officer.post(f"/devices/{device.public_id}/pin", {"at": "31/02/2026"})
    assert garbage.status_code == 422 and _field_error(garbage.text, "at")

    recorded = officer.post(f"/devices/{device.public_id}/pin", {"at": ""})
    assert recorded.status_code == 303
    assert _stored(world, device.public_id).last_pin_change_at is not None

    back = officer.post(
        f"/devices/{device.public_id}/return", {"received_by": "Lý Văn Cán", "return_note": ""}
    )
    assert back.status_code == 303 and "minutes=" in back.headers["location"]
    stored = _stored(world, device.public_id)
    assert stored.status is DeviceStatus.RETURNED and stored.holder_person_id is None
    # a returned device has no PIN to record: refused with the reason on the page
    late = officer.post(f"/devices/{device.public_id}/pin", {"at": ""})
    assert late.status_code == 409 and "không ở trạng thái đã cấp phát" in late.text


# -- report lost -----------------------------------------------------------------------------------
def test_reporting_a_device_lost_revokes_every_certificate_on_it(
    world: World, web_for: Callable[..., Web]
) -> None:
    device, serial = _token_with_a_certificate(world)
    officer = web_for("officer")
    page = officer.get(f"/devices/{device.public_id}")
    assert page.status_code == 200 and serial in page.text
    confirm = re.search(r'action="/devices/[^"]+/lost" data-confirm="([^"]+)"', page.text)
    assert confirm and "thu hồi" in confirm.group(1) and "không thể ký" in confirm.group(1)

    answer = officer.post(f"/devices/{device.public_id}/lost", {"lost_note": "mất trên xe khách"})
    assert answer.status_code == 303
    with world.ctx.db.read() as session:
        assert session.get(KeyDevice, device.id).status is DeviceStatus.LOST
        cert = session.execute(select(Certificate).where(Certificate.serial == serial)).scalar_one()
        assert cert.status is CertStatus.REVOKED
        assert cert.reason is RevocationReason.KEY_COMPROMISE
    after = officer.get(answer.headers["location"])
    assert "Bị mất" in after.text or "Đã mất" in after.text
    # the button is gone, and a second report is refused with the reason
    assert 'action="/devices/' + device.public_id + '/lost"' not in after.text
    again = officer.post(f"/devices/{device.public_id}/lost", {})
    assert again.status_code == 409


def test_another_districts_officer_cannot_report_the_device_lost(
    world: World, web_for: Callable[..., Web]
) -> None:
    device = _handed_over(world, "babe", "Hoàng Văn Nam")
    answer = web_for("officer_ns").post(f"/devices/{device.public_id}/lost", {})
    assert answer.status_code == 403
    assert _stored(world, device.public_id).status is DeviceStatus.ISSUED


# -- who may post, and what a browser can send -----------------------------------------------------
def test_the_auditor_reads_but_cannot_change_anything(
    world: World, web_for: Callable[..., Web]
) -> None:
    device = _handed_over(world, "babe", "Lưu Thị Xem")
    holder = _person(world, "babe", "Mạc Văn Nhận")
    auditor = web_for("auditor")
    page = auditor.get(f"/devices/{device.public_id}")
    assert page.status_code == 200
    assert f'action="/devices/{device.public_id}/lost"' not in page.text
    assert f'href="/devices/{device.public_id}/handover"' not in page.text
    assert f'action="/devices/{device.public_id}/pin"' not in page.text
    assert auditor.get("/devices/new").status_code == 403
    serial = f"TK-{secrets.token_hex(5).upper()}"
    posts = [
        ("/devices/new", {"serial": serial, "model": "ePass2003", "kind": "usb_token"}),
        (f"/devices/{device.public_id}/lost", {}),
        (f"/devices/{device.public_id}/handover", {"person": holder.public_id}),
        (f"/devices/{device.public_id}/pin", {"at": ""}),
        (f"/devices/{device.public_id}/return", {}),
        (f"/devices/{device.public_id}/status", {"status": "locked"}),
    ]
    for url, data in posts:
        assert auditor.post(url, data).status_code == 403, url
    stored = _stored(world, device.public_id)
    assert stored.status is DeviceStatus.ISSUED and stored.last_pin_change_at is None
    with world.ctx.db.read() as session:
        assert session.execute(select(KeyDevice).where(KeyDevice.serial == serial)).first() is None


def test_a_post_without_the_csrf_token_is_refused(
    world: World, web_for: Callable[..., Web]
) -> None:
    device = _handed_over(world, "babe", "Sầm Văn Giả")
    officer = web_for("officer")
    serial = f"TK-{secrets.token_hex(5).upper()}"
    unit = world.unit("babe").public_id
    forged = officer.post(
        "/devices/new", {"serial": serial, "model": "ePass2003", "unit": unit}, csrf=False
    )
    assert forged.status_code == 403
    lost = officer.post(f"/devices/{device.public_id}/lost", {}, csrf=False)
    assert lost.status_code == 403
    assert _stored(world, device.public_id).status is DeviceStatus.ISSUED
    with world.ctx.db.read() as session:
        assert session.execute(select(KeyDevice).where(KeyDevice.serial == serial)).first() is None


def test_anything_a_browser_sends_gets_a_page_not_a_crash(
    world: World, web_for: Callable[..., Web], web: Web
) -> None:
    officer = web_for("officer")
    assert officer.get("/devices/nothing-here").status_code == 404
    assert officer.get("/devices/bad%00id").status_code == 404
    assert officer.get("/devices/handovers/nope/minutes.pdf").status_code == 404
    assert officer.get("/devices/handovers/a%20b/minutes.pdf").status_code == 404
    for query in (
        "status=bogus&kind=%00&unit=%2F..&q=%25_%5C",
        "q=%00",
        "offset=-1",
        "offset=abc",
        "pin_overdue=yes",
        "unit=doesnotexist",
    ):
        answer = officer.get(f"/devices?{query}")
        assert answer.status_code in (200, 422), query
        assert "<html" in answer.text
    assert officer.post("/devices/nothing-here/lost", {}).status_code == 404
    assert officer.post("/devices/nothing-here/handover", {"person": "x"}).status_code == 404
    long = officer.post("/devices/new", {"serial": "x" * 5000, "model": "m"})
    assert long.status_code == 422
    nul = officer.post(
        "/devices/new", {"serial": "A\x00B", "model": "m", "unit": world.unit("babe").public_id}
    )
    assert nul.status_code == 422 and "NUL" in nul.text  # refused for every page at once
    anonymous = web.get("/devices", follow_redirects=False)
    assert anonymous.status_code in (302, 303) and "/login" in anonymous.headers["location"]


def _signer_holding(world: World, device: KeyDevice, username: str) -> User:
    with world.ctx.db.session() as session:
        holder = session.get(Person, session.get(KeyDevice, device.id).holder_person_id)
        assert holder is not None
        return users.create(
            cli_principal("cli:test"),
            session,
            users.UserInput(
                username=f"{username}-{world.tag}",
                full_name=holder.full_name,
                password="mật-khẩu-người-ký-2026",
                role=Role.SIGNER,
                unit=world.unit("babe").public_id,
                person=holder.public_id,
            ),
        ).user


def test_a_signer_reports_their_own_token_lost_and_no_one_elses(
    world: World, web_for: Callable[..., Web]
) -> None:
    device, serial = _token_with_a_certificate(world)
    signer = web_for().login(_signer_holding(world, device, "tin"))
    assert signer.get("/devices").status_code == 403  # no inventory for a signer
    home = signer.get("/")
    assert 'href="/my-devices"' in home.text and "Thiết bị của tôi" in home.text
    mine = signer.get("/my-devices")
    assert mine.status_code == 200
    assert device.serial in mine.text and serial in mine.text
    assert "thu hồi" in re.search(r'data-confirm="([^"]+)"', mine.text).group(1)  # type: ignore[union-attr]

    # Someone else's token in the same unit: refused, and nothing changes.
    other = _handed_over(world, "babe", "Nông Thị Khác")
    refused = signer.post(f"/devices/{other.public_id}/lost", {})
    assert refused.status_code == 403
    assert _stored(world, other.public_id).status is DeviceStatus.ISSUED

    answer = signer.post(f"/devices/{device.public_id}/lost", {"lost_note": "rơi ở chợ"})
    assert answer.status_code == 303 and answer.headers["location"] == "/my-devices"
    with world.ctx.db.read() as session:
        assert session.get(KeyDevice, device.id).status is DeviceStatus.LOST
        cert = session.execute(select(Certificate).where(Certificate.serial == serial)).scalar_one()
        assert cert.status is CertStatus.REVOKED
    after = signer.get("/my-devices")
    assert "Chưa có thiết bị lưu khóa nào" in after.text  # a lost device is no longer held


def test_earlier_minutes_stay_with_the_unit_of_the_person_who_received_the_device(
    world: World, web_for: Callable[..., Web]
) -> None:
    """A token moves from Ba Bể to Ngân Sơn: Ngân Sơn's officer sees the device but not the
    Ba Bể holder's minutes (with their CCCD); Ba Bể's officer keeps them."""
    device = _handed_over(world, "babe", "Đinh Thị Trước")
    newcomer = _person(world, "nganson", "Vi Văn Sau")
    with world.ctx.db.session() as session:
        devices.take_back(CLI, session, device.public_id, received_by="Kho tỉnh")
        first = devices.handovers(CLI, session, device.public_id)[0]
        devices.handover(CLI, session, device.public_id, newcomer.public_id)
    ngan = web_for("officer_ns")
    page = ngan.get(f"/devices/{device.public_id}")
    assert page.status_code == 200 and "Vi Văn Sau" in page.text
    assert "Đinh Thị Trước" not in page.text
    assert ngan.get(f"/devices/handovers/{first.public_id}/minutes.pdf").status_code == 403
    babe = web_for("officer").get(f"/devices/handovers/{first.public_id}/minutes.pdf")
    assert babe.status_code == 200 and babe.content.startswith(b"%PDF")
