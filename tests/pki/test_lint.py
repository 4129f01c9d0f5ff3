"""kyso.pki.lint: pkilint over certificates, CRLs and OCSP responses built with cryptography."""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from kyso.pki.lint import Finding, errors, lint_certificate, lint_crl, lint_ocsp_response

pytestmark = pytest.mark.interop

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
POLICY_OID = x509.ObjectIdentifier("1.3.6.1.4.1.99999.1.1")
CRL_URL = "http://ca.kyso.test/crl/root.crl"
OCSP_URL = "http://ocsp.kyso.test"
CA_ISSUERS_URL = "http://ca.kyso.test/root.cer"

VN_SUBJECT = x509.Name(
    [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
        x509.NameAttribute(NameOID.LOCALITY_NAME, "Bắc Kạn"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "UBND tỉnh Bắc Kạn"),
        x509.NameAttribute(NameOID.COMMON_NAME, "Sở Thông tin và Truyền thông"),
    ]
)


def _ku(*, ds=False, nr=False, ke=False, cert_sign=False, crl_sign=False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=ds,
        content_commitment=nr,
        key_encipherment=ke,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


@dataclass(frozen=True)
class CA:
    key: rsa.RSAPrivateKey
    cert: x509.Certificate

    @property
    def name(self) -> x509.Name:
        return self.cert.subject

    @property
    def aki(self) -> x509.AuthorityKeyIdentifier:
        ski = self.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


@pytest.fixture(scope="module")
def ca() -> CA:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "UBND tỉnh Bắc Kạn"),
            x509.NameAttribute(NameOID.COMMON_NAME, "Kyso Test Root CA"),
        ]
    )
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW)
        .not_valid_after(NOW + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_ku(cert_sign=True, crl_sign=True), critical=True)
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return CA(key, cert)


@pytest.fixture(scope="module")
def ee_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _ee_extensions(ca: CA, key: rsa.RSAPrivateKey) -> dict[str, tuple[x509.ExtensionType, bool]]:
    """The end-entity profile: name -> (extension, critical)."""
    return {
        "bc": (x509.BasicConstraints(ca=False, path_length=None), True),
        "ku": (_ku(ds=True, nr=True), True),
        "ski": (x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False),
        "aki": (ca.aki, False),
        "crldp": (
            x509.CRLDistributionPoints(
                [
                    x509.DistributionPoint(
                        [x509.UniformResourceIdentifier(CRL_URL)], None, None, None
                    )
                ]
            ),
            False,
        ),
        "aia": (
            x509.AuthorityInformationAccess(
                [
                    x509.AccessDescription(
                        AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(OCSP_URL)
                    ),
                    x509.AccessDescription(
                        AuthorityInformationAccessOID.CA_ISSUERS,
                        x509.UniformResourceIdentifier(CA_ISSUERS_URL),
                    ),
                ]
            ),
            False,
        ),
        "cp": (x509.CertificatePolicies([x509.PolicyInformation(POLICY_OID, None)]), False),
    }


def _ee(
    ca: CA,
    key: rsa.RSAPrivateKey,
    *,
    subject: x509.Name = VN_SUBJECT,
    replace: dict[str, tuple[x509.ExtensionType, bool] | None] | None = None,
) -> x509.Certificate:
    exts = _ee_extensions(ca, key) | (replace or {})
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW)
        .not_valid_after(NOW + dt.timedelta(days=730))
    )
    for ext in exts.values():
        if ext is not None:
            builder = builder.add_extension(ext[0], critical=ext[1])
    return builder.sign(ca.key, hashes.SHA256())


def _codes(findings: list[Finding]) -> set[str]:
    return {f.code for f in findings}


def _not_info(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity != "INFO"]


# --- certificates ---------------------------------------------------------------------


def test_good_end_entity_lints_clean(ca: CA, ee_key: rsa.RSAPrivateKey) -> None:
    cert = _ee(ca, ee_key)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == (
        "Sở Thông tin và Truyền thông"
    )

    findings = lint_certificate(cert.public_bytes(Encoding.DER))

    assert errors(findings) == []
    # The profile is meant to be fully clean, not just error-free: only INFO remains
    # (pkilint reports which SKI calculation method it recognised).
    assert _not_info(findings) == []
    assert all(isinstance(f, Finding) for f in findings)


def test_test_ca_lints_clean(ca: CA) -> None:
    # self-signed root without AKI: allowed by RFC 5280 4.2.1.1, pkilint checks the self-signature
    findings = lint_certificate(ca.cert.public_bytes(Encoding.DER))
    assert _not_info(findings) == []


def test_email_in_subject_and_san_lints_clean(ca: CA, ee_key: rsa.RSAPrivateKey) -> None:
    subject = x509.Name(
        [*VN_SUBJECT, x509.NameAttribute(NameOID.EMAIL_ADDRESS, "stt@backan.gov.vn")]
    )
    san = (x509.SubjectAlternativeName([x509.RFC822Name("stt@backan.gov.vn")]), False)
    cert = _ee(ca, ee_key, subject=subject, replace={"san": san})
    assert errors(lint_certificate(cert.public_bytes(Encoding.DER))) == []


@pytest.mark.parametrize(
    ("case", "expected_code"),
    [
        ("ca_without_keycertsign", "pkix.ca_certificate_keycertsign_keyusage_not_set"),
        ("missing_aki", "pkix.authority_key_identifier_extension_absent"),
        ("ee_with_keycertsign", "pkix.ee_certificate_keycertsign_keyusage_set"),
        ("email_in_subject_not_in_san", "pkix.subject_email_address_not_in_san"),
        ("empty_subject_san_not_critical", "pkix.san_extension_not_critical_empty_subject"),
        (
            "timestamping_eku_not_critical",
            "pkix.extended_key_usage_extension_with_timestamping_not_critical",
        ),
    ],
)
def test_broken_certificate_reports_error(
    ca: CA, ee_key: rsa.RSAPrivateKey, case: str, expected_code: str
) -> None:
    subject = VN_SUBJECT
    replace: dict[str, tuple[x509.ExtensionType, bool] | None] = {}
    if case == "ca_without_keycertsign":
        replace["bc"] = (x509.BasicConstraints(ca=True, path_length=None), True)
    elif case == "missing_aki":
        replace["aki"] = None
    elif case == "ee_with_keycertsign":
        replace["ku"] = (_ku(ds=True, nr=True, cert_sign=True), True)
    elif case == "email_in_subject_not_in_san":
        subject = x509.Name(
            [*VN_SUBJECT, x509.NameAttribute(NameOID.EMAIL_ADDRESS, "a@backan.gov.vn")]
        )
    elif case == "empty_subject_san_not_critical":
        subject = x509.Name([])
        replace["san"] = (x509.SubjectAlternativeName([x509.RFC822Name("a@backan.gov.vn")]), False)
    elif case == "timestamping_eku_not_critical":
        replace["eku"] = (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), False)

    cert = _ee(ca, ee_key, subject=subject, replace=replace)
    found = errors(lint_certificate(cert.public_bytes(Encoding.DER)))

    assert expected_code in _codes(found), found
    assert all(f.severity in ("ERROR", "FATAL") for f in found)


def test_undecodable_input_is_fatal() -> None:
    for blob in (b"not DER at all", b"\x30\x03\x02\x01\x05"):
        found = errors(lint_certificate(blob))
        assert [f.code for f in found] == ["kyso.lint.decoding_failed"]
        assert found[0].severity == "FATAL"


# --- CRLs -----------------------------------------------------------------------------


def _crl(
    ca: CA,
    *,
    number: bool = True,
    aki: bool = True,
    revoked: int = 1,
    delta_indicator: tuple[int, bool] | None = None,
) -> bytes:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.name)
        .last_update(NOW)
        .next_update(NOW + dt.timedelta(days=7))
    )
    if number:
        builder = builder.add_extension(x509.CRLNumber(42), critical=False)
    if aki:
        builder = builder.add_extension(ca.aki, critical=False)
    if delta_indicator is not None:
        base, critical = delta_indicator
        builder = builder.add_extension(x509.DeltaCRLIndicator(base), critical=critical)
    for i in range(revoked):
        entry = (
            x509.RevokedCertificateBuilder()
            .serial_number(1000 + i)
            .revocation_date(NOW - dt.timedelta(hours=1))
            .add_extension(x509.CRLReason(x509.ReasonFlags.key_compromise), critical=False)
            .build()
        )
        builder = builder.add_revoked_certificate(entry)
    return builder.sign(ca.key, hashes.SHA256()).public_bytes(Encoding.DER)


@pytest.mark.parametrize("revoked", [0, 1, 3])
def test_good_crl_lints_clean(ca: CA, revoked: int) -> None:
    assert lint_crl(_crl(ca, revoked=revoked)) == []


def test_crl_without_number_reports_error(ca: CA) -> None:
    assert "pkix.crl_number_missing" in _codes(errors(lint_crl(_crl(ca, number=False))))


def test_crl_without_aki_reports_error(ca: CA) -> None:
    assert "pkix.authority_key_identifier_missing" in _codes(errors(lint_crl(_crl(ca, aki=False))))


def test_delta_crl(ca: CA) -> None:
    delta = _crl(ca, delta_indicator=(41, True))
    assert lint_crl(delta, delta=True) == []
    # a delta CRL where a complete one was expected, and the other way round
    assert _codes(errors(lint_crl(delta))) == {"kyso.crl_delta_indicator_in_complete_crl"}
    assert _codes(errors(lint_crl(_crl(ca), delta=True))) == {"kyso.crl_delta_indicator_missing"}
    # RFC 5280 5.2.4: deltaCRLIndicator MUST be critical
    not_critical = _crl(ca, delta_indicator=(41, False))
    assert _codes(errors(lint_crl(not_critical, delta=True))) == {
        "kyso.crl_delta_indicator_not_critical"
    }


# --- OCSP -----------------------------------------------------------------------------


def test_good_ocsp_response_lints_clean(ca: CA, ee_key: rsa.RSAPrivateKey) -> None:
    cert = _ee(ca, ee_key)
    response = (
        ocsp.OCSPResponseBuilder()
        .add_response(
            cert=cert,
            issuer=ca.cert,
            algorithm=hashes.SHA1(),
            cert_status=ocsp.OCSPCertStatus.GOOD,
            this_update=NOW,
            next_update=NOW + dt.timedelta(days=1),
            revocation_time=None,
            revocation_reason=None,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, ca.cert)
        .sign(ca.key, hashes.SHA256())
    )
    der = response.public_bytes(Encoding.DER)

    assert lint_ocsp_response(der) == []


def test_ocsp_lint_rejects_other_structures(ca: CA) -> None:
    found = errors(lint_ocsp_response(_crl(ca)))
    assert _codes(found) == {"kyso.lint.decoding_failed"}


# --- sharing the validators between threads ----------------------------------------------


def test_concurrent_use_gives_same_results(ca: CA, ee_key: rsa.RSAPrivateKey) -> None:
    good = _ee(ca, ee_key).public_bytes(Encoding.DER)
    bad = _ee(ca, ee_key, replace={"aki": None}).public_bytes(Encoding.DER)
    crl = _crl(ca, number=False)
    expected = [lint_certificate(good), lint_certificate(bad), lint_crl(crl)]

    def run(_: int) -> list[list[Finding]]:
        return [lint_certificate(good), lint_certificate(bad), lint_crl(crl)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(run, range(32)))

    assert all(r == expected for r in results)
