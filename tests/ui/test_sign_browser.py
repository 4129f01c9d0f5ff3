"""In Debian's chromium: a click on a page preview places the stamp there (sign.js turns the
click into PDF points), the signed file downloads, and an anonymous visitor reads "valid"."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import Instance, Server
from fixtures.pdf import samples
from support.world import make_world

from kyso.registry import sessions

from .test_sign import server_key, widget_rect

pytestmark = pytest.mark.browser


def test_a_click_on_the_preview_places_the_stamp_and_the_file_verifies(
    sqlite_instance: Instance,
    sqlite_server: Server,
    browser: Any,
    shot: Callable[[Any, str], Path],
    tmp_path: Path,
) -> None:
    ctx = sqlite_instance.ctx
    world = make_world(ctx, "sqlite")
    key_id, _ = server_key(sqlite_instance, world.unit("babe"))
    with ctx.db.session() as session:
        token = sessions.start(session, world.users["officer"])
    source = tmp_path / "quyet-dinh.pdf"
    source.write_bytes(samples.official_document(pages=2))

    context = browser.new_context(accept_downloads=True, locale="vi-VN")
    context.add_cookies([{"name": "kyso_sid", "value": token, "url": sqlite_server.url}])
    page = context.new_page()
    page.goto(f"{sqlite_server.url}/sign")
    page.get_by_label("Tệp PDF").set_input_files(str(source))
    page.get_by_role("button", name="Tải lên và tiếp tục").click()
    page.wait_for_url(re.compile(r"/sign/[A-Za-z0-9_-]{22}$"))

    page.get_by_label("Loại chữ ký").select_option("attachment")
    page.get_by_label("Khóa dùng để ký").select_option(key_id)
    page.get_by_label("Số và ký hiệu văn bản").fill("15/QĐ-UBND")
    preview = page.get_by_role("img", name="Trang 2")
    preview.scroll_into_view_if_needed()
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=preview.element_handle()
    )
    box = preview.bounding_box()
    assert box is not None
    # a quarter from the left, a third from the top of page 2 (A4: 595 × 842 points)
    preview.click(position={"x": box["width"] * 0.25, "y": box["height"] / 3})
    assert page.get_by_label("Trang", exact=True).input_value() == "2"
    x = float(page.get_by_label("Cách mép trái (điểm)").input_value())
    y = float(page.get_by_label("Cách mép dưới (điểm)").input_value())
    assert abs(x - 595 * 0.25) < 2 and abs(y - 842 * 2 / 3) < 2
    assert page.get_by_label("Tại điểm tôi bấm trên trang").is_checked()
    assert page.locator(".sign-page[data-page='2'] .stamp-mark").is_visible()
    shot(page, "01-placed")

    page.get_by_role("button", name="Ký tài liệu").click()
    page.wait_for_url(re.compile(r"/done$"))
    assert "Tài liệu đã được ký" in page.content()
    shot(page, "02-signed")
    with page.expect_download() as info:
        page.get_by_role("link", name="Tải tệp đã ký").click()
    signed = Path(info.value.path()).read_bytes()
    page_index, (x1, y1, x2, y2) = widget_rect(signed)
    assert page_index == 1
    assert abs((x1 + x2) / 2 - x) < 0.6 and abs((y1 + y2) / 2 - y) < 0.6
    context.close()

    anonymous = browser.new_context(locale="vi-VN")
    visitor = anonymous.new_page()
    visitor.goto(f"{sqlite_server.url}/verify")
    path = tmp_path / "da-ky.pdf"
    path.write_bytes(signed)
    visitor.get_by_label("Tệp có chữ ký").set_input_files(str(path))
    visitor.get_by_role("button", name="Kiểm tra chữ ký", exact=True).click()
    visitor.wait_for_url(re.compile(r"/verify/report/"))
    assert visitor.locator(".verdict-word").inner_text().strip() == "HỢP LỆ"
    shot(visitor, "03-verified")
    anonymous.close()
