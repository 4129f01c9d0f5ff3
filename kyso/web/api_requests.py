"""REST: certificate requests and their life (/api/v1/requests, /jobs, a lost device,
expiring certificates, turnaround). Routes only translate; the rules live in
``kyso.lifecycle``, which checks the caller's rights (``Principal`` + ``require``) itself."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from fastapi import APIRouter, BackgroundTasks, Depends, File, Form, Query, Response, UploadFile
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from kyso.context import Context
from kyso.errors import TooLarge
from kyso.keys.base import KeyAlgorithm
from kyso.lifecycle import bulk, expiry, lost, turnaround, workflow
from kyso.lifecycle.forms import TYPE_LABELS, KeySource
from kyso.registry.access import Principal
from kyso.store.models import JobState, Profile, RequestState, RequestType
from kyso.web.deps import context, principal
from kyso.web.downloads import content_disposition

log = logging.getLogger("kyso.web")

router = APIRouter(prefix="/api/v1", tags=["requests"])
Ctx = Annotated[Context, Depends(context)]
Who = Annotated[Principal, Depends(principal)]


def _no_nul(value: str | None) -> str | None:
    # PostgreSQL text cannot hold U+0000: refuse it here instead of failing in the database.
    if value is not None and "\x00" in value:
        raise ValueError("must not contain the NUL character")
    return value


Text = Annotated[str | None, Field(max_length=2000), AfterValidator(_no_nul)]
Ref = Annotated[str | None, Field(max_length=100), AfterValidator(_no_nul)]
Id = Annotated[str, Field(max_length=100), AfterValidator(_no_nul)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateBody(_Body):
    type: RequestType
    form: dict[str, Any] = Field(default_factory=dict, description="the form's fields")
    unit: Ref = Field(None, description="requesting unit (public id); yours by default")
    subject_unit: Ref = Field(None, description="the subscriber's unit / the organization")
    key_source: KeySource | None = None
    key_algorithm: KeyAlgorithm | None = None
    csr: Annotated[str | None, Field(max_length=64 * 1024), AfterValidator(_no_nul)] = None
    device: Ref = Field(None, description="key device (public id or serial) for a token key")
    submit: bool = Field(False, description="submit at once")


class EditBody(_Body):
    version: int | None = Field(None, ge=1, description="the version you read")
    form: dict[str, Any] | None = None
    subject_unit: Ref = None
    key_source: KeySource | None = None
    key_algorithm: KeyAlgorithm | None = None
    csr: Annotated[str | None, Field(max_length=64 * 1024), AfterValidator(_no_nul)] = None
    device: Ref = None


class NoteBody(_Body):
    note: Text = None


class ApproveBody(_Body):
    note: Text = None
    # The approver saw GET …/subscriber-changes and accepts exactly those changes.
    confirm_subscriber_changes: bool = False


class FieldChangeOut(BaseModel):
    field: str
    label: str
    label_en: str
    old: str | None
    new: str | None


class SubscriberChangesOut(BaseModel):
    """What approving would change in an existing subscriber's record (null: nothing)."""

    person: str
    full_name: str
    unit: str
    changes: list[FieldChangeOut]


class RejectBody(_Body):
    reason: Annotated[str, Field(min_length=1, max_length=2000), AfterValidator(_no_nul)]


class IssueBody(_Body):
    token_pin: Annotated[str | None, Field(max_length=64), AfterValidator(_no_nul)] = None


class HandoverBody(_Body):
    to_person: Ref = Field(None, description="who receives the token (public id)")
    from_name: Text = None
    note: Text = None


class RunBody(_Body):
    force: bool = False


class UnitRef(BaseModel):
    id: str
    name: str


class EventOut(BaseModel):
    at: datetime
    actor: str
    from_state: RequestState | None
    to_state: RequestState
    note: str | None


class ApprovalOut(BaseModel):
    user: str
    at: datetime


class RequestOut(BaseModel):
    id: str
    type: RequestType
    type_label: str
    state: RequestState
    state_label: str
    unit: UnitRef
    subject_unit: UnitRef | None
    subscriber: str | None
    person: str | None
    form: dict[str, Any]
    key_source: KeySource | None
    key_algorithm: KeyAlgorithm | None
    device: str | None
    certificate: str | None
    target_certificate: str | None
    batch: str | None
    required_approvals: int
    decision_reason: str | None
    created_at: datetime
    submitted_at: datetime | None
    decided_at: datetime | None
    issued_at: datetime | None
    handed_over_at: datetime | None
    version: int


class RequestDetail(RequestOut):
    approvals: list[ApprovalOut]
    events: list[EventOut]
    certificate_pem: str | None


class RequestPage(BaseModel):
    items: list[RequestOut]
    total: int
    offset: int
    limit: int


class RowErrorOut(BaseModel):
    row: int | None
    column: str | None
    header: str | None
    field: str | None
    message: str
    message_en: str


class JobOut(BaseModel):
    id: str
    kind: str
    state: JobState
    total: int
    done: int
    percent: float
    unit: str | None
    requests: dict[str, int]
    errors: list[RowErrorOut]
    created_at: datetime
    finished_at: datetime | None


class JobPage(BaseModel):
    items: list[JobOut]
    total: int
    offset: int
    limit: int


class LostOut(BaseModel):
    device: str
    serial: str
    revoked: list[str]
    drafts: list[str]


class ExpiringCertOut(BaseModel):
    serial: str
    subject: str
    profile: Profile
    not_after: datetime
    days_left: int
    holder: str | None


class ExpiringUnitOut(BaseModel):
    unit: str | None
    name: str
    count: int
    within_30: int
    within_60: int
    within_90: int
    certificates: list[ExpiringCertOut]


class ExpiringOut(BaseModel):
    days: int
    total: int
    units: list[ExpiringUnitOut]


class StatsOut(BaseModel):
    count: int
    median_hours: float | None
    p90_hours: float | None
    max_hours: float | None


class UnitStatsOut(BaseModel):
    unit: str
    name: str
    stats: StatsOut


class RequestTimeOut(BaseModel):
    request: str
    type: RequestType
    unit: str
    submitted_at: datetime
    issued_at: datetime
    hours: float
    working_hours: float


class UnlockOut(BaseModel):
    count: int
    within_one_working_day: int
    late: list[str]


class TurnaroundOut(BaseModel):
    overall: StatsOut
    by_type: dict[str, StatsOut]
    by_unit: list[UnitStatsOut]
    device_unlock: UnlockOut
    requests: list[RequestTimeOut]


# -- conversions --------------------------------------------------------------------------------
def _out(view: workflow.RequestView, detailed: bool = False) -> RequestOut | RequestDetail:
    r = view.request
    key = view.envelope.key
    data: dict[str, Any] = {
        "id": r.public_id,
        "type": r.type,
        "type_label": TYPE_LABELS[r.type],
        "state": r.state,
        "state_label": workflow.STATE_LABELS[r.state],
        "unit": UnitRef(id=view.unit.public_id, name=view.unit.name),
        "subject_unit": UnitRef(id=view.subject_unit.public_id, name=view.subject_unit.name)
        if view.subject_unit
        else None,
        "subscriber": view.subscriber,
        "person": view.person.public_id if view.person else None,
        "form": view.envelope.fields,
        "key_source": key.source if key else None,
        "key_algorithm": key.algorithm if key else None,
        "device": view.device.public_id if view.device else None,
        "certificate": view.certificate.serial if view.certificate else None,
        "target_certificate": view.target.serial if view.target else None,
        "batch": view.batch,
        "required_approvals": r.required_approvals,
        "decision_reason": r.decision_reason,
        "created_at": r.created_at,
        "submitted_at": r.submitted_at,
        "decided_at": r.decided_at,
        "issued_at": r.issued_at,
        "handed_over_at": r.handed_over_at,
        "version": r.version,
    }
    if not detailed:
        return RequestOut(**data)
    pem = (
        x509.load_der_x509_certificate(view.certificate.der).public_bytes(Encoding.PEM).decode()
        if view.certificate
        else None
    )
    return RequestDetail(
        **data,
        approvals=[ApprovalOut(user=u, at=at) for u, at in view.approvals],
        events=[
            EventOut(
                at=e.at, actor=e.actor, from_state=e.from_state, to_state=e.to_state, note=e.note
            )
            for e in view.events
        ],
        certificate_pem=pem,
    )


def _detail(ctx: Context, who: Principal, public_id: str) -> RequestDetail:
    with ctx.db.read() as session:
        out = _out(workflow.get(who, session, public_id), detailed=True)
    assert isinstance(out, RequestDetail)
    return out


def _job_out(view: bulk.JobView) -> JobOut:
    return JobOut(
        id=view.public_id,
        kind=view.kind,
        state=view.state,
        total=view.total,
        done=view.done,
        percent=view.percent,
        unit=view.unit,
        requests=view.requests,
        errors=[RowErrorOut(**e) for e in view.errors],
        created_at=view.created_at,
        finished_at=view.finished_at,
    )


def _stats(s: turnaround.Stats) -> StatsOut:
    return StatsOut(
        count=s.count, median_hours=s.median_hours, p90_hours=s.p90_hours, max_hours=s.max_hours
    )


# -- requests -----------------------------------------------------------------------------------
@router.post("/requests", status_code=201, response_model=RequestDetail)
def create_request(body: CreateBody, ctx: Ctx, who: Who) -> RequestDetail:
    with ctx.db.session() as session:
        request = workflow.create(
            who,
            session,
            ctx.settings,
            workflow.NewRequest(
                type=body.type,
                form=body.form,
                unit=body.unit,
                subject_unit=body.subject_unit,
                key_source=body.key_source,
                key_algorithm=body.key_algorithm,
                csr=body.csr,
                device=body.device,
            ),
        )
        if body.submit:
            workflow.submit(who, session, ctx.settings, request.public_id)
        public_id = request.public_id
    return _detail(ctx, who, public_id)


@router.get("/requests", response_model=RequestPage)
def list_requests(
    ctx: Ctx,
    who: Who,
    state: RequestState | None = None,
    type: RequestType | None = None,
    unit: Annotated[str | None, Query(max_length=100), AfterValidator(_no_nul)] = None,
    batch: Annotated[str | None, Query(max_length=100), AfterValidator(_no_nul)] = None,
    q: Annotated[str | None, Query(max_length=200), AfterValidator(_no_nul)] = None,
    since: datetime | None = None,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> RequestPage:
    with ctx.db.read() as session:
        page = workflow.search(
            who,
            session,
            state=state,
            type=type,
            unit=unit,
            batch=batch,
            q=q,
            since=since,
            offset=offset,
            limit=limit,
        )
        items = [_out(v) for v in page.items]
    return RequestPage(items=items, total=page.total, offset=page.offset, limit=page.limit)


@router.get("/requests/bulk/template")
def bulk_template(who: Who) -> Response:
    del who  # any caller with a valid token
    return Response(
        bulk.template(),
        media_type=bulk.XLSX_TYPE,
        headers={"content-disposition": content_disposition("mau-01-danh-sach.xlsx")},
    )


@router.post("/requests/bulk", status_code=202, response_model=JobOut)
async def bulk_upload(
    ctx: Ctx,
    who: Who,
    file: Annotated[UploadFile, File(description="XLSX with the columns of form 01")],
    unit: Annotated[str | None, Form(max_length=100), AfterValidator(_no_nul)] = None,
    key_source: Annotated[KeySource, Form()] = KeySource.SERVER,
) -> JobOut | JSONResponse:
    data = await file.read(ctx.settings.max_upload_bytes + 1)
    if len(data) > ctx.settings.max_upload_bytes:
        raise TooLarge(
            f"over {ctx.settings.max_upload_bytes} bytes",
            vi=f"quá {ctx.settings.max_upload_bytes} byte",
        )
    try:
        return await run_in_threadpool(_bulk_upload, ctx, who, data, unit, key_source)
    except bulk.BulkRejected as exc:
        return JSONResponse(
            {
                "code": exc.code,
                "message": exc.message("vi"),
                "errors": [e.to_json() for e in exc.errors],
            },
            status_code=422,
        )


def _bulk_upload(
    ctx: Context, who: Principal, data: bytes, unit: str | None, key_source: KeySource
) -> JobOut:
    with ctx.db.session() as session:
        job = bulk.upload(who, session, ctx.settings, data, unit=unit, key_source=key_source)
        public_id = job.public_id
    with ctx.db.read() as session:
        return _job_out(bulk.get(who, session, ctx.settings, public_id))


@router.get("/requests/{public_id}", response_model=RequestDetail)
def show_request(public_id: Id, ctx: Ctx, who: Who) -> RequestDetail:
    return _detail(ctx, who, public_id)


@router.patch("/requests/{public_id}", response_model=RequestDetail)
def edit_request(public_id: Id, body: EditBody, ctx: Ctx, who: Who) -> RequestDetail:
    with ctx.db.session() as session:
        workflow.edit(
            who,
            session,
            public_id,
            workflow.DraftChanges(
                form=body.form,
                subject_unit=body.subject_unit,
                key_source=body.key_source,
                key_algorithm=body.key_algorithm,
                csr=body.csr,
                device=body.device,
            ),
            version=body.version,
        )
    return _detail(ctx, who, public_id)


@router.post("/requests/{public_id}/submit", response_model=RequestDetail)
def submit_request(public_id: Id, ctx: Ctx, who: Who) -> RequestDetail:
    with ctx.db.session() as session:
        workflow.submit(who, session, ctx.settings, public_id)
    return _detail(ctx, who, public_id)


@router.post("/requests/{public_id}/cancel", response_model=RequestDetail)
def cancel_request(
    public_id: Id, ctx: Ctx, who: Who, body: NoteBody | None = None
) -> RequestDetail:
    with ctx.db.session() as session:
        workflow.cancel(who, session, public_id, body.note if body else None)
    return _detail(ctx, who, public_id)


@router.get("/requests/{public_id}/subscriber-changes", response_model=SubscriberChangesOut | None)
def subscriber_changes(public_id: Id, ctx: Ctx, who: Who) -> SubscriberChangesOut | None:
    """For approvers: the existing subscriber's record that approving would change."""
    with ctx.db.read() as session:
        found = workflow.subscriber_changes(who, session, public_id)
    if found is None:
        return None
    return SubscriberChangesOut(
        person=found.person_public_id,
        full_name=found.person_name,
        unit=found.unit_name,
        changes=[
            FieldChangeOut(
                field=c.field, label=c.label_vi, label_en=c.label_en, old=c.old, new=c.new
            )
            for c in found.changes
        ],
    )


@router.post("/requests/{public_id}/approve", response_model=RequestDetail)
def approve_request(
    public_id: Id, ctx: Ctx, who: Who, body: ApproveBody | None = None
) -> RequestDetail:
    with ctx.db.session() as session:
        workflow.approve(
            who,
            session,
            ctx.authority,
            public_id,
            note=body.note if body else None,
            confirm_subscriber_changes=body.confirm_subscriber_changes if body else False,
        )
    return _detail(ctx, who, public_id)


@router.post("/requests/{public_id}/reject", response_model=RequestDetail)
def reject_request(public_id: Id, body: RejectBody, ctx: Ctx, who: Who) -> RequestDetail:
    with ctx.db.session() as session:
        workflow.reject(who, session, public_id, body.reason)
    return _detail(ctx, who, public_id)


@router.post("/requests/{public_id}/issue", response_model=RequestDetail)
def issue_request(
    public_id: Id, ctx: Ctx, who: Who, body: IssueBody | None = None
) -> RequestDetail:
    with ctx.db.session() as session:
        workflow.issue(
            who, session, ctx.authority, public_id, token_pin=body.token_pin if body else None
        )
    return _detail(ctx, who, public_id)


@router.post("/requests/{public_id}/handover", response_model=RequestDetail)
def handover_request(
    public_id: Id, ctx: Ctx, who: Who, body: HandoverBody | None = None
) -> RequestDetail:
    body = body or HandoverBody.model_validate({})
    with ctx.db.session() as session:
        workflow.hand_over(
            who,
            session,
            ctx.authority,
            public_id,
            to_person=body.to_person,
            from_name=body.from_name,
            note=body.note,
        )
    return _detail(ctx, who, public_id)


# -- jobs -------------------------------------------------------------------------------------
def _run_job(ctx: Context, who: Principal, public_id: str) -> None:
    try:
        bulk.run(who, ctx.authority, public_id)
    except Exception:  # a background task has nobody to answer: the job row says it failed
        log.exception("batch %s could not run", public_id)


@router.get("/jobs", response_model=JobPage)
def list_jobs(
    ctx: Ctx,
    who: Who,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> JobPage:
    with ctx.db.read() as session:
        page = bulk.search(who, session, ctx.settings, offset=offset, limit=limit)
    return JobPage(
        items=[_job_out(j) for j in page.items],
        total=page.total,
        offset=page.offset,
        limit=page.limit,
    )


@router.get("/jobs/{public_id}", response_model=JobOut)
def show_job(public_id: Id, ctx: Ctx, who: Who) -> JobOut:
    with ctx.db.read() as session:
        return _job_out(bulk.get(who, session, ctx.settings, public_id))


@router.post("/jobs/{public_id}/approve", status_code=202, response_model=JobOut)
def approve_job(
    public_id: Id, ctx: Ctx, who: Who, tasks: BackgroundTasks, body: NoteBody | None = None
) -> JobOut:
    """Approve a batch; the approval that completes it starts the issuance in the
    background (poll GET /jobs/{id})."""
    with ctx.db.session() as session:
        decision = bulk.approve(who, session, public_id, note=body.note if body else None)
    if decision.runnable:
        tasks.add_task(_run_job, ctx, who, public_id)
    with ctx.db.read() as session:
        return _job_out(bulk.get(who, session, ctx.settings, public_id))


@router.post("/jobs/{public_id}/run", status_code=202, response_model=JobOut)
def run_job(
    public_id: Id, ctx: Ctx, who: Who, tasks: BackgroundTasks, body: RunBody | None = None
) -> JobOut:
    """Run again a batch that failed (after rejecting the rows at fault) or whose process
    stopped (``force``)."""
    force = bool(body and body.force)
    with ctx.db.read() as session:
        bulk.check_runnable(who, session, public_id, force=force)
        view = bulk.get(who, session, ctx.settings, public_id)
    tasks.add_task(_rerun, ctx, who, public_id, force)
    return _job_out(view)


def _rerun(ctx: Context, who: Principal, public_id: str, force: bool) -> None:
    try:
        bulk.run(who, ctx.authority, public_id, force=force)
    except Exception:  # see _run_job
        log.exception("batch %s could not run", public_id)


# -- a lost device, expiry, turnaround ---------------------------------------------------------
@router.post("/devices/{public_id}/lost", response_model=LostOut)
def device_lost(public_id: Id, ctx: Ctx, who: Who, body: NoteBody | None = None) -> LostOut:
    """One action: the device is lost, its certificates revoked (keyCompromise), re-issue
    drafts opened."""
    with ctx.db.session() as session:
        report = lost.report_lost(
            who, session, ctx.authority, public_id, note=body.note if body else None
        )
    return LostOut(
        device=report.device, serial=report.serial, revoked=report.revoked, drafts=report.drafts
    )


@router.get("/certificates/expiring", response_model=ExpiringOut)
def expiring(
    ctx: Ctx,
    who: Who,
    days: Annotated[int, Query(ge=1, le=expiry.MAX_DAYS)] = 30,
    unit: Annotated[str | None, Query(max_length=100), AfterValidator(_no_nul)] = None,
) -> ExpiringOut:
    with ctx.db.read() as session:
        groups = expiry.expiring(who, session, days, unit=unit)
    units = [
        ExpiringUnitOut(
            unit=g.unit,
            name=g.name,
            count=len(g.certificates),
            within_30=g.within(30),
            within_60=g.within(60),
            within_90=g.within(90),
            certificates=[
                ExpiringCertOut(
                    serial=c.serial,
                    subject=c.subject,
                    profile=c.profile,
                    not_after=c.not_after,
                    days_left=c.days_left,
                    holder=c.holder,
                )
                for c in g.certificates
            ],
        )
        for g in groups
    ]
    return ExpiringOut(days=days, total=sum(u.count for u in units), units=units)


@router.get("/reports/turnaround", response_model=TurnaroundOut)
def turnaround_report(
    ctx: Ctx,
    who: Who,
    since: datetime | None = None,
    until: datetime | None = None,
    type: RequestType | None = None,
    unit: Annotated[str | None, Query(max_length=100), AfterValidator(_no_nul)] = None,
) -> TurnaroundOut:
    with ctx.db.read() as session:
        report = turnaround.report(who, session, since=since, until=until, type=type, unit=unit)
    return TurnaroundOut(
        overall=_stats(report.overall),
        by_type={k.value: _stats(v) for k, v in report.by_type.items()},
        by_unit=[
            UnitStatsOut(unit=u.unit, name=u.name, stats=_stats(u.stats)) for u in report.by_unit
        ],
        device_unlock=UnlockOut(
            count=report.unlock.count,
            within_one_working_day=report.unlock.within,
            late=report.unlock.late,
        ),
        requests=[
            RequestTimeOut(
                request=t.request,
                type=t.type,
                unit=t.unit,
                submitted_at=t.submitted_at,
                issued_at=t.issued_at,
                hours=round(t.hours, 4),
                working_hours=round(t.working_hours, 4),
            )
            for t in report.requests[-500:]
        ],
    )
