"""Subjects as people type them: Vietnamese UTF-8 kept exactly, smuggled bytes refused."""

from __future__ import annotations

import pytest
from cryptography.x509.oid import NameOID

from kyso.errors import InvalidInput
from kyso.pki.names import check_email, parse_subject, subject_text


def test_vietnamese_subject_round_trips_exactly() -> None:
    text = "CN=Nguyễn Thị Hồng Nhung,OU=Văn phòng,O=UBND huyện Chợ Mới,L=Bắc Kạn,C=VN"
    name = parse_subject(text)
    assert subject_text(name) == text
    assert name.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "Nguyễn Thị Hồng Nhung"


@pytest.mark.parametrize("text", ["CN=#0403616263", "CN=a, O=#04", "CN=x+UID=#0c0161"])
def test_hex_encoded_values_are_refused(text: str) -> None:
    with pytest.raises(InvalidInput, match="hex"):
        parse_subject(text)


def test_control_characters_are_refused() -> None:
    with pytest.raises(InvalidInput, match="control"):
        parse_subject("CN=a\\0Db,C=VN")


def test_overlong_street_is_refused_before_lint() -> None:
    with pytest.raises(InvalidInput, match="STREET"):
        parse_subject("CN=A,STREET=" + "x" * 200)


@pytest.mark.parametrize("bad", ["@", "a@", "a@b@c", "@b", "a@b", "a b@x.vn", "an@-x.vn"])
def test_malformed_e_mail_is_refused(bad: str) -> None:
    with pytest.raises(InvalidInput):
        check_email(bad)


def test_official_e_mail_is_accepted() -> None:
    assert check_email("an.nv@backan.gov.vn") == "an.nv@backan.gov.vn"
