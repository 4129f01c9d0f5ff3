"""PDF validation: every failure is named, with an ETSI indication and a plain sentence."""

from __future__ import annotations

from datetime import timedelta

import pytest
from conftest import Instance
from fixtures.pdf import pki, samples

from kyso import clock
from kyso.formats import pdf as pdf_format
from kyso.pki import status as cert_status
from kyso.signing.pades import InvalidPdf, PdfTooLarge, sign_pdf
from kyso.signing.timestamps import InProcessTimeStamper, Level
from kyso.store.models import RevocationReason
from kyso.trust import trust_context
from kyso.validation import messages
from kyso.validation.pdf import validate_pdf
from kyso.validation.report import (
    CertificateInfo,
    Indication,
    RevocationEvidence,
    RevocationStatus,
    SignatureReport,
    SubIndication,
)


@pytest.fixture(scope="module")
def env(sqlite_instance: Instance):
    ctx = sqlite_instance.ctx
    return ctx, trust_context(ctx)


@pytest.fixture(scope="module")
def doc() -> bytes:
    return samples.official_document()


@pytest.fixture(scope="module")
def good(env, doc):
    ctx, trust = env
    signer, _ = pki.server_signer(ctx)
    return signer, sign_pdf(doc, signer, level=Level.B_T, trust=trust)


def _only(report) -> SignatureReport:
    regular = [s for s in report.signatures if "document time-stamp" not in s.format]
    assert len(regular) == 1
    return regular[0]


def test_valid_signature_report(env, good):
    _, trust = env
    _, signed = good
    report = validate_pdf(signed, trust, name="quyet-dinh.pdf")
    sig = _only(report)
    assert (report.document, report.document_kind, report.passed) == ("quyet-dinh.pdf", "pdf", True)
    assert sig.indication is Indication.TOTAL_PASSED and sig.sub_indication is None
    assert sig.signer.subject.startswith("CN=Nguyễn Văn An")
    assert sig.integrity and sig.trusted_chain and sig.timestamp_trusted
    assert sig.claimed_signing_time and sig.timestamp_time
    assert abs(sig.timestamp_time - sig.claimed_signing_time) < timedelta(seconds=5)
    assert sig.chain[0].subject == sig.signer.subject and len(sig.chain) == 3
    assert sig.revocation.status is RevocationStatus.GOOD
    assert sig.revocation.source == "kyso-ca"
    assert sig.modifications == []
    assert sig.message_vi.startswith("Chữ ký hợp lệ") and "Nguyễn Văn An" in sig.message_vi
    assert "+07:00" in sig.message_en
    data = report.to_dict()
    assert data["indication"] == "TOTAL-PASSED"
    assert data["signatures"][0]["revocation"]["source"] == "kyso-ca"


def test_long_term_evidence_comes_from_the_dss(env, doc, good):
    _, trust = env
    signer, _ = good
    signed = sign_pdf(doc, signer, level=Level.B_LT, trust=trust)
    sig = _only(validate_pdf(signed, trust))
    assert sig.indication is Indication.TOTAL_PASSED
    assert sig.format == "PAdES-B-LT"
    assert sig.revocation.source in ("ocsp-embedded", "crl-embedded")
    assert sig.modifications and all(m.allowed for m in sig.modifications)


def test_byte_flipped_inside_signed_content_is_hash_failure(env, good):
    _, trust = env
    _, signed = good
    marker = b"1 0 0 1 80 530 Tm"
    at = signed.index(marker)
    tampered = signed[:at] + b"1 0 0 1 80 531 Tm" + signed[at + len(marker) :]
    sig = _only(validate_pdf(tampered, trust))
    assert (sig.indication, sig.sub_indication) == (
        Indication.TOTAL_FAILED,
        SubIndication.HASH_FAILURE,
    )
    assert not sig.integrity
    assert "changed after it was signed" in sig.message_en
    assert "bị sửa sau khi ký" in sig.message_vi


@pytest.mark.parametrize(
    "change", [samples.append_page, samples.change_text], ids=["new-page", "new-text"]
)
def test_content_changed_after_signing_is_flagged(env, good, change):
    _, trust = env
    _, signed = good
    changed = change(signed)
    report = validate_pdf(changed, trust)
    sig = _only(report)
    assert sig.integrity  # the signed bytes are intact ...
    assert sig.indication is Indication.INDETERMINATE  # ... but what was added is not allowed
    assert sig.sub_indication is SubIndication.SIG_CONSTRAINTS_FAILURE
    assert sig.modifications and not all(m.allowed for m in sig.modifications)
    assert "the document was changed after it was signed" in sig.message_en
    assert "tài liệu đã bị thay đổi sau khi ký" in sig.message_vi
    assert not report.passed


def test_signed_after_revocation_is_revoked(env, doc, fake_clock):
    ctx, trust = env
    signer, issued = pki.server_signer(ctx)
    with ctx.db.session() as session:
        row = cert_status.revoke(
            session, ctx.authority, issued.serial, RevocationReason.KEY_COMPROMISE, "test"
        )
        revoked_at = row.revoked_at
    fake_clock.advance(1)  # signing and revocation times have whole seconds
    signed = sign_pdf(doc, signer, trust=trust)
    sig = _only(validate_pdf(signed, trust))
    assert (sig.indication, sig.sub_indication) == (Indication.TOTAL_FAILED, SubIndication.REVOKED)
    assert sig.revocation.status is RevocationStatus.REVOKED
    assert sig.revocation.source == "kyso-ca"
    assert sig.revocation.revoked_at == revoked_at
    day_en = messages.day_en(revoked_at)
    assert f"the signer's certificate was revoked on {day_en}" in sig.message_en
    assert "before the document was signed" in sig.message_en
    assert f"bị thu hồi ngày {messages.day_vi(revoked_at)}" in sig.message_vi
    assert "key compromise" in sig.message_en and "lộ khóa" in sig.message_vi


def test_revoked_after_signing(env, doc, fake_clock):
    """Without a time-stamp nothing proves the signature came first; with one it passes."""
    ctx, trust = env
    signer, issued = pki.server_signer(ctx)
    plain = sign_pdf(doc, signer, trust=trust)
    stamped = sign_pdf(doc, signer, level=Level.B_T, trust=trust)
    fake_clock.advance(1)  # signing and revocation times have whole seconds
    with ctx.db.session() as session:
        cert_status.revoke(
            session, ctx.authority, issued.serial, RevocationReason.AFFILIATION_CHANGED, "test"
        )
    sig = _only(validate_pdf(plain, trust))
    assert (sig.indication, sig.sub_indication) == (
        Indication.INDETERMINATE,
        SubIndication.REVOKED_NO_POE,
    )
    assert "no time-stamp proves" in sig.message_en
    sig = _only(validate_pdf(stamped, trust))
    assert sig.indication is Indication.TOTAL_PASSED, sig.message_en
    assert sig.revocation.status is RevocationStatus.GOOD
    assert sig.revocation.revoked_at is not None
    assert "revoked later" in sig.message_en


def test_suspended_signer(env, doc, fake_clock):
    ctx, trust = env
    signer, issued = pki.server_signer(ctx)
    with ctx.db.session() as session:
        cert_status.suspend(session, ctx.authority, issued.serial, "test")
    fake_clock.advance(1)  # signing and revocation times have whole seconds
    signed = sign_pdf(doc, signer, trust=trust)
    sig = _only(validate_pdf(signed, trust))
    assert (sig.indication, sig.sub_indication) == (
        Indication.INDETERMINATE,
        SubIndication.TRY_LATER,
    )
    assert sig.revocation.status is RevocationStatus.SUSPENDED
    assert "suspended" in sig.message_en and "tạm dừng" in sig.message_vi


def test_expired_signer(env, doc):
    """A one-day certificate, validated three days later: without a time-stamp nothing proves
    when it signed; with one made while the certificate was valid, it still passes."""
    ctx, trust = env
    signer, issued = pki.server_signer(ctx, days=1)
    plain = sign_pdf(doc, signer, trust=trust)
    later = clock.now() + timedelta(days=3)
    sig = _only(validate_pdf(plain, trust, moment=later))
    assert sig.indication is Indication.INDETERMINATE
    assert sig.sub_indication is SubIndication.OUT_OF_BOUNDS_NO_POE
    assert "expired on" in sig.message_en and "hết hạn" in sig.message_vi
    assert messages.day_en(issued.certificate.not_valid_after_utc) in sig.message_en


def test_untrusted_signer(env, doc):
    _, trust = env
    foreign = pki.ForeignCa.make().signer()
    signed = sign_pdf(doc, foreign)
    sig = _only(validate_pdf(signed, trust))
    assert (sig.indication, sig.sub_indication) == (
        Indication.INDETERMINATE,
        SubIndication.NO_CERTIFICATE_CHAIN_FOUND,
    )
    assert sig.integrity and not sig.trusted_chain
    assert sig.revocation.status is RevocationStatus.NOT_CHECKED
    assert sig.revocation.source == "none"
    assert "the signer's certificate is not trusted" in sig.message_en
    assert "không được tin cậy" in sig.message_vi


def test_time_stamp_from_an_untrusted_tsa(env, doc, good):
    _, trust = env
    signer, _ = good
    stamper = InProcessTimeStamper(pki.ForeignCa.make().tsa())
    signed = sign_pdf(doc, signer, level=Level.B_T, timestamper=stamper)
    sig = _only(validate_pdf(signed, trust))
    assert sig.trusted_chain and sig.timestamp_trusted is False
    assert (sig.indication, sig.sub_indication) == (
        Indication.INDETERMINATE,
        SubIndication.NO_CERTIFICATE_CHAIN_FOUND,
    )
    assert "time-stamping authority that is not trusted" in sig.message_en


def test_unsigned_pdf_has_no_signatures(env, doc):
    _, trust = env
    report = validate_pdf(doc, trust)
    assert report.signatures == [] and not report.passed
    assert report.message_en == "The document has no digital signature."


@pytest.mark.parametrize(
    "data",
    [b"not a pdf at all", samples.official_document()[:15000], samples.encrypted()],
    ids=["not-pdf", "truncated", "encrypted"],
)
def test_bad_input(env, data):
    _, trust = env
    with pytest.raises(InvalidPdf):
        validate_pdf(data, trust)


def test_huge_input(env, monkeypatch, good):
    _, trust = env
    _, signed = good
    monkeypatch.setattr(pdf_format, "MAX_PDF_BYTES", 1000)
    with pytest.raises(PdfTooLarge):
        validate_pdf(signed, trust)


def test_explain_is_format_neutral():
    """CAdES/XAdES validators fill the same report: the sentence needs no PDF."""
    moment = clock.now()
    info = CertificateInfo("CN=Lê Thị Hoa,O=Sở Y tế,C=VN", "CN=CA", "1", moment, moment)
    sig = SignatureReport(
        Indication.TOTAL_FAILED,
        SubIndication.REVOKED,
        info,
        "CAdES-B-B",
        claimed_signing_time=moment + timedelta(days=1),
        revocation=RevocationEvidence(
            RevocationStatus.REVOKED, "kyso-ca", revoked_at=moment, reason="superseded"
        ),
    )
    vi, en = messages.explain(sig)
    assert vi.startswith("Chữ ký không hợp lệ (người ký: Lê Thị Hoa)")
    assert f"revoked on {messages.day_en(moment)} (reason: superseded) before" in en
    for sub in SubIndication:
        sig = SignatureReport(Indication.INDETERMINATE, sub, info, "XAdES-B-T")
        vi, en = messages.explain(sig)
        assert vi and en and vi != en
