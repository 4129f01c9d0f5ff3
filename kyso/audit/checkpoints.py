"""Signed, time-stamped checkpoints of the audit chain.

The hash chain (:mod:`kyso.audit.log`) finds an entry edited in place, but not a log whose
tail was deleted with the head row set to match, nor one edited and re-chained from that
entry on, nor one emptied. A checkpoint closes those holes: it states the chain's length and
head hash at a moment, ``{"seq", "head_hash", "at"}`` as canonical JSON, signed as a detached
CAdES B-T signature (ETSI EN 319 122-1: signing-certificate-v2, and a signature time-stamp
from kyso's TSA over the signature value) by the audit-signing certificate, which kyso's
issuing CA issues for this one purpose (``kyso.pki.profiles.AUDIT_SIGNING_EKU``). No CA key
(root, issuing, OCSP, TSA) signs arbitrary data.

Each checkpoint is stored twice: in ``audit_checkpoints`` and appended to
``checkpoints.jsonl`` (mode 0600) in ``KYSO_AUDIT_CHECKPOINT_DIR``, outside the database, so
that deleting every table row is still found. :func:`verify` walks the chain, then checks it
against the newest checkpoint of either place: its signature and time-stamp must hold and
lead to kyso's own issuing CA (whose certificate must hold the key-store key), the log must
have at least ``seq`` entries and the entry at ``seq`` must have ``head_hash``; what comes
after it is reported as not yet anchored.

A checkpoint is made by the server's background loop every ``KYSO_AUDIT_CHECKPOINT_MINUTES``
when entries were added, by ``kyso audit checkpoint`` and after ``kyso init``; it extends
only a chain that still fits the previous checkpoint. Making one writes no audit entry (it
would always leave one entry unanchored).
"""

from __future__ import annotations

import base64
import enum
import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asn1crypto import cms
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from kyso import clock
from kyso.audit import log
from kyso.errors import KysoError
from kyso.pki.profiles import AUDIT_SIGNING_EKU
from kyso.store.models import AuditCheckpoint, AuditEntry, CaIdentity, IdentityRole

if TYPE_CHECKING:
    from kyso.context import Context
    from kyso.pki.tsa import TimeStampAuthority
    from kyso.signing.identity import SignerIdentity

__all__ = [
    "AUDIT_SIGNING_EKU",
    "FILE_NAME",
    "AnchoredCheck",
    "AuditLogTampered",
    "Checkpoint",
    "Problem",
    "make",
    "make_if_due",
    "sign_statement",
    "statement",
    "verify",
]

logger = logging.getLogger(__name__)

FILE_NAME = "checkpoints.jsonl"
STATEMENT_TYPE = "kyso.audit.checkpoint"
STATEMENT_VERSION = 1
# The TSA runs in the same process, on the same clock: its genTime and the statement's time
# differ by the time it takes to sign, far less than this.
TIME_TOLERANCE = timedelta(minutes=5)
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
_TAIL_BLOCK = 64 * 1024


class Problem(enum.StrEnum):
    CHAIN_BROKEN = "chain_broken"  # the hash chain itself does not fit (log.verify)
    ENTRIES_REMOVED = "entries_removed"  # fewer entries than the checkpoint anchored
    REWRITTEN = "rewritten"  # the entry at the checkpoint has another hash
    BAD_SIGNATURE = "bad_signature"  # the signature does not hold over the statement
    FOREIGN_SIGNER = "foreign_signer"  # signed, but not by kyso's audit-signing certificate
    BAD_TIMESTAMP = "bad_timestamp"  # no valid time-stamp from kyso's TSA


class AuditLogTampered(KysoError):
    code = "audit_log_tampered"
    http_status = 409
    message_vi = (
        "Nhật ký hệ thống không khớp với điểm neo gần nhất nên không tạo điểm neo mới; "
        "hãy chạy `kyso audit verify` và báo quản trị viên."
    )
    message_en = (
        "The audit log does not fit its last checkpoint, so no new checkpoint was made; "
        "run `kyso audit verify` and tell the administrator."
    )


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    head_hash: str
    at: datetime
    statement: bytes  # the canonical JSON that was signed
    signature: bytes  # detached CMS (CAdES B-T) over ``statement``
    source: str  # "database" or "file"
    defect: str | None = None  # a stored row whose columns differ from its signed statement

    @property
    def when(self) -> str:
        return clock.local(self.at).strftime("%Y-%m-%d %H:%M:%S")


@dataclass(frozen=True)
class AnchoredCheck:
    """The chain's check and its comparison with the newest checkpoint."""

    chain: log.ChainCheck
    checkpoint: Checkpoint | None
    problem: Problem | None = None
    detail: str | None = None

    @property
    def ok(self) -> bool:
        return self.chain.ok and self.problem is None

    @property
    def unanchored(self) -> int:
        """Entries after the checkpoint (all of them when there is none)."""
        if self.checkpoint is None:
            return self.chain.entries
        return max(self.chain.entries - self.checkpoint.seq, 0)

    def describe(self) -> str:
        """One English sentence for the command line and the logs."""
        cp = self.checkpoint
        if self.problem is Problem.CHAIN_BROKEN or cp is None:
            if not self.chain.ok:
                return (
                    f"audit chain broken at entry {self.chain.first_bad_seq}: {self.chain.problem}"
                )
            return f"no checkpoint yet: {_entries(self.chain.entries)} not anchored"
        if self.problem is Problem.ENTRIES_REMOVED:
            return (
                f"the log has {_entries(self.chain.entries)} but the checkpoint of {cp.when} "
                f"anchored {cp.seq}: entries were removed"
            )
        if self.problem is Problem.REWRITTEN:
            return (
                f"entry {cp.seq} no longer has the hash the checkpoint of {cp.when} signed: "
                f"the log was rewritten at or before entry {cp.seq}"
            )
        named = f"the checkpoint of {cp.when} (entry {cp.seq}, from the {cp.source})"
        if self.problem is Problem.BAD_SIGNATURE:
            return f"{named} is not validly signed: {self.detail}"
        if self.problem is Problem.FOREIGN_SIGNER:
            return (
                f"{named} is signed by {self.detail}, which is not kyso's audit-signing certificate"
            )
        if self.problem is Problem.BAD_TIMESTAMP:
            return f"{named} has no valid time-stamp from kyso's TSA: {self.detail}"
        if self.unanchored == 0:
            return f"every entry is anchored by the checkpoint of {cp.when} (entry {cp.seq})"
        return (
            f"{_entries(self.unanchored)} after the last checkpoint of {cp.when}, not yet anchored"
        )

    def as_dict(self) -> dict[str, Any]:
        cp = self.checkpoint
        return {
            "ok": self.ok,
            "entries": self.chain.entries,
            "first_bad_seq": self.chain.first_bad_seq,
            "problem": self.chain.problem,
            "anchor_problem": self.problem.value if self.problem else None,
            "checkpoint": (
                {
                    "seq": cp.seq,
                    "head_hash": cp.head_hash,
                    "at": cp.at.isoformat(),
                    "source": cp.source,
                }
                if cp
                else None
            ),
            "unanchored": self.unanchored,
            "message": self.describe(),
        }


def _entries(n: int) -> str:
    return f"{n} entry" if n == 1 else f"{n} entries"


# -- the statement and its signature ----------------------------------------------------------
def statement(seq: int, head_hash: str, at: datetime) -> bytes:
    """The canonical bytes a checkpoint signs."""
    return json.dumps(
        {
            "type": STATEMENT_TYPE,
            "version": STATEMENT_VERSION,
            "seq": seq,
            "head_hash": head_hash,
            "at": at.isoformat(),
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode("ascii")


def _read_statement(data: bytes) -> tuple[int, str, datetime]:
    """seq, head_hash and time of a statement; ValueError for anything else."""
    parsed = json.loads(data)
    if not isinstance(parsed, dict) or parsed.get("type") != STATEMENT_TYPE:
        raise ValueError("not a checkpoint statement")
    if parsed.get("version") != STATEMENT_VERSION:
        raise ValueError("unknown statement version")
    seq, head_hash = parsed.get("seq"), parsed.get("head_hash")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise ValueError("bad seq")
    if not isinstance(head_hash, str) or len(head_hash) != 64:
        raise ValueError("bad head hash")
    int(head_hash, 16)
    at = datetime.fromisoformat(str(parsed.get("at")))
    if at.tzinfo is None:
        raise ValueError("time without a zone")
    return seq, head_hash, at


def sign_statement(data: bytes, identity: SignerIdentity, tsa: TimeStampAuthority) -> bytes:
    """A detached CAdES B-T signature of ``data`` (kyso's one CAdES signer).

    The time-stamp is asked without certReq: the TSA's certificate is one of kyso's
    identities already, and leaving it (and its issuer) out halves every checkpoint (about
    3 KB instead of 6 KB, in the database and in the file)."""
    from kyso.signing.cades import Level, sign_cms
    from kyso.signing.timestamps import InProcessTimeStamper

    class WithoutTsaCertificates(InProcessTimeStamper):
        def request_cms(self, message_digest: bytes, md_algorithm: str) -> Any:
            nonce, request = super().request_cms(message_digest, md_algorithm)
            request["cert_req"] = False
            return nonce, request

    return sign_cms(data, identity, level=Level.B_T, timestamper=WithoutTsaCertificates(tsa))


def _timestamp_token(signer_info: cms.SignerInfo) -> cms.ContentInfo | None:
    for attribute in signer_info["unsigned_attrs"] or []:
        if attribute["type"].native == "signature_time_stamp_token":
            token: cms.ContentInfo = attribute["values"][0]
            return token
    return None


# -- making checkpoints -----------------------------------------------------------------------
def make(ctx: Context) -> Checkpoint | None:
    """Anchor the log as it is now; None when the newest checkpoint already covers it.

    Raises :class:`AuditLogTampered` (and anchors nothing) when the log no longer fits the
    newest checkpoint: only the entries since it are walked, so this costs little however
    long the log is.
    """
    from kyso.signing.identity import SignerIdentity  # pyHanko: loaded only to sign

    directory = ctx.settings.audit_checkpoint_dir
    in_file = _newest_in_file(directory / FILE_NAME)
    with ctx.db.read() as session:
        log.snapshot(session)
        last = session.execute(
            select(AuditEntry.seq, AuditEntry.hash).order_by(AuditEntry.seq.desc()).limit(1)
        ).first()
        anchor = _newer(_newest_in_database(session), in_file)
        if last is None and anchor is None:
            return None
        if (
            anchor is not None
            and last is not None
            and (anchor.seq, anchor.head_hash) == tuple(last)
        ):
            return None
        check = _check(ctx, session, anchor, walk_all=anchor is None)
    if not check.ok or last is None:
        raise AuditLogTampered(check.describe(), vi=check.describe())
    seq, head_hash = int(last.seq), str(last.hash)
    at = clock.now()
    signer = ctx.authority.identity(IdentityRole.AUDIT)
    body = statement(seq, head_hash, at)
    signature = sign_statement(body, SignerIdentity(signer.key, signer.certificate, []), ctx.tsa)
    signer_info = cms.ContentInfo.load(signature)["content"]["signer_infos"][0]
    token = _timestamp_token(signer_info)
    serial = format(signer.certificate.serial_number, "x")
    with ctx.db.session() as session:
        session.add(
            AuditCheckpoint(
                seq=seq,
                head_hash=head_hash,
                at=at,
                statement=body.decode("ascii"),
                signature=signature,
                timestamp_token=token.dump() if token is not None else None,
                signer_serial=serial,
            )
        )
    _append(
        directory,
        {
            "seq": seq,
            "head_hash": head_hash,
            "at": at.isoformat(),
            "statement": body.decode("ascii"),
            "signature": base64.b64encode(signature).decode("ascii"),
            "signer_serial": serial,
        },
    )
    return Checkpoint(seq, head_hash, at, body, signature, "database")


def make_if_due(ctx: Context, every: timedelta) -> Checkpoint | None:
    """For the server's loop: a checkpoint when entries were added and the newest checkpoint
    is at least ``every`` old (several workers then make one, not one each)."""
    in_file = _newest_in_file(ctx.settings.audit_checkpoint_dir / FILE_NAME)
    with ctx.db.read() as session:
        last_seq = session.execute(select(func.max(AuditEntry.seq))).scalar_one_or_none()
        anchor = _newer(_newest_in_database(session), in_file)
    if last_seq is None or (anchor is not None and anchor.seq >= last_seq):
        return None
    if anchor is not None and clock.now() - anchor.at < every:
        return None
    return make(ctx)


def _append(directory: Path, line: dict[str, Any]) -> None:
    """One line at the end of the file, created 0600 in a 0700 directory, synced to disk."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(directory / FILE_NAME, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (json.dumps(line, sort_keys=True) + "\n").encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)


# -- reading checkpoints ----------------------------------------------------------------------
def _newest_in_database(session: Session) -> Checkpoint | None:
    row = session.execute(
        select(AuditCheckpoint)
        .order_by(AuditCheckpoint.seq.desc(), AuditCheckpoint.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    if row is None:
        return None
    body = row.statement.encode("utf-8")
    try:
        seq, head_hash, at = _read_statement(body)
    except ValueError as exc:
        return Checkpoint(
            row.seq, row.head_hash, row.at, body, row.signature, "database", f"statement: {exc}"
        )
    if (seq, head_hash) != (row.seq, row.head_hash):
        return Checkpoint(
            row.seq,
            row.head_hash,
            row.at,
            body,
            row.signature,
            "database",
            "the row's entry number or hash differ from its signed statement",
        )
    return Checkpoint(seq, head_hash, at, body, row.signature, "database")


def _from_line(raw: bytes) -> Checkpoint | None:
    try:
        line = json.loads(raw)
        body = str(line["statement"]).encode("utf-8")
        signature = base64.b64decode(line["signature"], validate=True)
        seq, head_hash, at = _read_statement(body)
    except (ValueError, KeyError, TypeError):
        return None
    return Checkpoint(seq, head_hash, at, body, signature, "file")


def _newest_in_file(path: Path) -> Checkpoint | None:
    """The last readable line, read from the end (the file only grows)."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return None
    with handle:
        position = handle.seek(0, os.SEEK_END)
        partial = b""
        while position > 0:
            step = min(_TAIL_BLOCK, position)
            position -= step
            handle.seek(position)
            lines = (handle.read(step) + partial).split(b"\n")
            partial = lines.pop(0) if position > 0 else b""
            for raw in reversed(lines):
                if raw.strip() and (found := _from_line(raw)) is not None:
                    return found
            if position == 0 and partial.strip():
                return _from_line(partial)
    return None


def _newer(a: Checkpoint | None, b: Checkpoint | None) -> Checkpoint | None:
    """The newer of two checkpoints (the database's on a tie)."""
    if a is None or b is None:
        return a or b
    return b if (b.seq, b.at) > (a.seq, a.at) else a


# -- verifying --------------------------------------------------------------------------------
def verify(ctx: Context) -> AnchoredCheck:
    """Walk the whole chain, then hold it against the newest checkpoint (database or file).

    The file is read before the database snapshot is taken: a checkpoint written meanwhile
    then names only entries the snapshot holds.
    """
    in_file = _newest_in_file(ctx.settings.audit_checkpoint_dir / FILE_NAME)
    with ctx.db.read() as session:
        log.snapshot(session)
        anchor = _newer(_newest_in_database(session), in_file)
        return _check(ctx, session, anchor, walk_all=True)


def _check(
    ctx: Context, session: Session, anchor: Checkpoint | None, *, walk_all: bool
) -> AnchoredCheck:
    after = None if walk_all or anchor is None else (anchor.seq, anchor.head_hash)
    chain = log.verify(session, after=after)
    if not chain.ok:
        return AnchoredCheck(chain, anchor, Problem.CHAIN_BROKEN)
    if anchor is None:
        return AnchoredCheck(chain, None)
    refused = _signature_problem(ctx, session, anchor)
    if refused is not None:
        return AnchoredCheck(chain, anchor, *refused)
    if chain.entries < anchor.seq:
        return AnchoredCheck(chain, anchor, Problem.ENTRIES_REMOVED)
    if anchor.seq > 0:
        stored = session.execute(
            select(AuditEntry.hash).where(AuditEntry.seq == anchor.seq)
        ).scalar_one_or_none()
        if stored != anchor.head_hash:
            return AnchoredCheck(chain, anchor, Problem.REWRITTEN)
    return AnchoredCheck(chain, anchor)


def _signature_problem(
    ctx: Context, session: Session, anchor: Checkpoint
) -> tuple[Problem, str] | None:
    """Why the checkpoint's signature or time-stamp cannot be trusted, or None."""
    if anchor.defect is not None:
        return Problem.BAD_SIGNATURE, anchor.defect
    try:
        signed = cms.ContentInfo.load(anchor.signature, strict=True)
        if signed["content_type"].native != "signed_data":
            return Problem.BAD_SIGNATURE, "not a CMS SignedData"
        content = signed["content"]
        if content["encap_content_info"]["content"].native is not None:
            return Problem.BAD_SIGNATURE, "the signature is not detached"
        signer_infos = list(content["signer_infos"])
        if len(signer_infos) != 1:
            return Problem.BAD_SIGNATURE, f"{len(signer_infos)} signers instead of one"
        signer_info = signer_infos[0]
        signer = _certificate_for(signer_info, content)
        if signer is None:
            return Problem.BAD_SIGNATURE, "the signer's certificate is not in the signature"
        reason = _signer_info_problem(signer_info, signer, anchor.statement, "data")
        if reason is not None:
            return Problem.BAD_SIGNATURE, reason
        issuers = _issuing_cas(ctx, session)
        if not _issued_for(signer, issuers, AUDIT_SIGNING_EKU, anchor.at):
            return Problem.FOREIGN_SIGNER, f"'{signer.subject.rfc4514_string()}'"
        token = _timestamp_token(signer_info)
        if token is None:
            return Problem.BAD_TIMESTAMP, "the signature carries no time-stamp"
        reason = _token_problem(session, token, signer_info["signature"].native, anchor.at, issuers)
        if reason is not None:
            return Problem.BAD_TIMESTAMP, reason
    except (ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:  # bad DER
        return Problem.BAD_SIGNATURE, f"the signature cannot be read ({type(exc).__name__})"
    return None


def _certificate_for(
    signer_info: cms.SignerInfo, signed_data: cms.SignedData, extra: Sequence[bytes] = ()
) -> x509.Certificate | None:
    """The certificate the SignerInfo's sid names (issuer and serial), from the SignedData
    or ``extra``."""
    sid = signer_info["sid"]
    if sid.name != "issuer_and_serial_number":
        return None
    issuer, serial = sid.chosen["issuer"].dump(), sid.chosen["serial_number"].native
    candidates = [
        c.chosen.dump() for c in signed_data["certificates"] or [] if c.name == "certificate"
    ]
    for der in [*candidates, *extra]:
        cert = x509.load_der_x509_certificate(der)
        if cert.serial_number == serial and cert.issuer.public_bytes() == issuer:
            return cert
    return None


def _signer_info_problem(
    signer_info: cms.SignerInfo, cert: x509.Certificate, content: bytes, content_type: str
) -> str | None:
    """Check one SignerInfo (RFC 5652 §5.4): signed attributes with the content type and the
    digest of ``content``, and a signature over their DER SET OF by ``cert``'s key."""
    digest_name = signer_info["digest_algorithm"]["algorithm"].native
    if digest_name not in _HASHES:
        return f"digest algorithm {digest_name} is not accepted"
    algorithm = _HASHES[digest_name]()
    attributes = signer_info["signed_attrs"]
    if not attributes:
        return "no signed attributes"
    values = {a["type"].native: a["values"] for a in attributes}
    if [v.native for v in values.get("content_type", [])] != [content_type]:
        return "the signed content type is not " + content_type
    digest = hashes.Hash(algorithm)
    digest.update(content)
    if [v.native for v in values.get("message_digest", [])] != [digest.finalize()]:
        return "the signed digest is not the digest of the statement"
    signed = b"\x31" + attributes.dump()[1:]  # what was signed: the SET OF, not [0] IMPLICIT
    signature = signer_info["signature"].native
    public = cert.public_key()
    mechanism = signer_info["signature_algorithm"].signature_algo
    try:
        if isinstance(public, rsa.RSAPublicKey) and mechanism == "rsassa_pkcs1v15":
            public.verify(signature, signed, padding.PKCS1v15(), algorithm)
        elif isinstance(public, ec.EllipticCurvePublicKey) and mechanism == "ecdsa":
            public.verify(signature, signed, ec.ECDSA(algorithm))
        else:
            return f"signature algorithm {mechanism} is not accepted"
    except InvalidSignature:
        return "the signature does not match the signed attributes"
    return None


def _issuing_cas(ctx: Context, session: Session) -> list[x509.Certificate]:
    """kyso's issuing CA certificates whose public key is the key store's key: the anchor a
    row swapped in the database cannot fake."""
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    found = []
    for identity_id in session.execute(
        select(CaIdentity.id).where(CaIdentity.role == IdentityRole.ISSUING)
    ).scalars():
        identity = ctx.authority.identity_by_id(identity_id)
        held = identity.key.public_key().public_bytes(*spki)
        if identity.certificate.public_key().public_bytes(*spki) == held:
            found.append(identity.certificate)
    return found


def _issued_for(
    cert: x509.Certificate,
    issuers: list[x509.Certificate],
    purpose: x509.ObjectIdentifier,
    at: datetime,
) -> bool:
    """``cert`` was issued by one of ``issuers``, was valid at ``at`` and has ``purpose`` as
    its only extended key usage."""
    if not cert.not_valid_before_utc <= at <= cert.not_valid_after_utc:
        return False
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return False
    if list(eku) != [purpose]:
        return False
    for issuer in issuers:
        try:
            cert.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return True
    return False


def _token_problem(
    session: Session,
    token: cms.ContentInfo,
    signature: bytes,
    at: datetime,
    issuers: list[x509.Certificate],
) -> str | None:
    """RFC 3161 §2.4.2 and EN 319 122-1 §5.3: a token from kyso's TSA over the signature."""
    signed_data = token["content"]
    encapsulated = signed_data["encap_content_info"]
    if encapsulated["content_type"].native != "tst_info":
        return "the time-stamp holds no TSTInfo"
    tst_der = encapsulated["content"].contents
    tst_info = encapsulated["content"].parsed
    imprint = tst_info["message_imprint"]
    name = imprint["hash_algorithm"]["algorithm"].native
    if (
        name not in _HASHES
        or imprint["hashed_message"].native != hashlib.new(name, signature).digest()
    ):
        return "the time-stamp is not over this signature"
    gen_time = tst_info["gen_time"].native
    if abs(gen_time - at) > TIME_TOLERANCE:
        return f"the time-stamp says {clock.local(gen_time):%Y-%m-%d %H:%M:%S}"
    signer_infos = list(signed_data["signer_infos"])
    if len(signer_infos) != 1:
        return "the time-stamp has more than one signer"
    known = [
        der
        for der in session.execute(
            select(CaIdentity.certificate_der).where(CaIdentity.role == IdentityRole.TSA)
        ).scalars()
    ]
    tsa = _certificate_for(signer_infos[0], signed_data, known)
    if tsa is None:
        return "the time-stamp's certificate is unknown"
    if not _issued_for(tsa, issuers, ExtendedKeyUsageOID.TIME_STAMPING, gen_time):
        return f"the time-stamp is signed by '{tsa.subject.rfc4514_string()}', not kyso's TSA"
    return _signer_info_problem(signer_infos[0], tsa, tst_der, "tst_info")
