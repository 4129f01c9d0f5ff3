"""The audit log: append-only and hash-chained.

Each entry's hash is SHA-256 over the previous hash and the entry's canonical JSON, so an
edited, deleted, inserted or reordered entry breaks the chain from that point on. The head
row (seq, hash) is locked by every append, which serializes appends across processes on
PostgreSQL (``SELECT … FOR UPDATE``) and on SQLite (writers already hold the write lock).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from kyso import clock
from kyso.store.models import AuditEntry, AuditHead

GENESIS = "0" * 64


@dataclass(frozen=True)
class Event:
    actor: str
    action: str
    target: str | None = None
    details: dict[str, Any] | None = None


def _digest(prev_hash: str, seq: int, at: datetime, event: Event) -> str:
    canonical = json.dumps(
        {
            "seq": seq,
            "at": at.isoformat(),
            "actor": event.actor,
            "action": event.action,
            "target": event.target,
            "details": event.details or {},
        },
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(prev_hash.encode() + canonical.encode("utf-8")).hexdigest()


def record(session: Session, *events: Event) -> list[dict[str, Any]]:
    """Append events in the caller's transaction (they commit or vanish with it)."""
    return record_many(session, events)


# The ORM types __table__ as FromClause; these models are mapped to plain tables.
_HEAD = cast(Table, AuditHead.__table__)
_ENTRIES = cast(Table, AuditEntry.__table__)


def _lock_head(session: Session) -> tuple[int, str]:
    """Lock the chain's head row and read it (Core statements: this runs on every change)."""
    conn = session.connection()
    query = select(_HEAD.c.seq, _HEAD.c.hash).where(_HEAD.c.id == 1).with_for_update()
    row = conn.execute(query).first()
    if row is None:
        # The very first append: concurrent writers on PostgreSQL may all find no head row.
        # One insert wins; the others fail on the primary key (after waiting for the winner
        # to commit), roll back to the savepoint and lock the winner's row instead.
        try:
            with conn.begin_nested():
                conn.execute(insert(_HEAD).values(id=1, seq=0, hash=GENESIS))
        except IntegrityError:
            pass
        row = conn.execute(query).one()
    return int(row.seq), str(row.hash)


def record_many(session: Session, events: Iterable[Event]) -> list[dict[str, Any]]:
    seq, prev = _lock_head(session)
    at = clock.now()
    entries: list[dict[str, Any]] = []
    for event in events:
        seq += 1
        digest = _digest(prev, seq, at, event)
        entries.append(
            {
                "seq": seq,
                "at": at,
                "actor": event.actor,
                "action": event.action,
                "target": event.target,
                "details": json.dumps(event.details or {}, ensure_ascii=False, sort_keys=True),
                "prev_hash": prev,
                "hash": digest,
            }
        )
        prev = digest
    if entries:  # one multi-row INSERT: batches of thousands append in milliseconds
        conn = session.connection()
        conn.execute(insert(_ENTRIES), entries)
        conn.execute(update(_HEAD).where(_HEAD.c.id == 1).values(seq=seq, hash=prev))
    return entries


@dataclass(frozen=True)
class ChainCheck:
    ok: bool
    entries: int
    first_bad_seq: int | None = None
    problem: str | None = None


def snapshot(session: Session) -> None:
    """Make the session's reads one snapshot (REPEATABLE READ on PostgreSQL), if it has not
    begun yet: under READ COMMITTED, an append committed between reading the last entry and
    reading the head would look like entries removed from the end. (SQLite's read
    transaction is a snapshot already.)"""
    if not session.in_transaction() and session.get_bind().dialect.name == "postgresql":
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})


def verify(
    session: Session, batch: int = 5000, *, after: tuple[int, str] | None = None
) -> ChainCheck:
    """Walk the whole chain; report the first entry that does not fit.

    ``after`` = (seq, hash) walks only the entries after one already known good (a
    checkpoint's), linking the first of them to that hash; ``entries`` still counts from 1.
    The walk reads one snapshot (:func:`snapshot`) when the session has not begun yet.
    """
    snapshot(session)
    last_seq, prev = after or (0, GENESIS)
    expected_seq, count = last_seq + 1, last_seq
    while True:
        rows = (
            session.execute(
                select(AuditEntry)
                .where(AuditEntry.seq > last_seq)
                .order_by(AuditEntry.seq)
                .limit(batch)
            )
            .scalars()
            .all()
        )
        if not rows:
            break
        for entry in rows:
            if entry.seq != expected_seq:
                return ChainCheck(False, count, expected_seq, f"entry {expected_seq} is missing")
            if entry.prev_hash != prev:
                return ChainCheck(False, count, entry.seq, "link to the previous entry is broken")
            event = Event(entry.actor, entry.action, entry.target, json.loads(entry.details))
            if _digest(prev, entry.seq, entry.at, event) != entry.hash:
                return ChainCheck(False, count, entry.seq, "entry was changed after it was written")
            prev, expected_seq, count, last_seq = entry.hash, expected_seq + 1, count + 1, entry.seq
        session.expunge_all()
    head = session.get(AuditHead, 1)
    if head is None and count:
        return ChainCheck(False, count, count + 1, "the log's head record was removed")
    if head is not None and (head.seq != count or head.hash != prev):
        return ChainCheck(False, count, count + 1, "entries at the end of the log were removed")
    return ChainCheck(True, count)
