"""Suspension, restore and revocation (RFC 5280 reason codes), with a full history.

Allowed moves: good → suspended (certificateHold) → good (restore); good or suspended →
revoked. Revocation is final. Each move re-signs the certificate's OCSP answer in the same
transaction, so OCSP shows it at once; a key-compromise revocation blocks the public key.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from kyso import clock
from kyso.audit.log import Event, record
from kyso.errors import InvalidInput, InvalidTransition, NotFound
from kyso.pki.authority import Authority
from kyso.pki.ocsp import Responder
from kyso.store.models import (
    CertEventKind,
    Certificate,
    CertificateEvent,
    CertStatus,
    CompromisedKey,
    RevocationReason,
)

NOT_A_REVOCATION_REASON = {RevocationReason.CERTIFICATE_HOLD, RevocationReason.REMOVE_FROM_CRL}


def normalize_serial(serial: str) -> str:
    text = serial.strip().lower().replace(":", "").removeprefix("0x").lstrip("0")
    if not text or any(c not in "0123456789abcdef" for c in text) or len(text) > 40:
        raise NotFound(f"certificate {serial}", vi=f"chứng thư {serial}")
    return text


def load_for_update(session: Session, serial: str) -> Certificate:
    cert = session.execute(
        select(Certificate).where(Certificate.serial == normalize_serial(serial)).with_for_update()
    ).scalar_one_or_none()
    if cert is None:
        raise NotFound(f"certificate {serial}", vi=f"chứng thư {serial}")
    return cert


def _change(
    session: Session,
    authority: Authority,
    cert: Certificate,
    kind: CertEventKind,
    actor: str,
    reason: RevocationReason | None,
    note: str | None,
    at: datetime,
) -> Certificate:
    cert.status_changed_at = at
    session.add(
        CertificateEvent(
            certificate_id=cert.id, at=at, kind=kind, reason=reason, actor=actor, note=note
        )
    )
    record(
        session,
        Event(
            actor,
            f"certificate.{kind.value}",
            cert.serial,
            {"reason": reason.value if reason else None, "note": note},
        ),
    )
    session.flush()
    Responder(authority).presign(session, cert)
    return cert


def suspend(
    session: Session, authority: Authority, serial: str, actor: str, note: str | None = None
) -> Certificate:
    cert = load_for_update(session, serial)
    if cert.status is not CertStatus.GOOD:
        raise InvalidTransition(
            f"{cert.serial} is {cert.status.value}",
            vi=f"{cert.serial} đang ở trạng thái {cert.status.value}",
        )
    now = clock.now()
    cert.status, cert.reason, cert.revoked_at = (
        CertStatus.SUSPENDED,
        RevocationReason.CERTIFICATE_HOLD,
        now,
    )
    return _change(
        session,
        authority,
        cert,
        CertEventKind.SUSPENDED,
        actor,
        RevocationReason.CERTIFICATE_HOLD,
        note,
        now,
    )


def restore(
    session: Session, authority: Authority, serial: str, actor: str, note: str | None = None
) -> Certificate:
    cert = load_for_update(session, serial)
    if cert.status is not CertStatus.SUSPENDED:
        raise InvalidTransition(
            f"{cert.serial} is {cert.status.value}, not suspended",
            vi=f"{cert.serial} không ở trạng thái tạm dừng",
        )
    cert.status, cert.reason, cert.revoked_at = CertStatus.GOOD, None, None
    return _change(session, authority, cert, CertEventKind.RESTORED, actor, None, note, clock.now())


def revoke(
    session: Session,
    authority: Authority,
    serial: str,
    reason: RevocationReason,
    actor: str,
    note: str | None = None,
) -> Certificate:
    if reason in NOT_A_REVOCATION_REASON:
        raise InvalidInput(
            f"'{reason.value}' is not a revocation reason (use suspend/restore)",
            vi=f"'{reason.value}' không phải lý do thu hồi (dùng tạm dừng/khôi phục)",
        )
    cert = load_for_update(session, serial)
    if cert.status is CertStatus.REVOKED:
        raise InvalidTransition(
            f"{cert.serial} is already revoked; revocation is final",
            vi=f"{cert.serial} đã bị thu hồi; thu hồi là vĩnh viễn",
        )
    now = clock.now()
    cert.status, cert.reason, cert.revoked_at = CertStatus.REVOKED, reason, now
    if (
        reason is RevocationReason.KEY_COMPROMISE
        and session.get(CompromisedKey, cert.spki_sha256) is None
    ):
        session.add(
            CompromisedKey(spki_sha256=cert.spki_sha256, certificate_serial=cert.serial, at=now)
        )
    return _change(session, authority, cert, CertEventKind.REVOKED, actor, reason, note, now)
