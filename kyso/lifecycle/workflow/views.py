"""Reading requests: one request with its history (:func:`get`), and pages of them
(:func:`search`) filtered by the reader's view, with the rows a page refers to loaded in one
query per table.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kyso.lifecycle.workflow.states import Envelope, aware, envelope, find_unit, not_found
from kyso.registry import fields as f
from kyso.registry.access import Action, Principal, require, visible
from kyso.store.models import (
    Approval,
    BatchJob,
    Certificate,
    CertificateRequest,
    KeyDevice,
    Organization,
    Person,
    RequestEvent,
    RequestState,
    RequestType,
    User,
)


@dataclass(frozen=True)
class RequestView:
    request: CertificateRequest
    unit: Organization
    envelope: Envelope
    subject_unit: Organization | None = None
    person: Person | None = None
    certificate: Certificate | None = None
    target: Certificate | None = None
    device: KeyDevice | None = None
    batch: str | None = None
    approvals: tuple[tuple[str, datetime], ...] = ()
    events: tuple[RequestEvent, ...] = ()

    @property
    def subscriber(self) -> str | None:
        fields = self.envelope.fields
        for key in ("full_name", "name", "service_name", "holder_name"):
            if fields.get(key):
                return str(fields[key])
        if self.person is not None:
            return self.person.full_name
        return self.target.subject if self.target is not None else None


def _view(
    session: Session, request: CertificateRequest, unit: Organization, detailed: bool
) -> RequestView:
    def get(model: Any, key: int | None) -> Any:
        return session.get(model, key) if key is not None else None

    approvals: tuple[tuple[str, datetime], ...] = ()
    events: tuple[RequestEvent, ...] = ()
    if detailed:
        approvals = tuple(
            (name, at)
            for name, at in session.execute(
                select(User.username, Approval.at)
                .join(User, Approval.user_id == User.id)
                .where(Approval.request_id == request.id)
                .order_by(Approval.at, Approval.id)
            )
        )
        events = tuple(
            session.execute(
                select(RequestEvent)
                .where(RequestEvent.request_id == request.id)
                .order_by(RequestEvent.id)
            ).scalars()
        )
    batch = get(BatchJob, request.batch_id)
    return RequestView(
        request,
        unit,
        envelope(request),
        get(Organization, request.subject_organization_id),
        get(Person, request.person_id),
        get(Certificate, request.certificate_id),
        get(Certificate, request.target_certificate_id),
        get(KeyDevice, request.device_id),
        batch.public_id if batch is not None else None,
        approvals,
        events,
    )


def get(principal: Principal, session: Session, public_id: str) -> RequestView:
    row = session.execute(
        select(CertificateRequest, Organization)
        .join(Organization, CertificateRequest.organization_id == Organization.id)
        .where(CertificateRequest.public_id == public_id)
    ).first()
    if row is None:
        raise not_found(public_id)
    require(principal, Action.REQUEST_READ, row[1].path)
    return _view(session, row[0], row[1], detailed=True)


def search(
    principal: Principal,
    session: Session,
    *,
    state: RequestState | None = None,
    type: RequestType | None = None,
    unit: str | None = None,
    batch: str | None = None,
    q: str | None = None,
    since: datetime | None = None,
    offset: int = 0,
    limit: int = 50,
) -> f.Page[RequestView]:
    """Requests in view, newest first; ``unit`` keeps a unit's subtree, ``q`` matches the
    form's text (a name, an identity number, an e-mail)."""
    require(principal, Action.REQUEST_READ)
    query = (
        select(CertificateRequest, Organization)
        .join(Organization, CertificateRequest.organization_id == Organization.id)
        .where(visible(principal, Organization.path))
    )
    if state is not None:
        query = query.where(CertificateRequest.state == state)
    if type is not None:
        query = query.where(CertificateRequest.type == type)
    if unit is not None:
        root = find_unit(session, unit)
        require(principal, Action.REQUEST_READ, root.path)
        query = query.where(Organization.path.startswith(root.path, autoescape=True))
    if batch is not None:
        job = session.execute(select(BatchJob.id).where(BatchJob.public_id == batch)).scalar()
        query = query.where(CertificateRequest.batch_id == (job if job is not None else -1))
    if q:
        query = query.where(CertificateRequest.form.contains(q.strip(), autoescape=True))
    if since is not None:
        query = query.where(CertificateRequest.created_at >= aware(since))
    total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    rows = session.execute(
        query.order_by(CertificateRequest.id.desc()).offset(offset).limit(limit)
    ).all()
    _preload(session, [r[0] for r in rows])
    return f.Page([_view(session, r[0], r[1], detailed=False) for r in rows], total, offset, limit)


def _preload(session: Session, requests: list[CertificateRequest]) -> None:
    """Load what a page of views refers to with one query per table, so that building each
    view finds its rows in the session instead of asking the database row by row."""
    wanted: list[tuple[Any, set[int]]] = [
        (Organization, {r.subject_organization_id for r in requests if r.subject_organization_id}),
        (Person, {r.person_id for r in requests if r.person_id}),
        (
            Certificate,
            {c for r in requests for c in (r.certificate_id, r.target_certificate_id) if c},
        ),
        (KeyDevice, {r.device_id for r in requests if r.device_id}),
        (BatchJob, {r.batch_id for r in requests if r.batch_id}),
    ]
    for model, ids in wanted:
        if ids:
            session.execute(select(model).where(model.id.in_(ids))).scalars().all()
