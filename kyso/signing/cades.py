"""CAdES signatures over any file: a detached ``.p7s`` (or an attached CMS), ETSI EN 319 122-1.

Levels (EN 319 122-1 §6, baseline signatures):

* **B-B** — signed attributes content-type, message-digest, signing-time and
  ESS signing-certificate-v2 (RFC 5035), which CAdES requires so the signer's certificate
  cannot be swapped for another with the same key.
* **B-T** — B-B plus a signature time-stamp (id-aa-signatureTimeStampToken, an unsigned
  attribute) over the SignerInfo's signature value, from kyso's TSA or any RFC 3161 TSA.
* **B-LT** — B-T plus the validation data: the whole chain in ``SignedData.certificates``
  and kyso's CRLs and OCSP answers in ``SignedData.crls`` (RFC 5652 RevocationInfoChoices;
  OCSP as ``other`` with id-ri-ocsp-response, RFC 5940). That is where EN 319 122-1's
  baseline B-LT puts validation data (the older certificate-values / revocation-values
  unsigned attributes belong to the extended CAdES-X-L forms), where ETSI's DSS writes it,
  and what ``openssl cms`` can read; Adobe's revocation attribute is PDF-specific.

pyHanko's :class:`kyso.signing.identity.KeyStoreSigner` makes the signed attributes and the
raw signature, so the key may live in the software store or an HSM; nothing here touches key
material. The SignedData itself is assembled here from DER pieces (see :func:`_assemble`).
"""

from __future__ import annotations

import hashlib
from typing import IO, TYPE_CHECKING

from asn1crypto import algos, cms, core
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pyhanko.sign.signers.pdf_cms import CMSSignedAttributes
from pyhanko.sign.timestamps import TimeStamper

from kyso import clock
from kyso.coroutines import run_sync
from kyso.errors import InvalidInput
from kyso.signing.identity import SignerIdentity
from kyso.signing.timestamps import Level

if TYPE_CHECKING:
    from kyso.trust import TrustContext

__all__ = ["Level", "kyso_revocation_data", "sign_cms", "token_certificates"]

_CHUNK = 1024 * 1024


def _check_level(level: Level, timestamper: TimeStamper | None, trust: object | None) -> None:
    if level is Level.B_LTA:
        raise InvalidInput(
            "CAdES B-LTA (archive time-stamps) is not offered; use B-LT",
            vi="chưa hỗ trợ CAdES B-LTA (dấu thời gian lưu trữ); hãy dùng B-LT",
        )
    if level.needs_timestamp and timestamper is None:
        raise InvalidInput(
            f"level {level.value} needs a time-stamp authority",
            vi=f"mức {level.value} cần dịch vụ cấp dấu thời gian",
        )
    if level is Level.B_LT and trust is None:
        raise InvalidInput(
            "level B-LT needs the trust context to embed certificates and revocation data",
            vi="mức B-LT cần ngữ cảnh tin cậy để nhúng chứng thư và dữ liệu thu hồi",
        )


def _digest(data: bytes | IO[bytes], algorithm: str) -> bytes:
    h = hashlib.new(algorithm)
    if isinstance(data, bytes):
        h.update(data)
    else:
        while chunk := data.read(_CHUNK):
            h.update(chunk)
    return h.digest()


def sign_cms(
    data: bytes | IO[bytes],
    identity: SignerIdentity,
    *,
    level: Level = Level.B_B,
    timestamper: TimeStamper | None = None,
    trust: TrustContext | None = None,
    detached: bool = True,
) -> bytes:
    """A DER CAdES signature of ``data`` at ``level``.

    ``data`` may be bytes or a binary file object; a detached signature of a file object is
    computed in chunks, never holding the file in memory. ``detached=False`` embeds the data
    (an enveloping CMS, e.g. for a receiver that wants one file).
    """
    level = Level(level)
    _check_level(level, timestamper, trust)
    if isinstance(data, bytearray | memoryview):
        data = bytes(data)
    if not isinstance(data, bytes) and not callable(getattr(data, "read", None)):
        raise InvalidInput("data to sign must be bytes or a file", vi="dữ liệu ký phải là byte")
    if not detached and not isinstance(data, bytes):
        data = data.read()
        if not isinstance(data, bytes):
            raise InvalidInput("data to sign must be bytes", vi="dữ liệu ký phải là byte")
    algorithm = identity.digest_algorithm
    message_digest = _digest(data, algorithm)
    return run_sync(
        _assemble(
            identity,
            algorithm,
            message_digest,
            content=None if detached else data,  # type: ignore[arg-type]
            timestamper=timestamper if level.needs_timestamp else None,
            trust=trust if level is Level.B_LT else None,
        )
    )


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _tlv(tag: int, *parts: bytes) -> bytes:
    body = b"".join(parts)
    return bytes([tag]) + _der_length(len(body)) + body


def _set_of(tag: int, items: list[bytes]) -> bytes:
    """A DER SET OF (elements sorted by encoding, X.690 §11.6), with ``tag`` (0x31, or
    0xA0/0xA1 for the IMPLICIT [0]/[1] sets of SignedData and SignerInfo)."""
    return _tlv(tag, *sorted(items))


def _oid(dotted: str) -> bytes:
    return core.ObjectIdentifier(dotted).dump()


_ID_DATA = "1.2.840.113549.1.7.1"
_ID_SIGNED_DATA = "1.2.840.113549.1.7.2"
_ID_SIGNATURE_TIME_STAMP = "1.2.840.113549.1.9.16.2.14"
_ID_RI_OCSP_RESPONSE = "1.3.6.1.5.5.7.16.2"  # RFC 5940


async def _assemble(
    identity: SignerIdentity,
    algorithm: str,
    message_digest: bytes,
    *,
    content: bytes | None,
    timestamper: TimeStamper | None,
    trust: TrustContext | None,
) -> bytes:
    """The DER ContentInfo, encoded field by field (RFC 5652 §5).

    Encoded here rather than by pyHanko's packaging: asn1crypto copies and re-encodes
    parsed sub-trees when it re-tags them (the IMPLICIT [0]/[1] attribute sets), and with a
    time-stamp token inside that took from 0.1 s to over a minute depending on the data.
    """
    signer = identity.pyhanko_signer()
    # content-type, message-digest, signing-certificate-v2 (ESS, RFC 5035) and
    # signing-time: the CAdES signed attributes (EN 319 122-1 §5.2).
    attributes = await signer.signed_attrs(
        message_digest,
        algorithm,
        attr_settings=CMSSignedAttributes(signing_time=clock.now()),  # type: ignore[arg-type]
        use_pades=True,
        is_pdf_sig=False,
    )
    signed_attrs_der = attributes.dump()  # SET OF (0x31): what is signed
    signature = await signer.async_sign_raw(signed_attrs_der, algorithm)
    digest_algorithm_der = algos.DigestAlgorithm({"algorithm": algorithm}).dump()
    certificate = identity.asn1_certificate()
    tbs = certificate["tbs_certificate"]
    signer_info = [
        _tlv(0x02, b"\x01"),  # version 1: issuerAndSerialNumber
        _tlv(0x30, tbs["issuer"].dump(), tbs["serial_number"].dump()),
        digest_algorithm_der,
        b"\xa0" + signed_attrs_der[1:],  # [0] IMPLICIT SignedAttributes
        signer.get_signature_mechanism_for_digest(algorithm).dump(),
        _tlv(0x04, signature),
    ]
    token_der = None
    if timestamper is not None:
        # id-aa-signatureTimeStampToken over the signature value (EN 319 122-1 §5.3).
        token = await timestamper.async_timestamp(
            hashlib.new(algorithm, signature).digest(), algorithm
        )
        token_der = token.dump()
        attribute = _tlv(0x30, _oid(_ID_SIGNATURE_TIME_STAMP), _tlv(0x31, token_der))
        signer_info.append(_set_of(0xA1, [attribute]))  # [1] IMPLICIT UnsignedAttributes

    der = serialization.Encoding.DER
    certificates = {c.public_bytes(der) for c in [identity.certificate, *identity.chain]}
    revocation: list[bytes] = []
    if trust is not None:
        crls, ocsps = _revocation_data(
            identity, trust, token_certificates(token_der) if token_der else []
        )
        revocation = crls + [_tlv(0xA1, _oid(_ID_RI_OCSP_RESPONSE), o) for o in ocsps]
    encapsulated = [_oid(_ID_DATA)]
    if content is not None:
        encapsulated.append(_tlv(0xA0, _tlv(0x04, content)))
    signed_data = [
        # RFC 5652 §5.1: version 5 when crls holds an "other" format (the OCSP answers).
        _tlv(0x02, b"\x05" if revocation else b"\x01"),
        _tlv(0x31, digest_algorithm_der),
        _tlv(0x30, *encapsulated),
        _set_of(0xA0, list(certificates)),  # the chain with its root
    ]
    if revocation:
        signed_data.append(_set_of(0xA1, revocation))
    signed_data.append(_tlv(0x31, _tlv(0x30, *signer_info)))
    return _tlv(0x30, _oid(_ID_SIGNED_DATA), _tlv(0xA0, _tlv(0x30, *signed_data)))


def token_certificates(token_der: bytes) -> list[x509.Certificate]:
    """The certificates inside a time-stamp token (their OCSP answers go into B-LT)."""
    token = cms.ContentInfo.load(token_der)
    return [
        x509.load_der_x509_certificate(c.chosen.dump())
        for c in token["content"]["certificates"] or []
        if c.name == "certificate"
    ]


def kyso_revocation_data(
    trust: TrustContext, certs: list[x509.Certificate]
) -> tuple[list[bytes], list[bytes]]:
    """kyso's CRLs (full and delta) and OCSP answers for ``certs``."""
    return trust.own_revocation_data(certs)


def _revocation_data(
    identity: SignerIdentity, trust: TrustContext, token_certs: list[x509.Certificate]
) -> tuple[list[bytes], list[bytes]]:
    """kyso's CRLs and OCSP answers for the signer and the TSA.

    kyso can vouch only for certificates its own CA issued; for any other signer B-LT is
    refused rather than silently produced without revocation data.
    """
    if not trust.is_ours(identity.certificate):
        raise InvalidInput(
            "B-LT needs revocation data for the signer; kyso has it only for certificates "
            "its own CA issued",
            vi="mức B-LT cần dữ liệu thu hồi của người ký; kyso chỉ có dữ liệu này cho chứng "
            "thư do CA của mình cấp",
        )
    crls, ocsps = kyso_revocation_data(trust, [identity.certificate, *token_certs])
    if not ocsps:
        raise InvalidInput(
            "kyso's OCSP responder gave no answer for the signer",
            vi="dịch vụ OCSP của kyso không trả lời cho chứng thư người ký",
        )
    return crls, ocsps
