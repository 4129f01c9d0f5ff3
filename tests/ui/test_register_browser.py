"""The register in Debian's chromium, on SQLite: Ba Bể's records clerk issues a draft the
chairman signed through "Phát hành văn bản" (number, seal, register), finds it in "Sổ văn
bản đi", downloads the issued PDF (both signatures valid), and sends it to Ngân Sơn from the
entry's page; Ngân Sơn's clerk has it waiting in the inbox; "Tỷ lệ văn bản điện tử" then
shows Ba Bể at 100 % with its bar past the 90 % line. On a 390 px phone the register, the
entry, the issue form, the report and the catalogue do not scroll sideways.

Screenshots of every step go to test-artifacts/<test>/ for reviewers."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from conftest import Instance, Server
from fixtures.pdf import images, samples
from sqlalchemy import update
from support.world import World, make_world

from kyso import clock
from kyso.registry import sessions
from kyso.signing.identity import from_keystore
from kyso.signing.pades import sign_pdf
from kyso.signing.placement import Placement
from kyso.signing.stamps import Appearance, StampKind
from kyso.store.models import Organization
from kyso.trust import trust_context
from kyso.validation.verify import verify

from .test_sign import server_key

pytestmark = [pytest.mark.browser, pytest.mark.slow]
PHONE = 390


@pytest.fixture(scope="module")
def journey(sqlite_instance: Instance) -> World:
    """Ba Bể and Ngân Sơn with identifier codes."""
    world = make_world(sqlite_instance.ctx, "sqlite")
    with world.ctx.db.session() as session:
        for key, prefix in (("babe", "000.71"), ("nganson", "000.72")):
            session.execute(
                update(Organization)
                .where(Organization.id == world.unit(key).id)
                .values(code=f"{prefix}.{world.tag}.H03")
            )
    return world


@pytest.fixture(scope="module")
def keys(sqlite_instance: Instance, journey: World) -> dict[str, str]:
    """Ba Bể's seal and its chairman's key, kept by kyso."""
    return {
        "seal": server_key(sqlite_instance, journey.unit("babe"))[0],
        "leader": server_key(sqlite_instance, journey.unit("babe"), cn="Nguyễn Văn An")[0],
    }


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
    running in the test's thread, and pyHanko signs and validates with ``asyncio.run``."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(work, *args).result(timeout=120)


def test_a_decision_is_issued_registered_sent_and_counted_at_100_percent(
    journey: World,
    keys: dict[str, str],
    open_as: Callable[..., Any],
    shot: Callable[[Any, str], Path],
    tmp_path: Path,
) -> None:
    subject = f"Quyết định ban hành Quy chế sử dụng chữ ký số {journey.tag}"
    draft = tmp_path / "du-thao-da-ky.pdf"
    draft.write_bytes(
        _off_loop(
            lambda: sign_pdf(
                samples.official_document(),
                from_keystore(journey.ctx, keys["leader"]),
                appearance=Appearance(
                    kind=StampKind.APPROVAL,
                    placement=Placement.by_anchor("Nguyễn Văn An", width=160, height=70),
                    signature_image=images.signature_png(),
                ),
            )
        )
    )
    seal = tmp_path / "con-dau.png"
    seal.write_bytes(images.seal_png())
    receiver_code = f"000.72.{journey.tag}.H03"
    today = clock.local(clock.now()).date()

    # 1. Ba Bể's clerk issues the signed draft.
    clerk = open_as("officer", viewport={"width": 1280, "height": 900})
    clerk.goto(clerk.base + "/exchange")
    clerk.get_by_role("link", name="Phát hành văn bản").click()
    clerk.wait_for_url(clerk.base + "/exchange/issue")
    _field(clerk, "Đơn vị ban hành").select_option(journey.unit("babe").public_id)
    _field(clerk, "Loại văn bản").select_option("QĐ")
    _field(clerk, "Ký hiệu").fill("QĐ-UBND")
    assert _field(clerk, "Ngày ban hành").input_value() == f"{today:%d/%m/%Y}"
    _field(clerk, "Người ký").fill("Nguyễn Văn An")
    _field(clerk, "Trích yếu").fill(subject)
    _field(clerk, "Văn bản đã được lãnh đạo ký số (PDF)").set_input_files(str(draft))
    _field(clerk, "Ảnh con dấu của cơ quan (PNG)").set_input_files(str(seal))
    _field(clerk, "Khóa chữ ký số của cơ quan").select_option(keys["seal"])
    shot(clerk, "01-issue-form-filled")
    clerk.get_by_role("button", name="Đóng dấu và phát hành").click()
    clerk.wait_for_url(re.compile(r"/exchange/register/[A-Za-z0-9_-]{22}$"), timeout=120_000)
    entry = clerk.url.removeprefix(clerk.base)
    flash = clerk.get_by_text(re.compile(r"Đã phát hành văn bản số \d+/QĐ-UBND\."))
    assert flash.is_visible()
    code = clerk.locator("#code").inner_text()
    assert re.fullmatch(r"\d+/QĐ-UBND", code) and code in flash.inner_text()
    shot(clerk, "02-issued")

    # …downloads the issued PDF: the chairman's signature and Ba Bể's seal, both valid.
    with clerk.expect_download() as download:
        clerk.get_by_role("link", name="Tải văn bản đã phát hành (PDF)").click()
    issued = Path(download.value.path()).read_bytes()
    report = _off_loop(lambda: verify(issued, trust_context(journey.ctx), name="qd.pdf"))
    assert report.passed and len(report.signatures) == 2

    # 2. …finds it in the register.
    clerk.get_by_role("link", name="Sổ văn bản đi").first.click()
    clerk.wait_for_url(re.compile(r"/exchange/register\?year=\d{4}$"))
    line = clerk.locator("tr", has_text=subject)
    assert code in line.inner_text() and f"{today:%d/%m/%Y}" in line.inner_text()
    assert line.locator(".badge", has_text="Điện tử").is_visible()
    assert "—" in line.locator("td").last.inner_text()  # not sent yet
    shot(clerk, "03-register")

    # 3. …and sends it to Ngân Sơn from the entry's page.
    line.get_by_role("link", name=code).click()
    clerk.wait_for_url(clerk.base + entry)
    _field(clerk, "Nơi nhận trong hệ thống").select_option([receiver_code])
    _field(clerk, "Khóa chữ ký số của cơ quan").select_option(keys["seal"])
    shot(clerk, "04-send-form")
    clerk.get_by_role("button", name="Ký số và gửi").click()
    clerk.wait_for_url(re.compile(r"/exchange/[A-Za-z0-9_-]{22}$"), timeout=120_000)
    assert clerk.get_by_text("Văn bản đã được ký số của cơ quan và gửi đi.").is_visible()
    assert clerk.locator(".badge", has_text="Đã đến nơi nhận").first.is_visible()
    shot(clerk, "05-sent")
    clerk.goto(clerk.base + entry)
    assert re.fullmatch(r"\d\d/\d\d/\d{4} \d\d:\d\d", clerk.locator("#sent-at").inner_text())

    # 4. Ngân Sơn's clerk has it in the inbox, waiting to be received.
    receiver = open_as("officer_ns", viewport={"width": 1280, "height": 900})
    receiver.goto(receiver.base + "/exchange")
    arrived = receiver.locator("tr", has_text=subject)
    assert arrived.locator(".badge", has_text="Chờ tiếp nhận").is_visible()
    assert code in arrived.inner_text() and "UBND huyện Ba Bể" in arrived.inner_text()
    shot(receiver, "06-inbox")

    # 5. The share of electronic documents: Ba Bể at 100 %, past the 90 % line.
    clerk.goto(clerk.base + "/exchange/register")
    clerk.get_by_role("link", name="Tỷ lệ văn bản điện tử").click()
    clerk.wait_for_url(clerk.base + "/reports/electronic")
    babe = journey.unit("babe").public_id
    row = clerk.locator(f'#units tr[data-unit="{babe}"]')
    cells = [c.strip() for c in row.locator("td").all_inner_texts()]
    assert cells == ["UBND huyện Ba Bể", "Huyện", "1", "1", "100 %", "✓ Đạt"]
    chart = clerk.get_by_role("img", name="Tỷ lệ văn bản gửi điện tử của từng đơn vị")
    assert chart.is_visible()
    bar = clerk.locator(f'#share-chart g[data-unit="{babe}"] rect.bar')
    target = clerk.locator("#share-chart line.target").bounding_box()
    box = bar.bounding_box()
    assert box is not None and target is not None
    assert box["x"] + box["width"] > target["x"]  # past the 90 % line
    shot(clerk, "07-electronic-share")

    # 6. On a phone: the register, the entry and the report fit the screen.
    phone = open_as(
        "officer", viewport={"width": PHONE, "height": 844}, is_mobile=True, has_touch=True
    )
    phone.goto(phone.base + "/exchange/register")
    assert phone.locator("tr", has_text=subject).count() == 1
    _no_sideways_scroll(phone)
    shot(phone, "08-phone-register")
    phone.goto(phone.base + entry)
    assert phone.locator("#code").inner_text() == code
    _no_sideways_scroll(phone)
    shot(phone, "09-phone-entry")
    phone.goto(phone.base + "/exchange/issue")
    assert _field(phone, "Trích yếu").is_visible()
    _no_sideways_scroll(phone)
    shot(phone, "10-phone-issue-form")
    phone.goto(phone.base + "/reports/electronic")
    assert phone.get_by_role("img", name="Tỷ lệ văn bản gửi điện tử của từng đơn vị").is_visible()
    _no_sideways_scroll(phone)
    shot(phone, "11-phone-electronic-share")
    # the province administrator's catalogue, a select and a save button on every row
    admin = open_as(
        "admin1", viewport={"width": PHONE, "height": 844}, is_mobile=True, has_touch=True
    )
    admin.goto(admin.base + "/exchange/catalogue")
    assert admin.get_by_role("combobox", name="Cách gửi Phiếu báo").input_value() == "electronic"
    assert admin.get_by_role("button", name="Lưu: Phiếu báo").is_visible()
    _no_sideways_scroll(admin)
    shot(admin, "12-phone-catalogue-province")
