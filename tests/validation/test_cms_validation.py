"""Validating CMS/CAdES signatures: kyso's own, openssl's, and each failure named right.

The helpers at the top (a subscriber with a key file for the command-line tools, a foreign
CA and a foreign TSA made with cryptography) are used by the XML and e-mail validation
tests too.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import subprocess
import tracemalloc
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pypdfium2 as pdfium
import pytest
from asn1crypto import cms, core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from fixtures.pdf import samples
from pyhanko.pdf_utils.reader import PdfFileReader

from kyso import clock
from kyso.context import Context
from kyso.errors import InvalidInput
from kyso.keys.base import KeyAlgorithm
from kyso.keys.software import SoftwareKey
from kyso.pki import issuance, status
from kyso.pki.names import parse_subject
from kyso.pki.tsa import TimeStampAuthority
from kyso.signing.cades import run_sync, sign_cms
from kyso.signing.identity import SignerIdentity, from_keystore
from kyso.signing.pades import sign_pdf
from kyso.signing.timestamps import InProcessTimeStamper, Level
from kyso.store.models import Profile, RevocationReason
from kyso.trust import TrustContext, trust_context
from kyso.validation import render
from kyso.validation.cms import path_failure, validate_cms
from kyso.validation.pdf import validate_pdf
from kyso.validation.report import (
    Indication,
    RevocationStatus,
    ScopeKind,
    SubIndication,
    ValidationReport,
)
from kyso.validation.verify import detect_kind, verify
from kyso.web.ui.guard import PageState
from kyso.web.ui.templating import environment

DATA = "Quyết định số 42/QĐ-UBND ngày 14/3/2025 của UBND tỉnh Bắc Kạn.\n".encode()
PEM = serialization.Encoding.PEM
DER = serialization.Encoding.DER


# -- helpers shared with the XML and e-mail validation tests -----------------------------


@dataclass
class PemSigner:
    """A subscriber of kyso's CA whose key sits in a file, for openssl and xmlsec1."""

    identity: SignerIdentity
    serial: str
    key: Path
    cert: Path
    chain: Path  # issuing CA + root
    issuing: Path
    root: Path


def pem_signer(ctx: Context, directory: Path, *, emails: tuple[str, ...] = ()) -> PemSigner:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = parse_subject("CN=Trần Văn Bình,O=UBND tỉnh Bắc Kạn,L=Bắc Kạn,C=VN")
    with ctx.db.session() as session:
        issued = issuance.issue(
            session,
            ctx.authority,
            issuance.IssueSpec(Profile.INDIVIDUAL, subject, private.public_key(), emails=emails),
            "test",
        )
    chain = [i.certificate for i in ctx.authority.chain()]
    directory.mkdir(parents=True, exist_ok=True)
    files = {
        name: directory / f"{name}.pem" for name in ("key", "cert", "chain", "issuing", "root")
    }
    files["key"].write_bytes(
        private.private_bytes(PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    files["cert"].write_bytes(issued.certificate.public_bytes(PEM))
    files["chain"].write_bytes(b"".join(c.public_bytes(PEM) for c in chain))
    files["issuing"].write_bytes(chain[0].public_bytes(PEM))
    files["root"].write_bytes(chain[1].public_bytes(PEM))
    identity = SignerIdentity(SoftwareKey("pem", private), issued.certificate, chain)
    return PemSigner(identity, issued.serial, **files)


def server_signer(ctx: Context) -> tuple[SignerIdentity, str]:
    """A subscriber whose key kyso holds; (identity, certificate serial)."""
    with ctx.db.session() as session:
        issued = issuance.issue_with_server_key(
            session,
            ctx.authority,
            profile=Profile.ORGANIZATION,
            subject="CN=Văn phòng UBND tỉnh Bắc Kạn,O=UBND tỉnh Bắc Kạn,C=VN",
            algorithm=KeyAlgorithm.EC_P256,
            actor="test",
        )
    return from_keystore(ctx, issued.row.key_location.split(":", 1)[1]), issued.serial


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Công ty Chứng thực Lạ"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _usage(*, signer: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=signer,
        content_commitment=signer,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=not signer,
        crl_sign=not signer,
        encipher_only=False,
        decipher_only=False,
    )


def foreign_certificate(
    cn: str, *, eku: list[x509.ObjectIdentifier], eku_critical: bool = False
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate, x509.Certificate]:
    """(key, certificate, root) from a CA made here, which kyso does not trust."""
    now = dt.datetime.now(dt.UTC)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = (
        x509.CertificateBuilder()
        .subject_name(_name("Root CA lạ"))
        .issuer_name(_name("Root CA lạ"))
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_usage(signer=False), critical=True)
        .sign(root_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(root.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(signer=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage(eku), critical=eku_critical)
        .sign(root_key, hashes.SHA256())
    )
    return key, cert, root


def foreign_signer() -> SignerIdentity:
    key, cert, root = foreign_certificate("Người ký lạ", eku=[ExtendedKeyUsageOID.EMAIL_PROTECTION])
    return SignerIdentity(SoftwareKey("foreign", key), cert, [root])


def foreign_tsa() -> TimeStampAuthority:
    key, cert, root = foreign_certificate(
        "TSA lạ", eku=[ExtendedKeyUsageOID.TIME_STAMPING], eku_critical=True
    )
    der = serialization.Encoding.DER
    return TimeStampAuthority(
        SoftwareKey("foreign-tsa", key),
        cert.public_bytes(der),
        [root.public_bytes(der)],
        policy_oid="1.3.6.1.4.1.99999.77.1",
    )


def openssl(*args: str | Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["openssl", *map(str, args)], capture_output=True, timeout=60, check=False
    )


def local_text(moment: dt.datetime) -> tuple[str, str]:
    """How a date appears in the Vietnamese and English sentences (Vietnam time)."""
    local = clock.local(moment)
    return local.strftime("%d/%m/%Y"), local.strftime("%Y-%m-%d")


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tools(sqlite_ctx: Context, tmp_path_factory: pytest.TempPathFactory) -> PemSigner:
    return pem_signer(sqlite_ctx, tmp_path_factory.mktemp("cms-signer"))


@pytest.fixture(scope="module")
def kyso_signature(tools: PemSigner) -> bytes:
    return sign_cms(DATA, tools.identity)


# -- kyso's and others' signatures pass ----------------------------------------------------


@pytest.mark.parametrize("level", [Level.B_B, Level.B_T, Level.B_LT])
def test_kyso_signature_is_total_passed(ctx: Context, level: Level) -> None:
    identity, _ = server_signer(ctx)
    trust = trust_context(ctx)
    signature = sign_cms(
        DATA, identity, level=level, timestamper=InProcessTimeStamper(ctx.tsa), trust=trust
    )
    report = validate_cms(signature, DATA, trust, name="quyet-dinh.pdf.p7s")
    assert report.document_kind == "cms" and report.document == "quyet-dinh.pdf.p7s"
    (sig,) = report.signatures
    assert sig.indication is Indication.TOTAL_PASSED, sig.message_en
    assert sig.sub_indication is None
    assert sig.format == f"CAdES-{level.value}"
    assert sig.integrity and sig.trusted_chain
    assert sig.chain[0].subject == identity.certificate.subject.rfc4514_string()
    assert len(sig.chain) == 3
    assert sig.claimed_signing_time is not None
    assert sig.revocation is not None and sig.revocation.status is RevocationStatus.GOOD
    assert sig.revocation.source == ("ocsp-embedded" if level is Level.B_LT else "kyso-ca")
    assert (sig.timestamp_time is not None) == level.needs_timestamp
    assert sig.timestamp_trusted is (True if level.needs_timestamp else None)
    assert "hợp lệ" in sig.message_vi and "is valid" in sig.message_en
    assert report.message_vi and report.message_en
    assert report.to_dict()["indication"] == "TOTAL-PASSED"


@pytest.mark.interop
@pytest.mark.parametrize("attached", [False, True], ids=["detached", "attached"])
def test_openssl_cms_signature_is_total_passed(
    tools: PemSigner, trust: TrustContext, tmp_path: Path, attached: bool
) -> None:
    (tmp_path / "data").write_bytes(DATA)
    result = openssl(
        "cms",
        "-sign",
        "-binary",
        "-in",
        tmp_path / "data",
        "-signer",
        tools.cert,
        "-inkey",
        tools.key,
        "-certfile",
        tools.issuing,
        "-outform",
        "DER",
        "-out",
        tmp_path / "s.p7s",
        *(["-nodetach"] if attached else []),
    )
    assert result.returncode == 0, result.stderr
    signature = (tmp_path / "s.p7s").read_bytes()
    report = validate_cms(signature, None if attached else DATA, trust)
    (sig,) = report.signatures
    assert sig.indication is Indication.TOTAL_PASSED, sig.message_en
    assert sig.format == "CMS"  # openssl adds no signing-certificate-v2 without -cades
    assert sig.signer is not None and "Trần Văn Bình" in sig.signer.subject

    pem = openssl("cms", "-cmsout", "-inform", "DER", "-in", tmp_path / "s.p7s", "-outform", "PEM")
    assert validate_cms(pem.stdout, None if attached else DATA, trust).passed


@pytest.mark.interop
def test_sha1_cms_is_intact_but_crypto_constraints_failure(
    tools: PemSigner, trust: TrustContext, tmp_path: Path
) -> None:
    (tmp_path / "data").write_bytes(DATA)
    result = openssl(
        "cms",
        "-sign",
        "-binary",
        "-md",
        "sha1",
        "-in",
        tmp_path / "data",
        "-signer",
        tools.cert,
        "-inkey",
        tools.key,
        "-outform",
        "DER",
        "-out",
        tmp_path / "s.p7s",
    )
    assert result.returncode == 0, result.stderr
    (sig,) = validate_cms((tmp_path / "s.p7s").read_bytes(), DATA, trust).signatures
    assert sig.integrity
    assert (sig.indication, sig.sub_indication) == (
        Indication.INDETERMINATE,
        SubIndication.CRYPTO_CONSTRAINTS_FAILURE,
    )
    assert "algorithm" in sig.message_en and "thuật toán" in sig.message_vi


# -- integrity -----------------------------------------------------------------------------


def test_a_flipped_byte_in_the_data_is_hash_failure(
    kyso_signature: bytes, trust: TrustContext
) -> None:
    flipped = bytearray(DATA)
    flipped[10] ^= 0x01
    (sig,) = validate_cms(kyso_signature, bytes(flipped), trust).signatures
    assert (sig.indication, sig.sub_indication) == (
        Indication.TOTAL_FAILED,
        SubIndication.HASH_FAILURE,
    )
    assert not sig.integrity
    assert "changed after it was signed" in sig.message_en and "thay đổi" in sig.message_vi


def test_a_flipped_byte_inside_an_attached_signature_is_hash_failure(
    tools: PemSigner, trust: TrustContext
) -> None:
    attached = sign_cms(DATA, tools.identity, detached=False)
    offset = attached.index(DATA[:20]) + 5
    damaged = attached[:offset] + bytes([attached[offset] ^ 0x01]) + attached[offset + 1 :]
    (sig,) = validate_cms(damaged, None, trust).signatures
    assert (sig.indication, sig.sub_indication) == (
        Indication.TOTAL_FAILED,
        SubIndication.HASH_FAILURE,
    )


def test_detached_signature_with_other_data_is_hash_failure(
    kyso_signature: bytes, trust: TrustContext
) -> None:
    (sig,) = validate_cms(kyso_signature, b"another file entirely", trust).signatures
    assert (sig.indication, sig.sub_indication) == (
        Indication.TOTAL_FAILED,
        SubIndication.HASH_FAILURE,
    )


def test_a_damaged_signature_value_is_sig_crypto_failure(
    tools: PemSigner, trust: TrustContext
) -> None:
    signature = sign_cms(DATA, tools.identity)
    value = cms.ContentInfo.load(signature)["content"]["signer_infos"][0]["signature"].native
    damaged = signature.replace(value, value[:-1] + bytes([value[-1] ^ 0xFF]))
    (sig,) = validate_cms(damaged, DATA, trust).signatures
    assert (sig.indication, sig.sub_indication) == (
        Indication.TOTAL_FAILED,
        SubIndication.SIG_CRYPTO_FAILURE,
    )


def test_detached_signature_without_its_data_is_signed_data_not_found(
    kyso_signature: bytes, trust: TrustContext
) -> None:
    (sig,) = validate_cms(kyso_signature, None, trust).signatures
    assert (sig.indication, sig.sub_indication) == (
        Indication.INDETERMINATE,
        SubIndication.SIGNED_DATA_NOT_FOUND,
    )


# -- the signer's certificate ----------------------------------------------------------------


def test_signer_revoked_before_signing_is_total_failed_revoked(
    sqlite_ctx: Context, trust: TrustContext
) -> None:
    identity, serial = server_signer(sqlite_ctx)
    with sqlite_ctx.db.session() as session:
        revoked = status.revoke(
            session, sqlite_ctx.authority, serial, RevocationReason.KEY_COMPROMISE, "test"
        )
        revoked_at = revoked.revoked_at
    # Still signing with the key afterwards: the time-stamp proves the signature is later.
    signature = sign_cms(
        DATA, identity, level=Level.B_T, timestamper=InProcessTimeStamper(sqlite_ctx.tsa)
    )
    (sig,) = validate_cms(signature, DATA, trust).signatures
    assert (sig.indication, sig.sub_indication) == (Indication.TOTAL_FAILED, SubIndication.REVOKED)
    assert sig.revocation is not None and sig.revocation.status is RevocationStatus.REVOKED
    assert sig.revocation.revoked_at == revoked_at and sig.revocation.reason == "key_compromise"
    vi, en = local_text(revoked_at)
    assert vi in sig.message_vi and en in sig.message_en
    assert "thu hồi" in sig.message_vi and "revoked" in sig.message_en


def test_signer_revoked_without_time_stamp_is_revoked_no_poe(
    sqlite_ctx: Context, trust: TrustContext
) -> None:
    identity, serial = server_signer(sqlite_ctx)
    signature = sign_cms(DATA, identity)  # B-B: nothing proves when it was made
    with sqlite_ctx.db.session() as session:
        revoked_at = status.revoke(
            session, sqlite_ctx.authority, serial, RevocationReason.AFFILIATION_CHANGED, "test"
        ).revoked_at
    (sig,) = validate_cms(signature, DATA, trust).signatures
    assert (sig.indication, sig.sub_indication) == (
        Indication.INDETERMINATE,
        SubIndication.REVOKED_NO_POE,
    )
    vi, en = local_text(revoked_at)
    assert vi in sig.message_vi and en in sig.message_en


def test_signature_time_stamped_before_revocation_stays_valid(
    sqlite_ctx: Context, trust: TrustContext, fake_clock: clock.FakeClock
) -> None:
    identity, serial = server_signer(sqlite_ctx)
    signature = sign_cms(
        DATA, identity, level=Level.B_T, timestamper=InProcessTimeStamper(sqlite_ctx.tsa)
    )
    fake_clock.advance(1)  # revocation times have whole seconds
    with sqlite_ctx.db.session() as session:
        status.revoke(session, sqlite_ctx.authority, serial, RevocationReason.SUPERSEDED, "test")
    (sig,) = validate_cms(signature, DATA, trust).signatures
    assert sig.indication is Indication.TOTAL_PASSED, sig.message_en
    # Good at the signing time; the later revocation is kept as a date and said.
    assert sig.revocation is not None and sig.revocation.status is RevocationStatus.GOOD
    assert sig.revocation.revoked_at is not None
    assert "revoked later" in sig.message_en


def test_suspended_signer_is_try_later_with_the_date(
    sqlite_ctx: Context, trust: TrustContext
) -> None:
    identity, serial = server_signer(sqlite_ctx)
    signature = sign_cms(DATA, identity)
    with sqlite_ctx.db.session() as session:
        held_at = status.suspend(session, sqlite_ctx.authority, serial, "test").revoked_at
    (sig,) = validate_cms(signature, DATA, trust).signatures
    assert (sig.indication, sig.sub_indication) == (
        Indication.INDETERMINATE,
        SubIndication.TRY_LATER,
    )
    assert sig.revocation is not None and sig.revocation.status is RevocationStatus.SUSPENDED
    vi, en = local_text(held_at)
    assert vi in sig.message_vi and "tạm dừng" in sig.message_vi
    assert en in sig.message_en and "suspended" in sig.message_en

    with sqlite_ctx.db.session() as session:
        status.restore(session, sqlite_ctx.authority, serial, "test")
    assert validate_cms(signature, DATA, trust).passed


def test_signer_from_another_ca_is_no_certificate_chain_found(trust: TrustContext) -> None:
    signature = sign_cms(DATA, foreign_signer())
    (sig,) = validate_cms(signature, DATA, trust).signatures
    assert sig.integrity
    assert (sig.indication, sig.sub_indication) == (
        Indication.INDETERMINATE,
        SubIndication.NO_CERTIFICATE_CHAIN_FOUND,
    )
    assert not sig.trusted_chain
    assert sig.revocation is not None and sig.revocation.status is RevocationStatus.NOT_CHECKED
    assert "does not chain to a trusted root" in sig.message_en


def test_time_stamp_from_an_untrusted_tsa_is_reported_untrusted(
    tools: PemSigner, trust: TrustContext
) -> None:
    signature = sign_cms(
        DATA, tools.identity, level=Level.B_T, timestamper=InProcessTimeStamper(foreign_tsa())
    )
    (sig,) = validate_cms(signature, DATA, trust).signatures
    assert sig.timestamp_time is not None and sig.timestamp_trusted is False
    assert sig.trusted_chain and sig.integrity  # the signer is fine; the time cannot be used
    assert (sig.indication, sig.sub_indication) == (
        Indication.INDETERMINATE,
        SubIndication.NO_CERTIFICATE_CHAIN_FOUND,
    )
    assert "time-stamping authority that is not trusted" in sig.message_en
    assert "không được tin cậy" in sig.message_vi


# -- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda s: b"",
        lambda s: b"this is not a signature at all",
        lambda s: s[: len(s) // 2],  # truncated
        lambda s: s[:-1],
        lambda s: s + b"\x00trailing",
        lambda s: b"-----BEGIN PKCS7-----\nbm90IGEgc2lnbmF0dXJl\n-----END PKCS7-----\n",
        lambda s: b"\x30\x03\x06\x01\x00",
        lambda s: cms.ContentInfo({"content_type": "data", "content": b"x"}).dump(),
    ],
    ids=[
        "empty",
        "garbage",
        "half",
        "one-byte-short",
        "trailing",
        "pem-garbage",
        "tiny",
        "not-signed-data",
    ],
)
def test_garbage_and_truncated_cms_are_invalid_input(
    make, kyso_signature: bytes, trust: TrustContext
) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidInput) as raised:
        validate_cms(make(kyso_signature), DATA, trust)
    assert "CMS" in raised.value.message("en") or "signature" in raised.value.message("en")


def test_twenty_megabytes_validate_without_copies(tools: PemSigner, trust: TrustContext) -> None:
    data = bytes(range(256)) * (20 * 4096)  # 20 MiB
    signature = sign_cms(data, tools.identity)
    tracemalloc.start()
    try:
        report = validate_cms(signature, data, trust)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.passed
    assert peak < 5 * 1024 * 1024, f"validation allocated {peak} bytes for 20 MiB of data"


# -- what kind of file it is ---------------------------------------------------------------


@pytest.fixture(scope="module")
def pdf_document() -> bytes:
    return samples.official_document()


def test_attached_cms_whose_content_is_a_pdf_is_read_as_cms(
    tools: PemSigner, trust: TrustContext, pdf_document: bytes
) -> None:
    """A .p7m wrapping a PDF starts with DER, but its first kilobyte holds ``%PDF-``: it is
    a CMS signature over the PDF, not a PDF (EU DSS reads it so)."""
    attached = sign_cms(pdf_document, tools.identity, detached=False)
    assert b"%PDF-" in attached[:1024]
    assert detect_kind(attached) == "cms"
    report = verify(attached, trust, name="quyet-dinh.pdf.p7m")
    assert report.document_kind == "cms"
    assert report.passed, report.to_dict()

    pem = subprocess.run(
        ["openssl", "cms", "-cmsout", "-inform", "DER", "-outform", "PEM"],
        input=attached,
        capture_output=True,
        check=True,
    )
    assert detect_kind(pem.stdout) == "cms"


def test_a_pdf_is_still_a_pdf(pdf_document: bytes) -> None:
    assert detect_kind(pdf_document) == "pdf"
    # leading bytes before the header (allowed by ISO 32000 readers), even DER-looking ones
    assert detect_kind(b"\x30\x82\x01\x00junk\n" + pdf_document) == "pdf"


@pytest.mark.parametrize(
    "head",
    [
        b"\x30\x80\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07\x02",  # BER, indefinite length
        b"\x30\x83\x01\x00\x00\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07\x02",
    ],
    ids=["indefinite", "long-form"],
)
def test_cms_is_recognised_by_its_content_info(head: bytes) -> None:
    assert detect_kind(head + b"%PDF-1.7\n" + b"\x00" * 64) == "cms"


# -- signatures made by hand, as other tools make them ---------------------------------------


def _tlv(tag: int, body: bytes) -> bytes:
    size = len(body)
    if size < 0x80:
        return bytes([tag, size]) + body
    octets = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(octets)]) + octets + body


def _attribute(oid: str, *values: bytes) -> bytes:
    return _tlv(0x30, core.ObjectIdentifier(oid).dump() + _tlv(0x31, b"".join(values)))


def _signed_attributes(digest: bytes, *extra: bytes, content_type: bool = True) -> bytes:
    """A SET OF attributes in DER order, as raw bytes (so odd values can be put in)."""
    attrs = [
        _attribute("1.2.840.113549.1.9.4", core.OctetString(digest).dump()),  # message-digest
        _attribute(
            "1.2.840.113549.1.9.5",  # signing-time
            core.UTCTime(dt.datetime.now(dt.UTC).replace(microsecond=0)).dump(),
        ),
        *extra,
    ]
    if content_type:
        attrs.append(
            _attribute("1.2.840.113549.1.9.3", core.ObjectIdentifier("1.2.840.113549.1.7.1").dump())
        )
    longest = max(map(len, attrs))
    return _tlv(0x31, b"".join(sorted(attrs, key=lambda a: a.ljust(longest, b"\x00"))))


def _signer_info(signer: PemSigner, signed_attrs: bytes) -> cms.SignerInfo:
    key = serialization.load_pem_private_key(signer.key.read_bytes(), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    cert = asn1_x509.Certificate.load(signer.identity.certificate.public_bytes(DER))
    return cms.SignerInfo(
        {
            "version": "v1",
            "sid": cms.SignerIdentifier(
                {
                    "issuer_and_serial_number": {
                        "issuer": cert.issuer,
                        "serial_number": cert.serial_number,
                    }
                }
            ),
            "digest_algorithm": {"algorithm": "sha256"},
            "signed_attrs": cms.CMSAttributes.load(signed_attrs),
            "signature_algorithm": {"algorithm": "sha256_rsa"},
            "signature": key.sign(signed_attrs, padding.PKCS1v15(), hashes.SHA256()),
        }
    )


def cms_with_attributes(data: bytes, signer: PemSigner, *extra: bytes) -> bytes:
    """A detached CMS whose signed attributes include ``extra`` (raw DER attributes)."""
    info = _signer_info(signer, _signed_attributes(hashlib.sha256(data).digest(), *extra))
    cert = asn1_x509.Certificate.load(signer.identity.certificate.public_bytes(DER))
    signed_data = cms.SignedData(
        {
            "version": "v1",
            "digest_algorithms": [{"algorithm": "sha256"}],
            "encap_content_info": {"content_type": "data"},
            "certificates": [cert],
            "signer_infos": [info],
        }
    )
    return cms.ContentInfo({"content_type": "signed_data", "content": signed_data}).dump()


def countersign(signature: bytes, countersigner: PemSigner, *, over: bytes | None = None) -> bytes:
    """``signature`` with a countersignature (RFC 5652 §11.4) by ``countersigner`` added to
    the last signature or countersignature of its first signer. The countersignature signs
    the digest of that signature value, or of ``over`` to make one that does not match."""
    content_info = cms.ContentInfo.load(signature)
    signed_data = content_info["content"]
    parent = target = signed_data["signer_infos"][0]
    chain = [parent]
    while True:
        nested = [
            a["values"][0]
            for a in (target["unsigned_attrs"] or [])
            if a["type"].native == "counter_signature"
        ]
        if not nested:
            break
        target = nested[0]
        chain.append(target)
    value = target["signature"].native if over is None else over
    counter = _signer_info(
        countersigner,
        _signed_attributes(hashlib.sha256(value).digest(), content_type=False),
    )
    # Rebuild the chain of unsigned attributes bottom-up, adding the new countersignature.
    new = counter
    for info in reversed(chain):
        others = [
            a for a in (info["unsigned_attrs"] or []) if a["type"].native != "counter_signature"
        ]
        info = cms.SignerInfo.load(info.dump())
        info["unsigned_attrs"] = cms.CMSAttributes(
            [*others, cms.CMSAttribute({"type": "counter_signature", "values": [new]})]
        )
        new = info
    cert = asn1_x509.Certificate.load(countersigner.identity.certificate.public_bytes(DER))
    certs = [c for c in signed_data["certificates"] or []]
    signed_data["certificates"] = cms.CertificateSet(
        [*certs, cms.CertificateChoices({"certificate": cert})]
    )
    signed_data["signer_infos"] = cms.SignerInfos([new])
    return content_info.dump()


@pytest.fixture(scope="module")
def countersigner(sqlite_ctx: Context, tmp_path_factory: pytest.TempPathFactory) -> PemSigner:
    return pem_signer(sqlite_ctx, tmp_path_factory.mktemp("cms-countersigner"))


def test_a_signed_attribute_asn1crypto_cannot_parse_is_noted_not_damaged(
    tools: PemSigner, trust: TrustContext
) -> None:
    """EU DSS's cades-enveloping.pkcs7 carries a signer-attributes-v2 that asn1crypto cannot
    parse strictly; the signature is over the attributes' bytes as received, so it can be
    verified all the same, and the odd attribute is said."""
    odd = _attribute("0.4.0.19122.1.1", b"\x02\x01\x05")  # signer-attributes-v2: an INTEGER
    unknown = _attribute("1.3.6.1.4.1.99999.1.1", core.UTF8String("ghi chú").dump())
    signature = cms_with_attributes(DATA, tools, odd, unknown)
    with pytest.raises(ValueError):
        cms.ContentInfo.load(signature)["content"]["signer_infos"]._parse_children(recurse=True)

    (sig,) = validate_cms(signature, DATA, trust).signatures
    assert sig.indication is Indication.TOTAL_PASSED, sig.message_en
    assert sig.integrity
    notes = [n.text_en for n in sig.notes]
    assert any("signer_attributes_v2" in n and "could not be read" in n for n in notes), notes
    assert any("1.3.6.1.4.1.99999.1.1" in n and "does not interpret" in n for n in notes), notes
    assert all(n.text_vi for n in sig.notes)


def test_signed_attributes_out_of_der_order_verify_over_their_der_encoding(
    tools: PemSigner, trust: TrustContext
) -> None:
    """RFC 5652 §5.4: the signature is over the DER encoding of the signed attributes; a
    signer may send them in another order (EU DSS's DSS-667 files)."""
    signature = cms_with_attributes(DATA, tools)
    info = cms.ContentInfo.load(signature)["content"]["signer_infos"][0]
    attrs = info["signed_attrs"]
    elements = [a.dump() for a in attrs]
    reordered = _tlv(0xA0, b"".join(reversed(elements)))
    der = attrs.dump()
    assert reordered != der and len(reordered) == len(der)
    (sig,) = validate_cms(signature.replace(der, reordered), DATA, trust).signatures
    assert sig.indication is Indication.TOTAL_PASSED, sig.message_en
    assert any("DER" in n.text_en for n in sig.notes)


def test_nul_padding_after_the_cms_is_ignored(tools: PemSigner, trust: TrustContext) -> None:
    padded = sign_cms(DATA, tools.identity) + b"\x00" * 2048
    assert validate_cms(padded, DATA, trust).passed


def test_a_countersignature_is_reported_with_its_own_verdict(
    tools: PemSigner, countersigner: PemSigner, trust: TrustContext
) -> None:
    signature = countersign(sign_cms(DATA, tools.identity), countersigner)
    report = validate_cms(signature, DATA, trust)
    (sig,) = report.signatures
    assert sig.indication is Indication.TOTAL_PASSED, sig.message_en
    (counter,) = sig.counter_signatures
    assert counter.indication is Indication.TOTAL_PASSED, counter.message_en
    assert counter.integrity and counter.trusted_chain
    assert counter.signer is not None
    assert counter.signer.serial == countersigner.identity.certificate.serial_number.__format__("x")
    assert "countersignature" in counter.format
    assert [s.kind for s in counter.scope] == [ScopeKind.SIGNATURE]
    assert "countersign" in counter.message_en and "xác nhận" in counter.message_vi
    assert report.passed
    assert "countersignature" in report.message_en
    again = ValidationReport.from_dict(report.to_dict())
    assert again.signatures[0].counter_signatures[0].indication is Indication.TOTAL_PASSED


def test_a_countersignature_that_does_not_match_fails_on_its_own(
    tools: PemSigner, countersigner: PemSigner, trust: TrustContext
) -> None:
    """As EU DSS reports it: the countersignature is a signature of its own, TOTAL-FAILED;
    the signature it was meant to countersign keeps its own verdict; and the document is not
    TOTAL-PASSED, since not every signature on it is valid."""
    signature = countersign(sign_cms(DATA, tools.identity), countersigner, over=b"another value")
    report = validate_cms(signature, DATA, trust)
    (sig,) = report.signatures
    assert sig.indication is Indication.TOTAL_PASSED
    (counter,) = sig.counter_signatures
    assert (counter.indication, counter.sub_indication) == (
        Indication.TOTAL_FAILED,
        SubIndication.HASH_FAILURE,
    )
    assert report.indication is Indication.TOTAL_FAILED and not report.passed
    assert "1 not valid" in report.message_en
    assert "not the one it was made over" in counter.message_en
    assert "document was changed" not in counter.message_en


def test_countersignatures_of_countersignatures_are_followed(
    tools: PemSigner, countersigner: PemSigner, trust: TrustContext
) -> None:
    signature = countersign(countersign(sign_cms(DATA, tools.identity), countersigner), tools)
    (sig,) = validate_cms(signature, DATA, trust).signatures
    (counter,) = sig.counter_signatures
    (inner,) = counter.counter_signatures
    assert inner.indication is Indication.TOTAL_PASSED, inner.message_en
    assert inner.field_name == "countersignature 1.1.1"


def test_what_a_cms_signature_covers_is_said(tools: PemSigner, trust: TrustContext) -> None:
    (detached,) = validate_cms(sign_cms(DATA, tools.identity), DATA, trust).signatures
    (scope,) = detached.scope
    assert scope.kind is ScopeKind.DETACHED
    assert hashlib.sha256(DATA).hexdigest() in scope.description_en
    assert str(len(DATA)) in scope.description_vi

    attached = sign_cms(DATA, tools.identity, detached=False)
    (sig,) = validate_cms(attached, None, trust).signatures
    assert [s.kind for s in sig.scope] == [ScopeKind.FULL]

    (missing,) = validate_cms(sign_cms(DATA, tools.identity), None, trust).signatures
    assert [s.kind for s in missing.scope] == [ScopeKind.NOTHING]


# -- reasons name the real cause --------------------------------------------------------------


def _chain_of_three(
    *, ca_days: tuple[int, int], signer_days: tuple[int, int], crl: bool = False
) -> tuple[SignerIdentity, x509.Certificate, x509.Certificate]:
    """(signer, intermediate, root) of a CA made here; validity in days from now."""
    now = dt.datetime.now(dt.UTC)

    def make(
        cn: str, issuer: x509.Name, signing_key, key, days: tuple[int, int], *, ca: bool
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now + dt.timedelta(days=days[0]))
            .not_valid_after(now + dt.timedelta(days=days[1]))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(_usage(signer=not ca), critical=True)
        )
        if crl and not ca:
            point = x509.DistributionPoint(
                [x509.UniformResourceIdentifier("http://crl.invalid/ca.crl")], None, None, None
            )
            builder = builder.add_extension(x509.CRLDistributionPoints([point]), critical=False)
        return builder.sign(signing_key, hashes.SHA256())

    root_key, ca_key, key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    root = make("Root CA lạ", _name("Root CA lạ"), root_key, root_key, (-400, 4000), ca=True)
    ca = make("CA trung gian lạ", root.subject, root_key, ca_key, ca_days, ca=True)
    cert = make("Người ký lạ", ca.subject, ca_key, key, signer_days, ca=False)
    return SignerIdentity(SoftwareKey("chain", key), cert, [ca, root]), ca, root


def test_an_expired_ca_certificate_is_named_not_the_signers() -> None:
    identity, ca, root = _chain_of_three(ca_days=(-300, -1), signer_days=(-200, 200))
    (sig,) = validate_cms(sign_cms(DATA, identity), DATA, TrustContext([root])).signatures
    assert (sig.indication, sig.sub_indication) == (
        Indication.INDETERMINATE,
        SubIndication.OUT_OF_BOUNDS_NO_POE,
    )
    assert "CA trung gian lạ" in sig.message_en and "CA certificate" in sig.message_en
    assert "signer's certificate expired" not in sig.message_en
    vi, en = local_text(ca.not_valid_after_utc)
    assert vi in sig.message_vi and en in sig.message_en


def test_a_past_moment_validates_a_signature_whose_certificate_has_since_expired() -> None:
    identity, _, root = _chain_of_three(ca_days=(-300, 300), signer_days=(-20, -2))
    signature = sign_cms(DATA, identity)
    trust = TrustContext([root])
    (now,) = validate_cms(signature, DATA, trust).signatures
    assert now.sub_indication is SubIndication.OUT_OF_BOUNDS_NO_POE
    then = dt.datetime.now(dt.UTC) - dt.timedelta(days=10)
    report = validate_cms(signature, DATA, trust, moment=then)
    assert report.passed, report.signatures[0].message_en
    assert report.validated_at == then
    attached = sign_cms(DATA, identity, detached=False)
    assert verify(attached, trust, moment=then).passed
    assert not verify(attached, trust).passed


def test_missing_revocation_data_is_never_chain_constraints(
    tmp_path: Path,
) -> None:
    """A signer whose CA publishes a CRL that nobody supplied: the revocation status could not
    be checked (EN 319 102-1 TRY_LATER), whatever the format; not a fault of the chain."""
    identity, ca, root = _chain_of_three(ca_days=(-300, 300), signer_days=(-20, 200), crl=True)
    trust = TrustContext([root])
    (sig,) = validate_cms(sign_cms(DATA, identity), DATA, trust).signatures
    assert (sig.indication, sig.sub_indication) == (
        Indication.INDETERMINATE,
        SubIndication.TRY_LATER,
    )
    assert "revocation" in sig.message_en and "thu hồi" in sig.message_vi

    # pyHanko reports the same case in a PDF as a general chain failure; kyso's reading of
    # certvalidator's error names it.
    signed = sign_pdf(samples.official_document(), identity)
    (pdf_sig,) = validate_pdf(signed, trust).signatures
    assert pdf_sig.sub_indication is not SubIndication.CHAIN_CONSTRAINTS_FAILURE
    embedded = PdfFileReader(io.BytesIO(signed)).embedded_signatures[0]
    context = trust.validation_context(for_certs=[identity.certificate])
    others = [asn1_x509.Certificate.load(c.public_bytes(DER)) for c in (ca, root)]
    outcome = run_sync(path_failure(embedded.signer_cert, others, context))
    assert outcome == (Indication.INDETERMINATE, SubIndication.TRY_LATER)


# -- the reports -------------------------------------------------------------------------------


def test_reports_show_countersignatures_what_is_covered_and_notes(
    tools: PemSigner, countersigner: PemSigner, trust: TrustContext
) -> None:
    unknown = _attribute("1.3.6.1.4.1.99999.1.1", core.UTF8String("ghi chú").dump())
    signature = countersign(
        cms_with_attributes(DATA, tools, unknown), countersigner, over=b"another value"
    )
    report = validate_cms(signature, DATA, trust, name="quyet-dinh.pdf.p7s")
    serial = format(countersigner.identity.certificate.serial_number, "x")
    digest = hashlib.sha256(DATA).hexdigest()

    html = render.to_html(report, "en")
    assert "Countersignature 1.1" in html and serial in html
    assert "TOTAL-FAILED / HASH_FAILURE" in html
    assert digest in html and "1.3.6.1.4.1.99999.1.1" in html

    document = pdfium.PdfDocument(render.to_pdf(report, "vi"))
    text = "".join(page.get_textpage().get_text_range() for page in document)
    assert "Chữ ký xác nhận 1.1: KHÔNG HỢP LỆ" in text
    compact = "".join(text.split())  # long lines wrap
    assert digest in compact and "1.3.6.1.4.1.99999.1.1" in compact

    again = ValidationReport.from_dict(report.to_dict())  # as the web page keeps it
    request = SimpleNamespace(url=SimpleNamespace(path="/verify/report/x"), query_params={})
    for lang, title in (("en", "Countersignature 1.1"), ("vi", "Chữ ký xác nhận 1.1")):
        page = PageState(request=request, lang=lang, viewer=None, csrf="t", flash=None)  # type: ignore[arg-type]
        body = (
            environment(lang)
            .get_template("documents/verify_report.html")
            .render(
                page=page,
                report=again,
                token="t" * 32,
                verdict="",
                summary="",
                reasons=[],
                revocation_labels={s.value: s.value for s in RevocationStatus},
                verdicts={i.value: i.value for i in Indication},
            )
        )
        assert title in body and serial in body
        assert digest in body and "1.3.6.1.4.1.99999.1.1" in body


def _move_time_stamp(source: bytes, target: bytes, *, strip_certificates: bool = False) -> bytes:
    """``target`` with the signature time-stamp token of ``source`` in its unsigned
    attributes: a real token, over another signature value."""
    (token,) = [
        a["values"][0]
        for a in cms.ContentInfo.load(source)["content"]["signer_infos"][0]["unsigned_attrs"]
        if a["type"].native == "signature_time_stamp_token"
    ]
    token = cms.ContentInfo.load(token.dump())
    if strip_certificates:
        token["content"]["certificates"] = cms.CertificateSet([])
    content_info = cms.ContentInfo.load(target)
    info = content_info["content"]["signer_infos"][0]
    info["unsigned_attrs"] = cms.CMSAttributes(
        [cms.CMSAttribute({"type": "signature_time_stamp_token", "values": [token]})]
    )
    return content_info.dump()


@pytest.mark.parametrize("strip", [False, True], ids=["with-tsa-certificate", "without"])
def test_a_time_stamp_of_another_signature_is_named_as_such(
    sqlite_ctx: Context, tools: PemSigner, trust: TrustContext, strip: bool
) -> None:
    stamped = sign_cms(
        b"another document",
        tools.identity,
        level=Level.B_T,
        timestamper=InProcessTimeStamper(sqlite_ctx.tsa),
    )
    moved = _move_time_stamp(stamped, sign_cms(DATA, tools.identity), strip_certificates=strip)
    (sig,) = validate_cms(moved, DATA, trust).signatures
    assert (sig.indication, sig.sub_indication) == (
        Indication.TOTAL_FAILED,
        SubIndication.HASH_FAILURE,
    )
    assert sig.integrity  # the content and the signature value are untouched
    assert "time-stamp" in sig.message_en and "dấu thời gian" in sig.message_vi
    assert "changed after it was signed" not in sig.message_en


def test_an_ocsp_answer_embedded_as_id_pkix_ocsp_basic_is_used(
    sqlite_ctx: Context, tools: PemSigner
) -> None:
    """EN 319 122-1 (CAdES baseline) embeds a BasicOCSPResponse under id-pkix-ocsp-basic;
    RFC 5940 a whole OCSPResponse under id-ri-ocsp-response (kyso writes the latter). EU DSS
    writes the former (its counterSignedLTA.p7s). Both are revocation data."""
    trust = trust_context(sqlite_ctx)
    signature = sign_cms(
        DATA,
        tools.identity,
        level=Level.B_LT,
        timestamper=InProcessTimeStamper(sqlite_ctx.tsa),
        trust=trust,
    )
    content_info = cms.ContentInfo.load(signature)
    issuer = asn1_x509.Certificate.load(tools.identity.certificate.public_bytes(DER)).issuer
    choices = []
    for choice in content_info["content"]["crls"]:
        if choice.name == "crl" and choice.chosen["tbs_cert_list"]["issuer"] == issuer:
            continue  # the signer's status from the OCSP answer alone
        if choice.name == "other" and choice.chosen["other_rev_info_format"].native == (
            "ocsp_response"
        ):
            basic = choice.chosen["other_rev_info"]["response_bytes"]["response"].parsed
            choice = cms.RevocationInfoChoice(
                {
                    "other": cms.OtherRevocationInfoFormat(
                        {
                            "other_rev_info_format": "1.3.6.1.5.5.7.48.1.1",
                            "other_rev_info": core.Any.load(basic.dump()),
                        }
                    )
                }
            )
        choices.append(choice)
    content_info["content"]["crls"] = cms.RevocationInfoChoices(choices)
    # Only what the signature carries: not kyso's own CA answering for its certificate.
    offline = TrustContext(trust.anchors, trust.intermediates)
    (sig,) = validate_cms(content_info.dump(), DATA, offline).signatures
    assert sig.indication is Indication.TOTAL_PASSED, sig.message_en
    assert sig.revocation is not None and sig.revocation.source == "ocsp-embedded"


def test_a_certificate_cryptography_refuses_does_not_break_validation(
    tools: PemSigner, trust: TrustContext
) -> None:
    """EU DSS's pdf-eof.pdf carries a certificate whose AlgorithmIdentifier has extra data:
    asn1crypto reads it, cryptography refuses it. Carried along in a CMS, it must not turn
    a valid signature into an error."""
    corpus = Path(__file__).parent / "corpus" / "dss" / "pades" / "pdf-eof.pdf"
    embedded = PdfFileReader(io.BytesIO(corpus.read_bytes()), strict=False).embedded_signatures
    odd = embedded[0].signer_cert
    with pytest.raises(ValueError):
        x509.load_der_x509_certificate(odd.dump())
    content_info = cms.ContentInfo.load(sign_cms(DATA, tools.identity))
    signed_data = content_info["content"]
    signed_data["certificates"] = cms.CertificateSet(
        [*signed_data["certificates"], cms.CertificateChoices({"certificate": odd})]
    )
    report = validate_cms(content_info.dump(), DATA, trust)
    assert report.passed, report.signatures[0].message_en
