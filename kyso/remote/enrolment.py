"""Enrolling the phone that approves signatures, replacing it, and revoking a lost one.

The vendors' users complain most about re-activation: a new phone means a visit or a call to
the provider. Here it is self-service and still safe: whoever holds a logged-in browser must
type the password again (and the TOTP code, when the user has one) before a phone is added
or the signing PIN is set, so a session left open, or a lost phone still logged in, cannot
enrol the thief's phone. Revoking is immediate and needs no second check: the owner does it
from any logged-in browser, and a unit officer or the province administrator does it for
the people of their units (the "lost phone" call). Revoking also logs the owner out
everywhere else, the lost phone included.

Every step is an audit entry. Services take the caller's :class:`Principal`; pages only
translate.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from kyso import clock
from kyso.audit.log import Event, record
from kyso.errors import Forbidden, KysoError, NotFound
from kyso.registry import fields as f
from kyso.registry import sessions, totp, users
from kyso.registry.access import Action, Principal, require
from kyso.registry.users import LoginStatus
from kyso.remote import factors, webauthn
from kyso.store.models import (
    Authenticator,
    AuthenticatorKind,
    Organization,
    PushSubscription,
    User,
)

if TYPE_CHECKING:
    from kyso.context import Context


class IdentityNotConfirmed(KysoError):
    """The password (or the TOTP code) typed again before a change of phone or PIN is wrong."""

    code = "identity_not_confirmed"
    http_status = 403
    message_vi = "Mật khẩu hoặc mã OTP không đúng; hãy nhập lại."
    message_en = "The password or the OTP code is wrong; enter them again."


class CodeNeeded(IdentityNotConfirmed):
    code = "otp_code_needed"
    message_vi = "Hãy nhập mã OTP 6 chữ số từ ứng dụng xác thực."
    message_en = "Enter the 6-digit OTP code from your authenticator app."


@dataclass(frozen=True)
class Reauthentication:
    """The password typed again, and the TOTP code if the user has one."""

    password: str
    code: str | None = None


@dataclass(frozen=True)
class PinSetup:
    authenticator: Authenticator
    totp_uri: str | None  # a new TOTP secret as an otpauth:// URI, shown once as a QR code
    totp_secret: str | None
    was_blocked: bool


@dataclass(frozen=True)
class PhoneStatus:
    """What the phone pages show about the viewer's factors."""

    phones: int  # WebAuthn authenticators, not revoked
    has_pin: bool  # the PIN + TOTP fallback is enrolled
    pin_blocked: bool
    has_totp: bool  # the user already has a TOTP secret (their login's second step)


def _me(session: Session, principal: Principal) -> User:
    if principal.user_id is None:
        raise Forbidden(
            "only a logged-in user enrols their own phone",
            vi="chỉ người dùng đã đăng nhập mới đăng ký điện thoại của mình",
        )
    user = session.get(User, principal.user_id)
    if user is None or not user.active:
        raise Forbidden("the account is not active", vi="tài khoản không còn hoạt động")
    return user


def _signer(session: Session, principal: Principal) -> User:
    require(principal, Action.DOCUMENT_SIGN)
    return _me(session, principal)


def _confirm_identity(
    ctx: Context, principal: Principal, again: Reauthentication, throttle: users.Throttle | None
) -> None:
    """Check the password (and TOTP code) like a login, in a transaction of its own so that
    a wrong one is counted and throttled even though the change is refused."""
    code = (again.code or "").replace(" ", "") or None
    with ctx.db.session() as session:
        user = _me(session, principal)
        result = users.login(session, user.username, again.password or "", code, throttle=throttle)
    if result.status is LoginStatus.OK and result.user is not None:
        return
    if result.status is LoginStatus.NEEDS_TOTP:
        raise CodeNeeded()
    if result.status is LoginStatus.THROTTLED:
        result.raise_for_status()
    raise IdentityNotConfirmed()


def status(ctx: Context, principal: Principal, session: Session) -> PhoneStatus:
    user = _me(session, principal)
    active = factors.active_authenticators(session, user.id)
    return PhoneStatus(
        phones=sum(1 for a in active if a.kind is AuthenticatorKind.WEBAUTHN),
        has_pin=any(a.kind is AuthenticatorKind.PIN_TOTP for a in active)
        and user.signing_pin_hash is not None,
        pin_blocked=user.signing_pin_failures >= ctx.settings.signing_pin_tries,
        has_totp=totp.is_enrolled(user),
    )


# -- a phone's fingerprint or face (WebAuthn) --------------------------------------------------
def begin_phone(
    ctx: Context,
    principal: Principal,
    again: Reauthentication,
    *,
    throttle: users.Throttle | None = None,
) -> dict[str, Any]:
    """After the password (and code) typed again: the options the phone's browser passes to
    ``navigator.credentials.create`` (its challenge is good for five minutes, once)."""
    with ctx.db.read() as session:
        _signer(session, principal)
    _confirm_identity(ctx, principal, again, throttle)
    with ctx.db.session() as session:
        user = _signer(session, principal)
        options = webauthn.registration_options(ctx.settings, session, user)
        record(
            session,
            Event(principal.actor, "authenticator.enrolment_started", user.username),
        )
        return options


def finish_phone(
    ctx: Context, principal: Principal, credential: Any, *, name: str | None
) -> Authenticator:
    """The phone's answer: its credential becomes one of the user's authenticators."""
    c = f.Collector()
    label = c.check(lambda: f.text("name", name, max_length=100, required=True))
    c.raise_if_any()
    assert label is not None
    with ctx.db.session() as session:
        user = _signer(session, principal)
        device = webauthn.register(ctx.settings, session, user, credential, name=label)
        record(
            session,
            Event(
                principal.actor,
                "authenticator.enrolled",
                user.username,
                {"kind": device.kind.value, "authenticator": device.public_id, "name": label},
            ),
        )
        return device


_DEVICES = (
    ("iphone", "iPhone"),
    ("ipad", "iPad"),
    ("samsung", "Samsung"),
    ("sm-", "Samsung"),
    ("oppo", "OPPO"),
    ("cph", "OPPO"),
    ("xiaomi", "Xiaomi"),
    ("redmi", "Xiaomi"),
    ("vivo", "vivo"),
    ("pixel", "Pixel"),
    ("android", "Android"),
)


def default_name(user: User, user_agent: str | None) -> str:
    """ "iPhone của Lan": the phone's kind from its browser, and the user's given name (the
    last word of a Vietnamese full name)."""
    agent = (user_agent or "").lower()
    kind = next((name for needle, name in _DEVICES if needle in agent), "Điện thoại")
    words = re.split(r"\s+", (user.full_name or user.username).strip())
    return f"{kind} của {words[-1] if words and words[-1] else user.username}"[:100]


# -- the PIN + TOTP fallback -------------------------------------------------------------------
def set_pin(
    ctx: Context,
    principal: Principal,
    again: Reauthentication,
    pin: str,
    *,
    name: str | None = None,
    throttle: users.Throttle | None = None,
) -> PinSetup:
    """Enrol the PIN + TOTP fallback, or set a new signing PIN (which unblocks a blocked
    one). A user without a TOTP secret gets one, returned once as an ``otpauth://`` URI
    for their authenticator app's QR scanner."""
    factors.check_pin_format(pin)
    with ctx.db.read() as session:
        _signer(session, principal)
    _confirm_identity(ctx, principal, again, throttle)
    with ctx.db.session() as session:
        user = _signer(session, principal)
        was_blocked = user.signing_pin_failures >= ctx.settings.signing_pin_tries
        enrolment = factors.enrol_pin_and_code(
            session, user, pin, name=name or "PIN + OTP", actor=principal.actor
        )
        record(
            session,
            Event(principal.actor, "signing_pin.set", user.username, {"was_blocked": was_blocked}),
        )
        secret = enrolment.totp_secret
        return PinSetup(
            authenticator=enrolment.authenticator,
            totp_uri=totp.provisioning_uri(secret, user.username) if secret else None,
            totp_secret=secret,
            was_blocked=was_blocked,
        )


# -- listing and revoking ----------------------------------------------------------------------
def mine(principal: Principal, session: Session) -> list[Authenticator]:
    """The viewer's authenticators, newest first, revoked ones included (marked)."""
    user = _me(session, principal)
    return _of(session, user.id)


def _of(session: Session, user_id: int) -> list[Authenticator]:
    return list(
        session.execute(
            select(Authenticator)
            .where(Authenticator.user_id == user_id)
            .order_by(Authenticator.revoked_at.is_not(None), Authenticator.id.desc())
        ).scalars()
    )


def _user_and_path(session: Session, user_id: int) -> tuple[User, str | None]:
    user = session.get(User, user_id)
    assert user is not None
    path = (
        session.scalar(select(Organization.path).where(Organization.id == user.organization_id))
        if user.organization_id is not None
        else None
    )
    return user, path


def of_user(
    principal: Principal, session: Session, user_public_id: str
) -> tuple[User, list[Authenticator]]:
    """A user's authenticators, for a unit officer or the province administrator (to find
    the lost phone to revoke); nobody else learns the user exists."""
    found = session.execute(
        select(User).where(User.public_id == user_public_id)
    ).scalar_one_or_none()
    if found is None:
        raise NotFound(f"user {user_public_id}", vi=f"người dùng {user_public_id}")
    if found.id != principal.user_id:
        _, path = _user_and_path(session, found.id)
        _require_officer(principal, path, user_public_id)
    return found, _of(session, found.id)


def _require_officer(principal: Principal, path: str | None, what: str) -> None:
    try:
        require(principal, Action.DEVICE_WRITE, path or "\x00")
    except Forbidden as exc:
        raise NotFound(what, vi=what) from exc


def revoke(
    principal: Principal,
    session: Session,
    public_id: str,
    *,
    reason: str | None = None,
    keep_session: str | None = None,
) -> Authenticator:
    """Revoke an authenticator (a lost or replaced phone, a PIN + OTP fallback no longer
    wanted): it approves nothing from now on. The owner revokes their own; a unit officer or
    the province administrator revokes one of a user in their units.

    The owner's browser sessions are ended (all but ``keep_session``, the browser doing the
    revoking when it is the owner's), and their push subscriptions dropped: a lost phone is
    logged out and hears nothing more; the phones they keep subscribe again when /m opens."""
    c = f.Collector()
    why = c.check(lambda: f.text("reason", reason, max_length=200))
    c.raise_if_any()
    device = session.execute(
        select(Authenticator).where(Authenticator.public_id == public_id)
    ).scalar_one_or_none()
    what = f"authenticator {public_id}"
    if device is None:
        raise NotFound(what, vi=f"thiết bị xác nhận {public_id}")
    owner, path = _user_and_path(session, device.user_id)
    own = principal.user_id == owner.id
    if not own:
        _require_officer(principal, path, what)
    if device.revoked_at is None:
        device.revoked_at = clock.now()
        device.revoked_reason = why or ("thu hồi bởi chủ sở hữu" if own else "thu hồi bởi cán bộ")
        sessions.end_others(session, owner.id, keep_session if own else None)
        session.execute(delete(PushSubscription).where(PushSubscription.user_id == owner.id))
        record(
            session,
            Event(
                principal.actor,
                "authenticator.revoked",
                owner.username,
                {
                    "authenticator": device.public_id,
                    "kind": device.kind.value,
                    "name": device.name,
                    "reason": device.revoked_reason,
                },
            ),
        )
    return device
