"""The issue's journeys in Debian's chromium, end to end, through the real login forms.

1. A unit officer submits a form-01 request → the province (password + TOTP) approves it and
   the certificate is issued → the officer sees it issued and downloads it.
2. The new subscriber, as a signer, signs a PDF with a stamp placed by a click and downloads
   it; an anonymous visitor verifies it and reads "valid".
3. An administrator revokes the certificate; the verification page then says why the
   signature is no longer valid.
4. An officer of another district sees none of it and cannot approve anything.
5. The pages fit a phone's screen.

Screenshots of every step go to test-artifacts/<test>/ (not committed) for reviewers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from conftest import Instance, Server
from cryptography import x509
from cryptography.x509.oid import NameOID
from fixtures.pdf import samples
from sqlalchemy import select
from support.world import World, make_world, new_cccd

from kyso import clock
from kyso.registry import totp, users
from kyso.registry.access import cli_principal
from kyso.store.models import Certificate, Person, Role

from .test_sign import widget_rect

pytestmark = [pytest.mark.browser, pytest.mark.slow]
PASSWORD = "Mật-khẩu-thử-2026"


@dataclass
class Login:
    username: str
    password: str
    totp_secret: str | None = None


def _user(world: World, key: str, role: Role, unit: str, person: str | None = None) -> Login:
    with world.ctx.db.session() as session:
        made = users.create(
            cli_principal("cli:test"),
            session,
            users.UserInput(
                username=f"{key}-j{world.tag}",
                full_name={"officer": "Lý Văn Cán", "admin": "Nguyễn Văn Quản"}.get(
                    key, "Người dùng thử"
                ),
                password=PASSWORD,
                role=role,
                unit=world.unit(unit).public_id,
                person=person,
            ),
        )
    return Login(made.user.username, PASSWORD, made.totp.secret if made.totp else None)


@pytest.fixture
def journey(sqlite_instance: Instance) -> World:
    return make_world(sqlite_instance.ctx, "sqlite")


@pytest.fixture
def open_page(browser: Any, sqlite_server: Server) -> Iterator[Callable[..., Any]]:
    """A new browser (its own cookies) on the test server. Every request any page makes is
    watched: none may leave kyso (no CDN, font or script from elsewhere)."""
    contexts: list[Any] = []
    elsewhere: list[str] = []

    def watch(request: Any) -> None:
        if not request.url.startswith((sqlite_server.url, "data:", "blob:")):
            elsewhere.append(request.url)

    def make(**options: Any) -> Any:
        context = browser.new_context(accept_downloads=True, locale="vi-VN", **options)
        context.set_default_timeout(20_000)
        context.on("request", watch)
        contexts.append(context)
        page = context.new_page()
        page.base = sqlite_server.url
        return page

    yield make
    for context in contexts:
        context.close()
    assert not elsewhere, f"pages asked for things outside kyso: {elsewhere}"


def _field(page: Any, label: str) -> Any:
    """A form field by its label, whether or not the label carries the required mark (*)."""
    return page.get_by_label(re.compile(rf"^{re.escape(label)}\s*\*?$"))


def _go(page: Any, path: str) -> Any:
    return page.goto(page.base + path)


def _log_in(page: Any, who: Login) -> None:
    _go(page, "/login")
    _field(page, "Tên đăng nhập").fill(who.username)
    _field(page, "Mật khẩu").fill(who.password)
    page.get_by_role("button", name="Đăng nhập").click()
    if who.totp_secret:
        _field(page, "Mã").fill(totp.code_at(who.totp_secret, clock.now()))
        page.get_by_role("button", name="Tiếp tục").click()
    page.wait_for_url(page.base + "/")
    assert "Việc cần làm" in page.content()


def test_request_approve_issue_sign_verify_revoke(
    journey: World,
    open_page: Callable[..., Any],
    shot: Callable[[Any, str], Path],
    tmp_path: Path,
) -> None:
    officer_login = _user(journey, "officer", Role.UNIT_OFFICER, "babe")
    admin_login = _user(journey, "admin", Role.PROVINCE_ADMIN, "province")
    other_login = _user(journey, "other", Role.UNIT_OFFICER, "nganson")
    cccd = new_cccd(date(1980, 3, 8), female=True)
    name = "Hoàng Thị Ánh Tuyết"

    # 1. The unit officer fills form 01 and submits it.
    officer = open_page()
    _log_in(officer, officer_login)
    shot(officer, "01-officer-home")
    _go(officer, "/requests/new")
    officer.get_by_role("link", name="Cấp mới chứng thư số cá nhân (mẫu 01)").click()
    _field(officer, "Họ và tên").fill(name)
    _field(officer, "Ngày sinh").fill("1980-03-08")
    _field(officer, "Số CCCD").fill(cccd)
    _field(officer, "Ngày cấp").fill("2021-07-01")
    _field(officer, "Nơi cấp").fill("Cục Cảnh sát QLHC về TTXH")
    _field(officer, "Thư điện tử công vụ").fill(f"tuyet.{journey.tag}@babe.backan.gov.vn")
    _field(officer, "Chức vụ").fill("Chánh Văn phòng HĐND và UBND huyện")
    _field(officer, "Số điện thoại di động").fill("0912 345 678")
    shot(officer, "02-form-01-filled")
    officer.get_by_role("button", name="Gửi đề nghị phê duyệt").click()
    officer.wait_for_url(re.compile(r"/requests/[A-Za-z0-9_-]+$"))
    request_url = officer.url
    assert "Đã gửi yêu cầu để phê duyệt." in officer.content()
    assert officer.locator(".badge", has_text="Chờ phê duyệt").first.is_visible()
    shot(officer, "03-submitted")

    # 2. The province logs in with the second factor and approves from the queue.
    admin = open_page()
    _log_in(admin, admin_login)
    _go(admin, "/approvals")
    assert name in admin.content()
    shot(admin, "04-approval-queue")
    request_path = request_url.removeprefix(admin.base)
    admin.locator(f'a[href="{request_path}"]').first.click()
    admin.get_by_role("button", name="Phê duyệt", exact=True).click()
    admin.wait_for_url(re.compile(r"/requests/[A-Za-z0-9_-]+$"))
    assert "Đã phê duyệt: chứng thư đã được cấp." in admin.content()
    shot(admin, "05-approved-and-issued")

    # 3. The officer sees it issued and downloads the certificate.
    officer.reload()
    assert officer.locator(".badge", has_text="Đã cấp").first.is_visible()
    with officer.expect_download() as download:
        officer.get_by_role("link", name="Tải chứng thư (PEM)").click()
    cert = x509.load_pem_x509_certificate(Path(download.value.path()).read_bytes())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == name
    serial = format(cert.serial_number, "x")
    officer.get_by_role("link", name="Xem chứng thư").click()
    officer.wait_for_url(re.compile(r"/certificates/"))
    assert name in officer.content()
    assert officer.get_by_role("button", name="Thu hồi chứng thư").count() == 0  # not theirs
    shot(officer, "06-officer-certificate-page")

    # 4. The subscriber signs a PDF with the server-held key, placing the stamp by a click.
    with journey.ctx.db.read() as session:
        person = session.execute(select(Person).where(Person.id_number == cccd)).scalar_one()
        row = session.execute(
            select(Certificate).where(Certificate.person_id == person.id)
        ).scalar_one()
    assert int(row.serial, 16) == cert.serial_number
    signer_login = _user(journey, "signer", Role.SIGNER, "babe", person=person.public_id)
    signer = open_page()
    _log_in(signer, signer_login)
    source = tmp_path / "quyet-dinh.pdf"
    source.write_bytes(samples.official_document(pages=1))
    _go(signer, "/sign")
    signer.get_by_label("Tệp PDF").set_input_files(str(source))
    signer.get_by_role("button", name="Tải lên và tiếp tục").click()
    signer.wait_for_url(re.compile(r"/sign/[A-Za-z0-9_-]{22}$"))
    signer.get_by_label("Loại chữ ký").select_option("attachment")
    key_id = row.key_location.split(":", 1)[1]
    signer.get_by_label("Khóa dùng để ký").select_option(key_id)
    signer.get_by_label("Số và ký hiệu văn bản").fill("27/QĐ-UBND")
    preview = signer.get_by_role("img", name="Trang 1")
    preview.scroll_into_view_if_needed()
    signer.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=preview.element_handle()
    )
    box = preview.bounding_box()
    assert box is not None
    preview.click(position={"x": box["width"] * 0.7, "y": box["height"] * 0.8})
    shot(signer, "07-stamp-placed")
    signer.get_by_role("button", name="Ký tài liệu").click()
    signer.wait_for_url(re.compile(r"/done$"))
    shot(signer, "08-signed")
    with signer.expect_download() as download:
        signer.get_by_role("link", name="Tải tệp đã ký").click()
    signed = Path(download.value.path()).read_bytes()
    _, (x1, y1, x2, y2) = widget_rect(signed)
    assert abs((x1 + x2) / 2 - 595 * 0.7) < 2 and abs((y1 + y2) / 2 - 842 * 0.2) < 2
    signed_path = tmp_path / "quyet-dinh-da-ky.pdf"
    signed_path.write_bytes(signed)

    # 5. Anyone verifies it without logging in.
    visitor = open_page()
    _go(visitor, "/verify")
    visitor.get_by_label("Tệp có chữ ký").set_input_files(str(signed_path))
    visitor.get_by_role("button", name="Kiểm tra chữ ký", exact=True).click()
    visitor.wait_for_url(re.compile(r"/verify/report/"))
    assert visitor.locator(".verdict-word").inner_text().strip() == "HỢP LỆ"
    assert name in visitor.content()
    shot(visitor, "09-verified-valid")

    # 6. The administrator revokes the certificate (key compromise), confirming the dialog.
    _go(admin, f"/certificates/{serial}")
    admin.get_by_label("Lý do thu hồi").select_option("key-compromise")
    admin.once("dialog", lambda dialog: dialog.accept())
    admin.get_by_role("button", name="Thu hồi chứng thư").click()
    admin.wait_for_load_state()
    assert "Đã thu hồi chứng thư." in admin.content()
    assert admin.locator(".badge", has_text="Đã thu hồi").first.is_visible()
    shot(admin, "10-revoked")

    # 7. The same file is no longer valid, and the page says why.
    _go(visitor, "/verify")
    visitor.get_by_label("Tệp có chữ ký").set_input_files(str(signed_path))
    visitor.get_by_role("button", name="Kiểm tra chữ ký", exact=True).click()
    visitor.wait_for_url(re.compile(r"/verify/report/"))
    assert visitor.locator(".verdict-word").inner_text().strip() != "HỢP LỆ"
    assert re.search(r"thu hồi", visitor.content())
    shot(visitor, "11-verified-after-revocation")
    visitor.get_by_role("link", name="English").click()
    assert "revoked" in visitor.content().lower()
    shot(visitor, "12-report-in-english")

    # 8. An officer of another district sees none of it and approves nothing.
    other = open_page()
    _log_in(other, other_login)
    assert other.get_by_role("link", name="Phê duyệt").count() == 0
    for path, status in ((request_path, (403, 404)), (f"/certificates/{serial}", (403, 404))):
        response = _go(other, path)
        assert response.status in status, path
        assert name not in other.content()
    shot(other, "13-other-unit-refused")
    assert _go(other, "/approvals").status == 403
    _go(other, "/certificates")
    assert name not in other.content()
    _go(other, "/requests")
    assert name not in other.content()
    shot(other, "14-other-unit-lists")


def test_pages_fit_a_phone_screen(
    journey: World, open_page: Callable[..., Any], shot: Callable[[Any, str], Path]
) -> None:
    officer_login = _user(journey, "officer", Role.UNIT_OFFICER, "babe")
    phone = open_page(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    _log_in(phone, officer_login)
    for path in ("/", "/certificates", "/requests/new/01", "/verify", "/about-ca"):
        _go(phone, path)
        overflow = phone.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"{path} scrolls sideways by {overflow}px on a phone"
        shot(phone, "phone" + path.replace("/", "-"))
    # The menu folds behind one button and opens with it.
    _go(phone, "/")
    menu = phone.get_by_role("button", name="Trình đơn")
    assert menu.is_visible()
    assert not phone.get_by_role("link", name="Chứng thư số").is_visible()
    menu.click()
    assert phone.get_by_role("link", name="Chứng thư số").is_visible()
    shot(phone, "phone-menu-open")


def test_keyboard_alone_logs_in(
    journey: World, open_page: Callable[..., Any], shot: Callable[[Any, str], Path]
) -> None:
    who = _user(journey, "officer", Role.UNIT_OFFICER, "babe")
    page = open_page()
    _go(page, "/verify")
    page.keyboard.press("Tab")  # the first stop is the link that skips the menu
    assert page.evaluate("() => document.activeElement.className") == "skip"
    page.keyboard.press("Enter")
    assert page.evaluate("() => document.activeElement.id") == "main"
    _go(page, "/login")  # the user name field has the focus already
    assert page.evaluate("() => document.activeElement.id") == "f-username"
    page.keyboard.type(who.username)
    page.keyboard.press("Tab")
    page.keyboard.type(who.password)
    page.keyboard.press("Enter")
    page.wait_for_url(page.base + "/")
    shot(page, "logged-in-by-keyboard")
