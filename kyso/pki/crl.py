"""Full and delta CRLs (RFC 5280 §5), built in one pass.

``cryptography``'s builder is quadratic in the number of entries (100,000 entries took
~6.5 s, PERFORMANCE.md), so the revoked list is encoded directly as DER here and the rest of
the TBS is assembled with asn1crypto; the issuer's key store signs it. Full and delta CRLs
share one increasing CRL number sequence per issuer (RFC 5280 §5.2.3). Suspended
certificates are listed with certificateHold; a delta CRL lists restored ones with
removeFromCRL (§5.3.1).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import NamedTuple

from asn1crypto import crl as asn1_crl
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from sqlalchemy import DateTime, String, select, type_coerce
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from kyso import clock
from kyso.audit.log import Event, record
from kyso.pki.authority import Authority, Identity
from kyso.pki.x509sign import signature_algorithm_name
from kyso.store.models import Certificate, CertStatus, Counter, Crl, RevocationReason

_REASON_EXT_PREFIX = bytes.fromhex("300c300a0603551d1504030a01")  # crlEntryExtensions{reasonCode}


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _tlv(tag: int, body: bytes) -> bytes:
    return bytes([tag]) + _der_length(len(body)) + body


def _der_time(moment: datetime) -> bytes:
    # RFC 5280 §5.1.2.4: UTCTime through 2049, GeneralizedTime from 2050.
    if moment.year < 2050:
        return _tlv(0x17, moment.strftime("%y%m%d%H%M%SZ").encode())
    return _tlv(0x18, moment.strftime("%Y%m%d%H%M%SZ").encode())


# The reasonCode entry extension, precomputed per reason (§5.3.1: omitted for unspecified).
_REASON_DER: dict[RevocationReason, bytes] = {
    reason: _REASON_EXT_PREFIX + bytes([reason.code])
    for reason in RevocationReason
    if reason is not RevocationReason.UNSPECIFIED
}


def _revoked_certificates(rows: Iterable[tuple[str, datetime, RevocationReason | None]]) -> bytes:
    """DER of revokedCertificates, one pass; revocation times repeat, so each is encoded once."""
    times: dict[datetime, bytes] = {}
    parts = []
    for serial_hex, revoked_at, reason in rows:
        encoded_time = times.get(revoked_at)
        if encoded_time is None:
            encoded_time = times[revoked_at] = _der_time(revoked_at)
        serial = int(serial_hex, 16)
        serial_bytes = serial.to_bytes(serial.bit_length() // 8 + 1, "big")  # sign bit clear
        body = b"\x02" + _der_length(len(serial_bytes)) + serial_bytes + encoded_time
        if reason is not None:
            body += _REASON_DER.get(reason, b"")
        parts.append(b"\x30" + _der_length(len(body)) + body)
    return _tlv(0x30, b"".join(parts))


_REASONS = {reason.value: reason for reason in RevocationReason}


class Entry(NamedTuple):
    serial: str
    revoked_at: datetime
    reason: RevocationReason | None


def next_number(session: Session, name: str) -> int:
    """Increment a named counter under a row lock (SELECT … FOR UPDATE on PostgreSQL).

    The first increment inserts the row; concurrent first increments on PostgreSQL all find
    no row, one insert wins and the others, after waiting for it, lock the winner's row."""
    query = select(Counter).where(Counter.name == name).with_for_update()
    counter = session.execute(query).scalar_one_or_none()
    if counter is None:
        try:
            with session.begin_nested():
                session.add(Counter(name=name, value=0))
        except IntegrityError:
            pass
        counter = session.execute(query.execution_options(populate_existing=True)).scalar_one()
    counter.value += 1
    session.flush()
    return counter.value


def status_counter(issuer_id: int) -> str:
    """The counter of status changes of an issuer's certificates (kyso.pki.status bumps it
    in the change's transaction; a stored CRL remembers the value it saw)."""
    return f"status:{issuer_id}"


def _changes_seen(session: Session, issuer_id: int) -> int:
    value = session.execute(
        select(Counter.value).where(Counter.name == status_counter(issuer_id))
    ).scalar_one_or_none()
    return int(value or 0)


def build_crl_der(
    issuer: Identity,
    entries: list[Entry],
    *,
    number: int,
    this_update: datetime,
    next_update: datetime,
    base_number: int | None = None,
    freshest_url: str | None = None,
) -> bytes:
    """Encode and sign one CRL. ``base_number`` makes it a delta CRL."""
    hash_algorithm = issuer.key.algorithm.default_hash()
    extensions: list[dict[str, object]] = [
        {
            "extn_id": "authority_key_identifier",
            "critical": False,
            "extn_value": {"key_identifier": issuer.key_identifier},
        },
        {"extn_id": "crl_number", "critical": False, "extn_value": number},
    ]
    if base_number is not None:
        extensions.append(
            {"extn_id": "delta_crl_indicator", "critical": True, "extn_value": base_number}
        )
    elif freshest_url:
        freshest = x509.FreshestCRL(
            [
                x509.DistributionPoint(
                    [x509.UniformResourceIdentifier(freshest_url)], None, None, None
                )
            ]
        )
        extensions.append(
            {
                "extn_id": "freshest_crl",
                "critical": False,
                "extn_value": asn1_x509.CRLDistributionPoints.load(freshest.public_bytes()),
            }
        )
    tbs_fields: dict[str, object] = {
        "version": "v2",
        "signature": {"algorithm": signature_algorithm_name(issuer.key, hash_algorithm)},
        "issuer": issuer.asn1.subject,
        "this_update": _time(this_update),
        "next_update": _time(next_update),
        "crl_extensions": extensions,
    }
    if entries:
        revoked = _revoked_certificates((e.serial, e.revoked_at, e.reason) for e in entries)
        tbs_fields["revoked_certificates"] = asn1_crl.RevokedCertificates.load(revoked)
    tbs = asn1_crl.TbsCertList(tbs_fields)
    tbs_der = tbs.dump()
    signed = asn1_crl.CertificateList(
        {
            "tbs_cert_list": tbs,
            "signature_algorithm": {
                "algorithm": signature_algorithm_name(issuer.key, hash_algorithm)
            },
            "signature": issuer.key.sign(tbs_der, hash_algorithm),
        }
    )
    return signed.dump()


def _time(moment: datetime) -> dict[str, datetime]:
    return {"utc_time": moment} if moment.year < 2050 else {"general_time": moment}


def generate(
    session: Session,
    authority: Authority,
    issuer: Identity,
    *,
    delta: bool = False,
    actor: str = "system",
) -> Crl:
    """Make, sign and store a new CRL for ``issuer`` in the caller's transaction."""
    settings = authority.settings
    now = clock.now()
    base: Crl | None = None
    if delta:
        base = latest(session, issuer.id, delta=False)
        if base is None:
            base = generate(session, authority, issuer, delta=False, actor=actor)
    number = next_number(session, f"crl:{issuer.id}")
    # Plain column types: 100,000 rows through the UTC/enum decorators cost more than signing.
    revoked_at = type_coerce(Certificate.revoked_at, DateTime())
    changed_at = type_coerce(Certificate.status_changed_at, DateTime())
    query = select(
        Certificate.serial,
        revoked_at,
        changed_at,
        type_coerce(Certificate.reason, String()),
        type_coerce(Certificate.status, String()),
    ).where(Certificate.issuer_id == issuer.id)
    if base is not None:
        query = query.where(Certificate.status_changed_at >= base.this_update)
    else:
        query = query.where(Certificate.status != CertStatus.GOOD, Certificate.not_after > now)
    entries: list[Entry] = []
    good, held = CertStatus.GOOD.value, CertStatus.SUSPENDED.value
    remove, hold = RevocationReason.REMOVE_FROM_CRL, RevocationReason.CERTIFICATE_HOLD
    rows = session.connection().execute(query.order_by(Certificate.id))  # Core: no ORM rows
    for serial, revoked, changed, reason, state in rows:
        if state == good:
            entries.append(Entry(serial, changed, remove))
        elif state == held:
            entries.append(Entry(serial, revoked, hold))
        else:
            entries.append(Entry(serial, revoked, _REASONS.get(reason)))
    hours = settings.delta_crl_next_update_hours if delta else settings.crl_next_update_hours
    next_update = now + timedelta(hours=hours)
    der = build_crl_der(
        issuer,
        entries,
        number=number,
        this_update=now,
        next_update=next_update,
        base_number=base.number if base is not None else None,
        freshest_url=authority.crl_url(issuer.id, delta=True)
        if issuer.role.value == "issuing"
        else None,
    )
    crl = Crl(
        events_seen=_changes_seen(session, issuer.id),
        issuer_id=issuer.id,
        number=number,
        is_delta=delta,
        base_number=base.number if base else None,
        this_update=now,
        next_update=next_update,
        entries=len(entries),
        der=der,
    )
    session.add(crl)
    record(
        session,
        Event(
            actor,
            "crl.delta_issued" if delta else "crl.issued",
            f"{issuer.id}:{number}",
            {"entries": len(entries)},
        ),
    )
    session.flush()
    return crl


def latest(session: Session, issuer_id: int, *, delta: bool) -> Crl | None:
    return session.execute(
        select(Crl)
        .where(Crl.issuer_id == issuer_id, Crl.is_delta.is_(delta))
        .order_by(Crl.number.desc())
        .limit(1)
    ).scalar_one_or_none()


def current(authority: Authority, issuer: Identity, *, delta: bool = False) -> bytes:
    """The CRL to publish: the newest stored one while it still tells the truth.

    A stored CRL is reused while no status changed after it was made and it is less than
    half-way to its nextUpdate; otherwise a new one is made, so a revocation is published at
    the next download rather than at the next scheduled run.
    """
    with authority.db.read() as session:
        stored = latest(session, issuer.id, delta=delta)
        changes = _changes_seen(session, issuer.id)
    now = clock.now()
    if stored is not None:
        half = stored.this_update + (stored.next_update - stored.this_update) / 2
        if now < half and stored.events_seen == changes:
            return stored.der
    with authority.db.session() as session:
        return generate(session, authority, issuer, delta=delta).der
