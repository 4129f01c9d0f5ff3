"""Submitting, cancelling, approving and rejecting a request.

A request type may need several approvers (``KYSO_APPROVALS_REQUIRED``), each a different
user; the last approval carries the decision out in the same transaction
(:func:`kyso.lifecycle.workflow.execution.carry_out`), except a key to be made on the
subscriber's USB token, which waits, approved, for
:func:`kyso.lifecycle.workflow.execution.issue`. An approval that would change an existing
subscriber's record is refused until the approver confirms those very changes.
"""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from kyso import clock
from kyso.errors import Conflict, Forbidden
from kyso.lifecycle import notify
from kyso.lifecycle.forms import TYPE_LABELS, KeySource
from kyso.lifecycle.workflow.execution import carry_out
from kyso.lifecycle.workflow.preparation import prepare, subscriber_name
from kyso.lifecycle.workflow.states import (
    TRANSITIONS,
    S,
    approvals_required,
    checked_note,
    envelope,
    flush,
    illegal,
    load,
    move,
    write_event,
)
from kyso.lifecycle.workflow.subscribers import SubscriberChangesUnconfirmed, pending_changes
from kyso.pki.authority import Authority
from kyso.registry.access import Action, Principal, require
from kyso.settings import Settings
from kyso.store.models import Approval, BatchJob, CertificateRequest


def submit(
    principal: Principal, session: Session, settings: Settings, public_id: str
) -> CertificateRequest:
    request, unit = load(session, public_id)
    require(principal, Action.REQUEST_CREATE, unit.path)
    if S.SUBMITTED not in TRANSITIONS[request.state]:
        raise illegal(request, S.SUBMITTED)
    prepare(session, request)
    request.required_approvals = approvals_required(settings, request.type)
    move(principal, session, request, S.SUBMITTED)
    notify.submitted(
        session, request, TYPE_LABELS[request.type], unit.name, subscriber_name(session, request)
    )
    return request


def cancel(
    principal: Principal, session: Session, public_id: str, note: str | None = None
) -> CertificateRequest:
    request, unit = load(session, public_id)
    require(principal, Action.REQUEST_CREATE, unit.path)
    move(principal, session, request, S.CANCELLED, checked_note(note))
    return request


def approve(
    principal: Principal,
    session: Session,
    authority: Authority,
    public_id: str,
    *,
    note: str | None = None,
    confirm_subscriber_changes: bool = False,
) -> CertificateRequest:
    """One approver's yes; the last one needed carries the request out in this transaction
    (except a token key, which waits for :func:`issue` with the token's PIN).

    A request that would move an existing subscriber to another unit or change their record
    is refused until the approver confirms those very changes (``subscriber_changes`` lists
    them); the confirmation is kept with the request and written to its history."""
    require(principal, Action.REQUEST_DECIDE)
    if principal.user_id is None:
        raise Forbidden(
            "an approval is given by a named user, not by a system token",
            vi="phê duyệt phải do một người dùng cụ thể thực hiện",
        )
    note = checked_note(note)
    request, unit = load(session, public_id)
    require(principal, Action.REQUEST_DECIDE, unit.path)
    if request.state is not S.SUBMITTED:
        raise illegal(request, S.APPROVED)
    if request.batch_id is not None:
        job = session.get(BatchJob, request.batch_id)
        raise Conflict(
            f"request {public_id} belongs to batch {job.public_id if job else '?'}: approve the "
            "batch (a single request of it may be rejected)",
            vi=f"yêu cầu {public_id} thuộc lô {job.public_id if job else '?'}: hãy duyệt cả lô",
        )
    if session.execute(
        select(Approval.id).where(
            Approval.request_id == request.id, Approval.user_id == principal.user_id
        )
    ).first():
        raise Conflict(
            f"you have already approved request {public_id}; it needs another approver",
            vi=f"bạn đã duyệt yêu cầu {public_id}; cần một người duyệt khác",
        )
    pending = pending_changes(session, request)
    if pending is not None:
        if not confirm_subscriber_changes:
            raise SubscriberChangesUnconfirmed(pending.summary("en"), vi=pending.summary("vi"))
        stored = envelope(request)
        request.form = replace(stored, confirmed=pending.key()).dumps()
        write_event(
            principal,
            session,
            request,
            S.SUBMITTED,
            S.SUBMITTED,
            f"xác nhận thay đổi hồ sơ thuê bao {pending.person_public_id}: "
            + pending.summary("vi"),
            action="request.subscriber_changes_confirmed",
        )
    try:
        with session.begin_nested():
            session.add(Approval(request_id=request.id, user_id=principal.user_id, at=clock.now()))
    except IntegrityError as exc:
        raise Conflict(
            f"you have already approved request {public_id}", vi=f"bạn đã duyệt yêu cầu {public_id}"
        ) from exc
    count = session.execute(
        select(func.count()).select_from(Approval).where(Approval.request_id == request.id)
    ).scalar_one()
    said = f"phê duyệt {count}/{request.required_approvals}" + (f": {note}" if note else "")
    if count < request.required_approvals:
        write_event(
            principal,
            session,
            request,
            S.SUBMITTED,
            S.SUBMITTED,
            said,
            action="request.approval",
        )
        flush(session, request)
        return request
    move(principal, session, request, S.APPROVED, said)
    notify.decided(session, request, TYPE_LABELS[request.type], True, note)
    key = envelope(request).key
    if key is None or key.source is not KeySource.TOKEN:
        carry_out(principal, session, authority, request)
    return request


def reject(
    principal: Principal, session: Session, public_id: str, reason: str
) -> CertificateRequest:
    reason_text = checked_note(reason, "reason", required=True)
    request, unit = load(session, public_id)
    require(principal, Action.REQUEST_DECIDE, unit.path)
    if S.REJECTED not in TRANSITIONS[request.state]:
        raise illegal(request, S.REJECTED)
    request.decision_reason = reason_text
    move(principal, session, request, S.REJECTED, reason_text)
    notify.decided(session, request, TYPE_LABELS[request.type], False, reason_text)
    return request
