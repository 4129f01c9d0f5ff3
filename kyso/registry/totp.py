"""Time-based one-time passwords (RFC 6238 over RFC 4226 HOTP), as authenticator apps
(Google Authenticator, FreeOTP, Microsoft Authenticator) compute them: HMAC-SHA1, 6 digits,
30-second steps, secret shared as base32 in an ``otpauth://`` URI.
"""

from __future__ import annotations

import base64
import hmac
import secrets
import struct
from datetime import datetime
from urllib.parse import quote, urlencode

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
