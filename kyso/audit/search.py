"""Reading the audit log: search it (who, what, on which record, when), read one entry,
export what a search finds, and check the chain against the newest signed checkpoint.

Only a :class:`~kyso.registry.access.Principal` with ``audit.read`` (the province
administrator, the auditor) reads the log, whatever page, command or token asks. Dates are
days in Vietnam, as a clerk means them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as dtime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from kyso import clock
from kyso.audit import checkpoints
from kyso.context import Context
from kyso.errors import NotFound
from kyso.registry.access import Action, Principal, require
from kyso.store.models import AuditEntry

EXPORT_LIMIT = 200_000


@dataclass(frozen=True)
class AuditFilter:
    """What a search asks for; every field optional."""

    actor: str | None = None  # part of who acted ("user:lan", "api:erp"), case ignored
    action: str | None = None  # one kind of entry, exactly ("certificate.revoked")
    target: str | None = None  # part of the record's id
    since: date | None = None  # from the start of this day in Vietnam
    until: date | None = None  # to the end of this day in Vietnam


@dataclass(frozen=True)
class Page:
    rows: list[AuditEntry]
    total: int


@dataclass(frozen=True)
class ExportRow:
    seq: int
    at: datetime
    actor: str
    action: str
    target: str | None
    details: str  # canonical JSON, as stored
    hash: str


def _local_midnight(day: date) -> datetime:
    """The start of a day in Vietnam, as UTC."""
    return datetime.combine(day, dtime(0), tzinfo=clock.VIETNAM).astimezone(clock.now().tzinfo)


def _query(principal: Principal, filters: AuditFilter) -> Select[Any]:
    require(principal, Action.AUDIT_READ)
    query = select(AuditEntry)
    if filters.actor and filters.actor.strip():
        query = query.where(AuditEntry.actor.icontains(filters.actor.strip(), autoescape=True))
    if filters.action:
        query = query.where(AuditEntry.action == filters.action)
    if filters.target and filters.target.strip():
        query = query.where(AuditEntry.target.icontains(filters.target.strip(), autoescape=True))
    if filters.since is not None:
        query = query.where(AuditEntry.at >= _local_midnight(filters.since))
    if filters.until is not None:
        query = query.where(AuditEntry.at < _local_midnight(filters.until + timedelta(days=1)))
    return query


def actions(principal: Principal, session: Session) -> list[str]:
    """The kinds of entries the log holds, for a filter (an indexed DISTINCT)."""
    require(principal, Action.AUDIT_READ)
    return list(
        session.execute(select(AuditEntry.action).distinct().order_by(AuditEntry.action)).scalars()
    )


def search(
    principal: Principal,
    session: Session,
    filters: AuditFilter,
    *,
    offset: int = 0,
    limit: int = 50,
) -> Page:
    """A page of the entries matching ``filters``, newest first, with their count."""
    query = _query(principal, filters)
    total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    rows = session.execute(query.order_by(AuditEntry.seq.desc()).offset(offset).limit(limit))
    return Page(list(rows.scalars()), total)


def export(
    principal: Principal, session: Session, filters: AuditFilter, *, limit: int = EXPORT_LIMIT
) -> list[ExportRow]:
    """The entries matching ``filters``, newest first, at most ``limit`` (the columns of an
    export only)."""
    rows = session.execute(
        _query(principal, filters)
        .with_only_columns(
            AuditEntry.seq,
            AuditEntry.at,
            AuditEntry.actor,
            AuditEntry.action,
            AuditEntry.target,
            AuditEntry.details,
            AuditEntry.hash,
        )
        .order_by(AuditEntry.seq.desc())
        .limit(limit)
    )
    return [ExportRow(*row) for row in rows]


def entry(principal: Principal, session: Session, seq: int) -> AuditEntry:
    """One entry by its number in the chain."""
    require(principal, Action.AUDIT_READ)
    found = session.get(AuditEntry, seq) if seq >= 1 else None
    if found is None:
        raise NotFound(f"audit entry {seq}", vi=f"mục nhật ký {seq}")
    return found


def verify(principal: Principal, ctx: Context) -> checkpoints.AnchoredCheck:
    """Walk the whole chain now and hold it against the newest signed checkpoint
    (:func:`kyso.audit.checkpoints.verify`)."""
    require(principal, Action.AUDIT_READ)
    return checkpoints.verify(ctx)
