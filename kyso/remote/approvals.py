"""Consent requests: what waits on the signer's phone, and what approving it does.

A request lists each document (title, number, requesting system) or, for a CSC client, each
hash; the signer sees the list and approves all of it with one gesture (batch signing,
``KYSO_APPROVAL_BATCH_MAX`` items at most) or refuses it. Approval is a proof bound to this
request (:mod:`kyso.remote.factors`); it turns into one SAD bound to the listed hashes
(:mod:`kyso.remote.activation`), which a CSC client collects once, or which kyso spends
itself to sign the listed documents (:mod:`kyso.remote.documents`).

States (VNPT SmartCA's, which Vietnamese users know): waiting → done, refused, expired (after
``KYSO_APPROVAL_SECONDS``) or failed. "approved" is the short moment between consent and
the signatures (or the SAD's collection).
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, selectinload

from kyso import clock
from kyso.audit.log import Event, record
from kyso.errors import Conflict, Forbidden, InvalidInput, NotFound
from kyso.registry import fields as f
from kyso.registry.access import Action, Principal, require
from kyso.remote import activation, factors
from kyso.remote.central import PREFIX, STORE_NAME
from kyso.store.models import (
    ApprovalPurpose,
    ApprovalState,
    Organization,
    SignApproval,
    SignApprovalItem,
    User,
)

if TYPE_CHECKING:
    from kyso.context import Context

FINAL = frozenset(
    {ApprovalState.DONE, ApprovalState.REFUSED, ApprovalState.EXPIRED, ApprovalState.FAILED}
)


@dataclass(frozen=True)
class ItemSpec:
    """One entry of a consent request. ``digest`` is base64: for a CSC client the hash it
    will sign; for a document kyso signs, the document's SHA-256 (what the phone shows)."""

    title: str
    digest: str
    number: str | None = None
    kind: str | None = None
    filename: str | None = None
    document: bytes | None = None
    options: str | None = None  # JSON, read by kyso.remote.documents
    signature_request_id: int | None = None


@dataclass(frozen=True)
class Request:
    signer: User
    key_id: str
    purpose: ApprovalPurpose
    items: Sequence[ItemSpec]
    hash_algorithm: str = "2.16.840.1.101.3.4.2.1"  # SHA-256
    requester_name: str = "kyso"
    description: str | None = None
    callback_url: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _not_found(public_id: str) -> NotFound:
    return NotFound(f"signature approval {public_id}", vi=f"yêu cầu xác nhận ký {public_id}")


def signer_principal(session: Session, user: User) -> Principal:
    """The signer as a principal (their role and unit), for the key-use rule."""
    path = (
        session.scalar(select(Organization.path).where(Organization.id == user.organization_id))
        if user.organization_id is not None
        else None
    )
    return Principal(
        actor=f"user:{user.username}",
        role=user.role,
        user_id=user.id,
        organization_id=user.organization_id,
        org_path=path,
    )


def _check_digest(value: str) -> str:
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput("a hash is not base64", vi="giá trị băm không ở dạng base64") from exc
    if len(raw) not in (32, 48, 64):
        raise InvalidInput(
            "a hash must be 32, 48 or 64 bytes (SHA-256/384/512)",
            vi="giá trị băm phải dài 32, 48 hoặc 64 byte (SHA-256/384/512)",
        )
    return value


def ask(ctx: Context, principal: Principal, session: Session, spec: Request) -> SignApproval:
    """Put a consent request on ``spec.signer``'s phone.

    The signer asks for themselves (a page, their token), or a system with ``documents:sign``
    asks on a signer's behalf (the requesting system is shown on the phone). The key must be
    one the signer may use (:mod:`kyso.signing.keyuse`), and the signer must have a phone
    enrolled."""
    from kyso.signing.keyuse import authorize

    require(principal, Action.DOCUMENT_SIGN)
    signer = spec.signer
    on_behalf = principal.user_id is None and principal.client_id is not None
    if principal.user_id != signer.id and not on_behalf:
        raise Forbidden("only the signer asks for their own consent", vi="chỉ người ký tự yêu cầu")
    if not signer.active:
        raise _not_found(signer.public_id)
    authorize(signer_principal(session, signer), session, STORE_NAME, spec.key_id)
    if not spec.items:
        raise InvalidInput("nothing to sign", vi="không có gì để ký")
    limit = ctx.settings.approval_batch_max
    if len(spec.items) > limit:
        raise InvalidInput(
            f"at most {limit} documents in one approval", vi=f"tối đa {limit} văn bản mỗi lần"
        )
    if not factors.active_authenticators(session, signer.id):
        raise factors.NoAuthenticator()
    now = clock.now()
    approval = SignApproval(
        public_id=f.new_public_id(),
        user_id=signer.id,
        key_location=PREFIX + spec.key_id,
        purpose=spec.purpose,
        requester=principal.actor,
        requester_name=spec.requester_name[:200],
        client_id=principal.client_id,
        hash_algorithm=spec.hash_algorithm,
        description=(spec.description or None) and spec.description[:500],
        state=ApprovalState.WAITING,
        challenge=secrets.token_bytes(32),
        created_at=now,
        expires_at=now + timedelta(seconds=ctx.settings.approval_seconds),
        callback_url=spec.callback_url,
    )
    session.add(approval)
    session.flush()
    for position, item in enumerate(spec.items):
        session.add(
            SignApprovalItem(
                approval_id=approval.id,
                position=position,
                title=(item.title or "")[:300] or "—",
                number=item.number,
                digest=_check_digest(item.digest),
                kind=item.kind,
                filename=item.filename,
                document=item.document,
                options=item.options,
                signature_request_id=item.signature_request_id,
            )
        )
    record(
        session,
        Event(
            principal.actor,
            "signature.consent_requested",
            approval.public_id,
            {
                "signer": signer.username,
                "key": approval.key_location,
                "purpose": spec.purpose.value,
                "count": len(spec.items),
                "requester": approval.requester_name,
            },
        ),
    )
    return approval


def expire_overdue(session: Session) -> int:
    """Mark waiting requests past their time as expired (run by the server's loop and on
    every read, so a stale request is never approved)."""
    result = session.execute(
        update(SignApproval)
        .where(SignApproval.state == ApprovalState.WAITING, SignApproval.expires_at <= clock.now())
        .values(state=ApprovalState.EXPIRED)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def pending(principal: Principal, session: Session) -> list[SignApproval]:
    """What waits for the principal's consent, oldest first, with its items."""
    if principal.user_id is None:
        return []
    return list(
        session.execute(
            select(SignApproval)
            .options(selectinload(SignApproval.items))
            .where(
                SignApproval.user_id == principal.user_id,
                SignApproval.state == ApprovalState.WAITING,
                SignApproval.expires_at > clock.now(),
            )
            .order_by(SignApproval.created_at)
            .limit(100)
        ).scalars()
    )


def get(principal: Principal, session: Session, public_id: str) -> SignApproval:
    """An approval, for its signer or whoever asked for it; nobody else learns it exists."""
    approval = session.execute(
        select(SignApproval)
        .options(selectinload(SignApproval.items))
        .where(SignApproval.public_id == public_id)
    ).scalar_one_or_none()
    if approval is None or not _may_see(principal, approval):
        raise _not_found(public_id)
    if approval.state is ApprovalState.WAITING and approval.expires_at <= clock.now():
        approval.state = ApprovalState.EXPIRED
    return approval


def _may_see(principal: Principal, approval: SignApproval) -> bool:
    if principal.user_id is not None and principal.user_id == approval.user_id:
        return True
    return principal.actor == approval.requester and (principal.client_id == approval.client_id)


def _open_for_signer(principal: Principal, session: Session, public_id: str) -> SignApproval:
    approval = get(principal, session, public_id)
    if approval.user_id != principal.user_id:
        raise _not_found(public_id)
    if approval.state is not ApprovalState.WAITING:
        raise Conflict(
            f"the request is already {approval.state.value}", vi="yêu cầu này đã được xử lý"
        )
    return approval


def approve(
    ctx: Context,
    principal: Principal,
    public_id: str,
    proof: factors.PinAndCode | Any,
) -> SignApproval:
    """The signer consents, proving it with ``proof`` (PIN + TOTP, or a WebAuthn assertion
    over this request's challenge). Documents kyso signs are signed now; a CSC client
    collects its SAD with :func:`collect_sad`."""
    failure: Exception | None = None
    with ctx.db.session() as session:
        approval = _open_for_signer(principal, session, public_id)
        user = session.get(User, approval.user_id)
        assert user is not None
        try:
            device = _verify(ctx, session, user, approval, proof, principal.actor)
        except (factors.WrongSigningPin, factors.SigningPinBlocked) as exc:
            failure = exc  # the failure count is committed with this transaction
        else:
            approval.state = ApprovalState.APPROVED
            approval.decided_at = clock.now()
            approval.authenticator_id = device.id
            record(
                session,
                Event(
                    principal.actor,
                    "signature.consent_given",
                    approval.public_id,
                    {
                        "count": len(approval.items),
                        "authenticator": device.public_id,
                        "kind": device.kind.value,
                        "digests": [i.digest for i in approval.items],
                    },
                ),
            )
            purpose = approval.purpose
    if failure is not None:
        raise failure
    if purpose is ApprovalPurpose.DOCUMENT:
        from kyso.remote import documents

        documents.complete(ctx, public_id)
    with ctx.db.read() as session:
        return get(principal, session, public_id)


def _verify(
    ctx: Context,
    session: Session,
    user: User,
    approval: SignApproval,
    proof: Any,
    actor: str,
) -> Any:
    if isinstance(proof, factors.PinAndCode):
        return factors.verify_pin_and_code(
            session, user, proof, tries=ctx.settings.signing_pin_tries, actor=actor
        )
    from kyso.remote import webauthn

    return webauthn.verify_approval(ctx, session, user, approval, proof)


def refuse(
    principal: Principal, session: Session, public_id: str, reason: str | None
) -> SignApproval:
    approval = _open_for_signer(principal, session, public_id)
    c = f.Collector()
    why = c.check(lambda: f.text("reason", reason, max_length=1000))
    c.raise_if_any()
    approval.state = ApprovalState.REFUSED
    approval.decided_at = clock.now()
    approval.reason = why
    record(
        session,
        Event(principal.actor, "signature.consent_refused", approval.public_id, {"reason": why}),
    )
    return approval


def binding_of(approval: SignApproval) -> activation.Binding:
    """What the approval's SAD is bound to: its signer (and the system that asked), its key,
    its hash algorithm and exactly its listed digests."""
    return activation.Binding(
        key_location=approval.key_location,
        hash_algorithm=approval.hash_algorithm,
        hashes=tuple(i.digest for i in approval.items),
        user_id=approval.user_id,
        client_id=approval.client_id,
    )


def collect_sad(ctx: Context, principal: Principal, public_id: str) -> tuple[str, int] | None:
    """The SAD of an approved request, handed out once (to whoever asked for it); None
    while it is still waiting. Raises :class:`Conflict` when it was refused, expired, or
    its SAD was already collected."""
    with ctx.db.session() as session:
        approval = get(principal, session, public_id)
        if approval.state is ApprovalState.WAITING:
            return None
        return claim_sad(ctx, session, approval)


def claim_sad(ctx: Context, session: Session, approval: SignApproval) -> tuple[str, int]:
    """Issue the one SAD of an approved request (a conditional UPDATE decides, across
    processes, that it is issued once)."""
    if approval.state is not ApprovalState.APPROVED or approval.sad_issued:
        raise Conflict(
            f"the request is {approval.state.value}"
            + (" and its SAD was collected" if approval.sad_issued else ""),
            vi="yêu cầu không còn chờ cấp SAD",
        )
    claimed = session.execute(
        update(SignApproval)
        .where(SignApproval.id == approval.id, SignApproval.sad_issued.is_(False))
        .values(sad_issued=True)
        .execution_options(synchronize_session=False)
    )
    if not getattr(claimed, "rowcount", 0):
        raise Conflict("the SAD was already collected", vi="SAD đã được nhận")
    if approval.purpose is ApprovalPurpose.CSC:
        session.execute(
            update(SignApproval)
            .where(SignApproval.id == approval.id)
            .values(state=ApprovalState.DONE)
            .execution_options(synchronize_session=False)
        )
    return activation.issue(
        session, binding_of(approval), seconds=ctx.settings.sad_seconds, approval_id=approval.id
    )
