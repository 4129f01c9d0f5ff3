"""XAdES enveloped signatures (ETSI EN 319 132-1), e.g. inside an edXML ``edXMLHeader``.

signxml builds the XML-DSig core and the XAdES signed properties (SigningTime,
SigningCertificateV2, DataObjectFormat); kyso adds the unsigned properties itself:

* **B-B** — one ``ds:Reference URI=""`` over the whole document with the enveloped-signature
  transform (also when the root carries an Id: see ``_Signer._unpack``), SHA-256 digests,
  inclusive Canonical XML 1.0. That single-signature form is the default because .NET's
  SignedXml, which many Vietnamese edXML systems verify with, implements no XPath Filter
  2.0. A document meant to carry several signatures (a deputy, then the head) is signed
  with ``parallel=True``: the enveloped transform is followed by the XPath Filter 2.0
  transform that subtracts every ``ds:Signature`` (EU DSS's form), so a signature added
  later, anywhere in the document, leaves the earlier ones intact; kyso refuses to add a
  signature that would break one made without it. Not
  signxml's default c14n 1.1, which .NET's SignedXml (used by many Vietnamese edXML
  systems) does not know; not exclusive c14n either: signxml writes the SignedProperties
  and KeyInfo references without a Transforms element, so verifiers (xmlsec1, .NET, DSS)
  canonicalize those with the XML-DSig default, inclusive c14n 1.0, and any other choice
  would not verify.
* **B-T** — ``xades:SignatureTimeStamp``: an RFC 3161 token over the canonicalized
  ``ds:SignatureValue`` element (EN 319 132-1 §5.3), from kyso's TSA or any TSA.
* **B-LT** — ``xades:CertificateValues`` (certificates not already in ``ds:KeyInfo``: the
  OCSP responder's and the TSA's) and ``xades:RevocationValues`` (kyso's CRLs and OCSP
  answers).

signxml signs with a ``cryptography`` private key; kyso's keys may sit in an HSM and only
offer ``sign(data, hash)``. :class:`_KeyStoreKey` presents a SigningKey with the two calls
signxml makes on a private key (``sign`` with PKCS#1 v1.5 padding or ECDSA, and
``key_size``), so the SignatureValue is computed by the key store. The input is parsed with
:mod:`kyso.xmlsafe` (no DTD, no entities, no network).
"""

from __future__ import annotations

import base64
import hashlib
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.padding import AsymmetricPadding, PKCS1v15
from lxml import etree
from pyhanko.sign.timestamps import TimeStamper
from signxml import SignatureReference
from signxml.algorithms import DigestAlgorithm, SignatureConstructionMethod, SignatureMethod
from signxml.exceptions import SignXMLException
from signxml.xades import XAdESDataObjectFormat, XAdESSigner

from kyso import xmlsafe
from kyso.coroutines import run_sync
from kyso.errors import InvalidInput
from kyso.formats.xmldsig import (
    C14N,
    DS_NS,
    EDXML_NS,
    EXC_C14N,
    FILTER2,
    SUBTRACT_SIGNATURES,
    XADES_NS,
    SafeC14n,
    detach,
    is_id,
    outermost_signatures,
    subtracts_every_signature,
)
from kyso.keys.base import SigningKey
from kyso.signing.cades import kyso_revocation_data, token_certificates
from kyso.signing.identity import SignerIdentity
from kyso.signing.timestamps import Level

if TYPE_CHECKING:
    from kyso.trust import TrustContext

__all__ = ["C14N", "DS_NS", "EDXML_NS", "EXC_C14N", "XADES_NS", "Level", "SafeC14n", "sign_xml"]

#: Prefixes ``parent_xpath`` may always use, besides those declared on the root element.
XPATH_NAMESPACES = {"ds": DS_NS, "xades": XADES_NS, "edxml": EDXML_NS}


def _ds(tag: str) -> str:
    return f"{{{DS_NS}}}{tag}"


def _xades(tag: str) -> str:
    return f"{{{XADES_NS}}}{tag}"


class _KeyStoreKey:
    """The part of cryptography's private-key API signxml uses, backed by a key store."""

    def __init__(self, key: SigningKey) -> None:
        self._key = key

    def public_key(self) -> Any:
        return self._key.public_key()

    @property
    def key_size(self) -> int:
        public = self._key.public_key()
        if isinstance(public, ec.EllipticCurvePublicKey):
            return public.curve.key_size
        if isinstance(public, rsa.RSAPublicKey):
            return public.key_size
        raise InvalidInput("only RSA and ECDSA keys sign", vi="chỉ hỗ trợ khóa RSA và ECDSA")

    def sign(
        self,
        data: bytes,
        padding: AsymmetricPadding | None = None,
        algorithm: hashes.HashAlgorithm | None = None,
        signature_algorithm: ec.ECDSA | None = None,
    ) -> bytes:
        if signature_algorithm is not None:
            return self._key.sign(data, signature_algorithm.algorithm)  # type: ignore[arg-type]
        if not isinstance(padding, PKCS1v15) or algorithm is None:
            # kyso's key stores produce PKCS#1 v1.5 only (the form CMS and X.509 use).
            raise InvalidInput("RSA-PSS XML signatures are not offered", vi="chưa hỗ trợ RSA-PSS")
        return self._key.sign(data, algorithm)


class _Signer(SafeC14n, XAdESSigner):
    def __init__(self, *, parallel: bool, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._parallel = parallel
        # signxml re-parses its input copy; with kyso's parser (large text nodes allowed,
        # entities and network off) rather than its own default.
        self._parser = xmlsafe.parser()

    def _unpack(self, data: Any, references: Any) -> Any:
        """The document reference is always ``URI=""``: the whole document, less this
        signature (the enveloped-signature transform signxml writes for every enveloped
        reference). signxml would write ``#<root Id>`` when the root carries an Id, and a
        reference by id survives the signed element being moved below a forged root
        (signature wrapping); ``URI=""`` cannot be satisfied by anything but the document
        the verifier was given. The digest input is the same either way: the root without
        the signature (and, for a parallel signature, without any other signature)."""
        sig_root, doc_root, c14n_inputs, _ = super()._unpack(data, references)
        if self._parallel:
            for other in outermost_signatures(c14n_inputs[0]):
                detach(other)
        return sig_root, doc_root, c14n_inputs, [SignatureReference(URI="")]

    def _build_transforms_for_reference(
        self, *, transforms_node: etree._Element, reference: Any, **kwargs: Any
    ) -> None:
        super()._build_transforms_for_reference(
            transforms_node=transforms_node, reference=reference, **kwargs
        )
        if self._parallel:
            # .NET's SignedXml implements no XPath Filter 2.0, but every other verifier kyso
            # knows (xmlsec1, EU DSS/Santuario) does, and only this form lets later
            # signatures leave this one intact.
            transform = etree.Element(_ds("Transform"), Algorithm=FILTER2)
            # After the enveloped-signature transform, before the canonicalization (which
            # turns the node-set into octets).
            enveloped = [t.get("Algorithm") for t in transforms_node].index(
                SignatureConstructionMethod.enveloped.value
            )
            transforms_node.insert(enveloped + 1, transform)
            xpath = etree.SubElement(
                transform,
                f"{{{FILTER2}}}XPath",
                nsmap={"dsig-filter2": FILTER2, "ds": DS_NS},
                Filter="subtract",
            )
            xpath.text = SUBTRACT_SIGNATURES


def _signer_name(signature: etree._Element) -> str:
    """The common name in the first certificate a signature carries, else its Id."""
    for element in signature.iter(_ds("X509Certificate"), _xades("EncapsulatedX509Certificate")):
        try:
            cert = x509.load_der_x509_certificate(
                base64.b64decode("".join((element.text or "").split()))
            )
            names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        except ValueError:
            continue
        if names:
            return str(names[0].value)
    return signature.get("Id") or "?"


def _would_break(signature: etree._Element, parent: etree._Element) -> bool:
    """Whether adding a signature under ``parent`` changes what ``signature`` digested: one of
    its references covers ``parent`` (the whole document, or an element enclosing it) without
    subtracting the signatures in it. A reference kyso cannot place (an XPointer) counts as
    covering it."""
    enclosing = [parent, *parent.iterancestors()]
    for reference in signature.iterfind(f"{_ds('SignedInfo')}/{_ds('Reference')}"):
        transforms = reference.iterfind(f"{_ds('Transforms')}/{_ds('Transform')}")
        if any(subtracts_every_signature(t) for t in transforms):
            continue
        uri = reference.get("URI")
        if uri is None or not (uri == "" or uri.startswith("#")):
            continue  # data outside the document
        if uri == "" or uri.startswith("#xpointer("):
            return True
        for element in enclosing:
            if any(is_id(name) and value == uri[1:] for name, value in element.attrib.items()):
                return True
    return False


_RSA_METHODS = {
    "sha256": SignatureMethod.RSA_SHA256,
    "sha384": SignatureMethod.RSA_SHA384,
    "sha512": SignatureMethod.RSA_SHA512,
}
_EC_METHODS = {
    "sha256": SignatureMethod.ECDSA_SHA256,
    "sha384": SignatureMethod.ECDSA_SHA384,
    "sha512": SignatureMethod.ECDSA_SHA512,
}


def _signature_method(identity: SignerIdentity) -> SignatureMethod:
    hash_name = identity.digest_algorithm
    methods = _EC_METHODS if not identity.key.algorithm.is_rsa else _RSA_METHODS
    try:
        return methods[hash_name]
    except KeyError as exc:
        raise InvalidInput(f"no XML signature method for {hash_name}") from exc


def _find_parent(root: etree._Element, parent_xpath: str) -> etree._Element:
    namespaces = {k: v for k, v in root.nsmap.items() if k}
    namespaces.update(XPATH_NAMESPACES)
    try:
        found = root.xpath(parent_xpath, namespaces=namespaces)
    except etree.XPathError as exc:
        raise InvalidInput(
            f"parent_xpath {parent_xpath!r} is not a valid XPath: {exc}",
            vi=f"biểu thức parent_xpath {parent_xpath!r} không hợp lệ",
        ) from exc
    elements = (
        [e for e in found if isinstance(e, etree._Element)] if isinstance(found, list) else []
    )
    if len(elements) != 1:
        raise InvalidInput(
            f"parent_xpath {parent_xpath!r} must select exactly one element, found {len(elements)}",
            vi=f"parent_xpath {parent_xpath!r} phải chọn đúng một phần tử, "
            f"tìm thấy {len(elements)}",
        )
    return elements[0]


def _unsigned_signature_properties(signature: etree._Element) -> etree._Element:
    qualifying = signature.find(f"{_ds('Object')}/{_xades('QualifyingProperties')}")
    if qualifying is None:
        raise InvalidInput("the signature has no XAdES QualifyingProperties")
    unsigned = qualifying.find(_xades("UnsignedProperties"))
    if unsigned is None:
        unsigned = etree.SubElement(qualifying, _xades("UnsignedProperties"))
    properties = unsigned.find(_xades("UnsignedSignatureProperties"))
    if properties is None:
        properties = etree.SubElement(unsigned, _xades("UnsignedSignatureProperties"))
    return properties


def _add_signature_timestamp(signature: etree._Element, timestamper: TimeStamper) -> bytes:
    """EN 319 132-1 §5.3 SignatureTimeStamp over the exclusive-c14n of ds:SignatureValue."""
    value = signature.find(_ds("SignatureValue"))
    assert value is not None
    canonical = xmlsafe.c14n(value, exclusive=True)
    digest = hashlib.sha256(canonical).digest()
    token = run_sync(timestamper.async_timestamp(digest, "sha256"))
    token_der = token.dump()
    properties = _unsigned_signature_properties(signature)
    stamp = etree.SubElement(
        properties, _xades("SignatureTimeStamp"), Id=f"{signature.get('Id')}-SignatureTimeStamp"
    )
    etree.SubElement(stamp, _ds("CanonicalizationMethod"), Algorithm=EXC_C14N.value)
    etree.SubElement(stamp, _xades("EncapsulatedTimeStamp")).text = base64.b64encode(
        token_der
    ).decode()
    return token_der


def _ocsp_certificates(ocsp_der: bytes) -> list[x509.Certificate]:
    from asn1crypto import ocsp

    basic = ocsp.OCSPResponse.load(ocsp_der).basic_ocsp_response
    return [x509.load_der_x509_certificate(c.dump()) for c in basic["certs"] or []]


def _add_validation_data(
    signature: etree._Element,
    identity: SignerIdentity,
    trust: TrustContext,
    token_certs: list[x509.Certificate],
) -> None:
    """EN 319 132-1 §5.5: CertificateValues and RevocationValues for B-LT."""
    if not trust.is_ours(identity.certificate):
        raise InvalidInput(
            "B-LT needs revocation data for the signer; kyso has it only for certificates "
            "its own CA issued",
            vi="mức B-LT cần dữ liệu thu hồi của người ký; kyso chỉ có cho chứng thư do CA "
            "của mình cấp",
        )
    crls, ocsps = kyso_revocation_data(trust, [identity.certificate, *token_certs])
    in_key_info = {
        base64.b64decode("".join((e.text or "").split()))
        for e in signature.iter(_ds("X509Certificate"))
    }
    extra: list[bytes] = []
    for cert in [*token_certs, *(c for der in ocsps for c in _ocsp_certificates(der))]:
        der = cert.public_bytes(serialization.Encoding.DER)
        if der not in in_key_info and der not in extra:
            extra.append(der)
    properties = _unsigned_signature_properties(signature)
    if extra:
        values = etree.SubElement(properties, _xades("CertificateValues"))
        for der in extra:
            etree.SubElement(values, _xades("EncapsulatedX509Certificate")).text = base64.b64encode(
                der
            ).decode()
    revocation = etree.SubElement(properties, _xades("RevocationValues"))
    if crls:
        crl_values = etree.SubElement(revocation, _xades("CRLValues"))
        for der in crls:
            etree.SubElement(crl_values, _xades("EncapsulatedCRLValue")).text = base64.b64encode(
                der
            ).decode()
    if ocsps:
        ocsp_values = etree.SubElement(revocation, _xades("OCSPValues"))
        for der in ocsps:
            etree.SubElement(ocsp_values, _xades("EncapsulatedOCSPValue")).text = base64.b64encode(
                der
            ).decode()


def sign_xml(
    xml: bytes,
    identity: SignerIdentity,
    *,
    level: Level = Level.B_B,
    timestamper: TimeStamper | None = None,
    parent_xpath: str | None = None,
    trust: TrustContext | None = None,
    parallel: bool = False,
) -> bytes:
    """The document with an enveloped XAdES signature at ``level``, as UTF-8 bytes.

    The signature goes under the one element ``parent_xpath`` selects (prefixes ``edxml:``,
    ``ds:``, ``xades:`` and those declared on the root are known; e.g.
    ``//edxml:edXMLHeader`` for edXML, QCVN 102:2016), or at the end of the root element.
    B-T needs ``timestamper``; B-LT also ``trust`` (for kyso's CRLs and OCSP answers).

    Several signatures on one document are parallel signatures, as EU DSS makes them: each
    covers the whole document less every ds:Signature in it (``parallel``, and always when
    the document already holds a signature), so a deputy's signature stays valid when the
    head signs after, and the unit's seal can be added to a leader's signed edXML. The
    default is the single-signature form (the enveloped-signature transform only), which
    .NET's SignedXml can check but which any later signature breaks.
    A signature already in the document that the new one would break (one covering the
    place of the new signature without subtracting signatures) is InvalidInput: kyso never
    invalidates someone else's signature.
    """
    level = Level(level)
    if level is Level.B_LTA:
        raise InvalidInput(
            "XAdES B-LTA (archive time-stamps) is not offered; use B-LT",
            vi="chưa hỗ trợ XAdES B-LTA; hãy dùng B-LT",
        )
    if level.needs_timestamp and timestamper is None:
        raise InvalidInput(
            f"level {level.value} needs a time-stamp authority",
            vi=f"mức {level.value} cần dịch vụ cấp dấu thời gian",
        )
    if level is Level.B_LT and trust is None:
        raise InvalidInput("level B-LT needs the trust context", vi="mức B-LT cần ngữ cảnh tin cậy")
    root = xmlsafe.parse(xml)
    existing = {e.get("Id") for e in root.iter(_ds("Signature"))}
    parent = _find_parent(root, parent_xpath) if parent_xpath else root
    for index, other in enumerate(outermost_signatures(root), start=1):
        if _would_break(other, parent):
            who = _signer_name(other)
            raise InvalidInput(
                f"signature {index} already in the document (by {who}) covers the place "
                "where the new signature would go without leaving room for other signatures: "
                "it would no longer verify if another signature were added. Its signer can "
                "sign again with parallel signatures allowed (--parallel, parallel=true)",
                vi=f"chữ ký thứ {index} đã có trong tài liệu (của {who}) bao phủ cả chỗ đặt chữ "
                "ký mới mà không chừa chỗ cho chữ ký khác: chữ ký đó sẽ không còn hợp lệ nếu "
                "thêm chữ ký. Người ký có thể ký lại với chế độ cho phép nhiều chữ ký song song "
                "(--parallel, parallel=true)",
            )
    if parent_xpath:
        # signxml fills a ds:Signature Id="placeholder" where it finds one (enveloped mode).
        etree.SubElement(parent, _ds("Signature"), Id="placeholder", nsmap={"ds": DS_NS})

    signer = _Signer(
        parallel=parallel or bool(existing),
        signature_algorithm=_signature_method(identity),
        digest_algorithm=DigestAlgorithm.SHA256,
        c14n_algorithm=C14N,
        data_object_format=XAdESDataObjectFormat(
            Description="Signed XML document", MimeType="text/xml"
        ),
    )
    certs = [identity.certificate, *identity.chain]
    try:
        signed = signer.sign(
            root,
            key=_KeyStoreKey(identity.key),  # type: ignore[arg-type] # duck-typed private key
            cert=certs,
            always_add_key_value=False,  # the certificate says it; a KeyValue only adds ambiguity
        )
    except (SignXMLException, etree.XMLSyntaxError) as exc:
        raise InvalidInput(f"the XML cannot be signed: {exc}", vi="không ký được XML") from exc

    signature = next(
        e
        for e in signed.iter(_ds("Signature"))
        if e.get("Id") not in existing and e.find(_ds("Object")) is not None
    )
    token_certs: list[x509.Certificate] = []
    if level.needs_timestamp:
        assert timestamper is not None
        token_certs = token_certificates(_add_signature_timestamp(signature, timestamper))
    if level is Level.B_LT:
        assert trust is not None
        _add_validation_data(signature, identity, trust, token_certs)
    return etree.tostring(signed, xml_declaration=True, encoding="UTF-8")
