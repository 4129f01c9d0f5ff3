"""An RFC 5322 message split into its header fields and its body, byte for byte.

Signing an e-mail (:mod:`kyso.signing.smime`) and validating one (:mod:`kyso.validation.email`)
both need the raw header fields (folded lines kept) and the raw body, untouched by Python's
``email`` parser, which re-folds and re-encodes.
"""

from __future__ import annotations

import re

from kyso.errors import InvalidInput

__all__ = ["NEWLINE", "not_email", "split_message"]

_HEADER_LINE = re.compile(rb"^[!-9;-~]+:")
NEWLINE = re.compile(rb"\r\n|\r|\n")


def not_email(detail: str) -> InvalidInput:
    return InvalidInput(
        f"not an e-mail message: {detail}", vi=f"không phải thư điện tử hợp lệ: {detail}"
    )


def split_message(eml: bytes) -> tuple[list[tuple[str, bytes]], bytes]:
    """The header fields — (lower-case name, raw field with its folded lines, CRLF-ended) —
    and the raw body. ``InvalidInput`` if this is not an RFC 5322 message."""
    if not isinstance(eml, bytes | bytearray | memoryview):
        raise not_email("not bytes")
    data = bytes(eml)
    if not data.strip():
        raise not_email("empty input")
    match = re.search(rb"\r\n\r\n|\n\n|\r\r", data)
    head, body = (data[: match.start()], data[match.end() :]) if match else (data, b"")
    fields: list[tuple[str, bytes]] = []
    for line in NEWLINE.split(head):
        if line[:1] in (b" ", b"\t") and fields:
            name, raw = fields[-1]
            fields[-1] = (name, raw + line + b"\r\n")
        elif _HEADER_LINE.match(line):
            name = line.split(b":", 1)[0].decode("ascii").lower()
            fields.append((name, line + b"\r\n"))
        else:
            raise not_email("a header line is malformed")
    if not fields:
        raise not_email("no header fields")
    return fields, body
