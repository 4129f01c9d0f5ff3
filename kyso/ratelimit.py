"""Budgets for work anyone may ask for, shared by every process of one kyso.

Anonymous requests that cost a signature or a validation (public verification, OCSP answers
signed on the spot, time-stamps) and login attempts each have a budget per client address.
The state lives in the database (table ``rate_buckets``), so two workers of ``kyso serve``,
or two servers on one PostgreSQL database, spend the same budget.

The algorithm is GCRA (the generic cell rate algorithm of ATM, ITU-T I.371): a bucket is one
number, the *theoretical arrival time* (TAT) of the next request. A request of cost ``c`` at
time ``now`` is allowed when ``max(tat, now) + c·T <= now + burst·T`` (``T`` the interval
between requests at the sustained rate); allowed, the TAT moves to ``max(tat, now) + c·T``.
That test and that move are one ``INSERT … ON CONFLICT … DO UPDATE … WHERE … RETURNING``,
the same SQL on SQLite (3.35+) and PostgreSQL: there is no read-modify-write to race, since
both databases evaluate the ``WHERE`` on the row as it is when the statement writes it
(PostgreSQL locks the conflicting row first). A bucket whose TAT is in the past is full, the
same as no row at all, so :func:`sweep` deletes those.

HTTP-free: the web layer says who the client is (:mod:`kyso.web.ratelimit`).
"""

from __future__ import annotations

import enum
import hashlib
import math
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.orm import Session

from kyso import clock
from kyso.errors import TooManyRequests
from kyso.settings import Settings
from kyso.store.db import Database

_KEY_LENGTH = 200  # rate_buckets.key

_TAKE = text(
    "INSERT INTO rate_buckets (key, tat) VALUES (:key, :fresh) "
    "ON CONFLICT (key) DO UPDATE "
    "SET tat = (CASE WHEN rate_buckets.tat > :now THEN rate_buckets.tat ELSE :now END) + :cost "
    "WHERE (CASE WHEN rate_buckets.tat > :now THEN rate_buckets.tat ELSE :now END) + :cost "
    "<= :ceiling "
    "RETURNING tat"
)
_READ = text("SELECT tat FROM rate_buckets WHERE key = :key")
_SWEEP = text("DELETE FROM rate_buckets WHERE tat < :now")
_ASYNC_COMMIT = text("SET LOCAL synchronous_commit TO OFF")


class Purpose(enum.StrEnum):
    """What a budget pays for; each has its own buckets."""

    VERIFICATION = "verify"  # anonymous validation of a signed file
    OCSP_SIGNING = "ocsp"  # OCSP answers signed on the spot (nonce, SHA-256 CertID, …)
    TSA = "tsa"  # RFC 3161 time-stamps over HTTP
    EXCHANGE = "exchange"  # edXML packages delivered by another installation
    LOGIN = "login"  # every login attempt from an address
    LOGIN_FAILURE = "login-failed"  # failed logins from an address
    LOGIN_ACCOUNT = "login-account"  # failed logins on one user name, from anywhere


@dataclass(frozen=True)
class Budget:
    """``burst`` requests at once, then one every ``interval`` seconds."""

    interval: float
    burst: int

    @classmethod
    def per_minute(cls, count: float, burst: int | None = None) -> Budget | None:
        """None (no limit) when ``count`` is 0 or less: the operator switched it off."""
        if count <= 0:
            return None
        return cls(60.0 / count, burst if burst is not None else max(1, int(count) // 3))

    @classmethod
    def per_hour(cls, count: float, burst: int) -> Budget | None:
        if count <= 0:
            return None
        return cls(3600.0 / count, burst)

    @property
    def window(self) -> float:
        return self.interval * self.burst


class RateLimited(TooManyRequests):
    """Over a budget; ``retry_after`` says in how many seconds one more request fits."""

    def __init__(self, retry_after: float) -> None:
        self.retry_after = max(1, math.ceil(retry_after))
        minutes = math.ceil(self.retry_after / 60)
        super().__init__(
            f"try again in {self.retry_after} s"
            if self.retry_after < 120
            else f"try again in {minutes} minutes",
            vi=f"thử lại sau {self.retry_after} giây"
            if self.retry_after < 120
            else f"thử lại sau {minutes} phút",
        )


def budgets(settings: Settings) -> dict[Purpose, Budget | None]:
    """The budgets an instance runs with (README, "Settings")."""
    return {
        Purpose.VERIFICATION: Budget.per_minute(settings.verify_per_minute),
        Purpose.EXCHANGE: Budget.per_minute(settings.exchange_per_minute),
        Purpose.OCSP_SIGNING: Budget.per_minute(settings.ocsp_sign_per_minute),
        Purpose.TSA: Budget.per_minute(settings.tsa_per_minute),
        Purpose.LOGIN: Budget.per_minute(settings.login_per_minute),
        Purpose.LOGIN_FAILURE: Budget.per_hour(settings.login_failures_per_hour, burst=10),
        # OWASP's advice: per account a slow-down, never a lock anyone could set off
        # (kyso.registry.users decides how it is used).
        Purpose.LOGIN_ACCOUNT: Budget.per_hour(10, burst=10),
    }


def bucket_key(purpose: Purpose, client: str, *, hashed: bool = False) -> str:
    """``purpose:client``; user names are hashed (someone may type a password there)."""
    who = hashlib.sha256(client.encode("utf-8", "replace")).hexdigest() if hashed else client
    return f"{purpose.value}:{who}"[:_KEY_LENGTH]


def take(session: Session, budget: Budget, key: str, *, cost: int = 1, now: float) -> float | None:
    """Spend ``cost`` from the bucket; None if allowed, else the seconds to wait."""
    spend = budget.interval * cost
    ceiling = now + budget.window
    if cost > budget.burst:
        return spend - budget.window
    row = session.execute(
        _TAKE, {"key": key, "fresh": now + spend, "now": now, "cost": spend, "ceiling": ceiling}
    ).first()
    if row is not None:
        return None
    return _wait(session, budget, key, cost, now)


def wait(session: Session, budget: Budget, key: str, *, cost: int = 1, now: float) -> float | None:
    """What :func:`take` would answer, without spending anything (a read)."""
    tat = session.execute(_READ, {"key": key}).scalar_one_or_none()
    if tat is None or max(tat, now) + budget.interval * cost <= now + budget.window:
        return None
    return max(tat, now) + budget.interval * cost - budget.window - now


def _wait(session: Session, budget: Budget, key: str, cost: int, now: float) -> float:
    late = wait(session, budget, key, cost=cost, now=now)
    return late if late is not None else budget.interval  # refilled meanwhile: ask again soon


def marked(session: Session, key: str, *, now: float) -> bool:
    """Whether the bucket holds anything now (it is not full): e.g. an address that failed
    a login recently."""
    tat = session.execute(_READ, {"key": key}).scalar_one_or_none()
    return tat is not None and tat > now


def sweep(session: Session, *, now: float | None = None) -> int:
    """Forget full buckets (TAT in the past: the same as no row). Returns how many."""
    result = session.execute(_SWEEP, {"now": clock.timestamp() if now is None else now})
    return int(getattr(result, "rowcount", 0) or 0)


class Limiter:
    """The budgets of one instance, each take in a transaction of its own."""

    def __init__(self, db: Database, budgets: dict[Purpose, Budget | None]) -> None:
        self.db = db
        self.budgets = budgets

    @classmethod
    def for_settings(cls, db: Database, settings: Settings) -> Limiter:
        return cls(db, budgets(settings))

    def take(self, purpose: Purpose, client: str, *, cost: int = 1) -> None:
        """Spend from ``client``'s budget for ``purpose``, or raise :class:`RateLimited`."""
        budget = self.budgets.get(purpose)
        if budget is None:
            return
        with self.db.session() as session:
            if not self.db.is_sqlite:
                # A bucket lost in a crash only forgives a few requests: no need to wait for
                # the WAL to reach the disk (PostgreSQL's "asynchronous commit").
                session.execute(_ASYNC_COMMIT)
            late = take(
                session, budget, bucket_key(purpose, client), cost=cost, now=clock.timestamp()
            )
        if late is not None:
            raise RateLimited(late)

    def sweep(self) -> int:
        with self.db.session() as session:
            return sweep(session)
