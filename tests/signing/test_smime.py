"""Signed official e-mail (S/MIME multipart/signed): what ``openssl smime`` accepts."""

from __future__ import annotations

import email
import email.policy
import quopri
import re
from pathlib import Path

import pytest
from conftest import Instance

from kyso.errors import InvalidInput
from kyso.keys.base import KeyAlgorithm
from kyso.signing.identity import SignerIdentity
from kyso.signing.smime import sign_email
from kyso.signing.timestamps import InProcessTimeStamper
from kyso.trust import trust_context
from kyso.validation.email import validate_email
from kyso.validation.report import Indication
from signing.test_cades import issue_signer, openssl, write_chain

ROUTING = (
    "From: Nguyen Thi Hong Nhung <nhung@backan.gov.vn>\n"
    "To: vanphong@backan.gov.vn\n"
    "Subject: =?utf-8?b?VsSDbiBi4bqjbiBz4buRIDEyNQ==?=\n"
    "Date: Fri, 14 Mar 2025 09:15:00 +0700\n"
    "Message-ID: <125.stttt@backan.gov.vn>\n"
)
ASCII_BODY = "Kinh gui Van phong UBND tinh,\nDe nghi trien khai chu ky so.\nTran trong.\n"
VIETNAMESE_BODY = (
    "Kính gửi Văn phòng UBND tỉnh,\nĐề nghị triển khai chữ ký số chuyên dùng.\nTrân trọng.\n"
)


def message(body: str, content_type: str = "text/plain; charset=utf-8", cte: str = "8bit") -> bytes:
    return (
        ROUTING + "MIME-Version: 1.0\n"
        f"Content-Type: {content_type}\nContent-Transfer-Encoding: {cte}\n\n" + body
    ).encode()


@pytest.fixture(scope="module")
def signer(sqlite_instance: Instance) -> SignerIdentity:
    return issue_signer(
        sqlite_instance.ctx,
        algorithm=KeyAlgorithm.RSA_2048,
        subject="CN=Nguyễn Thị Hồng Nhung,O=Sở Thông tin và Truyền thông tỉnh Bắc Kạn,C=VN",
        emails=("nhung@backan.gov.vn",),
    )


def smime_verify(signed: bytes, signer: SignerIdentity, directory: Path, *options: str):  # type: ignore[no-untyped-def]
    files = write_chain(signer, directory)
    (directory / "signed.eml").write_bytes(signed)
    return openssl(
        "smime", "-verify", "-in", directory / "signed.eml", "-CAfile", files["chain"], *options
    )


@pytest.mark.interop
def test_openssl_verifies_and_outputs_the_original_body(
    signer: SignerIdentity, tmp_path: Path
) -> None:
    signed = sign_email(message(ASCII_BODY, "text/plain; charset=us-ascii", "7bit"), signer)
    result = smime_verify(signed, signer, tmp_path, "-text")
    assert result.returncode == 0, result.stderr
    assert b"Verification successful" in result.stderr
    assert result.stdout.replace(b"\r\n", b"\n") == ASCII_BODY.encode()

    tampered = signed.replace(b"chu ky so", b"chu ky s0")
    assert smime_verify(tampered, signer, tmp_path).returncode != 0


@pytest.mark.interop
def test_vietnamese_body_is_made_7bit_and_still_reads_the_same(
    signer: SignerIdentity, tmp_path: Path
) -> None:
    """RFC 8551 §3.1.2: 8-bit text is quoted-printable before signing, relays cannot break it."""
    signed = sign_email(message(VIETNAMESE_BODY), signer)
    assert all(b < 0x80 for b in signed.split(b"\r\n\r\n", 1)[1])
    result = smime_verify(signed, signer, tmp_path)
    assert result.returncode == 0, result.stderr
    entity = email.message_from_bytes(result.stdout, policy=email.policy.default)
    assert entity["Content-Transfer-Encoding"] == "quoted-printable"
    text = quopri.decodestring(entity.get_payload().encode()).decode("utf-8")
    assert text.replace("\r\n", "\n") == VIETNAMESE_BODY


def test_routing_headers_stay_outside_the_signed_part(signer: SignerIdentity) -> None:
    signed = sign_email(message(VIETNAMESE_BODY), signer)
    assert b"\n" not in signed.replace(b"\r\n", b"")  # canonical CRLF throughout
    head, body = signed.split(b"\r\n\r\n", 1)
    for name in (b"From:", b"To:", b"Subject:", b"Date:", b"Message-ID:"):
        assert re.search(rb"^" + name, head, re.MULTILINE)
        assert not re.search(rb"^" + name, body, re.MULTILINE)
    parsed = email.message_from_bytes(signed, policy=email.policy.default)
    assert parsed.get_content_type() == "multipart/signed"
    assert parsed.get_param("protocol") == "application/pkcs7-signature"
    assert parsed.get_param("micalg") == "sha-256"
    first, second = parsed.get_payload()
    assert first.get_content_type() == "text/plain"
    assert second.get_content_type() == "application/pkcs7-signature"


def test_time_stamped_mail_validates(sqlite_instance: Instance, signer: SignerIdentity) -> None:
    ctx = sqlite_instance.ctx
    signed = sign_email(message(VIETNAMESE_BODY), signer, timestamper=InProcessTimeStamper(ctx.tsa))
    report = validate_email(signed, trust_context(ctx))
    assert report.indication is Indication.TOTAL_PASSED, report.message_en
    assert report.signatures[0].timestamp_trusted is True
    assert report.signatures[0].format == "S/MIME (CAdES-B-T)"


def test_multipart_body_with_attachment_is_signed_whole(
    signer: SignerIdentity, tmp_path: Path
) -> None:
    boundary = "==part=="
    body = (
        f"--{boundary}\nContent-Type: text/plain; charset=utf-8\n\n{VIETNAMESE_BODY}\n"
        f'--{boundary}\nContent-Type: application/pdf; name="125.pdf"\n'
        "Content-Transfer-Encoding: base64\n\nJVBERi0xLjQKJSVFT0YK\n"
        f"--{boundary}--\n"
    )
    signed = sign_email(message(body, f'multipart/mixed; boundary="{boundary}"', "8bit"), signer)
    assert smime_verify(signed, signer, tmp_path).returncode == 0


def test_what_is_not_a_mail_is_refused(signer: SignerIdentity) -> None:
    with pytest.raises(InvalidInput, match="e-mail"):
        sign_email(b"\x00\x01 garbage without headers", signer)
    with pytest.raises(InvalidInput, match="From"):
        sign_email(b"To: a@b.vn\n\nbody\n", signer)
