"""Keeping documents in the archive, checking the whole archive, exporting record files.

:func:`keep` is called where documents come into being for good: a unit issues one
(:mod:`kyso.exchange.register`), sends or receives a package (:mod:`kyso.exchange.service`).
Each is kept once per source, byte for byte (the signed PDF, the signed edXML package), with
the fields of the archiving rules. :func:`check` re-reads every kept file and compares it
with its SHA-256, one file at a time (memory does not grow with the archive).
:func:`export` writes a record file (hồ sơ) as a ZIP: the files, ``manifest.json`` with each
file's fields and SHA-256, and ``SHA256SUMS``, which ``sha256sum -c SHA256SUMS`` checks on
any machine, without kyso.
"""

from __future__ import annotations

import io
import json
import secrets
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import ColumnElement, exists, literal, select, true
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import InstrumentedAttribute, Session

from kyso import clock
from kyso.archive.blobs import BlobStore
from kyso.audit.log import Event, record
from kyso.errors import InvalidInput, KysoError, NotFound
from kyso.registry.access import Action, Principal, require, visible
from kyso.store.models import (
    ArchiveRecord,
    DocumentType,
    ExchangeDirection,
    ExchangeMessage,
    ExchangeState,
    Organization,
    RegisteredDocument,
)

if TYPE_CHECKING:
    from kyso.context import Context

# Retention periods (Circular 10/2022/TT-BNV, in outline): what rules and decides is kept
# forever, plans and reports twenty years, the rest ten. An archivist can change a record's.
PERMANENT = "vĩnh viễn"
RETENTION = {
    "Nghị quyết": PERMANENT,
    "Quyết định": PERMANENT,
    "Chỉ thị": PERMANENT,
    "Quy chế": PERMANENT,
    "Quy định": PERMANENT,
    "Đề án": PERMANENT,
    "Kế hoạch": "20 năm",
    "Báo cáo": "20 năm",
    "Chương trình": "20 năm",
    "Hợp đồng": "20 năm",
}
DEFAULT_RETENTION = "10 năm"
EXPORT_MAX = 500


def store(ctx: Context) -> BlobStore:
    return BlobStore(ctx.settings.archive_dir)


@dataclass(frozen=True)
class Fields:
    """The archiving rules' description of one document."""

    code: str
    issuer: str
    subject: str
    type_name: str
    document_date: date | None = None
    pages: int | None = None


def keep(
    ctx: Context,
    *,
    unit_id: int,
    kind: str,
    data: bytes,
    filename: str,
    media_type: str,
    fields: Fields,
    source: str,
) -> str:
    """Keep ``data`` (once per ``source``); the record's public id."""
    digest = store(ctx).put(data)
    try:
        with ctx.db.session() as session:
            row = ArchiveRecord(
                public_id=secrets.token_urlsafe(16),
                organization_id=unit_id,
                kind=kind,
                sha256=digest,
                size=len(data),
                media_type=media_type[:100],
                filename=filename[:200],
                code=fields.code[:100],
                document_date=fields.document_date,
                issuer=fields.issuer[:300],
                subject=fields.subject[:500],
                type_name=fields.type_name[:100],
                pages=fields.pages,
                retention=RETENTION.get(fields.type_name, DEFAULT_RETENTION),
                source=source[:100],
                created_at=clock.now(),
            )
            session.add(row)
            session.flush()
            return row.public_id
    except IntegrityError:  # kept before
        with ctx.db.read() as session:
            return session.scalars(
                select(ArchiveRecord.public_id).where(
                    ArchiveRecord.source == source[:100], ArchiveRecord.sha256 == digest
                )
            ).one()


def pdf_pages(data: bytes) -> int | None:
    """The page count the archiving rules ask for (None when the file cannot say)."""
    from pyhanko.pdf_utils.reader import PdfFileReader

    try:
        return int(PdfFileReader(io.BytesIO(data), strict=False).root["/Pages"]["/Count"])
    except Exception:  # pyHanko's parse errors have no common type; the count is optional
        return None


# -- catching up -------------------------------------------------------------------------------
def _not_kept(prefix: str, public_id: InstrumentedAttribute[str]) -> ColumnElement[bool]:
    return ~exists().where(ArchiveRecord.source == literal(prefix) + public_id)


def catch_up(ctx: Context, limit: int = 200, only: Sequence[str] | None = None) -> int:
    """Archive what was issued, sent or received and is not in the archive yet (``only``:
    just these register entries and messages, by public id, right after they were made;
    without it, everything, as the server's loop does: a file that could not be written
    then — a full disk — is kept later, never forgotten). Returns how many were kept."""
    kept = 0
    picked_register = RegisteredDocument.public_id.in_(only) if only is not None else true()
    picked_message = ExchangeMessage.public_id.in_(only) if only is not None else true()
    with ctx.db.read() as session:
        issued = session.execute(
            select(RegisteredDocument, DocumentType.name, Organization.name)
            .join(DocumentType, DocumentType.id == RegisteredDocument.type_id)
            .join(Organization, Organization.id == RegisteredDocument.organization_id)
            .where(picked_register, _not_kept("register:", RegisteredDocument.public_id))
            .limit(limit)
        ).all()
        for found in issued:
            session.expunge(found[0])
        messages = session.execute(
            select(ExchangeMessage, Organization.name)
            .join(Organization, Organization.id == ExchangeMessage.organization_id)
            .where(
                picked_message,
                ExchangeMessage.business == 0,
                ExchangeMessage.state != ExchangeState.REFUSED,
                _not_kept("exchange:", ExchangeMessage.public_id),
            )
            .limit(limit)
        ).all()
        marked = session.execute(
            select(ExchangeMessage, Organization.name)
            .join(Organization, Organization.id == ExchangeMessage.organization_id)
            .where(
                picked_message,
                ExchangeMessage.marked_document.is_not(None),
                _not_kept("den:", ExchangeMessage.public_id),
            )
            .limit(limit)
        ).all()
    for row, type_name, unit_name in issued:
        with ctx.db.read() as session:
            data = session.scalar(
                select(RegisteredDocument.document).where(RegisteredDocument.id == row.id)
            )
        if data is None:
            continue
        keep(
            ctx,
            unit_id=row.organization_id,
            kind="issued",
            data=bytes(data),
            filename=f"{row.number}-{row.notation}.pdf",
            media_type="application/pdf",
            fields=Fields(
                code=f"{row.number}/{row.notation}",
                issuer=unit_name,
                subject=row.subject,
                type_name=type_name,
                document_date=row.issued_on,
                pages=pdf_pages(bytes(data)),
            ),
            source=f"register:{row.public_id}",
        )
        kept += 1
    work = [(m, name, False) for m, name in messages] + [(m, name, True) for m, name in marked]
    for message, unit_name, den in work:
        with ctx.db.read() as session:
            column = ExchangeMessage.marked_document if den else ExchangeMessage.package
            data = session.scalar(select(column).where(ExchangeMessage.id == message.id))
        if data is None:
            continue
        outgoing = message.direction is ExchangeDirection.OUT
        keep(
            ctx,
            unit_id=message.organization_id,
            kind="sent" if outgoing else "received",
            data=bytes(data),
            filename=f"{message.code.replace('/', '-')}{'-den.pdf' if den else '.xml'}",
            media_type="application/pdf" if den else "application/xml",
            fields=Fields(
                code=message.code,
                issuer=unit_name if outgoing else message.peer_name,
                subject=message.subject,
                type_name=message.type_name,
                document_date=_date_of(message.document_id),
                pages=pdf_pages(bytes(data)) if den else None,
            ),
            source=f"{'den' if den else 'exchange'}:{message.public_id}",
        )
        kept += 1
    return kept


def _date_of(document_id: str) -> date | None:
    """The date inside an edXML DocumentId (``OrganId,yyyy/MM/dd,number/notation``)."""
    from datetime import datetime

    parts = document_id.split(",")
    try:
        return datetime.strptime(parts[1], "%Y/%m/%d").date() if len(parts) >= 3 else None
    except ValueError:
        return None


def kept_after(ctx: Context, public_ids: Sequence[str]) -> None:
    """:func:`catch_up` of the documents just made (their public ids); a failure (a full
    disk) is logged and left to the server's loop, never the clerk's problem."""
    import logging

    try:
        catch_up(ctx, only=list(public_ids))
    except Exception:
        logging.getLogger("kyso.archive").exception("archiving failed; the loop will retry")


# -- archival time-stamps --------------------------------------------------------------------------
RENEW_BEFORE = timedelta(days=365)  # a new archival time-stamp a year before the last lapses


def timestamp_due(ctx: Context, limit: int = 20) -> int:
    """Give archived PDFs their archival time-stamp (PAdES B-LTA: the signatures' validation
    data and a document time-stamp over all), and a new one over the chain a year before
    the last one's TSA certificate lapses, so they stay provable after the signers' (and
    the TSA's) certificates expire; the server's loop calls this. The file before is kept
    too (``previous_sha256``). Returns how many were time-stamped."""
    import logging

    from kyso.signing.pades import archive_timestamp
    from kyso.trust import trust_context

    with ctx.db.read() as session:
        due = list(
            session.execute(
                select(ArchiveRecord.id, ArchiveRecord.sha256)
                .where(
                    ArchiveRecord.media_type == "application/pdf",
                    ArchiveRecord.timestamped_until.is_(None)
                    | (ArchiveRecord.timestamped_until < clock.now() + RENEW_BEFORE),
                )
                .order_by(ArchiveRecord.id)
                .limit(limit)
            ).all()
        )
    if not due:
        return 0
    blobs = store(ctx)
    trust = trust_context(ctx)
    from kyso.store.models import IdentityRole

    until = ctx.authority.identity(IdentityRole.TSA).certificate.not_valid_after_utc
    done = 0
    for row_id, digest in due:
        try:
            stamped = archive_timestamp(blobs.get(digest), trust)
        except KysoError as exc:  # a damaged file: said, tried again a day later
            logging.getLogger("kyso.archive").warning(
                "no archival time-stamp for %s: %s", digest, exc.message("en")
            )
            with ctx.db.session() as session:
                row = session.get(ArchiveRecord, row_id)
                if row is not None:
                    row.timestamped_until = clock.now() - RENEW_BEFORE + timedelta(days=1)
            continue
        new = blobs.put(stamped)
        with ctx.db.session() as session:
            row = session.get(ArchiveRecord, row_id)
            if row is None or row.sha256 != digest:
                continue
            row.previous_sha256, row.sha256, row.size = digest, new, len(stamped)
            row.timestamped_until = until
            record(
                session,
                Event("system:archive", "archive.timestamped", row.public_id, {"sha256": new}),
            )
        done += 1
    return done


# -- reading ------------------------------------------------------------------------------------
def records(principal: Principal, session: Session, *, limit: int = 500) -> list[ArchiveRecord]:
    require(principal, Action.DOCUMENT_EXCHANGE)
    return list(
        session.scalars(
            select(ArchiveRecord)
            .join(Organization, Organization.id == ArchiveRecord.organization_id)
            .where(visible(principal, Organization.path))
            .order_by(ArchiveRecord.id.desc())
            .limit(limit)
        )
    )


# -- checking the whole archive -----------------------------------------------------------------
@dataclass
class Check:
    """What :func:`check` found."""

    checked: int = 0
    bytes: int = 0
    missing: list[str] = field(default_factory=list)  # records whose file is gone
    changed: list[str] = field(default_factory=list)  # records whose file no longer matches

    @property
    def intact(self) -> bool:
        return not self.missing and not self.changed


def check(
    ctx: Context, *, batch: int = 500, progress: Callable[[int, int], None] | None = None
) -> Check:
    """Re-read every kept file and compare it with its SHA-256 (the whole archive, batch by
    batch, one file in memory at a time); ``progress(done, total)`` after each batch. The
    result is an audit entry; a damaged archive is also logged as an error."""
    import logging

    from sqlalchemy import func

    blobs = store(ctx)
    found = Check()
    with ctx.db.read() as session:
        total = int(session.scalar(select(func.count()).select_from(ArchiveRecord)) or 0)
    last = 0
    while True:
        with ctx.db.read() as session:
            rows = session.execute(
                select(ArchiveRecord.id, ArchiveRecord.public_id, ArchiveRecord.sha256)
                .where(ArchiveRecord.id > last)
                .order_by(ArchiveRecord.id)
                .limit(batch)
            ).all()
        if not rows:
            break
        for row_id, public_id, digest in rows:
            last = row_id
            now = blobs.digest_of(digest)
            found.checked += 1
            if now is None:
                found.missing.append(public_id)
            elif now[0] != digest:
                found.changed.append(public_id)
            else:
                found.bytes += now[1]
        if progress is not None:
            progress(found.checked, total)
    with ctx.db.session() as session:
        record(
            session,
            Event(
                "system:archive",
                "archive.checked",
                None,
                {
                    "checked": found.checked,
                    "bytes": found.bytes,
                    "missing": found.missing[:50],
                    "changed": found.changed[:50],
                },
            ),
        )
    if not found.intact:
        logging.getLogger("kyso.archive").error(
            "archive check: %d missing, %d changed", len(found.missing), len(found.changed)
        )
    return found


# -- record files ---------------------------------------------------------------------------------
def export(ctx: Context, principal: Principal, public_ids: Sequence[str], title: str) -> bytes:
    """A record file (hồ sơ) of the principal's records as a ZIP an archivist checks with
    ``sha256sum -c SHA256SUMS``, reading ``manifest.json`` for what each file is."""
    ids = list(dict.fromkeys(public_ids))
    if not ids or len(ids) > EXPORT_MAX:
        raise InvalidInput(
            f"choose from 1 to {EXPORT_MAX} records", vi=f"hãy chọn từ 1 đến {EXPORT_MAX} văn bản"
        )
    require(principal, Action.DOCUMENT_EXCHANGE)
    with ctx.db.read() as session:
        rows = list(
            session.scalars(
                select(ArchiveRecord)
                .join(Organization, Organization.id == ArchiveRecord.organization_id)
                .where(ArchiveRecord.public_id.in_(ids), visible(principal, Organization.path))
                .order_by(ArchiveRecord.id)
            )
        )
        for row in rows:
            session.expunge(row)
    if len(rows) != len(ids):
        raise NotFound("archive records", vi="văn bản lưu trữ")
    blobs = store(ctx)
    out = io.BytesIO()
    sums, manifest = [], []
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for index, row in enumerate(rows, 1):
            name = f"files/{index:04d}-{_safe(row.filename)}"
            archive.writestr(name, blobs.get(row.sha256))
            sums.append(f"{row.sha256}  {name}")
            manifest.append(
                {
                    "file": name,
                    "sha256": row.sha256,
                    "size": row.size,
                    "media_type": row.media_type,
                    "kind": row.kind,
                    "code": row.code,
                    "date": row.document_date.isoformat() if row.document_date else None,
                    "issuer": row.issuer,
                    "subject": row.subject,
                    "type": row.type_name,
                    "pages": row.pages,
                    "retention": row.retention,
                    "archived_at": row.created_at.isoformat(),
                }
            )
        archive.writestr("SHA256SUMS", "\n".join(sums) + "\n")
        archive.writestr(
            "manifest.json",
            json.dumps(
                {"title": title, "made_at": clock.now().isoformat(), "files": manifest},
                ensure_ascii=False,
                indent=2,
            ),
        )
    with ctx.db.session() as session:
        record(
            session, Event(principal.actor, "archive.exported", title[:200], {"records": ids[:100]})
        )
    return out.getvalue()


def _safe(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_." else "-" for c in name)[:100]
    return cleaned or "document"
