"""Validating signed e-mail: kyso's S/MIME, openssl's (detached and opaque), failures."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest

from kyso.context import Context
from kyso.errors import InvalidInput
from kyso.pki import status
from kyso.signing.smime import sign_email
from kyso.signing.timestamps import InProcessTimeStamper
from kyso.store.models import RevocationReason
from kyso.trust import TrustContext, trust_context
from kyso.validation.email import validate_email
from kyso.validation.report import Indication, ScopeKind, SubIndication
from validation.test_cms_validation import (
    PemSigner,
    countersign,
    foreign_signer,
    local_text,
    openssl,
    pem_signer,
)

BODY = "Kính gửi Văn phòng UBND tỉnh,\nĐề nghị triển khai chữ ký số chuyên dùng.\nTrân trọng.\n"
MAIL = (
    "From: Tran Van Binh <binh@backan.gov.vn>\nTo: vanphong@backan.gov.vn\n"
    "Subject: Van ban so 125\nDate: Fri, 14 Mar 2025 09:15:00 +0700\nMIME-Version: 1.0\n"
    "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n" + BODY
).encode()
SIGNED_HEAD = (
    b'Content-Type: multipart/signed; protocol="application/pkcs7-signature"; boundary=b\n\n'
)
ASCII_TEXT = b"Kinh gui Van phong UBND tinh,\nDe nghi trien khai chu ky so.\n"


@pytest.fixture(scope="module")
def tools(sqlite_ctx: Context, tmp_path_factory: pytest.TempPathFactory) -> PemSigner:
    return pem_signer(
        sqlite_ctx, tmp_path_factory.mktemp("mail-signer"), emails=("binh@backan.gov.vn",)
    )


def openssl_signed(tools: PemSigner, directory: Path, *options: str) -> bytes:
    (directory / "body.txt").write_bytes(ASCII_TEXT)
    result = openssl(
        "smime",
        "-sign",
        "-text",
        "-in",
        directory / "body.txt",
        "-signer",
        tools.cert,
        "-inkey",
        tools.key,
        "-certfile",
        tools.issuing,
        "-from",
        "binh@backan.gov.vn",
        "-to",
        "vanphong@backan.gov.vn",
        "-subject",
        "Van ban so 125",
        "-out",
        directory / "signed.eml",
        *options,
    )
    assert result.returncode == 0, result.stderr
    return (directory / "signed.eml").read_bytes()


def test_kyso_signed_mail_is_total_passed(ctx: Context, tmp_path: Path) -> None:
    signer = pem_signer(ctx, tmp_path)
    trust = trust_context(ctx)
    signed = sign_email(MAIL, signer.identity, timestamper=InProcessTimeStamper(ctx.tsa))
    report = validate_email(signed, trust, name="van-ban-125.eml")
    assert report.document_kind == "email" and report.document == "van-ban-125.eml"
    (sig,) = report.signatures
    assert sig.indication is Indication.TOTAL_PASSED, sig.message_en
    assert sig.format == "S/MIME (CAdES-B-T)"
    assert sig.integrity and sig.trusted_chain and sig.timestamp_trusted


@pytest.mark.interop
def test_openssl_smime_mail_is_total_passed(
    tools: PemSigner, trust: TrustContext, tmp_path: Path
) -> None:
    signed = openssl_signed(tools, tmp_path)
    assert b'protocol="application/x-pkcs7-signature"' in signed  # the older name, accepted
    (sig,) = validate_email(signed, trust).signatures
    assert sig.indication is Indication.TOTAL_PASSED, sig.message_en
    assert sig.format == "S/MIME (CMS)"

    crlf = signed.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")  # as sent over SMTP
    assert validate_email(crlf, trust).passed


@pytest.mark.interop
def test_openssl_opaque_signed_mail_is_total_passed(
    tools: PemSigner, trust: TrustContext, tmp_path: Path
) -> None:
    signed = openssl_signed(tools, tmp_path, "-nodetach")
    assert b"application/x-pkcs7-mime" in signed or b"application/pkcs7-mime" in signed
    assert validate_email(signed, trust).passed


@pytest.mark.interop
def test_a_changed_body_is_hash_failure(
    tools: PemSigner, trust: TrustContext, tmp_path: Path
) -> None:
    for signed in (sign_email(MAIL, tools.identity), openssl_signed(tools, tmp_path)):
        tampered = signed.replace(b"trien khai", b"tam dung").replace(b"tri=E1=BB=83n", b"tam")
        assert tampered != signed
        (sig,) = validate_email(tampered, trust).signatures
        assert (sig.indication, sig.sub_indication) == (
            Indication.TOTAL_FAILED,
            SubIndication.HASH_FAILURE,
        )


def test_routing_headers_are_not_signed(tools: PemSigner, trust: TrustContext) -> None:
    """Relays rewrite routing headers; the signature covers the body part only."""
    signed = sign_email(MAIL, tools.identity)
    relayed = b"Received: from mx.backan.gov.vn\r\n" + signed.replace(
        b"Subject: Van ban so 125", b"Subject: [EXTERNAL] Van ban so 125"
    )
    assert validate_email(relayed, trust).passed


def test_revoked_signer_mail_gives_the_date(
    sqlite_ctx: Context, trust: TrustContext, tmp_path: Path
) -> None:
    signer = pem_signer(sqlite_ctx, tmp_path)
    signed = sign_email(MAIL, signer.identity)
    with sqlite_ctx.db.session() as session:
        revoked_at = status.revoke(
            session,
            sqlite_ctx.authority,
            signer.serial,
            RevocationReason.CESSATION_OF_OPERATION,
            "test",
        ).revoked_at
    (sig,) = validate_email(signed, trust).signatures
    assert (sig.indication, sig.sub_indication) == (
        Indication.INDETERMINATE,
        SubIndication.REVOKED_NO_POE,
    )
    vi, en = local_text(revoked_at)
    assert vi in sig.message_vi and en in sig.message_en


def test_foreign_signer_mail_is_no_certificate_chain_found(trust: TrustContext) -> None:
    (sig,) = validate_email(sign_email(MAIL, foreign_signer()), trust).signatures
    assert (sig.indication, sig.sub_indication) == (
        Indication.INDETERMINATE,
        SubIndication.NO_CERTIFICATE_CHAIN_FOUND,
    )


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x00\x01garbage that is not a message",
        MAIL,  # a plain, unsigned message
        SIGNED_HEAD + b"--b\nx\n--b--\n",
        SIGNED_HEAD + b"--b\nx\n",
        b'Content-Type: multipart/signed; protocol="application/pkcs7-signature"; boundary=b\n\n'
        b"--b\nContent-Type: text/plain\n\nx\n--b\nContent-Type: application/pkcs7-signature\n"
        b"Content-Transfer-Encoding: base64\n\n!!!not base64!!!\n--b--\n",
        b'Content-Type: multipart/signed; protocol="application/pkcs7-signature"; boundary=b\n\n'
        b"--b\nContent-Type: text/plain\n\nx\n--b\nContent-Type: application/pkcs7-signature\n"
        b"Content-Transfer-Encoding: base64\n\nbm90IGEgQ01T\n--b--\n",
        b"Content-Type: application/pkcs7-mime; smime-type=signed-data\n\nbm90IGEgQ01T\n",
    ],
    ids=[
        "empty",
        "garbage",
        "unsigned",
        "one-part",
        "unclosed",
        "bad-base64",
        "not-cms",
        "opaque-not-cms",
    ],
)
def test_garbage_mail_is_invalid_input(payload: bytes, trust: TrustContext) -> None:
    with pytest.raises(InvalidInput):
        validate_email(payload, trust)


@pytest.mark.interop
def test_what_a_signed_mail_covers_is_said(
    tools: PemSigner, trust: TrustContext, tmp_path: Path
) -> None:
    """S/MIME signs the body part (RFC 8551 §3.1): text and attachments, not the message's
    own header lines. The report says so, with the size of what is signed."""
    signed = openssl_signed(tools, tmp_path)
    (sig,) = validate_email(signed, trust).signatures
    (scope,) = sig.scope
    assert scope.kind is ScopeKind.FULL
    assert "Subject" in scope.description_en and "not signed" in scope.description_en
    assert "không được ký" in scope.description_vi
    assert "bytes" in scope.description_en

    opaque = openssl_signed(tools, tmp_path, "-nodetach")
    (sig,) = validate_email(opaque, trust).signatures
    assert [s.kind for s in sig.scope] == [ScopeKind.FULL]
    assert "inside the signature" in sig.scope[0].description_en


def test_a_countersigned_mail_reports_the_countersignature(
    tools: PemSigner, trust: TrustContext, sqlite_ctx: Context, tmp_path: Path
) -> None:
    signed = sign_email(MAIL, tools.identity)  # CRLF line ends throughout
    head, _, rest = signed.partition(b"\r\n\r\n")
    boundary = re.search(rb'boundary="([^"]+)"', head)
    assert boundary is not None
    marker = b"--" + boundary.group(1)
    parts = rest.split(marker)  # preamble, the signed entity, the signature, the close
    part_head, _, b64 = parts[2].partition(b"\r\n\r\n")
    der = base64.b64decode(b"".join(b64.split()))
    countersigned = countersign(der, pem_signer(sqlite_ctx, tmp_path / "countersigner"))
    encoded = base64.encodebytes(countersigned).replace(b"\n", b"\r\n")
    parts[2] = part_head + b"\r\n\r\n" + encoded + b"\r\n"
    mail = head + b"\r\n\r\n" + marker.join(parts)
    report = validate_email(mail, trust)
    (sig,) = report.signatures
    assert sig.indication is Indication.TOTAL_PASSED, sig.message_en
    (counter,) = sig.counter_signatures
    assert counter.indication is Indication.TOTAL_PASSED, counter.message_en
    assert counter.format.startswith("S/MIME")
    assert report.passed
