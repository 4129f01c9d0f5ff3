"""Names that would print differently from what is stored are refused everywhere they enter:
bidirectional overrides and isolates (Trojan Source, U+202A–U+202E, U+2066–U+2069), direction
marks, zero-width characters. "Nguyễn Văn A\u202e" shows one name on a page, in a stamp or in
a certificate viewer and stores another."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kyso.errors import InvalidInput
from kyso.pki.names import check_subject, parse_subject
from kyso.registry import fields
from kyso.signing.stamps import Appearance, StampKind
from kyso.textcheck import hidden_character

HIDDEN = ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069",
          "\u200e", "\u200f", "\u061c", "\u200b", "\u200d", "\ufeff"]  # fmt: skip


@pytest.mark.parametrize("char", HIDDEN)
def test_a_name_with_a_hidden_character_is_refused_in_the_registry(char: str) -> None:
    with pytest.raises(fields.FieldProblem) as refused:
        fields.text("full_name", f"Nguyễn Văn {char}An", max_length=200)
    assert f"U+{ord(char):04X}" in refused.value.en


def test_vietnamese_names_pass_untouched() -> None:
    for name in ("Nguyễn Thị Ánh Tuyết", "Đặng Văn Ưng", "UBND xã Chu Hương", "Hà Thị Mỹ"):
        assert hidden_character(name) is None
        assert fields.text("full_name", name, max_length=200) == name


@pytest.mark.parametrize("char", ["\u202e", "\u2067", "\u200b"])
def test_a_certificate_subject_with_a_hidden_character_is_refused(char: str) -> None:
    with pytest.raises(InvalidInput):
        parse_subject(f"CN=Nguyễn Văn{char} An,O=UBND tỉnh Bắc Kạn,C=VN")
    # the same from a CSR, whose subject the RA would otherwise keep
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"Admin{char}")]))
        .sign(key, hashes.SHA256())
    )
    with pytest.raises(InvalidInput):
        check_subject(csr.subject)


def test_a_stamp_text_with_a_hidden_character_is_refused() -> None:
    look = Appearance(kind=StampKind.ATTACHMENT, number="15/QĐ-UBND\u202e", full_name="A")
    with pytest.raises(InvalidInput):
        look.check()
    Appearance(
        kind=StampKind.ATTACHMENT, number="15/QĐ-UBND", position_title="KT. CHỦ TỊCH\nPHÓ CHỦ TỊCH"
    ).check()
