"""OCSP responder (RFC 6960) answering from pre-signed responses (RFC 5019).

A response is signed when a certificate's status changes (in the same transaction) and
again by the scheduled refresh once it is half-way to its nextUpdate, so an ordinary answer
is one indexed read and costs no signature. Requests that need a fresh signature — a nonce,
a SHA-256 CertID, several certificates at once, a serial we never issued — are signed on
the spot. Malformed requests get ``malformedRequest``, never an HTTP error.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from asn1crypto import core, ocsp
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.x509 import ocsp as x509_ocsp
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from kyso import clock
from kyso.pki.authority import Authority, Identity
from kyso.pki.x509sign import signature_algorithm_name
from kyso.store.models import Certificate, CertStatus, IdentityRole, OcspResponse, RevocationReason

MAX_REQUEST_BYTES = 16 * 1024
_HASHES = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha384": hashlib.sha384,
    "sha512": hashlib.sha512,
}


@dataclass(frozen=True)
class Answer:
    der: bytes
    produced_at: datetime | None = None
    next_update: datetime | None = None
    cacheable: bool = False  # true for pre-signed answers to nonce-less GETs


def error_response(status: str) -> bytes:
    """An unsigned error answer: malformed_request, internal_error, try_later, unauthorized."""
    return ocsp.OCSPResponse({"response_status": status}).dump()


MALFORMED = error_response("malformed_request")
UNAUTHORIZED = error_response("unauthorized")


@dataclass(frozen=True)
class _Status:
    status: CertStatus | None  # None: unknown
    revoked_at: datetime | None = None
    reason: RevocationReason | None = None


@dataclass(frozen=True)
class Query:
    """An OCSP request as :meth:`Responder.read` found it: the issuer it asks (one per
    response), each CertID's hash algorithm and serial, and its nonce."""

    issuer: Identity
    items: tuple[tuple[str, int], ...]
    nonce: bytes | None = None

    @property
    def presignable(self) -> int | None:
        """The serial, for RFC 5019's request (one SHA-1 CertID, no nonce): the one a
        pre-signed answer fits."""
        if self.nonce is None and len(self.items) == 1 and self.items[0][0] == "sha1":
            return self.items[0][1]
        return None


def _cert_status(status: _Status) -> ocsp.CertStatus:
    if status.status is None:
        return ocsp.CertStatus(name="unknown", value=core.Null())
    if status.status is CertStatus.GOOD:
        return ocsp.CertStatus(name="good", value=core.Null())
    info: dict[str, object] = {"revocation_time": status.revoked_at}
    reason = (
        RevocationReason.CERTIFICATE_HOLD
        if status.status is CertStatus.SUSPENDED
        else status.reason
    )
    if reason is not None and reason is not RevocationReason.UNSPECIFIED:
        info["revocation_reason"] = reason.value.replace("-", "_")
    return ocsp.CertStatus(name="revoked", value=info)


def _plain_request(der: bytes) -> tuple[bytes, bytes, int] | None:
    """(issuerNameHash, issuerKeyHash, serial) of an RFC 5019 request — one certificate,
    SHA-1 CertID, no extensions — read by cryptography's parser, several times faster than
    asn1crypto's; anything else (or anything odd) takes the general path."""
    try:
        request = x509_ocsp.load_der_ocsp_request(der)
        if len(request.extensions) or not isinstance(request.hash_algorithm, hashes.SHA1):
            return None
        return request.issuer_name_hash, request.issuer_key_hash, request.serial_number
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return None


_TABLE = OcspResponse.__table__
_STORED = select(_TABLE.c.der, _TABLE.c.produced_at, _TABLE.c.next_update).where(
    _TABLE.c.issuer_id == bindparam("issuer_id"), _TABLE.c.serial == bindparam("serial")
)


class Responder:
    def __init__(self, authority: Authority) -> None:
        self.authority = authority

    @property
    def validity(self) -> timedelta:
        return timedelta(hours=self.authority.settings.ocsp_validity_hours)

    def _sign(
        self,
        issuer: Identity,
        items: Sequence[tuple[str, int, _Status]],
        nonce: bytes | None = None,
    ) -> tuple[bytes, datetime, datetime]:
        """Sign one BasicOCSPResponse; items are (CertID hash name, serial, status).

        RFC 6960 §4.2.2.2: the response is signed by the CA that issued the certificate or by
        a responder that CA authorised. kyso's delegated responder is the issuing CA's, so
        answers about certificates the root issued (the issuing CA's own, for one) are
        signed by the root itself."""
        signer = self._signer_for(issuer)
        now = clock.now()
        next_update = now + self.validity
        issuer_name = issuer.asn1.subject.dump()
        issuer_key = issuer.asn1.public_key["public_key"].contents[1:]  # BIT STRING bytes
        responses = []
        for hash_name, serial, status in items:
            digest = _HASHES[hash_name]
            responses.append(
                {
                    "cert_id": {
                        "hash_algorithm": {"algorithm": hash_name},
                        "issuer_name_hash": digest(issuer_name).digest(),
                        "issuer_key_hash": digest(issuer_key).digest(),
                        "serial_number": serial,
                    },
                    "cert_status": _cert_status(status),
                    "this_update": now,
                    "next_update": next_update,
                }
            )
        data: dict[str, object] = {
            "responder_id": ocsp.ResponderId(name="by_key", value=signer.key_hash_sha1),
            "produced_at": now,
            "responses": responses,
        }
        if nonce is not None:
            data["response_extensions"] = [
                {"extn_id": "nonce", "critical": False, "extn_value": nonce}
            ]
        tbs = ocsp.ResponseData(data)
        hash_algorithm = signer.key.algorithm.default_hash()
        basic = ocsp.BasicOCSPResponse(
            {
                "tbs_response_data": tbs,
                "signature_algorithm": {
                    "algorithm": signature_algorithm_name(signer.key, hash_algorithm)
                },
                "signature": signer.key.sign(tbs.dump(), hash_algorithm),
                "certs": [signer.asn1],
            }
        )
        der = ocsp.OCSPResponse(
            {
                "response_status": "successful",
                "response_bytes": {"response_type": "basic_ocsp_response", "response": basic},
            }
        ).dump()
        return der, now, next_update

    def _signer_for(self, issuer: Identity) -> Identity:
        delegated = self.authority.identity(IdentityRole.OCSP)
        if delegated.asn1.issuer == issuer.asn1.subject and (
            delegated.asn1.authority_key_identifier in (None, issuer.key_identifier)
        ):
            return delegated
        return issuer

    # -- pre-signing --------------------------------------------------------------------------
    def presign(self, session: Session, cert: Certificate) -> OcspResponse:
        """Sign and store the answer for one certificate, in the caller's transaction."""
        issuer = self.authority.identity_by_id(cert.issuer_id)
        status = _Status(cert.status, cert.revoked_at or cert.status_changed_at, cert.reason)
        der, produced, next_update = self._sign(issuer, [("sha1", int(cert.serial, 16), status)])
        row = session.get(OcspResponse, cert.id)
        if row is None:
            row = OcspResponse(
                certificate_id=cert.id,
                issuer_id=cert.issuer_id,
                serial=cert.serial,
                produced_at=produced,
                next_update=next_update,
                der=der,
            )
            session.add(row)
        else:
            row.produced_at, row.next_update, row.der = produced, next_update, der
        return row

    def refresh(self, limit: int = 10_000) -> int:
        """Sign answers that are missing or half-way to expiry; returns how many were signed."""
        stale_before = clock.now() - self.validity / 2
        with self.authority.db.session() as session:
            certs = (
                session.execute(
                    select(Certificate)
                    .outerjoin(OcspResponse, OcspResponse.certificate_id == Certificate.id)
                    .where(
                        (OcspResponse.certificate_id.is_(None))
                        | (OcspResponse.produced_at < stale_before)
                    )
                    .where(Certificate.not_after > clock.now())
                    .limit(limit)
                )
                .scalars()
                .all()
            )
            for cert in certs:
                self.presign(session, cert)
        return len(certs)

    # -- answering ----------------------------------------------------------------------------
    def respond(self, request_der: bytes) -> Answer:
        """The answer to a DER OCSPRequest, signing it now if nothing stored fits."""
        query = self.read(request_der)
        if isinstance(query, Answer):
            return query
        return self.stored(query) or self.store(query) or self.sign(query)

    def read(self, request_der: bytes) -> Answer | Query:
        """The request parsed and its issuer found, or the error answer (malformed,
        unauthorized). Parsing only: what it returns goes to :meth:`stored`, :meth:`store`
        and :meth:`sign`, so a request is read once wherever it is answered."""
        if not request_der or len(request_der) > MAX_REQUEST_BYTES:
            return Answer(MALFORMED)
        fast = _plain_request(request_der)
        if fast is not None:  # the common case: one SHA-1 CertID, no nonce
            name_hash, key_hash, serial = fast
            issuer = self._issuer_for("sha1", name_hash, key_hash)
            if issuer is None:
                return Answer(UNAUTHORIZED)
            return Query(issuer, (("sha1", serial),))
        try:
            request = ocsp.OCSPRequest.load(request_der, strict=True)
            tbs = request["tbs_request"]
            wanted = []
            for item in tbs["request_list"]:
                cert_id = item["req_cert"]
                wanted.append(
                    (
                        cert_id["hash_algorithm"]["algorithm"].native,
                        bytes(cert_id["issuer_name_hash"].native),
                        bytes(cert_id["issuer_key_hash"].native),
                        int(cert_id["serial_number"].native),
                    )
                )
            nonce = None
            for extension in tbs["request_extensions"] or []:
                if extension["extn_id"].native == "nonce":
                    nonce = extension["extn_value"].parsed.native
                    if not isinstance(nonce, bytes):
                        nonce = extension["extn_value"].contents
        except (ValueError, TypeError, KeyError, AttributeError):
            return Answer(MALFORMED)
        if not wanted or len(wanted) > 20 or (nonce is not None and not 1 <= len(nonce) <= 32):
            return Answer(MALFORMED)

        issuers = []
        for hash_name, name_hash, key_hash, _serial in wanted:
            if hash_name not in _HASHES:
                return Answer(MALFORMED)
            issuer = self._issuer_for(hash_name, name_hash, key_hash)
            if issuer is None:
                return Answer(UNAUTHORIZED)
            issuers.append(issuer)
        if len({i.id for i in issuers}) != 1:
            return Answer(MALFORMED)  # one response is signed for one issuer
        return Query(issuers[0], tuple((w[0], w[3]) for w in wanted), nonce)

    def stored(self, query: Query) -> Answer | None:
        """The pre-signed answer, when the request is RFC 5019's and the stored answer is
        less than half-way to its nextUpdate: one indexed read, no signature."""
        serial = query.presignable
        if serial is None:
            return None
        # The hot path of the responder: one Core statement, compiled once, on a pooled
        # connection (an ORM session here cost three times the rest of the answer).
        with self.authority.db.single() as conn:
            row = conn.execute(
                _STORED, {"issuer_id": query.issuer.id, "serial": format(serial, "x")}
            ).first()
        if row is not None and row.produced_at > clock.now() - self.validity / 2:
            return Answer(row.der, row.produced_at, row.next_update, cacheable=True)
        return None

    def store(self, query: Query) -> Answer | None:
        """After :meth:`stored` found nothing fresh: a certificate of ours gets its answer
        signed and stored now (the refresh loop's work, once per certificate, so no client
        can make it repeat); None for any other request, which :meth:`sign` answers."""
        serial = query.presignable
        if serial is None:
            return None
        with self.authority.db.session() as session:
            cert = session.execute(
                select(Certificate).where(
                    Certificate.issuer_id == query.issuer.id,
                    Certificate.serial == format(serial, "x"),
                )
            ).scalar_one_or_none()
            if cert is None:
                return None
            stored = self.presign(session, cert)
            return Answer(stored.der, stored.produced_at, stored.next_update, cacheable=True)

    def sign(self, query: Query) -> Answer:
        """An answer signed for this request alone (a nonce, a SHA-256 CertID, several
        certificates, a serial never issued)."""
        statuses = self._statuses(query.issuer, [serial for _hash, serial in query.items])
        der, produced, next_update = self._sign(
            query.issuer,
            [(h, serial, s) for (h, serial), s in zip(query.items, statuses, strict=True)],
            query.nonce,
        )
        return Answer(der, produced, next_update, cacheable=query.nonce is None)

    def _issuer_for(self, hash_name: str, name_hash: bytes, key_hash: bytes) -> Identity | None:
        if hash_name == "sha1":
            issuer = self.authority.issuer_by_key_hash(key_hash)
        else:
            issuer = next(
                (
                    i
                    for i in self._known_issuers()
                    if _HASHES[hash_name](i.asn1.public_key["public_key"].contents[1:]).digest()
                    == key_hash
                ),
                None,
            )
        if issuer is None or _HASHES[hash_name](issuer.asn1.subject.dump()).digest() != name_hash:
            return None
        return issuer

    def _known_issuers(self) -> list[Identity]:
        return [
            self.authority.identity(IdentityRole.ISSUING),
            self.authority.identity(IdentityRole.ROOT),
        ]

    def _statuses(self, issuer: Identity, serials: Sequence[int]) -> list[_Status]:
        with self.authority.db.read() as session:
            rows = session.execute(
                select(
                    Certificate.issuer_id,
                    Certificate.serial,
                    Certificate.status,
                    Certificate.revoked_at,
                    Certificate.status_changed_at,
                    Certificate.reason,
                ).where(Certificate.serial.in_([format(s, "x") for s in serials]))
            ).all()
        found = {(r.issuer_id, r.serial): r for r in rows}
        result = []
        for serial in serials:
            row = found.get((issuer.id, format(serial, "x")))
            if row is None:
                result.append(_Status(None))
            else:
                result.append(
                    _Status(row.status, row.revoked_at or row.status_changed_at, row.reason)
                )
        return result
