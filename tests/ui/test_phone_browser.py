"""The signer's phone in Debian's chromium at 390 × 844, with Chromium's virtual WebAuthn
authenticator (CDP ``WebAuthn.addVirtualAuthenticator``: CTAP2, internal transport, resident
key, user verification) standing in for the fingerprint reader: log in, enrol the phone at
/m/enrol, approve a request by "fingerprint" so that the CSC client then collects its SAD,
refuse another, revoke the phone at /m/devices, after which it approves nothing.

WebAuthn refuses an IP address as relying-party id (§5.1.2), so this server's public URL is
http://localhost:<port> (a secure context, like https)."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from conftest import Instance
from support.remote import CentralSigner, central_signer
from support.world import make_world

from kyso.registry import sessions
from kyso.remote import approvals
from kyso.store.models import ApprovalPurpose, ApprovalState, User

pytestmark = [pytest.mark.browser, pytest.mark.softhsm]
PASSWORD = "Mật-khẩu-điện-thoại-2026"
WIDTH = 390
BUTTON = "Xác nhận bằng vân tay/khuôn mặt"


@pytest.fixture(scope="module")
def phone_server(
    central_instance: Instance, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """kyso over HTTP at http://localhost:<port> (the WebAuthn relying party)."""
    if central_instance.backend != "sqlite":
        pytest.skip("the browser journey runs once; the services run on both backends")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    url = f"http://localhost:{port}"
    env = {**os.environ, **central_instance.env, "KYSO_BASE_URL": url}
    log = (tmp_path_factory.mktemp("phone-server") / "server.log").open("wb")
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "uvicorn", "kyso.web.app:create_app", "--factory"),
            *("--host", "127.0.0.1", "--port", str(port), "--no-access-log"),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
            assert process.poll() is None, f"server exited; see {log.name}"
        yield url
    finally:
        process.terminate()
        process.wait(10)
        log.close()


def _signer(instance: Instance) -> CentralSigner:
    world = make_world(instance.ctx, instance.backend)
    signer = central_signer(world, full_name="Hoàng Văn Thụ")
    with instance.ctx.db.session() as session:
        user = session.get(User, signer.user.id)
        assert user is not None
        user.password_hash = PasswordHasher().hash(PASSWORD)
        signer.user.password_hash = user.password_hash
    return signer


def _ask(instance: Instance, signer: CentralSigner, *titles: str) -> str:
    ctx = instance.ctx
    with ctx.db.session() as session:
        return approvals.ask(
            ctx,
            signer.principal,
            session,
            approvals.Request(
                signer=session.merge(signer.user),
                key_id=signer.key_id,
                purpose=ApprovalPurpose.CSC,
                items=[
                    approvals.ItemSpec(
                        title=t,
                        number=f"{i + 12}/QĐ-UBND",
                        digest=base64.b64encode(hashlib.sha256(t.encode()).digest()).decode(),
                    )
                    for i, t in enumerate(titles)
                ],
                requester_name="Hệ thống quản lý văn bản điều hành",
            ),
        ).public_id


def _state(instance: Instance, signer: CentralSigner, public_id: str) -> ApprovalState:
    with instance.ctx.db.read() as session:
        return approvals.get(signer.principal, session, public_id).state


def _no_sideways_scroll(page: Any) -> None:
    assert page.evaluate("document.scrollingElement.scrollWidth") <= WIDTH


def test_a_signer_enrols_the_phone_approves_by_fingerprint_refuses_and_revokes(
    central_instance: Instance,
    phone_server: str,
    browser: Any,
    shot: Callable[[Any, str], Path],
) -> None:
    instance = central_instance
    signer = _signer(instance)
    context = browser.new_context(
        viewport={"width": WIDTH, "height": 844}, locale="vi-VN", has_touch=True, is_mobile=True
    )
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

    # the phone opens /m and is sent to the ordinary login first
    page.goto(f"{phone_server}/m")
    page.wait_for_url(re.compile(r"/login\?next=%2Fm$"))
    page.get_by_label(re.compile(r"^Tên đăng nhập")).fill(signer.user.username)
    page.get_by_label(re.compile(r"^Mật khẩu")).fill(PASSWORD)
    page.get_by_role("button", name="Đăng nhập").click()
    page.get_by_label(re.compile(r"^Mã")).fill(signer.code())
    page.get_by_role("button", name="Tiếp tục").click()
    page.wait_for_url(f"{phone_server}/m")
    _no_sideways_scroll(page)
    # the service worker (Web Push) controls /m itself, not only what lies below /m/
    scope = page.evaluate("navigator.serviceWorker.ready.then((r) => r.scope)")
    assert scope == f"{phone_server}/m"

    # enrol this phone: the password and a fresh OTP code again, then the "fingerprint"
    page.goto(f"{phone_server}/m/enrol")
    page.get_by_label("Mật khẩu").first.fill(PASSWORD)
    page.get_by_label("Mã OTP").first.fill(signer.code(1))
    assert page.get_by_label("Tên điện thoại này").input_value() == "Điện thoại của Thụ"
    page.get_by_role("button", name="Đăng ký bằng vân tay hoặc khuôn mặt").click()
    page.get_by_text("Đã đăng ký điện thoại này").wait_for()
    _no_sideways_scroll(page)
    shot(page, "01-enrolled")

    # a CSC client asks; the request appears on /m with each document listed
    first = _ask(instance, signer, "Quyết định phê duyệt dự toán 2027", "Tờ trình số liệu")
    page.goto(f"{phone_server}/m")
    card = page.locator(f"#a-{first}")
    card.get_by_text("Quyết định phê duyệt dự toán 2027").wait_for()
    assert "12/QĐ-UBND" in card.inner_text() and "Tờ trình số liệu" in card.inner_text()
    assert "2 giá trị băm cần ký" in card.inner_text()
    assert "Hệ thống quản lý văn bản điều hành" in card.inner_text()
    _no_sideways_scroll(page)
    shot(page, "02-waiting")

    card.get_by_role("button", name=BUTTON).click()
    page.get_by_text("Đã xác nhận: văn bản đang được ký.").wait_for()
    card.wait_for(state="detached")  # the list refreshed itself
    found = approvals.collect_sad(instance.ctx, signer.principal, first)
    assert found is not None and found[0].startswith("sad_")
    shot(page, "03-approved")

    # the next request arrives while the page is open: the poll brings it in; refuse it
    second = _ask(instance, signer, "Công văn xin ý kiến")
    card = page.locator(f"#a-{second}")
    card.get_by_text("Công văn xin ý kiến").wait_for(timeout=15_000)
    card.get_by_text("Từ chối", exact=True).click()
    card.get_by_label("Lý do").fill("Chưa đúng thể thức")
    card.get_by_role("button", name="Từ chối yêu cầu này").click()
    page.get_by_text("Đã từ chối: yêu cầu sẽ không được ký.").wait_for()
    assert _state(instance, signer, second) is ApprovalState.REFUSED
    shot(page, "04-refused")

    # the phone is lost: revoke it; its fingerprint approves nothing any more
    page.goto(f"{phone_server}/m/devices")
    _no_sideways_scroll(page)
    phone = page.locator(".device", has_text="Điện thoại của Thụ")
    phone.get_by_text("Thu hồi", exact=True).click()
    phone.get_by_label("Lý do").fill("Mất điện thoại")
    phone.get_by_role("button", name="Thu hồi Điện thoại của Thụ").click()
    page.get_by_text("Đã thu hồi").first.wait_for()
    shot(page, "05-revoked")

    third = _ask(instance, signer, "Quyết định khen thưởng")
    page.goto(f"{phone_server}/m")
    card = page.locator(f"#a-{third}")
    card.get_by_text("Quyết định khen thưởng").wait_for()
    assert card.get_by_role("button", name=BUTTON).count() == 0  # no phone left to offer
    # …and the revoked credential, still in the authenticator, signing this request's own
    # challenge, is refused by the server
    with instance.ctx.db.read() as session:
        challenge = list(approvals.get(signer.principal, session, third).challenge)
    answer = page.evaluate(
        """async ([id, challenge]) => {
            const enc = (b) => btoa(String.fromCharCode(...new Uint8Array(b)))
                .replace(/\\+/g, "-").replace(/\\//g, "_").replace(/=+$/, "");
            const cred = await navigator.credentials.get({publicKey: {
                challenge: new Uint8Array(challenge), rpId: "localhost",
                userVerification: "required"}});
            const r = cred.response;
            const response = await fetch(`/m/api/approvals/${id}/webauthn`, {
                method: "POST", credentials: "same-origin",
                headers: {"content-type": "application/json",
                          "x-csrf-token": document.body.dataset.csrf},
                body: JSON.stringify({credential: {id: cred.id, rawId: enc(cred.rawId),
                    type: cred.type, clientExtensionResults: {}, response: {
                    clientDataJSON: enc(r.clientDataJSON),
                    authenticatorData: enc(r.authenticatorData),
                    signature: enc(r.signature)}}})});
            return {status: response.status, body: await response.json()};
        }""",
        [third, challenge],
    )
    assert answer["status"] == 401 and answer["body"]["code"] == "webauthn_refused"
    assert _state(instance, signer, third) is ApprovalState.WAITING
    context.close()


def test_the_phone_app_is_installable_and_its_json_needs_a_login_and_the_csrf_token(
    central_instance: Instance, phone_server: str
) -> None:
    """The manifest and the service worker a browser installs, and the guards of /m/api."""
    with httpx.Client(base_url=phone_server, timeout=10) as http:
        manifest = http.get("/static/phone/manifest.webmanifest")
        assert manifest.headers["content-type"].startswith("application/manifest+json")
        app = manifest.json()
        assert (app["name"], app["start_url"], app["display"]) == (
            "kyso – Ký số",
            "/m",
            "standalone",
        )
        worker = http.get("/m/sw.js")
        assert worker.headers["service-worker-allowed"] == "/m"
        assert worker.headers["content-type"].startswith("text/javascript")
        assert "showNotification" in worker.text

        anonymous = http.get("/m/api/pending", headers={"accept": "application/json"})
        assert anonymous.status_code == 401 and anonymous.json()["code"] == "login_required"

        signer = _signer(central_instance)
        with central_instance.ctx.db.session() as session:
            token = sessions.start(session, session.get(User, signer.user.id))
        http.cookies.set("kyso_sid", token)
        page = http.get("/m", headers={"accept": "text/html"})
        csrf = re.search(r'data-csrf="([^"]+)"', page.text)
        assert page.status_code == 200 and csrf
        forged = http.post("/m/api/push/subscribe", json={"endpoint": "https://x.example/1"})
        assert forged.status_code == 403 and forged.json()["code"] == "csrf"

        # the PIN + OTP fallback through the plain form (no script needed)
        public_id = _ask(central_instance, signer, "Báo cáo quý IV")
        assert "Báo cáo quý IV" in http.get("/m", headers={"accept": "text/html"}).text
        wrong = http.post(
            f"/m/approvals/{public_id}/pin",
            data={"pin": "000000", "code": signer.code(), "csrf_token": csrf.group(1)},
        )
        assert wrong.status_code == 303
        assert _state(central_instance, signer, public_id) is ApprovalState.WAITING
        right = http.post(
            f"/m/approvals/{public_id}/pin",
            data={"pin": signer.pin, "code": signer.code(), "csrf_token": csrf.group(1)},
        )
        assert right.status_code == 303 and right.headers["location"] == "/m"
        assert _state(central_instance, signer, public_id) is ApprovalState.APPROVED


def test_a_unit_officer_revokes_a_lost_phone_from_the_owners_phone_list(
    central_instance: Instance, phone_server: str
) -> None:
    world = make_world(central_instance.ctx, central_instance.backend)
    signer = central_signer(world)  # a leader of Ba Bể, with the PIN + OTP fallback
    ctx = central_instance.ctx

    def visitor(key: str) -> tuple[httpx.Client, str]:
        with ctx.db.session() as session:
            token = sessions.start(session, session.get(User, world.users[key].id))
        http = httpx.Client(base_url=phone_server, timeout=10, cookies={"kyso_sid": token})
        page = http.get("/m/devices")
        found = re.search(r'data-csrf="([^"]+)"', page.text)
        assert found
        return http, found.group(1)

    other, _ = visitor("officer_ns")  # Ngân Sơn's officer does not see Ba Bể's people
    assert other.get(f"/m/devices?user={signer.user.public_id}").status_code == 404
    other.close()

    http, csrf = visitor("officer")
    listed = http.get(f"/m/devices?user={signer.user.public_id}")
    assert listed.status_code == 200 and "Điện thoại của Hoàng Văn Thụ" in listed.text
    device = re.search(r'action="/m/devices/([a-z0-9]+)/revoke"', listed.text)
    assert device
    back = f"/m/devices?user={signer.user.public_id}"
    done = http.post(
        f"/m/devices/{device.group(1)}/revoke",
        data={"reason": "báo mất qua điện thoại", "back": back, "csrf_token": csrf},
    )
    assert done.status_code == 303 and done.headers["location"] == back
    assert "Đã thu hồi" in http.get(back).text
    http.close()
    public_id = _ask_or_none(central_instance, signer)
    assert public_id is None  # no phone nor PIN left: nothing can be asked of this signer


def _ask_or_none(instance: Instance, signer: CentralSigner) -> str | None:
    from kyso.remote.factors import NoAuthenticator

    try:
        return _ask(instance, signer, "Văn bản sau khi thu hồi")
    except NoAuthenticator:
        return None
