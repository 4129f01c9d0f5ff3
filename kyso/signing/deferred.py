"""Deferred PAdES signing for keys kyso does not hold: the server prepares, the user's USB token
signs, the server embeds (pyHanko's "interrupted signing").

The key is on a token at the user's desk, reached through the local agent (:mod:`kyso.agent`);
kyso never sees it. :func:`prepare` lays out the signature (field, Decree 30/2020 stamp, space
for the CMS), digests the document over its ``/ByteRange`` and builds the CMS signed attributes
(ETSI EN 319 142-1 B-B: signing-certificate-v2, message digest, content type, CMS algorithm
protection, RFC 6211) whose digest is what the token signs. :func:`finish` checks the raw
signature against the certificate over exactly those attributes — a signature by any other key,
or over anything else, is refused before it touches the document — then makes the CMS, adds
kyso's time-stamp for B-T (RFC 3161 over the signature value, ETSI EN 319 122-1 §5.3) and
writes it into the reserved space.

The prepared state lives on disk in the upload area (``<home>/uploads/agent/<user>/<id>/``), not
in a process's memory: any of several kyso processes may receive the ``finish``. It is kept ten
minutes (:data:`PREPARED_SECONDS`) and is single use — ``finish`` claims it by an atomic
rename, so two concurrent finishes cannot both embed.

Which certificate may be used (:func:`token_certificate`): a valid certificate kyso issued to
the caller's own subscriber record (the rule :mod:`kyso.signing.keyuse` states for keys kyso
holds, here for keys a person holds), never one of the CA's.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import os
import secrets
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asn1crypto import cms
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.sign import fields
from pyhanko.sign.general import SigningError
from pyhanko.sign.signers import PdfSignatureMetadata
from pyhanko.sign.signers.pdf_byterange import PreparedByteRangeDigest
from pyhanko.sign.signers.pdf_cms import ExternalSigner, PdfCMSSignedAttributes
from pyhanko.sign.signers.pdf_signer import PdfTBSDocument
from pyhanko.sign.timestamps import TimeStamper
from pyhanko_certvalidator.registry import SimpleCertificateStore
from sqlalchemy import select
from sqlalchemy.orm import Session

from kyso import clock
from kyso.errors import Conflict, Forbidden, InvalidInput, KysoError
from kyso.keys.base import KeyAlgorithm
from kyso.lifecycle.certificates import common_name
from kyso.pki.status import CA_PROFILES
from kyso.registry.access import Action, Principal, require
from kyso.signing import stamps
from kyso.signing.identity import hash_by_name
from kyso.signing.levels import Level
from kyso.signing.pades import (
    InvalidPdf,
    SignerNotUsable,
    _ClockedPdfSigner,
    _prepare_field,
    frozen_tokens,
    open_pdf,
)
from kyso.store.models import Certificate, CertStatus, User

if TYPE_CHECKING:
    from kyso.context import Context
    from kyso.signing.stamps import Appearance

#: How long a prepared signature waits for the token's signature.
PREPARED_SECONDS = 600
#: Prepared signatures one user may have waiting at once; older ones are dropped first.
MAX_PREPARED_PER_USER = 10
#: The levels a token signature can reach here (B-LT would need the pre-sign validation
#: data carried across processes; sign B-T and extend it later).
LEVELS = (Level.B_B, Level.B_T)
_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


class CertificateNotYours(Forbidden):
    code = "token_certificate_not_yours"
    message_vi = (
        "Chứng thư trên thiết bị không phải chứng thư còn hiệu lực mà kyso cấp cho chính bạn."
    )
    message_en = "The token's certificate is not a valid certificate kyso issued to you."


class SignatureDoesNotVerify(InvalidInput):
    code = "token_signature_invalid"
    message_vi = (
        "Chữ ký do thiết bị trả về không khớp với chứng thư đã chọn và dữ liệu cần ký; "
        "tài liệu không được ký."
    )
    message_en = (
        "The signature the token returned does not match the chosen certificate and the data "
        "to sign; the document was not signed."
    )


class PreparedGone(Conflict):
    code = "prepared_signature_gone"
    http_status = 410
    message_vi = "Phiên ký này đã dùng, đã hết hạn (10 phút) hoặc không có; hãy bấm ký lại từ đầu."
    message_en = (
        "This signing session was used, has expired (10 minutes) or does not exist; sign again."
    )


# -- who may use which certificate --------------------------------------------------------------
def token_certificate(principal: Principal, session: Session, der: bytes) -> Certificate:
    """The certificate ``der``, if it is one kyso issued to ``principal``'s own subscriber record
    and it is valid now (status good, within its dates, not a CA's); else
    :class:`CertificateNotYours` (the same refusal whatever the reason: nobody learns whose a
    certificate is)."""
    require(principal, Action.DOCUMENT_SIGN)
    if principal.user_id is None:
        raise CertificateNotYours("a token signature is a person's, not a system's")
    try:
        serial = format(x509.load_der_x509_certificate(der).serial_number, "x")
    except ValueError as exc:
        raise InvalidInput("not an X.509 certificate", vi="không phải chứng thư X.509") from exc
    person_id = session.scalar(select(User.person_id).where(User.id == principal.user_id))
    row = session.execute(
        select(Certificate).where(Certificate.serial == serial)
    ).scalar_one_or_none()
    now = clock.now()
    if (
        row is None
        or person_id is None
        or row.person_id != person_id
        or row.der != der
        or row.status is not CertStatus.GOOD
        or row.profile in CA_PROFILES
        or not row.not_before <= now < row.not_after
    ):
        raise CertificateNotYours(serial)
    return row


# -- the prepared state on disk -----------------------------------------------------------------
@dataclass(frozen=True)
class Prepared:
    """What the page hands the agent: the digest to sign and the id to finish with."""

    id: str
    digest: bytes  # the hash of the CMS signed attributes: what the token signs
    hash: str  # "sha256", "sha384" or "sha512"
    serial: str
    expires: datetime


@dataclass(frozen=True)
class Finished:
    signed: bytes
    original: bytes
    serial: str
    holder: str  # the certificate's holder, as people know them
    context: dict[str, Any]  # what the caller passed to prepare() (upload id, task, ...)
    level: Level


def _area(ctx: Context, principal: Principal) -> Path:
    path = ctx.settings.home / "uploads" / "agent" / str(principal.user_id)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def sweep(ctx: Context) -> None:
    """Delete prepared signatures past their time (the server's background loop)."""
    root = ctx.settings.home / "uploads" / "agent"
    if not root.is_dir():
        return
    now = time.time()
    for user in root.iterdir():
        for folder in user.iterdir() if user.is_dir() else ():
            try:
                old = now - folder.stat().st_mtime > PREPARED_SECONDS
            except FileNotFoundError:
                continue
            if old:
                shutil.rmtree(folder, ignore_errors=True)


def _placeholder(public_key: Any) -> int:
    """Bytes of the largest signature the key can make (pyHanko reserves space with it)."""
    if isinstance(public_key, rsa.RSAPublicKey):
        return public_key.key_size // 8
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return 2 * ((public_key.curve.key_size + 7) // 8) + 8
    raise InvalidInput("only RSA and ECDSA keys sign", vi="chỉ hỗ trợ khóa RSA và ECDSA")


def _registry(ctx: Context) -> SimpleCertificateStore:
    from cryptography.hazmat.primitives.serialization import Encoding

    return SimpleCertificateStore.from_certs(
        [
            asn1_x509.Certificate.load(i.certificate.public_bytes(Encoding.DER))
            for i in ctx.authority.chain()
        ]
    )


def _timestamper(ctx: Context, level: Level) -> TimeStamper | None:
    from kyso.signing.service import level_support

    stamper, _trust = level_support(ctx, level)
    return frozen_tokens(stamper) if stamper is not None else None


def prepare(
    ctx: Context,
    principal: Principal,
    content: bytes,
    certificate_der: bytes,
    *,
    level: Level = Level.B_B,
    appearance: Appearance | None = None,
    context: dict[str, Any] | None = None,
) -> Prepared:
    """Lay out a signature on ``content`` (a PDF) for the token holding ``certificate_der``'s
    key and return the digest the token must sign. ``context`` (JSON-able: the upload id,
    the document's name and number) comes back from :func:`finish`."""
    if level not in LEVELS:
        raise InvalidInput(
            f"a token signs at {' or '.join(lv.value for lv in LEVELS)}",
            vi=f"ký bằng thiết bị USB ở mức {' hoặc '.join(lv.value for lv in LEVELS)}",
        )
    with ctx.db.read() as session:
        row = token_certificate(principal, session, certificate_der)
    certificate = x509.load_der_x509_certificate(certificate_der)
    algorithm = KeyAlgorithm.of_public_key(certificate.public_key())
    md = algorithm.default_hash().name
    prepared_id = secrets.token_urlsafe(16)
    area = _area(ctx, principal)
    waiting = sorted((p for p in area.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
    for old in waiting[: max(0, len(waiting) - MAX_PREPARED_PER_USER + 1)]:
        shutil.rmtree(old, ignore_errors=True)
    folder = area / prepared_id
    pdf, state = asyncio.run(_prepare(ctx, content, certificate, md, level, appearance))
    folder.mkdir(mode=0o700)
    (folder / "original.pdf").write_bytes(content)
    (folder / "prepared.pdf").write_bytes(pdf)
    expires = clock.timestamp() + PREPARED_SECONDS
    state.update(
        {
            "serial": row.serial,
            "certificate": base64.b64encode(certificate_der).decode(),
            "level": level.value,
            "expires": expires,
            "context": context or {},
        }
    )
    _write_private(folder / "state.json", json.dumps(state))
    return Prepared(
        prepared_id,
        hashlib.new(md, base64.b64decode(state["signed_attrs"])).digest(),
        md,
        row.serial,
        datetime.fromtimestamp(expires, UTC),
    )


async def _prepare(
    ctx: Context,
    content: bytes,
    certificate: x509.Certificate,
    md: str,
    level: Level,
    appearance: Appearance | None,
) -> tuple[bytes, dict[str, Any]]:
    from cryptography.hazmat.primitives.serialization import Encoding

    writer = open_pdf(content)
    try:
        field_name, field_spec, existing = _prepare_field(writer, content, appearance)
    except KysoError:
        raise
    except (PdfError, ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise InvalidPdf(
            "the PDF's form fields cannot be read",
            vi="không đọc được các trường biểu mẫu của tệp PDF",
        ) from exc
    signer = ExternalSigner(
        asn1_x509.Certificate.load(certificate.public_bytes(Encoding.DER)),
        _registry(ctx),
        signature_value=_placeholder(certificate.public_key()),
    )
    meta = PdfSignatureMetadata(
        field_name=field_name, md_algorithm=md, subfilter=fields.SigSeedSubFilter.PADES
    )
    pdf_signer = _ClockedPdfSigner(
        meta,
        signer,
        timestamper=_timestamper(ctx, level),
        stamp_style=stamps.stamp_style(appearance) if appearance is not None else None,
        new_field_spec=field_spec,
    )
    try:
        digest, _tbs, output = await pdf_signer.async_digest_doc_for_signing(
            writer, existing_fields_only=existing
        )
        signed_attrs = await signer.signed_attrs(
            digest.document_digest,
            md,
            attr_settings=PdfCMSSignedAttributes(signing_time=clock.precise()),
            use_pades=True,
        )
    except SigningError as exc:
        raise SignerNotUsable(str(exc), vi="không chuẩn bị được chữ ký") from exc
    except PdfError as exc:
        raise InvalidPdf(str(exc), vi="không ký được tệp PDF này") from exc
    state = {
        "hash": md,
        "document_digest": digest.document_digest.hex(),
        "reserved": [digest.reserved_region_start, digest.reserved_region_end],
        "signed_attrs": base64.b64encode(signed_attrs.dump()).decode(),
    }
    assert isinstance(output, io.BytesIO)
    return output.getvalue(), state


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def _claim(ctx: Context, principal: Principal, prepared_id: str) -> tuple[Path, dict[str, Any]]:
    """Take the prepared state for this call alone (an atomic rename: a second finish, in this
    process or another, finds nothing)."""
    if not 16 <= len(prepared_id) <= 40 or not set(prepared_id) <= _ID_CHARS:
        raise PreparedGone()
    folder = _area(ctx, principal) / prepared_id
    claimed = folder / f"state.{secrets.token_hex(8)}.claimed"
    try:
        os.rename(folder / "state.json", claimed)
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise PreparedGone() from exc
    state: dict[str, Any] = json.loads(claimed.read_text())
    if clock.timestamp() > float(state["expires"]):
        shutil.rmtree(folder, ignore_errors=True)
        raise PreparedGone("expired", vi="đã hết hạn")
    return folder, state


def check_signature(
    certificate: x509.Certificate, signed_attrs: bytes, signature: bytes, md: str
) -> None:
    """The raw signature verifies with the certificate's key over the signed attributes
    (RFC 5652 §5.4: the DER of the SET OF attributes), or :class:`SignatureDoesNotVerify`."""
    key = certificate.public_key()
    hash_algorithm = hash_by_name(md)
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, signed_attrs, padding.PKCS1v15(), hash_algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, signed_attrs, ec.ECDSA(hash_algorithm))
        else:
            raise SignatureDoesNotVerify(type(key).__name__)
    except (InvalidSignature, ValueError) as exc:
        raise SignatureDoesNotVerify() from exc


def finish(
    ctx: Context, principal: Principal, prepared_id: str, signature: bytes, *, entry: str
) -> Finished:
    """Embed the token's ``signature`` into the prepared document, if it verifies, and write
    the audit entry (``entry``: where it was asked for, as :mod:`kyso.signing.service` names
    it). The prepared state is spent whatever the outcome (single use)."""
    from kyso.signing.service import audit_signature

    folder, state = _claim(ctx, principal, prepared_id)
    try:
        der = base64.b64decode(state["certificate"])
        with ctx.db.read() as session:
            row = token_certificate(principal, session, der)  # still good at this moment
        certificate = x509.load_der_x509_certificate(der)
        signed_attrs = base64.b64decode(state["signed_attrs"])
        md = str(state["hash"])
        check_signature(certificate, signed_attrs, signature, md)
        level = Level(state["level"])
        output = io.BytesIO((folder / "prepared.pdf").read_bytes())
        start, end = state["reserved"]
        asyncio.run(
            _embed(
                ctx,
                output,
                certificate,
                PreparedByteRangeDigest(bytes.fromhex(state["document_digest"]), start, end),
                cms.CMSAttributes.load(signed_attrs),
                signature,
                md,
                level,
            )
        )
        original = (folder / "original.pdf").read_bytes()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    finished = Finished(
        output.getvalue(), original, row.serial, common_name(row.subject), state["context"], level
    )
    context = finished.context
    if entry == "page" and context.get("task"):
        entry = "queue"  # a document a colleague sent for this signature
    audit_signature(
        ctx,
        principal,
        key=row.key_location,
        serial=row.serial,
        kind="pdf",
        entry=entry,
        content=original,
        signed=finished.signed,
        name=context.get("name"),
        number=context.get("number"),
        level=level,
    )
    return finished


async def _embed(
    ctx: Context,
    output: io.BytesIO,
    certificate: x509.Certificate,
    digest: PreparedByteRangeDigest,
    signed_attrs: cms.CMSAttributes,
    signature: bytes,
    md: str,
    level: Level,
) -> None:
    from cryptography.hazmat.primitives.serialization import Encoding

    signer = ExternalSigner(
        asn1_x509.Certificate.load(certificate.public_bytes(Encoding.DER)),
        _registry(ctx),
        signature_value=signature,
    )
    try:
        signed = await signer.async_sign_prescribed_attributes(
            md, signed_attrs=signed_attrs, timestamper=_timestamper(ctx, level)
        )
        await PdfTBSDocument.async_finish_signing(output, digest, signed)
    except (SigningError, PdfError) as exc:
        raise InvalidPdf(str(exc), vi="không hoàn tất được chữ ký") from exc


__all__ = [
    "LEVELS",
    "PREPARED_SECONDS",
    "CertificateNotYours",
    "Finished",
    "Prepared",
    "PreparedGone",
    "SignatureDoesNotVerify",
    "check_signature",
    "finish",
    "prepare",
    "sweep",
    "token_certificate",
]
