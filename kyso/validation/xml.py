"""XML signatures (XML-DSig and XAdES, e.g. edXML's enveloped signature) into the report.

The document is parsed with :mod:`kyso.xmlsafe` (no DTD, entities or network). Each
``ds:Signature`` (not nested in another) is read, its core verified by signxml with the
signer's certificate, and judged like every other format by :func:`kyso.validation.cms.judge`
(chain to kyso's anchors, revocation, time-stamps).

SHA-1 policy: older edXML samples sign with rsa-sha1 and SHA-1 digests. kyso still checks
their integrity (so a clerk learns whether the content changed: a broken one is
TOTAL-FAILED/HASH_FAILURE like any other), but an intact one is reported
INDETERMINATE/CRYPTO_CONSTRAINTS_FAILURE, never TOTAL-PASSED: Circular 15/2025/TT-BKHCN asks
for SHA-256 or stronger, and SHA-1 collisions are practical. kyso itself signs only with
SHA-256 and up.

An edXML message (QCVN 102:2016) must be signed whole: a signature whose references do not
cover the document (``URI=""`` or the root's Id) is TOTAL-FAILED/FORMAT_FAILURE, as the rest
of the message could be changed without breaking it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import replace
from datetime import UTC, datetime

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from lxml import etree
from signxml import SignatureConfiguration, XMLVerifier
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod
from signxml.exceptions import (
    InvalidDigest,
    InvalidSignature,
    SignXMLException,
)
from signxml.exceptions import (
    InvalidInput as SignXMLInvalidInput,
)

from kyso import clock, xmlsafe
from kyso.signing.xades import DS_NS, EDXML_NS, XADES_NS, SafeC14n
from kyso.validation.cms import (
    Findings,
    TimestampCheck,
    check_timestamp,
    judge,
    summarize,
    weak_hash,
)
from kyso.validation.report import SignatureReport, ValidationReport
from kyso.validation.trust import TrustContext

__all__ = ["validate_xml"]

XADES_141_NS = "http://uri.etsi.org/01903/v1.4.1#"
_HASH_BY_URI = {
    "http://www.w3.org/2000/09/xmldsig#sha1": "sha1",
    "http://www.w3.org/2001/04/xmldsig-more#sha224": "sha224",
    "http://www.w3.org/2001/04/xmlenc#sha256": "sha256",
    "http://www.w3.org/2001/04/xmldsig-more#sha384": "sha384",
    "http://www.w3.org/2001/04/xmlenc#sha512": "sha512",
}

# Every asymmetric method signxml knows (SHA-1 included: integrity is checked, the weak
# hash is judged afterwards). HMAC is not a signature by anyone identifiable.
_SIGNATURE_METHODS = frozenset(m for m in SignatureMethod if not m.name.startswith("HMAC"))
_CONFIG = SignatureConfiguration(
    require_x509=True,
    expect_references=True,
    signature_methods=_SIGNATURE_METHODS,
    digest_algorithms=frozenset(DigestAlgorithm),
    # XML-DSig §4.4.3.2: a same-document reference without a c14n transform is serialized
    # with inclusive Canonical XML 1.0 (signxml's own default, c14n 1.1, is wrong here).
    default_reference_c14n_method=CanonicalizationMethod.CANONICAL_XML_1_0,
)


def _ds(tag: str) -> str:
    return f"{{{DS_NS}}}{tag}"


def _xades(tag: str) -> str:
    return f"{{{XADES_NS}}}{tag}"


class _Verifier(SafeC14n, XMLVerifier):
    """signxml's verifier, told exactly which ds:Signature to check (by its ElementPath from
    the root), so several signatures in one document are each verified."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self._path = path

    def _get_signature(self, root: etree._Element) -> etree._Element:
        found = root if self._path == "." else root.find(self._path)
        if found is None or found.tag != _ds("Signature"):
            raise SignXMLInvalidInput("the signature element was not found")
        return found


def _b64(text: str | None) -> bytes:
    return base64.b64decode("".join((text or "").split()), validate=True)


def _c14n(element: etree._Element, algorithm: str | None) -> bytes:
    algorithm = algorithm or CanonicalizationMethod.CANONICAL_XML_1_0.value
    return xmlsafe.c14n(
        element,
        exclusive=algorithm.startswith("http://www.w3.org/2001/10/xml-exc-c14n#"),
        with_comments=algorithm.endswith("#WithComments"),
    )


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _find_all(parent: etree._Element | None, path: str) -> list[etree._Element]:
    if parent is None:
        return []
    namespaces = {"ds": DS_NS, "xades": XADES_NS, "xades141": XADES_141_NS}
    return list(parent.iterfind(path, namespaces=namespaces))


def _issuer_of(cert: asn1_x509.Certificate, certs: list[asn1_x509.Certificate]) -> bool:
    return any(c is not cert and c.issuer == cert.subject for c in certs)


def _pick_signer(
    certs: list[asn1_x509.Certificate],
    signature: etree._Element,
    signed_properties: etree._Element | None,
) -> asn1_x509.Certificate | None:
    """The signer's certificate: by XAdES SigningCertificate(V2) when present — the signed
    reference to it, so None if it names a certificate that is not there — else by
    X509IssuerSerial, else the leaf of the certificates in KeyInfo."""
    references = _find_all(
        signed_properties,
        "xades:SignedSignatureProperties/xades:SigningCertificateV2/xades:Cert",
    ) or _find_all(
        signed_properties, "xades:SignedSignatureProperties/xades:SigningCertificate/xades:Cert"
    )
    if references:
        first = references[0]
        method = first.find(f"{_xades('CertDigest')}/{_ds('DigestMethod')}")
        value = first.find(f"{_xades('CertDigest')}/{_ds('DigestValue')}")
        hash_name = _HASH_BY_URI.get(method.get("Algorithm", "") if method is not None else "")
        try:
            expected = _b64(value.text if value is not None else None)
        except (binascii.Error, ValueError):
            return None
        if hash_name is None:
            return None
        for cert in certs:
            if hashlib.new(hash_name, cert.dump()).digest() == expected:
                return cert
        return None
    for serial in _find_all(
        signature, "ds:KeyInfo/ds:X509Data/ds:X509IssuerSerial/ds:X509SerialNumber"
    ):
        for cert in certs:
            if str(cert.serial_number) == (serial.text or "").strip():
                return cert
    leaves = [c for c in certs if not _issuer_of(c, certs)]
    candidates = leaves or certs
    return candidates[0] if candidates else None


def _covers_document(root: etree._Element, signature: etree._Element) -> bool:
    root_ids = {root.get(name) for name in ("Id", "ID", "id")} - {None}
    for reference in _find_all(signature, "ds:SignedInfo/ds:Reference"):
        uri = reference.get("URI")
        if uri == "" or (uri is not None and uri.startswith("#") and uri[1:] in root_ids):
            return True
    return False


def _read(
    root: etree._Element,
    signature: etree._Element,
    trust: TrustContext,
    index: int,
    count: int,
) -> Findings:
    findings = Findings(format="XML-DSig", signer=None)
    if count > 1:
        findings.field_name = signature.get("Id") or f"signature {index + 1}"
    qualifying = signature.find(f"{_ds('Object')}/{_xades('QualifyingProperties')}")
    signed_properties = (
        qualifying.find(_xades("SignedProperties")) if qualifying is not None else None
    )
    unsigned = (
        qualifying.find(f"{_xades('UnsignedProperties')}/{_xades('UnsignedSignatureProperties')}")
        if qualifying is not None
        else None
    )

    certs: list[asn1_x509.Certificate] = []
    try:
        for element in [
            *_find_all(signature, "ds:KeyInfo/ds:X509Data/ds:X509Certificate"),
            *_find_all(unsigned, "xades:CertificateValues/xades:EncapsulatedX509Certificate"),
        ]:
            der = _b64(element.text)
            x509.load_der_x509_certificate(der)  # strict parse; asn1crypto is lazy
            certs.append(asn1_x509.Certificate.load(der))
        findings.crls = [
            _b64(e.text)
            for e in _find_all(
                unsigned, "xades:RevocationValues/xades:CRLValues/xades:EncapsulatedCRLValue"
            )
        ]
        findings.ocsps = [
            _b64(e.text)
            for e in _find_all(
                unsigned, "xades:RevocationValues/xades:OCSPValues/xades:EncapsulatedOCSPValue"
            )
        ]
    except (binascii.Error, ValueError) as exc:
        findings.format_problem = f"a certificate or revocation value cannot be read: {exc}"
        return findings

    stamps = _find_all(unsigned, "xades:SignatureTimeStamp")
    if signed_properties is not None:
        if stamps and (findings.crls or findings.ocsps):
            findings.format = "XAdES-B-LT"
        elif stamps:
            findings.format = "XAdES-B-T"
        else:
            findings.format = "XAdES-B-B"
        signing_time = signed_properties.find(
            f"{_xades('SignedSignatureProperties')}/{_xades('SigningTime')}"
        )
        findings.claimed_signing_time = _parse_time(
            signing_time.text if signing_time is not None else None
        )

    # Algorithms: the signature method and every reference digest.
    method = signature.find(f"{_ds('SignedInfo')}/{_ds('SignatureMethod')}")
    algorithms = [method.get("Algorithm", "") if method is not None else ""]
    algorithms += [
        e.get("Algorithm", "")
        for e in _find_all(signature, "ds:SignedInfo/ds:Reference/ds:DigestMethod")
    ]
    for uri in algorithms:
        fragment = uri.rsplit("#", 1)[-1]
        if any(weak_hash(part) for part in fragment.split("-")):
            findings.weak_algorithm = fragment
            break

    signer = _pick_signer(certs, signature, signed_properties)
    findings.signer = signer
    findings.other_certs = [c for c in certs if c is not signer]
    if signer is None:  # judged INDETERMINATE/NO_SIGNING_CERTIFICATE_FOUND
        return findings

    # signxml would judge the certificate's dates itself; kyso's path validation does.
    config = replace(
        _CONFIG, verification_time=signer["tbs_certificate"]["validity"]["not_before"].native
    )
    try:
        results = _Verifier(root.getroottree().getelementpath(signature)).verify(
            root,
            x509_cert=x509.load_der_x509_certificate(signer.dump()),
            expect_config=config,
            parser=xmlsafe.parser(),
        )
        findings.intact = findings.valid = True
        results = results if isinstance(results, list) else [results]
        if signed_properties is not None and not any(
            r.signed_xml is not None and r.signed_xml.tag == _xades("SignedProperties")
            for r in results
        ):
            findings.format_problem = "the XAdES signed properties are not covered by the signature"
        elif root.tag == f"{{{EDXML_NS}}}edXML" and not _covers_document(root, signature):
            # "See what is signed": an edXML message is signed whole (QCVN 102:2016); a
            # signature over one element would leave the rest open to change.
            findings.format_problem = "the signature does not cover the whole edXML message"
    except InvalidDigest:
        findings.valid, findings.intact = True, False
    except InvalidSignature:
        findings.valid, findings.intact = False, True
    except (SignXMLException, etree.DocumentInvalid, etree.XMLSyntaxError, ValueError) as exc:
        findings.format_problem = str(exc)
        return findings

    value = signature.find(_ds("SignatureValue"))
    for stamp in stamps:
        findings.timestamps.append(_check_stamp(stamp, value, trust, findings))
    return findings


def _check_stamp(
    stamp: etree._Element,
    value: etree._Element | None,
    trust: TrustContext,
    findings: Findings,
) -> TimestampCheck:
    """EN 319 132-1 §5.3: the token's imprint is over the ds:SignatureValue element,
    canonicalized with the time-stamp's own CanonicalizationMethod."""
    method = stamp.find(_ds("CanonicalizationMethod"))
    encapsulated = stamp.find(_xades("EncapsulatedTimeStamp"))
    if value is None or encapsulated is None:
        return TimestampCheck(None, False, False, problem="the time-stamp is incomplete")
    try:
        token = _b64(encapsulated.text)
    except (binascii.Error, ValueError):
        return TimestampCheck(None, False, False, problem="the time-stamp cannot be read")
    canonical = _c14n(value, method.get("Algorithm") if method is not None else None)

    def imprint(hash_name: str) -> bytes:
        return hashlib.new(hash_name, canonical).digest()

    return check_timestamp(token, imprint, trust, crls=findings.crls, ocsps=findings.ocsps)


def validate_xml(
    xml: bytes, trust: TrustContext, *, name: str = "document.xml"
) -> ValidationReport:
    """Validate every XML signature in ``xml``; InvalidInput for unsafe or malformed XML.

    A document without any ``ds:Signature`` gives a report with no signatures
    (TOTAL-FAILED, "no signature was found").
    """
    root = xmlsafe.parse(xml)
    if root.tag == _ds("Signature"):
        signatures = [root]
    else:
        signatures = [
            s
            for s in root.iter(_ds("Signature"))
            if not any(a.tag == _ds("Signature") for a in s.iterancestors())
        ]
    reports: list[SignatureReport] = []
    for index, signature in enumerate(signatures):
        findings = _read(root, signature, trust, index, len(signatures))
        reports.append(judge(findings, trust))
    return summarize(
        ValidationReport(
            document=name,
            document_kind="xml",
            signatures=reports,
            validated_at=clock.now(),
        )
    )
