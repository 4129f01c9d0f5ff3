"""The cheap checks on a PDF before anything parses it, and the errors that say a file is not
a PDF kyso can take.

Signing (:mod:`kyso.signing.pades`) and validation (:mod:`kyso.validation.pdf`) both take
PDFs from outside and refuse the same files the same way, before pyHanko reads a byte.
"""

from __future__ import annotations

from kyso.errors import InvalidInput

__all__ = ["MAX_PDF_BYTES", "InvalidPdf", "PdfTooLarge", "check_pdf_bytes"]

#: Largest PDF kyso signs or validates (the memory benchmark signs 50 MB).
MAX_PDF_BYTES = 100 * 1024 * 1024


class InvalidPdf(InvalidInput):
    code = "invalid_pdf"
    message_vi = "Tệp không phải PDF hợp lệ hoặc không xử lý được."
    message_en = "The file is not a valid PDF, or it cannot be processed."


class PdfTooLarge(InvalidPdf):
    code = "pdf_too_large"
    http_status = 413
    message_vi = "Tệp PDF quá lớn."
    message_en = "The PDF is too large."


def check_pdf_bytes(data: bytes) -> None:
    """Cheap checks before any parsing: size, the %PDF header, an end-of-file marker."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InvalidPdf("not bytes", vi="không phải dữ liệu nhị phân")
    if len(data) > MAX_PDF_BYTES:
        raise PdfTooLarge(
            f"{len(data) // (1024 * 1024)} MB; the limit is {MAX_PDF_BYTES // (1024 * 1024)} MB",
            vi=f"{len(data) // (1024 * 1024)} MB; giới hạn {MAX_PDF_BYTES // (1024 * 1024)} MB",
        )
    head = bytes(data[:1024])
    if b"%PDF-" not in head:
        raise InvalidPdf("not a PDF file", vi="không phải tệp PDF")
    if b"%%EOF" not in bytes(data[-2048:]) or b"startxref" not in bytes(data[-4096:]):
        raise InvalidPdf(
            "the PDF is truncated (no end-of-file marker)",
            vi="tệp PDF bị cắt cụt (không có dấu kết thúc tệp)",
        )
