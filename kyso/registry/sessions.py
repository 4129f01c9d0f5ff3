"""Browser sessions: what a login leaves behind, and what ends it.

HTTP-free: the web layer passes the cookie's token in and sets what comes back. Tokens are
256 random bits; the table holds their SHA-256 only. A login always makes a new token (no
session fixation); a password change ends every other session of the user.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, delete, select, update
from sqlalchemy.orm import Session

from kyso import clock
from kyso.audit.log import Event, record
from kyso.registry.access import Principal
from kyso.registry.users import principal_for_user
from kyso.store.models import User, WebSession

IDLE = timedelta(minutes=30)
ABSOLUTE = timedelta(hours=10)  # a working day; then a fresh login with the second factor
# Writing last_seen on every page view would make every read a write; once a minute is
# precise enough for a 30-minute idle limit.
TOUCH_EVERY = timedelta(minutes=1)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Viewer:
    """The user behind a browser session, with what they may do."""

    user: User
    principal: Principal
    session_id: int


def start(
    session: Session, user: User, *, user_agent: str | None = None, now: datetime | None = None
) -> str:
    """A new session for a user who has just logged in; returns the cookie's token."""
    now = now or clock.now()
    token = secrets.token_urlsafe(32)
    session.add(
        WebSession(
            token_hash=_hash(token),
            user_id=user.id,
            created_at=now,
            last_seen_at=now,
            expires_at=now + ABSOLUTE,
            user_agent=(user_agent or "")[:300] or None,
        )
    )
    session.flush()
    return token


def find(session: Session, token: str | None, *, now: datetime | None = None) -> Viewer | None:
    """The session a token opens, or None (unknown, idle too long, expired, user disabled).

    A lock-out after failed logins stops new logins only: anyone can type wrong passwords
    for a user name, and that must not throw the real user out of a session they hold.

    Reads only; :func:`needs_touch` says when the caller should record activity."""
    if not token or len(token) > 100:
        return None
    now = now or clock.now()
    row = session.execute(
        select(WebSession, User)
        .join(User, User.id == WebSession.user_id)
        .where(WebSession.token_hash == _hash(token))
    ).first()
    if row is None:
        return None
    web, user = row
    if not user.active or now >= web.expires_at or now - web.last_seen_at >= IDLE:
        return None
    return Viewer(user, principal_for_user(session, user), web.id)


def needs_touch(session: Session, viewer: Viewer, now: datetime | None = None) -> bool:
    web = session.get(WebSession, viewer.session_id)
    return web is not None and (now or clock.now()) - web.last_seen_at >= TOUCH_EVERY


def touch(session: Session, session_id: int, now: datetime | None = None) -> None:
    session.execute(
        update(WebSession)
        .where(WebSession.id == session_id)
        .values(last_seen_at=now or clock.now())
    )


def end(session: Session, token: str | None) -> None:
    """Log out: the token opens nothing from now on."""
    if not token:
        return
    row = session.execute(
        select(WebSession, User)
        .join(User, User.id == WebSession.user_id)
        .where(WebSession.token_hash == _hash(token))
    ).first()
    if row is None:
        return
    web, user = row
    session.delete(web)
    record(session, Event(f"user:{user.username}", "user.logout", user.public_id))


def end_others(session: Session, user_id: int, keep_token: str | None = None) -> int:
    """After a password change: every other browser logged in as this user is logged out."""
    query = delete(WebSession).where(WebSession.user_id == user_id)
    if keep_token:
        query = query.where(WebSession.token_hash != _hash(keep_token))
    # a DELETE's result is a CursorResult; Session.execute is typed as returning Result
    return cast(CursorResult[Any], session.execute(query)).rowcount or 0


def sweep(session: Session, now: datetime | None = None) -> int:
    """Forget sessions past their absolute expiry (idle ones are refused by :func:`find`)."""
    now = now or clock.now()
    cutoff_idle = now - IDLE
    result = session.execute(
        delete(WebSession).where(
            (WebSession.expires_at <= now) | (WebSession.last_seen_at <= cutoff_idle)
        )
    )
    return cast(CursorResult[Any], result).rowcount or 0
