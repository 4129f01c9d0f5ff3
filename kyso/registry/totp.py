"""Time-based one-time passwords (RFC 6238 over RFC 4226 HOTP), as authenticator apps
(Google Authenticator, FreeOTP, Microsoft Authenticator) compute them: HMAC-SHA1, 6 digits,
30-second steps, secret shared as base32 in an ``otpauth://`` URI.

A user's secret is kept sealed by the key store's data key (``users.totp_secret_sealed``,
AES-256-GCM bound to the user's public id), so the database alone computes no code:
:func:`read_secret` and :func:`write_secret` are the only ways in and out, and
:func:`seal_clear_secrets` seals the clear rows an older kyso left (server start and
``kyso init --exist-ok``).
"""

from __future__ import annotations

import base64
import hmac
import secrets
import struct
from datetime import datetime
from urllib.parse import quote, urlencode

from sqlalchemy import select
from sqlalchemy.orm import Session

from kyso.store.db import sealer
from kyso.store.models import User

PERIOD = 30
DIGITS = 6


def generate_secret() -> str:
    """160 random bits (the HMAC-SHA1 key length RFC 4226 §4 recommends), base32, no padding."""
    return base64.b32encode(secrets.token_bytes(20)).decode().rstrip("=")


def _key(secret: str) -> bytes:
    cleaned = secret.replace(" ", "").upper()
    return base64.b32decode(cleaned + "=" * (-len(cleaned) % 8))


def step_at(moment: datetime | float) -> int:
    """The RFC 6238 time step T = floor((unix time − T0) / X), T0 = 0, X = 30 s."""
    seconds = moment.timestamp() if isinstance(moment, datetime) else moment
    return int(seconds // PERIOD)


def hotp(key: bytes, counter: int, digits: int = DIGITS, digest: str = "sha1") -> str:
    """RFC 4226 §5.3: HMAC, dynamic truncation, modulo 10^digits."""
    mac = hmac.new(key, struct.pack(">Q", counter), digest).digest()
    offset = mac[-1] & 0x0F
    binary = struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(binary % 10**digits).zfill(digits)


def code_at(secret: str, moment: datetime | float, digits: int = DIGITS) -> str:
    return hotp(_key(secret), step_at(moment), digits)


def verify(
    secret: str,
    code: str,
    moment: datetime | float,
    *,
    window: int = 1,
    after_step: int | None = None,
) -> int | None:
    """The time step ``code`` belongs to, or None.

    ``window`` steps either side are accepted for clock drift (RFC 6238 §5.2 recommends at
    most one); a step at or before ``after_step`` (the last one accepted) is refused, because
    "the verifier MUST NOT accept the second attempt of the same OTP" (§5.2)."""
    code = code.strip().replace(" ", "")
    if len(code) != DIGITS or not (code.isascii() and code.isdigit()):
        return None
    key = _key(secret)
    now = step_at(moment)
    for step in range(now - window, now + window + 1):
        if after_step is not None and step <= after_step:
            continue
        if hmac.compare_digest(hotp(key, step), code):
            return step
    return None


def provisioning_uri(secret: str, account: str, issuer: str = "kyso") -> str:
    """The ``otpauth://totp/…`` URI authenticator apps read from a QR code (Key Uri Format)."""
    label = quote(f"{issuer}:{account}", safe=":@")
    query = urlencode(
        {
            "secret": secret,
            "issuer": issuer,
            "algorithm": "SHA1",
            "digits": DIGITS,
            "period": PERIOD,
        }
    )
    return f"otpauth://totp/{label}?{query}"


# -- the secret at rest ---------------------------------------------------------------------
def _context(user: User) -> bytes:
    """What a sealed secret is bound to: it opens for this user only."""
    return f"kyso.users.totp:{user.public_id}".encode()


def is_enrolled(user: User) -> bool:
    return user.totp_secret_sealed is not None or user.totp_secret is not None


def read_secret(session: Session, user: User) -> str | None:
    """The user's secret, unsealed by the key store; None if they have none.

    A clear secret is read only until :func:`seal_clear_secrets` has run (it runs when the
    server starts). Raises :class:`kyso.keys.base.SealedDataError` for a sealed value that
    does not open (changed, copied from another user, another key store)."""
    if user.totp_secret_sealed is not None:
        return sealer(session).unseal(user.totp_secret_sealed, _context(user)).decode("ascii")
    return user.totp_secret


def write_secret(session: Session, user: User, secret: str | None) -> None:
    """Keep ``secret`` sealed for ``user`` (None removes it); the clear column is emptied."""
    user.totp_secret = None
    user.totp_secret_sealed = (
        sealer(session).seal(secret.encode("ascii"), _context(user)) if secret else None
    )


def seal_clear_secrets(session: Session) -> int:
    """Seal every secret still in clear (rows from before migration 0007); how many."""
    clear = session.execute(
        select(User).where(User.totp_secret.is_not(None)).with_for_update()
    ).scalars()
    count = 0
    for user in clear:
        write_secret(session, user, user.totp_secret)
        count += 1
    return count
