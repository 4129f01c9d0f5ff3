"""One entry point for any signed input: PDF, CMS (.p7s with its data), XML, e-mail.

The kind is read from the bytes, not trusted from the file name; the matching validator
fills the shared report model.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import TYPE_CHECKING

from kyso.errors import InvalidInput, TooLarge
from kyso.trust import TrustContext
from kyso.validation.report import ValidationReport

if TYPE_CHECKING:
    from kyso.validation.pdf import PdfLimits

MAX_INPUT_BYTES = 200 * 1024 * 1024

_MIME_SIGNED = re.compile(
    rb"^content-type:\s*(multipart/signed|application/(x-)?pkcs7-mime)",
    re.IGNORECASE | re.MULTILINE,
)


#: The OID arc of CMS content types, 1.2.840.113549.1.7 (RFC 5652 §3), as DER contents.
_CMS_ARC = bytes.fromhex("2a864886f70d0107")
_PEM_CMS = (b"-----BEGIN PKCS7", b"-----BEGIN CMS", b"-----BEGIN PKCS #7 SIGNED DATA")


def _is_content_info(head: bytes) -> bool:
    """Whether ``head`` opens a DER/BER CMS ContentInfo: a SEQUENCE whose first element is
    an OID under 1.2.840.113549.1.7 (RFC 5652 §3). Read from the header bytes, not searched
    for: a CMS that carries a PDF has ``%PDF-`` in its first kilobyte too."""
    if len(head) < 2 or head[0] != 0x30:
        return False
    first = head[1]
    if first <= 0x80:  # short form, or 0x80: BER indefinite length
        at = 2
    else:
        count = first & 0x7F
        if count > 4:
            return False
        at = 2 + count
    oid = head[at : at + 2 + len(_CMS_ARC) + 1]
    return (
        len(oid) == 2 + len(_CMS_ARC) + 1
        and oid[0] == 0x06
        and oid[1] == len(_CMS_ARC) + 1
        and oid[2 : 2 + len(_CMS_ARC)] == _CMS_ARC
    )


def detect_kind(data: bytes) -> str:
    """``pdf``, ``xml``, ``email`` or ``cms``; InvalidInput for anything else.

    CMS is recognised first, by its structure: an attached CMS whose content is a PDF is a
    signature over that PDF, not a PDF."""
    head = data[:4096]
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if _is_content_info(head) or stripped.startswith(_PEM_CMS):
        return "cms"
    if b"%PDF-" in head[:1024]:
        return "pdf"
    if stripped.startswith(b"<"):
        return "xml"
    if _MIME_SIGNED.search(head):
        return "email"
    if head[:1] == b"\x30":  # DER that is not a ContentInfo: let the CMS reader say why
        return "cms"
    raise InvalidInput(
        "not a signed PDF, CMS/.p7s, XML or S/MIME e-mail",
        vi="không phải PDF, CMS/.p7s, XML hoặc thư S/MIME có chữ ký",
    )


def verify(
    data: bytes,
    trust: TrustContext,
    *,
    name: str = "document",
    detached_data: bytes | None = None,
    moment: datetime | None = None,
    pdf_limits: PdfLimits | None = None,
) -> ValidationReport:
    """Validate any signed input, as of ``moment`` (default: now; a past moment validates
    files whose certificates have expired since, as other validators' test suites do).
    ``pdf_limits`` bounds the signatures and revisions of a PDF (public validation)."""
    if len(data) > MAX_INPUT_BYTES or (
        detached_data is not None and len(detached_data) > MAX_INPUT_BYTES
    ):
        raise TooLarge(
            f"over {MAX_INPUT_BYTES // (1024 * 1024)} MiB",
            vi=f"quá {MAX_INPUT_BYTES // (1024 * 1024)} MiB",
        )
    kind = detect_kind(data)
    if kind == "pdf":
        from kyso.validation.pdf import validate_pdf

        return validate_pdf(data, trust, name=name, moment=moment, limits=pdf_limits)
    if kind == "xml":
        from kyso.validation.xml import validate_xml

        return validate_xml(data, trust, name=name, moment=moment)
    if kind == "email":
        from kyso.validation.email import validate_email

        return validate_email(data, trust, name=name, moment=moment)
    from kyso.validation.cms import validate_cms

    return validate_cms(data, detached_data, trust, name=name, moment=moment)
