"""The signer's proof of consent, checked before a SAD exists.

Two kinds (:class:`~kyso.store.models.AuthenticatorKind`): a phone's platform authenticator
through WebAuthn (:mod:`kyso.remote.webauthn`), whose assertion signs the approval's own
challenge, and the fallback, the signing PIN with a TOTP code from the phone (two factors:
something known, something held). Wrong PINs are counted; at ``KYSO_SIGNING_PIN_TRIES`` the
PIN is blocked until the user sets a new one after logging in again with their password and
second factor (the vendors' "forgotten PIN" path, without a visit to the province).
"""

from __future__ import annotations

from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from kyso import clock
from kyso.audit.log import Event, record
from kyso.errors import Conflict, InvalidInput, KysoError
from kyso.registry import totp
from kyso.store.models import Authenticator, AuthenticatorKind, User

_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
PIN_MIN, PIN_MAX = 6, 12


class WrongSigningPin(KysoError):
    code = "wrong_signing_pin"
    http_status = 401
    message_vi = "Mã PIN ký hoặc mã xác thực (TOTP) không đúng."
    message_en = "The signing PIN or the authentication (TOTP) code is wrong."


class SigningPinBlocked(KysoError):
    code = "signing_pin_blocked"
    http_status = 423
    message_vi = "Mã PIN ký đã bị khóa do nhập sai nhiều lần; hãy đăng nhập lại và đặt mã PIN mới."
    message_en = "The signing PIN is blocked after too many wrong tries; log in and set a new one."


class NoAuthenticator(Conflict):
    code = "no_authenticator"
    message_vi = "Người ký chưa đăng ký điện thoại để xác nhận ký."
    message_en = "The signer has not enrolled a phone to approve signatures."


@dataclass(frozen=True)
class PinAndCode:
    """The fallback proof: the signing PIN and the current TOTP code."""

    pin: str
    code: str


def check_pin_format(pin: str) -> str:
    pin = (pin or "").strip()
    if not (PIN_MIN <= len(pin) <= PIN_MAX and pin.isascii() and pin.isdigit()):
        raise InvalidInput(
            f"the signing PIN is {PIN_MIN} to {PIN_MAX} digits",
            vi=f"mã PIN ký gồm {PIN_MIN} đến {PIN_MAX} chữ số",
        )
    return pin


def hash_pin(pin: str) -> str:
    return _hasher.hash(check_pin_format(pin))


def active_authenticators(session: Session, user_id: int) -> list[Authenticator]:
    return list(
        session.execute(
            select(Authenticator)
            .where(Authenticator.user_id == user_id, Authenticator.revoked_at.is_(None))
            .order_by(Authenticator.id)
        ).scalars()
    )


def verify_pin_and_code(
    session: Session, user: User, proof: PinAndCode, *, tries: int, actor: str
) -> Authenticator:
    """The user's PIN + TOTP authenticator if both are right; counts a wrong PIN.

    The failure count is committed by the caller's transaction only if the caller lets this
    exception end it normally, so callers run this in a transaction of its own."""
    device = next(
        (
            a
            for a in active_authenticators(session, user.id)
            if a.kind is AuthenticatorKind.PIN_TOTP
        ),
        None,
    )
    if device is None or user.signing_pin_hash is None:
        raise NoAuthenticator()
    if user.signing_pin_failures >= tries:
        raise SigningPinBlocked()
    pin_ok: bool
    try:
        pin_ok = _hasher.verify(user.signing_pin_hash, (proof.pin or "").strip())
    except (VerificationError, InvalidHashError):
        pin_ok = False
    secret = totp.read_secret(session, user)
    step = (
        totp.verify(secret, proof.code or "", clock.timestamp(), after_step=user.totp_last_step)
        if secret
        else None
    )
    if not pin_ok or step is None:
        if not pin_ok:
            user.signing_pin_failures += 1
            record(
                session,
                Event(
                    actor,
                    "signing_pin.wrong",
                    user.username,
                    {"failures": user.signing_pin_failures, "tries": tries},
                ),
            )
        raise WrongSigningPin()
    user.signing_pin_failures = 0
    user.totp_last_step = step
    device.last_used_at = clock.now()
    return device


@dataclass(frozen=True)
class PinEnrolment:
    authenticator: Authenticator
    totp_secret: str | None  # new: shown once as a QR code; None if the user already had one


def enrol_pin_and_code(
    session: Session, user: User, pin: str, *, name: str, actor: str
) -> PinEnrolment:
    """Set the user's signing PIN and make the PIN + TOTP authenticator (the fallback, and
    the only kind a phone without a fingerprint reader or a desktop browser can use).

    The TOTP secret is the user's own (the one of their login's second step, made if they
    have none); setting a new PIN also unblocks a blocked one."""
    user.signing_pin_hash = hash_pin(pin)
    user.signing_pin_failures = 0
    secret = None
    if not totp.is_enrolled(user):
        secret = totp.generate_secret()
        totp.write_secret(session, user, secret)
    device = next(
        (
            a
            for a in active_authenticators(session, user.id)
            if a.kind is AuthenticatorKind.PIN_TOTP
        ),
        None,
    )
    if device is None:
        from kyso.registry.fields import new_public_id

        device = Authenticator(
            public_id=new_public_id(),
            user_id=user.id,
            kind=AuthenticatorKind.PIN_TOTP,
            name=(name or "PIN + TOTP")[:100],
            sign_count=0,
            created_at=clock.now(),
        )
        session.add(device)
        session.flush()
    record(
        session,
        Event(actor, "authenticator.enrolled", user.username, {"kind": device.kind.value}),
    )
    return PinEnrolment(device, secret)
