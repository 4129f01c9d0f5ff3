"""Issuing subscriber certificates: what every certificate carries and what is refused."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pkcs11
import pytest
from asn1crypto import x509 as asn1_x509
from conftest import Instance
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pkcs11 import Attribute, ObjectClass
from sqlalchemy import func, select
from support import softhsm

from kyso import clock
from kyso.context import Context
from kyso.errors import (
    CompromisedKey,
    InvalidInput,
    KysoError,
    MalformedCSR,
    TooLarge,
    WeakKeyError,
)
from kyso.keys.base import KeyAlgorithm
from kyso.keys.pkcs11 import Pkcs11KeyStore
from kyso.pki import issuance, profiles, status
from kyso.pki.authority import Authority
from kyso.pki.names import parse_subject
from kyso.store.models import (
    AuditEntry,
    Certificate,
    IdentityRole,
    Profile,
    RevocationReason,
)

CN = "Nguyễn Thị Hồng Nhung"
OU = "Phòng Hành chính – Tổng hợp"
O = "Sở Thông tin và Truyền thông tỉnh Bắc Kạn"  # noqa: E741
L = "Thành phố Bắc Kạn"
SUBJECT = f"CN={CN},OU={OU},O={O},L={L},C=VN"

UTF8_STRING, PRINTABLE_STRING = 0x0C, 0x13

# The contract of each subscriber profile (ARCHITECTURE "The PKI"): signers get
# nonRepudiation + digitalSignature; devices authenticate only.
EXPECTED = {
    Profile.INDIVIDUAL: (
        True,
        [ExtendedKeyUsageOID.EMAIL_PROTECTION, ExtendedKeyUsageOID.CLIENT_AUTH],
    ),
    Profile.ORGANIZATION: (
        True,
        [ExtendedKeyUsageOID.EMAIL_PROTECTION, ExtendedKeyUsageOID.CLIENT_AUTH],
    ),
    Profile.DEVICE: (False, [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]),
}


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def make_csr(key: object, subject: x509.Name | str = "CN=Người yêu cầu,C=VN") -> bytes:
    name = subject if isinstance(subject, x509.Name) else parse_subject(subject)
    builder = x509.CertificateSigningRequestBuilder().subject_name(name)
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    csr = builder.sign(key, algorithm)  # type: ignore[arg-type]
    return csr.public_bytes(serialization.Encoding.PEM)


def spec_for(
    public_key: object, profile: Profile = Profile.INDIVIDUAL, **kw: object
) -> issuance.IssueSpec:
    return issuance.IssueSpec(profile, parse_subject(SUBJECT), public_key, **kw)  # type: ignore[arg-type]


def issue(ctx: Context, spec: issuance.IssueSpec) -> issuance.Issued:
    with ctx.db.session() as session:
        return issuance.issue(session, ctx.authority, spec, "test:issuance")


def counts(ctx: Context) -> tuple[int, int]:
    with ctx.db.read() as session:
        certificates = session.execute(select(func.count()).select_from(Certificate)).scalar_one()
        audit = session.execute(select(func.count()).select_from(AuditEntry)).scalar_one()
    return certificates, audit


def refused_without_trace(
    ctx: Context, error: type[KysoError], attempt: Callable[..., object]
) -> KysoError:
    """Run ``attempt(session)`` in a transaction, expect ``error``, and check nothing stayed."""
    before = counts(ctx)
    with pytest.raises(error) as caught, ctx.db.session() as session:
        attempt(session)
    assert counts(ctx) == before
    return caught.value


def issue_csr(ctx: Context, data: bytes, subject: str | None = SUBJECT) -> Callable[..., object]:
    def attempt(session: object) -> object:
        spec = issuance.spec_from_csr(data, Profile.INDIVIDUAL, subject=subject)
        return issuance.issue(session, ctx.authority, spec, "test:issuance")  # type: ignore[arg-type]

    return attempt


def string_tags(der: bytes) -> dict[str, int]:
    """The ASN.1 tag each subject attribute is encoded with, read from the DER."""
    subject = asn1_x509.Certificate.load(der)["tbs_certificate"]["subject"]
    return {atv["type"].native: atv["value"].dump()[0] for rdn in subject.chosen for atv in rdn}


def ext(cert: x509.Certificate, kind: type[x509.ExtensionType]) -> x509.Extension:
    return cert.extensions.get_extension_for_class(kind)


# --- what every subscriber certificate carries --------------------------------------------


@pytest.mark.parametrize("profile", list(EXPECTED), ids=str)
def test_each_subscriber_profile_issues_from_a_csr_with_its_extensions(
    ctx: Context, profile: Profile
) -> None:
    key = ec_key()
    spec = issuance.spec_from_csr(make_csr(key), profile, subject=SUBJECT)
    issued = issue(ctx, spec)
    cert = issued.certificate
    issuer = ctx.authority.identity(IdentityRole.ISSUING)
    non_repudiation, ekus = EXPECTED[profile]

    assert cert.public_key() == key.public_key()
    assert cert.issuer == issuer.certificate.subject
    cert.verify_directly_issued_by(issuer.certificate)

    basic = ext(cert, x509.BasicConstraints)
    assert basic.critical and basic.value.ca is False
    ku = ext(cert, x509.KeyUsage)
    assert ku.critical
    assert ku.value.digital_signature is True
    assert ku.value.content_commitment is non_repudiation
    assert not (ku.value.key_cert_sign or ku.value.crl_sign or ku.value.key_encipherment)
    eku = ext(cert, x509.ExtendedKeyUsage)
    assert not eku.critical
    assert list(eku.value) == ekus

    assert ext(cert, x509.SubjectKeyIdentifier).value == x509.SubjectKeyIdentifier.from_public_key(
        key.public_key()
    )
    assert ext(cert, x509.AuthorityKeyIdentifier).value.key_identifier == issuer.key_identifier

    crl_dp = ext(cert, x509.CRLDistributionPoints).value
    assert [n.value for dp in crl_dp for n in dp.full_name] == [ctx.authority.crl_url(issuer.id)]
    aia = {
        (d.access_method, d.access_location.value)
        for d in ext(cert, x509.AuthorityInformationAccess).value
    }
    assert aia == {
        (x509.AuthorityInformationAccessOID.OCSP, ctx.authority.ocsp_url),
        (x509.AuthorityInformationAccessOID.CA_ISSUERS, ctx.authority.ca_url(issuer.id)),
    }
    policies = ext(cert, x509.CertificatePolicies).value
    assert [p.policy_identifier.dotted_string for p in policies] == [ctx.settings.policy_oid]
    assert string_tags(issued.row.der) == {
        "common_name": UTF8_STRING,
        "organizational_unit_name": UTF8_STRING,
        "organization_name": UTF8_STRING,
        "locality_name": UTF8_STRING,
        "country_name": PRINTABLE_STRING,
    }

    with ctx.db.read() as session:
        row = session.execute(
            select(Certificate).where(Certificate.serial == issued.serial)
        ).scalar_one()
    assert row.der == cert.public_bytes(serialization.Encoding.DER)
    assert row.profile is profile
    assert row.key_location == "csr"


def test_subject_strings_are_utf8_except_country_which_is_printable(ctx: Context) -> None:
    issued = issue(ctx, spec_for(ec_key().public_key()))
    assert string_tags(issued.row.der) == {
        "common_name": UTF8_STRING,
        "organizational_unit_name": UTF8_STRING,
        "organization_name": UTF8_STRING,
        "locality_name": UTF8_STRING,
        "country_name": PRINTABLE_STRING,
    }


def test_csr_subject_strings_are_re_encoded_as_utf8(ctx: Context) -> None:
    # A CSR may use PrintableString (or TeletexString) for CN/O; kyso's certificate does not.
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
            x509.NameAttribute(
                NameOID.ORGANIZATION_NAME, "UBND tinh Bac Kan", x509.name._ASN1Type.PrintableString
            ),
            x509.NameAttribute(
                NameOID.COMMON_NAME, "Tran Van An", x509.name._ASN1Type.PrintableString
            ),
        ]
    )
    issued = issue(ctx, issuance.spec_from_csr(make_csr(ec_key(), name), Profile.INDIVIDUAL))
    assert string_tags(issued.row.der) == {
        "common_name": UTF8_STRING,
        "organization_name": UTF8_STRING,
        "country_name": PRINTABLE_STRING,
    }


def test_vietnamese_diacritics_survive_exactly(ctx: Context) -> None:
    issued = issue(ctx, issuance.spec_from_csr(make_csr(ec_key(), SUBJECT), Profile.INDIVIDUAL))
    subject = x509.load_der_x509_certificate(issued.row.der).subject
    values = {a.oid: a.value for a in subject}
    assert values == {
        NameOID.COMMON_NAME: CN,
        NameOID.ORGANIZATIONAL_UNIT_NAME: OU,
        NameOID.ORGANIZATION_NAME: O,
        NameOID.LOCALITY_NAME: L,
        NameOID.COUNTRY_NAME: "VN",
    }
    for value in (CN, OU, O, L):  # precomposed (NFC) UTF-8, byte for byte
        assert value.encode("utf-8") in issued.row.der
    with ctx.db.read() as session:
        stored = session.execute(
            select(Certificate.subject).where(Certificate.serial == issued.serial)
        ).scalar_one()
    assert parse_subject(stored) == subject


def test_the_ra_subject_overrides_the_csr_subject(ctx: Context) -> None:
    csr = make_csr(ec_key(), "CN=Giám đốc Sở,O=Tự xưng,C=US")
    issued = issue(ctx, issuance.spec_from_csr(csr, Profile.ORGANIZATION, subject=SUBJECT))
    assert issued.certificate.subject == parse_subject(SUBJECT)
    assert "Tự xưng" not in issued.certificate.subject.rfc4514_string()


def test_extensions_requested_in_a_csr_are_ignored(ctx: Context) -> None:
    key = ec_key()
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(parse_subject("CN=Xin làm CA,C=VN"))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("ca.example.vn")]), critical=False)
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
    )
    cert = issue(ctx, issuance.spec_from_csr(csr, Profile.DEVICE, subject=SUBJECT)).certificate
    assert ext(cert, x509.BasicConstraints).value.ca is False
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)


def test_serials_are_random_128_bit_and_unique_across_200_issuances(ctx: Context) -> None:
    # Serials do not depend on linting, which is most of an issuance's cost: the same CA,
    # database and keys, with pre-issuance lint off, keeps this test fast.
    authority = Authority(replace(ctx.settings, lint_on_issue=False), ctx.db, ctx.keystore)
    public = ec_key().public_key()
    with ctx.db.session() as session:
        batch = issuance.issue_many(session, authority, [spec_for(public)] * 200, "test")
    serials = [i.certificate.serial_number for i in batch]
    assert len(set(serials)) == 200
    assert all(1 << 64 <= s < 1 << 128 for s in serials)
    assert all(i.serial == format(i.certificate.serial_number, "x") for i in batch)
    # Random, not a counter: no two consecutive serials are neighbours.
    assert all(abs(a - b) > 1 << 32 for a, b in pairwise(serials))
    with ctx.db.read() as session:
        stored = session.execute(
            select(func.count())
            .select_from(Certificate)
            .where(Certificate.serial.in_([i.serial for i in batch]))
        ).scalar_one()
    assert stored == 200


def test_validity_defaults_to_the_profile_and_starts_a_minute_back(ctx: Context) -> None:
    before = clock.now()
    cert = issue(ctx, spec_for(ec_key().public_key(), Profile.DEVICE)).certificate
    not_before = cert.not_valid_before_utc
    assert before - timedelta(seconds=61) <= not_before <= before
    assert cert.not_valid_after_utc - not_before == timedelta(days=3 * 365)


def test_validity_never_outlives_the_issuing_ca(ctx: Context) -> None:
    issuer_not_after = ctx.authority.identity(IdentityRole.ISSUING).certificate.not_valid_after_utc
    cert = issue(ctx, spec_for(ec_key().public_key(), days=3650)).certificate
    assert cert.not_valid_after_utc <= issuer_not_after
    assert cert.not_valid_after_utc == min(
        cert.not_valid_before_utc + timedelta(days=3650), issuer_not_after
    )


def test_profile_clamps_validity_to_an_issuer_that_expires_sooner() -> None:
    key = ec_key()
    now = datetime(2030, 1, 1, tzinfo=UTC)
    issuer = profiles.IssuerView(
        subject=parse_subject("CN=CA sắp hết hạn,C=VN"),
        key_identifier=b"\x01" * 20,
        not_after=now + timedelta(days=30),
        crl_url="http://x/crl",
        ca_issuers_url="http://x/ca",
        ocsp_url="http://x/ocsp",
    )
    builder = profiles.build(
        profiles.SPECS[Profile.INDIVIDUAL],
        subject=parse_subject(SUBJECT),
        public_key=key.public_key(),
        serial=1 << 100,
        not_before=now,
        days=3650,
        issuer=issuer,
        policy_oid="1.3.6.1.4.1.32473.84.1",
    )
    cert = builder.sign(ec_key(), hashes.SHA256())
    assert cert.not_valid_after_utc == now + timedelta(days=30)


@pytest.mark.parametrize("days", [0, -1, 3651])
def test_validity_outside_1_to_3650_days_is_refused(ctx: Context, days: int) -> None:
    spec = spec_for(ec_key().public_key(), days=days)
    refused_without_trace(
        ctx, InvalidInput, lambda s: issuance.issue(s, ctx.authority, spec, "test")
    )


# --- CSRs that are refused, leaving nothing behind ----------------------------------------


@pytest.mark.parametrize(
    "make_key",
    [
        pytest.param(lambda: rsa.generate_private_key(65537, 1024), id="rsa-1024"),
        pytest.param(lambda: rsa.generate_private_key(3, 2048), id="rsa-2048-e3"),
        pytest.param(lambda: ec.generate_private_key(ec.SECP192R1()), id="ec-p192"),
        pytest.param(lambda: ec.generate_private_key(ec.SECP521R1()), id="ec-p521"),
        pytest.param(ed25519.Ed25519PrivateKey.generate, id="ed25519"),
    ],
)
def test_csr_with_a_key_kyso_does_not_accept_is_refused(
    ctx: Context, make_key: Callable[[], object]
) -> None:
    refused_without_trace(ctx, WeakKeyError, issue_csr(ctx, make_csr(make_key())))


def _flip_signature_byte(pem: bytes) -> bytes:
    der = bytearray(x509.load_pem_x509_csr(pem).public_bytes(serialization.Encoding.DER))
    der[-1] ^= 0x01  # the last byte belongs to the signature BIT STRING
    return bytes(der)


def test_csr_with_a_broken_signature_is_refused(ctx: Context) -> None:
    pem = make_csr(rsa.generate_private_key(65537, 2048))
    broken = _flip_signature_byte(pem)
    x509.load_der_x509_csr(broken)  # still parses: only the signature is wrong
    refused_without_trace(ctx, MalformedCSR, issue_csr(ctx, broken))


def test_ec_csr_with_a_broken_signature_is_refused(ctx: Context) -> None:
    refused_without_trace(
        ctx, MalformedCSR, issue_csr(ctx, _flip_signature_byte(make_csr(ec_key())))
    )


@pytest.fixture(scope="module")
def good_csr() -> bytes:
    return make_csr(ec_key())


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda pem: b"this is not a certificate request", id="garbage"),
        pytest.param(lambda pem: b"", id="empty"),
        pytest.param(lambda pem: b"  \n\t ", id="blank"),
        pytest.param(lambda pem: pem[: len(pem) // 2], id="truncated-pem"),
        pytest.param(
            lambda pem: x509.load_pem_x509_csr(pem).public_bytes(serialization.Encoding.DER)[:-20],
            id="truncated-der",
        ),
        pytest.param(lambda pem: b"\x30\x82\xff\xff" + b"\x00" * 100, id="der-length-lies"),
        pytest.param(
            lambda pem: pem.replace(b"CERTIFICATE REQUEST", b"CERTIFICATE"), id="pem-wrong-label"
        ),
        pytest.param(lambda pem: b"A" * (64 * 1024), id="garbage-at-the-size-limit"),
    ],
)
def test_unreadable_csr_is_refused_as_malformed(
    ctx: Context, good_csr: bytes, mangle: Callable[[bytes], bytes]
) -> None:
    refused_without_trace(ctx, MalformedCSR, issue_csr(ctx, mangle(good_csr)))


def test_csr_over_64_kib_is_refused_as_too_large(ctx: Context, good_csr: bytes) -> None:
    padded = good_csr + b"\n" * (64 * 1024 + 1 - len(good_csr))
    assert len(padded) == 64 * 1024 + 1
    refused_without_trace(ctx, TooLarge, issue_csr(ctx, padded))


def test_csr_subject_without_cn_is_refused_when_no_ra_subject_is_given(ctx: Context) -> None:
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "UBND tỉnh Bắc Kạn")])
    refused_without_trace(ctx, InvalidInput, issue_csr(ctx, make_csr(ec_key(), name), None))


def test_subject_without_cn_is_refused_even_when_built_in_code(ctx: Context) -> None:
    # RFC 5280 §4.1.2.6: an empty subject needs a critical subjectAltName kyso never makes.
    for name in (x509.Name([]), x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "VN")])):
        spec = issuance.IssueSpec(Profile.INDIVIDUAL, name, ec_key().public_key())
        refused_without_trace(
            ctx, InvalidInput, lambda s, spec=spec: issuance.issue(s, ctx.authority, spec, "t")
        )


# --- compromised keys ---------------------------------------------------------------------


def test_revoked_key_cannot_be_certified_again_after_key_compromise(ctx: Context) -> None:
    key = ec_key()
    first = issue(ctx, spec_for(key.public_key()))
    with ctx.db.session() as session:
        status.revoke(session, ctx.authority, first.serial, RevocationReason.KEY_COMPROMISE, "t")
    refused_without_trace(ctx, CompromisedKey, issue_csr(ctx, make_csr(key)))
    spec = spec_for(key.public_key(), Profile.DEVICE)
    refused_without_trace(
        ctx, CompromisedKey, lambda s: issuance.issue(s, ctx.authority, spec, "t")
    )


def test_a_key_whose_certificate_was_superseded_can_be_certified_again(ctx: Context) -> None:
    key = ec_key()
    first = issue(ctx, spec_for(key.public_key()))
    with ctx.db.session() as session:
        status.revoke(session, ctx.authority, first.serial, RevocationReason.SUPERSEDED, "t")
    second = issue(ctx, issuance.spec_from_csr(make_csr(key), Profile.INDIVIDUAL, subject=SUBJECT))
    assert second.serial != first.serial
    assert second.certificate.public_key() == key.public_key()


# --- batches ------------------------------------------------------------------------------


def _compromised_public_key(ctx: Context) -> object:
    key = ec_key()
    issued = issue(ctx, spec_for(key.public_key()))
    with ctx.db.session() as session:
        status.revoke(session, ctx.authority, issued.serial, RevocationReason.KEY_COMPROMISE, "t")
    return key.public_key()


BAD_SPECS: dict[str, tuple[type[KysoError], Callable[[Context], issuance.IssueSpec]]] = {
    "weak-key": (
        WeakKeyError,
        lambda ctx: spec_for(rsa.generate_private_key(65537, 1024).public_key()),
    ),
    "ca-profile": (InvalidInput, lambda ctx: spec_for(ec_key().public_key(), Profile.TSA)),
    "too-long": (InvalidInput, lambda ctx: spec_for(ec_key().public_key(), days=4000)),
    "bad-email": (
        InvalidInput,
        lambda ctx: spec_for(ec_key().public_key(), emails=("không phải thư",)),
    ),
    "no-cn": (
        InvalidInput,
        lambda ctx: issuance.IssueSpec(Profile.DEVICE, x509.Name([]), ec_key().public_key()),
    ),
    "compromised-key": (CompromisedKey, lambda ctx: spec_for(_compromised_public_key(ctx))),
}


@pytest.mark.parametrize("bad", list(BAD_SPECS))
def test_issue_many_is_all_or_nothing(ctx: Context, bad: str) -> None:
    error, make_bad = BAD_SPECS[bad]
    specs = [spec_for(ec_key().public_key(), p) for p in EXPECTED]
    specs.append(make_bad(ctx))
    refused_without_trace(
        ctx, error, lambda s: issuance.issue_many(s, ctx.authority, specs, "test")
    )
    # Without the bad one the same batch goes through.
    with ctx.db.session() as session:
        assert len(issuance.issue_many(session, ctx.authority, specs[:-1], "test")) == 3


# --- PKCS#12 ------------------------------------------------------------------------------


def test_pkcs12_bundle_opens_with_its_password_and_carries_the_chain(ctx: Context) -> None:
    key = issuance.generate_for_pkcs12(KeyAlgorithm.RSA_2048)
    issued = issue(ctx, spec_for(key.public_key()))  # type: ignore[attr-defined]
    password = "mật khẩu đủ dài"
    bundle = issuance.pkcs12_bundle(issued, key, password, CN)

    loaded = pkcs12.load_pkcs12(bundle, password.encode())
    assert loaded.key is not None
    assert loaded.key.public_key() == key.public_key()  # type: ignore[attr-defined]
    assert loaded.cert is not None
    assert loaded.cert.certificate == issued.certificate
    assert loaded.cert.friendly_name == CN.encode()
    extra = [c.certificate for c in loaded.additional_certs]
    assert ctx.authority.identity(IdentityRole.ISSUING).certificate in extra

    k, cert, chain = pkcs12.load_key_and_certificates(bundle, password.encode())
    assert k is not None and cert == issued.certificate and chain

    with pytest.raises(ValueError):
        pkcs12.load_key_and_certificates(bundle, b"wrong password")


@pytest.mark.parametrize("password", ["", "1234567", "ngắn"])
def test_pkcs12_password_shorter_than_8_characters_is_refused(ctx: Context, password: str) -> None:
    key = issuance.generate_for_pkcs12(KeyAlgorithm.EC_P256)
    issued = issue(ctx, spec_for(key.public_key()))  # type: ignore[attr-defined]
    with pytest.raises(InvalidInput):
        issuance.pkcs12_bundle(issued, key, password, "x")


# --- keys made on a token -----------------------------------------------------------------


@pytest.mark.softhsm
@pytest.mark.parametrize("algorithm", [KeyAlgorithm.EC_P256, KeyAlgorithm.RSA_2048], ids=str)
def test_issue_on_token_makes_the_key_there_and_writes_the_certificate_beside_it(
    hsm_instance: Instance, hsm_tokens: softhsm.SoftHsmToken, algorithm: KeyAlgorithm
) -> None:
    hsm = hsm_instance.ctx
    token = Pkcs11KeyStore(hsm_tokens.module, "subscriber-1", "135790")
    try:
        with hsm.db.session() as session:
            issued = issuance.issue_on_token(
                session,
                hsm.authority,
                token,
                profile=Profile.INDIVIDUAL,
                subject=SUBJECT,
                algorithm=algorithm,
                actor="test:token",
            )
        key_id = issued.row.key_location.removeprefix("token:subscriber-1:")
        assert issued.row.key_location == f"token:subscriber-1:{key_id}"
        cka_id = bytes.fromhex(key_id.removeprefix("p11-"))
        assert issued.certificate.public_key() == token.get(key_id).public_key()
        issued.certificate.verify_directly_issued_by(
            hsm.authority.identity(IdentityRole.ISSUING).certificate
        )

        # Look at the token with a session of our own (the store's login is token-wide).
        view = pkcs11.lib(hsm_tokens.module).get_token(token_label="subscriber-1")
        with view.open() as session:
            keys = list(
                session.get_objects(
                    {Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.ID: cka_id}
                )
            )
            certs = list(
                session.get_objects(
                    {Attribute.CLASS: ObjectClass.CERTIFICATE, Attribute.ID: cka_id}
                )
            )
            assert len(keys) == 1 and len(certs) == 1
            assert keys[0][Attribute.SENSITIVE] is True
            assert keys[0][Attribute.EXTRACTABLE] is False
            assert bytes(certs[0][Attribute.VALUE]) == issued.row.der
            assert bytes(certs[0][Attribute.SUBJECT]) == issued.certificate.subject.public_bytes()
    finally:
        token.close()
