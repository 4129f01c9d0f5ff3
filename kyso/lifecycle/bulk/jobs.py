"""The batch job: its row, its progress while it runs, and reading it.

A running batch's progress cannot live in its own transaction (nobody would see it before
the commit), so :class:`Progress` writes it on the side: a separate short transaction on
PostgreSQL, a small file beside the database on SQLite.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Table, func, select, update
from sqlalchemy.orm import Session

from kyso.errors import Conflict, Forbidden, NotFound
from kyso.lifecycle.forms import KeySource
from kyso.lifecycle.workflow.states import RequestTransitionError, S, envelope
from kyso.registry import fields as f
from kyso.registry.access import Action, Principal, require, visible
from kyso.settings import Settings
from kyso.store.db import Database
from kyso.store.models import BatchJob, CertificateRequest, JobState, Organization

KIND = "bulk_individual"

REQUESTS: Table = CertificateRequest.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class JobView:
    public_id: str
    kind: str
    state: JobState
    total: int
    done: int
    errors: list[dict[str, Any]]
    unit: str | None
    created_at: datetime
    finished_at: datetime | None
    requests: dict[str, int] = field(default_factory=dict)  # state -> count

    @property
    def percent(self) -> float:
        if self.state is JobState.DONE:
            return 100.0
        return round(100.0 * self.done / self.total, 1) if self.total else 0.0


def lock_job(session: Session, public_id: str) -> tuple[BatchJob, Organization | None]:
    job = session.execute(
        select(BatchJob)
        .where(BatchJob.public_id == public_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if job is None:
        raise NotFound(f"job {public_id}", vi=f"lô {public_id}")
    org = session.get(Organization, job.organization_id) if job.organization_id else None
    return job, org


def issuable(session: Session, job_id: int, *, lock: bool) -> list[CertificateRequest]:
    query = (
        select(CertificateRequest)
        .where(CertificateRequest.batch_id == job_id, CertificateRequest.state == S.APPROVED)
        .order_by(CertificateRequest.id)
        .execution_options(populate_existing=True)
    )
    if lock:
        query = query.with_for_update()
    return [
        r
        for r in session.execute(query).scalars()
        if (key := envelope(r).key) is None or key.source is not KeySource.TOKEN
    ]


# -- progress while it runs ---------------------------------------------------------------------
class Progress:
    """Where a running job's progress goes while its own transaction is still open."""

    def __init__(self, db: Database, settings: Settings, job_id: int, public_id: str) -> None:
        self.db, self.job_id = db, job_id
        self.path = progress_file(settings, public_id) if db.is_sqlite else None

    def write(self, done: int, total: int) -> None:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"done": done, "total": total}))
            os.replace(tmp, self.path)
            return
        with self.db.session() as session:
            session.execute(update(BatchJob).where(BatchJob.id == self.job_id).values(done=done))

    def clear(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)


def progress_file(settings: Settings, public_id: str) -> Path:
    return settings.home / "jobs" / f"{re.sub(r'[^a-z0-9]', '', public_id)}.progress"


def check_runnable(
    principal: Principal, session: Session, job_public_id: str, *, force: bool = False
) -> BatchJob:
    """What :func:`run` checks before it starts, without starting (for callers that run the
    job in the background and must refuse at once)."""
    job = session.execute(
        select(BatchJob).where(BatchJob.public_id == job_public_id)
    ).scalar_one_or_none()
    if job is None:
        raise NotFound(f"job {job_public_id}", vi=f"lô {job_public_id}")
    org = session.get(Organization, job.organization_id) if job.organization_id else None
    require(principal, Action.REQUEST_DECIDE, org.path if org else None)
    if job.state is JobState.DONE:
        raise Conflict(
            f"batch {job_public_id} is already issued", vi=f"lô {job_public_id} đã được cấp xong"
        )
    if job.state is JobState.RUNNING and not force:
        raise Conflict(f"batch {job_public_id} is running", vi=f"lô {job_public_id} đang chạy")
    if not issuable(session, job.id, lock=False):
        raise RequestTransitionError(
            f"batch {job_public_id} has no approved request to issue (approve it first)",
            vi=f"lô {job_public_id} chưa có yêu cầu nào được duyệt để cấp",
        )
    return job


# -- reading ------------------------------------------------------------------------------------
def job_view(session: Session, settings: Settings, job: BatchJob) -> JobView:
    done, total = job.done, job.total
    if job.state is JobState.RUNNING:
        path = progress_file(settings, job.public_id)
        try:
            live = json.loads(path.read_text())
            done, total = int(live["done"]), int(live["total"])
        except (OSError, ValueError, KeyError):
            pass
    counts = {
        state.value: n
        for state, n in session.execute(
            select(CertificateRequest.state, func.count())
            .where(CertificateRequest.batch_id == job.id)
            .group_by(CertificateRequest.state)
        )
    }
    unit = session.get(Organization, job.organization_id) if job.organization_id else None
    return JobView(
        job.public_id,
        job.kind,
        job.state,
        total,
        done,
        json.loads(job.errors),
        unit.public_id if unit else None,
        job.created_at,
        job.finished_at,
        counts,
    )


def get(principal: Principal, session: Session, settings: Settings, public_id: str) -> JobView:
    row = session.execute(
        select(BatchJob, Organization.path)
        .outerjoin(Organization, BatchJob.organization_id == Organization.id)
        .where(BatchJob.public_id == public_id)
    ).first()
    if row is None:
        raise NotFound(f"job {public_id}", vi=f"lô {public_id}")
    require(principal, Action.REQUEST_READ, row[1])
    if row[1] is None and not principal.province_wide:
        raise Forbidden("outside your unit", vi="ngoài phạm vi đơn vị của bạn")
    return job_view(session, settings, row[0])


def search(
    principal: Principal, session: Session, settings: Settings, *, offset: int = 0, limit: int = 50
) -> f.Page[JobView]:
    require(principal, Action.REQUEST_READ)
    query = (
        select(BatchJob)
        .outerjoin(Organization, BatchJob.organization_id == Organization.id)
        .where(visible(principal, Organization.path))
    )
    total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    jobs = session.execute(query.order_by(BatchJob.id.desc()).offset(offset).limit(limit)).scalars()
    return f.Page([job_view(session, settings, j) for j in jobs], total, offset, limit)
