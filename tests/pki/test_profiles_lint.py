"""Every certificate kyso makes passes pkilint and OpenSSL's path and purpose checks.

Run against a CA with software keys and one whose keys live in SoftHSM2 (whose certificates
are signed through x509sign's re-assembly path), with every kind of subscriber key.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import Instance
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from kyso.keys.base import KeyAlgorithm
from kyso.pki import issuance, lint
from kyso.pki.names import parse_subject
from kyso.store.models import IdentityRole, Profile

pytestmark = pytest.mark.interop

SUBJECTS = {
    Profile.INDIVIDUAL: "CN=Triệu Thị Mến,T=Chánh Văn phòng,OU=Văn phòng,"
    "O=Sở Tư pháp tỉnh Bắc Kạn,L=Bắc Kạn,C=VN",
    Profile.ORGANIZATION: "CN=Sở Tư pháp tỉnh Bắc Kạn,O=UBND tỉnh Bắc Kạn,L=Bắc Kạn,C=VN",
    Profile.DEVICE: "CN=Máy chủ một cửa điện tử,OU=Trung tâm Phục vụ hành chính công,"
    "O=UBND tỉnh Bắc Kạn,C=VN",
}
KEY_ALGORITHMS = [
    KeyAlgorithm.RSA_2048,
    KeyAlgorithm.RSA_3072,
    KeyAlgorithm.EC_P256,
    KeyAlgorithm.EC_P384,
]


@pytest.fixture(
    scope="module", params=["software", pytest.param("softhsm", marks=pytest.mark.softhsm)]
)
def ca(request: pytest.FixtureRequest) -> Instance:
    name = "sqlite_instance" if request.param == "software" else "hsm_instance"
    return request.getfixturevalue(name)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def subscriber_keys() -> dict[KeyAlgorithm, object]:
    """One public key per algorithm, shared by both CAs (RSA-3072 generation is slow)."""
    keys: dict[KeyAlgorithm, object] = {}
    for algorithm in KEY_ALGORITHMS:
        if algorithm.is_rsa:
            keys[algorithm] = rsa.generate_private_key(65537, algorithm.rsa_bits).public_key()
        else:
            keys[algorithm] = ec.generate_private_key(algorithm.curve).public_key()
    return keys


@pytest.fixture(scope="module")
def chain_file(ca: Instance, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("chain") / "chain.pem"
    path.write_text("".join(i.pem() for i in ca.ctx.authority.chain()))
    return path


def openssl_verify(
    chain: Path, cert: x509.Certificate, tmp_path: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    leaf = tmp_path / "leaf.pem"
    leaf.write_bytes(cert.public_bytes(Encoding.PEM))
    return subprocess.run(
        ["openssl", "verify", "-x509_strict", *extra, "-CAfile", chain, leaf],
        capture_output=True,
        text=True,
    )


@pytest.mark.parametrize("role", list(IdentityRole), ids=str)
def test_ca_identity_certificates_have_no_lint_errors(ca: Instance, role: IdentityRole) -> None:
    identity = ca.ctx.authority.identity(role)
    assert lint.errors(lint.lint_certificate(identity.der)) == []


def test_ca_chain_verifies_with_openssl(ca: Instance, chain_file: Path, tmp_path: Path) -> None:
    issuing = ca.ctx.authority.identity(IdentityRole.ISSUING).certificate
    result = openssl_verify(chain_file, issuing, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("algorithm", KEY_ALGORITHMS, ids=str)
@pytest.mark.parametrize("profile", list(SUBJECTS), ids=str)
def test_subscriber_certificate_has_no_lint_errors_and_verifies_with_openssl(
    ca: Instance,
    chain_file: Path,
    subscriber_keys: dict[KeyAlgorithm, object],
    profile: Profile,
    algorithm: KeyAlgorithm,
    tmp_path: Path,
) -> None:
    spec = issuance.IssueSpec(profile, parse_subject(SUBJECTS[profile]), subscriber_keys[algorithm])  # type: ignore[arg-type]
    with ca.ctx.db.session() as session:
        issued = issuance.issue(session, ca.ctx.authority, spec, "test:lint")
    assert lint.errors(lint.lint_certificate(issued.row.der)) == []

    result = openssl_verify(chain_file, issued.certificate, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr

    # S/MIME signing is for people and organizations; a device certificate must not do it.
    smime = openssl_verify(chain_file, issued.certificate, tmp_path, "-purpose", "smimesign")
    if profile is Profile.DEVICE:
        assert smime.returncode != 0
    else:
        assert smime.returncode == 0, smime.stdout + smime.stderr


def test_tsa_certificate_has_a_single_critical_time_stamping_eku(
    ca: Instance, chain_file: Path, tmp_path: Path
) -> None:
    cert = ca.ctx.authority.identity(IdentityRole.TSA).certificate
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert eku.critical  # RFC 3161 §2.3
    assert list(eku.value) == [ExtendedKeyUsageOID.TIME_STAMPING]
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature and not ku.key_cert_sign
    result = openssl_verify(chain_file, cert, tmp_path, "-purpose", "timestampsign")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ocsp_certificate_has_ocsp_nocheck_and_only_ocsp_signing(
    ca: Instance, chain_file: Path, tmp_path: Path
) -> None:
    cert = ca.ctx.authority.identity(IdentityRole.OCSP).certificate
    nocheck = cert.extensions.get_extension_for_class(x509.OCSPNoCheck)  # RFC 6960 §4.2.2.2.1
    assert not nocheck.critical
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.OCSP_SIGNING]
    result = openssl_verify(chain_file, cert, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ca_certificates_carry_the_constraints_of_their_place(ca: Instance) -> None:
    root = ca.ctx.authority.identity(IdentityRole.ROOT).certificate
    issuing = ca.ctx.authority.identity(IdentityRole.ISSUING).certificate
    assert root.issuer == root.subject
    root_bc = root.extensions.get_extension_for_class(x509.BasicConstraints)
    assert root_bc.critical and root_bc.value.ca
    issuing_bc = issuing.extensions.get_extension_for_class(x509.BasicConstraints)
    assert issuing_bc.critical and issuing_bc.value.ca and issuing_bc.value.path_length == 0
    for cert in (root, issuing):
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        assert ku.key_cert_sign and ku.crl_sign
    issuing.verify_directly_issued_by(root)
