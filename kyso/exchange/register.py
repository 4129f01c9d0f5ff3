"""The records clerk's issuing step, the unit's register of issued documents, the catalogue
of document types, and the plan's 90 % figure computed from them.

A leader signs a draft (their approval signature, through any of kyso's signing paths); the
clerk (văn thư) then *issues* it (:func:`issue`): the next number of the unit's register for
the year (Decree 30/2020, art. 15: one sequence per unit per calendar year), the notation,
the date, and the unit's seal over the left third of the leader's signature (the ISSUING
stamp on a new signature field over the leader's, signed with the unit's seal key). The
register row keeps the issued PDF. :func:`send` sends it to other agencies through
:mod:`kyso.exchange.service`, unless the catalogue says its type goes on paper only.

The province sets, per document type, whether it goes electronic only, with paper in
parallel, or on paper only (:func:`set_delivery`). :func:`electronic_share` says, for each
unit in view and period, how many documents it issued and how many of them went out
electronically: the plan's target is 90 % from commune level up.
"""

from __future__ import annotations

import io
import json
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING

from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from kyso import clock
from kyso.audit.log import Event, record
from kyso.errors import Conflict, Forbidden, InvalidInput, NotFound
from kyso.registry.access import Action, Principal, require, visible
from kyso.registry.fields import FieldErrors, FieldProblem
from kyso.store.models import (
    Delivery,
    DocumentType,
    Organization,
    OrgKind,
    RegisteredDocument,
)

if TYPE_CHECKING:
    from pyhanko.sign.timestamps import TimeStamper

    from kyso.context import Context
    from kyso.signing.identity import SignerIdentity
    from kyso.signing.stamps import Appearance
    from kyso.trust import TrustContext

TARGET = 0.90  # the plan: 90 % of documents exchanged electronically, commune level up
NUMBER_TRIES = 5  # two clerks issuing at once: the loser takes the next number


class Level:
    """The administrative level a unit counts at in the 90 % figure."""

    PROVINCE = "province"
    DISTRICT = "district"
    COMMUNE = "commune"

    @staticmethod
    def of(kind: OrgKind) -> str:
        if kind is OrgKind.COMMUNE:
            return Level.COMMUNE
        if kind is OrgKind.DISTRICT:
            return Level.DISTRICT
        return Level.PROVINCE  # the province's own departments and agencies


# -- the catalogue ---------------------------------------------------------------------------------
def catalogue(session: Session) -> list[DocumentType]:
    return list(session.scalars(select(DocumentType).order_by(DocumentType.position)))


def _type(session: Session, abbreviation: str) -> DocumentType:
    found = session.execute(
        select(DocumentType).where(DocumentType.abbreviation == abbreviation.strip())
    ).scalar_one_or_none()
    if found is None:
        raise FieldErrors(
            [FieldProblem("type", f"unknown type {abbreviation!r}", "loại văn bản không có")]
        )
    return found


def set_delivery(
    principal: Principal, session: Session, abbreviation: str, delivery: Delivery
) -> DocumentType:
    """The province decides how a type of document is delivered."""
    require(principal, Action.ORG_WRITE)
    if not principal.province_wide:
        raise Forbidden(
            "only the province sets the catalogue", vi="chỉ cấp tỉnh đặt danh mục văn bản"
        )
    found = _type(session, abbreviation)
    if found.delivery is not delivery:
        record(
            session,
            Event(
                principal.actor,
                "catalogue.delivery_changed",
                found.abbreviation,
                {"from": found.delivery.value, "to": delivery.value},
            ),
        )
        found.delivery = delivery
        found.updated_at = clock.now()
        found.updated_by = principal.actor
    return found


# -- issuing ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Issue:
    """What the clerk fills in to issue a signed draft."""

    unit: str  # public id
    type: str  # the catalogue's abbreviation
    notation: str  # "QĐ-UBND": what follows the number
    subject: str
    document: bytes  # the draft with the leader's signature
    seal_image: bytes  # the unit's seal, a transparent PNG
    key_id: str  # the unit's seal key in kyso's key store
    signer_name: str = ""
    issued_on: date | None = None  # today by default


def _unit(principal: Principal, session: Session, public_id: str) -> Organization:
    org = session.execute(
        select(Organization).where(Organization.public_id == public_id)
    ).scalar_one_or_none()
    if org is None:
        raise NotFound(f"unit {public_id}", vi=f"đơn vị {public_id}")
    require(principal, Action.DOCUMENT_EXCHANGE, org.path)
    return org


def _leaders_field(document: bytes) -> str:
    """The field of the last signature on the draft: the leader's, which the seal covers."""
    from pyhanko.pdf_utils.reader import PdfFileReader

    try:
        signatures = PdfFileReader(io.BytesIO(document), strict=False).embedded_signatures
    except Exception as exc:  # pyHanko's parse errors have no common type
        raise FieldErrors(
            [FieldProblem("document", "not a readable PDF", "không đọc được tệp PDF")]
        ) from exc
    if not signatures:
        raise FieldErrors(
            [
                FieldProblem(
                    "document",
                    "the draft has no signature: the competent person signs it first",
                    "văn bản chưa có chữ ký: người có thẩm quyền ký trước khi phát hành",
                )
            ]
        )
    for signature in reversed(signatures):  # the last one that shows on a page
        if _visible(signature.sig_field):
            return str(signature.field_name)
    raise FieldErrors(
        [
            FieldProblem(
                "document",
                "the competent person's signature is invisible: the seal goes over a visible "
                "signature (sign with the approval stamp)",
                "chữ ký của người có thẩm quyền không hiển thị trên trang: con dấu phải đóng "
                "lên chữ ký hiển thị (ký với hình chữ ký)",
            )
        ]
    )


def _visible(field: object) -> bool:
    """Whether a signature field's widget has an area on a page."""
    try:
        widget = field  # merged field/widget (what pyHanko and kyso write)
        kids = field.get("/Kids") if hasattr(field, "get") else None  # type: ignore[attr-defined]
        if kids:
            widget = kids[0].get_object()
        x1, y1, x2, y2 = (float(v) for v in widget["/Rect"])  # type: ignore[index]
    except (KeyError, TypeError, ValueError, IndexError, AttributeError):
        return False
    return abs(x2 - x1) > 1 and abs(y2 - y1) > 1


def _check(issue: Issue) -> None:
    problems = []
    if not issue.notation.strip() or len(issue.notation.strip()) > 60:
        problems.append(
            FieldProblem(
                "notation", "the notation, up to 60 characters", "ký hiệu, tối đa 60 ký tự"
            )
        )
    if not issue.subject.strip() or len(issue.subject.strip()) > 500:
        problems.append(
            FieldProblem(
                "subject", "the subject, up to 500 characters", "trích yếu, tối đa 500 ký tự"
            )
        )
    if not issue.seal_image.startswith(b"\x89PNG"):
        problems.append(
            FieldProblem("seal_image", "the seal image must be a PNG", "ảnh con dấu phải là PNG")
        )
    if not issue.document.startswith(b"%PDF-"):
        problems.append(
            FieldProblem("document", "the document must be a PDF", "văn bản phải là tệp PDF")
        )
    if problems:
        raise FieldErrors(problems)


def _next_number(session: Session, unit_id: int, year: int) -> int:
    last = session.scalar(
        select(func.max(RegisteredDocument.number)).where(
            RegisteredDocument.organization_id == unit_id, RegisteredDocument.year == year
        )
    )
    return int(last or 0) + 1


def issue(ctx: Context, principal: Principal, what: Issue) -> RegisteredDocument:
    """Number, seal and register a signed draft; the register row (with the issued PDF)."""
    from kyso.signing.levels import Level as SignatureLevel
    from kyso.signing.placement import Placement
    from kyso.signing.service import level_support, sign_with_key
    from kyso.signing.stamps import Appearance, StampKind

    _check(what)
    field = _leaders_field(what.document)
    issued_on = what.issued_on or clock.local(clock.now()).date()
    with ctx.db.read() as session:
        unit = _unit(principal, session, what.unit)
        kind = _type(session, what.type)
        type_id, delivery = kind.id, kind.delivery
    from kyso.exchange.service import check_seal

    check_seal(ctx, principal, what.key_id, unit.id)
    stamper, trust = level_support(ctx, SignatureLevel.B_T, trust_from=SignatureLevel.B_T)
    for _attempt in range(NUMBER_TRIES):
        with ctx.db.read() as session:
            number = _next_number(session, unit.id, issued_on.year)
        code = f"{number}/{what.notation.strip()}"
        look = Appearance(
            kind=StampKind.ISSUING,
            placement=Placement.over_field(field),
            number=code,
            date=issued_on,
            seal_image=what.seal_image,
        )
        issued = sign_with_key(
            ctx,
            principal,
            what.key_id,
            what.document,
            _sealer(look, stamper, trust),
            kind="pdf",
            entry="exchange",
            name=what.subject[:200],
            number=code,
            level=SignatureLevel.B_T,
        )
        try:
            with ctx.db.session() as session:
                row = RegisteredDocument(
                    public_id=secrets.token_urlsafe(16),
                    organization_id=unit.id,
                    year=issued_on.year,
                    number=number,
                    notation=what.notation.strip(),
                    type_id=type_id,
                    delivery=delivery,
                    issued_on=issued_on,
                    subject=what.subject.strip(),
                    signer_name=what.signer_name.strip() or None,
                    document=issued,
                    actor=principal.actor,
                    created_at=clock.now(),
                )
                session.add(row)
                session.flush()
                record(
                    session,
                    Event(
                        principal.actor,
                        "document.issued",
                        code,
                        {"unit": unit.public_id, "type": what.type, "register": row.public_id},
                    ),
                )
                session.expunge(row)
            _archive(ctx, [row.public_id])
            return row
        except IntegrityError:
            continue  # another clerk took this number meanwhile: seal again with the next
    raise Conflict("the register is busy; issue again", vi="sổ văn bản đang bận, hãy phát hành lại")


def _archive(ctx: Context, public_ids: Sequence[str]) -> None:
    from kyso.archive.service import kept_after

    kept_after(ctx, public_ids)


def _sealer(
    look: Appearance, stamper: TimeStamper | None, trust: TrustContext | None
) -> Callable[[bytes, SignerIdentity], bytes]:
    """The signing step of :func:`issue`: PAdES B-T with the ISSUING stamp ``look``."""
    from kyso.signing.levels import Level as SignatureLevel
    from kyso.signing.pades import sign_pdf

    def make(content: bytes, identity: SignerIdentity) -> bytes:
        return sign_pdf(
            content,
            identity,
            level=SignatureLevel.B_T,
            appearance=look,
            timestamper=stamper,
            trust=trust,
        )

    return make


def get(principal: Principal, session: Session, public_id: str) -> RegisteredDocument:
    found = session.execute(
        select(RegisteredDocument)
        .join(Organization, Organization.id == RegisteredDocument.organization_id)
        .where(RegisteredDocument.public_id == public_id, visible(principal, Organization.path))
    ).scalar_one_or_none()
    if found is None or not principal.can(Action.DOCUMENT_EXCHANGE):
        raise NotFound(f"document {public_id}", vi=f"văn bản {public_id}")
    return found


def entries(
    principal: Principal, session: Session, *, year: int | None = None, limit: int = 500
) -> list[RegisteredDocument]:
    """The register of the units in view, newest first."""
    require(principal, Action.DOCUMENT_EXCHANGE)
    query = (
        select(RegisteredDocument)
        .join(Organization, Organization.id == RegisteredDocument.organization_id)
        .where(visible(principal, Organization.path))
    )
    if year is not None:
        query = query.where(RegisteredDocument.year == year)
    return list(session.scalars(query.order_by(RegisteredDocument.id.desc()).limit(limit)))


def send(
    ctx: Context, principal: Principal, public_id: str, recipients: Sequence[str], key_id: str
) -> list[str]:
    """Send an issued document to other agencies (its register data in the edXML header);
    refused for a type the catalogue keeps on paper."""
    from kyso.exchange import service

    with ctx.db.read() as session:
        row = get(principal, session, public_id)
        kind = session.get(DocumentType, row.type_id)
        unit = session.get(Organization, row.organization_id)
        assert kind is not None and unit is not None
        if row.delivery is Delivery.PAPER:
            raise InvalidInput(
                f"{kind.name} goes on paper only (the province's catalogue)",
                vi=f"{kind.name} chỉ gửi bản giấy (theo danh mục của tỉnh)",
            )
        document = bytes(row.document or b"")
        outgoing = service.Outgoing(
            unit=unit.public_id,
            recipients=recipients,
            code_number=str(row.number),
            code_notation=row.notation,
            type_name=kind.name,
            subject=row.subject,
            files=[service.OutgoingFile(f"{row.number}-{row.notation}.pdf", document)],
            key_id=key_id,
            promulgation_date=row.issued_on,
            place="",
        )
    sent = service.send(ctx, principal, outgoing)
    with ctx.db.session() as session:
        found = session.get(RegisteredDocument, row.id)
        if found is not None and found.sent_at is None:
            found.sent_at = clock.now()
    return sent


# -- the 90 % figure -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Share:
    """Documents a unit issued in a period, and how many of them went out electronically."""

    unit: str  # public id
    name: str
    level: str
    issued: int
    electronic: int

    @property
    def share(self) -> float | None:
        return self.electronic / self.issued if self.issued else None

    @property
    def meets_target(self) -> bool | None:
        return None if self.share is None else self.share >= TARGET


def electronic_share(principal: Principal, session: Session, start: date, end: date) -> list[Share]:
    """Per unit in view, from its register: issued from ``start`` to ``end`` (inclusive),
    and sent electronically (a document of a paper-only type counts as issued, never as
    electronic: the figure is of all documents, as the plan counts them)."""
    require(principal, Action.REPORT_READ)
    if end < start:
        raise InvalidInput(
            "the period ends before it starts", vi="kỳ báo cáo kết thúc trước khi bắt đầu"
        )
    rows = session.execute(
        select(
            Organization.public_id,
            Organization.name,
            Organization.kind,
            func.count(RegisteredDocument.id),
            func.count(RegisteredDocument.sent_at),
        )
        .join(RegisteredDocument, RegisteredDocument.organization_id == Organization.id)
        .where(
            visible(principal, Organization.path),
            RegisteredDocument.issued_on >= start,
            RegisteredDocument.issued_on <= end,
        )
        .group_by(Organization.id, Organization.public_id, Organization.name, Organization.kind)
        .order_by(Organization.name)
    ).all()
    return [
        Share(public_id, name, Level.of(kind), int(issued), int(electronic))
        for public_id, name, kind, issued, electronic in rows
    ]


def by_level(shares: Sequence[Share]) -> dict[str, tuple[int, int]]:
    """(issued, electronic) summed per level."""
    totals: dict[str, tuple[int, int]] = {}
    for s in shares:
        issued, electronic = totals.get(s.level, (0, 0))
        totals[s.level] = (issued + s.issued, electronic + s.electronic)
    return totals


# -- the e-gazette -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Published:
    """An issued document as the public e-gazette shows it."""

    public_id: str
    code: str
    issued_on: date
    type_name: str
    subject: str
    issuer: str
    signer_name: str | None
    published_at: datetime
    verdict: str  # kyso's indication when it was published (TOTAL-PASSED, …)
    signers: list[str]


def publish(ctx: Context, principal: Principal, public_id: str) -> Published:
    """Put an issued document in the e-gazette (công báo điện tử), with the verdict of kyso's
    validation now, so that readers see whether its signatures held when it was published
    (and may check the file again themselves on /verify)."""
    from kyso.trust import trust_context
    from kyso.validation.verify import verify

    with ctx.db.read() as session:
        row = get(principal, session, public_id)
        document = bytes(row.document or b"")
    report = verify(document, trust_context(ctx), name=f"{public_id}.pdf")
    if not report.passed:
        raise Conflict(
            "its signatures do not validate now; it is not published",
            vi="chữ ký trên văn bản hiện không hợp lệ; không công bố",
        )
    summary = {
        "indication": report.indication.value,
        "signers": [s.signer.subject for s in report.signatures if s.signer is not None],
        "at": clock.now().isoformat(),
    }
    with ctx.db.session() as session:
        row = get(principal, session, public_id)
        row.published_at = clock.now()
        row.published_report = json.dumps(summary, ensure_ascii=False)
        record(session, Event(principal.actor, "document.published", public_id, {}))
    with ctx.db.read() as session:
        return gazette_entry(session, public_id)


def unpublish(ctx: Context, principal: Principal, public_id: str) -> None:
    with ctx.db.session() as session:
        row = get(principal, session, public_id)
        if row.published_at is not None:
            row.published_at = None
            record(session, Event(principal.actor, "document.unpublished", public_id, {}))


def _gazette_query() -> Select[RegisteredDocument, str, str]:
    return (
        select(RegisteredDocument, DocumentType.name, Organization.name)
        .join(DocumentType, DocumentType.id == RegisteredDocument.type_id)
        .join(Organization, Organization.id == RegisteredDocument.organization_id)
        .where(RegisteredDocument.published_at.is_not(None))
    )


def _published(row: RegisteredDocument, type_name: str, issuer: str) -> Published:
    report = json.loads(row.published_report or "{}")
    assert row.published_at is not None
    return Published(
        public_id=row.public_id,
        code=f"{row.number}/{row.notation}",
        issued_on=row.issued_on,
        type_name=type_name,
        subject=row.subject,
        issuer=issuer,
        signer_name=row.signer_name,
        published_at=row.published_at,
        verdict=str(report.get("indication", "")),
        signers=[str(s) for s in report.get("signers", [])],
    )


def gazette(session: Session, *, text: str = "", limit: int = 100) -> list[Published]:
    """What the e-gazette lists, newest first (anyone may read it: no principal)."""
    query = _gazette_query()
    words = text.strip()[:200]
    if words:
        like = f"%{words}%"
        query = query.where(
            RegisteredDocument.subject.ilike(like) | RegisteredDocument.notation.ilike(like)
        )
    rows = session.execute(
        query.order_by(RegisteredDocument.published_at.desc()).limit(limit)
    ).all()
    return [_published(row, type_name, issuer) for row, type_name, issuer in rows]


def gazette_entry(session: Session, public_id: str) -> Published:
    found = session.execute(
        _gazette_query().where(RegisteredDocument.public_id == public_id)
    ).first()
    if found is None:
        raise NotFound(f"published document {public_id}", vi=f"văn bản công bố {public_id}")
    row, type_name, issuer = found
    return _published(row, type_name, issuer)


def gazette_document(session: Session, public_id: str) -> bytes:
    """The published PDF (only while it is published)."""
    gazette_entry(session, public_id)
    data = session.scalar(
        select(RegisteredDocument.document).where(RegisteredDocument.public_id == public_id)
    )
    return bytes(data or b"")
