"""Signed e-mail (S/MIME) into the shared report.

Two forms (RFC 8551 §3.5): ``multipart/signed`` — the first part is the signed MIME entity,
taken byte for byte between the boundaries, the second a detached CMS signature — and the
opaque ``application/pkcs7-mime; smime-type=signed-data``, whose CMS carries the entity.
The CMS is judged by :mod:`kyso.validation.cms` like any ``.p7s``.

Canonical form: the signature covers the entity with CRLF line ends (RFC 8551 §3.1.1). A
message saved with bare LF line ends (a Unix mailbox, ``openssl smime`` output on disk) is
checked as stored first and, if that does not match, in canonical form.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import collapse_rfc2231_value

from kyso.errors import InvalidInput
from kyso.formats.mime import NEWLINE, split_message
from kyso.trust import TrustContext
from kyso.validation.cms import summarize, validate_cms
from kyso.validation.report import (
    ScopeKind,
    SignatureReport,
    SignatureScope,
    SubIndication,
    ValidationReport,
)

__all__ = ["validate_email"]

_SIGNATURE_TYPES = {"application/pkcs7-signature", "application/x-pkcs7-signature"}
_OPAQUE_TYPES = {"application/pkcs7-mime", "application/x-pkcs7-mime"}


def _not_signed(detail: str, vi: str) -> InvalidInput:
    return InvalidInput(
        f"not a signed e-mail (S/MIME): {detail}", vi=f"không phải thư có chữ ký số (S/MIME): {vi}"
    )


def _headers(raw: bytes) -> Message:
    return BytesHeaderParser(policy=compat32).parsebytes(raw)


def _parts(body: bytes, boundary: bytes) -> list[tuple[int, int]]:
    """(start, end) byte offsets of each body part between the delimiter lines; ``end``
    excludes the line break that belongs to the next delimiter (RFC 2046 §5.1.1)."""
    delimiter = re.compile(rb"(?:^|\r\n|\n)--" + re.escape(boundary) + rb"(--)?[ \t]*(?:\r\n|\n|$)")
    spans: list[tuple[int, int]] = []
    start: int | None = None
    for match in delimiter.finditer(body):
        if start is not None:
            spans.append((start, match.start()))
        if match.group(1):  # close-delimiter
            return spans
        start = match.end()
    raise _not_signed("the multipart body is not closed", "phần thân nhiều phần không kết thúc")


def _signature_part(part: bytes) -> bytes:
    fields, body = split_message(part)
    headers = _headers(b"".join(raw for _, raw in fields))
    if headers.get_content_type() not in _SIGNATURE_TYPES:
        raise _not_signed(
            f"the second part is {headers.get_content_type()}, not a PKCS#7 signature",
            "phần thứ hai không phải chữ ký PKCS#7",
        )
    encoding = (headers.get("Content-Transfer-Encoding") or "").strip().lower()
    if encoding == "base64":
        try:
            return base64.b64decode(b"".join(body.split()), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise _not_signed(
                "the signature part is not valid base64", "chữ ký không đọc được"
            ) from exc
    return body


def _scope(size: int | None) -> SignatureScope:
    """What S/MIME signs: one MIME entity, the message's body with its attachments
    (RFC 8551 §3.1): the first part of a multipart/signed (``size`` bytes), or the entity
    inside an opaque signature (``size`` None). The message's own header lines are outside."""
    where_vi, where_en = (
        ("phần thư nằm trong chữ ký", "the MIME entity carried inside the signature")
        if size is None
        else (
            f"phần thân thư đã ký (phần MIME thứ nhất, {size} byte)",
            f"the signed body (the first MIME part, {size} bytes)",
        )
    )
    return SignatureScope(
        ScopeKind.FULL,
        f"{where_vi}: nội dung và tệp đính kèm; các dòng tiêu đề của thư (From, To, Subject, "
        "Date) không được ký",
        f"{where_en}: its text and attachments; the message's header lines (From, To, "
        "Subject, Date) are not signed",
    )


def _as_email(report: ValidationReport, name: str, scope: SignatureScope) -> ValidationReport:
    report.document = name
    report.document_kind = "email"

    def relabel(signatures: list[SignatureReport]) -> None:
        for signature in signatures:
            signature.format = f"S/MIME ({signature.format})"
            relabel(signature.counter_signatures)

    relabel(report.signatures)
    for signature in report.signatures:
        signature.scope = [scope]
    return summarize(report)


def validate_email(
    eml: bytes,
    trust: TrustContext,
    *,
    name: str = "message.eml",
    moment: datetime | None = None,
) -> ValidationReport:
    """Validate an S/MIME signed message as of ``moment`` (default: now); ``InvalidInput``
    if it is not one."""
    fields, body = split_message(eml)
    headers = _headers(b"".join(raw for _, raw in fields))
    content_type = headers.get_content_type()

    if content_type in _OPAQUE_TYPES:
        try:
            der = base64.b64decode(b"".join(body.split()), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise _not_signed("the body is not valid base64", "thân thư không đọc được") from exc
        report = validate_cms(der, None, trust, name=name, moment=moment)
        return _as_email(report, name, _scope(None))

    if content_type != "multipart/signed":
        raise _not_signed(
            f"its type is {content_type}, not multipart/signed",
            f"kiểu thư là {content_type}, không phải multipart/signed",
        )
    protocol = collapse_rfc2231_value(headers.get_param("protocol") or "").lower()
    boundary = collapse_rfc2231_value(headers.get_param("boundary") or "")
    if protocol not in _SIGNATURE_TYPES or not boundary:
        raise _not_signed(
            "multipart/signed without a PKCS#7 protocol or a boundary",
            "multipart/signed thiếu protocol PKCS#7 hoặc boundary",
        )
    spans = _parts(body, str(boundary).encode("utf-8", "replace"))
    if len(spans) != 2:
        raise _not_signed(
            f"multipart/signed must have two parts, this one has {len(spans)}",
            f"multipart/signed phải có hai phần, thư này có {len(spans)}",
        )
    signed = body[spans[0][0] : spans[0][1]]
    signature = _signature_part(body[spans[1][0] : spans[1][1]])

    report = validate_cms(signature, signed, trust, name=name, moment=moment)
    canonical = NEWLINE.sub(b"\r\n", signed)
    if canonical != signed and any(
        s.sub_indication is SubIndication.HASH_FAILURE for s in report.signatures
    ):
        report = validate_cms(signature, canonical, trust, name=name, moment=moment)
        signed = canonical
    return _as_email(report, name, _scope(len(signed)))
