"""Documents kyso signs with a central key once the signer consents on the phone.

Every entry point that signs (the signing page, the queue of documents sent for a leader's
signature, ``/api/v1/sign/*``) hands the documents to :func:`request_signatures`: each
becomes an item of one consent request (:mod:`kyso.remote.approvals`, purpose DOCUMENT)
whose digest is the document's own SHA-256 (what the phone lists, one line per document, up
to ``KYSO_APPROVAL_BATCH_MAX``), with how to sign it kept beside it as JSON (level, the
Decree 30/2020 stamp and its images, the placement). The request waits; the page or the
system polls :func:`status` or is told by a webhook (:mod:`kyso.remote.webhooks`).

When the signer approves, :func:`complete` spends the approval's one SAD (SCAL2: CEN EN
419 241-1 §7.5; the SAD is bound to the user, the key and exactly the listed digests,
:mod:`kyso.remote.activation`), checks again that each stored document still has the digest
consented to — a document changed after the consent is never signed under it — and signs
each with the same functions as a key kyso holds (PAdES, XAdES, CAdES), then writes one
audit entry per signature. The signed files are kept on the item, for the signer and the
requester only (:func:`result`).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as _dt
import enum
import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, selectinload, undefer

from kyso import clock
from kyso.audit.log import Event, record
from kyso.errors import Conflict, Forbidden, InvalidInput, KysoError, NotFound
from kyso.registry.access import Principal
from kyso.remote import activation, approvals
from kyso.remote.central import PREFIX, STORE_NAME, key_id_of
from kyso.signing.levels import Level
from kyso.signing.placement import Corner, Placement, Where
from kyso.signing.stamps import Appearance
from kyso.store.models import (
    ApprovalPurpose,
    ApprovalState,
    Certificate,
    CertStatus,
    SignApproval,
    SignApprovalItem,
    SignatureRequest,
    SignatureState,
    User,
)

if TYPE_CHECKING:
    from kyso.context import Context
    from kyso.signing.identity import SignerIdentity

log = logging.getLogger("kyso.remote")


class DocumentKind(enum.StrEnum):
    PDF = "pdf"  # PAdES, with or without a Decree 30/2020 stamp
    XML = "xml"  # enveloped XAdES
    CMS = "cms"  # detached CAdES (.p7s)


MEDIA_TYPES = {
    DocumentKind.PDF: "application/pdf",
    DocumentKind.XML: "application/xml",
    DocumentKind.CMS: "application/pkcs7-signature",
}


class DocumentChanged(KysoError):
    """The stored document is not the one the signer consented to (its SHA-256 differs)."""

    code = "document_changed"
    http_status = 409
    message_vi = "Văn bản đã bị thay đổi sau khi người ký xác nhận; không ký văn bản này."
    message_en = "The document changed after the signer approved it; it was not signed."


class SigningFailed(KysoError):
    code = "signing_failed"
    http_status = 500
    message_vi = "Không ký được văn bản; hãy gửi lại yêu cầu ký."
    message_en = "The document could not be signed; send the request again."


class SigningInterrupted(KysoError):
    """The process signing an approved request stopped before it finished (a restart, a
    crash): the approval is closed as failed so the page and the system stop waiting."""

    code = "signing_interrupted"
    http_status = 503
    message_vi = (
        "Việc ký bị gián đoạn (máy chủ khởi động lại); văn bản chưa ký được. "
        "Hãy gửi lại yêu cầu ký."
    )
    message_en = "Signing was interrupted (the server restarted); send the request again."


# How long an approved request may take to sign before the sweep calls it interrupted: a full
# batch of PDFs with time-stamps signs in well under a minute; ten leaves room for a slow TSA.
INTERRUPTED_AFTER = _dt.timedelta(minutes=10)


@dataclass(frozen=True)
class DocumentToSign:
    """One document for one consent request, and how to sign it."""

    title: str
    content: bytes
    kind: DocumentKind = DocumentKind.PDF
    filename: str | None = None
    number: str | None = None
    level: Level = Level.B_B
    appearance: Appearance | None = None  # PDF: None is an invisible signature
    parent_xpath: str | None = None  # XML: where the signature goes
    parallel: bool = False  # XML: room for more signatures
    entry: str = "api"  # page, api or queue, as the audit log names it
    signature_request: str | None = None  # a queue request (public id) this signature completes


# -- signing options as JSON (kept on the item until the signer approves) --------------------------
def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"b64": base64.b64encode(value).decode()}
    if isinstance(value, _dt.date):
        return {"date": value.isoformat()}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def _back(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"])
    if isinstance(value, dict) and set(value) == {"date"}:
        return _dt.date.fromisoformat(value["date"])
    return value


def options_json(document: DocumentToSign) -> str:
    """How to sign ``document``, as JSON: the level, the stamp (images in base64) and its
    placement, the XML options and the entry point."""
    look = document.appearance
    stamp: dict[str, Any] | None = None
    if look is not None:
        stamp = {f.name: _plain(getattr(look, f.name)) for f in dataclasses.fields(look)}
        where = look.placement
        stamp["placement"] = (
            None
            if where is None
            else {f.name: _plain(getattr(where, f.name)) for f in dataclasses.fields(where)}
        )
    return json.dumps(
        {
            "level": document.level.value,
            "entry": document.entry,
            "appearance": stamp,
            "parent_xpath": document.parent_xpath,
            "parallel": document.parallel,
        },
        ensure_ascii=False,
    )


@dataclass(frozen=True)
class SigningOptions:
    level: Level
    entry: str
    appearance: Appearance | None
    parent_xpath: str | None
    parallel: bool


def read_options(text: str | None) -> SigningOptions:
    data = json.loads(text or "{}")
    stamp = data.get("appearance")
    look = None
    if stamp is not None:
        where = stamp.pop("placement", None)
        placement = None
        if where is not None:
            box = where.get("box")
            placement = Placement(
                **{
                    **where,
                    "box": tuple(box) if box is not None else None,
                    "where": Where(where.get("where") or Where.ABOVE),
                    "corner": Corner(where["corner"]) if where.get("corner") else None,
                }
            )
        look = Appearance(**{k: _back(v) for k, v in stamp.items()}, placement=placement)
    return SigningOptions(
        level=Level(data.get("level") or Level.B_B.value),
        entry=data.get("entry") or "api",
        appearance=look,
        parent_xpath=data.get("parent_xpath"),
        parallel=bool(data.get("parallel")),
    )


def _sha256_b64(content: bytes) -> str:
    return base64.b64encode(hashlib.sha256(content).digest()).decode()


# -- asking ----------------------------------------------------------------------------------------
def _user_named(session: Session, name: str) -> User | None:
    return session.execute(
        select(User).where((User.username == name) | (User.public_id == name))
    ).scalar_one_or_none()


def _holder_of(session: Session, key_id: str) -> User | None:
    """The user whose own certificate names this central key (a personal key's holder)."""
    person_id = session.scalar(
        select(Certificate.person_id)
        .where(
            Certificate.key_location == PREFIX + key_id,
            Certificate.status == CertStatus.GOOD,
            Certificate.person_id.is_not(None),
        )
        .order_by(Certificate.id.desc())
        .limit(1)
    )
    if person_id is None:
        return None
    return session.execute(
        select(User).where(User.person_id == person_id, User.active.is_(True)).limit(1)
    ).scalar_one_or_none()


def _signer(principal: Principal, session: Session, key_id: str, named: str | None) -> User:
    """Who approves on the phone. A person (a page, a user's token) signs for themselves. A
    system token names the signer (``signer``: a username or user id) or, for a personal key,
    the key's holder is the signer; it must have been given the key
    (:class:`~kyso.store.models.ApiClientKey`), and the signer must be allowed to use it
    (checked by :func:`kyso.remote.approvals.ask`)."""
    from kyso.signing import keyuse

    if principal.user_id is not None:
        user = session.get(User, principal.user_id)
        if user is None or (named and named not in (user.username, user.public_id)):
            raise Forbidden(
                "a user's token signs only as that user", vi="token của người dùng chỉ ký cho họ"
            )
        return user
    keyuse.authorize(principal, session, STORE_NAME, key_id)  # the system was given this key
    user = _user_named(session, named) if named else _holder_of(session, key_id)
    if user is None or not user.active:
        raise InvalidInput(
            "name the signer (signer: a username) who approves on the phone",
            vi="cần chỉ rõ người ký (signer: tên đăng nhập) xác nhận trên điện thoại",
        )
    return user


def request_signatures(
    ctx: Context,
    principal: Principal,
    key_id: str,
    documents: Sequence[DocumentToSign],
    requester_name: str,
    callback_url: str | None = None,
    *,
    signer: str | None = None,
) -> SignApproval:
    """Ask the signer to approve signing ``documents`` with the central key ``key_id``.

    Nothing is signed now: the approval waits on the phone (its state and time left are
    :func:`status`). A system token may name the ``signer``; ``callback_url`` is told the
    outcome (:mod:`kyso.remote.webhooks`, only for API clients, whose token keys the HMAC)."""
    from kyso.remote import webhooks
    from kyso.signing.keyuse import require_signer
    from kyso.signing.pades import open_pdf

    require_signer(principal)
    if callback_url:
        if principal.client_id is None:
            raise InvalidInput(
                "a callback URL is for API clients", vi="chỉ hệ thống gọi API mới dùng callback_url"
            )
        webhooks.check_url(ctx.settings, callback_url)
    for document in documents:
        if document.kind is DocumentKind.PDF:
            open_pdf(document.content)  # a broken PDF is refused now, not after the approval
        if document.appearance is not None:
            document.appearance.check()
    with ctx.db.session() as session:
        user = _signer(principal, session, key_id, signer)
        items = [
            approvals.ItemSpec(
                title=d.title or d.filename or "—",
                digest=_sha256_b64(d.content),
                number=d.number,
                kind=d.kind.value,
                filename=(d.filename or None) and d.filename[:200],
                document=d.content,
                options=options_json(d),
                signature_request_id=_queue_request(session, user, d.signature_request),
            )
            for d in documents
        ]
        approval = approvals.ask(
            ctx,
            principal,
            session,
            approvals.Request(
                signer=user,
                key_id=key_id,
                purpose=ApprovalPurpose.DOCUMENT,
                items=items,
                requester_name=requester_name,
                callback_url=callback_url or None,
            ),
        )
        session.flush()
        public_id = approval.public_id
    _announce(ctx, public_id)
    with ctx.db.read() as session:
        return approvals.get(principal, session, public_id)


def _queue_request(session: Session, signer: User, public_id: str | None) -> int | None:
    """The queue request a document completes: waiting, and sent to this signer."""
    if public_id is None:
        return None
    row = session.execute(
        select(SignatureRequest.id, SignatureRequest.signer_id, SignatureRequest.state).where(
            SignatureRequest.public_id == public_id
        )
    ).first()
    if row is None or row.signer_id != signer.id:
        raise NotFound(f"signature request {public_id}", vi=f"yêu cầu ký {public_id}")
    if row.state is not SignatureState.WAITING:
        raise Conflict("the document is already handled", vi="văn bản này đã được xử lý")
    return int(row.id)


def from_queue(
    principal: Principal, session: Session, public_ids: Sequence[str], level: Level
) -> list[DocumentToSign]:
    """Documents waiting for the principal's signature (queue requests they were sent),
    to sign in one approval: invisible PAdES signatures at ``level``."""
    from kyso.signing import queue

    found: list[DocumentToSign] = []
    for public_id in dict.fromkeys(public_ids):
        item = queue.get(principal, session, public_id, with_documents=True)
        if item.signer_id != principal.user_id or item.state is not SignatureState.WAITING:
            raise Conflict(
                f"{item.title}: not waiting for your signature",
                vi=f"{item.title}: không còn chờ bạn ký",
            )
        found.append(
            DocumentToSign(
                title=item.title,
                content=item.document,
                filename=item.filename,
                level=level,
                entry="queue",
                signature_request=item.public_id,
            )
        )
    return found


def _announce(ctx: Context, public_id: str) -> None:
    """Web Push to the signer's phone, if that module is installed; the phone's page also
    polls, so a failure here only delays the request's arrival."""
    try:
        from kyso.remote import push  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        return
    try:
        push.announce_in_background(ctx, public_id)
    except Exception:  # a push service's failure never loses the request
        log.exception("announcing approval %s to the phone failed", public_id)


# -- completing ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Work:
    item_id: int
    position: int
    title: str
    filename: str | None
    number: str | None
    kind: DocumentKind
    digest: str
    content: bytes
    options: str | None
    signature_request_id: int | None


def _error_json(exc: KysoError) -> str:
    return json.dumps(
        {"code": exc.code, "vi": exc.message("vi"), "en": exc.message("en")}, ensure_ascii=False
    )


def complete(ctx: Context, approval_public_id: str) -> None:
    """Sign the documents of an approved DOCUMENT request (called right after the consent).

    Never raises for a signing problem: the approval ends DONE, or FAILED with the reason
    a clerk can act on, and its webhook (if any) is sent."""
    from kyso.remote import webhooks

    with ctx.db.session() as session:
        approval = session.execute(
            select(SignApproval)
            .options(selectinload(SignApproval.items).options(undefer(SignApprovalItem.document)))
            .where(SignApproval.public_id == approval_public_id)
        ).scalar_one_or_none()
        if (
            approval is None
            or approval.purpose is not ApprovalPurpose.DOCUMENT
            or approval.state is not ApprovalState.APPROVED
        ):
            return
        sad, _seconds = approvals.claim_sad(ctx, session, approval)
        binding = approvals.binding_of(approval)
        user = session.get(User, approval.user_id)
        assert user is not None
        signer = approvals.signer_principal(session, user)
        work = [
            _Work(
                i.id,
                i.position,
                i.title,
                i.filename,
                i.number,
                DocumentKind(i.kind or "pdf"),
                i.digest,
                i.document or b"",
                i.options,
                i.signature_request_id,
            )
            for i in approval.items
        ]
    problem: KysoError | None = None
    try:
        _check_consented(work)
        activation.consume(ctx.db, sad, binding)  # single use, before anything is signed
        _sign_all(ctx, signer, key_id_of(binding.key_location), work)
    except KysoError as exc:
        problem = exc
    except Exception as exc:  # a library's failure: logged, told as "could not sign"
        log.exception("signing approval %s failed", approval_public_id)
        problem = SigningFailed(type(exc).__name__)
    _finish(ctx, approval_public_id, signer.actor, problem)
    webhooks.deliver_now(ctx, approval_public_id)


def _check_consented(work: Sequence[_Work]) -> None:
    """Every stored document still hashes to what the phone listed; else nothing is signed."""
    for w in work:
        if _sha256_b64(w.content) != w.digest:
            raise DocumentChanged(f"{w.position + 1}: {w.title}")


def _sign_all(ctx: Context, signer: Principal, key_id: str, work: Sequence[_Work]) -> None:
    from kyso.signing import keyuse
    from kyso.signing.identity import from_key
    from kyso.signing.service import audit_signature

    with ctx.db.read() as session:  # the signer may still use the key (not revoked meanwhile)
        key = keyuse.authorize(signer, session, STORE_NAME, key_id)
    identity = from_key(ctx, key_id, key.certificate_der, store=ctx.central)
    failures: list[KysoError] = []
    for w in work:
        options = read_options(w.options)
        try:
            signed = _sign_one(ctx, identity, w, options)
        except KysoError as exc:
            failures.append(exc)
            with ctx.db.session() as session:
                session.execute(
                    update(SignApprovalItem)
                    .where(SignApprovalItem.id == w.item_id)
                    .values(error=_error_json(exc))
                    .execution_options(synchronize_session=False)
                )
            continue
        audit_signature(
            ctx,
            signer,
            key=PREFIX + key_id,
            serial=key.serial,
            kind=w.kind.value,
            entry=options.entry,
            content=w.content,
            signed=signed,
            name=w.filename or w.title,
            number=w.number,
            level=options.level,
        )
        with ctx.db.session() as session:
            session.execute(
                update(SignApprovalItem)
                .where(SignApprovalItem.id == w.item_id)
                .values(signed=signed, error=None)
                .execution_options(synchronize_session=False)
            )
            if w.signature_request_id is not None:
                _return_to_sender(signer, session, w.signature_request_id, signed)
    if failures:
        raise failures[0]


def _sign_one(ctx: Context, identity: SignerIdentity, w: _Work, options: SigningOptions) -> bytes:
    from kyso.signing.service import level_support

    if w.kind is DocumentKind.PDF:
        from kyso.signing.pades import sign_pdf

        stamper, trust = level_support(ctx, options.level, trust_from=Level.B_T)
        return sign_pdf(
            w.content,
            identity,
            level=options.level,
            appearance=options.appearance,
            timestamper=stamper,
            trust=trust,
        )
    stamper, trust = level_support(ctx, options.level)
    if w.kind is DocumentKind.XML:
        from kyso.signing.xades import sign_xml

        return sign_xml(
            w.content,
            identity,
            level=options.level,
            timestamper=stamper,
            parent_xpath=options.parent_xpath,
            trust=trust,
            parallel=options.parallel,
        )
    from kyso.signing.cades import sign_cms

    return sign_cms(w.content, identity, level=options.level, timestamper=stamper, trust=trust)


def _return_to_sender(signer: Principal, session: Session, request_id: int, signed: bytes) -> None:
    """The signed file goes back to who sent it for signature (kyso.signing.queue)."""
    from kyso.signing import queue

    public_id = session.scalar(
        select(SignatureRequest.public_id).where(SignatureRequest.id == request_id)
    )
    if public_id is not None:
        queue.complete(signer, session, public_id, signed)


def _finish(ctx: Context, public_id: str, actor: str, problem: KysoError | None) -> None:
    with ctx.db.session() as session:
        approval = session.execute(
            select(SignApproval).where(SignApproval.public_id == public_id)
        ).scalar_one()
        approval.state = ApprovalState.FAILED if problem else ApprovalState.DONE
        if problem is not None:
            approval.reason = _error_json(problem)
        if approval.callback_url:
            approval.webhook_next_at = clock.now()
        record(
            session,
            Event(
                actor,
                "signature.approval_failed" if problem else "signature.approval_done",
                approval.public_id,
                {"error": problem.code} if problem else {"count": len(approval.items)},
            ),
        )


def fail_interrupted(ctx: Context, now: datetime | None = None) -> int:
    """Close as FAILED the approved DOCUMENT requests whose signing never finished (run by
    the server's loop, once across the cluster). What was signed before the stop stays on its
    item and can still be downloaded; the rest must be asked again. Returns how many."""
    cutoff = (now or clock.now()) - INTERRUPTED_AFTER
    problem = SigningInterrupted()
    with ctx.db.session() as session:
        stuck = list(
            session.scalars(
                select(SignApproval).where(
                    SignApproval.purpose == ApprovalPurpose.DOCUMENT,
                    SignApproval.state == ApprovalState.APPROVED,
                    SignApproval.decided_at <= cutoff,
                )
            )
        )
        for approval in stuck:
            approval.state = ApprovalState.FAILED
            approval.reason = _error_json(problem)
            if approval.callback_url:
                approval.webhook_next_at = clock.now()
            record(
                session,
                Event(
                    "system:sweep",
                    "signature.approval_failed",
                    approval.public_id,
                    {"error": problem.code},
                ),
            )
    return len(stuck)


# -- reading ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ItemStatus:
    position: int
    title: str
    number: str | None
    kind: str | None
    filename: str | None
    sha256: str  # hex of the document consented to
    signed: bool
    signed_sha256: str | None
    error: dict[str, str] | None


@dataclass(frozen=True)
class Status:
    """What the page and the API show of an approval."""

    public_id: str
    state: ApprovalState
    requester_name: str
    created_at: datetime
    expires_at: datetime
    seconds_left: int
    reason: str | None  # the signer's, when refused
    error: dict[str, str] | None  # code, vi, en: when failed
    items: list[ItemStatus]

    def to_dict(self, lang: str = "vi") -> dict[str, Any]:
        return {
            "id": self.public_id,
            "status": self.state.value,
            "requester": self.requester_name,
            "created_at": self.created_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
            "seconds_left": self.seconds_left,
            "reason": self.reason,
            "error": None
            if self.error is None
            else {"code": self.error.get("code"), "message": self.error.get(lang)},
            "documents": [
                {
                    "position": i.position,
                    "title": i.title,
                    "number": i.number,
                    "kind": i.kind,
                    "filename": i.filename,
                    "sha256": i.sha256,
                    "signed": i.signed,
                    "signed_sha256": i.signed_sha256,
                    "error": None
                    if i.error is None
                    else {"code": i.error.get("code"), "message": i.error.get(lang)},
                }
                for i in self.items
            ],
        }


def _error_of(text: str | None) -> dict[str, str] | None:
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return {"code": "failed", "vi": text, "en": text}
    return value if isinstance(value, dict) else None


def _load(principal: Principal, session: Session, public_id: str) -> SignApproval:
    approval = approvals.get(principal, session, public_id)  # signer or requester only
    if approval.purpose is not ApprovalPurpose.DOCUMENT:
        raise approvals._not_found(public_id)
    return approval


def status(principal: Principal, session: Session, public_id: str) -> Status:
    """The approval's state for its signer or its requester (nobody else learns of it)."""
    approval = _load(principal, session, public_id)
    rows = session.execute(
        select(
            SignApprovalItem.position,
            SignApprovalItem.title,
            SignApprovalItem.number,
            SignApprovalItem.kind,
            SignApprovalItem.filename,
            SignApprovalItem.digest,
            SignApprovalItem.signed,
            SignApprovalItem.error,
        )
        .where(SignApprovalItem.approval_id == approval.id)
        .order_by(SignApprovalItem.position)
    ).all()
    left = int((approval.expires_at - clock.now()).total_seconds())
    state = approval.state
    return Status(
        public_id=approval.public_id,
        state=state,
        requester_name=approval.requester_name,
        created_at=approval.created_at,
        expires_at=approval.expires_at,
        seconds_left=max(0, left) if state is ApprovalState.WAITING else 0,
        reason=approval.reason if state is ApprovalState.REFUSED else None,
        error=_error_of(approval.reason) if state is ApprovalState.FAILED else None,
        items=[
            ItemStatus(
                position=r.position,
                title=r.title,
                number=r.number,
                kind=r.kind,
                filename=r.filename,
                sha256=base64.b64decode(r.digest).hex(),
                signed=r.signed is not None,
                signed_sha256=hashlib.sha256(r.signed).hexdigest() if r.signed else None,
                error=_error_of(r.error),
            )
            for r in rows
        ],
    )


def queue_requests(principal: Principal, session: Session, approval_id: str) -> dict[int, str]:
    """Position → the queue request (public id) each document of the approval completes."""
    approval = _load(principal, session, approval_id)
    rows = session.execute(
        select(SignApprovalItem.position, SignatureRequest.public_id)
        .join(SignatureRequest, SignatureRequest.id == SignApprovalItem.signature_request_id)
        .where(SignApprovalItem.approval_id == approval.id)
    ).all()
    return {int(r.position): str(r.public_id) for r in rows}


@dataclass(frozen=True)
class SignedFile:
    content: bytes
    filename: str
    media_type: str


def signed_name(filename: str | None, kind: DocumentKind) -> str:
    name = filename or "document"
    if kind is DocumentKind.CMS:
        return f"{name}.p7s"
    if kind is DocumentKind.PDF:
        stem = name[:-4] if name.lower().endswith(".pdf") else name
        return f"{stem}-da-ky.pdf"
    return name


def result(principal: Principal, session: Session, approval_id: str, item: int) -> SignedFile:
    """The signed file at ``item`` (a position from 0), for the signer or the requester."""
    approval = _load(principal, session, approval_id)
    row = session.execute(
        select(SignApprovalItem.signed, SignApprovalItem.filename, SignApprovalItem.kind).where(
            SignApprovalItem.approval_id == approval.id, SignApprovalItem.position == item
        )
    ).first()
    if row is None or row.signed is None:
        raise NotFound(
            f"signed document {item} of {approval_id}", vi=f"văn bản đã ký {item} của {approval_id}"
        )
    kind = DocumentKind(row.kind or "pdf")
    return SignedFile(row.signed, signed_name(row.filename, kind), MEDIA_TYPES[kind])
