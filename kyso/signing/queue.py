"""Documents waiting for a signature: a records clerk or unit officer sends a PDF to the
leader who must sign it; the leader finds it on their home page, signs it with their own
key on the signing page, or declines it with a reason; the sender downloads the result.

Only the two people involved see a request. The signer must be someone the sender's unit
covers (a clerk of a district sends to the district's leaders and those of its communes).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session, load_only, undefer

from kyso import clock
from kyso.audit.log import Event, record
from kyso.errors import Conflict, Forbidden, NotFound
from kyso.registry import fields as f
from kyso.registry.access import Action, Principal, require, visible
from kyso.store.models import (
    Organization,
    Role,
    SignatureRequest,
    SignatureState,
    User,
)

SIGNING_ROLES = (Role.SIGNER, Role.UNIT_OFFICER, Role.PROVINCE_ADMIN)
_LIST_COLUMNS = (
    SignatureRequest.id,
    SignatureRequest.public_id,
    SignatureRequest.title,
    SignatureRequest.filename,
    SignatureRequest.requested_by,
    SignatureRequest.signer_id,
    SignatureRequest.state,
    SignatureRequest.created_at,
    SignatureRequest.done_at,
)


def _not_found(public_id: str) -> NotFound:
    return NotFound(f"signature request {public_id}", vi=f"yêu cầu ký {public_id}")


def signers(principal: Principal, session: Session) -> list[User]:
    """Who the viewer may send a document to: active users who sign, in the viewer's units."""
    require(principal, Action.DOCUMENT_SIGN)
    return list(
        session.execute(
            select(User)
            .join(Organization, User.organization_id == Organization.id)
            .where(
                User.active.is_(True),
                User.role.in_(SIGNING_ROLES),
                visible(principal, Organization.path),
            )
            .order_by(User.full_name)
        ).scalars()
    )


MAX_CHAIN = 5  # signers after the first, in order


def ask(
    principal: Principal,
    session: Session,
    *,
    signer: str,
    title: str,
    filename: str,
    document: bytes,
    note: str | None = None,
    then: Sequence[str] = (),
) -> SignatureRequest:
    """Send ``document`` (a PDF, checked here) to the user ``signer`` (public id); ``then``:
    who signs after them, in order (sequential sign-offs: the deputy, then the head). Each
    is checked now, so a chain never stops at someone who cannot be asked."""
    from kyso.signing.pades import open_pdf

    require(principal, Action.DOCUMENT_SIGN)
    if principal.user_id is None:
        raise Forbidden("a named user sends documents to sign", vi="cần một người dùng cụ thể")
    c = f.Collector()
    clean_title = c.check(lambda: f.text("title", title, max_length=300, required=True))
    clean_note = c.check(lambda: f.text("note", note, max_length=2000))
    row = session.execute(
        select(User, Organization.path)
        .join(Organization, User.organization_id == Organization.id)
        .where(User.public_id == signer)
    ).first()
    if row is None or not row[0].active or row[0].role not in SIGNING_ROLES:
        c.problems.append(
            f.FieldProblem("signer", "choose who signs", "chọn người ký trong danh sách")
        )
    chain = [p.strip() for p in then if p and p.strip()]
    if len(chain) > MAX_CHAIN or signer in chain or len(set(chain)) != len(chain):
        c.problems.append(
            f.FieldProblem(
                "then",
                f"up to {MAX_CHAIN} further signers, each once, not the first again",
                f"tối đa {MAX_CHAIN} người ký tiếp theo, mỗi người một lần, khác người ký đầu",
            )
        )
    for public_id in chain:
        _check_signer(principal, session, public_id, c)
    c.raise_if_any()
    assert row is not None
    target, path = row
    require(principal, Action.DOCUMENT_SIGN, path)  # the signer is in the sender's units
    open_pdf(document)  # a broken or encrypted PDF is refused now, not at the leader's desk
    request = SignatureRequest(
        public_id=f.new_public_id(),
        title=clean_title or "",
        filename=(filename or "document.pdf")[:200],
        document=document,
        requested_by=principal.user_id,
        signer_id=target.id,
        state=SignatureState.WAITING,
        note=clean_note,
        created_at=clock.now(),
        next_signers=json.dumps(chain) if chain else None,
    )
    session.add(request)
    session.flush()
    record(
        session,
        Event(
            principal.actor,
            "signature.requested",
            request.public_id,
            {"title": request.title, "signer": target.username, "then": len(chain)},
        ),
    )
    return request


def _check_signer(principal: Principal, session: Session, public_id: str, c: f.Collector) -> None:
    found = session.execute(
        select(User, Organization.path)
        .join(Organization, User.organization_id == Organization.id)
        .where(User.public_id == public_id)
    ).first()
    if (
        found is None
        or not found[0].active
        or found[0].role not in SIGNING_ROLES
        or not principal.covers(found[1])
    ):
        c.problems.append(
            f.FieldProblem(
                "then", "choose who signs next", "chọn người ký tiếp theo trong danh sách"
            )
        )


def waiting_count(principal: Principal, session: Session) -> int:
    if principal.user_id is None:
        return 0
    return int(
        session.scalar(
            select(func.count())
            .select_from(SignatureRequest)
            .where(
                SignatureRequest.signer_id == principal.user_id,
                SignatureRequest.state == SignatureState.WAITING,
            )
        )
        or 0
    )


def mine(
    principal: Principal, session: Session
) -> tuple[list[SignatureRequest], list[SignatureRequest]]:
    """(waiting for my signature, sent by me — the last 100 of each), without the PDFs."""
    if principal.user_id is None:
        return [], []
    base = select(SignatureRequest).options(load_only(*_LIST_COLUMNS))
    waiting = session.execute(
        base.where(
            SignatureRequest.signer_id == principal.user_id,
            SignatureRequest.state == SignatureState.WAITING,
        )
        .order_by(SignatureRequest.created_at)
        .limit(100)
    ).scalars()
    sent = session.execute(
        base.where(SignatureRequest.requested_by == principal.user_id)
        .order_by(SignatureRequest.created_at.desc())
        .limit(100)
    ).scalars()
    return list(waiting), list(sent)


def people_named(
    principal: Principal, session: Session, requests: list[SignatureRequest]
) -> dict[int, str]:
    """User id → full name of the senders and signers of requests the principal may see
    (each is theirs: :func:`mine` and :func:`get` returned them)."""
    ids = {
        user_id
        for r in requests
        if principal.user_id in (r.requested_by, r.signer_id)
        for user_id in (r.requested_by, r.signer_id)
    }
    if not ids:
        return {}
    rows = session.execute(select(User.id, User.full_name).where(User.id.in_(ids)))
    return {row.id: row.full_name for row in rows}


def get(
    principal: Principal, session: Session, public_id: str, *, with_documents: bool = False
) -> SignatureRequest:
    """A request, for its sender or its signer only (to anyone else it does not exist)."""
    query = select(SignatureRequest).where(SignatureRequest.public_id == public_id)
    if with_documents:
        query = query.options(
            undefer(SignatureRequest.document), undefer(SignatureRequest.signed_document)
        )
    request = session.execute(query).scalar_one_or_none()
    if request is None or principal.user_id not in (request.requested_by, request.signer_id):
        raise _not_found(public_id)
    return request


def _open_for_signer(principal: Principal, session: Session, public_id: str) -> SignatureRequest:
    request = get(principal, session, public_id)
    if request.signer_id != principal.user_id:
        raise Forbidden("only the person asked signs it", vi="chỉ người được đề nghị mới ký")
    if request.state is not SignatureState.WAITING:
        raise Conflict(
            f"the document is already {request.state.value}",
            vi="văn bản này đã được xử lý",
        )
    return request


def complete(
    principal: Principal, session: Session, public_id: str, signed: bytes
) -> SignatureRequest:
    """The signer signed it (on the signing page): keep the signed PDF for the sender, and
    when others sign after them, send the signed PDF on to the next (the sender stays the
    one who asked)."""
    request = _open_for_signer(principal, session, public_id)
    request.signed_document = signed
    request.state = SignatureState.SIGNED
    request.done_at = clock.now()
    record(session, Event(principal.actor, "signature.signed", request.public_id))
    chain = json.loads(request.next_signers) if request.next_signers else []
    if chain:
        following = session.execute(
            select(User).where(User.public_id == chain[0], User.active.is_(True))
        ).scalar_one_or_none()
        if following is not None:
            onward = SignatureRequest(
                public_id=f.new_public_id(),
                title=request.title,
                filename=request.filename,
                document=signed,
                requested_by=request.requested_by,
                signer_id=following.id,
                state=SignatureState.WAITING,
                note=request.note,
                created_at=clock.now(),
                next_signers=json.dumps(chain[1:]) if chain[1:] else None,
                previous_id=request.id,
            )
            session.add(onward)
            session.flush()
            record(
                session,
                Event(
                    principal.actor,
                    "signature.requested",
                    onward.public_id,
                    {"title": onward.title, "signer": following.username, "after": public_id},
                ),
            )
    return request


def decline(
    principal: Principal, session: Session, public_id: str, reason: str
) -> SignatureRequest:
    request = _open_for_signer(principal, session, public_id)
    c = f.Collector()
    why = c.check(lambda: f.text("reason", reason, max_length=2000, required=True))
    c.raise_if_any()
    request.state = SignatureState.DECLINED
    request.reason = why
    request.done_at = clock.now()
    record(
        session, Event(principal.actor, "signature.declined", request.public_id, {"reason": why})
    )
    return request
