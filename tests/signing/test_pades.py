"""PAdES signing: every level, several signatures on one document, HSM keys, bad input.

Checked three ways: kyso's validator, pyHanko's own validator, and poppler's ``pdfsig``
against an NSS database that trusts kyso's root.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest
from conftest import Instance
from fixtures.pdf import images, pki, samples
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature, validate_pdf_timestamp
from pyhanko.sign.validation.dss import DocumentSecurityStore
from support import require_or_skip

from kyso.context import Context
from kyso.formats import pdf as pdf_format
from kyso.signing import pades
from kyso.signing.pades import InvalidPdf, PdfTooLarge, SignerNotUsable, sign_pdf
from kyso.signing.placement import Placement
from kyso.signing.stamps import Appearance, StampKind
from kyso.signing.timestamps import Level
from kyso.trust import TrustContext, trust_context
from kyso.validation.pdf import validate_pdf, validation_context


@pytest.fixture(scope="module")
def doc() -> bytes:
    return samples.official_document()


@pytest.fixture(scope="module")
def ctx1(sqlite_instance: Instance) -> Context:
    return sqlite_instance.ctx


@pytest.fixture(scope="module")
def trust1(ctx1: Context) -> TrustContext:
    return trust_context(ctx1)


@pytest.fixture(scope="module")
def person(ctx1: Context):
    return pki.server_signer(ctx1)[0]


@pytest.fixture(scope="module")
def organization(ctx1: Context):
    return pki.server_signer(ctx1, pki.ORGANIZATION, pki.Profile.ORGANIZATION)[0]


@pytest.fixture(scope="module")
def nss(ctx1: Context, tmp_path_factory: pytest.TempPathFactory) -> str:
    require_or_skip(pki.have_poppler(), "poppler-utils and libnss3-tools")
    return pki.nss_db(tmp_path_factory.mktemp("nss"), pki.root_pem(ctx1))


_SIGNERS: dict[int, object] = {}


def _signer_for(ctx: Context):
    """One issued signer per instance (issuing lints the certificate, which takes a while)."""
    if id(ctx) not in _SIGNERS:
        _SIGNERS[id(ctx)] = pki.server_signer(ctx)[0]
    return _SIGNERS[id(ctx)]


def _pyhanko_checks(data: bytes, trust: TrustContext, signer_cert) -> list:
    """pyHanko's own verdict on every signature and document time-stamp."""
    reader = PdfFileReader(io.BytesIO(data))
    results = []
    for emb in reader.embedded_signatures:
        vc = validation_context(trust, certs=[signer_cert])
        if emb.sig_object_type == "/DocTimeStamp":
            status = validate_pdf_timestamp(emb, vc)
            results.append((emb, status.valid and status.intact and status.trusted))
        else:
            status = validate_pdf_signature(emb, vc)
            results.append((emb, status.bottom_line))
    return results


# -- every level, on both database backends ------------------------------------------------


@pytest.mark.parametrize("level", list(Level))
def test_each_level_validates_in_kyso_and_pyhanko(ctx: Context, doc: bytes, level: Level):
    trust = trust_context(ctx)
    signer = _signer_for(ctx)
    signed = sign_pdf(doc, signer, level=level, trust=trust, reason="Phê duyệt", location="Bắc Kạn")
    assert signed.startswith(doc)  # an incremental update: the original bytes stay as they are

    checks = _pyhanko_checks(signed, trust, signer.certificate)
    assert checks and all(ok for _, ok in checks)
    reader = PdfFileReader(io.BytesIO(signed))
    regular = reader.embedded_regular_signatures
    assert len(regular) == 1
    sig = regular[0]
    unsigned = sig.signer_info["unsigned_attrs"].native or []
    has_ts = any(a["type"] == "signature_time_stamp_token" for a in unsigned)
    assert has_ts == level.needs_timestamp
    if level in (Level.B_LT, Level.B_LTA):
        dss = DocumentSecurityStore.read_dss(reader)
        assert dss.ocsps or dss.crls
    assert bool(reader.embedded_timestamp_signatures) == (level is Level.B_LTA)

    report = validate_pdf(signed, trust)
    assert report.passed, report.signatures[0].message_en
    assert report.signatures[0].format == f"PAdES-{level.value}"
    assert report.signatures[0].message_vi.startswith("Chữ ký hợp lệ")


@pytest.mark.interop
@pytest.mark.parametrize("level", list(Level))
def test_pdfsig_trusts_each_level(tmp_path: Path, ctx1, trust1, person, nss, doc, level: Level):
    signed = sign_pdf(doc, person, level=level, trust=trust1)
    path = tmp_path / "signed.pdf"
    path.write_bytes(signed)
    results = pki.pdfsig(path, nss)
    regular = [r for r in results if not r.field.startswith("Timestamp")]
    assert len(regular) == 1
    assert regular[0].signature == "Signature is Valid."
    assert regular[0].certificate == "Certificate is Trusted."
    # poppler 22 cannot check document time-stamps (ETSI.RFC3161); pyHanko and kyso do.
    assert len(results) == (2 if level is Level.B_LTA else 1)


@pytest.mark.interop
def test_approval_issuing_attachment_keep_every_signature_valid(
    tmp_path: Path, trust1, person, organization, nss, doc
):
    approval = Appearance(
        StampKind.APPROVAL,
        placement=Placement.by_anchor(samples.SIGNER_NAME, height=80),
        signature_image=images.signature_png(),
    )
    issuing = Appearance(
        StampKind.ISSUING,
        placement=Placement.over_field("approval-1"),
        seal_image=images.seal_png(),
        number="15/QĐ-UBND",
        date="01/03/2025",
    )
    attachment = Appearance(StampKind.ATTACHMENT, number="15/QĐ-UBND")
    one = sign_pdf(doc, person, level=Level.B_T, trust=trust1, appearance=approval)
    two = sign_pdf(one, organization, level=Level.B_T, trust=trust1, appearance=issuing)
    three = sign_pdf(two, organization, level=Level.B_LTA, trust=trust1, appearance=attachment)
    assert three.startswith(two) and two.startswith(one) and one.startswith(doc)

    report = validate_pdf(three, trust1)
    fields = [s.field_name for s in report.signatures]
    assert fields[:3] == ["approval-1", "issuing-1", "attachment-1"]
    assert report.passed, [s.message_en for s in report.signatures]
    first = report.signatures[0]
    assert first.modifications and all(m.allowed for m in first.modifications)

    path = tmp_path / "three.pdf"
    path.write_bytes(three)
    results = [r for r in pki.pdfsig(path, nss) if not r.field.startswith("Timestamp")]
    assert [r.field for r in results] == ["approval-1", "issuing-1", "attachment-1"]
    for r in results:
        assert (r.signature, r.certificate) == ("Signature is Valid.", "Certificate is Trusted.")


def test_sign_into_an_existing_empty_field(trust1, person, doc):
    with_field = samples.with_empty_field(doc, "ChuKyLanhDao", (380, 170, 540, 245))
    appearance = Appearance(
        StampKind.APPROVAL,
        placement=Placement.in_field("ChuKyLanhDao"),
        signature_image=images.signature_png(),
    )
    signed = sign_pdf(with_field, person, trust=trust1, appearance=appearance)
    report = validate_pdf(signed, trust1)
    assert [s.field_name for s in report.signatures] == ["ChuKyLanhDao"]
    assert report.passed
    with pytest.raises(pades.InvalidInput, match="already signed"):
        sign_pdf(signed, person, trust=trust1, appearance=appearance)


@pytest.mark.softhsm
def test_signing_with_a_key_in_softhsm(hsm_instance: Instance, doc: bytes):
    ctx = hsm_instance.ctx
    trust = trust_context(ctx)
    signer, issued = pki.server_signer(ctx)
    assert issued.row.key_location.startswith("pkcs11:")
    signed = sign_pdf(doc, signer, level=Level.B_T, trust=trust)
    report = validate_pdf(signed, trust)
    assert report.passed, report.signatures[0].message_en
    checks = _pyhanko_checks(signed, trust, signer.certificate)
    assert all(ok for _, ok in checks)


def test_many_signatures_reuse_reservation_and_stay_small(trust1, person, doc):
    """The reserved space is computed once per signer and time-stamper and is tight."""
    first = sign_pdf(doc, person, level=Level.B_T, trust=trust1)
    second = sign_pdf(doc, person, level=Level.B_T, trust=trust1)
    assert abs(len(first) - len(second)) < 64
    reader = PdfFileReader(io.BytesIO(first))
    emb = reader.embedded_regular_signatures[0]
    contents_hex = emb.sig_object.raw_get("/Contents")
    used = len(emb.pkcs7_content)
    assert len(contents_hex) - used < 600  # margin: a few hundred bytes, not +50 %


def test_async_entry_point_runs_inside_a_loop(trust1, person, doc):
    async def main() -> bytes:
        return await pades.async_sign_pdf(doc, person, level=Level.B_T, trust=trust1)

    signed = asyncio.run(main())
    assert validate_pdf(signed, trust1).passed


# -- refusals --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data, error",
    [
        (b"hello, this is not a PDF", InvalidPdf),
        (b"", InvalidPdf),
        (samples.official_document()[:20000], InvalidPdf),
        (samples.encrypted(), InvalidPdf),
        (b"%PDF-1.7\n" + b"0" * 5000 + b"\nstartxref\n99999\n%%EOF\n", InvalidPdf),
    ],
    ids=["not-pdf", "empty", "truncated", "encrypted", "garbage"],
)
def test_bad_input_is_refused_cleanly(person, trust1, data: bytes, error):
    with pytest.raises(error) as caught:
        sign_pdf(data, person, trust=trust1)
    assert caught.value.code in ("invalid_pdf", "pdf_too_large")
    assert caught.value.message("vi")


def test_huge_input_is_refused(monkeypatch, person, trust1, doc):
    monkeypatch.setattr(pdf_format, "MAX_PDF_BYTES", len(doc) - 1)
    with pytest.raises(PdfTooLarge) as caught:
        sign_pdf(doc, person, trust=trust1)
    assert caught.value.http_status == 413


def test_long_term_levels_need_trust(person, trust1, doc):
    with pytest.raises(pades.InvalidInput):
        sign_pdf(doc, person, level=Level.B_T)
    with pytest.raises(pades.InvalidInput):
        sign_pdf(doc, person, level=Level.B_LT, timestamper=pades.default_timestamper(trust1))


def test_b_lt_refuses_a_signer_kyso_cannot_vouch_for(trust1, doc):
    foreign = pki.ForeignCa.make().signer()
    with pytest.raises(SignerNotUsable):
        sign_pdf(doc, foreign, level=Level.B_LT, trust=trust1)
