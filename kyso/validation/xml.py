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

What a signature covers (``SignatureReport.scope``, after EU DSS's signature scopes) is
decided while signxml verifies, by kyso's own reference resolver (:class:`_Verifier`), and
only same-document references are resolved:

* ``URI=""`` is the whole document (with the enveloped-signature transform, less the
  signature itself);
* ``URI="#x"`` is the one element carrying ``x`` in an ID attribute. Attributes whose local
  name is ``id`` in any case and any namespace count as IDs (``Id``, ``ID``, ``id``,
  ``xml:id``, ``wsu:Id``): signxml would look them up one name after the other, so a new
  root with ``id="x"`` around a signed original with ``Id="x"`` resolved to the original
  while the reader saw the forged root (signature wrapping). Two elements claiming the same
  id are refused (XML 1.0 §3.3.1, "Validity constraint: ID": a value appears once):
  TOTAL-FAILED/FORMAT_FAILURE;
* an id no element carries, an external URI (kyso reads no file and no network address a
  document names), XPointer, and references whose transforms are XPath, XPath Filter 2.0,
  XSLT or anything but canonicalization, base64 and enveloped-signature (programs written by
  the signer that would decide what is signed) give INDETERMINATE/SIGNED_DATA_NOT_FOUND, as
  EN 319 102-1 §5.2.7 says when the signed data cannot be obtained.

The element each reference resolved to is taken by its position in the tree signxml
digested, and compared by identity with the document's root (and with the XAdES
SignedProperties kyso reads). A signature whose references do not cover the root is never
TOTAL-PASSED for the document: INDETERMINATE/SIG_CONSTRAINTS_FAILURE, the scope naming each
element it does cover, as what lies outside could have been added or changed. An edXML
message must have its header and body signed (QCVN 102:2016): a signature that leaves
either out is TOTAL-FAILED/FORMAT_FAILURE; one over header and body but not the whole
message (the attachments could be swapped) is INDETERMINATE like any other partial scope.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

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
from kyso.formats.xmldsig import DS_NS, EDXML_NS, XADES_NS, SafeC14n
from kyso.trust import TrustContext
from kyso.validation import messages
from kyso.validation.cms import (
    Findings,
    TimestampCheck,
    check_timestamp,
    judge,
    summarize,
    weak_hash,
)
from kyso.validation.report import (
    Indication,
    ScopeKind,
    SignatureReport,
    SignatureScope,
    SubIndication,
    ValidationReport,
)

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


# XML-DSig 1.1 §6.6: the transforms kyso runs. Any other (XPath, XPath Filter 2.0, XSLT,
# decryption) is a program the signer wrote that decides what is signed.
_ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
_TRANSFORMS = frozenset(
    {_ENVELOPED, "http://www.w3.org/2000/09/xmldsig#base64"}
    | {m.value for m in CanonicalizationMethod}
)
_TRANSFORM_NAMES = {
    "http://www.w3.org/TR/1999/REC-xpath-19991116": "XPath",
    "http://www.w3.org/2002/06/xmldsig-filter2": "XPath Filter 2.0",
    "http://www.w3.org/TR/1999/REC-xslt-19991116": "XSLT",
}


class _Unresolved(SignXMLException):
    """A reference kyso does not resolve, with the scope entry saying why. ``malformed``: the
    document itself is at fault (duplicate ids), not merely data kyso cannot obtain."""

    def __init__(self, scope: SignatureScope, *, malformed: bool = False) -> None:
        super().__init__(scope.description_en)
        self.scope = scope
        self.malformed = malformed


def _is_id(attribute: str) -> bool:
    return etree.QName(attribute).localname.lower() == "id"


def _resolve(doc_root: etree._Element, reference: etree._Element) -> etree._Element:
    """The element a ds:Reference designates in ``doc_root``, by the rules in the module
    docstring; ``_Unresolved`` otherwise."""
    for transform in reference.iterfind(f"{_ds('Transforms')}/{_ds('Transform')}"):
        algorithm = transform.get("Algorithm", "")
        if algorithm not in _TRANSFORMS:
            name = _TRANSFORM_NAMES.get(algorithm)
            raise _Unresolved(
                SignatureScope(
                    ScopeKind.NOTHING,
                    f"không xác định được: tham chiếu dùng phép biến đổi {name}, một chương "
                    "trình do người ký viết mà kyso không chạy"
                    if name
                    else f"không xác định được: tham chiếu dùng phép biến đổi kyso không biết "
                    f"({algorithm})",
                    f"cannot be told: a reference uses an {name} transform, a program written "
                    "by the signer that kyso does not run"
                    if name
                    else f"cannot be told: a reference uses a transform kyso does not know "
                    f"({algorithm})",
                )
            )
    uri = reference.get("URI")
    if uri == "":
        return doc_root
    if uri is None or not uri.startswith("#"):
        raise _Unresolved(
            SignatureScope(
                ScopeKind.DETACHED,
                "dữ liệu do ứng dụng của người ký tự xác định (tham chiếu không có URI), "
                "không nằm trong tệp này"
                if uri is None
                else f"dữ liệu nằm ngoài tệp này ({uri}); kyso không đọc tệp hay tải dữ liệu "
                "từ địa chỉ mà tài liệu ghi",
                "data the signer's application defines (a reference without URI), not in this file"
                if uri is None
                else f"data outside this file ({uri}), which kyso does not read or download",
            )
        )
    fragment = uri[1:]
    if fragment.startswith("xpointer("):
        raise _Unresolved(
            SignatureScope(
                ScopeKind.NOTHING,
                f"không xác định được: tham chiếu dùng biểu thức XPointer ({uri}) mà kyso "
                "không thực hiện",
                f"cannot be told: the reference uses an XPointer expression ({uri}), which "
                "kyso does not evaluate",
            )
        )
    claims = [
        e
        for e in doc_root.iter(etree.Element)
        if any(_is_id(name) and value == fragment for name, value in e.attrib.items())
    ]
    if not claims:
        raise _Unresolved(
            SignatureScope(
                ScopeKind.NOTHING,
                f'không có gì trong tệp này: không có phần tử nào mang mã định danh "{fragment}" '
                "mà chữ ký trỏ tới",
                f'nothing in this file: the element with the identifier "{fragment}" the '
                "signature refers to does not exist",
            )
        )
    if len(claims) > 1:
        count_vi = "hai" if len(claims) == 2 else str(len(claims))
        count_en = "two" if len(claims) == 2 else str(len(claims))
        raise _Unresolved(
            SignatureScope(
                ScopeKind.NOTHING,
                f"không xác định được: {count_vi} phần tử cùng mang mã định danh "
                f'"{fragment}" mà chữ ký trỏ tới, nên không biết phần tử nào đã được ký '
                "(dấu hiệu tấn công bọc chữ ký — signature wrapping)",
                f"cannot be told: {count_en} elements carry the identifier "
                f'"{fragment}" the signature refers to, so which one was signed is unknown '
                "(a sign of a signature-wrapping attack)",
            ),
            malformed=True,
        )
    return claims[0]


class _Verifier(SafeC14n, XMLVerifier):
    """signxml's verifier, told exactly which ds:Signature to check (by its ElementPath from
    the root), so several signatures in one document are each verified, and resolving
    references by :func:`_resolve` only.

    signxml digests each reference in a fresh copy of the document; ``resolved`` keeps, for
    each reference in the verified SignedInfo, the position (in document order) of the
    element that was digested, which is the same element's position in the tree kyso
    parsed.
    """

    def __init__(self, path: str) -> None:
        super().__init__()
        self._path = path
        self.resolved: list[int] = []

    def _get_signature(self, root: etree._Element) -> etree._Element:
        found = root if self._path == "." else root.find(self._path)
        if found is None or found.tag != _ds("Signature"):
            raise SignXMLInvalidInput("the signature element was not found")
        return found

    def _resolve_reference(
        self, doc_root: etree._Element, reference: etree._Element, uri_resolver: Any = None
    ) -> etree._Element:
        element = _resolve(doc_root, reference)
        position = next(i for i, e in enumerate(doc_root.iter(etree.Element)) if e is element)
        self.resolved.append(position)
        return element


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


def _edxml(tag: str) -> str:
    return f"{{{EDXML_NS}}}{tag}"


def _where(element: etree._Element) -> str:
    """``/edXML/edXMLEnvelope/edXMLHeader``: local names from the root, with a position
    where siblings share the name."""
    steps = []
    for node in [element, *element.iterancestors()]:
        name = etree.QName(node).localname
        parent = node.getparent()
        same = [s for s in parent if s.tag == node.tag] if parent is not None else [node]
        steps.append(f"{name}[{same.index(node) + 1}]" if len(same) > 1 else name)
    return "/" + "/".join(reversed(steps))


def _element_scope(element: etree._Element, signature: etree._Element) -> SignatureScope:
    name = etree.QName(element).localname
    ident = next((v for k, v in element.attrib.items() if _is_id(k)), None)
    id_vi = f' (mã định danh "{ident}")' if ident else ""
    id_en = f' (identifier "{ident}")' if ident else ""
    if element is signature or any(a is signature for a in element.iterancestors()):
        return SignatureScope(
            ScopeKind.PARTIAL,
            f"chỉ phần tử <{name}>{id_vi} nằm bên trong chính chữ ký (tại {_where(element)}), "
            "không phải nội dung tài liệu",
            f"only the element <{name}>{id_en} inside the signature itself (at "
            f"{_where(element)}), not the document's content",
        )
    return SignatureScope(
        ScopeKind.PARTIAL,
        f"chỉ phần tử <{name}>{id_vi} tại {_where(element)}",
        f"only the element <{name}>{id_en} at {_where(element)}",
    )


@dataclass
class _Coverage:
    """What one signature's verified references cover in the document."""

    scope: list[SignatureScope] = field(default_factory=list)
    whole: bool = False  # the document as received
    problem: str | None = None  # a format requirement the references do not meet


def _coverage(
    root: etree._Element,
    signature: etree._Element,
    signed: list[etree._Element],
    signed_properties: etree._Element | None,
) -> _Coverage:
    """Judge ``signed`` (the elements the verified references resolved to, by identity)."""

    def covered(part: etree._Element) -> bool:
        return any(part is s or any(a is s for a in part.iterancestors()) for s in signed)

    # The signature's own properties (XAdES SignedProperties, KeyInfo) are not document
    # content. Elements are compared by identity, so each is held in a list: lxml keeps one
    # Python object per node only while that object is alive.
    own = [e for e in (signed_properties, signature.find(_ds("KeyInfo"))) if e is not None]
    if root is signature:
        # Enveloping: the content is each ds:Object that is not the XAdES properties.
        parts = [
            o
            for o in signature.iterfind(_ds("Object"))
            if o.find(_xades("QualifyingProperties")) is None
        ]
        own.append(signature)
    else:
        parts = [root]
    coverage = _Coverage()
    if parts and all(covered(p) for p in parts):
        coverage.whole = True
        if root.tag == _edxml("edXML"):
            coverage.scope = [
                SignatureScope(
                    ScopeKind.FULL,
                    "toàn bộ thông điệp edXML: phần đầu (edXMLHeader), phần thân (edXMLBody) "
                    "và các tệp đính kèm",
                    "the whole edXML message: header (edXMLHeader), body (edXMLBody) and "
                    "attachments",
                )
            ]
        elif root is signature:
            coverage.scope = [
                SignatureScope(
                    ScopeKind.FULL,
                    f"toàn bộ nội dung nằm trong chữ ký ({len(parts)} phần tử ds:Object)",
                    f"the whole content enclosed in the signature ({len(parts)} ds:Object "
                    f"element{'s' if len(parts) > 1 else ''})",
                )
            ]
        else:
            name = etree.QName(root).localname
            coverage.scope = [
                SignatureScope(
                    ScopeKind.FULL,
                    f"toàn bộ tài liệu (phần tử gốc <{name}>)",
                    f"the whole document (root element <{name}>)",
                )
            ]
    else:
        listed: list[etree._Element] = []
        for element in signed:
            if not any(element is e for e in [*own, *listed]):
                listed.append(element)
                coverage.scope.append(_element_scope(element, signature))
        if not coverage.scope:
            coverage.scope = [
                SignatureScope(
                    ScopeKind.NOTHING,
                    "chỉ các thuộc tính của chính chữ ký, không có nội dung nào của tài liệu",
                    "only the signature's own properties, nothing of the document",
                )
            ]
        if root.tag == _edxml("edXML"):
            # QCVN 102:2016: the header and the body of an edXML message are signed.
            envelope = root.findall(_edxml("edXMLEnvelope"))
            required = [
                part
                for env in envelope
                for part in env
                if part.tag in (_edxml("edXMLHeader"), _edxml("edXMLBody"))
            ]
            tags = {part.tag for part in required}
            if tags != {_edxml("edXMLHeader"), _edxml("edXMLBody")} or not all(
                covered(part) for part in required
            ):
                coverage.problem = (
                    "the signature does not cover both the header and the body of the edXML "
                    "message (QCVN 102:2016)"
                )
    if signed_properties is not None and not any(s is signed_properties for s in signed):
        coverage.problem = "the XAdES signed properties are not covered by the signature"
    return coverage


def _read(
    root: etree._Element,
    signature: etree._Element,
    trust: TrustContext,
    index: int,
    count: int,
) -> tuple[Findings, _Coverage | None]:
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
        return findings, None

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
        return findings, None

    # signxml would judge the certificate's dates itself; kyso's path validation does.
    config = replace(
        _CONFIG, verification_time=signer["tbs_certificate"]["validity"]["not_before"].native
    )
    verifier = _Verifier(root.getroottree().getelementpath(signature))
    elements = list(root.iter(etree.Element))

    def signed() -> list[etree._Element]:
        # signxml digested copies of the document; the same positions in kyso's tree.
        return [elements[position] for position in verifier.resolved]

    coverage = None
    try:
        results = verifier.verify(
            root,
            x509_cert=x509.load_der_x509_certificate(signer.dump()),
            expect_config=config,
            parser=xmlsafe.parser(),
        )
        findings.intact = findings.valid = True
        results = results if isinstance(results, list) else [results]
        if len(results) != len(verifier.resolved) or any(
            r.signed_xml is not None and r.signed_xml.tag != element.tag
            for r, element in zip(results, signed(), strict=False)
        ):
            # What signxml verified must be what kyso resolved; never expected to differ.
            raise SignXMLInvalidInput("the verified references do not match the document")
        coverage = _coverage(root, signature, signed(), signed_properties)
        findings.format_problem = coverage.problem
    except InvalidDigest:
        findings.valid, findings.intact = True, False
        coverage = _coverage(root, signature, signed(), None)
    except InvalidSignature:
        findings.valid, findings.intact = False, True
    except _Unresolved as refused:
        # The signature value verified; a reference designates nothing kyso will digest.
        findings.valid = True
        coverage = _Coverage(scope=[refused.scope])
        if refused.malformed:
            findings.format_problem = str(refused)
        else:
            findings.signed_data_missing = True
        return findings, coverage
    except (SignXMLException, etree.DocumentInvalid, etree.XMLSyntaxError, ValueError) as exc:
        findings.format_problem = str(exc)
        return findings, None

    value = signature.find(_ds("SignatureValue"))
    for stamp in stamps:
        findings.timestamps.append(_check_stamp(stamp, value, trust, findings))
    return findings, coverage


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


def _with_scope(report: SignatureReport, coverage: _Coverage | None) -> SignatureReport:
    """The report with what the signature covers; one that does not cover the document is
    not TOTAL-PASSED (INDETERMINATE/SIG_CONSTRAINTS_FAILURE: the signature is sound, what it
    covers is intact, but kyso's constraint that it cover the document is not met)."""
    if coverage is None:
        return report
    report.scope = coverage.scope
    if not coverage.whole and report.indication is Indication.TOTAL_PASSED:
        report.indication = Indication.INDETERMINATE
        report.sub_indication = SubIndication.SIG_CONSTRAINTS_FAILURE
    report.message_vi, report.message_en = messages.explain(report)
    return report


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
        findings, coverage = _read(root, signature, trust, index, len(signatures))
        reports.append(_with_scope(judge(findings, trust), coverage))
    return summarize(
        ValidationReport(
            document=name,
            document_kind="xml",
            signatures=reports,
            validated_at=clock.now(),
        )
    )
