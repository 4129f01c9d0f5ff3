"""CSC API access tokens: who calls the CSC endpoints, and for how long.

CSC API v1.0.4.0 §8.2–8.3 / v2.0.0 §8.2–8.3: a client gets a bearer token from ``auth/login``
(a person: HTTP Basic user name and password, plus the TOTP code when their login needs one)
or from ``oauth2/token`` with the OAuth 2.0 client credentials grant (RFC 6749 §4.4: a
system, whose ``client_id`` is its kyso API client's name and ``client_secret`` its
``kyso_`` token). Tokens are 256-bit random, live ``KYSO_CSC_TOKEN_SECONDS`` and only their
SHA-256 is stored (table ``csc_access_tokens``), like kyso's API tokens. A person's kyso API
token (``kyso_…``) is accepted as a bearer token too, so existing integrations need no login.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from kyso import clock
from kyso.api.clients import TOKEN_PREFIX as API_TOKEN_PREFIX
from kyso.api.clients import authenticate_principal
from kyso.audit.log import Event, record
from kyso.errors import KysoError, TooManyRequests
from kyso.registry import users
from kyso.registry.access import Principal
from kyso.store.models import ApiClient, CscAccessToken, Role, User

if TYPE_CHECKING:
    from kyso.context import Context

TOKEN_PREFIX = "csc_"  # noqa: S105 (a prefix, not a secret)
SIGN_SCOPE = "documents:sign"


class TokenProblem(enum.StrEnum):
    MISSING = "missing"
    INVALID = "invalid"
    EXPIRED = "expired"


class InvalidToken(KysoError):
    """RFC 6750 §3.1 ``invalid_token`` (CSC: 401): missing, unknown, revoked or expired."""

    code = "invalid_token"
    http_status = 401
    message_vi = "Mã truy cập CSC không hợp lệ hoặc đã hết hạn."
    message_en = "The CSC access token is not valid or has expired."

    def __init__(self, problem: TokenProblem) -> None:
        super().__init__(problem.value)
        self.problem = problem


class LoginFailed(KysoError):
    """``auth/login`` refused: wrong user name, password or TOTP code (one answer for all)."""

    code = "authentication_error"
    http_status = 401
    message_vi = "Sai tên đăng nhập, mật khẩu hoặc mã xác thực."
    message_en = "Wrong user name, password or authentication code."


class NeedsOtp(LoginFailed):
    """The password was right but the user's login has a second step: the TOTP code."""

    message_vi = "Tài khoản này cần mã xác thực (TOTP): gửi kèm trường OTP."
    message_en = "This account needs its TOTP code: send it in the OTP field."


class InvalidClient(KysoError):
    """RFC 6749 §5.2 ``invalid_client``: unknown client, wrong secret, or not a system."""

    code = "invalid_client"
    http_status = 401
    message_vi = "Ứng dụng không được xác thực."
    message_en = "Client authentication failed."


@dataclass(frozen=True)
class Caller:
    """Who calls the CSC API: a person (``user``) or a system (``client_name``)."""

    principal: Principal
    user: User | None
    client_name: str | None
    token_id: int | None  # the CSC token's row, None for a kyso_ API token

    @property
    def is_system(self) -> bool:
        return self.user is None


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _issue(session: Session, *, user_id: int | None, client_id: int | None, seconds: int) -> str:
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = clock.now()
    session.add(
        CscAccessToken(
            token_sha256=_hash(token),
            user_id=user_id,
            client_id=client_id,
            created_at=now,
            expires_at=now + timedelta(seconds=seconds),
        )
    )
    session.flush()
    return token


def login(
    ctx: Context,
    username: str,
    password: str,
    otp: str | None,
    *,
    throttle: users.Throttle | None = None,
) -> tuple[str, int]:
    """``auth/login``: the password (and the TOTP code where the user's login needs one,
    kyso's choice: the JSON body's ``OTP`` field) checked exactly as the login page does,
    throttled and audited the same way; a token and its life in seconds."""
    seconds = ctx.settings.csc_token_seconds
    with ctx.db.session() as session:
        result = users.login(session, username, password, otp or None, throttle=throttle)
        status = result.status
        token = None
        if status is users.LoginStatus.OK:
            assert result.user is not None
            token = _issue(session, user_id=result.user.id, client_id=None, seconds=seconds)
            record(
                session,
                Event(f"user:{result.user.username}", "csc.token_issued", result.user.public_id),
            )
    if token is not None:
        return token, seconds
    if status is users.LoginStatus.THROTTLED:
        raise TooManyRequests()
    if status is users.LoginStatus.NEEDS_TOTP:
        raise NeedsOtp()
    raise LoginFailed()


def client_credentials(ctx: Context, client_id: str, client_secret: str) -> tuple[str, int]:
    """``oauth2/token`` with ``grant_type=client_credentials``: a system (an API client with
    no user) proves itself with its kyso token; a CSC token for it and its life."""
    seconds = ctx.settings.csc_token_seconds
    with ctx.db.session() as session:
        client = session.execute(
            select(ApiClient).where(ApiClient.name == (client_id or "").strip())
        ).scalar_one_or_none()
        expected = client.token_sha256 if client is not None else _hash("kyso: no such client")
        secret_ok = hmac.compare_digest(expected, _hash(client_secret or ""))
        if client is None or not secret_ok or client.revoked_at is not None or client.user_id:
            raise InvalidClient()
        token = _issue(session, user_id=None, client_id=client.id, seconds=seconds)
        record(session, Event(f"api:{client.name}", "csc.token_issued", client.name))
    return token, seconds


def authenticate(ctx: Context, authorization: str | None) -> Caller:
    """The caller a bearer token names: a CSC token (``csc_…``, not expired nor revoked) or
    a kyso API token (``kyso_…``); :class:`InvalidToken` otherwise."""
    if not authorization or not authorization[:7].lower() == "bearer ":
        raise InvalidToken(TokenProblem.MISSING)
    token = authorization[7:].strip()
    with ctx.db.read() as session:
        if token.startswith(API_TOKEN_PREFIX):
            return _api_caller(session, authorization)
        row = session.execute(
            select(CscAccessToken).where(CscAccessToken.token_sha256 == _hash(token))
        ).scalar_one_or_none()
        if row is None or row.revoked_at is not None:
            raise InvalidToken(TokenProblem.INVALID)
        if row.expires_at <= clock.now():
            raise InvalidToken(TokenProblem.EXPIRED)
        if row.user_id is not None:
            user = session.get(User, row.user_id)
            if user is None or not user.active:
                raise InvalidToken(TokenProblem.INVALID)
            base = users.principal_for_user(session, user)
            principal = Principal(
                actor=base.actor,
                role=base.role,
                user_id=base.user_id,
                organization_id=base.organization_id,
                org_path=base.org_path,
                scopes=frozenset({SIGN_SCOPE}),  # a CSC token signs, nothing else
            )
            session.expunge(user)
            return Caller(principal, user, None, row.id)
        client = session.get(ApiClient, row.client_id)
        if client is None or client.revoked_at is not None:
            raise InvalidToken(TokenProblem.INVALID)
        principal = Principal(
            actor=f"api:{client.name}",
            role=Role.PROVINCE_ADMIN,
            scopes=frozenset(client.scopes.split()),
            client_id=client.id,
        )
        return Caller(principal, None, client.name, row.id)


def _api_caller(session: Session, authorization: str) -> Caller:
    from kyso.errors import Unauthenticated

    try:
        principal = authenticate_principal(session, authorization)
    except Unauthenticated as exc:
        raise InvalidToken(TokenProblem.INVALID) from exc
    if principal.user_id is None:
        return Caller(principal, None, principal.actor.removeprefix("api:"), None)
    user = session.get(User, principal.user_id)
    if user is None:
        raise InvalidToken(TokenProblem.INVALID)
    session.expunge(user)
    return Caller(principal, user, None, None)


def revoke(ctx: Context, caller: Caller, token: str | None) -> None:
    """``auth/revoke``: revoke ``token`` (a CSC token of the same user or system), or the
    caller's own token when none is named. A token of someone else is left alone and the
    answer is the same (RFC 7009 §2.2: an invalid token is not an error)."""
    with ctx.db.session() as session:
        now = clock.now()
        if token:
            session.execute(
                update(CscAccessToken)
                .where(
                    CscAccessToken.token_sha256 == _hash(token.strip()),
                    CscAccessToken.user_id == caller.principal.user_id
                    if caller.user is not None
                    else CscAccessToken.client_id == caller.principal.client_id,
                    CscAccessToken.revoked_at.is_(None),
                )
                .values(revoked_at=now)
                .execution_options(synchronize_session=False)
            )
        elif caller.token_id is not None:
            session.execute(
                update(CscAccessToken)
                .where(CscAccessToken.id == caller.token_id)
                .values(revoked_at=now)
                .execution_options(synchronize_session=False)
            )
        record(session, Event(caller.principal.actor, "csc.token_revoked", "csc"))
