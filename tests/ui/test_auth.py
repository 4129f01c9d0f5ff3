"""Logging in and out through the forms: password, TOTP, lock-out, CSRF, cookies."""

from __future__ import annotations

import dataclasses
import hashlib
import re
import secrets
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from conftest import Instance
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from support.world import World

from kyso import clock
from kyso.context import Context
from kyso.registry import login_challenges, sessions, totp, users
from kyso.registry.access import cli_principal
from kyso.settings import Settings
from kyso.store.models import LoginChallenge, Role, WebSession
from kyso.web.app import create_app
from kyso.web.ui.auth import PENDING

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


def test_each_login_step_is_one_write_transaction(
    instance: Instance, world: World, web: Web, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check (its audit entry, the throttle's buckets) and what it leads to (the browser
    session, or the challenge for the code) are written together: a login is never half
    recorded, and costs one write."""
    username, password, secret = _make_user(instance, world, Role.PROVINCE_ADMIN, "province")
    assert secret is not None
    web.get("/login")
    db = web.client.app.state.context.db  # type: ignore[attr-defined]
    written: list[str] = []
    session = db.session

    def counted() -> object:
        written.append("write")
        return session()

    monkeypatch.setattr(db, "session", counted)
    assert _form(web, "/login", {"username": username, "password": password}).status_code == 200  # type: ignore[attr-defined]
    assert len(written) == 1
    code = _form(web, "/login/code", {"code": totp.code_at(secret, clock.now())})
    assert code.status_code == 303  # type: ignore[attr-defined]
    assert len(written) == 2
    monkeypatch.undo()
    assert web.get("/").status_code == 200  # the session written with the code opens pages


@pytest.fixture
def real_budgets(instance: Instance) -> Iterator[FastAPI]:
    """The app with the default login budgets (the suite's instance raises them: every test
    logs in from one address)."""
    base = Settings.from_env(instance.env)
    defaults = Settings(home=base.home, database_url=base.database_url)
    app = create_app(
        dataclasses.replace(
            base,
            login_per_minute=defaults.login_per_minute,
            login_failures_per_hour=defaults.login_failures_per_hour,
        ),
        scheduler=False,
    )
    yield app
    app.state.context.close()


def _visitor(app: FastAPI, world: World, address: str | None = None) -> Web:
    """A browser at ``address`` (a new one unless given)."""
    address = address or f"203.0.113.{secrets.randbelow(250)}-{secrets.token_hex(4)}"
    return Web(TestClient(app, raise_server_exceptions=False, client=(address, 40000)), world)


def test_login_failures_do_not_tell_whether_an_account_exists(
    instance: Instance, world: World, web: Web
) -> None:
    username, _, _ = _make_user(instance, world, Role.UNIT_OFFICER, "nganson")
    disabled, _, _ = _make_user(instance, world, Role.SIGNER, "babe")
    with instance.ctx.db.session() as session:
        user = users.by_username(session, disabled)
        assert user is not None
        users.deactivate(cli_principal("cli:test"), session, user.public_id)
    wrong = [_form(web, "/login", {"username": username, "password": "sai"}) for _ in range(6)]
    answers = {
        "wrong password, six times": wrong[-1],
        "no such user": _form(web, "/login", {"username": "khong-co-ai", "password": "sai"}),
        "disabled": _form(web, "/login", {"username": disabled, "password": "đúng-mật-khẩu-2026"}),
    }
    for case, answer in answers.items():
        assert answer.status_code == 401, case  # type: ignore[attr-defined]
    errors = {
        case: re.search(r'class="[^"]*error[^"]*"[^>]*>([^<]+)<', answer.text).group(1)  # type: ignore[attr-defined,union-attr]
        for case, answer in answers.items()
    }
    assert len(set(errors.values())) == 1, errors
    assert "tạm khóa" not in str(errors)


def test_an_address_guessing_passwords_is_throttled_but_the_owner_still_logs_in(
    instance: Instance, world: World, real_budgets: FastAPI, fake_clock: clock.FakeClock
) -> None:
    username, password, _ = _make_user(instance, world, Role.UNIT_OFFICER, "tnmt")
    guesser = _visitor(real_budgets, world)
    statuses = [
        _form(guesser, "/login", {"username": username, "password": f"sai-{i}"}).status_code  # type: ignore[attr-defined]
        for i in range(11)
    ]
    assert statuses == [401] * 10 + [429]
    refused = _form(guesser, "/login", {"username": username, "password": password})
    assert refused.status_code == 429 and "thử lại sau" in refused.text  # type: ignore[attr-defined]
    owner = _visitor(real_budgets, world)
    assert _form(owner, "/login", {"username": username, "password": password}).status_code == 303  # type: ignore[attr-defined]


def test_every_login_attempt_from_an_address_is_counted(
    instance: Instance, world: World, real_budgets: FastAPI, fake_clock: clock.FakeClock
) -> None:
    """Right or wrong, an address has 60 attempts a minute (20 at once)."""
    username, password, _ = _make_user(instance, world, Role.UNIT_OFFICER, "babe")
    address = f"198.51.100.{secrets.randbelow(250)}-{secrets.token_hex(4)}"
    statuses = [
        _form(
            _visitor(real_budgets, world, address),
            "/login",
            {"username": username, "password": password},
        ).status_code  # type: ignore[attr-defined]
        for _ in range(21)
    ]
    assert statuses == [303] * 20 + [429]


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


def test_guessing_the_current_password_is_throttled_but_locks_nobody_out(
    instance: Instance, world: World, real_budgets: FastAPI, fake_clock: clock.FakeClock
) -> None:
    username, password, _ = _make_user(instance, world, Role.UNIT_OFFICER, "tnmt")
    with instance.ctx.db.read() as session:
        user = users.by_username(session, username)
    assert user is not None
    visitor = _visitor(real_budgets, world).login(user)
    change = {"new": "mật-khẩu-mới-2027", "again": "mật-khẩu-mới-2027"}
    guesses = [
        visitor.post("/account/password", {"current": f"đoán-sai-{i}", **change}).status_code
        for i in range(10)
    ]
    assert guesses == [422] * 10
    # From this address nothing is checked any more, not even the right password …
    right = visitor.post("/account/password", {"current": password, **change})
    assert right.status_code == 422
    assert re.search(r'id="e-current">[^<]*thử lại sau', right.text)
    # … but the owner logs in from their own address, and the session is not thrown out.
    owner = _visitor(real_budgets, world)
    assert _form(owner, "/login", {"username": username, "password": password}).status_code == 303  # type: ignore[attr-defined]
    assert visitor.get("/").status_code == 200


def _pending(web: Web) -> str:
    token = web.client.cookies.get(PENDING)
    assert token
    return token


def _wrong(code: str) -> str:
    return "000000" if code != "000000" else "111111"


def test_the_code_step_is_bound_to_the_browser_and_only_a_hash_is_kept(
    instance: Instance, world: World, web: Web, web_for: Callable[..., Web]
) -> None:
    username, password, secret = _make_user(instance, world, Role.PROVINCE_ADMIN, "province")
    assert secret is not None
    _form(web, "/login", {"username": username, "password": password})
    token = _pending(web)
    with instance.ctx.db.read() as session:
        stored = session.execute(
            select(LoginChallenge).where(
                LoginChallenge.token_hash == hashlib.sha256(token.encode()).hexdigest()
            )
        ).scalar_one()
    assert token not in (stored.token_hash, stored.browser_hash)
    # The cookie copied into another browser opens nothing there …
    thief = web_for()
    thief.client.cookies.set(PENDING, token, domain="testserver.local", path="/")
    code = totp.code_at(secret, clock.now())
    stolen = _form(thief, "/login/code", {"code": code})
    assert stolen.status_code == 303 and stolen.headers["location"] == "/login"  # type: ignore[attr-defined]
    assert thief.get("/", follow_redirects=False).status_code == 303
    # … and the browser that gave the password still finishes its login.
    right = _form(web, "/login/code", {"code": code})
    assert right.status_code == 303 and right.headers["location"] == "/"  # type: ignore[attr-defined]


def test_a_challenge_is_used_once(instance: Instance, world: World) -> None:
    user = world.users["officer"]
    with instance.ctx.db.session() as session:
        token = login_challenges.start(session, user, "browser-id-" + "a" * 20)
    with instance.ctx.db.session() as session:
        assert login_challenges.spend(session, token, "browser-id-" + "a" * 20) is not None
    with instance.ctx.db.session() as session:  # replayed after it served
        assert login_challenges.spend(session, token, "browser-id-" + "a" * 20) is None


def test_a_wrong_code_spends_the_challenge_and_tries_are_few(
    instance: Instance, world: World, web: Web
) -> None:
    username, password, secret = _make_user(instance, world, Role.AUDITOR, "province")
    assert secret is not None
    _form(web, "/login", {"username": username, "password": password})
    first = _pending(web)
    code = totp.code_at(secret, clock.now())
    wrong = _form(web, "/login/code", {"code": _wrong(code)})
    assert wrong.status_code == 401  # type: ignore[attr-defined]
    second = _pending(web)
    assert second != first
    # The first cookie, replayed after its wrong code, is refused even with the right code.
    web.client.cookies.set(PENDING, first, domain="testserver.local", path="/")
    replay = _form(web, "/login/code", {"code": code})
    assert replay.status_code == 303 and replay.headers["location"] == "/login"  # type: ignore[attr-defined]
    web.client.cookies.set(PENDING, second, domain="testserver.local", path="/")
    assert _form(web, "/login/code", {"code": _wrong(code)}).status_code == 401  # type: ignore[attr-defined]
    last = _form(web, "/login/code", {"code": _wrong(code)})  # the third wrong code
    assert last.status_code == 303 and last.headers["location"] == "/login"  # type: ignore[attr-defined]
    assert login_challenges.MAX_TRIES == 3
    assert web.get("/", follow_redirects=False).status_code == 303  # not logged in


def test_a_challenge_expires_after_five_minutes(
    instance: Instance, world: World, web: Web, fake_clock: clock.FakeClock
) -> None:
    username, password, secret = _make_user(instance, world, Role.PROVINCE_ADMIN, "province")
    assert secret is not None
    _form(web, "/login", {"username": username, "password": password})
    fake_clock.advance(timedelta(minutes=5, seconds=1))
    late = _form(web, "/login/code", {"code": totp.code_at(secret, clock.now())})
    assert late.status_code == 303 and late.headers["location"] == "/login"  # type: ignore[attr-defined]
    with instance.ctx.db.session() as session:
        assert login_challenges.sweep(session) >= 1


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
