"""Certificate profiles: which extensions each kind of certificate carries.

Subscriber signing certificates carry nonRepudiation + digitalSignature (Circular
08/2016/TT-BQP practice, and what PDF readers expect of a document-signing key);
emailProtection lets the same certificate sign official e-mail (S/MIME). The TSA profile
has the single critical timeStamping EKU RFC 3161 §2.3 demands; the OCSP profile has
id-pkix-ocsp-nocheck (RFC 6960 §4.2.2.2.1) so clients do not ask about the responder itself.
The audit profile signs the audit log's checkpoints and nothing else: its one critical EKU is
kyso's own purpose, which no subscriber profile carries, so a subscriber's key cannot pass for
it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID

from kyso.store.models import Profile

# kyso's key purpose "signs audit-log checkpoints", under the same IANA documentation arc
# (RFC 5612) as the default policy OIDs: it names kyso's own purpose, so it is the same in
# every deployment (RFC 5280 §4.2.1.12 allows privately defined purposes).
AUDIT_SIGNING_EKU = x509.ObjectIdentifier("1.3.6.1.4.1.32473.84.10.1")


@dataclass(frozen=True)
class ProfileSpec:
    profile: Profile
    default_days: int
    is_ca: bool = False
    path_length: int | None = None
    digital_signature: bool = True
    non_repudiation: bool = False
    key_cert_sign: bool = False
    extended_key_usage: tuple[x509.ObjectIdentifier, ...] = ()
    eku_critical: bool = False
    ocsp_nocheck: bool = False
    revocation_info: bool = True  # CRL DP and OCSP in AIA


SPECS: dict[Profile, ProfileSpec] = {
    Profile.ROOT_CA: ProfileSpec(
        Profile.ROOT_CA,
        20 * 365,
        is_ca=True,
        digital_signature=False,
        key_cert_sign=True,
        revocation_info=False,
    ),
    Profile.SUB_CA: ProfileSpec(
        Profile.SUB_CA,
        10 * 365,
        is_ca=True,
        path_length=0,
        digital_signature=False,
        key_cert_sign=True,
    ),
    Profile.ORGANIZATION: ProfileSpec(
        Profile.ORGANIZATION,
        5 * 365,
        non_repudiation=True,
        extended_key_usage=(ExtendedKeyUsageOID.EMAIL_PROTECTION, ExtendedKeyUsageOID.CLIENT_AUTH),
    ),
    Profile.INDIVIDUAL: ProfileSpec(
        Profile.INDIVIDUAL,
        5 * 365,
        non_repudiation=True,
        extended_key_usage=(ExtendedKeyUsageOID.EMAIL_PROTECTION, ExtendedKeyUsageOID.CLIENT_AUTH),
    ),
    Profile.DEVICE: ProfileSpec(
        Profile.DEVICE,
        3 * 365,
        extended_key_usage=(ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH),
    ),
    Profile.TSA: ProfileSpec(
        Profile.TSA,
        5 * 365,
        extended_key_usage=(ExtendedKeyUsageOID.TIME_STAMPING,),
        eku_critical=True,
    ),
    Profile.OCSP: ProfileSpec(
        Profile.OCSP,
        365,
        extended_key_usage=(ExtendedKeyUsageOID.OCSP_SIGNING,),
        ocsp_nocheck=True,
        revocation_info=False,
    ),
    Profile.AUDIT: ProfileSpec(
        Profile.AUDIT,
        5 * 365,
        non_repudiation=True,
        extended_key_usage=(AUDIT_SIGNING_EKU,),
        eku_critical=True,
    ),
}

SUBSCRIBER_PROFILES = (Profile.ORGANIZATION, Profile.INDIVIDUAL, Profile.DEVICE)


@dataclass(frozen=True)
class IssuerView:
    """What a profile needs of the issuer: its name, key id and published URLs."""

    subject: x509.Name
    key_identifier: bytes
    not_after: datetime
    crl_url: str
    ca_issuers_url: str
    ocsp_url: str


def build(
    spec: ProfileSpec,
    *,
    subject: x509.Name,
    public_key: PublicKeyTypes,
    serial: int,
    not_before: datetime,
    days: int | None,
    issuer: IssuerView | None,
    policy_oid: str,
    emails: tuple[str, ...] = (),
) -> x509.CertificateBuilder:
    """A builder ready to sign. ``issuer`` None means self-signed (the root)."""
    not_after = not_before + timedelta(days=days or spec.default_days)
    if issuer is not None and not_after > issuer.not_after:
        not_after = issuer.not_after  # never outlive the issuer (RFC 5280 §6 path validity)
    ski = x509.SubjectKeyIdentifier.from_public_key(public_key)  # type: ignore[arg-type]
    builder = (
        x509.CertificateBuilder()
        .serial_number(serial)
        .subject_name(subject)
        .issuer_name(issuer.subject if issuer else subject)
        .public_key(public_key)  # type: ignore[arg-type]
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(
            x509.BasicConstraints(ca=spec.is_ca, path_length=spec.path_length), critical=True
        )
        .add_extension(
            x509.KeyUsage(
                digital_signature=spec.digital_signature,
                content_commitment=spec.non_repudiation,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=spec.key_cert_sign,
                crl_sign=spec.key_cert_sign,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier(issuer.key_identifier, None, None), critical=False
        )
        builder = builder.add_extension(
            x509.CertificatePolicies(
                [x509.PolicyInformation(x509.ObjectIdentifier(policy_oid), None)]
            ),
            critical=False,
        )
    if spec.extended_key_usage:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage(list(spec.extended_key_usage)), critical=spec.eku_critical
        )
    if spec.ocsp_nocheck:
        builder = builder.add_extension(x509.OCSPNoCheck(), critical=False)
    if issuer is not None and spec.revocation_info:
        builder = builder.add_extension(
            x509.CRLDistributionPoints(
                [
                    x509.DistributionPoint(
                        [x509.UniformResourceIdentifier(issuer.crl_url)], None, None, None
                    )
                ]
            ),
            critical=False,
        )
        access = [
            x509.AccessDescription(
                x509.AuthorityInformationAccessOID.CA_ISSUERS,
                x509.UniformResourceIdentifier(issuer.ca_issuers_url),
            )
        ]
        if not spec.is_ca:
            access.insert(
                0,
                x509.AccessDescription(
                    x509.AuthorityInformationAccessOID.OCSP,
                    x509.UniformResourceIdentifier(issuer.ocsp_url),
                ),
            )
        builder = builder.add_extension(x509.AuthorityInformationAccess(access), critical=False)
    if emails:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.RFC822Name(e) for e in emails]), critical=False
        )
    return builder
