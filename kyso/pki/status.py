"""Suspension, restore and revocation (RFC 5280 reason codes), with a full history.

Allowed moves: good → suspended (certificateHold) → good (restore); good or suspended →
revoked. Revocation is final. Each move re-signs the certificate's OCSP answer in the same
transaction, so OCSP shows it at once; a key-compromise revocation blocks the public key.

The CA's own certificates (root, issuing CA, OCSP responder, TSA, and any other identity kyso
signs with) are refused here, whoever asks: suspending the issuing CA would make every
subscriber's signature fail, so no page, API token, request form or lost-token report may do
it. Only ``kyso ca revoke`` on the server passes ``ca_own_confirmed`` with the serial the
operator typed.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from kyso import clock
from kyso.audit.log import Event, record
from kyso.errors import Forbidden, InvalidInput, InvalidTransition, NotFound
from kyso.observability import metrics
from kyso.pki import crl
from kyso.pki.authority import Authority
from kyso.pki.ocsp import Responder
from kyso.store.models import (
    CaIdentity,
    CertEventKind,
    Certificate,
    CertificateEvent,
    CertStatus,
    CompromisedKey,
    Profile,
    RevocationReason,
)

NOT_A_REVOCATION_REASON = {RevocationReason.CERTIFICATE_HOLD, RevocationReason.REMOVE_FROM_CRL}


def normalize_serial(serial: str) -> str:
    text = serial.strip().lower().replace(":", "").removeprefix("0x").lstrip("0")
    if not text or any(c not in "0123456789abcdef" for c in text) or len(text) > 40:
        raise NotFound(f"certificate {serial}", vi=f"chứng thư {serial}")
    return text


CA_PROFILES = frozenset({Profile.ROOT_CA, Profile.SUB_CA, Profile.OCSP, Profile.TSA, Profile.AUDIT})


class CaCertificateProtected(Forbidden):
    code = "ca_certificate_protected"
    message_vi = (
        "Chứng thư của chính CA (CA gốc, CA cấp phát, OCSP, TSA) không thể tạm dừng hoặc thu hồi "
        "qua trang web hay API; chỉ quản trị viên máy chủ làm được bằng lệnh `kyso ca revoke`."
    )
    message_en = (
        "The CA's own certificates (root, issuing CA, OCSP responder, TSA) cannot be suspended "
        "or revoked through the pages or the API; only the server's operator can, with "
        "`kyso ca revoke`."
    )


def is_ca_own(session: Session, cert: Certificate) -> bool:
    """Whether ``cert`` is one kyso itself signs with (by profile, or listed as an identity)."""
    if cert.profile in CA_PROFILES:
        return True
    return (
        session.execute(select(CaIdentity.id).where(CaIdentity.serial == cert.serial)).first()
        is not None
    )


def load_for_update(
    session: Session, serial: str, *, ca_own_confirmed: str | None = None
) -> Certificate:
    """The certificate, locked for a status change; the CA's own only when the operator
    confirmed that very serial (``kyso ca revoke``)."""
    cert = session.execute(
        select(Certificate).where(Certificate.serial == normalize_serial(serial)).with_for_update()
    ).scalar_one_or_none()
    if cert is None:
        raise NotFound(f"certificate {serial}", vi=f"chứng thư {serial}")
    if is_ca_own(session, cert) and (
        ca_own_confirmed is None or normalize_serial(ca_own_confirmed) != cert.serial
    ):
        raise CaCertificateProtected(cert.serial)
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
    metrics.status_changed(session, kind.value)
    session.flush()
    crl.next_number(session, crl.status_counter(cert.issuer_id))  # stored CRLs are now stale
    Responder(authority).presign(session, cert)
    return cert


def suspend(
    session: Session,
    authority: Authority,
    serial: str,
    actor: str,
    note: str | None = None,
    *,
    ca_own_confirmed: str | None = None,
) -> Certificate:
    cert = load_for_update(session, serial, ca_own_confirmed=ca_own_confirmed)
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
    session: Session,
    authority: Authority,
    serial: str,
    actor: str,
    note: str | None = None,
    *,
    ca_own_confirmed: str | None = None,
) -> Certificate:
    cert = load_for_update(session, serial, ca_own_confirmed=ca_own_confirmed)
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
    *,
    ca_own_confirmed: str | None = None,
) -> Certificate:
    if reason in NOT_A_REVOCATION_REASON:
        raise InvalidInput(
            f"'{reason.value}' is not a revocation reason (use suspend/restore)",
            vi=f"'{reason.value}' không phải lý do thu hồi (dùng tạm dừng/khôi phục)",
        )
    cert = load_for_update(session, serial, ca_own_confirmed=ca_own_confirmed)
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
