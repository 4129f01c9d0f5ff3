"""Users: Argon2 hashes, password policy, lock-out, TOTP (RFC 6238) for admin and auditor."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import statistics
import struct
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from kyso import clock
from kyso.api import clients
from kyso.errors import Forbidden, InvalidInput, Unauthenticated
from kyso.ratelimit import Budget, Purpose, RateLimited
from kyso.registry import totp, users
from kyso.registry.access import cli_principal
from kyso.registry.users import LoginStatus
from kyso.store.models import AuditEntry, Role, User

ADMIN = cli_principal("cli:test")
PASSWORD = "Bac-Kan-ky-so-2017"


def rfc6238(secret_b32: str, moment: float, digits: int = 6) -> str:
    """An independent TOTP (RFC 6238 §4, HMAC-SHA1, 30 s), to check kyso's against."""
    key = base64.b32decode(secret_b32 + "=" * (-len(secret_b32) % 8))
    counter = int(moment) // 30
    mac = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = mac[19] & 0xF
    number = (int.from_bytes(mac[offset : offset + 4], "big") & 0x7FFFFFFF) % 10**digits
    return str(number).zfill(digits)


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (59, "94287082"),
        (1111111109, "07081804"),
        (1111111111, "14050471"),
        (1234567890, "89005924"),
        (2000000000, "69279037"),
        (20000000000, "65353130"),
    ],
)
def test_totp_matches_the_rfc_6238_vectors(moment, expected) -> None:
    secret = base64.b32encode(b"12345678901234567890").decode()
    assert totp.code_at(secret, moment, digits=8) == expected
    assert rfc6238(secret, moment, digits=8) == expected


def _user(registry, uniq, role=Role.SIGNER, unit="UBND xã Khang Ninh", password=PASSWORD):
    with registry.ctx.db.session() as session:
        made = users.create(
            ADMIN,
            session,
            users.UserInput(
                username=f"u{uniq()}",
                full_name="Nông Văn Thử",
                password=password,
                role=role,
                unit=registry.unit(unit).public_id,
            ),
        )
        return made.user.username, made.totp


def _login(registry, username, password, code=None, now=None):
    with registry.ctx.db.session() as session:
        result = users.login(session, username, password, code, now=now)
        return result.status


def test_only_an_argon2id_hash_is_stored(registry, uniq) -> None:
    username, _ = _user(registry, uniq)
    with registry.ctx.db.read() as session:
        user = users.by_username(session, username)
        assert user is not None
        assert user.password_hash.startswith("$argon2id$")
        assert PASSWORD not in user.password_hash
        details = " ".join(
            session.execute(
                select(AuditEntry.details).where(AuditEntry.target == user.public_id)
            ).scalars()
        )
        assert PASSWORD not in details
    assert _login(registry, username, PASSWORD) is LoginStatus.OK


@pytest.mark.parametrize("password", ["short-9ch", "aaaaaaaaaaaaaaa"])
def test_password_policy(registry, uniq, password) -> None:
    with pytest.raises(InvalidInput):
        _user(registry, uniq, password=password)


def test_password_may_not_contain_the_user_name(registry, uniq) -> None:
    name = f"u{uniq()}"
    with pytest.raises(InvalidInput) as caught, registry.ctx.db.session() as session:
        users.create(
            ADMIN,
            session,
            users.UserInput(
                username=name, full_name="X", password=f"{name}-2024!", role=Role.AUDITOR
            ),
        )
    assert "user name" in caught.value.message("en")


def _throttle(address: str | None = None) -> users.Throttle:
    """An address of its own (the buckets live as long as the test database), with budgets
    small enough to reach: 5 failures per address, 10 per user name."""
    return users.Throttle(
        address or f"203.0.113.{secrets.randbelow(250)}-{secrets.token_hex(4)}",
        {
            Purpose.LOGIN: Budget(1.0, 1000),
            Purpose.LOGIN_FAILURE: Budget(60.0, 5),
            Purpose.LOGIN_ACCOUNT: Budget(360.0, 10),
        },
    )


def _try(registry, username, password, throttle, now):
    with registry.ctx.db.session() as session:
        return users.login(session, username, password, now=now, throttle=throttle).status


def test_wrong_passwords_never_lock_the_account(registry, uniq) -> None:
    username, _ = _user(registry, uniq)
    start = clock.now()
    for attempt in range(20):
        assert _login(registry, username, "wrong-password", now=start) is LoginStatus.FAILED, (
            attempt
        )
    assert _login(registry, username, PASSWORD, now=start) is LoginStatus.OK
    with registry.ctx.db.read() as session:
        user = users.by_username(session, username)
        assert user is not None and user.failed_logins == 0 and user.locked_until is None


def test_an_address_that_keeps_failing_is_throttled_not_the_account(registry, uniq) -> None:
    username, _ = _user(registry, uniq)
    start = clock.now()
    guesser = _throttle()
    for _ in range(5):
        assert _try(registry, username, "wrong-password", guesser, start) is LoginStatus.FAILED
    # Nothing is checked any more from that address, not even the right password …
    assert _try(registry, username, PASSWORD, guesser, start) is LoginStatus.THROTTLED
    with registry.ctx.db.session() as session:
        result = users.login(session, username, PASSWORD, now=start, throttle=guesser)
    with pytest.raises(RateLimited) as caught:
        result.raise_for_status()
    assert "thử lại sau" in caught.value.message("vi") and caught.value.http_status == 429
    # … while the owner, from their own address, logs in at once.
    assert _try(registry, username, PASSWORD, _throttle(), start) is LoginStatus.OK
    # A minute later the guesser has one more try.
    later = start + timedelta(seconds=61)
    assert _try(registry, username, "wrong-password", guesser, later) is LoginStatus.FAILED
    assert _try(registry, username, "wrong-password", guesser, later) is LoginStatus.THROTTLED


@pytest.mark.parametrize("exists", [True, False], ids=["existing user", "no such user"])
def test_a_name_under_attack_slows_down_only_addresses_that_failed(registry, uniq, exists) -> None:
    username = _user(registry, uniq)[0] if exists else f"u{uniq()}-nobody"
    start = clock.now()
    botnet = [_throttle() for _ in range(5)]
    for bot in botnet:  # ten failures on the name, two from each address
        for _ in range(2):
            assert _try(registry, username, "wrong-password", bot, start) is LoginStatus.FAILED
    # Each bot is far from its own limit, but it failed on a name under attack: refused.
    assert _try(registry, username, "guess-3", botnet[0], start) is LoginStatus.THROTTLED
    # A clean address is still heard: the right password logs in, a wrong one marks it.
    owner = _try(registry, username, PASSWORD, _throttle(), start)
    assert owner is (LoginStatus.OK if exists else LoginStatus.FAILED)
    newcomer = _throttle()
    assert _try(registry, username, "guess-4", newcomer, start) is LoginStatus.FAILED
    assert _try(registry, username, "guess-5", newcomer, start) is LoginStatus.THROTTLED


def test_every_failure_reads_the_same_and_costs_the_same(registry, uniq) -> None:
    """No account enumeration: no such user, a wrong password and a disabled account give the
    same status and message, each after one Argon2 check."""
    username, _ = _user(registry, uniq)
    disabled, _ = _user(registry, uniq)
    with registry.ctx.db.session() as session:
        user = users.by_username(session, disabled)
        assert user is not None
        users.deactivate(ADMIN, session, user.public_id)
    cases = {"unknown": f"u{uniq()}-nobody", "wrong password": username, "disabled": disabled}
    messages = set()
    timings: dict[str, list[float]] = {case: [] for case in cases}
    for _ in range(5):
        for case, name in cases.items():
            begun = time.perf_counter()
            with registry.ctx.db.session() as session:
                result = users.login(session, name, "wrong-password", throttle=_throttle())
            timings[case].append(time.perf_counter() - begun)
            assert result.status is LoginStatus.FAILED and result.user is None, case
            with pytest.raises(Unauthenticated) as caught:
                result.raise_for_status()
            messages.add((caught.value.message("vi"), caught.value.message("en")))
    assert len(messages) == 1
    medians = {case: statistics.median(times) for case, times in timings.items()}
    print("\n" + ", ".join(f"{case}: {t * 1000:.0f} ms" for case, t in medians.items()))
    slowest, fastest = max(medians.values()), min(medians.values())
    assert fastest > slowest * 0.5, medians  # Argon2 (~tens of ms) dominates every case


def test_login_audit_entries_name_the_client_address(registry, uniq) -> None:
    username, _ = _user(registry, uniq)
    address = f"192.0.2.{secrets.randbelow(250)}"
    now = clock.now()
    assert _try(registry, username, "wrong-password", _throttle(address), now) is LoginStatus.FAILED
    assert _try(registry, username, PASSWORD, _throttle(address), now) is LoginStatus.OK
    with registry.ctx.db.read() as session:
        user = users.by_username(session, username)
        assert user is not None
        entries = dict(
            session.execute(
                select(AuditEntry.action, AuditEntry.details).where(
                    AuditEntry.target == user.public_id,
                    AuditEntry.action.in_(["user.login_failed", "user.login"]),
                )
            ).all()
        )
    assert set(entries) == {"user.login_failed", "user.login"}
    assert all(address in str(details) for details in entries.values()), entries


def test_a_success_resets_the_failure_count(registry, uniq) -> None:
    username, _ = _user(registry, uniq)
    now = clock.now()
    for _ in range(4):
        _login(registry, username, "wrong-password", now=now)
    assert _login(registry, username, PASSWORD, now=now) is LoginStatus.OK
    for _ in range(4):
        assert _login(registry, username, "wrong-password", now=now) is LoginStatus.FAILED


@pytest.mark.parametrize("role", [Role.PROVINCE_ADMIN, Role.AUDITOR])
def test_admin_and_auditor_need_a_totp_code(registry, uniq, role) -> None:
    username, enrolment = _user(registry, uniq, role=role, unit="Sở Thông tin và Truyền thông")
    assert enrolment is not None
    assert enrolment.uri.startswith(f"otpauth://totp/kyso:{username}?secret={enrolment.secret}")
    now = datetime(2026, 11, 28, 9, 0, 10, tzinfo=UTC)
    code = rfc6238(enrolment.secret, now.timestamp())

    assert _login(registry, username, PASSWORD, now=now) is LoginStatus.NEEDS_TOTP
    assert (
        _login(registry, username, PASSWORD, "000000" if code != "000000" else "111111", now=now)
        is LoginStatus.FAILED
    )
    old = rfc6238(enrolment.secret, (now - timedelta(minutes=3)).timestamp())
    assert _login(registry, username, PASSWORD, old, now=now) is LoginStatus.FAILED
    assert _login(registry, username, "wrong-password", code, now=now) is LoginStatus.FAILED
    assert _login(registry, username, PASSWORD, code, now=now) is LoginStatus.OK
    # RFC 6238 §5.2: the same code is never accepted twice.
    assert (
        _login(registry, username, PASSWORD, code, now=now + timedelta(seconds=5))
        is LoginStatus.FAILED
    )
    later = now + timedelta(seconds=30)
    assert (
        _login(
            registry, username, PASSWORD, rfc6238(enrolment.secret, later.timestamp()), now=later
        )
        is LoginStatus.OK
    )


def test_a_signer_logs_in_with_a_password_only(registry, uniq) -> None:
    username, enrolment = _user(registry, uniq, role=Role.SIGNER)
    assert enrolment is None
    assert _login(registry, username, PASSWORD) is LoginStatus.OK


def test_demo_admin_logs_in_with_the_printed_password_and_totp(registry) -> None:
    now = clock.now()
    code = rfc6238(registry.totp_secret("admin"), now.timestamp())
    with registry.ctx.db.session() as session:
        result = users.login(session, "admin", registry.password("admin"), code, now=now)
        user = result.raise_for_status()
        principal = users.principal_for_user(session, user)
    assert principal.role is Role.PROVINCE_ADMIN
    assert principal.org_path == registry.unit("Sở Thông tin và Truyền thông").path


def test_change_password_needs_the_old_one(registry, uniq) -> None:
    username, _ = _user(registry, uniq)
    with registry.ctx.db.read() as session:
        user = users.by_username(session, username)
        assert user is not None
        principal = users.principal_for_user(session, user)
    with pytest.raises(Forbidden), registry.ctx.db.session() as session:
        users.change_password(principal, session, "not-the-old-one", "Mat-khau-moi-2025")
    with pytest.raises(InvalidInput), registry.ctx.db.session() as session:
        users.change_password(principal, session, PASSWORD, "short")
    with registry.ctx.db.session() as session:
        users.change_password(principal, session, PASSWORD, "Mat-khau-moi-2025")
    assert _login(registry, username, PASSWORD) is LoginStatus.FAILED
    assert _login(registry, username, "Mat-khau-moi-2025") is LoginStatus.OK


def test_a_deactivated_user_cannot_log_in_nor_use_tokens(registry, uniq) -> None:
    username, _ = _user(registry, uniq, role=Role.UNIT_OFFICER, unit="UBND huyện Ba Bể")
    with registry.ctx.db.session() as session:
        user = users.by_username(session, username)
        assert user is not None
        token = clients.create(session, f"t-{username}", ["registry:read"], "test", user_id=user.id)
        public_id = user.public_id
    with registry.ctx.db.read() as session:
        assert clients.authenticate_principal(session, f"Bearer {token}").user_id is not None
    with registry.ctx.db.session() as session:
        users.deactivate(ADMIN, session, public_id)
    assert _login(registry, username, PASSWORD) is LoginStatus.FAILED
    with pytest.raises(Unauthenticated), registry.ctx.db.read() as session:
        clients.authenticate_principal(session, f"Bearer {token}")


def test_unit_roles_need_a_unit(registry, uniq) -> None:
    with pytest.raises(InvalidInput), registry.ctx.db.session() as session:
        users.create(
            ADMIN,
            session,
            users.UserInput(
                username=f"u{uniq()}",
                full_name="Không Đơn Vị",
                password=PASSWORD,
                role=Role.UNIT_OFFICER,
            ),
        )


def test_principal_for_user_is_confined_to_the_unit(registry) -> None:
    officer = registry.principal("babe")
    assert officer.role is Role.UNIT_OFFICER
    assert officer.org_path == registry.unit("UBND huyện Ba Bể").path
    assert officer.covers(registry.unit("UBND xã Khang Ninh").path)
    assert not officer.covers(registry.unit("UBND huyện Chợ Đồn").path)
    with registry.ctx.db.read() as session:
        assert (
            session.execute(select(User.totp_secret).where(User.username == "babe")).scalar_one()
            is None
        )
