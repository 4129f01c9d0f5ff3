"""Subjects as people type them: RFC 4514 strings with Vietnamese UTF-8 values.

``CN=Sở Thông tin và Truyền thông,O=UBND tỉnh Bắc Kạn,L=Bắc Kạn,C=VN`` becomes a Name whose
values are UTF8String (TCVN 6909:2001 is Unicode) except C, which RFC 5280 fixes as
PrintableString. Like every RFC 4514 string, the first RDN written is the last encoded.
"""

from __future__ import annotations

import re

from cryptography import x509
from cryptography.x509.oid import NameOID

from kyso.errors import InvalidInput
from kyso.textcheck import hidden_character

# Vietnamese CAs carry the personal ID (CCCD/CMND) or the tax code (MST) in UID,
# e.g. ``UID=CCCD:001234567890`` or ``UID=MST:4700123456``.
_EXTRA_NAMES = {"UID": NameOID.USER_ID, "SERIALNUMBER": NameOID.SERIAL_NUMBER, "T": NameOID.TITLE}
_ALLOWED = {
    NameOID.COMMON_NAME,
    NameOID.ORGANIZATION_NAME,
    NameOID.ORGANIZATIONAL_UNIT_NAME,
    NameOID.LOCALITY_NAME,
    NameOID.STATE_OR_PROVINCE_NAME,
    NameOID.COUNTRY_NAME,
    NameOID.USER_ID,
    NameOID.SERIAL_NUMBER,
    NameOID.TITLE,
    NameOID.STREET_ADDRESS,
}
# RFC 5280 Appendix A upper bounds
_MAX_LENGTH = {
    NameOID.COMMON_NAME: 64,
    NameOID.ORGANIZATION_NAME: 64,
    NameOID.ORGANIZATIONAL_UNIT_NAME: 64,
    NameOID.LOCALITY_NAME: 128,
    NameOID.STATE_OR_PROVINCE_NAME: 128,
    NameOID.TITLE: 64,
    NameOID.SERIAL_NUMBER: 64,
    NameOID.STREET_ADDRESS: 128,  # X.520 ub-street-address
    NameOID.USER_ID: 256,  # RFC 4519 has none; a bound keeps lint and storage sane
}

# RFC 5321 mailbox, dot-atom local part only, host of two labels or more: the subset pkilint
# accepts in an rfc822Name. Anything else failed late (cryptography, then lint).
_MAILBOX = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
)


def check_email(value: str) -> str:
    """An official e-mail address fit for a certificate's subjectAltName."""
    local, _, domain = value.partition("@")
    if not _MAILBOX.fullmatch(value) or len(local) > 64 or len(domain) > 253:
        raise InvalidInput(
            f"'{value}' is not an e-mail address such as ten.ho@backan.gov.vn",
            vi=f"'{value}' không phải địa chỉ thư điện tử, ví dụ ten.ho@backan.gov.vn",
        )
    return value


def parse_subject(text: str) -> x509.Name:
    """Parse and check a subject; errors name the attribute at fault."""
    text = text.strip()
    if not text:
        raise InvalidInput("empty subject", vi="chủ thể trống")
    if re.search(r"(^|[,+])\s*[A-Za-z0-9.]+\s*=\s*#", text):
        # RFC 4514 §2.4 hex-encoded BER values would let a requester smuggle any bytes in.
        raise InvalidInput(
            "hex-encoded (#…) values are not accepted", vi="không nhận giá trị dạng #hex"
        )
    try:
        name = x509.Name.from_rfc4514_string(text, _EXTRA_NAMES)
    except ValueError as exc:
        raise InvalidInput(f"subject '{text}': {exc}", vi=f"chủ thể '{text}' sai cú pháp") from exc
    return check_subject(name)


def check_subject(name: x509.Name) -> x509.Name:
    """Check a subject however it was made: typed, from a CSR or built from registry data.

    RFC 5280 §4.1.2.6 allows an empty subject only with a critical subjectAltName, which
    kyso's profiles never make, so every subject needs a CN.
    """
    seen_cn = False
    for attribute in name:
        if attribute.oid not in _ALLOWED:
            raise InvalidInput(
                f"attribute {attribute.oid.dotted_string} is not allowed in a subject",
                vi=f"không dùng thuộc tính {attribute.oid.dotted_string} trong chủ thể",
            )
        value = str(attribute.value)
        hidden = hidden_character(value)
        if hidden is not None:
            raise InvalidInput(
                f"{attribute.rfc4514_attribute_name} contains a control or invisible "
                f"character ({hidden})",
                vi=f"{attribute.rfc4514_attribute_name} chứa ký tự điều khiển hoặc ký tự ẩn "
                f"({hidden})",
            )
        if not value.strip():
            raise InvalidInput(
                f"{attribute.rfc4514_attribute_name} is empty",
                vi=f"{attribute.rfc4514_attribute_name} trống",
            )
        limit = _MAX_LENGTH.get(attribute.oid)
        if limit and len(value) > limit:
            raise InvalidInput(
                f"{attribute.rfc4514_attribute_name} is longer than {limit} characters",
                vi=f"{attribute.rfc4514_attribute_name} dài quá {limit} ký tự",
            )
        if attribute.oid == NameOID.COUNTRY_NAME and (len(value) != 2 or not value.isupper()):
            raise InvalidInput(
                "C must be a two-letter country code such as VN",
                vi="C phải là mã quốc gia hai chữ cái, ví dụ VN",
            )
        seen_cn = seen_cn or attribute.oid == NameOID.COMMON_NAME
    if not seen_cn:
        raise InvalidInput("the subject needs a CN", vi="chủ thể cần có CN")
    return name


def subject_text(name: x509.Name) -> str:
    """The RFC 4514 form kept in the database and shown in lists."""
    return name.rfc4514_string(_EXTRA_NAMES_REVERSE)


_EXTRA_NAMES_REVERSE = {oid: label for label, oid in _EXTRA_NAMES.items()}
