"""The signing pages with a central key: the key list offers the leader's key in the central
HSM, signing puts the document on the phone and the page waits ("Đang chờ xác nhận trên
điện thoại"), then turns to done with a download; documents sent to a leader are signed
several at once with one approval. The approval is given through the service with PIN +
TOTP, standing in for the phone."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from conftest import Instance, Server, _serve
from fastapi.testclient import TestClient
from fixtures.pdf import images, samples
from support.remote import CentralSigner, central_signer
from support.world import World, app_client, make_world

from kyso.registry import sessions
from kyso.remote import approvals, factors
from kyso.signing import queue
from kyso.store.models import SignatureState
from kyso.trust import trust_context
from kyso.validation.verify import verify

from .conftest import Web
from .test_sign import upload, widget_rect

APPROVAL = re.compile(r"^/sign/approvals/([A-Za-z0-9_-]+)$")


@pytest.fixture(scope="module")
def world(central_instance: Instance) -> World:
    return make_world(central_instance.ctx, central_instance.backend)


@pytest.fixture(scope="module")
def app(central_instance: Instance) -> Iterator[Any]:
    apps: dict[tuple[str, str], TestClient] = {}
    yield app_client(central_instance, apps).app
    for client in apps.values():
        client.__exit__(None, None, None)


def visitor(app: Any, world: World, user: Any) -> Web:
    return Web(TestClient(app, raise_server_exceptions=False), world).login(user)


def off_loop(work: Callable[..., Any], *args: Any) -> Any:
    """Run ``work`` in a thread of its own: this module's Chromium (Playwright's sync API)
    keeps an event loop running in the test's thread, and pyHanko signs and validates with
    ``asyncio.run``."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(work, *args).result(timeout=120)


def approve(world: World, signer: CentralSigner, public_id: str) -> None:
    """The phone's approval (PIN + TOTP), through the service."""
    off_loop(
        approvals.approve,
        world.ctx,
        signer.principal,
        public_id,
        factors.PinAndCode(signer.pin, signer.code()),
    )


def passes(world: World, signed: bytes) -> bool:
    return bool(off_loop(lambda: verify(signed, trust_context(world.ctx), name="a.pdf").passed))


@pytest.mark.softhsm
def test_the_sign_page_waits_for_the_phone_then_offers_the_signed_pdf(
    app: Any, world: World
) -> None:
    signer = central_signer(world)
    web = visitor(app, world, signer.user)
    upload_id = upload(web, samples.official_document())
    form = web.get(f"/sign/{upload_id}")
    assert "HSM tập trung – xác nhận trên điện thoại" in form.text
    assert f'value="hsm:{signer.key_id}"' in form.text

    asked = web.post(
        f"/sign/{upload_id}",
        {
            "kind": "approval",
            "key_id": f"hsm:{signer.key_id}",
            "level": "B-T",
            "place": "anchor",
            "anchor": "Nguyễn Văn An",
            "where": "above",
            "title": "CHỦ TỊCH",
            "name": signer.user.full_name,
        },
        files={"image": ("ky.png", images.signature_png(), "image/png")},
    )
    assert asked.status_code == 303, asked.text[:2000]
    found = APPROVAL.match(asked.headers["location"])
    assert found, asked.headers["location"]
    approval_id = found.group(1)

    waiting = web.get(asked.headers["location"])
    assert "Đang chờ xác nhận trên điện thoại" in waiting.text
    assert 'data-state="waiting"' in waiting.text
    status = web.get(f"/sign/approvals/{approval_id}/status").json()
    assert status["status"] == "waiting" and status["seconds_left"] > 0

    approve(world, signer, approval_id)

    done = web.get(f"/sign/approvals/{approval_id}/status").json()
    assert done["status"] == "done"
    download = web.get(done["documents"][0]["download"])
    assert download.status_code == 200
    signed = download.content
    assert passes(world, signed)
    widget_rect(signed)  # the stamp is there, placed by the anchor text
    page = web.get(f"/sign/approvals/{approval_id}")
    assert 'data-state="done"' in page.text and "Tải tệp đã ký" in page.text

    # Someone else sees neither the page nor the file.
    other = visitor(app, world, world.users["officer"])
    assert other.get(f"/sign/approvals/{approval_id}").status_code == 404
    assert other.get(done["documents"][0]["download"]).status_code == 404


@pytest.mark.softhsm
def test_a_refused_request_shows_the_reason_on_the_page(app: Any, world: World) -> None:
    signer = central_signer(world)
    web = visitor(app, world, signer.user)
    upload_id = upload(web, samples.official_document())
    asked = web.post(
        f"/sign/{upload_id}",
        {"kind": "attachment", "key_id": f"hsm:{signer.key_id}", "place": "corner",
         "number": "15/QĐ-UBND", "level": "B-B"},
    )  # fmt: skip
    assert asked.status_code == 303, asked.text[:2000]
    approval_id = asked.headers["location"].rsplit("/", 1)[1]
    with world.ctx.db.session() as session:
        approvals.refuse(signer.principal, session, approval_id, "Sai trích yếu")
    status = web.get(f"/sign/approvals/{approval_id}/status").json()
    assert status["status"] == "refused" and status["reason"] == "Sai trích yếu"
    page = web.get(f"/sign/approvals/{approval_id}")
    assert 'data-state="refused"' in page.text and "Sai trích yếu" in page.text


@pytest.mark.softhsm
def test_a_leader_signs_three_documents_sent_to_them_with_one_approval(
    app: Any, world: World
) -> None:
    signer = central_signer(world)
    sender = world.who("officer")
    sent = []
    with world.ctx.db.session() as session:
        for n in range(3):
            sent.append(
                queue.ask(
                    sender,
                    session,
                    signer=signer.user.public_id,
                    title=f"Tờ trình số {n + 1}",
                    filename=f"tt-{n + 1}.pdf",
                    document=samples.official_document(),
                ).public_id
            )
    web = visitor(app, world, signer.user)
    listing = web.get("/sign/requests")
    assert "Ký các văn bản đã chọn" in listing.text
    asked = web.post(
        "/sign/requests/batch",
        [("request", p) for p in sent] + [("key_id", f"hsm:{signer.key_id}"), ("level", "B-B")],
    )
    assert asked.status_code == 303, asked.text[:2000]
    approval_id = asked.headers["location"].rsplit("/", 1)[1]
    with world.ctx.db.read() as session:
        [listed] = [
            a for a in approvals.pending(signer.principal, session) if a.public_id == approval_id
        ]
        assert [i.title for i in listed.items] == [f"Tờ trình số {n}" for n in (1, 2, 3)]
    approve(world, signer, approval_id)
    with world.ctx.db.read() as session:
        for public_id in sent:
            item = queue.get(sender, session, public_id, with_documents=True)
            assert item.state is SignatureState.SIGNED
            assert item.signed_document is not None
    status = web.get(f"/sign/approvals/{approval_id}/status").json()
    assert [d["request"] for d in status["documents"]] == [f"/sign/requests/{p}" for p in sent]

    nothing = web.post("/sign/requests/batch", {"key_id": f"hsm:{signer.key_id}"})
    assert nothing.status_code == 422


@pytest.fixture(scope="module")
def central_server(
    central_instance: Instance, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    if central_instance.backend != "sqlite":
        pytest.skip("one browser journey is enough (SQLite)")
    yield from _serve(central_instance, tmp_path_factory.mktemp("central-server"))


@pytest.mark.browser
@pytest.mark.softhsm
def test_in_chromium_the_page_waits_then_turns_to_done_with_a_download(
    central_server: Server,
    world: World,
    browser: Any,
    shot: Callable[[Any, str], Path],
    tmp_path: Path,
) -> None:
    signer = central_signer(world)
    with world.ctx.db.session() as session:
        token = sessions.start(session, signer.user)
    source = tmp_path / "cong-van.pdf"
    source.write_bytes(samples.official_document())

    context = browser.new_context(accept_downloads=True, locale="vi-VN")
    context.add_cookies([{"name": "kyso_sid", "value": token, "url": central_server.url}])
    page = context.new_page()
    page.goto(f"{central_server.url}/sign")
    page.get_by_label("Tệp PDF").set_input_files(str(source))
    page.get_by_role("button", name="Tải lên và tiếp tục").click()
    page.wait_for_url(re.compile(r"/sign/[A-Za-z0-9_-]{22}$"))
    page.get_by_label("Loại chữ ký").select_option("attachment")
    page.get_by_label("Khóa dùng để ký").select_option(f"hsm:{signer.key_id}")
    page.get_by_label("Số và ký hiệu văn bản").fill("15/QĐ-UBND")
    page.get_by_label("Góc trên bên phải", exact=False).check()
    page.get_by_role("button", name="Ký tài liệu").click()
    page.wait_for_url(re.compile(r"/sign/approvals/[A-Za-z0-9_-]+$"))
    box = page.locator("#approval")
    assert box.get_attribute("data-state") == "waiting"
    assert page.get_by_text("Đang chờ xác nhận trên điện thoại").first.is_visible()
    assert re.fullmatch(r"\d+:\d\d", page.locator("[data-time-left]").inner_text())
    shot(page, "01-waiting")

    approval_id = page.url.rsplit("/", 1)[1]
    approve(world, signer, approval_id)

    page.wait_for_function(
        "() => document.getElementById('approval').dataset.state === 'done'", timeout=15000
    )
    assert page.get_by_text("Các văn bản đã được ký bằng khóa tập trung").is_visible()
    shot(page, "02-done")
    with page.expect_download() as info:
        page.get_by_role("link", name="Tải tệp đã ký").first.click()
    signed = Path(info.value.path()).read_bytes()
    assert passes(world, signed)
    context.close()
