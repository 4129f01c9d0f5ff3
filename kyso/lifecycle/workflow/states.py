"""A request's states and the only way it moves between them.

Every move is checked against :data:`TRANSITIONS`, timestamped, written as a
``request_events`` row and an audit entry, by the principal who made it (:func:`move`).
What a request row stores in ``certificate_requests.form`` is an :class:`Envelope`. A request
is loaded with :func:`load`: ``SELECT … FOR UPDATE`` (PostgreSQL; SQLite's writers are
already serialized by ``BEGIN IMMEDIATE``), and its ``version`` column is checked on every
UPDATE (:func:`flush`), so of two approvers at the same moment the second waits, then finds
the request already decided.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from kyso import clock
from kyso.audit.log import Event, record
from kyso.errors import Conflict, InvalidTransition, NotFound
from kyso.keys.base import KeyAlgorithm
from kyso.lifecycle.forms import ISSUING_TYPES, KeyChoice
from kyso.registry import fields as f
from kyso.registry.access import Principal
from kyso.settings import Settings
from kyso.store.models import (
    CertificateRequest,
    Organization,
    RequestEvent,
    RequestState,
    RequestType,
)

S = RequestState

TRANSITIONS: dict[RequestState, frozenset[RequestState]] = {
    S.DRAFT: frozenset({S.SUBMITTED, S.CANCELLED}),
    S.SUBMITTED: frozenset({S.APPROVED, S.REJECTED}),
    # approved but not yet carried out (a token key waits for its token): can still be refused
    S.APPROVED: frozenset({S.ISSUED, S.REJECTED}),
    S.ISSUED: frozenset({S.HANDED_OVER}),
    S.REJECTED: frozenset(),
    S.HANDED_OVER: frozenset(),
    S.CANCELLED: frozenset(),
}

STATE_LABELS: dict[RequestState, str] = {
    S.DRAFT: "nháp",
    S.SUBMITTED: "đã gửi, chờ duyệt",
    S.APPROVED: "đã duyệt",
    S.REJECTED: "bị từ chối",
    S.ISSUED: "đã thực hiện",
    S.HANDED_OVER: "đã bàn giao",
    S.CANCELLED: "đã hủy",
}

_VERBS: dict[RequestState, tuple[str, str]] = {
    S.SUBMITTED: ("submitted", "gửi"),
    S.APPROVED: ("approved", "duyệt"),
    S.REJECTED: ("rejected", "từ chối"),
    S.ISSUED: ("issued", "thực hiện (cấp, thu hồi, khôi phục)"),
    S.HANDED_OVER: ("handed over", "bàn giao"),
    S.CANCELLED: ("cancelled", "hủy"),
}

# Keys made by kyso for one request: RSA-2048, what the government CA's tokens carry.
DEFAULT_ALGORITHM = KeyAlgorithm.RSA_2048


class RequestTransitionError(InvalidTransition):
    message_vi = "Yêu cầu không thể chuyển sang bước đó."
    message_en = "The request cannot take that step."


def illegal(request: CertificateRequest, to: RequestState) -> RequestTransitionError:
    verb_en, verb_vi = _VERBS.get(to, (to.value, to.value))
    sources = [s for s, targets in TRANSITIONS.items() if to in targets]
    allowed_en = " or ".join(s.value for s in sources) or "no state"
    allowed_vi = " hoặc ".join(f"'{STATE_LABELS[s]}'" for s in sources) or "không trạng thái nào"
    if to is S.HANDED_OVER and request.type not in ISSUING_TYPES:
        return RequestTransitionError(
            f"request {request.public_id} ({request.type.value}) makes no certificate to hand over",
            vi=f"yêu cầu {request.public_id} không cấp chứng thư nên không có gì để bàn giao",
        )
    return RequestTransitionError(
        f"request {request.public_id} is {request.state.value}; it cannot be {verb_en} "
        f"(only a request that is {allowed_en} can)",
        vi=f"yêu cầu {request.public_id} đang ở trạng thái '{STATE_LABELS[request.state]}', "
        f"không thể {verb_vi} (chỉ yêu cầu ở trạng thái {allowed_vi} mới được)",
    )


# -- what is stored in ``certificate_requests.form`` ------------------------------------------
@dataclass(frozen=True)
class Envelope:
    """The form's fields, the key choice (issuing types) and, for an import, its row."""

    fields: dict[str, Any]
    key: KeyChoice | None = None
    row: int | None = None
    # The changes to an existing subscriber's record an approver saw and confirmed
    # ({field: [old, new]}); carrying out applies exactly these or refuses.
    confirmed: dict[str, list[str | None]] | None = None

    def dumps(self) -> str:
        data: dict[str, Any] = {"fields": self.fields}
        if self.key is not None:
            data["key"] = self.key.to_json()
        if self.row is not None:
            data["row"] = self.row
        if self.confirmed is not None:
            data["confirmed"] = self.confirmed
        return json.dumps(data, ensure_ascii=False, sort_keys=True)

    @classmethod
    def loads(cls, text: str) -> Envelope:
        data = json.loads(text)
        key = KeyChoice.from_json(data["key"]) if data.get("key") else None
        return cls(
            dict(data.get("fields") or {}), key, data.get("row"), data.get("confirmed") or None
        )


def envelope(request: CertificateRequest) -> Envelope:
    return Envelope.loads(request.form)


# -- loading ----------------------------------------------------------------------------------
def not_found(public_id: str) -> NotFound:
    return NotFound(f"request {public_id}", vi=f"yêu cầu {public_id}")


def load(
    session: Session, public_id: str, *, lock: bool = True
) -> tuple[CertificateRequest, Organization]:
    """The request, locked until the transaction ends, with its (requesting) unit."""
    query = select(CertificateRequest).where(CertificateRequest.public_id == public_id)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    request = session.execute(query).scalar_one_or_none()
    if request is None:
        raise not_found(public_id)
    unit = session.get(Organization, request.organization_id)
    assert unit is not None
    return request, unit


def find_unit(session: Session, public_id: str) -> Organization:
    org = session.execute(
        select(Organization).where(Organization.public_id == public_id)
    ).scalar_one_or_none()
    if org is None:
        raise NotFound(f"organization {public_id}", vi=f"đơn vị {public_id}")
    return org


# -- moves --------------------------------------------------------------------------------------
def flush(session: Session, request: CertificateRequest) -> None:
    try:
        session.flush()
    except StaleDataError as exc:
        raise Conflict(
            f"request {request.public_id} was changed by someone else; reload it and try again",
            vi=f"yêu cầu {request.public_id} vừa được người khác thay đổi; hãy tải lại",
        ) from exc


def write_event(
    principal: Principal,
    session: Session,
    request: CertificateRequest,
    before: RequestState | None,
    after: RequestState,
    note: str | None = None,
    action: str | None = None,
) -> None:
    session.add(
        RequestEvent(
            request_id=request.id,
            at=clock.now(),
            actor=principal.actor,
            from_state=before,
            to_state=after,
            note=note,
        )
    )
    record(
        session,
        Event(
            principal.actor,
            action or f"request.{after.value}",
            request.public_id,
            {"type": request.type.value, "from": before.value if before else None, "note": note},
        ),
    )


def move(
    principal: Principal,
    session: Session,
    request: CertificateRequest,
    to: RequestState,
    note: str | None = None,
) -> None:
    if to not in TRANSITIONS[request.state] or (
        to is S.HANDED_OVER and request.type not in ISSUING_TYPES
    ):
        raise illegal(request, to)
    before = request.state
    now = clock.now()
    request.state = to
    if to is S.SUBMITTED:
        request.submitted_at = now
    elif to in (S.APPROVED, S.REJECTED):
        request.decided_at = now
    elif to is S.ISSUED:
        request.issued_at = now
    elif to is S.HANDED_OVER:
        request.handed_over_at = now
    flush(session, request)
    write_event(principal, session, request, before, to, note)


def aware(moment: datetime) -> datetime:
    """A time without a zone is Vietnam time (what a clerk types)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=clock.VIETNAM)


def approvals_required(settings: Settings, request_type: RequestType) -> int:
    return settings.approvals_required.get(request_type.value, 1)


def checked_note(value: str | None, field: str = "note", *, required: bool = False) -> str | None:
    c = f.Collector()
    text = c.check(lambda: f.text(field, value, max_length=2000, required=required))
    c.raise_if_any()
    return text
