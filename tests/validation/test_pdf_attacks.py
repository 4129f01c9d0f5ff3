"""Attacks on signed PDFs: what a signature covers is said, and nothing changed after signing
passes as "not changed".

Bytes appended after the last ``%%EOF`` (Mladenov et al., "1 Trillion Dollar Refund", CCS 2019,
incremental saving without a cross-reference section), and the shadow attacks of Mainka et
al. (NDSS 2021): hide, replace, replace via overlay, each built with pyHanko's incremental
writer in ``fixtures.pdf.shadow``. poppler's ``pdfsig`` is asked too where it has an opinion
(whether the signature covers the whole file).
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from conftest import Instance
from fixtures.pdf import images, pki, samples, shadow
from pyhanko.pdf_utils.reader import PdfFileReader
from support import require_or_skip

from kyso.signing.pades import sign_pdf
from kyso.signing.placement import Placement
from kyso.signing.stamps import Appearance, StampKind
from kyso.trust import trust_context
from kyso.validation.pdf import validate_pdf
from kyso.validation.report import Indication, ScopeKind, SignatureReport, SubIndication

CORPUS = Path(__file__).resolve().parent / "corpus" / "pyhanko"  # third-party files: NOTICE


@pytest.fixture(scope="module")
def env(sqlite_instance: Instance):
    ctx = sqlite_instance.ctx
    return ctx, trust_context(ctx)


@pytest.fixture(scope="module")
def person(env):
    return pki.server_signer(env[0])[0]


@pytest.fixture(scope="module")
def signed(env, person) -> bytes:
    return sign_pdf(samples.official_document(), person, trust=env[1])


@pytest.fixture(scope="module")
def nss(env, tmp_path_factory: pytest.TempPathFactory) -> str:
    require_or_skip(pki.have_poppler(), "poppler-utils and libnss3-tools")
    return pki.nss_db(tmp_path_factory.mktemp("nss"), pki.root_pem(env[0]))


def _pdfsig(data: bytes, tmp_path: Path, nss: str) -> list[pki.PdfsigResult]:
    path = tmp_path / "checked.pdf"
    path.write_bytes(data)
    return pki.pdfsig(path, nss)


def _only(report) -> SignatureReport:
    assert len(report.signatures) == 1
    return report.signatures[0]


def _startxref(data: bytes) -> int:
    return int(re.findall(rb"startxref\s+(\d+)", data)[-1])


def _redefined_object(signed: bytes) -> bytes:
    """Page 1's content stream defined again after %%EOF, without a cross-reference section
    for it (a reader that rebuilds the cross-references by scanning takes the last one)."""
    page = PdfFileReader(io.BytesIO(signed)).root["/Pages"]["/Kids"][0]
    number = page.raw_get("/Contents").idnum
    text = b"BT /FR 13 Tf 1 0 0 1 80 570 Tm (Dieu 1. Noi dung khac.) Tj ET"
    return b"\n%d 0 obj\n<< /Length %d >>\nstream\n%s\nendstream\nendobj\n" % (
        number,
        len(text),
        text,
    )


APPENDED = {
    "garbage": lambda signed: b"garbage after the end of file\n",
    "redefined-object": _redefined_object,
    "redefined-object-and-eof": lambda signed: (
        _redefined_object(signed) + b"startxref\n%d\n%%%%EOF\n" % _startxref(signed)
    ),
}


# -- what a signature covers --------------------------------------------------------------------


@pytest.mark.interop
def test_signature_over_the_whole_file_has_full_scope(env, signed, tmp_path, nss):
    sig = _only(validate_pdf(signed, env[1]))
    assert sig.indication is Indication.TOTAL_PASSED
    assert [s.kind for s in sig.scope] == [ScopeKind.FULL]
    assert f"the whole file (bytes 0–{len(signed)}" in sig.scope[0].description_en
    assert f"toàn bộ tệp (byte 0–{len(signed)}" in sig.scope[0].description_vi
    assert [r.total for r in _pdfsig(signed, tmp_path, nss)] == [True]


@pytest.mark.interop
def test_earlier_signature_covers_its_revision_and_lists_what_came_after(
    env, person, signed, tmp_path, nss
):
    twice = sign_pdf(signed, person, trust=env[1])
    report = validate_pdf(twice, env[1])
    first, second = report.signatures
    assert report.passed, report.to_dict()
    assert [s.kind for s in first.scope] == [ScopeKind.PARTIAL]
    assert f"revision 2 of 3: bytes 0–{len(signed)} of {len(twice)}" in (
        first.scope[0].description_en
    )
    assert f"phiên bản 2 trên 3: byte 0–{len(signed)} trên {len(twice)}" in (
        first.scope[0].description_vi
    )
    assert first.modifications and all(m.allowed for m in first.modifications)
    assert any(second.field_name in m.description for m in first.modifications)
    assert [s.kind for s in second.scope] == [ScopeKind.FULL]
    assert [r.total for r in _pdfsig(twice, tmp_path, nss)] == [False, True]


# -- bytes after %%EOF --------------------------------------------------------------------------


@pytest.mark.interop
@pytest.mark.parametrize("tail", list(APPENDED.values()), ids=list(APPENDED))
def test_bytes_appended_after_eof_are_never_reported_unchanged(env, signed, tail, tmp_path, nss):
    extra = tail(signed)
    attacked = signed + extra
    report = validate_pdf(attacked, env[1])
    sig = _only(report)
    assert sig.indication is not Indication.TOTAL_PASSED and not report.passed
    assert sig.sub_indication is SubIndication.SIG_CONSTRAINTS_FAILURE
    assert "not changed after it was signed" not in sig.message_en
    assert "không bị thay đổi" not in sig.message_vi
    # what is not covered is said: which bytes, and that no signature covers them
    assert [s.kind for s in sig.scope] == [ScopeKind.PARTIAL]
    assert f"bytes 0–{len(signed)} of {len(attacked)}" in sig.scope[0].description_en
    uncovered = [m for m in sig.modifications if not m.allowed]
    assert any(
        f"{len(extra)} bytes after the end of the last revision "
        f"(bytes {len(signed)}–{len(attacked)})" in m.description
        for m in uncovered
    ), sig.modifications
    assert f"{len(extra)} bytes after the end of the last revision" in sig.message_en
    # poppler agrees that the signature does not cover the file
    assert [r.total for r in _pdfsig(attacked, tmp_path, nss)] == [False]


def test_blank_bytes_after_eof_change_nothing(env, signed):
    padded = signed + b"\r\n\x00\x00\n"
    sig = _only(validate_pdf(padded, env[1]))
    assert sig.indication is Indication.TOTAL_PASSED, sig.message_en
    assert [s.kind for s in sig.scope] == [ScopeKind.PARTIAL]
    assert "5 bytes after it are blank" in sig.scope[0].description_en


# -- shadow attacks -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def victim(env, person) -> bytes:
    """The attacker's prepared document, signed by the victim."""
    return sign_pdf(shadow.prepared_document(), person, trust=env[1])


NAMED = {
    "replace-page-content": ("the content of page 1",),
    "replace-xobject": ("/Body", "page 1"),
    "swap-resources": ("page 1",),
    "replace-field-value": ("«SoTien»",),
    "hide-reveal-annotation": ("annotation", "page 1"),
    "overlay-annotation": ("page 1",),
    "overlay-form-field": ("«GhiChu»",),
    "overlay-empty-signature-field": ("«ChuKy2»",),
}


def test_the_prepared_document_passes_before_the_attack(env, victim):
    sig = _only(validate_pdf(victim, env[1]))
    assert sig.indication is Indication.TOTAL_PASSED, sig.message_en


@pytest.mark.parametrize("attack", list(NAMED))
def test_shadow_attack_is_flagged_as_a_change_of_signed_content(env, victim, attack):
    attacked = shadow.ATTACKS[attack](victim)
    report = validate_pdf(attacked, env[1])
    sig = _only(report)
    assert not report.passed
    assert (sig.indication, sig.sub_indication) == (
        Indication.INDETERMINATE,
        SubIndication.SIG_CONSTRAINTS_FAILURE,
    ), sig.message_en
    assert sig.integrity  # the signed bytes are intact: the attack is in the update
    refused = [m.description for m in sig.modifications if not m.allowed]
    assert any(all(f in d for f in NAMED[attack]) for d in refused), refused
    # never passed off as form filling or an allowed signature
    assert not any("form fields filled" in m.description for m in sig.modifications)
    assert "the document was changed after it was signed" in sig.message_en
    assert "tài liệu đã bị thay đổi sau khi ký" in sig.message_vi
    assert [s.kind for s in sig.scope] == [ScopeKind.PARTIAL]


def test_signatures_added_later_stay_allowed_even_over_the_body(env, person, victim):
    """kyso's own workflow puts a visible signature (or a seal) on a signed page: allowed, and
    named, because the later signer vouches for what it draws."""
    second = sign_pdf(
        victim,
        person,
        trust=env[1],
        appearance=Appearance(
            StampKind.APPROVAL,
            placement=Placement.at(0, shadow.BODY_BOX),
            signature_image=images.signature_png(),
        ),
    )
    report = validate_pdf(second, env[1])
    first, later = report.signatures
    assert report.passed, report.to_dict()
    assert first.modifications and all(m.allowed for m in first.modifications)
    assert any(f"«{later.field_name}»" in m.description for m in first.modifications)


def test_pyhanko_sneaky_appearance_swap_is_flagged():
    """pyHanko's own attack file: an appearance stream shared by two objects is replaced."""
    data = CORPUS / "form-update-override-appearance-stream-ap-indirect-sneaky.pdf"
    report = validate_pdf(data.read_bytes(), _no_trust())
    first = report.signatures[0]
    assert first.sub_indication is SubIndication.SIG_CONSTRAINTS_FAILURE
    assert any(not m.allowed for m in first.modifications)


# -- the library gives up ------------------------------------------------------------------------


@pytest.mark.interop
def test_validation_error_inside_pyhanko_is_indeterminate_with_its_reason(tmp_path, env, nss):
    """A CMS with encapsulated content in a PDF signature: pyHanko raises, poppler calls the
    signature valid. Nothing proves it invalid: INDETERMINATE, saying why, never TOTAL-FAILED."""
    data = (CORPUS / "pdf-sig-with-econtent.pdf").read_bytes()
    sig = _only(validate_pdf(data, env[1]))
    assert (sig.indication, sig.sub_indication) == (
        Indication.INDETERMINATE,
        SubIndication.FORMAT_FAILURE,
    )
    assert "encapsulated data" in sig.message_en and "encapsulated data" in sig.message_vi
    assert "could not be processed" in sig.message_en
    assert "không xử lý được" in sig.message_vi
    assert sig.signer is not None and "Alice" in sig.signer.subject
    assert [r.signature for r in _pdfsig(data, tmp_path, nss)] == ["Signature is Valid."]


def test_signature_leaving_its_revision_tail_uncovered_is_not_passed():
    data = (CORPUS / "tail-uncovered.pdf").read_bytes()
    sig = _only(validate_pdf(data, _no_trust()))
    assert sig.indication is not Indication.TOTAL_PASSED
    assert [s.kind for s in sig.scope] == [ScopeKind.PARTIAL]


def _no_trust():
    from kyso.trust import TrustContext

    return TrustContext(anchors=[pki.ForeignCa.make().cert])
