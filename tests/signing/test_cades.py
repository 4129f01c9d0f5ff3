"""CAdES signing: what ``openssl cms`` and ``openssl ts`` accept, at every level.

The helpers at the top (a signer whose key kyso holds, the CA chain as PEM, openssl) are
also used by the XAdES and S/MIME signing tests.
"""

from __future__ import annotations

import hashlib
import subprocess
import tracemalloc
from pathlib import Path

import pytest
from asn1crypto import cms, core, ocsp
from conftest import Instance
from cryptography.hazmat.primitives import serialization

from kyso.context import Context
from kyso.errors import InvalidInput
from kyso.keys.base import KeyAlgorithm
from kyso.pki import issuance
from kyso.signing.cades import sign_cms
from kyso.signing.identity import SignerIdentity, from_keystore
from kyso.signing.timestamps import InProcessTimeStamper, Level
from kyso.store.models import Profile
from kyso.trust import trust_context
from kyso.validation.cms import validate_cms
from kyso.validation.report import Indication

DATA = "Văn bản số 125/STTTT-VP về triển khai chữ ký số chuyên dùng.\n".encode()
SUBJECT = "CN=Nguyễn Thị Hồng Nhung,OU=Văn phòng,O=Sở Thông tin và Truyền thông tỉnh Bắc Kạn,C=VN"


# -- helpers shared with the other signing tests ----------------------------------------


def issue_signer(
    ctx: Context,
    *,
    algorithm: KeyAlgorithm = KeyAlgorithm.RSA_2048,
    subject: str = SUBJECT,
    emails: tuple[str, ...] = (),
) -> SignerIdentity:
    """A subscriber whose key kyso holds (issue --server-key), as signing code sees it."""
    with ctx.db.session() as session:
        issued = issuance.issue_with_server_key(
            session,
            ctx.authority,
            profile=Profile.INDIVIDUAL,
            subject=subject,
            algorithm=algorithm,
            actor="test",
            emails=emails,
        )
    return from_keystore(ctx, issued.row.key_location.split(":", 1)[1])


def write_chain(identity: SignerIdentity, directory: Path) -> dict[str, Path]:
    """chain.pem (issuing CA + root), issuing.pem, root.pem and signer.pem."""
    pem = serialization.Encoding.PEM
    files = {
        "chain": directory / "chain.pem",
        "issuing": directory / "issuing.pem",
        "root": directory / "root.pem",
        "signer": directory / "signer.pem",
    }
    files["chain"].write_bytes(b"".join(c.public_bytes(pem) for c in identity.chain))
    files["issuing"].write_bytes(identity.chain[0].public_bytes(pem))
    files["root"].write_bytes(identity.chain[-1].public_bytes(pem))
    files["signer"].write_bytes(identity.certificate.public_bytes(pem))
    return files


def openssl(
    *args: str | Path, input_bytes: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["openssl", *map(str, args)],
        capture_output=True,
        input=input_bytes,
        timeout=60,
        check=False,
    )


def signer_info(signature: bytes) -> cms.SignerInfo:
    return cms.ContentInfo.load(signature)["content"]["signer_infos"][0]


def attribute_types(attributes: cms.CMSAttributes) -> list[str]:
    return [a["type"].native for a in attributes]


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def signer(ctx: Context) -> SignerIdentity:
    return issue_signer(ctx)


@pytest.fixture(scope="module")
def sqlite_signer(sqlite_instance: Instance) -> SignerIdentity:
    return issue_signer(sqlite_instance.ctx, algorithm=KeyAlgorithm.EC_P256)


# -- tests ---------------------------------------------------------------------------------


@pytest.mark.interop
@pytest.mark.parametrize("level", [Level.B_B, Level.B_T, Level.B_LT])
def test_openssl_cms_verifies_each_level(
    ctx: Context, signer: SignerIdentity, level: Level, tmp_path: Path
) -> None:
    signature = sign_cms(
        DATA,
        signer,
        level=level,
        timestamper=InProcessTimeStamper(ctx.tsa),
        trust=trust_context(ctx),
    )
    files = write_chain(signer, tmp_path)
    (tmp_path / "f.p7s").write_bytes(signature)
    (tmp_path / "data").write_bytes(DATA)
    verify = (
        "cms",
        "-verify",
        "-binary",
        "-inform",
        "DER",
        "-in",
        tmp_path / "f.p7s",
        "-CAfile",
        files["chain"],
        "-purpose",
        "any",
        "-out",
        tmp_path / "out",
    )
    result = openssl(*verify, "-content", tmp_path / "data")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out").read_bytes() == DATA

    (tmp_path / "other").write_bytes(DATA + b"!")
    assert openssl(*verify, "-content", tmp_path / "other").returncode != 0

    # EN 319 122-1 §5.2: content-type, message-digest, signing-time, signing-certificate-v2.
    info = signer_info(signature)
    assert set(attribute_types(info["signed_attrs"])) >= {
        "content_type",
        "message_digest",
        "signing_time",
        "signing_certificate_v2",
    }
    unsigned = (
        []
        if isinstance(info["unsigned_attrs"], core.Void)
        else attribute_types(info["unsigned_attrs"])
    )
    assert ("signature_time_stamp_token" in unsigned) == level.needs_timestamp


@pytest.mark.interop
def test_openssl_ts_verifies_the_signature_time_stamp(
    sqlite_instance: Instance, sqlite_signer: SignerIdentity, tmp_path: Path
) -> None:
    """The token's imprint is over the SignerInfo signature value (EN 319 122-1 §5.3)."""
    ctx = sqlite_instance.ctx
    signature = sign_cms(
        DATA, sqlite_signer, level=Level.B_T, timestamper=InProcessTimeStamper(ctx.tsa)
    )
    info = signer_info(signature)
    token = next(
        a["values"][0]
        for a in info["unsigned_attrs"]
        if a["type"].native == "signature_time_stamp_token"
    )
    files = write_chain(sqlite_signer, tmp_path)
    (tmp_path / "token.der").write_bytes(token.dump())
    (tmp_path / "value.bin").write_bytes(info["signature"].native)
    verify = (
        "ts",
        "-verify",
        "-in",
        tmp_path / "token.der",
        "-token_in",
        "-CAfile",
        files["chain"],
    )
    result = openssl(*verify, "-data", tmp_path / "value.bin")
    assert result.returncode == 0, result.stderr
    assert b"Verification: OK" in result.stdout

    (tmp_path / "data.bin").write_bytes(DATA)  # the document itself is not what is stamped
    assert openssl(*verify, "-data", tmp_path / "data.bin").returncode != 0


def test_b_lt_embeds_the_chain_and_kyso_revocation_data(
    sqlite_instance: Instance, sqlite_signer: SignerIdentity
) -> None:
    ctx = sqlite_instance.ctx
    signature = sign_cms(
        DATA,
        sqlite_signer,
        level=Level.B_LT,
        timestamper=InProcessTimeStamper(ctx.tsa),
        trust=trust_context(ctx),
    )
    signed_data = cms.ContentInfo.load(signature)["content"]
    der = serialization.Encoding.DER
    embedded = {c.chosen.dump() for c in signed_data["certificates"]}
    for cert in [sqlite_signer.certificate, *sqlite_signer.chain]:
        assert cert.public_bytes(der) in embedded

    crls = [c for c in signed_data["crls"] if c.name == "crl"]
    others = [c for c in signed_data["crls"] if c.name == "other"]
    issuing = sqlite_signer.chain[0]
    assert any(
        c.chosen["tbs_cert_list"]["issuer"].dump() == issuing.subject.public_bytes() for c in crls
    )
    assert others and all(
        o.chosen["other_rev_info_format"].native == "ocsp_response" for o in others
    )
    answers = [
        single
        for o in others
        for single in ocsp.OCSPResponse.load(o.chosen["other_rev_info"].dump()).basic_ocsp_response[
            "tbs_response_data"
        ]["responses"]
    ]
    mine = [
        a
        for a in answers
        if a["cert_id"]["serial_number"].native == sqlite_signer.certificate.serial_number
    ]
    assert mine and mine[0]["cert_status"].name == "good"


@pytest.mark.interop
def test_attached_signature_carries_the_content(
    sqlite_signer: SignerIdentity, tmp_path: Path
) -> None:
    signature = sign_cms(DATA, sqlite_signer, detached=False)
    files = write_chain(sqlite_signer, tmp_path)
    (tmp_path / "a.p7s").write_bytes(signature)
    result = openssl(
        "cms",
        "-verify",
        "-binary",
        "-inform",
        "DER",
        "-in",
        tmp_path / "a.p7s",
        "-CAfile",
        files["chain"],
        "-purpose",
        "any",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == DATA


@pytest.mark.softhsm
@pytest.mark.interop
def test_cms_signed_with_a_key_in_softhsm(hsm_instance: Instance, tmp_path: Path) -> None:
    ctx = hsm_instance.ctx
    identity = issue_signer(ctx, algorithm=KeyAlgorithm.RSA_2048)
    assert identity.key.cryptography_key() is None  # really in the token
    signature = sign_cms(DATA, identity, level=Level.B_T, timestamper=InProcessTimeStamper(ctx.tsa))
    files = write_chain(identity, tmp_path)
    (tmp_path / "f.p7s").write_bytes(signature)
    (tmp_path / "data").write_bytes(DATA)
    result = openssl(
        "cms",
        "-verify",
        "-binary",
        "-inform",
        "DER",
        "-in",
        tmp_path / "f.p7s",
        "-content",
        tmp_path / "data",
        "-CAfile",
        files["chain"],
        "-purpose",
        "any",
        "-out",
        "/dev/null",
    )
    assert result.returncode == 0, result.stderr
    report = validate_cms(signature, DATA, trust_context(ctx))
    assert report.indication is Indication.TOTAL_PASSED, report.signatures[0].message_en


def test_twenty_megabytes_are_signed_and_checked_in_chunks(
    sqlite_instance: Instance, sqlite_signer: SignerIdentity, tmp_path: Path
) -> None:
    big = tmp_path / "big.bin"
    with big.open("wb") as out:
        block = hashlib.sha256(b"kyso").digest() * 32768  # 1 MiB
        for _ in range(20):
            out.write(block)
    tracemalloc.start()
    try:
        with big.open("rb") as stream:
            signature = sign_cms(stream, sqlite_signer)
        with big.open("rb") as stream:
            report = validate_cms(signature, stream, trust_context(sqlite_instance.ctx))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.indication is Indication.TOTAL_PASSED
    assert peak < 8 * 1024 * 1024, f"peak {peak} bytes: the file was loaded whole"


def test_levels_need_what_they_embed(sqlite_signer: SignerIdentity) -> None:
    with pytest.raises(InvalidInput, match="time-stamp"):
        sign_cms(DATA, sqlite_signer, level=Level.B_T)
    with pytest.raises(InvalidInput, match="trust"):
        sign_cms(DATA, sqlite_signer, level=Level.B_LT, timestamper=object())  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="B-LTA"):
        sign_cms(DATA, sqlite_signer, level=Level.B_LTA)
    with pytest.raises(InvalidInput):
        sign_cms(12345, sqlite_signer)  # type: ignore[arg-type]
