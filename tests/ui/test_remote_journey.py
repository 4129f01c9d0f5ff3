"""Remote signing end to end in Debian's chromium, every approval given on the phone (390 px)
with Chromium's virtual WebAuthn authenticator standing in for the fingerprint reader:

1. a records clerk sends a decision to the unit's leader for signature;
2. the leader, at the desk, ticks it and signs with the central HSM key; the page waits;
3. the leader's phone shows the document and approves it by "fingerprint";
4. the desk page turns to done, the clerk downloads the signed PDF from the request, and
   anyone's /verify says HỢP LỆ;
5. a CSC client's SADs, each approved on the same phone, are refused when replayed, shown
   with a changed hash, with another user's credential (or by another user), or expired.

One uvicorn process serves http://localhost:<port> (a WebAuthn relying party needs a host
name, not an IP address); the CSC client talks to it over HTTP."""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from conftest import Instance
from fixtures.pdf import samples
from remote.test_csc_api import (
    api_token,
    authorize_body,
    certificate_of,
    digests,
    sign_hash_body,
    verify_signature,
)
from sqlalchemy import update
from support.remote import CentralSigner, central_signer
from support.world import World, make_world

from kyso import clock
from kyso.registry import sessions
from kyso.remote import approvals
from kyso.store.models import SignActivation, User
from kyso.trust import trust_context
from kyso.validation.verify import verify

from .test_phone_browser import BUTTON, PASSWORD, WIDTH, _no_sideways_scroll, phone_server

pytestmark = [pytest.mark.browser, pytest.mark.softhsm]
__all__ = ["phone_server"]  # the server fixture, shared with the phone's own tests

TITLE = "Quyết định ban hành Quy chế sử dụng chữ ký số năm 2027"


def _leader(world: World) -> CentralSigner:
    """A leader of Ba Bể with a key in the central HSM and a password (for enrolling)."""
    leader = central_signer(world, full_name="Hoàng Văn Thụ")
    with world.ctx.db.session() as session:
        user = session.get(User, leader.user.id)
        assert user is not None
        user.password_hash = PasswordHasher().hash(PASSWORD)
    return leader


def off_loop(work: Callable[..., Any], *args: Any) -> Any:
    """Run ``work`` in its own thread: Playwright's sync API keeps an event loop running in
    the test's thread, and pyHanko validates with ``asyncio.run``."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(work, *args).result(timeout=120)


def _desk(browser: Any, url: str, instance: Instance, user: User) -> Any:
    """A desktop browser with ``user`` logged in (the login form has its own tests)."""
    with instance.ctx.db.session() as session:
        token = sessions.start(session, session.get(User, user.id))
    context = browser.new_context(accept_downloads=True, locale="vi-VN")
    context.add_cookies([{"name": "kyso_sid", "value": token, "url": url}])
    return context


def _phone(browser: Any, url: str, instance: Instance, signer: CentralSigner) -> Any:
    """The signer's phone: 390 × 844, touch, a platform authenticator with user verification;
    logged in, then enrolled at /m/enrol with the password, a fresh OTP and the fingerprint."""
    with instance.ctx.db.session() as session:
        token = sessions.start(session, session.get(User, signer.user.id))
    context = browser.new_context(
        viewport={"width": WIDTH, "height": 844}, locale="vi-VN", has_touch=True, is_mobile=True
    )
    context.add_cookies([{"name": "kyso_sid", "value": token, "url": url}])
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
            }
        },
    )
    page.goto(f"{url}/m/enrol")
    page.get_by_label("Mật khẩu").first.fill(PASSWORD)
    page.get_by_label("Mã OTP").first.fill(signer.code(1))
    page.get_by_role("button", name="Đăng ký bằng vân tay hoặc khuôn mặt").click()
    page.get_by_text("Đã đăng ký điện thoại này").wait_for()
    return page


def _waiting_for(instance: Instance, signer: CentralSigner, before: set[str]) -> str:
    """The public id of the approval that has just reached the signer's phone."""
    end = time.monotonic() + 30
    while time.monotonic() < end:
        with instance.ctx.db.read() as session:
            fresh = [
                a.public_id
                for a in approvals.pending(signer.principal, session)
                if a.public_id not in before
            ]
        if fresh:
            return fresh[0]
        time.sleep(0.1)
    raise AssertionError("no approval reached the phone")


def _approve_on_phone(phone: Any, url: str, public_id: str, *expected: str) -> None:
    phone.goto(f"{url}/m")
    card = phone.locator(f"#a-{public_id}")
    card.wait_for()
    for text in expected:
        assert text in card.inner_text()
    _no_sideways_scroll(phone)
    card.get_by_role("button", name=BUTTON).click()
    phone.get_by_text("Đã xác nhận: văn bản đang được ký.").wait_for()


def test_a_leaders_document_is_signed_with_the_central_key_approved_by_fingerprint(
    central_instance: Instance,
    phone_server: str,
    browser: Any,
    shot: Callable[[Any, str], Path],
    tmp_path: Path,
) -> None:
    instance = central_instance
    world = make_world(instance.ctx, instance.backend)
    leader = _leader(world)
    clerk = world.users["officer"]  # Ba Bể's records clerk; the leader is of Ba Bể too
    url = phone_server
    source = tmp_path / "quyet-dinh.pdf"
    source.write_bytes(samples.official_document())

    # 1. The clerk sends the decision to the leader.
    clerk_context = _desk(browser, url, instance, clerk)
    desk = clerk_context.new_page()
    desk.goto(f"{url}/sign/requests/new")
    desk.get_by_label("Tệp PDF").set_input_files(str(source))
    desk.get_by_label("Trích yếu văn bản").fill(TITLE)
    desk.get_by_label("Người ký *", exact=True).select_option(leader.user.public_id)
    desk.get_by_role("button", name="Gửi trình ký").click()
    desk.wait_for_url(re.compile(r"/sign/requests/[A-Za-z0-9_-]+$"))
    request_id = desk.url.rsplit("/", 1)[1]
    shot(desk, "01-sent")

    # 2. The leader ticks it at the desk and signs with the central key: the page waits.
    phone = _phone(browser, url, instance, leader)
    leader_context = _desk(browser, url, instance, leader.user)
    mine = leader_context.new_page()
    mine.goto(f"{url}/sign/requests")
    mine.locator(f"#pick-{request_id}").check()
    mine.get_by_label("Khóa tập trung").select_option(f"hsm:{leader.key_id}")
    mine.get_by_role("button", name="Ký các văn bản đã chọn").click()
    mine.wait_for_url(re.compile(r"/sign/approvals/[A-Za-z0-9_-]+$"))
    approval_id = mine.url.rsplit("/", 1)[1]
    assert mine.locator("#approval").get_attribute("data-state") == "waiting"
    assert mine.get_by_text("Đang chờ xác nhận trên điện thoại").first.is_visible()
    shot(mine, "02-desk-waiting")

    # 3. The phone lists the document with its title and approves it by fingerprint.
    phone.goto(f"{url}/m")
    phone.locator(f"#a-{approval_id}").get_by_text(TITLE).wait_for()
    shot(phone, "03-phone-waiting")
    _approve_on_phone(phone, url, approval_id, TITLE)
    shot(phone, "04-phone-approved")

    # 4. The desk page turns to done by itself; the clerk gets the signed file back.
    mine.wait_for_function(
        "() => document.getElementById('approval').dataset.state === 'done'", timeout=30_000
    )
    assert mine.get_by_text("Đã gửi lại người đề nghị ký").first.is_visible()
    shot(mine, "05-desk-done")
    desk.goto(f"{url}/sign/requests/{request_id}")
    with desk.expect_download() as download:
        desk.get_by_role("link", name="Tải tệp đã ký").click()
    signed = Path(download.value.path()).read_bytes()
    signed_path = tmp_path / "quyet-dinh-da-ky.pdf"
    signed_path.write_bytes(signed)
    report = off_loop(lambda: verify(signed, trust_context(instance.ctx), name="qd.pdf"))
    assert report.passed

    visitor = browser.new_context(locale="vi-VN").new_page()
    visitor.goto(f"{url}/verify")
    visitor.get_by_label("Tệp có chữ ký").set_input_files(str(signed_path))
    visitor.get_by_role("button", name="Kiểm tra chữ ký", exact=True).click()
    visitor.wait_for_url(re.compile(r"/verify/report/"))
    assert visitor.locator(".verdict-word").inner_text().strip() == "HỢP LỆ"
    assert leader.user.full_name in visitor.content()
    shot(visitor, "06-verified")
    for context in (clerk_context, leader_context, visitor.context):
        context.close()

    # 5. SADs approved on this phone, then misused by a CSC client: each is refused.
    _csc_misuse_is_refused(instance, world, leader, phone, url, shot)
    phone.context.close()


def _csc_misuse_is_refused(
    instance: Instance,
    world: World,
    leader: CentralSigner,
    phone: Any,
    url: str,
    shot: Callable[[Any, str], Path],
) -> None:
    headers = api_token(world, leader)
    other = central_signer(world, full_name="Lê Thị Khác")
    other_headers = api_token(world, other)
    certificate = certificate_of(world, leader)

    with httpx.Client(base_url=url, timeout=90) as http, ThreadPoolExecutor(1) as pool:

        def phone_approved_sad(wanted: list[str], step: str) -> str:
            """credentials/authorize without a PIN waits while the phone approves."""
            with instance.ctx.db.read() as session:
                before = {a.public_id for a in approvals.pending(leader.principal, session)}
            asked: Future[httpx.Response] = pool.submit(
                http.post,
                "/csc/v1/credentials/authorize",
                headers=headers,
                json=authorize_body("v1", leader.key_id, wanted, None, None),
            )
            public_id = _waiting_for(instance, leader, before)
            _approve_on_phone(phone, url, public_id, f"{len(wanted)} giá trị băm cần ký")
            if step:
                shot(phone, step)
            answer = asked.result(timeout=90)
            assert answer.status_code == 200, answer.text
            return str(answer.json()["SAD"])

        def sign_hash(
            sad: str, hashes_b64: list[str], key_id: str | None = None, who: Any = None
        ) -> httpx.Response:
            return http.post(
                "/csc/v1/signatures/signHash",
                headers=who or headers,
                json=sign_hash_body("v1", key_id or leader.key_id, sad, hashes_b64),
            )

        def refused(answer: httpx.Response, description: str) -> None:
            assert answer.status_code == 400, answer.text
            assert answer.json() == {"error": "invalid_request", "error_description": description}

        # approved once, signed once; the same SAD again is refused
        wanted = digests("Tờ trình 01", "Phụ lục 01")
        sad = phone_approved_sad(wanted, "07-phone-csc-approved")
        signed = sign_hash(sad, wanted)
        assert signed.status_code == 200, signed.text
        for signature, digest in zip(signed.json()["signatures"], wanted, strict=True):
            verify_signature(certificate, base64.b64decode(signature), digest)
        refused(sign_hash(sad, wanted), "Invalid SAD")

        # a hash changed after the approval: refused, and the SAD is burnt
        wanted = digests("Tờ trình 02")
        sad = phone_approved_sad(wanted, "")
        refused(sign_hash(sad, digests("Tờ trình 02 ĐÃ SỬA")), "Invalid SAD")
        refused(sign_hash(sad, wanted), "Invalid SAD")

        # another user's credential with this SAD; another user showing this SAD
        wanted = digests("Tờ trình 03")
        sad = phone_approved_sad(wanted, "")
        refused(sign_hash(sad, wanted, key_id=other.key_id), "Invalid parameter credentialID")
        refused(sign_hash(sad, wanted, key_id=other.key_id, who=other_headers), "Invalid SAD")
        refused(sign_hash(sad, wanted, who=other_headers), "Invalid parameter credentialID")

        # approved, then left until it expired (the server is another process: its clock is
        # real, so the SAD's expiry is moved into the past in the shared database)
        wanted = digests("Tờ trình 04")
        sad = phone_approved_sad(wanted, "")
        with instance.ctx.db.session() as session:
            moved = session.execute(
                update(SignActivation)
                .where(SignActivation.sad_sha256 == hashlib.sha256(sad.encode()).hexdigest())
                .values(expires_at=clock.now() - timedelta(seconds=1))
            )
            assert getattr(moved, "rowcount", 0) == 1
        refused(sign_hash(sad, wanted), "SAD expired")
