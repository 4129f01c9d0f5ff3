"""Approving a whole batch: each administrator approves every submitted request of it at
once; when the batch has the approvals its type needs, its requests become approved and the
batch can run (:mod:`kyso.lifecycle.bulk.issuing`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from kyso import clock
from kyso.audit.log import Event, record, record_many
from kyso.errors import Conflict, Forbidden
from kyso.lifecycle import notify
from kyso.lifecycle.bulk.jobs import REQUESTS, issuable, lock_job
from kyso.lifecycle.workflow.states import RequestTransitionError, S
from kyso.registry.access import Action, Principal, require
from kyso.store.models import (
    Approval,
    BatchJob,
    CertificateRequest,
    RequestEvent,
    RequestState,
    RequestType,
    User,
)


@dataclass(frozen=True)
class BatchDecision:
    job: BatchJob
    approvals: int
    required: int
    issuable: int = 0  # approved rows the job can issue now (the others await their tokens)

    @property
    def approved(self) -> bool:
        return self.approvals >= self.required

    @property
    def runnable(self) -> bool:
        return self.approved and self.issuable > 0


def approve(
    principal: Principal, session: Session, job_public_id: str, *, note: str | None = None
) -> BatchDecision:
    """One administrator approves every submitted request of the batch; when the batch has
    the approvals its type needs, its requests become approved (the caller then runs it)."""
    require(principal, Action.REQUEST_DECIDE)
    if principal.user_id is None:
        raise Forbidden(
            "an approval is given by a named user, not by a system token",
            vi="phê duyệt phải do một người dùng cụ thể thực hiện",
        )
    job, org = lock_job(session, job_public_id)
    require(principal, Action.REQUEST_DECIDE, org.path if org else None)
    rows = session.execute(
        select(
            CertificateRequest.id,
            CertificateRequest.public_id,
            CertificateRequest.required_approvals,
        )
        .where(CertificateRequest.batch_id == job.id, CertificateRequest.state == S.SUBMITTED)
        .order_by(CertificateRequest.id)
    ).all()
    if not rows:
        raise RequestTransitionError(
            f"batch {job_public_id} has no submitted request left to approve",
            vi=f"lô {job_public_id} không còn yêu cầu nào chờ duyệt",
        )
    ids = [r.id for r in rows]
    if session.execute(
        select(Approval.id).where(
            Approval.request_id.in_(ids[:1]), Approval.user_id == principal.user_id
        )
    ).first():
        raise Conflict(
            f"you have already approved batch {job_public_id}; it needs another approver",
            vi=f"bạn đã duyệt lô {job_public_id}; cần người duyệt khác",
        )
    now = clock.now()
    session.execute(
        insert(Approval), [{"request_id": i, "user_id": principal.user_id, "at": now} for i in ids]
    )
    count = session.execute(
        select(func.count()).select_from(Approval).where(Approval.request_id == ids[0])
    ).scalar_one()
    required = max(r.required_approvals for r in rows)
    tally = f"phê duyệt {count}/{required}" + (f": {note}" if note else "")
    if count < required:
        _events(session, principal, ids, S.SUBMITTED, S.SUBMITTED, tally, now)
        record(
            session,
            Event(
                principal.actor,
                "batch.approval",
                job.public_id,
                {"requests": len(ids), "tally": f"{count}/{required}"},
            ),
        )
        return BatchDecision(job, count, required)
    session.execute(
        update(REQUESTS)
        .where(REQUESTS.c.id.in_(ids))
        .values(state=S.APPROVED.value, decided_at=now, version=REQUESTS.c.version + 1)
    )
    _events(session, principal, ids, S.SUBMITTED, S.APPROVED, tally, now)
    record_many(
        session,
        [
            Event(
                principal.actor,
                "request.approved",
                r.public_id,
                {"type": RequestType.NEW_INDIVIDUAL.value, "batch": job.public_id},
            )
            for r in rows
        ],
    )
    uploader = session.get(User, job.created_by) if job.created_by else None
    notify.batch_decided(
        session, uploader.email if uploader and uploader.active else None, job.public_id, len(ids)
    )
    return BatchDecision(job, count, required, len(issuable(session, job.id, lock=False)))


def _events(
    session: Session,
    principal: Principal,
    ids: Sequence[int],
    before: RequestState,
    after: RequestState,
    note: str | None,
    now: datetime,
) -> None:
    session.execute(
        insert(RequestEvent),
        [
            {
                "request_id": i,
                "at": now,
                "actor": principal.actor,
                "from_state": before,
                "to_state": after,
                "note": note,
            }
            for i in ids
        ],
    )
