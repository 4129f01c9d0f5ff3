"""In Debian's chromium: the signing page finds the kyso agent, pairs with the code the agent
shows, lists the token's certificates and signs with the token — agent.js's Web Crypto MACs
checked by the real agent, CORS preflights answered by it, the PIN asked by the agent."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Instance, Server
from fixtures.pdf import samples
from support import softhsm
from support.world import make_world
from ui.conftest import browser, shot  # noqa: F401 (fixtures)

from kyso.registry import sessions

from .conftest import running_agent, token_holder

pytestmark = [pytest.mark.browser, pytest.mark.softhsm]


def test_the_signing_page_pairs_with_the_agent_and_signs_with_the_token(
    sqlite_instance: Instance,
    sqlite_server: Server,
    hsm_tokens: softhsm.SoftHsmToken,
    browser: Any,  # noqa: F811
    shot: Callable[[Any, str], Path],  # noqa: F811
    tmp_path: Path,
) -> None:
    ctx = sqlite_instance.ctx
    world = make_world(ctx, "sqlite")
    holder = token_holder(world, hsm_tokens, full_name="Hà Thị Lan")
    with ctx.db.session() as session:
        cookie = sessions.start(session, holder.user)
    source = tmp_path / "cong-van.pdf"
    source.write_bytes(samples.official_document())
    (tmp_path / "agent").mkdir()
    with running_agent(hsm_tokens, tmp_path / "agent", origin=sqlite_server.url) as agent:
        context = browser.new_context(accept_downloads=True, locale="vi-VN")
        context.add_cookies([{"name": "kyso_sid", "value": cookie, "url": sqlite_server.url}])
        context.add_init_script(f"localStorage.setItem('kyso.agent.port', '{agent.port}')")
        page = context.new_page()
        page.goto(f"{sqlite_server.url}/sign")
        page.get_by_label("Tệp PDF").set_input_files(str(source))
        page.get_by_role("button", name="Tải lên và tiếp tục").click()
        page.wait_for_url(re.compile(r"/sign/[A-Za-z0-9_-]{22}$"))

        status = page.locator("#agent-status")
        pair = page.locator("#agent-pair-button")
        assert "Tìm bộ ký kyso" in status.inner_text()  # not reached for until asked
        page.get_by_role("button", name="Tìm bộ ký kyso").click()
        pair.wait_for(state="visible")
        assert "chưa được ghép nối" in status.inner_text()
        pair.click()
        code = agent.wait_for(r"pairing code\): (\d{6})").group(1)
        page.get_by_label("Mã ghép nối hiện trên cửa sổ bộ ký kyso").fill(code)
        page.get_by_role("button", name="Xác nhận mã ghép nối").click()
        choice = page.get_by_label("Chứng thư trên thiết bị")
        choice.wait_for(state="visible")
        options = choice.locator("option").all_inner_texts()
        mine = next(i for i, text in enumerate(options) if holder.serial in text)
        choice.select_option(str(mine))
        assert "Đã kết nối bộ ký kyso" in status.inner_text()
        shot(page, "01-paired")

        page.get_by_label("Loại chữ ký").select_option("attachment")
        page.get_by_label("Số và ký hiệu văn bản").fill("8/CV-UBND")
        page.check("input[name=place][value=corner]")
        page.get_by_role("button", name="Ký bằng thiết bị USB").click()
        page.wait_for_url(re.compile(r"/done$"), timeout=60_000)
        assert "Tài liệu đã được ký" in page.content()
        assert "Hà Thị Lan" in page.content()
        shot(page, "02-signed")
        with page.expect_download() as info:
            page.get_by_role("link", name="Tải tệp đã ký").click()
        signed = Path(info.value.path()).read_bytes()
        context.close()
        # the agent asked the PIN itself and logged the signature
        assert any(holder.serial in line for line in agent.signature_log())
    # kyso's own validation, over HTTP (Playwright's event loop runs in this thread)
    report = httpx.post(
        f"{sqlite_server.url}/verify", files={"file": ("cong-van.pdf", signed)}, timeout=60
    ).json()
    assert report["indication"] == "TOTAL-PASSED", report
