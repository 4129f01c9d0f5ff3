"""Logging in and out through the forms: password, TOTP, lock-out, CSRF, cookies."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from datetime import timedelta

from conftest import Instance
from sqlalchemy import select
from support.world import World

from kyso import clock
from kyso.context import Context
from kyso.registry import sessions, totp, users
from kyso.registry.access import cli_principal
from kyso.store.models import Role, WebSession

from .conftest import CSRF, Web


def _make_user(
    instance: Instance, world: World, role: Role, unit: str
) -> tuple[str, str, str | None]:
    username = f"u{world.tag}{role.value[:3]}".replace("_", "")
    password = "đúng-mật-khẩu-2026"
    with instance.ctx.db.session() as session:
        made = users.create(
            cli_principal("cli:test"),
            session,
            users.UserInput(
                username=username,
                full_name="Nguyễn Thị Lan",
                password=password,
                role=role,
                unit=world.unit(unit).public_id,
            ),
        )
    return username, password, made.totp.secret if made.totp else None


def _form(web: Web, url: str, data: dict[str, str]) -> object:
    page = web.get("/login")
    token = CSRF.search(page.text)
    assert token
    return web.client.post(url, data={**data, "csrf_token": token.group(1)}, follow_redirects=False)


def test_officer_logs_in_with_a_password_and_out_again(
    instance: Instance, world: World, web: Web
) -> None:
    username, password, secret = _make_user(instance, world, Role.UNIT_OFFICER, "babe")
    assert secret is None
    page = web.get("/login")
    assert page.status_code == 200
    assert "Đăng nhập" in page.text  # Vietnamese by default
    cookie = page.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax")
    token = CSRF.search(page.text).group(1)  # type: ignore[union-attr]
    before = web.client.cookies.get("kyso_sid")
    answer = web.client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": token},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert web.client.cookies.get("kyso_sid") != before  # a fresh id after login
    home = web.get("/")
    assert home.status_code == 200
    assert "Xin chào, Nguyễn Thị Lan" in home.text
    token = CSRF.search(home.text).group(1)  # type: ignore[union-attr]
    out = web.client.post("/logout", data={"csrf_token": token}, follow_redirects=False)
    assert out.status_code == 303
    again = web.get("/", follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"].startswith("/login")


def test_admin_needs_the_totp_code_and_a_code_is_used_once(
    instance: Instance, world: World, web: Web, web_for: Callable[..., Web]
) -> None:
    username, password, secret = _make_user(instance, world, Role.PROVINCE_ADMIN, "province")
    assert secret is not None
    answer = _form(web, "/login", {"username": username, "password": password})
    assert answer.status_code == 200  # the code form
    assert 'name="code"' in answer.text
    code = totp.code_at(secret, clock.now())
    wrong = _form(web, "/login/code", {"code": "12345"})
    assert wrong.status_code == 422 and "6 chữ số" in wrong.text
    right = _form(web, "/login/code", {"code": code})
    assert right.status_code == 303
    assert web.get("/").status_code == 200
    # The same code in another browser is refused (RFC 6238 §5.2).
    other = web_for()
    _form(other, "/login", {"username": username, "password": password})
    replay = _form(other, "/login/code", {"code": code})
    assert replay.status_code == 401


def test_wrong_passwords_lock_the_account(instance: Instance, world: World, web: Web) -> None:
    username, password, _ = _make_user(instance, world, Role.UNIT_OFFICER, "nganson")
    statuses = [
        _form(web, "/login", {"username": username, "password": "sai-mật-khẩu"}).status_code  # type: ignore[attr-defined]
        for _ in range(users.MAX_FAILURES)
    ]
    assert statuses[-1] == 423
    locked = _form(web, "/login", {"username": username, "password": password})
    assert locked.status_code == 423  # type: ignore[attr-defined]
    assert "tạm khóa" in locked.text  # type: ignore[attr-defined]


def test_empty_login_fields_get_messages_next_to_them(web: Web) -> None:
    answer = _form(web, "/login", {"username": "", "password": ""})
    assert answer.status_code == 422  # type: ignore[attr-defined]
    text = answer.text  # type: ignore[attr-defined]
    assert re.search(r'id="e-username">Nhập tên đăng nhập', text)
    assert re.search(r'id="e-password">Nhập mật khẩu', text)


def test_a_form_without_the_csrf_token_is_refused(web_for: Callable[..., Web]) -> None:
    officer = web_for("officer")
    answer = officer.post("/logout", csrf=False)
    assert answer.status_code == 403
    assert "Biểu mẫu đã hết hạn" in answer.text
    forged = officer.client.post(
        "/logout",
        data={"csrf_token": "0" * 64},
        headers={"accept": "text/html"},
        follow_redirects=False,
    )
    assert forged.status_code == 403
    foreign = officer.client.post(
        "/logout",
        data={"csrf_token": officer.csrf()},
        headers={"origin": "https://evil.example", "accept": "text/html"},
        follow_redirects=False,
    )
    assert foreign.status_code == 403


def test_language_switch_and_english_pages(web_for: Callable[..., Web]) -> None:
    officer = web_for("officer")
    assert "Việc cần làm" in officer.get("/").text
    officer.get("/lang/en?next=/")
    assert "Waiting for you" in officer.get("/").text
    # only paths of this site are followed after the switch
    answer = officer.get("/lang/vi?next=https://evil.example/", follow_redirects=False)
    assert answer.headers["location"] == "/"


def test_change_password_checks_fields_and_logs_out_other_browsers(
    instance: Instance, world: World, web_for: Callable[..., Web]
) -> None:
    username, password, _ = _make_user(instance, world, Role.UNIT_OFFICER, "babe")
    with instance.ctx.db.read() as session:
        user = users.by_username(session, username)
    assert user is not None
    first, second = web_for().login(user), web_for().login(user)
    mismatch = first.post(
        "/account/password", {"current": password, "new": "mật-khẩu-mới-2027", "again": "khác"}
    )
    assert mismatch.status_code == 422 and 'id="e-again"' in mismatch.text
    short = first.post("/account/password", {"current": password, "new": "ngắn", "again": "ngắn"})
    assert short.status_code == 422 and 'id="e-new"' in short.text
    wrong = first.post(
        "/account/password",
        {"current": "không-phải", "new": "mật-khẩu-mới-2027", "again": "mật-khẩu-mới-2027"},
    )
    assert wrong.status_code == 422 and 'id="e-current"' in wrong.text
    done = first.post(
        "/account/password",
        {"current": password, "new": "mật-khẩu-mới-2027", "again": "mật-khẩu-mới-2027"},
    )
    assert done.status_code == 303
    assert first.get("/").status_code == 200
    assert second.get("/", follow_redirects=False).status_code == 303  # logged out


def test_pages_need_a_login_and_unknown_pages_answer_in_html(web: Web) -> None:
    answer = web.get("/", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/login?next=%2F"
    missing = web.get("/no-such-page")
    assert missing.status_code == 404
    assert "text/html" in missing.headers["content-type"]
    assert "Không tìm thấy" in missing.text


def test_idle_and_expired_sessions_open_nothing_and_are_swept(
    instance: Instance, world: World
) -> None:
    ctx = instance.ctx
    user = world.users["officer"]
    start = clock.now()
    with ctx.db.session() as session:
        token = sessions.start(session, user, now=start)
    with ctx.db.read() as session:
        assert sessions.find(session, token, now=start + timedelta(minutes=29)) is not None
        assert sessions.find(session, token, now=start + sessions.IDLE) is None
        assert sessions.find(session, "not-a-token", now=start) is None
    with ctx.db.session() as session:
        sessions.touch(session, _session_id(ctx, token), start + timedelta(minutes=25))
    with ctx.db.read() as session:  # activity keeps it open past the first 30 minutes
        assert sessions.find(session, token, now=start + timedelta(minutes=50)) is not None
        assert sessions.find(session, token, now=start + sessions.ABSOLUTE) is None
    with ctx.db.session() as session:
        assert sessions.sweep(session, now=start + sessions.ABSOLUTE) >= 1
    with ctx.db.read() as session:
        assert sessions.find(session, token, now=start + timedelta(minutes=26)) is None


def _session_id(ctx: Context, token: str) -> int:
    with ctx.db.read() as session:
        return session.execute(
            select(WebSession.id).where(
                WebSession.token_hash == hashlib.sha256(token.encode()).hexdigest()
            )
        ).scalar_one()


def test_guessing_the_current_password_locks_the_account_but_not_the_session(
    instance: Instance, world: World, web_for: Callable[..., Web]
) -> None:
    username, password, _ = _make_user(instance, world, Role.UNIT_OFFICER, "tnmt")
    with instance.ctx.db.read() as session:
        user = users.by_username(session, username)
    assert user is not None
    visitor = web_for().login(user)
    guesses = [
        visitor.post(
            "/account/password",
            {"current": f"đoán-sai-{i}", "new": "mật-khẩu-mới-2027", "again": "mật-khẩu-mới-2027"},
        ).status_code
        for i in range(users.MAX_FAILURES)
    ]
    assert guesses == [422] * users.MAX_FAILURES
    # Locked now: even the right password is refused, and a new login too…
    right = visitor.post(
        "/account/password",
        {"current": password, "new": "mật-khẩu-mới-2027", "again": "mật-khẩu-mới-2027"},
    )
    assert right.status_code == 422 and "tạm khóa" in right.text
    assert (
        _form(web_for(), "/login", {"username": username, "password": password}).status_code == 423
    )  # type: ignore[attr-defined]
    # … but someone typing wrong passwords does not throw the user out of their session.
    assert visitor.get("/").status_code == 200


def test_hostile_values_get_a_clear_refusal_not_an_error(
    web: Web, web_for: Callable[..., Web]
) -> None:
    page = web.get("/login")
    token = CSRF.search(page.text).group(1)  # type: ignore[union-attr]
    nul = web.client.post(
        "/login",
        data={"username": "ab\x00c", "password": "x", "csrf_token": token},
        headers={"accept": "text/html"},
    )
    assert nul.status_code == 422 and "NUL" in nul.text
    assert web.get("/login?next=%00").status_code == 422
    accented = web.client.post(
        "/login",
        data={"username": "a", "password": "b", "csrf_token": "é" * 64},
        headers={"accept": "text/html"},
    )
    assert accented.status_code == 403
    planted = web.client.get(
        "/login", headers=[(b"accept", b"text/html"), (b"cookie", "kyso_flash=e30.é".encode())]
    )
    assert planted.status_code == 200
    officer = web_for("officer")
    assert officer.get("/requests?batch=a%00b").status_code == 422
    assert officer.post("/devices/new", {"unit": "a\x00b"}).status_code == 422
