"""Sending and receiving documents between agencies: each unit's outbox and inbox.

A records clerk (văn thư, role with ``DOCUMENT_EXCHANGE``) sends a document: kyso writes the
edXML package (:mod:`kyso.exchange.edxml`), signs it with the unit's seal key under
``edXMLHeader`` (one audit entry, as every signature), and keeps one OUT message per
recipient. A recipient that is a unit of this installation (its identifier code, mã định
danh, is the ``To/OrganId``) gets it at once through :func:`receive`, exactly as a package
from outside would arrive; a recipient elsewhere is reached through
:mod:`kyso.exchange.transport`, retried with backoff by the server's loop while the other
side is down, and never lost: the OUT message stays queued until it is delivered or gives up.

On receipt every signature is validated with kyso's own report — the package's and those of
each signed PDF inside — and the package is refused with status 02 and the reason when one
fails; otherwise it lands in the unit's inbox (01). The clerk then receives it (03): the
main PDF gets the ĐẾN mark with the incoming number from the unit's register, signed with the
unit's key. A package that arrives twice is stored once (the unit, the direction and the
package's SHA-256 are unique). A recall (``BussinessDocType`` 1) withdraws the document from
the inbox (13) and is answered 15.

Every rule is here, with the caller's :class:`~kyso.registry.access.Principal`; pages and the
API only translate.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import Integer, cast, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from kyso import clock
from kyso.audit.log import Event, record
from kyso.errors import Conflict, InvalidInput, KysoError, NotFound
from kyso.exchange import edxml
from kyso.exchange.model import (
    SUBJECT_MAX,
    Attachment,
    BusinessDocType,
    Header,
    Organ,
    Package,
    Priority,
    ResponseFor,
    SignerInfo,
    Trace,
)
from kyso.exchange.status import StatusCode
from kyso.registry.access import Action, Principal, require, visible
from kyso.registry.fields import FieldErrors, FieldProblem
from kyso.signing.levels import Level
from kyso.store.models import (
    ExchangeDirection,
    ExchangeMessage,
    ExchangeState,
    ExchangeStatusEntry,
    ExchangeStatusOut,
    Organization,
)

if TYPE_CHECKING:
    from kyso.context import Context
    from kyso.signing.identity import SignerIdentity
    from kyso.signing.stamps import Appearance

log = logging.getLogger("kyso.exchange")

HEADER_XPATH = "//edxml:edXMLHeader"
MAX_ATTACHMENTS = 20
NUMBER_TRIES = 5  # two clerks receiving at once: the loser takes the next number
MAX_ATTEMPTS = 10  # with the default first wait of 60 s: 1, 2, 4 … 256 minutes, about 8.5 hours
PDF = "application/pdf"


# -- what a clerk sends ----------------------------------------------------------------------------
@dataclass(frozen=True)
class OutgoingFile:
    name: str
    content: bytes
    content_type: str = PDF
    description: str = ""


@dataclass(frozen=True)
class Outgoing:
    """A document a unit sends: its register data (number, notation, date, type), subject,
    who signed it, the recipients' identifier codes and the files (the first is the
    document itself, already signed by its competent person)."""

    unit: str  # the sending unit's public id
    recipients: Sequence[str]  # OrganId of each recipient
    code_number: str
    code_notation: str
    type_name: str
    subject: str
    files: Sequence[OutgoingFile]
    key_id: str  # the unit's seal key in kyso's key store
    promulgation_date: date | None = None  # today by default
    place: str = ""
    content: str = ""
    signer: SignerInfo | None = None
    priority: Priority = Priority.NORMAL
    type_code: str = "1"
    type_detail: str = ""


@dataclass(frozen=True)
class Outcome:
    """What the receiving side said on arrival: 01 (in the inbox) or 02 (refused, why)."""

    code: StatusCode
    description: str = ""
    messages: tuple[str, ...] = field(default=())  # the stored IN messages' public ids


class NoRoute(InvalidInput):
    code = "exchange_no_route"
    message_vi = "Không có đường gửi đến cơ quan nhận."
    message_en = "There is no route to the recipient."


# -- helpers ---------------------------------------------------------------------------------------
def _organ_of(org: Organization) -> Organ:
    if not org.code:
        raise InvalidInput(
            f"unit {org.name} has no identifier code (mã định danh) to exchange documents with",
            vi=f"đơn vị {org.name} chưa có mã định danh để gửi nhận văn bản điện tử",
        )
    parent_name = ""
    return Organ(
        organ_id=org.code,
        name=org.name,
        in_charge=parent_name,
        address=org.address or "",
        email=org.email or "",
        telephone=org.phone or "",
    )


def _unit(principal: Principal, session: Session, public_id: str) -> Organization:
    org = session.execute(
        select(Organization).where(Organization.public_id == public_id)
    ).scalar_one_or_none()
    if org is None:
        raise NotFound(f"unit {public_id}", vi=f"đơn vị {public_id}")
    require(principal, Action.DOCUMENT_EXCHANGE, org.path)
    return org


def _local_units(session: Session, organ_ids: Sequence[str]) -> dict[str, Organization]:
    """The units of this installation with these identifier codes, by the code as given
    (codes compare without regard to case: people type ``h05`` for ``H05``)."""
    if not organ_ids:
        return {}
    wanted = {i.upper(): i for i in organ_ids}
    found = session.scalars(
        select(Organization).where(func.upper(Organization.code).in_(list(wanted)))
    )
    return {wanted[o.code.upper()]: o for o in found if o.code}


def _new_id() -> str:
    return secrets.token_urlsafe(16)


def _status(
    session: Session, message: ExchangeMessage, code: StatusCode, by: str, text: str
) -> None:
    now = clock.now()
    message.status_code = code.value
    message.updated_at = now
    session.add(
        ExchangeStatusEntry(
            message_id=message.id,
            code=code.value,
            description=text or None,
            organ_id=by,
            created_at=now,
        )
    )
    from kyso.exchange import webhooks

    webhooks.enqueue(session, message, code.value, text)


def _main_pdf(package: Package) -> Attachment | None:
    return next((a for a in package.attachments if a.content_type == PDF), None)


# -- sending ---------------------------------------------------------------------------------------
def send(ctx: Context, principal: Principal, outgoing: Outgoing) -> list[str]:
    """Sign and send ``outgoing``; the OUT messages' public ids, one per recipient. Local
    recipients have it in their inbox when this returns; others are queued for delivery."""
    from kyso.signing.service import sign_with_key

    _check(outgoing)
    recipients = list(dict.fromkeys(_code(r) for r in outgoing.recipients if r.strip()))
    with ctx.db.read() as session:
        unit = _unit(principal, session, outgoing.unit)
        sender = _organ_of(unit)
        local = _local_units(session, recipients)
    check_seal(ctx, principal, outgoing.key_id, unit.id)
    peers = ctx.settings.exchange_peers
    organs = []
    for organ_id in recipients:
        if organ_id in local:
            organs.append(_organ_of(local[organ_id]))
        elif _peer_url(peers, organ_id) is not None:
            organs.append(Organ(organ_id=organ_id, name=organ_id))
        else:
            raise NoRoute(
                f"no unit or peer installation has identifier code {organ_id}",
                vi=f"không có đơn vị hay hệ thống nào mang mã định danh {organ_id}",
            )
    if sender.organ_id.upper() in {r.upper() for r in recipients}:
        raise FieldErrors(
            [
                FieldProblem(
                    "recipients",
                    "a unit does not send to itself",
                    "đơn vị không gửi cho chính mình",
                )
            ]
        )
    now = clock.now()
    package = Package(
        header=Header(
            sender=sender,
            recipients=tuple(organs),
            code_number=outgoing.code_number.strip(),
            code_notation=outgoing.code_notation.strip(),
            place=outgoing.place.strip(),
            promulgation_date=outgoing.promulgation_date or clock.local(now).date(),
            type_code=outgoing.type_code,
            type_detail=outgoing.type_detail,
            type_name=outgoing.type_name.strip(),
            subject=outgoing.subject.strip(),
            content=outgoing.content.strip(),
            signer=outgoing.signer,
            priority=outgoing.priority,
        ),
        traces=(Trace(sender.organ_id, clock.local(now).replace(tzinfo=None, microsecond=0)),),
        attachments=tuple(
            Attachment(
                content_id=f"cid:{i + 1}-{secrets.token_hex(4)}",
                name=f.name,
                content_type=f.content_type,
                content=f.content,
                description=f.description,
            )
            for i, f in enumerate(outgoing.files)
        ),
    )
    unsigned = edxml.build(package)
    # the signature adds its evidence (certificates, OCSP, time-stamp): leave room for it
    if len(unsigned) + 256 * 1024 > ctx.settings.max_upload_bytes:
        limit = ctx.settings.max_upload_bytes // (1024 * 1024)
        raise FieldErrors(
            [
                FieldProblem(
                    "files",
                    f"the files are too large to send: the package may hold about {limit} MB "
                    "(files grow by a third once encoded)",
                    f"các tệp quá lớn để gửi: gói tin chứa được khoảng {limit} MB "
                    "(tệp tăng thêm một phần ba khi mã hóa)",
                )
            ]
        )
    signed = sign_with_key(
        ctx,
        principal,
        outgoing.key_id,
        unsigned,
        lambda content, identity: _sign_package(ctx, content, identity),
        kind="edxml",
        entry="exchange",
        name=package.header.subject,
        number=package.header.code,
    )
    return _queue(ctx, principal, unit.id, package, signed)


def _queue(
    ctx: Context, principal: Principal, unit_id: int, package: Package, signed: bytes
) -> list[str]:
    digest = hashlib.sha256(signed).hexdigest()
    now = clock.now()
    made = []
    with ctx.db.session() as session:
        for organ in package.header.recipients:
            message = ExchangeMessage(
                public_id=_new_id(),
                direction=ExchangeDirection.OUT,
                organization_id=unit_id,
                peer_organ_id=organ.organ_id[:60],
                peer_name=organ.name[:300],
                document_id=package.header.document_id,
                code=package.header.code,
                subject=package.header.subject,
                type_name=package.header.type_name,
                business=int(package.business),
                package_sha256=digest,
                package=signed,
                state=ExchangeState.QUEUED,
                attempts=0,
                next_attempt_at=now,
                actor=principal.actor,
                created_at=now,
                updated_at=now,
            )
            session.add(message)
            made.append(message)
        session.flush()
        record(
            session,
            Event(
                principal.actor,
                "exchange.sent",
                package.header.document_id,
                {
                    "business": int(package.business),
                    "recipients": [o.organ_id for o in package.header.recipients],
                    "sha256": digest,
                },
            ),
        )
        ids = [m.public_id for m in made]
    for public_id in ids:
        deliver(ctx, public_id, signed)
    _archive(ctx, ids)
    return ids


def _archive(ctx: Context, public_ids: Sequence[str]) -> None:
    from kyso.archive.service import kept_after

    kept_after(ctx, public_ids)


def _sign_package(ctx: Context, content: bytes, identity: SignerIdentity) -> bytes:
    """The unit's signature under ``edXMLHeader`` at XAdES B-LT: time-stamped, with the
    certificates' revocation evidence inside, so that another installation (which cannot
    ask this CA's OCSP responder) can judge it, and the archive can keep it."""
    from kyso.signing.service import level_support
    from kyso.signing.xades import sign_xml

    stamper, trust = level_support(ctx, Level.B_LT)
    return sign_xml(
        content,
        identity,
        level=Level.B_LT,
        timestamper=stamper,
        trust=trust,
        parent_xpath=HEADER_XPATH,
    )


def check_seal(ctx: Context, principal: Principal, key_id: str, unit_id: int) -> None:
    """``key_id`` is a seal the principal may use (:mod:`kyso.signing.keyuse`) *and* the seal
    of this very unit: a district's clerk, who may use the district's seal, does not sign a
    commune's documents with it."""
    from kyso.signing import keyuse
    from kyso.store.models import Certificate, CertStatus

    location = f"{ctx.keystore.name}:{key_id}"
    with ctx.db.read() as session:
        keyuse.authorize(principal, session, ctx.keystore.name, key_id)
        found = session.scalar(
            select(Certificate.id)
            .where(
                Certificate.key_location == location,
                Certificate.status == CertStatus.GOOD,
                Certificate.organization_id == unit_id,
                Certificate.person_id.is_(None),
            )
            .limit(1)
        )
    if found is None:
        raise FieldErrors(
            [
                FieldProblem(
                    "key_id",
                    "this key is not the seal of the unit the document is for",
                    "khóa này không phải con dấu của đơn vị phát hành/nhận văn bản",
                )
            ]
        )


def _code(value: str) -> str:
    """An identifier code as written by people, spaces dropped."""
    return "".join(value.split())


_LIMITS = (
    ("code_number", 20, "số"),
    ("code_notation", 60, "ký hiệu"),
    ("type_name", 100, "loại văn bản"),
    ("subject", SUBJECT_MAX, "trích yếu"),
    ("place", 200, "nơi ban hành"),
    ("content", 4000, "nội dung"),
)


def _check(outgoing: Outgoing) -> None:
    """Every field problem of ``outgoing`` at once, named as the form names the fields."""
    problems = []
    for name, en, vi in (
        ("code_number", "enter the document's number", "hãy nhập số của văn bản"),
        ("type_name", "choose the type of document", "hãy chọn loại văn bản"),
        ("subject", "enter the subject", "hãy nhập trích yếu nội dung"),
    ):
        if not str(getattr(outgoing, name)).strip():
            problems.append(FieldProblem(name, en, vi))
    for name, limit, vi in _LIMITS:
        if len(str(getattr(outgoing, name)).strip()) > limit:
            problems.append(
                FieldProblem(name, f"at most {limit} characters", f"{vi} tối đa {limit} ký tự")
            )
    if not any(r.strip() for r in outgoing.recipients):
        problems.append(
            FieldProblem(
                "recipients", "choose at least one recipient", "hãy chọn ít nhất một nơi nhận"
            )
        )
    if not outgoing.files:
        problems.append(FieldProblem("files", "attach the document", "hãy đính kèm văn bản"))
    elif len(outgoing.files) > MAX_ATTACHMENTS:
        problems.append(
            FieldProblem(
                "files", f"at most {MAX_ATTACHMENTS} files", f"tối đa {MAX_ATTACHMENTS} tệp"
            )
        )
    elif not outgoing.files[0].content.startswith(b"%PDF-"):
        problems.append(
            FieldProblem(
                "files", "the document itself must be a PDF", "văn bản chính phải là tệp PDF"
            )
        )
    if not outgoing.key_id.strip():
        problems.append(
            FieldProblem("key_id", "choose the unit's seal key", "hãy chọn khóa con dấu của đơn vị")
        )
    if problems:
        raise FieldErrors(problems)


def senders(principal: Principal, session: Session) -> list[Organization]:
    """The units in the principal's view that may send: those with an identifier code."""
    require(principal, Action.DOCUMENT_EXCHANGE)
    return list(
        session.scalars(
            select(Organization)
            .where(visible(principal, Organization.path), Organization.code.is_not(None))
            .order_by(Organization.path)
        )
    )


def directory(principal: Principal, session: Session) -> list[Organization]:
    """Every unit of this installation that can receive (its identifier code and name are
    public: the national list of codes), for the send form's list of recipients."""
    require(principal, Action.DOCUMENT_EXCHANGE)
    return list(
        session.scalars(
            select(Organization).where(Organization.code.is_not(None)).order_by(Organization.name)
        )
    )


def _peer_url(peers: dict[str, str], organ_id: str) -> str | None:
    """The peer installation serving ``organ_id``: the longest matching prefix wins."""
    best = max((p for p in peers if organ_id.startswith(p)), key=len, default=None)
    return peers[best] if best is not None else None


def deliver(ctx: Context, public_id: str, package: bytes | None = None) -> bool:
    """Try to deliver one queued OUT message now; True once it was taken (01 or 02).
    ``package``: its signed bytes when the caller has them (not read back again)."""
    from kyso.exchange import transport

    with ctx.db.read() as session:
        found = session.execute(
            select(ExchangeMessage.id, ExchangeMessage.peer_organ_id, ExchangeMessage.state).where(
                ExchangeMessage.public_id == public_id,
                ExchangeMessage.direction == ExchangeDirection.OUT,
            )
        ).first()
        if found is None or found.state is not ExchangeState.QUEUED:
            return False
        organ_id = found.peer_organ_id
        data = package
        if data is None:
            data = bytes(
                session.scalar(
                    select(ExchangeMessage.package).where(ExchangeMessage.id == found.id)
                )
                or b""
            )
        local = _local_units(session, [organ_id])
    try:
        if organ_id in local:
            outcome = receive(ctx, data, via="local")
        else:
            url = _peer_url(ctx.settings.exchange_peers, organ_id)
            if url is None:
                raise NoRoute(f"no route to {organ_id}", vi=f"không có đường gửi đến {organ_id}")
            outcome = transport.post_package(url, data)
    except transport.Unreachable as exc:
        _retry_later(ctx, public_id, str(exc))
        return False
    except KysoError as exc:  # never to be taken as it is (too large, no route): said so
        outcome = Outcome(StatusCode.REFUSED, exc.message("vi"))
    _taken(ctx, public_id, outcome)
    return True


def _retry_later(ctx: Context, public_id: str, error: str) -> None:
    with ctx.db.session() as session:
        message = session.execute(
            select(ExchangeMessage).where(ExchangeMessage.public_id == public_id)
        ).scalar_one()
        message.attempts += 1
        message.last_error = error[:500]
        message.updated_at = clock.now()
        if message.attempts >= MAX_ATTEMPTS:
            message.state = ExchangeState.FAILED
            message.next_attempt_at = None
            record(
                session,
                Event(
                    "system:exchange",
                    "exchange.failed",
                    message.document_id,
                    {"to": message.peer_organ_id, "error": error[:200]},
                ),
            )
        else:
            first = ctx.settings.exchange_retry_seconds
            wait = timedelta(seconds=min(first * 2 ** (message.attempts - 1), 8 * 3600))
            message.next_attempt_at = clock.now() + wait


def _taken(ctx: Context, public_id: str, outcome: Outcome) -> None:
    with ctx.db.session() as session:
        message = session.execute(
            select(ExchangeMessage).where(ExchangeMessage.public_id == public_id)
        ).scalar_one()
        message.next_attempt_at = None
        message.last_error = None
        if outcome.code is StatusCode.REFUSED:
            message.state = ExchangeState.REFUSED
            message.reason = outcome.description
        elif outcome.code is StatusCode.RECALL_ACCEPTED:
            message.state = ExchangeState.RECALLED
            for original in session.scalars(
                select(ExchangeMessage).where(
                    ExchangeMessage.organization_id == message.organization_id,
                    ExchangeMessage.direction == ExchangeDirection.OUT,
                    ExchangeMessage.document_id == message.document_id,
                    ExchangeMessage.peer_organ_id == message.peer_organ_id,
                    ExchangeMessage.business == int(BusinessDocType.NEW),
                )
            ):
                original.state = ExchangeState.RECALLED
                _status(session, original, outcome.code, message.peer_organ_id, "")
        else:
            message.state = ExchangeState.DELIVERED
        _status(session, message, outcome.code, message.peer_organ_id, outcome.description)


def retry_due(ctx: Context, limit: int = 50) -> int:
    """Deliver the queued messages whose time has come (the server's loop); how many went."""
    with ctx.db.read() as session:
        due = list(
            session.scalars(
                select(ExchangeMessage.public_id)
                .where(
                    ExchangeMessage.direction == ExchangeDirection.OUT,
                    ExchangeMessage.state == ExchangeState.QUEUED,
                    ExchangeMessage.next_attempt_at <= clock.now(),
                )
                .order_by(ExchangeMessage.next_attempt_at)
                .limit(limit)
            )
        )
        statuses = list(
            session.scalars(
                select(ExchangeStatusOut.id)
                .where(
                    ExchangeStatusOut.delivered_at.is_(None),
                    ExchangeStatusOut.next_attempt_at <= clock.now(),
                )
                .limit(limit)
            )
        )
    sent = sum(1 for public_id in due if deliver(ctx, public_id))
    return sent + sum(1 for row_id in statuses if deliver_status(ctx, row_id))


# -- receiving -------------------------------------------------------------------------------------
def _judge(ctx: Context, data: bytes, package: Package) -> str | None:
    """None if every signature is valid (the package's, and those of each signed PDF in it);
    otherwise the reason, in Vietnamese, as the status 02 says it."""
    from kyso.trust import trust_context
    from kyso.validation.report import Indication
    from kyso.validation.verify import verify
    from kyso.validation.xml import validate_xml

    trust = trust_context(ctx)
    report = validate_xml(data, trust, name="edxml.xml")
    if not report.passed:
        first = next(iter(report.signatures), None)
        detail = first.message_vi if first is not None else report.message_vi
        return f"Chữ ký số trên gói tin không hợp lệ: {detail}"
    for attachment in package.attachments:
        if attachment.content_type != PDF:
            continue
        try:
            checked = verify(attachment.content, trust, name=attachment.name)
        except InvalidInput as exc:
            return f"Tệp {attachment.name} không đọc được: {exc.message('vi')}"
        # A signature that is broken refuses the package. One that cannot be judged here
        # (another CA's certificate without revocation evidence in the file) does not: the
        # package's own B-LT signature, which must pass, vouches for the sending unit.
        if checked.signatures and checked.indication is Indication.TOTAL_FAILED:
            first = checked.signatures[0]
            return f"Chữ ký số trên tệp {attachment.name} không hợp lệ: {first.message_vi}"
    return None


def receive(ctx: Context, data: bytes, *, via: str) -> Outcome:
    """A package arriving for units of this installation (from one of its own units or from
    another installation, ``via`` naming it for the audit log). Idempotent."""
    if len(data) > ctx.settings.max_upload_bytes:
        raise InvalidInput("the package is too large", vi="gói tin quá lớn")
    package = edxml.parse(data)
    header = package.header
    with ctx.db.read() as session:
        units = _local_units(session, [o.organ_id for o in header.recipients])
    if not units:
        raise NoRoute(
            "no recipient of this package is a unit here",
            vi="không có nơi nhận nào của gói tin thuộc hệ thống này",
        )
    problem = _judge(ctx, data, package)
    digest = hashlib.sha256(data).hexdigest()
    ids = []
    code = StatusCode.ARRIVED
    if problem:
        code = StatusCode.REFUSED
    elif package.business is BusinessDocType.RECALL:
        code = StatusCode.RECALL_ACCEPTED
    for unit in units.values():
        public_id = _store_incoming(ctx, unit, package, data, digest, problem, via)
        ids.append(public_id)
    _archive(ctx, ids)
    return Outcome(code, problem or "", tuple(ids))


def _store_incoming(
    ctx: Context,
    unit: Organization,
    package: Package,
    data: bytes,
    digest: str,
    problem: str | None,
    via: str,
) -> str:
    header = package.header
    now = clock.now()
    recall = package.business is BusinessDocType.RECALL
    try:
        with ctx.db.session() as session:
            message = ExchangeMessage(
                public_id=_new_id(),
                direction=ExchangeDirection.IN,
                organization_id=unit.id,
                peer_organ_id=header.sender.organ_id[:60],
                peer_name=(header.sender.name or header.sender.organ_id)[:300],
                document_id=header.document_id[:300],
                code=header.code[:100],
                subject=header.subject[:SUBJECT_MAX],
                type_name=header.type_name[:100],
                business=int(package.business),
                package_sha256=digest,
                package=data,
                state=ExchangeState.REFUSED if problem else ExchangeState.ARRIVED,
                reason=problem,
                attempts=0,
                actor=f"exchange:{via}",
                created_at=now,
                updated_at=now,
            )
            session.add(message)
            session.flush()
            organ = unit.code or ""
            if problem:
                _status(session, message, StatusCode.REFUSED, organ, problem)
            elif recall:
                message.state = ExchangeState.RECALLED
                _status(
                    session, message, StatusCode.RECALL_ACCEPTED, organ, package.traces[-1].reason
                )
                _withdraw(session, unit, header.document_id, organ, package.traces[-1].reason)
            else:
                _status(session, message, StatusCode.ARRIVED, organ, "")
            record(
                session,
                Event(
                    f"exchange:{via}",
                    "exchange.refused"
                    if problem
                    else ("exchange.recalled" if recall else "exchange.arrived"),
                    header.document_id,
                    {
                        "unit": unit.public_id,
                        "from": header.sender.organ_id,
                        "sha256": digest,
                        "reason": problem,
                    },
                ),
            )
            return message.public_id
    except IntegrityError:  # delivered before: the stored message stands
        with ctx.db.read() as session:
            return session.scalars(
                select(ExchangeMessage.public_id).where(
                    ExchangeMessage.organization_id == unit.id,
                    ExchangeMessage.direction == ExchangeDirection.IN,
                    ExchangeMessage.package_sha256 == digest,
                )
            ).one()


def _withdraw(
    session: Session, unit: Organization, document_id: str, organ: str, reason: str
) -> None:
    """The sender recalled ``document_id``: it leaves the unit's inbox (13)."""
    earlier = session.scalars(
        select(ExchangeMessage).where(
            ExchangeMessage.organization_id == unit.id,
            ExchangeMessage.direction == ExchangeDirection.IN,
            ExchangeMessage.document_id == document_id,
            ExchangeMessage.business == int(BusinessDocType.NEW),
            ExchangeMessage.state.in_([ExchangeState.ARRIVED, ExchangeState.RECEIVED]),
        )
    )
    for message in earlier:
        message.state = ExchangeState.RECALLED
        message.reason = reason or None
        _status(session, message, StatusCode.RECALLED, organ, reason)


# -- the clerk's side of an incoming document ------------------------------------------------------
def _incoming(principal: Principal, session: Session, public_id: str) -> ExchangeMessage:
    message = get(principal, session, public_id)
    if message.direction is not ExchangeDirection.IN:
        raise NotFound(f"incoming message {public_id}", vi=f"văn bản đến {public_id}")
    require(principal, Action.DOCUMENT_EXCHANGE)
    return message


def _marker(look: Appearance) -> Callable[[bytes, SignerIdentity], bytes]:
    """Signing with the ĐẾN stamp ``look``."""
    from kyso.signing.pades import sign_pdf

    def make(content: bytes, identity: SignerIdentity) -> bytes:
        return sign_pdf(content, identity, appearance=look)

    return make


def _next_number(session: Session, unit_id: int, year: int) -> str:
    """The next incoming number (số đến) of the unit's register for ``year`` (unique with
    the unit and the year: a clerk who loses a race to another takes the next)."""
    last = session.scalar(
        select(func.max(cast(ExchangeMessage.received_number, Integer))).where(
            ExchangeMessage.organization_id == unit_id,
            ExchangeMessage.received_year == year,
        )
    )
    return str(int(last or 0) + 1)


def accept(ctx: Context, principal: Principal, public_id: str, *, key_id: str) -> str:
    """The clerk receives an arrived document (03): the main PDF gets the ĐẾN mark with the
    next incoming number, signed with the unit's key ``key_id``. Returns the number."""
    from kyso.signing.service import sign_with_key
    from kyso.signing.stamps import Appearance, StampKind

    with ctx.db.read() as session:
        message = _incoming(principal, session, public_id)
        if message.state is not ExchangeState.ARRIVED:
            raise Conflict(
                f"the document is {message.state.value}",
                vi="văn bản không ở trạng thái chờ tiếp nhận",
            )
        unit = session.get(Organization, message.organization_id)
        assert unit is not None
        package = edxml.parse(message.package)
        version = message.updated_at
    check_seal(ctx, principal, key_id, unit.id)
    main = _main_pdf(package)
    year = clock.local(clock.now()).year
    for _attempt in range(NUMBER_TRIES):
        with ctx.db.read() as session:
            number = _next_number(session, unit.id, year)
        marked = None
        if main is not None:
            appearance = Appearance(
                kind=StampKind.INCOMING,
                received_number=number,
                received_date=clock.local(clock.now()).date(),
                receiving_org=unit.name,
            )
            marked = sign_with_key(
                ctx,
                principal,
                key_id,
                main.content,
                _marker(appearance),
                kind="pdf",
                entry="exchange",
                name=main.name,
                number=package.header.code,
            )
        told = _status_for_remote_sender(
            ctx, principal, key_id, package, unit, StatusCode.RECEIVED, f"Số đến: {number}"
        )
        try:
            with ctx.db.session() as session:
                message = _incoming(principal, session, public_id)
                if message.state is not ExchangeState.ARRIVED or message.updated_at != version:
                    raise Conflict(
                        "the document changed meanwhile", vi="văn bản vừa được người khác xử lý"
                    )
                message.state = ExchangeState.RECEIVED
                message.received_number = number
                message.received_year = year
                message.marked_document = marked
                _status(session, message, StatusCode.RECEIVED, unit.code or "", "")
                record(
                    session,
                    Event(
                        principal.actor,
                        "exchange.received",
                        message.document_id,
                        {"number": number},
                    ),
                )
                _tell_sender(session, message, StatusCode.RECEIVED, "")
                outbox = _queue_status(session, message, StatusCode.RECEIVED, told)
                session.flush()  # the unique number is claimed here, or not
            break
        except IntegrityError:
            continue  # another clerk took this number: mark again with the next
    else:
        raise Conflict("the register is busy; receive again", vi="sổ văn bản đến đang bận")
    if outbox is not None:
        deliver_status(ctx, outbox)
    _archive(ctx, [public_id])
    return number


def refuse(
    ctx: Context, principal: Principal, public_id: str, reason: str, key_id: str | None = None
) -> None:
    """The clerk refuses an arrived document (02), saying why; the sender is told. A sender
    in another installation is told by a status signed with the unit's key ``key_id``."""
    reason = reason.strip()
    if not reason:
        raise InvalidInput("say why", vi="hãy nêu lý do từ chối")
    with ctx.db.read() as session:
        message = _incoming(principal, session, public_id)
        if message.state is not ExchangeState.ARRIVED:
            raise Conflict(
                f"the document is {message.state.value}",
                vi="văn bản không ở trạng thái chờ tiếp nhận",
            )
        unit = session.get(Organization, message.organization_id)
        assert unit is not None
        remote = _is_remote(session, message.peer_organ_id)
        package = edxml.parse(message.package) if remote else None
        version = message.updated_at
    told = None
    if package is not None and key_id:
        check_seal(ctx, principal, key_id, unit.id)
    if package is not None:
        if not key_id:
            raise InvalidInput(
                "choose the unit's seal key: the refusal is signed for the other system",
                vi="hãy chọn khóa con dấu của đơn vị: thông báo từ chối được ký "
                "gửi hệ thống bên kia",
            )
        told = _status_for_remote_sender(
            ctx, principal, key_id, package, unit, StatusCode.REFUSED, reason
        )
    with ctx.db.session() as session:
        message = _incoming(principal, session, public_id)
        if message.state is not ExchangeState.ARRIVED or message.updated_at != version:
            raise Conflict("the document changed meanwhile", vi="văn bản vừa được người khác xử lý")
        message.state = ExchangeState.REFUSED
        message.reason = reason[:2000]
        _status(session, message, StatusCode.REFUSED, unit.code or "", reason)
        record(
            session,
            Event(
                principal.actor, "exchange.refused", message.document_id, {"reason": reason[:200]}
            ),
        )
        _tell_sender(session, message, StatusCode.REFUSED, reason)
        outbox = _queue_status(session, message, StatusCode.REFUSED, told)
    if outbox is not None:
        deliver_status(ctx, outbox)


def _is_remote(session: Session, organ_id: str) -> bool:
    return not _local_units(session, [organ_id])


def _status_for_remote_sender(
    ctx: Context,
    principal: Principal,
    key_id: str,
    package: Package,
    unit: Organization,
    code: StatusCode,
    text: str,
) -> bytes | None:
    """The signed status message for a sender in another installation (None for a sender
    here, who learns it directly)."""
    from kyso.exchange import status
    from kyso.signing.service import sign_with_key

    header = package.header
    with ctx.db.read() as session:
        if not _is_remote(session, header.sender.organ_id):
            return None
    made = status.Status(
        response_for=ResponseFor(
            organ_id=header.sender.organ_id,
            code=header.code,
            promulgation_date=header.promulgation_date,
            document_id=header.document_id,
        ),
        sender=_organ_of(unit),
        code=code,
        timestamp=clock.local(clock.now()).replace(tzinfo=None, microsecond=0),
        description=text,
        staff=status.StaffInfo(department=unit.name, staff=principal.actor),
    )
    return sign_with_key(
        ctx,
        principal,
        key_id,
        status.build(made),
        lambda content, identity: _sign_package(ctx, content, identity),
        kind="edxml",
        entry="exchange",
        name=f"status {code.value}: {header.subject}"[:200],
        number=header.code,
    )


def _queue_status(
    session: Session, message: ExchangeMessage, code: StatusCode, data: bytes | None
) -> int | None:
    if data is None:
        return None
    now = clock.now()
    row = ExchangeStatusOut(
        message_id=message.id,
        organ_id=message.peer_organ_id,
        code=code.value,
        data=data,
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )
    session.add(row)
    session.flush()
    return row.id


def deliver_status(ctx: Context, row_id: int) -> bool:
    """Send one queued status to the sender's installation; True once it was taken."""
    from kyso.exchange import transport

    with ctx.db.read() as session:
        row = session.get(ExchangeStatusOut, row_id)
        if row is None or row.delivered_at is not None:
            return False
        organ_id, data = row.organ_id, bytes(row.data)
    url = _peer_url(ctx.settings.exchange_peers, organ_id)
    error = None
    if url is None:
        error = f"no route to {organ_id}"
    else:
        try:
            transport.post_status(url, data)
        except transport.Unreachable as exc:
            error = str(exc)
    with ctx.db.session() as session:
        row = session.get(ExchangeStatusOut, row_id)
        assert row is not None
        if error is None:
            row.delivered_at = clock.now()
            row.next_attempt_at = None
            return True
        row.attempts += 1
        row.last_error = error[:500]
        if row.attempts >= MAX_ATTEMPTS:
            row.next_attempt_at = None
        else:
            first = ctx.settings.exchange_retry_seconds
            row.next_attempt_at = clock.now() + timedelta(
                seconds=min(first * 2 ** (row.attempts - 1), 8 * 3600)
            )
    return False


def receive_status(ctx: Context, data: bytes, *, via: str) -> int:
    """A status from another installation about documents sent from here: its signature
    must be valid, and it changes only the OUT messages of that document to the agency that
    signed and sent it. Returns how many messages it updated (a repeat updates none)."""
    from kyso.exchange import status
    from kyso.trust import trust_context
    from kyso.validation.xml import validate_xml

    if len(data) > 1024 * 1024:
        raise InvalidInput("the status is too large", vi="thông điệp trạng thái quá lớn")
    said = status.parse(data)
    report = validate_xml(data, trust_context(ctx), name="status.xml")
    if not report.passed:
        first = next(iter(report.signatures), None)
        raise InvalidInput(
            "the status message's signature is not valid",
            vi="chữ ký trên thông điệp trạng thái không hợp lệ: "
            + (first.message_vi if first is not None else report.message_vi),
        )
    changed = 0
    with ctx.db.session() as session:
        for out in session.scalars(
            select(ExchangeMessage).where(
                ExchangeMessage.direction == ExchangeDirection.OUT,
                ExchangeMessage.document_id == said.response_for.document_id,
                ExchangeMessage.peer_organ_id == said.sender.organ_id,
                ExchangeMessage.business == int(BusinessDocType.NEW),
            )
        ):
            if out.status_code == said.code.value:
                continue  # told already
            if said.code is StatusCode.RECEIVED:
                out.state = ExchangeState.RECEIVED
            elif said.code is StatusCode.REFUSED:
                out.state = ExchangeState.REFUSED
                out.reason = said.description or None
            _status(session, out, said.code, said.sender.organ_id, said.description)
            changed += 1
        if changed:
            record(
                session,
                Event(
                    f"exchange:{via}",
                    "exchange.status",
                    said.response_for.document_id,
                    {"code": said.code.value, "from": said.sender.organ_id},
                ),
            )
    return changed


def _tell_sender(session: Session, incoming: ExchangeMessage, code: StatusCode, text: str) -> None:
    """The sender's OUT message learns the status, when the sender is a unit here (a sender
    in another installation gets a signed status message: :func:`deliver_status`)."""
    unit = session.get(Organization, incoming.organization_id)
    sender = session.execute(
        select(Organization).where(Organization.code == incoming.peer_organ_id)
    ).scalar_one_or_none()
    if sender is None or unit is None:
        return
    for out in session.scalars(
        select(ExchangeMessage).where(
            ExchangeMessage.organization_id == sender.id,
            ExchangeMessage.direction == ExchangeDirection.OUT,
            ExchangeMessage.package_sha256 == incoming.package_sha256,
            ExchangeMessage.peer_organ_id == unit.code,
        )
    ):
        out.state = ExchangeState.RECEIVED if code is StatusCode.RECEIVED else ExchangeState.REFUSED
        if code is StatusCode.REFUSED:
            out.reason = text
        _status(session, out, code, unit.code or "", text)


# -- recall ----------------------------------------------------------------------------------------
def recall(
    ctx: Context, principal: Principal, public_id: str, *, reason: str, key_id: str
) -> list[str]:
    """Recall a sent document from every recipient (``BussinessDocType`` 1): the same header,
    a new trace saying why, signed again with the unit's key."""
    from kyso.signing.service import sign_with_key

    reason = reason.strip()
    if not reason:
        raise InvalidInput("say why", vi="hãy nêu lý do thu hồi")
    with ctx.db.read() as session:
        message = get(principal, session, public_id)
        require(principal, Action.DOCUMENT_EXCHANGE)
        if message.direction is not ExchangeDirection.OUT or message.business != 0:
            raise Conflict("only a sent document is recalled", vi="chỉ thu hồi văn bản đã gửi")
        original = edxml.parse(message.package)
        unit_id = message.organization_id
        unit = session.get(Organization, unit_id)
        assert unit is not None
    check_seal(ctx, principal, key_id, unit_id)
    now = clock.local(clock.now()).replace(tzinfo=None, microsecond=0)
    package = Package(
        header=original.header,
        traces=(
            *original.traces,
            Trace(original.header.sender.organ_id, now, BusinessDocType.RECALL, reason),
        ),
        attachments=original.attachments,
    )
    signed = sign_with_key(
        ctx,
        principal,
        key_id,
        edxml.build(package),
        lambda content, identity: _sign_package(ctx, content, identity),
        kind="edxml",
        entry="exchange",
        name=package.header.subject,
        number=package.header.code,
    )
    return _queue(ctx, principal, unit_id, package, signed)


# -- reading ---------------------------------------------------------------------------------------
def get(principal: Principal, session: Session, public_id: str) -> ExchangeMessage:
    """One message of a unit in the principal's view (NotFound otherwise: nobody learns what
    other units exchange)."""
    found = session.execute(
        select(ExchangeMessage)
        .join(Organization, Organization.id == ExchangeMessage.organization_id)
        .where(ExchangeMessage.public_id == public_id, visible(principal, Organization.path))
    ).scalar_one_or_none()
    if found is None or not principal.can(Action.DOCUMENT_EXCHANGE):
        raise NotFound(f"message {public_id}", vi=f"văn bản {public_id}")
    return found


def listing(
    principal: Principal, session: Session, direction: ExchangeDirection, *, limit: int = 200
) -> list[ExchangeMessage]:
    """The inbox or the outbox of the units in view, newest first."""
    require(principal, Action.DOCUMENT_EXCHANGE)
    return list(
        session.scalars(
            select(ExchangeMessage)
            .join(Organization, Organization.id == ExchangeMessage.organization_id)
            .where(ExchangeMessage.direction == direction, visible(principal, Organization.path))
            .order_by(ExchangeMessage.id.desc())
            .limit(limit)
        )
    )


def marked_document(principal: Principal, session: Session, public_id: str) -> bytes | None:
    """The main PDF with the ĐẾN mark of a received message in the principal's view (None
    until the clerk received it)."""
    message = get(principal, session, public_id)
    data = session.scalar(
        select(ExchangeMessage.marked_document).where(ExchangeMessage.id == message.id)
    )
    return bytes(data) if data is not None else None


def has_marked_document(session: Session, message: ExchangeMessage) -> bool:
    """Whether a message (already read with :func:`get`) has its ĐẾN-marked PDF."""
    return bool(
        session.scalar(
            select(ExchangeMessage.marked_document.is_not(None)).where(
                ExchangeMessage.id == message.id
            )
        )
    )


def history(session: Session, message: ExchangeMessage) -> list[ExchangeStatusEntry]:
    return list(
        session.scalars(
            select(ExchangeStatusEntry)
            .where(ExchangeStatusEntry.message_id == message.id)
            .order_by(ExchangeStatusEntry.id)
        )
    )
