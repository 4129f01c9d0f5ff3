"""RFC 3161 TSA: tokens checked by `openssl ts`, refusals parsed with asn1crypto."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from asn1crypto import cms, tsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kyso.errors import InvalidInput, WeakHashError
from kyso.keys.base import KeyAlgorithm
from kyso.keys.software import SoftwareKey
from kyso.pki.tsa import TimeStampAuthority, TimeStampResp

pytestmark = pytest.mark.interop

POLICY = "1.3.6.1.4.1.99999.3161.1"


@dataclass
class Pki:
    tsa: TimeStampAuthority
    key: SoftwareKey
    tsa_der: bytes
    root_pem: Path
    tsa_pem: Path


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Kyso Test"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _build_pki(kind: str, directory: Path) -> tuple[SoftwareKey, bytes, Path, Path]:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    root_key = ec.generate_private_key(ec.SECP384R1())
    root_name = _name("Kyso Test Root")
    root_ski = x509.SubjectKeyIdentifier.from_public_key(root_key.public_key())
    root = (
        x509.CertificateBuilder()
        .subject_name(root_name)
        .issuer_name(root_name)
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(root_ski, critical=False)
        .sign(root_key, hashes.SHA384())
    )

    private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    if kind == "rsa":
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        private = ec.generate_private_key(ec.SECP256R1())
    tsa_cert = (
        x509.CertificateBuilder()
        .subject_name(_name(f"Kyso Test TSA {kind}"))
        .issuer_name(root_name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(private.public_key()), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(root_ski),
            critical=False,
        )
        .sign(root_key, hashes.SHA384())
    )
    root_pem = directory / "root.pem"
    root_pem.write_bytes(root.public_bytes(serialization.Encoding.PEM))
    tsa_pem = directory / "tsa.pem"
    tsa_pem.write_bytes(tsa_cert.public_bytes(serialization.Encoding.PEM))
    key = SoftwareKey(f"sw-test{kind}", private)
    return key, tsa_cert.public_bytes(serialization.Encoding.DER), root_pem, tsa_pem


@pytest.fixture(scope="module", params=["rsa", "ec"])
def pki(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp(f"pki-{request.param}")
    key, tsa_der, root_pem, tsa_pem = _build_pki(request.param, directory)
    tsa = TimeStampAuthority(key, tsa_der, policy_oid=POLICY)
    return Pki(tsa, key, tsa_der, root_pem, tsa_pem)


def _openssl(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["openssl", *map(str, args)], capture_output=True, text=True, check=False, timeout=60
    )


def _query(tmp_path: Path, *options: str, data: bytes = b"kyso data\n") -> tuple[Path, bytes]:
    data_file = tmp_path / "data.bin"
    data_file.write_bytes(data)
    req = tmp_path / "req.tsq"
    result = _openssl("ts", "-query", "-data", data_file, *options, "-out", req)
    assert result.returncode == 0, result.stderr
    return data_file, req.read_bytes()


def _respond(pki: Pki, tmp_path: Path, request: bytes) -> tuple[Path, TimeStampResp]:
    der = pki.tsa.respond(request)
    resp = tmp_path / "resp.tsr"
    resp.write_bytes(der)
    return resp, TimeStampResp.load(der, strict=True)


def _verify(pki: Pki, resp: Path, *how: str | Path) -> subprocess.CompletedProcess[str]:
    return _openssl(
        "ts", "-verify", "-in", resp, *how, "-CAfile", pki.root_pem, "-untrusted", pki.tsa_pem
    )


def _tst_info(response: TimeStampResp) -> tsp.TSTInfo:
    signed = response["time_stamp_token"]["content"]
    return signed["encap_content_info"]["content"].parsed


def _assert_rejected(response: TimeStampResp, failure: str) -> None:
    status = response["status"]
    assert status["status"].native == "rejection"
    assert status["fail_info"].native == {failure}
    assert status["status_string"].native and status["status_string"].native[0]
    assert response["time_stamp_token"].native is None


def test_openssl_verifies_token_with_certificates(pki: Pki, tmp_path: Path) -> None:
    _, request = _query(tmp_path, "-sha256", "-cert")
    resp, response = _respond(pki, tmp_path, request)
    assert response["status"]["status"].native == "granted"

    result = _verify(pki, resp, "-queryfile", tmp_path / "req.tsq")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Verification: OK" in result.stdout

    text = _openssl("ts", "-reply", "-in", resp, "-text")
    assert text.returncode == 0, text.stderr
    assert f"Policy OID: {POLICY}" in text.stdout
    assert "Status: Granted." in text.stdout
    assert "Ordering: no" in text.stdout

    req_nonce = tsp.TimeStampReq.load(request)["nonce"].native
    assert req_nonce is not None
    info = _tst_info(response)
    assert info["nonce"].native == req_nonce
    shown = re.search(r"^Nonce: 0x([0-9A-F]+)$", text.stdout, re.MULTILINE)
    assert shown is not None and int(shown.group(1), 16) == req_nonce
    asked = _openssl("ts", "-query", "-in", tmp_path / "req.tsq", "-text")
    assert f"Nonce: 0x{shown.group(1)}" in asked.stdout
    assert (
        info["message_imprint"].dump() == tsp.TimeStampReq.load(request)["message_imprint"].dump()
    )
    assert info["accuracy"]["seconds"].native == 1

    signed = response["time_stamp_token"]["content"]
    assert signed["version"].native == "v3"
    certs = [c.chosen.dump() for c in signed["certificates"]]
    assert certs == [pki.tsa_der]
    signer = signed["signer_infos"][0]
    assert signer["version"].native == "v1"
    assert signer["sid"].name == "issuer_and_serial_number"
    attrs = {a["type"].native: a["values"][0] for a in signer["signed_attrs"]}
    assert set(attrs) == {"content_type", "message_digest", "signing_certificate_v2"}
    ess = attrs["signing_certificate_v2"]["certs"][0]
    assert ess["cert_hash"].native == hashlib.sha256(pki.tsa_der).digest()
    assert b"\x60\x86\x48\x01\x65\x03\x04\x02\x01" not in ess.dump()  # default sha256 omitted
    expected = "rsassa_pkcs1v15" if pki.key.algorithm.is_rsa else "sha256_ecdsa"
    assert signer["signature_algorithm"]["algorithm"].native == expected


def test_token_without_certificates_verifies_with_untrusted(pki: Pki, tmp_path: Path) -> None:
    _, request = _query(tmp_path, "-sha512")
    resp, response = _respond(pki, tmp_path, request)
    assert response["status"]["status"].native == "granted"
    signed = response["time_stamp_token"]["content"]
    assert signed["certificates"].native is None

    result = _verify(pki, resp, "-queryfile", tmp_path / "req.tsq")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Verification: OK" in result.stdout


@pytest.mark.parametrize("option", ["-sha1", "-md5"])
def test_weak_hash_rejected_bad_alg(pki: Pki, tmp_path: Path, option: str) -> None:
    _, request = _query(tmp_path, option, "-cert")
    resp, response = _respond(pki, tmp_path, request)
    _assert_rejected(response, "bad_alg")
    text = _openssl("ts", "-reply", "-in", resp, "-text")
    assert text.returncode == 0, text.stderr
    assert "Status: Rejected." in text.stdout
    assert "unrecognized or unsupported algorithm identifier" in text.stdout


def test_digest_length_mismatch_rejected_bad_alg(pki: Pki) -> None:
    request = tsp.TimeStampReq(
        {
            "version": "v1",
            "message_imprint": {
                "hash_algorithm": {"algorithm": "sha256"},
                "hashed_message": b"\x00" * 20,
            },
        }
    ).dump()
    _assert_rejected(TimeStampResp.load(pki.tsa.respond(request)), "bad_alg")


def test_request_extensions_rejected(pki: Pki) -> None:
    request = tsp.TimeStampReq(
        {
            "version": "v1",
            "message_imprint": {
                "hash_algorithm": {"algorithm": "sha256"},
                "hashed_message": b"\x00" * 32,
            },
            "extensions": [{"extn_id": "1.2.3.4", "extn_value": b"\x05\x00"}],
        }
    ).dump()
    _assert_rejected(TimeStampResp.load(pki.tsa.respond(request)), "unaccepted_extensions")


def test_malformed_requests_rejected_bad_data_format(pki: Pki, tmp_path: Path) -> None:
    _, request = _query(tmp_path, "-sha256", "-cert")
    for bad in (
        b"",
        b"this is not a time-stamp request",
        bytes(range(256)),
        request[:-5],
        request[:1],
        request + b"\x00",
        b"\x30\x03\x02\x01\x01",  # a SEQUENCE with only a version
    ):
        _assert_rejected(TimeStampResp.load(pki.tsa.respond(bad)), "bad_data_format")


def test_other_policy_rejected_ours_accepted(pki: Pki, tmp_path: Path) -> None:
    _, request = _query(tmp_path, "-sha256", "-tspolicy", "1.2.3.4")
    _, response = _respond(pki, tmp_path, request)
    _assert_rejected(response, "unaccepted_policy")

    _, request = _query(tmp_path, "-sha384", "-tspolicy", POLICY, "-cert")
    resp, response = _respond(pki, tmp_path, request)
    assert response["status"]["status"].native == "granted"
    result = _verify(pki, resp, "-queryfile", tmp_path / "req.tsq")
    assert "Verification: OK" in result.stdout, result.stdout + result.stderr


def test_serials_differ_and_time_is_now(pki: Pki, tmp_path: Path) -> None:
    _, request = _query(tmp_path, "-sha256")
    before = dt.datetime.now(dt.UTC)
    first = _tst_info(TimeStampResp.load(pki.tsa.respond(request)))
    second = _tst_info(TimeStampResp.load(pki.tsa.respond(request)))
    after = dt.datetime.now(dt.UTC)
    assert first["serial_number"].native != second["serial_number"].native
    for info in (first, second):
        assert 0 < info["serial_number"].native < 2**128
        gen_time = info["gen_time"].native
        assert before - dt.timedelta(seconds=2) <= gen_time <= after + dt.timedelta(seconds=2)


def test_wrong_data_fails_verification(pki: Pki, tmp_path: Path) -> None:
    _, request = _query(tmp_path, "-sha256", "-cert")
    resp, _ = _respond(pki, tmp_path, request)
    right = _verify(pki, resp, "-data", tmp_path / "data.bin")
    assert "Verification: OK" in right.stdout, right.stdout + right.stderr

    other = tmp_path / "other.bin"
    other.write_bytes(b"kyso data, altered\n")
    wrong = _verify(pki, resp, "-data", other)
    assert wrong.returncode != 0
    assert "Verification: OK" not in wrong.stdout
    assert "message imprint mismatch" in wrong.stdout + wrong.stderr


def test_stamp_in_process_verifies_as_token(pki: Pki, tmp_path: Path) -> None:
    data = b"a PDF byte range"
    digest = hashlib.sha3_256(data).digest()
    token = pki.tsa.stamp(digest, "sha3_256", nonce=42)
    info = cms.ContentInfo.load(token, strict=True)["content"]["encap_content_info"]["content"]
    assert info.parsed["nonce"].native == 42
    path = tmp_path / "token.der"
    path.write_bytes(token)
    result = _verify(pki, path, "-token_in", "-digest", digest.hex())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Verification: OK" in result.stdout

    bare = cms.ContentInfo.load(pki.tsa.stamp(digest, "sha3-256", cert_req=False))
    assert bare["content"]["certificates"].native is None
    with pytest.raises(WeakHashError):
        pki.tsa.stamp(hashlib.sha1(data).digest(), "sha1")
    with pytest.raises(InvalidInput):
        pki.tsa.stamp(digest[:20], "sha256")


class _OpaqueKey:
    """A key whose private half cannot be exported, as in an HSM."""

    def __init__(self, inner: SoftwareKey) -> None:
        self._inner = inner

    @property
    def key_id(self) -> str:
        return "p11-opaque"

    @property
    def algorithm(self) -> KeyAlgorithm:
        return self._inner.algorithm

    def public_key(self):  # type: ignore[no-untyped-def]
        return self._inner.public_key()

    def sign(self, data: bytes, hash_algorithm: hashes.HashAlgorithm) -> bytes:
        return self._inner.sign(data, hash_algorithm)

    def sign_digest(self, digest: bytes, hash_algorithm: hashes.HashAlgorithm) -> bytes:
        return self._inner.sign_digest(digest, hash_algorithm)

    def cryptography_key(self) -> None:
        return None


def test_hardware_style_key_signs(pki: Pki, tmp_path: Path) -> None:
    tsa = TimeStampAuthority(_OpaqueKey(pki.key), pki.tsa_der, policy_oid=POLICY)
    _, request = _query(tmp_path, "-sha256", "-cert")
    resp = tmp_path / "resp.tsr"
    resp.write_bytes(tsa.respond(request))
    result = _verify(pki, resp, "-queryfile", tmp_path / "req.tsq")
    assert "Verification: OK" in result.stdout, result.stdout + result.stderr


def test_signing_failure_is_system_failure(pki: Pki, tmp_path: Path) -> None:
    class Broken(_OpaqueKey):
        def sign(self, data: bytes, hash_algorithm: hashes.HashAlgorithm) -> bytes:
            raise RuntimeError("token removed")

    tsa = TimeStampAuthority(Broken(pki.key), pki.tsa_der, policy_oid=POLICY)
    _, request = _query(tmp_path, "-sha256")
    _assert_rejected(TimeStampResp.load(tsa.respond(request)), "system_failure")


def test_configuration_checked(pki: Pki) -> None:
    other = SoftwareKey("sw-other", ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(InvalidInput):
        TimeStampAuthority(other, pki.tsa_der, policy_oid=POLICY)
    with pytest.raises(InvalidInput):
        TimeStampAuthority(pki.key, pki.tsa_der, policy_oid="not-an-oid")
    with pytest.raises(InvalidInput):
        TimeStampAuthority(pki.key, b"junk", policy_oid=POLICY)


def test_throughput_smoke(pki: Pki) -> None:
    """Not a benchmark: just proves a stamp costs about one signature, not more."""
    digest = hashlib.sha256(b"x").digest()
    for _ in range(5):
        pki.tsa.stamp(digest)
    start = time.perf_counter()
    for _ in range(20):
        pki.tsa.stamp(digest)
    assert time.perf_counter() - start < 10
