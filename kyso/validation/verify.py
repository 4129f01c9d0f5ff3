"""One entry point for any signed input: PDF, CMS (.p7s with its data), XML, e-mail.

The kind is read from the bytes, not trusted from the file name; the matching validator
fills the shared report model.
"""

from __future__ import annotations

import re

from kyso.errors import InvalidInput, TooLarge
from kyso.validation.report import ValidationReport
from kyso.validation.trust import TrustContext

MAX_INPUT_BYTES = 200 * 1024 * 1024

_MIME_SIGNED = re.compile(
    rb"^content-type:\s*(multipart/signed|application/(x-)?pkcs7-mime)",
    re.IGNORECASE | re.MULTILINE,
)


def detect_kind(data: bytes) -> str:
    """``pdf``, ``xml``, ``email`` or ``cms``; InvalidInput for anything else."""
    head = data[:4096]
    if b"%PDF-" in head[:1024]:
        return "pdf"
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith(b"<"):
        return "xml"
    if _MIME_SIGNED.search(head):
        return "email"
    if (
        stripped.startswith(b"-----BEGIN PKCS7")
        or stripped.startswith(b"-----BEGIN CMS")
        or head[:1] == b"\x30"
    ):
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
) -> ValidationReport:
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

        return validate_pdf(data, trust, name=name)
    if kind == "xml":
        from kyso.validation.xml import validate_xml

        return validate_xml(data, trust, name=name)
    if kind == "email":
        from kyso.validation.email import validate_email

        return validate_email(data, trust, name=name)
    from kyso.validation.cms import validate_cms

    return validate_cms(data, detached_data, trust, name=name)
