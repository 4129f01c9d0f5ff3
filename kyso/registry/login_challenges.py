"""The second login step waiting for its TOTP code: bound to one browser, used once.

HTTP-free: the web layer passes in the cookie's token and the browser's id (the ``kyso_sid``
cookie its CSRF check already uses). The token is 256 random bits; the table keeps only its
SHA-256, and the browser id's, so a copy of the database opens nothing.

A challenge lives five minutes and is spent by the first code sent with it, right or wrong:
a replay of the cookie (after the login, after a wrong code, or from another browser) finds
nothing. A wrong code gives a fresh challenge for the same browser with the same deadline,
at most :data:`MAX_TRIES` in all; then the password is asked again. The chain is the rows of
one user, browser and deadline, so counting them counts the tries.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from kyso import clock
from kyso.store.models import LoginChallenge, User

LIFETIME = timedelta(minutes=5)
MAX_TRIES = 3  # codes per password step


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()


@dataclass(frozen=True)
class Pending:
    """A challenge just spent by the code that came with it."""

    user: User
    browser_hash: str
    expires_at: datetime


def start(
    session: Session,
    user: User,
    browser_id: str,
    *,
    now: datetime | None = None,
    expires_at: datetime | None = None,
) -> str:
    """A new challenge for a user whose password was right; returns the cookie's token."""
    now = now or clock.now()
    token = secrets.token_urlsafe(32)
    session.add(
        LoginChallenge(
            token_hash=_hash(token),
            user_id=user.id,
            browser_hash=_hash(browser_id),
            created_at=now,
            expires_at=expires_at or now + LIFETIME,
        )
    )
    session.flush()
    return token


def spend(
    session: Session, token: str | None, browser_id: str, *, now: datetime | None = None
) -> Pending | None:
    """The challenge this cookie names, marked used; None if it is unknown, spent, expired,
    from another browser, or its user can no longer log in."""
    if not token or len(token) > 100:
        return None
    now = now or clock.now()
    # One UPDATE decides: of two requests racing with the same cookie, one wins.
    spent = session.execute(
        update(LoginChallenge)
        .where(
            LoginChallenge.token_hash == _hash(token),
            LoginChallenge.browser_hash == _hash(browser_id),
            LoginChallenge.used_at.is_(None),
            LoginChallenge.expires_at > now,
        )
        .values(used_at=now)
        .returning(LoginChallenge.user_id, LoginChallenge.browser_hash, LoginChallenge.expires_at)
    ).first()
    if spent is None:
        return None
    user = session.get(User, spent.user_id)
    if user is None or not user.active:
        return None
    return Pending(user, spent.browser_hash, spent.expires_at)


def retry(
    session: Session, pending: Pending, browser_id: str, *, now: datetime | None = None
) -> str | None:
    """After a wrong code: a fresh challenge with the same deadline, or None once the tries
    are used up (or the deadline passed)."""
    now = now or clock.now()
    if pending.expires_at <= now:
        return None
    tries = session.execute(
        select(func.count())
        .select_from(LoginChallenge)
        .where(
            LoginChallenge.user_id == pending.user.id,
            LoginChallenge.browser_hash == pending.browser_hash,
            LoginChallenge.expires_at == pending.expires_at,
        )
    ).scalar_one()
    if tries >= MAX_TRIES:
        return None
    return start(session, pending.user, browser_id, now=now, expires_at=pending.expires_at)


def sweep(session: Session, *, now: datetime | None = None) -> int:
    """Delete challenges past their deadline (used or not); returns how many."""
    now = now or clock.now()
    result = session.execute(delete(LoginChallenge).where(LoginChallenge.expires_at <= now))
    return int(getattr(result, "rowcount", 0) or 0)
