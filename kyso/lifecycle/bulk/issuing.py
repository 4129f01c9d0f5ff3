"""Issuing an approved batch as one transaction (see the package's notes on all or nothing):
every row checked again, keys made (the next chunk's while this one is signed), certificates
signed in chunks, the failing row found by retrying its chunk row by row in savepoints.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from kyso import clock
from kyso.audit.log import Event, record, record_many
from kyso.errors import InvalidInput, KysoError
from kyso.lifecycle import notify
from kyso.lifecycle.bulk.jobs import (
    REQUESTS,
    JobView,
    Progress,
    check_runnable,
    issuable,
    job_view,
    lock_job,
)
from kyso.lifecycle.bulk.sheet import BY_FIELD, RowError
from kyso.lifecycle.bulk.submission import people_ids
from kyso.lifecycle.forms import KeySource
from kyso.lifecycle.workflow.preparation import Prepared, prepare
from kyso.lifecycle.workflow.states import S, envelope
from kyso.pki import issuance
from kyso.pki.authority import Authority
from kyso.pki.csr import load_csr
from kyso.pki.names import subject_text
from kyso.registry import fields as f
from kyso.registry.access import Principal
from kyso.store.models import (
    BatchJob,
    CertificateRequest,
    JobState,
    Organization,
    Person,
    RequestEvent,
)

log = logging.getLogger("kyso.lifecycle.bulk")

CHUNK = 100


class BatchFailed(KysoError):
    code = "batch_failed"
    http_status = 422
    message_vi = "Lô không cấp được; không chứng thư nào được phát hành."
    message_en = "The batch could not be issued; no certificate was released."

    def __init__(self, errors: Sequence[RowError]) -> None:
        self.errors = list(errors)
        first = self.errors[0]
        super().__init__(
            f"row {first.row}: {first.message_en}", vi=f"dòng {first.row}: {first.message}"
        )


def run(
    principal: Principal,
    authority: Authority,
    job_public_id: str,
    *,
    chunk: int = CHUNK,
    force: bool = False,
) -> JobView:
    """Issue the batch's approved requests as one transaction; see the module's notes.

    Returns the job as it ended (done, or failed with the rows at fault). ``force`` re-runs
    a job left "running" by a process that stopped."""
    db, settings = authority.db, authority.settings
    with db.session() as session:
        lock_job(session, job_public_id)
        job = check_runnable(principal, session, job_public_id, force=force)
        waiting = issuable(session, job.id, lock=False)
        job.state, job.total, job.done, job.errors = JobState.RUNNING, len(waiting), 0, "[]"
        job.finished_at = None
        job_id = job.id
    channel = Progress(db, settings, job_id, job_public_id)
    channel.write(0, len(waiting))
    try:
        with db.session() as session:
            _issue_batch(principal, session, authority, job_id, channel, chunk)
    except Exception as exc:
        errors = (
            exc.errors
            if isinstance(exc, BatchFailed)
            else [
                RowError(
                    None,
                    None,
                    None,
                    None,
                    exc.message("vi")
                    if isinstance(exc, KysoError)
                    else "lỗi hệ thống; đã ghi nhật ký",
                    exc.message("en")
                    if isinstance(exc, KysoError)
                    else f"internal error ({type(exc).__name__})",
                )
            ]
        )
        if not isinstance(exc, KysoError):
            log.exception("batch %s failed", job_public_id)
        with db.session() as session:
            session.execute(
                update(BatchJob)
                .where(BatchJob.id == job_id)
                .values(
                    state=JobState.FAILED,
                    done=0,
                    finished_at=clock.now(),
                    errors=json.dumps([e.to_json() for e in errors], ensure_ascii=False),
                )
            )
            record(
                session,
                Event(
                    principal.actor,
                    "batch.failed",
                    job_public_id,
                    {"errors": [e.to_json() for e in errors[:5]]},
                ),
            )
    finally:
        channel.clear()
    with db.read() as session:
        return job_view(
            session,
            settings,
            session.execute(select(BatchJob).where(BatchJob.id == job_id)).scalar_one(),
        )


def _row_error(request: CertificateRequest, exc: Exception) -> RowError:
    row = envelope(request).row
    if isinstance(exc, InvalidInput) and exc.detail:
        field_name = exc.detail.partition(": ")[0]
        column = BY_FIELD.get(field_name.split(".")[0])
        return RowError(
            row,
            None,
            column.header if column else None,
            field_name if column else None,
            exc.detail_vi or exc.detail,
            exc.detail,
        )
    if isinstance(exc, KysoError):
        return RowError(row, None, None, None, exc.message("vi"), exc.message("en"))
    return RowError(
        row,
        None,
        None,
        None,
        f"lỗi cơ sở dữ liệu ({type(exc).__name__})",
        f"database error ({type(exc).__name__})",
    )


def _issue_batch(
    principal: Principal,
    session: Session,
    authority: Authority,
    job_id: int,
    channel: Progress,
    chunk: int,
) -> None:
    requests = issuable(session, job_id, lock=True)
    total = len(requests)
    # The units the rows name and their parents, loaded once and held: the session's identity
    # map keeps objects only while someone references them.
    units = list(
        session.execute(
            select(Organization).where(
                Organization.id.in_(
                    {r.subject_organization_id for r in requests if r.subject_organization_id}
                )
            )
        ).scalars()
    )
    units += (
        session.execute(
            select(Organization).where(
                Organization.id.in_({u.parent_id for u in units if u.parent_id})
            )
        )
        .scalars()
        .all()
    )
    # Everything checked again before the first signature: a row changed since the upload
    # fails here, located, before any key is made.
    prepared: list[Prepared] = []
    for request in requests:
        try:
            prepared.append(prepare(session, request))
        except KysoError as exc:
            raise BatchFailed([_row_error(request, exc)]) from exc
    people = _subscribers(principal, session, requests, prepared)
    store = authority.keystore
    parts = [
        list(zip(requests[i : i + chunk], prepared[i : i + chunk], strict=True))
        for i in range(0, total, chunk)
    ]

    def keys(part: list[tuple[CertificateRequest, Prepared]]) -> list[tuple[Any, str]]:
        made: list[tuple[Any, str]] = []
        for _, p in part:
            assert p.name is not None and p.key is not None
            if p.key.source is KeySource.CSR:
                assert p.key.csr is not None
                made.append((load_csr(p.key.csr.encode()).public_key(), "csr"))
            else:  # a list may choose the central signing HSM for all its keys
                where = authority.central if p.key.source is KeySource.CENTRAL else store
                handle = where.generate(subject_text(p.name)[:64], p.key.algorithm)
                made.append((handle.public_key(), f"{where.name}:{handle.key_id}"))
        return made

    # The next chunk's keys are made while this one is signed (both release the GIL: ~2x on
    # two cores). Only in the software store: python-pkcs11 on one module is not thread-safe
    # (PERFORMANCE.md), and the CA's own key may live in that module.
    pool = ThreadPoolExecutor(max_workers=1) if store.name == "software" else None
    issued: list[issuance.Issued] = []
    try:
        upcoming = pool.submit(keys, parts[0]) if pool and parts else None
        for index, part in enumerate(parts):
            made = upcoming.result() if upcoming is not None else keys(part)
            upcoming = (
                pool.submit(keys, parts[index + 1]) if pool and index + 1 < len(parts) else None
            )
            specs = []
            for (request, p), (public_key, location) in zip(part, made, strict=True):
                assert p.profile is not None and p.name is not None
                specs.append(
                    issuance.IssueSpec(
                        p.profile,
                        p.name,
                        public_key,
                        emails=p.emails,
                        key_location=location,
                        person_id=people[request.id],
                        organization_id=p.subject_unit.id if p.subject_unit else None,
                    )
                )
            try:
                with session.begin_nested():
                    issued += issuance.issue_many(session, authority, specs, principal.actor)
            except (KysoError, SQLAlchemyError) as exc:
                culprit = _culprit(principal, session, authority, part, specs, exc)
                raise BatchFailed([culprit]) from exc
            channel.write(len(issued), total)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    _finish(principal, session, job_id, requests, prepared, issued, people)
    del units


def _culprit(
    principal: Principal,
    session: Session,
    authority: Authority,
    part: list[tuple[CertificateRequest, Prepared]],
    specs: list[issuance.IssueSpec],
    exc: Exception,
) -> RowError:
    """The row of a failed chunk at fault: each tried alone in a savepoint rolled back."""
    for (request, _), spec in zip(part, specs, strict=True):
        nested = session.begin_nested()
        try:
            issuance.issue_many(session, authority, [spec], principal.actor)
        except (KysoError, SQLAlchemyError) as own:
            nested.rollback()
            return _row_error(request, own)
        nested.rollback()
    return _row_error(part[0][0], exc)


def _subscribers(
    principal: Principal,
    session: Session,
    requests: Sequence[CertificateRequest],
    prepared: Sequence[Prepared],
) -> dict[int, int]:
    """Request id → person id: the registry's person by identity number, or a new one made
    from the row (one multi-row INSERT). Known people keep their record as it is."""
    known = people_ids(
        session, [p.subscriber.id_number if p.subscriber else None for p in prepared]
    )
    result: dict[int, int] = {}
    new: list[tuple[int, dict[str, Any]]] = []
    now = clock.now()
    made: dict[str, int] = {}
    for request, p in zip(requests, prepared, strict=True):
        form = p.subscriber
        assert form is not None and p.subject_unit is not None
        number = form.id_number or ""
        if request.person_id is not None:
            result[request.id] = request.person_id
        elif number in known:
            result[request.id] = known[number]
        else:
            new.append(
                (
                    request.id,
                    {
                        "public_id": f.new_public_id(),
                        "full_name": form.full_name,
                        "date_of_birth": form.date_of_birth,
                        "id_number": form.id_number,
                        "id_issue_date": form.id_issue_date,
                        "id_issue_place": form.id_issue_place,
                        "position": form.position,
                        "organization_id": p.subject_unit.id,
                        "email": form.email,
                        "mobile": form.mobile,
                        "created_at": now,
                        "updated_at": now,
                        "version": 1,
                    },
                )
            )
    if new:
        ids = list(
            session.execute(
                insert(Person).returning(Person.id, sort_by_parameter_order=True),
                [v for _, v in new],
            ).scalars()
        )
        for (request_id, values), person_id in zip(new, ids, strict=True):
            result[request_id] = person_id
            made[values["public_id"]] = person_id
        units = {p.subject_unit.id: p.subject_unit.public_id for p in prepared if p.subject_unit}
        record_many(
            session,
            [
                Event(
                    principal.actor,
                    "person.created",
                    v["public_id"],
                    {"full_name": v["full_name"], "organization": units[v["organization_id"]]},
                )
                for _, v in new
            ],
        )
    return result


def _finish(
    principal: Principal,
    session: Session,
    job_id: int,
    requests: Sequence[CertificateRequest],
    prepared: Sequence[Prepared],
    issued: Sequence[issuance.Issued],
    people: dict[int, int],
) -> None:
    now = clock.now()
    table = REQUESTS
    session.execute(
        update(table)
        .where(table.c.id == bindparam("b_id"))
        .values(
            state=S.ISSUED.value,
            issued_at=now,
            certificate_id=bindparam("b_cert"),
            person_id=bindparam("b_person"),
            version=table.c.version + 1,
        ),
        [
            {"b_id": r.id, "b_cert": i.row.id, "b_person": people[r.id]}
            for r, i in zip(requests, issued, strict=True)
        ],
    )
    session.execute(
        insert(RequestEvent),
        [
            {
                "request_id": r.id,
                "at": now,
                "actor": principal.actor,
                "from_state": S.APPROVED,
                "to_state": S.ISSUED,
                "note": f"chứng thư {i.serial}",
            }
            for r, i in zip(requests, issued, strict=True)
        ],
    )
    record_many(
        session,
        [
            Event(
                principal.actor,
                "request.issued",
                r.public_id,
                {"type": r.type.value, "certificate": i.serial},
            )
            for r, i in zip(requests, issued, strict=True)
        ],
    )
    notify.enqueue_many(
        session,
        [
            notify.issued_mail(p.notify_to, r.public_id, i.serial, i.row.subject, i.row.not_after)
            for r, p, i in zip(requests, prepared, issued, strict=True)
        ],
    )
    done = session.execute(
        select(func.count())
        .select_from(CertificateRequest)
        .where(
            CertificateRequest.batch_id == job_id,
            CertificateRequest.state.in_([S.ISSUED, S.HANDED_OVER]),
        )
    ).scalar_one()
    session.execute(
        update(BatchJob)
        .where(BatchJob.id == job_id)
        .values(state=JobState.DONE, done=done, total=done, finished_at=now, errors="[]")
    )
    job_public_id = session.execute(
        select(BatchJob.public_id).where(BatchJob.id == job_id)
    ).scalar_one()
    record(
        session,
        Event(principal.actor, "batch.issued", job_public_id, {"certificates": len(issued)}),
    )
