"""XML signatures (XML-DSig and XAdES, e.g. edXML's enveloped signature) into the report.

The document is parsed with :mod:`kyso.xmlsafe` (no DTD, entities or network). Each
``ds:Signature`` (not nested in another) is read and verified by kyso itself (reference
resolution, transforms, digests, then the signature value with the signer's certificate),
its XAdES countersignatures likewise, and each is judged like every other format by
:func:`kyso.validation.cms.judge` (chain to kyso's anchors, revocation, time-stamps). A file
with more than ``MAX_SIGNATURES`` signatures and countersignatures is refused.

The order is EN 319 102-1 §5.2.7's, as EU DSS follows it: the signed data is obtained first
(INDETERMINATE/SIGNED_DATA_NOT_FOUND when it cannot be, even if the signature value would
not verify either), then its integrity checked (TOTAL-FAILED/HASH_FAILURE), then the
signature value (TOTAL-FAILED/SIG_CRYPTO_FAILURE).

SHA-1 policy: older edXML samples sign with rsa-sha1 and SHA-1 digests. kyso still checks
their integrity (so a clerk learns whether the content changed: a broken one is
TOTAL-FAILED/HASH_FAILURE like any other), but an intact one is reported
INDETERMINATE/CRYPTO_CONSTRAINTS_FAILURE, never TOTAL-PASSED: Circular 15/2025/TT-BKHCN asks
for SHA-256 or stronger, and SHA-1 collisions are practical. kyso itself signs only with
SHA-256 and up.

What a signature covers (``SignatureReport.scope``, after EU DSS's signature scopes) is
decided by kyso's own reference resolver (:func:`_resolve`), and only same-document
references are resolved:

* ``URI=""`` is the whole document, processing instructions around the root included
  (XML-DSig 1.1 §4.4.3.2), less the signature itself with the enveloped-signature
  transform, and less every ``ds:Signature`` with the XPath Filter 2.0 transform that
  subtracts them (:func:`kyso.formats.xmldsig.subtracts_every_signature`: exactly that
  form, which EU DSS writes for every enveloped signature so that signatures can be added
  in parallel; kyso removes the elements rather than running the XPath). Every top-level
  ``ds:Signature`` is validated and reported, so content hidden in a fake one is seen;
* ``URI="#x"`` is the one element carrying ``x`` in an ID attribute. Attributes whose local
  name is ``id`` in any case and any namespace count as IDs (``Id``, ``ID``, ``id``,
  ``xml:id``, ``wsu:Id``): a resolver looking them up one name after the other would take a
  signed original with ``Id="x"`` below a new root with ``id="x"`` while the reader sees
  the forged root (signature wrapping). Two elements claiming the same id are refused
  (XML 1.0 §3.3.1, "Validity constraint: ID": a value appears once):
  TOTAL-FAILED/FORMAT_FAILURE;
* a reference whose Type says what it designates must designate it where XML-DSig and
  XAdES put it, as EU DSS checks against wrapping: ``…#Object`` a ds:Object child of the
  signature, ``…#Manifest`` a ds:Manifest in one, ``…01903#SignedProperties`` the
  xades:SignedProperties in the signature's QualifyingProperties; one found elsewhere (a
  copy moved into a wrapper) is not the signed data: INDETERMINATE/SIGNED_DATA_NOT_FOUND;
* an id no element carries, an external URI (kyso reads no file and no network address a
  document names), XPointer, and references whose transforms are XPath, any other XPath
  Filter 2.0, XSLT or anything but canonicalization, base64, enveloped-signature and the
  filter above (programs written by the signer that would decide what is signed) give
  INDETERMINATE/SIGNED_DATA_NOT_FOUND, as EN 319 102-1 §5.2.7 says when the signed data
  cannot be obtained; so does a signature whose references designate nothing but its own
  properties (EU DSS's dss-signed-altered-refRemoved.xml).

The elements the references resolve to are compared by identity with the document's root
(and with the XAdES SignedProperties kyso reads). A signature whose references do not cover
the root is never TOTAL-PASSED for the document: INDETERMINATE/SIG_CONSTRAINTS_FAILURE, the
scope naming each element it does cover, as what lies outside could have been added or
changed. An edXML message must have its header and body signed (QCVN 102:2016): a signature
that leaves either out is TOTAL-FAILED/FORMAT_FAILURE; one over header and body but not the
whole message (the attachments could be swapped) is INDETERMINATE like any other partial
scope.

A XAdES countersignature (``xades:CounterSignature``, EN 319 132-1 §5.2.7) is a signature
over the ``ds:SignatureValue`` of the signature it sits in: reported under that signature
(``SignatureReport.counter_signatures``) with its own verdict; one whose references do not
cover that value (a countersignature moved from another signature, or over something
else) is TOTAL-FAILED/HASH_FAILURE, as EU DSS reports its countersigned value not intact.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, padding, rsa, utils
from lxml import etree
from signxml.algorithms import (
    CanonicalizationMethod,
    DigestAlgorithm,
    SignatureMethod,
    digest_algorithm_implementations,
)

from kyso import clock, xmlsafe
from kyso.errors import InvalidInput, KysoError
from kyso.formats.xmldsig import (
    DS_NS,
    EDXML_NS,
    FILTER2,
    XADES_NS,
    detach,
    is_id,
    outermost_signatures,
    subtracts_every_signature,
)
from kyso.trust import TrustContext
from kyso.validation import messages
from kyso.validation.cms import (
    MAX_COUNTER_DEPTH,
    MAX_SIGNATURES,
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


def _ds(tag: str) -> str:
    return f"{{{DS_NS}}}{tag}"


def _xades(tag: str) -> str:
    return f"{{{XADES_NS}}}{tag}"


# XML-DSig 1.1 §6.6: the transforms kyso runs (and the XPath Filter 2.0 one form,
# recognized apart). Any other (XPath, XSLT, decryption) is a program the signer wrote that
# decides what is signed.
_ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
_BASE64 = "http://www.w3.org/2000/09/xmldsig#base64"
_C14N_METHODS = {m.value: m for m in CanonicalizationMethod}
_TRANSFORMS = frozenset({_ENVELOPED, _BASE64, *_C14N_METHODS})
_TRANSFORM_NAMES = {
    "http://www.w3.org/TR/1999/REC-xpath-19991116": "XPath",
    FILTER2: "XPath Filter 2.0",
    "http://www.w3.org/TR/1999/REC-xslt-19991116": "XSLT",
}
_EXC_C14N = CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0.value
_INCLUSIVE_NAMESPACES = "{http://www.w3.org/2001/10/xml-exc-c14n#}InclusiveNamespaces"

# What a reference's Type says it designates (XML-DSig §4.4.3.1, EN 319 132-1 §4.3.5.1).
_OBJECT = "http://www.w3.org/2000/09/xmldsig#Object"
_MANIFEST = "http://www.w3.org/2000/09/xmldsig#Manifest"
_SIGNED_PROPERTIES = "http://uri.etsi.org/01903#SignedProperties"
_XADES_FAMILY = "http://uri.etsi.org/01903/"


class _Unresolved(Exception):
    """A reference kyso does not resolve, with the scope entry saying why. ``malformed``: the
    document itself is at fault (duplicate ids), not merely data kyso cannot obtain."""

    def __init__(self, scope: SignatureScope, *, malformed: bool = False) -> None:
        super().__init__(scope.description_en)
        self.scope = scope
        self.malformed = malformed


@dataclass
class _Resolved:
    """One ds:Reference and the element its URI designates in kyso's tree."""

    reference: etree._Element
    target: etree._Element
    whole_document: bool  # URI="": the document node, prolog and epilog included
    subtracts_signatures: bool  # the XPath Filter 2.0 form that removes every ds:Signature


def _transforms(reference: etree._Element) -> list[etree._Element]:
    return list(reference.iterfind(f"{_ds('Transforms')}/{_ds('Transform')}"))


def _refused_transform(algorithm: str) -> _Unresolved:
    name = _TRANSFORM_NAMES.get(algorithm)
    if name == "XPath Filter 2.0":
        vi_what = (
            "phép biến đổi XPath Filter 2.0 khác với dạng duy nhất kyso nhận (bỏ mọi chữ ký "
            "khỏi toàn bộ tài liệu), tức một chương trình do người ký viết mà kyso không chạy"
        )
        en_what = (
            "an XPath Filter 2.0 transform other than the one form kyso accepts (every "
            "signature subtracted from the whole document), a program written by the signer "
            "that kyso does not run"
        )
    elif name:
        vi_what = f"phép biến đổi {name}, một chương trình do người ký viết mà kyso không chạy"
        en_what = f"an {name} transform, a program written by the signer that kyso does not run"
    else:
        vi_what = f"phép biến đổi kyso không biết ({algorithm})"
        en_what = f"a transform kyso does not know ({algorithm})"
    return _Unresolved(
        SignatureScope(
            ScopeKind.NOTHING,
            f"không xác định được: tham chiếu dùng {vi_what}",
            f"cannot be told: a reference uses {en_what}",
        )
    )


def _misplaced(target: etree._Element, fragment: str, kind_vi: str, kind_en: str) -> _Unresolved:
    name = etree.QName(target).localname
    return _Unresolved(
        SignatureScope(
            ScopeKind.NOTHING,
            f'không có dữ liệu đã ký: phần tử <{name}> mang mã định danh "{fragment}" mà chữ ký '
            f"trỏ tới phải là {kind_vi} nhưng lại nằm ở {_where(target)}, nơi nó có thể đã bị "
            "chuyển tới (dấu hiệu tấn công bọc chữ ký — signature wrapping)",
            f'no signed data: the <{name}> with the identifier "{fragment}" the signature '
            f"refers to must be {kind_en}, but it is at {_where(target)}, where it may have "
            "been moved (a sign of a signature-wrapping attack)",
        )
    )


def _check_placement(
    signature: etree._Element, reference: etree._Element, target: etree._Element, fragment: str
) -> None:
    """EU DSS's XSW checks: a reference typed Object, Manifest or SignedProperties designates
    that element where XML-DSig and XAdES put it, in the signature itself."""
    kind = reference.get("Type")
    parent = target.getparent()
    grandparent = parent.getparent() if parent is not None else None
    if kind == _OBJECT and not (target.tag == _ds("Object") and parent is signature):
        raise _misplaced(
            target,
            fragment,
            "một ds:Object của chính chữ ký",
            "a ds:Object of the signature itself",
        )
    if kind == _MANIFEST and not (
        target.tag == _ds("Manifest")
        and parent is not None
        and parent.tag == _ds("Object")
        and grandparent is signature
    ):
        raise _misplaced(
            target,
            fragment,
            "một ds:Manifest trong ds:Object của chính chữ ký",
            "a ds:Manifest in a ds:Object of the signature itself",
        )
    if kind == _SIGNED_PROPERTIES:
        qualifying = etree.QName(parent) if parent is not None else None
        own = (
            etree.QName(target).localname == "SignedProperties"
            and etree.QName(target).namespace.startswith(_XADES_FAMILY)
            and qualifying is not None
            and qualifying.localname == "QualifyingProperties"
            and qualifying.namespace == etree.QName(target).namespace
            and grandparent is not None
            and grandparent.tag == _ds("Object")
            and grandparent.getparent() is signature
        )
        if not own:
            raise _misplaced(
                target,
                fragment,
                "xades:SignedProperties trong xades:QualifyingProperties của chính chữ ký",
                "the xades:SignedProperties in the signature's own xades:QualifyingProperties",
            )


def _resolve(
    document: _Document, signature: etree._Element, reference: etree._Element
) -> _Resolved:
    """What a ds:Reference designates in the document, by the rules in the module docstring;
    ``_Unresolved`` otherwise."""
    uri = reference.get("URI")
    subtracts = False
    for transform in _transforms(reference):
        algorithm = transform.get("Algorithm", "")
        if algorithm == FILTER2 and uri == "" and subtracts_every_signature(transform):
            subtracts = True
        elif algorithm not in _TRANSFORMS:
            raise _refused_transform(algorithm)
    if uri == "":
        return _Resolved(reference, document.root, True, subtracts)
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
    claims = document.claims(fragment)
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
    _check_placement(signature, reference, claims[0], fragment)
    return _Resolved(reference, claims[0], False, False)


def _own_properties(signature: etree._Element, resolved: _Resolved) -> bool:
    """The reference designates the signature's own properties, not data: its XAdES
    SignedProperties, its KeyInfo, or its ds:SignatureProperties (EU DSS counts these apart
    from the signed data)."""
    if resolved.reference.get("Type") == _SIGNED_PROPERTIES:
        return True
    target = resolved.target
    if target.tag == _ds("KeyInfo") and target.getparent() is signature:
        return True
    chain = [target, *target.iterancestors()]
    return any(
        e.tag == _ds("SignatureProperties")
        and (parent := e.getparent()) is not None
        and parent.tag == _ds("Object")
        and parent.getparent() is signature
        for e in chain
    )


def _canonical(
    node: etree._Element | etree._ElementTree | None,
    method: CanonicalizationMethod,
    prefixes: list[str] | None,
) -> bytes:
    """Canonical XML of a same-document node-set: never with comments, which URI="" and
    URI="#id" leave out (XML-DSig 1.1 §4.4.3.3), whatever the method says. Canonical XML
    1.1 is computed as 1.0, as kyso always did (they differ in how xml:id and xml:base are
    carried into a subtree)."""
    if node is None:
        return b""
    exclusive = method.value.startswith(_EXC_C14N)
    if isinstance(node, etree._ElementTree):
        return etree.tostring(
            node,
            method="c14n",
            exclusive=exclusive,
            with_comments=False,
            inclusive_ns_prefixes=prefixes if exclusive else None,
        )
    return xmlsafe.c14n(
        node,
        exclusive=exclusive,
        with_comments=False,
        inclusive_ns_prefixes=prefixes if exclusive else None,
    )


def _prefixes(transform: etree._Element) -> list[str] | None:
    inclusive = transform.find(_INCLUSIVE_NAMESPACES)
    return inclusive.get("PrefixList", "").split() if inclusive is not None else None


def _string_value(node: etree._Element | etree._ElementTree) -> str:
    """XPath string-value (the base64 transform's input from a node-set): its text nodes,
    comments and processing instructions left out."""
    element = node.getroot() if isinstance(node, etree._ElementTree) else node
    return str(element.xpath("string()"))


class _Document:
    """The document being validated, and what its references share: an index of the
    elements by id, and the digests already computed (parallel signatures all digest the
    document less every signature; computed once)."""

    def __init__(self, root: etree._Element) -> None:
        self.root = root
        # Held, so that each element keeps one Python object and its id() its position.
        self._elements = list(root.iter(etree.Element))
        self._position = {id(e): i for i, e in enumerate(self._elements)}
        self._ids: dict[str, list[etree._Element]] = {}
        for element in self._elements:
            for value in {v for k, v in element.attrib.items() if is_id(k)}:
                self._ids.setdefault(value, []).append(element)
        self._signatures = outermost_signatures(root)
        self._digests: dict[tuple[object, ...], bytes] = {}

    def claims(self, fragment: str) -> list[etree._Element]:
        """The elements carrying ``fragment`` in an ID attribute."""
        return self._ids.get(fragment, [])

    def digest_matches(self, signature: etree._Element, resolved: _Resolved) -> bool:
        reference = resolved.reference
        method = reference.find(_ds("DigestMethod"))
        value = reference.find(_ds("DigestValue"))
        algorithm = DigestAlgorithm(method.get("Algorithm", "") if method is not None else "")
        transforms = _transforms(reference)
        chain = tuple((t.get("Algorithm", ""), tuple(_prefixes(t) or ())) for t in transforms)
        removed = self._removed(signature, [a for a, _ in chain])
        key = (
            -1 if resolved.whole_document else self._position[id(resolved.target)],
            frozenset(self._position[id(r)] for r in removed),
            chain,
            algorithm,
        )
        if key not in self._digests:
            digest = hashes.Hash(digest_algorithm_implementations[algorithm]())
            digest.update(self._digest_input(resolved, transforms, removed))
            self._digests[key] = digest.finalize()
        # The string-value, as the canonical SignedInfo that was signed has it (no comments).
        expected = _b64(str(value.xpath("string()")) if value is not None else None)
        return self._digests[key] == expected

    def _removed(self, signature: etree._Element, algorithms: list[str]) -> list[etree._Element]:
        """What the enveloped-signature transform (this signature) and the signature filter
        (every signature) remove, each subtree once."""
        removed: list[etree._Element] = []
        if _ENVELOPED in algorithms:
            removed.append(signature)
        if FILTER2 in algorithms:
            removed += self._signatures
        return [
            r
            for i, r in enumerate(removed)
            if not any(r is o for o in removed[:i])
            and not any(a is o for o in removed for a in r.iterancestors())
        ]

    def _node_set(
        self, resolved: _Resolved, removed: list[etree._Element]
    ) -> etree._Element | etree._ElementTree | None:
        """The reference's node-set less the subtrees in ``removed``: the document (an
        ElementTree) or an element, copied when something inside it is removed; None when
        the node-set is empty (the target itself removed)."""
        target = resolved.target
        if any(r is target or any(a is r for a in target.iterancestors()) for r in removed):
            return None
        inside = [
            r
            for r in removed
            if resolved.whole_document or any(a is target for a in r.iterancestors())
        ]
        if not inside:
            return target.getroottree() if resolved.whole_document else target
        document = copy.deepcopy(self.root.getroottree())
        copies = list(document.getroot().iter(etree.Element))
        for element in inside:
            detach(copies[self._position[id(element)]])
        return document if resolved.whole_document else copies[self._position[id(target)]]

    def _digest_input(
        self, resolved: _Resolved, transforms: list[etree._Element], removed: list[etree._Element]
    ) -> bytes:
        """The octets a reference's digest is over: its node-set through its transforms, in
        order (XML-DSig 1.1 §4.4.3.2). ValueError for a chain kyso cannot apply."""
        octets: bytes | None = None
        for transform in transforms:
            algorithm = transform.get("Algorithm", "")
            if algorithm in (_ENVELOPED, FILTER2):
                # Node-set transforms: ``removed`` already holds what they take out.
                if octets is not None:
                    raise ValueError("a node-set transform after the data became octets")
            elif algorithm == _BASE64:
                if octets is None:
                    node = self._node_set(resolved, removed)
                    text = "" if node is None else _string_value(node)
                else:
                    text = octets.decode("ascii")
                octets = base64.b64decode("".join(text.split()), validate=True)
            else:
                method = _C14N_METHODS[algorithm]
                if octets is None:
                    node = self._node_set(resolved, removed)
                    octets = _canonical(node, method, _prefixes(transform))
                else:
                    parsed = xmlsafe.parse(octets).getroottree()
                    octets = _canonical(parsed, method, _prefixes(transform))
        if octets is None:
            # XML-DSig §4.4.3.2: a node-set left at the end is serialized with Canonical XML
            # 1.0.
            node = self._node_set(resolved, removed)
            octets = _canonical(node, CanonicalizationMethod.CANONICAL_XML_1_0, None)
        return octets


def _value_verifies(
    signed_info: etree._Element, value: etree._Element, signer: asn1_x509.Certificate
) -> bool:
    """The SignatureValue over the canonical SignedInfo, with the signer's public key.
    ValueError for an unknown or keyless (HMAC) method."""
    c14n = signed_info.find(_ds("CanonicalizationMethod"))
    c14n_method = _C14N_METHODS[c14n.get("Algorithm", "") if c14n is not None else ""]
    data = xmlsafe.c14n(
        signed_info,
        exclusive=c14n_method.value.startswith(_EXC_C14N),
        with_comments=c14n_method.value.endswith("#WithComments"),
        inclusive_ns_prefixes=_prefixes(c14n) if c14n is not None else None,
    )
    method_element = signed_info.find(_ds("SignatureMethod"))
    method = SignatureMethod(
        method_element.get("Algorithm", "") if method_element is not None else ""
    )
    if method.name.startswith("HMAC"):
        raise ValueError("an HMAC is not a signature by anyone identifiable")
    algorithm = digest_algorithm_implementations[method]()
    raw = _b64(str(value.xpath("string()")))
    key = x509.load_der_x509_certificate(signer.dump()).public_key()
    try:
        if method.name.startswith("ECDSA_") and isinstance(key, ec.EllipticCurvePublicKey):
            size = (key.key_size + 7) // 8
            if len(raw) != 2 * size:
                return False
            r, s = int.from_bytes(raw[:size], "big"), int.from_bytes(raw[size:], "big")
            key.verify(utils.encode_dss_signature(r, s), data, ec.ECDSA(algorithm))
        elif method.name.startswith("DSA_") and isinstance(key, dsa.DSAPublicKey):
            half = len(raw) // 2
            r, s = int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")
            key.verify(utils.encode_dss_signature(r, s), data, algorithm)
        elif method.name.startswith("RSA_") and isinstance(key, rsa.RSAPublicKey):
            key.verify(raw, data, padding.PKCS1v15(), algorithm)
        elif method.name.endswith("_RSA_MGF1") and isinstance(key, rsa.RSAPublicKey):
            # RFC 9231 §2.3.10: MGF1 with the same hash, salt as long as the hash.
            pss = padding.PSS(mgf=padding.MGF1(algorithm), salt_length=algorithm.digest_size)
            key.verify(raw, data, pss, algorithm)
        else:
            return False  # the certificate's key is not of the method's kind
    except (InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _b64(text: str | None) -> bytes:
    return base64.b64decode("".join((text or "").split()), validate=True)


def _c14n(element: etree._Element, algorithm: str | None) -> bytes:
    algorithm = algorithm or CanonicalizationMethod.CANONICAL_XML_1_0.value
    return xmlsafe.c14n(
        element,
        exclusive=algorithm.startswith(_EXC_C14N),
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
    ident = next((v for k, v in element.attrib.items() if is_id(k)), None)
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
    *,
    subtracted: bool = False,
    master: etree._Element | None = None,
    master_label: str = "",
) -> _Coverage:
    """Judge ``signed`` (the elements the references resolved to, by identity).
    ``subtracted``: the document reference leaves every signature out (parallel signatures).
    ``master``: the signature this one countersigns."""

    def covered(part: etree._Element) -> bool:
        return any(part is s or any(a is s for a in part.iterancestors()) for s in signed)

    # The signature's own properties (XAdES SignedProperties, KeyInfo) are not document
    # content. Elements are compared by identity, so each is held in a list: lxml keeps one
    # Python object per node only while that object is alive.
    own = [e for e in (signed_properties, signature.find(_ds("KeyInfo"))) if e is not None]
    coverage = _Coverage()
    if master is not None:
        # EN 319 132-1 §5.2.7: a countersignature covers the countersigned ds:SignatureValue.
        value = master.find(_ds("SignatureValue"))
        coverage.whole = value is not None and covered(value)
        if coverage.whole:
            coverage.scope = [
                SignatureScope(
                    ScopeKind.SIGNATURE,
                    f"giá trị (ds:SignatureValue) của chữ ký {master_label} (chữ ký xác nhận "
                    "XAdES, EN 319 132-1 §5.2.7)",
                    f"the value (ds:SignatureValue) of signature {master_label} (a XAdES "
                    "countersignature, EN 319 132-1 §5.2.7)",
                )
            ]
        else:
            parts = [_element_scope(e, signature) for e in signed if not any(e is o for o in own)]
            coverage.scope = [
                SignatureScope(
                    ScopeKind.SIGNATURE,
                    f"không phải giá trị của chữ ký {master_label}, chữ ký mà nó nằm trong"
                    + "".join(f"; {p.description_vi}" for p in parts),
                    f"not the value of signature {master_label}, the signature it sits in"
                    + "".join(f"; {p.description_en}" for p in parts),
                )
            ]
        if signed_properties is not None and not any(s is signed_properties for s in signed):
            coverage.problem = "the XAdES signed properties are not covered by the signature"
        return coverage
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
    less_vi = ", trừ các chữ ký nằm trong đó (mỗi chữ ký được kiểm tra riêng)" if subtracted else ""
    less_en = ", less the signatures in it (each checked on its own)" if subtracted else ""
    if parts and all(covered(p) for p in parts):
        coverage.whole = True
        if root.tag == _edxml("edXML"):
            coverage.scope = [
                SignatureScope(
                    ScopeKind.FULL,
                    "toàn bộ thông điệp edXML: phần đầu (edXMLHeader), phần thân (edXMLBody) "
                    f"và các tệp đính kèm{less_vi}",
                    "the whole edXML message: header (edXMLHeader), body (edXMLBody) and "
                    f"attachments{less_en}",
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
                    f"toàn bộ tài liệu (phần tử gốc <{name}>){less_vi}",
                    f"the whole document (root element <{name}>){less_en}",
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


_NO_DATA = SignatureScope(
    ScopeKind.NOTHING,
    "không có dữ liệu đã ký: chữ ký chỉ trỏ tới các thuộc tính của chính nó, không trỏ tới dữ "
    "liệu nào",
    "no signed data: the signature refers to nothing but its own properties",
)


def _read(
    document: _Document,
    signature: etree._Element,
    trust: TrustContext,
    field_name: str | None,
    moment: datetime | None,
    *,
    master: etree._Element | None = None,
    master_label: str = "",
) -> tuple[Findings, _Coverage | None]:
    root = document.root
    findings = Findings(format="XML-DSig", signer=None, field_name=field_name)
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
    if master is not None:
        findings.format += " countersignature"

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

    signed_infos = signature.findall(_ds("SignedInfo"))
    values = signature.findall(_ds("SignatureValue"))
    if len(signed_infos) != 1 or len(values) != 1:
        findings.format_problem = "the signature has not exactly one SignedInfo and SignatureValue"
        return findings, None
    # EN 319 102-1 §5.2.7, step by step: the signed data is found ...
    try:
        resolved = [
            _resolve(document, signature, r) for r in signed_infos[0].findall(_ds("Reference"))
        ]
        if all(_own_properties(signature, r) for r in resolved):
            raise _Unresolved(_NO_DATA)
    except _Unresolved as refused:
        if refused.malformed:
            findings.format_problem = str(refused)
        else:
            findings.signed_data_missing = True
        return findings, _Coverage(scope=[refused.scope])
    if signer is None:  # judged INDETERMINATE/NO_SIGNING_CERTIFICATE_FOUND
        return findings, None
    # ... is intact, and the signature value verifies.
    try:
        findings.intact = all([document.digest_matches(signature, r) for r in resolved])
        findings.valid = _value_verifies(signed_infos[0], values[0], signer)
    except (ValueError, KeyError, KysoError) as exc:
        findings.intact = findings.valid = False
        findings.format_problem = f"the signature cannot be checked: {exc}"
        return findings, None

    coverage = _coverage(
        root,
        signature,
        [r.target for r in resolved],
        signed_properties,
        subtracted=any(r.subtracts_signatures for r in resolved),
        master=master,
        master_label=master_label,
    )
    if findings.intact and findings.valid:
        findings.format_problem = coverage.problem
    if master is not None and not coverage.whole:
        findings.intact = False  # not a countersignature of this signature

    value = values[0]
    for stamp in stamps:
        findings.timestamps.append(_check_stamp(stamp, value, trust, findings, moment))
    return findings, coverage


def _check_stamp(
    stamp: etree._Element,
    value: etree._Element | None,
    trust: TrustContext,
    findings: Findings,
    moment: datetime | None,
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

    return check_timestamp(
        token, imprint, trust, crls=findings.crls, ocsps=findings.ocsps, moment=moment
    )


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


def _counter_signatures(signature: etree._Element) -> list[etree._Element]:
    """The ds:Signature of each xades:CounterSignature in the signature's unsigned
    properties (EN 319 132-1 §5.2.7)."""
    qualifying = signature.find(f"{_ds('Object')}/{_xades('QualifyingProperties')}")
    return _find_all(
        qualifying,
        "xades:UnsignedProperties/xades:UnsignedSignatureProperties/xades:CounterSignature"
        "/ds:Signature",
    )


def _count(signatures: list[etree._Element], depth: int = 0) -> int:
    total = len(signatures)
    if depth < MAX_COUNTER_DEPTH:
        total += sum(_count(_counter_signatures(s), depth + 1) for s in signatures)
    return total


def _judged(
    document: _Document,
    signature: etree._Element,
    trust: TrustContext,
    path: str,
    field_name: str | None,
    moment: datetime | None,
    *,
    master: etree._Element | None = None,
    depth: int = 0,
) -> SignatureReport:
    """One signature's report, its countersignatures (each judged) under it."""
    findings, coverage = _read(
        document,
        signature,
        trust,
        field_name,
        moment,
        master=master,
        master_label=path.rsplit(".", 1)[0],
    )
    if master is not None and (
        coverage is None or not any(s.kind is ScopeKind.SIGNATURE for s in coverage.scope)
    ):
        # Whatever went wrong, the report says it is a countersignature and of which one.
        label = path.rsplit(".", 1)[0]
        coverage = coverage or _Coverage()
        coverage.scope.append(
            SignatureScope(
                ScopeKind.SIGNATURE,
                f"chữ ký xác nhận của chữ ký {label}",
                f"a countersignature of signature {label}",
            )
        )
    report = _with_scope(judge(findings, trust, moment=moment), coverage)
    if depth < MAX_COUNTER_DEPTH:
        report.counter_signatures = [
            _judged(
                document,
                counter,
                trust,
                f"{path}.{n}",
                f"countersignature {path}.{n}",
                moment,
                master=signature,
                depth=depth + 1,
            )
            for n, counter in enumerate(_counter_signatures(signature), start=1)
        ]
    return report


def validate_xml(
    xml: bytes,
    trust: TrustContext,
    *,
    name: str = "document.xml",
    moment: datetime | None = None,
) -> ValidationReport:
    """Validate every XML signature in ``xml`` and its XAdES countersignatures, as of
    ``moment`` (default: now); InvalidInput for unsafe or malformed XML, or more than
    ``MAX_SIGNATURES`` signatures.

    A document without any ``ds:Signature`` gives a report with no signatures
    (TOTAL-FAILED, "no signature was found").
    """
    root = xmlsafe.parse(xml)
    signatures = outermost_signatures(root)
    if _count(signatures) > MAX_SIGNATURES:
        raise InvalidInput(
            f"more than {MAX_SIGNATURES} signatures and countersignatures in one XML document",
            vi=f"tài liệu XML có hơn {MAX_SIGNATURES} chữ ký và chữ ký xác nhận",
        )
    document = _Document(root)
    reports = [
        _judged(
            document,
            signature,
            trust,
            str(n),
            (signature.get("Id") or f"signature {n}") if len(signatures) > 1 else None,
            moment,
        )
        for n, signature in enumerate(signatures, start=1)
    ]
    return summarize(
        ValidationReport(
            document=name,
            document_kind="xml",
            signatures=reports,
            validated_at=moment or clock.now(),
        )
    )
