"""Documents between agencies in Debian's chromium, on SQLite: Ba Bể's records clerk fills
the send form and sends a decision to Ngân Sơn; Ngân Sơn's clerk finds it "Chờ tiếp nhận"
in the inbox, opens it, receives it with the unit's seal, reads "Đã tiếp nhận" and the
incoming number, and downloads the PDF with the ĐẾN mark, which validates; Ba Bể's outbox
then reads "Đã tiếp nhận". On a 390 px phone the pages do not scroll sideways.

Screenshots of every step go to test-artifacts/<test>/ for reviewers."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from conftest import Instance, Server
from fixtures.pdf import samples
from sqlalchemy import update
from support.world import World, make_world

from kyso.registry import sessions
from kyso.store.models import Organization
from kyso.trust import trust_context
from kyso.validation.verify import verify

from .test_sign import server_key

pytestmark = [pytest.mark.browser, pytest.mark.slow]
PHONE = 390


@pytest.fixture(scope="module")
def journey(sqlite_instance: Instance) -> World:
    """Ba Bể and Ngân Sơn with identifier codes and seals kept by kyso."""
    world = make_world(sqlite_instance.ctx, "sqlite")
    with world.ctx.db.session() as session:
        for key, prefix in (("babe", "000.51"), ("nganson", "000.52")):
            session.execute(
                update(Organization)
                .where(Organization.id == world.unit(key).id)
                .values(code=f"{prefix}.{world.tag}.H03")
            )
    return world


@pytest.fixture(scope="module")
def seals(sqlite_instance: Instance, journey: World) -> dict[str, str]:
    return {key: server_key(sqlite_instance, journey.unit(key))[0] for key in ("babe", "nganson")}


@pytest.fixture
def open_as(browser: Any, sqlite_server: Server, journey: World) -> Iterator[Callable[..., Any]]:
    """A new browser (its own cookies) logged in as one of the journey's users; every
    request it makes must stay on kyso."""
    contexts: list[Any] = []
    elsewhere: list[str] = []

    def watch(request: Any) -> None:
        if not request.url.startswith((sqlite_server.url, "data:", "blob:")):
            elsewhere.append(request.url)

    def make(key: str, **options: Any) -> Any:
        with journey.ctx.db.session() as session:
            token = sessions.start(session, journey.users[key])
        context = browser.new_context(accept_downloads=True, locale="vi-VN", **options)
        context.set_default_timeout(30_000)
        context.add_cookies([{"name": "kyso_sid", "value": token, "url": sqlite_server.url}])
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


def _no_sideways_scroll(page: Any) -> None:
    assert page.evaluate("document.scrollingElement.scrollWidth") <= PHONE


def _off_loop(work: Callable[..., Any], *args: Any) -> Any:
    """Run ``work`` in a thread of its own: Playwright's sync API keeps an event loop
    running in the test's thread, and pyHanko validates with ``asyncio.run``."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(work, *args).result(timeout=120)


def test_a_decision_goes_from_ba_be_to_ngan_son_and_is_received_with_the_den_mark(
    journey: World,
    seals: dict[str, str],
    open_as: Callable[..., Any],
    shot: Callable[[Any, str], Path],
    tmp_path: Path,
) -> None:
    subject = f"Quyết định ban hành Quy chế sử dụng chữ ký số {journey.tag}"
    document = tmp_path / "quyet-dinh-125.pdf"
    document.write_bytes(samples.official_document())
    annex = tmp_path / "phu-luc.pdf"
    annex.write_bytes(samples.official_document(signer_name="Phụ lục", position="Kèm theo"))
    receiver_code = f"000.52.{journey.tag}.H03"

    # 1. Ba Bể's clerk fills the send form and sends.
    clerk = open_as("officer", viewport={"width": 1280, "height": 900})
    clerk.goto(clerk.base + "/exchange")
    clerk.get_by_role("link", name="Gửi văn bản").click()
    clerk.wait_for_url(clerk.base + "/exchange/send")
    _field(clerk, "Đơn vị gửi").select_option(journey.unit("babe").public_id)
    _field(clerk, "Nơi nhận trong hệ thống").select_option([receiver_code])
    _field(clerk, "Số").fill("125")
    _field(clerk, "Ký hiệu").fill("QĐ-UBND")
    _field(clerk, "Loại văn bản").fill("Quyết định")
    _field(clerk, "Độ khẩn").select_option("1")
    _field(clerk, "Nơi ban hành").fill("Ba Bể")
    _field(clerk, "Trích yếu").fill(subject)
    _field(clerk, "Quyền hạn ký").fill("KT. CHỦ TỊCH")
    _field(clerk, "Chức vụ").fill("PHÓ CHỦ TỊCH")
    _field(clerk, "Họ và tên").fill("Hoàng Văn Lãnh")
    _field(clerk, "Văn bản (tệp PDF đã ký)").set_input_files(str(document))
    _field(clerk, "Phụ lục và tài liệu kèm theo").set_input_files(str(annex))
    _field(clerk, "Khóa chữ ký số của cơ quan").select_option(seals["babe"])
    shot(clerk, "01-send-form-filled")
    clerk.get_by_role("button", name="Ký số và gửi").click()
    clerk.wait_for_url(re.compile(r"/exchange/[A-Za-z0-9_-]{22}$"))
    assert clerk.get_by_text("Văn bản đã được ký số của cơ quan và gửi đi.").is_visible()
    assert clerk.locator(".badge", has_text="Đã đến nơi nhận").first.is_visible()
    shot(clerk, "02-sent")

    # 2. Ngân Sơn's clerk finds it waiting in the inbox and opens it.
    receiver = open_as("officer_ns", viewport={"width": 1280, "height": 900})
    receiver.goto(receiver.base + "/")
    receiver.get_by_role("link", name="Văn bản điện tử").click()
    receiver.wait_for_url(receiver.base + "/exchange")
    line = receiver.locator("tr", has_text=subject)
    assert line.locator(".badge", has_text="Chờ tiếp nhận").is_visible()
    assert "125/QĐ-UBND" in line.inner_text() and "UBND huyện Ba Bể" in line.inner_text()
    shot(receiver, "03-inbox")
    line.get_by_role("link", name=subject).click()
    receiver.wait_for_url(re.compile(r"/exchange/[A-Za-z0-9_-]{22}$"))
    arrived = receiver.url.removeprefix(receiver.base)
    assert receiver.get_by_role("link", name="quyet-dinh-125.pdf").is_visible()
    assert receiver.get_by_role("link", name="phu-luc.pdf").is_visible()
    shot(receiver, "04-arrived")

    # 3. …receives it with the unit's seal: "Đã tiếp nhận" and the incoming number.
    _field(receiver, "Khóa chữ ký số của cơ quan").select_option(seals["nganson"])
    receiver.get_by_role("button", name="Tiếp nhận", exact=True).click()
    receiver.get_by_text(re.compile(r"Đã tiếp nhận: số đến \d+\.")).wait_for()
    number = receiver.locator("#received-number").inner_text()
    assert number.isdigit()
    assert receiver.locator("h1 .badge", has_text="Đã tiếp nhận").is_visible()
    assert receiver.get_by_role("button", name="Tiếp nhận", exact=True).count() == 0
    shot(receiver, "05-received")

    # 4. …and downloads the PDF with the ĐẾN mark, signed by Ngân Sơn.
    with receiver.expect_download() as download:
        receiver.get_by_role("link", name="Tải văn bản có dấu ĐẾN").click()
    marked = Path(download.value.path()).read_bytes()
    assert marked.startswith(b"%PDF")
    report = _off_loop(lambda: verify(marked, trust_context(journey.ctx), name="den.pdf"))
    assert report.passed and len(report.signatures) == 1
    assert "UBND huyện Ngân Sơn" in report.signatures[0].signer.subject
    receiver.goto(receiver.base + "/exchange")
    line = receiver.locator("tr", has_text=subject)
    assert line.locator(".badge", has_text="Đã tiếp nhận").is_visible()
    assert line.locator("td.num").inner_text() == number
    shot(receiver, "06-inbox-received")

    # 5. Ba Bể's outbox reads "Đã tiếp nhận".
    clerk.goto(clerk.base + "/exchange")
    clerk.get_by_role("link", name="Văn bản đi", exact=True).click()
    clerk.wait_for_url(clerk.base + "/exchange?box=out")
    line = clerk.locator("tr", has_text=subject)
    assert line.locator(".badge", has_text="Đã tiếp nhận").is_visible()
    shot(clerk, "07-outbox-received")

    # 6. On a phone the pages fit the screen: the inbox, the message, the send form.
    phone = open_as(
        "officer_ns", viewport={"width": PHONE, "height": 844}, is_mobile=True, has_touch=True
    )
    phone.goto(phone.base + "/exchange")
    assert phone.locator("tr", has_text=subject).count() == 1
    _no_sideways_scroll(phone)
    shot(phone, "08-phone-inbox")
    phone.goto(phone.base + arrived)
    assert phone.locator("#received-number").inner_text() == number
    _no_sideways_scroll(phone)
    shot(phone, "09-phone-received")
    phone.goto(phone.base + "/exchange/send")
    assert _field(phone, "Trích yếu").is_visible()
    _no_sideways_scroll(phone)
    shot(phone, "10-phone-send-form")
