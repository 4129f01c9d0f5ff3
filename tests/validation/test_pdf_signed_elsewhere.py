"""kyso validates a PDF signed by another tool: pyHanko on its own (its SimpleSigner and its
own writer, no kyso code), with a certificate and key exported by kyso's CA as PKCS#12."""

from __future__ import annotations

import io

from conftest import Instance
from cryptography.hazmat.primitives.asymmetric import ec
from fixtures.pdf import samples
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import signers

from kyso.pki import issuance
from kyso.pki.names import parse_subject
from kyso.store.models import Profile
from kyso.trust import trust_context
from kyso.validation.report import Indication
from kyso.validation.verify import verify


def test_pdf_signed_by_pyhanko_alone_passes(sqlite_instance: Instance) -> None:
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
    out = io.BytesIO()
    writer = IncrementalPdfFileWriter(io.BytesIO(samples.official_document()))
    meta = signers.PdfSignatureMetadata(field_name="ChuKy1")
    signers.sign_pdf(writer, meta, signer=signer, output=out)

    report = verify(out.getvalue(), trust_context(ctx), name="signed-elsewhere.pdf")
    assert report.indication is Indication.TOTAL_PASSED, report.to_dict()
    assert report.signatures[0].signer is not None
    assert "Triệu Thị Hoa" in report.signatures[0].signer.subject

    # the same file with one byte of the signed original changed no longer passes
    tampered = bytearray(out.getvalue())
    spot = tampered.find(b"stream") + 12  # inside the first content stream, under ByteRange
    tampered[spot] ^= 0x01
    broken = verify(bytes(tampered), trust_context(ctx), name="tampered.pdf")
    assert broken.indication is not Indication.TOTAL_PASSED
