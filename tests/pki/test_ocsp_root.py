"""OCSP answers about certificates the root issued (the issuing CA's own certificate) are
signed by the root itself: kyso's delegated responder was authorised by the issuing CA only,
so a relying party that checks who signed (RFC 6960 §4.2.2.2) refused those answers."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from kyso.context import Context
from kyso.store.models import IdentityRole

pytestmark = pytest.mark.interop


def _ask(ctx: Context, subject_role: IdentityRole, issuer_role: IdentityRole, nonce: bool) -> bytes:
    subject = ctx.authority.identity(subject_role).certificate
    issuer = ctx.authority.identity(issuer_role).certificate
    builder = ocsp.OCSPRequestBuilder().add_certificate(subject, issuer, hashes.SHA1())
    if nonce:
        builder = builder.add_extension(x509.OCSPNonce(b"0123456789abcdef"), critical=False)
    request = builder.build().public_bytes(serialization.Encoding.DER)
    return ctx.responder.respond(request).der


@pytest.mark.parametrize("nonce", [False, True], ids=["presigned", "signed-now"])
def test_the_issuing_cas_status_is_answered_by_the_root_and_openssl_accepts_it(
    ctx: Context, tmp_path: Path, nonce: bool
) -> None:
    answer = _ask(ctx, IdentityRole.ISSUING, IdentityRole.ROOT, nonce)
    parsed = ocsp.load_der_ocsp_response(answer)
    assert parsed.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    root = ctx.authority.identity(IdentityRole.ROOT)
    assert parsed.responder_key_hash == root.key_hash_sha1
    files = {
        "resp.der": answer,
        "root.pem": root.pem().encode(),
        "issuing.pem": ctx.authority.identity(IdentityRole.ISSUING).pem().encode(),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    checked = subprocess.run(
        ["openssl", "ocsp", "-respin", tmp_path / "resp.der", "-issuer", tmp_path / "root.pem",
         "-CAfile", tmp_path / "root.pem", "-cert", tmp_path / "issuing.pem", "-no_nonce"],
        capture_output=True, text=True,
    )  # fmt: skip
    output = checked.stdout + checked.stderr
    assert "Response verify OK" in output, output
    assert "issuing.pem: good" in output, output


def test_a_subscriber_answer_is_still_signed_by_the_delegated_responder(ctx: Context) -> None:
    answer = _ask(ctx, IdentityRole.TSA, IdentityRole.ISSUING, nonce=False)
    parsed = ocsp.load_der_ocsp_response(answer)
    responder = ctx.authority.identity(IdentityRole.OCSP)
    assert parsed.responder_key_hash == responder.key_hash_sha1
