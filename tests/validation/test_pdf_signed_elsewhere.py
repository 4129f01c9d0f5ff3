"""kyso validates a PDF signed by another tool: pyHanko on its own (its SimpleSigner and its
own writer, no kyso code), with a certificate and key exported by kyso's CA as PKCS#12.

Files that poppler's ``pdfsig`` and pyHanko's lenient reader accept are read, not refused:
an off-by-a-few ``startxref`` in the original, hybrid cross-references (a table plus an
``/XRefStm`` stream, as Word writes them)."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from conftest import Instance
from cryptography.hazmat.primitives.asymmetric import ec
from fixtures.pdf import pki, samples
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import signers
from support import require_or_skip

from kyso.pki import issuance
from kyso.pki.names import parse_subject
from kyso.store.models import Profile
from kyso.trust import trust_context
from kyso.validation.report import Indication, ScopeKind
from kyso.validation.verify import verify

THIRD_PARTY = Path(__file__).resolve().parents[1] / "fixtures" / "thirdparty-pdf"


@pytest.fixture(scope="module")
def elsewhere(sqlite_instance: Instance) -> signers.SimpleSigner:
    """pyHanko's own signer with a key and certificate kyso's CA issued (PKCS#12)."""
    ctx = sqlite_instance.ctx
    key = ec.generate_private_key(ec.SECP256R1())
    spec = issuance.IssueSpec(
        Profile.INDIVIDUAL,
        parse_subject("CN=Triệu Thị Hoa,OU=Văn phòng,O=UBND huyện Pác Nặm,L=Bắc Kạn,C=VN"),
        key.public_key(),
    )
    with ctx.db.session() as session:
        issued = issuance.issue(session, ctx.authority, spec, "test")
    bundle = issuance.pkcs12_bundle(issued, key, "mat-khau-thu", "hoa")
    signer = signers.SimpleSigner.load_pkcs12_data(
        bundle, other_certs=[], passphrase=b"mat-khau-thu"
    )
    assert signer is not None
    return signer


def _sign_elsewhere(data: bytes, signer: signers.SimpleSigner, *, strict: bool = True) -> bytes:
    out = io.BytesIO()
    writer = IncrementalPdfFileWriter(io.BytesIO(data), strict=strict)
    meta = signers.PdfSignatureMetadata(field_name="ChuKy1")
    signers.sign_pdf(writer, meta, signer=signer, output=out)
    return out.getvalue()


@pytest.fixture(scope="module")
def nss(sqlite_instance: Instance, tmp_path_factory: pytest.TempPathFactory) -> str:
    require_or_skip(pki.have_poppler(), "poppler-utils and libnss3-tools")
    return pki.nss_db(tmp_path_factory.mktemp("nss"), pki.root_pem(sqlite_instance.ctx))


def test_pdf_signed_by_pyhanko_alone_passes(sqlite_instance: Instance, elsewhere) -> None:
    ctx = sqlite_instance.ctx
    signed = _sign_elsewhere(samples.official_document(), elsewhere)

    report = verify(signed, trust_context(ctx), name="signed-elsewhere.pdf")
    assert report.indication is Indication.TOTAL_PASSED, report.to_dict()
    assert report.signatures[0].signer is not None
    assert "Triệu Thị Hoa" in report.signatures[0].signer.subject

    # the same file with one byte of the signed original changed no longer passes
    tampered = bytearray(signed)
    spot = tampered.find(b"stream") + 12  # inside the first content stream, under ByteRange
    tampered[spot] ^= 0x01
    broken = verify(bytes(tampered), trust_context(ctx), name="tampered.pdf")
    assert broken.indication is not Indication.TOTAL_PASSED


def _startxref_off_by_two(data: bytes) -> bytes:
    """The original's ``startxref`` points two bytes before its xref table (a common slip of
    small PDF writers; readers search for the table nearby)."""
    found = re.search(rb"startxref\s+(\d+)", data)
    assert found is not None
    wrong = str(int(found.group(1)) - 2).encode()
    return data[: found.start(1)] + wrong + data[found.end(1) :]


LENIENT = {
    "startxref-off-by-two": lambda: _startxref_off_by_two(samples.official_document()),
    "hybrid-xref": lambda: (THIRD_PARTY / "pyhanko-minimal-hybrid-xref.pdf").read_bytes(),
}


@pytest.mark.interop
@pytest.mark.parametrize("original", list(LENIENT.values()), ids=list(LENIENT))
def test_files_poppler_and_lenient_readers_accept_are_read(
    sqlite_instance: Instance, elsewhere, original, tmp_path, nss
) -> None:
    signed = _sign_elsewhere(original(), elsewhere, strict=False)
    PdfFileReader(io.BytesIO(signed), strict=False)  # pyHanko's lenient reader accepts it
    path = tmp_path / "signed.pdf"
    path.write_bytes(signed)
    assert [r.signature for r in pki.pdfsig(path, nss)] == ["Signature is Valid."]

    report = verify(signed, trust_context(sqlite_instance.ctx), name="lenient.pdf")
    sig = report.signatures[0]
    assert report.indication is Indication.TOTAL_PASSED, sig.message_en
    assert [s.kind for s in sig.scope] == [ScopeKind.FULL]
    # the irregularity is said, though it changes nothing the signer did not sign
    assert any("cross-reference" in note.text_en for note in sig.notes), sig.notes
