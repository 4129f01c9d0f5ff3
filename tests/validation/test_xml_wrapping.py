"""XML signature wrapping and signature scope (after EU DSS's XAdES wrapping test cases).

Every signature here is real: xmlsec1 (an independent implementation) signs templates with
the references a foreign sender could write; the attacks then move the signed elements
around without touching a signed byte. A validator that looks up what is signed by an
attribute name, or that does not check that what was verified is the document, reports the
forged document as intact. kyso must say what each signature covers
(``SignatureReport.scope``) and never give TOTAL-PASSED for a document the references do not
cover.
"""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path

import pytest
from lxml import etree

from kyso import xmlsafe
from kyso.context import Context
from kyso.signing.xades import DS_NS, EDXML_NS, XADES_NS, sign_xml
from kyso.trust import TrustContext
from kyso.validation.report import Indication, ScopeKind, SignatureReport, SubIndication
from kyso.validation.xml import validate_xml
from validation.test_cms_validation import PemSigner, pem_signer

EDXML = (Path(__file__).parent.parent / "fixtures" / "xml" / "edxml-sample.xml").read_bytes()

C14N = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
XPATH = "http://www.w3.org/TR/1999/REC-xpath-19991116"
XSLT = "http://www.w3.org/TR/1999/REC-xslt-19991116"
FILTER2 = "http://www.w3.org/2002/06/xmldsig-filter2"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
RSA_SHA1 = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
SHA1 = "http://www.w3.org/2000/09/xmldsig#sha1"


def reference(uri: str, *transforms: str, digest: str = SHA256) -> str:
    """A ds:Reference for an xmlsec1 template; a transform is an Algorithm URI, or the
    whole ds:Transform element when it has content (XPath, XSLT)."""
    parts = [t if t.startswith("<") else f'<ds:Transform Algorithm="{t}"/>' for t in transforms]
    listed = f"<ds:Transforms>{''.join(parts)}</ds:Transforms>" if parts else ""
    return (
        f'<ds:Reference URI="{uri}">{listed}<ds:DigestMethod Algorithm="{digest}"/>'
        "<ds:DigestValue/></ds:Reference>"
    )


def signature(*references: str, method: str = RSA_SHA256) -> str:
    return (
        f'<ds:Signature xmlns:ds="{DS_NS}"><ds:SignedInfo>'
        f'<ds:CanonicalizationMethod Algorithm="{C14N}"/>'
        f'<ds:SignatureMethod Algorithm="{method}"/>{"".join(references)}</ds:SignedInfo>'
        "<ds:SignatureValue/><ds:KeyInfo><ds:X509Data><ds:X509Certificate/></ds:X509Data>"
        "</ds:KeyInfo></ds:Signature>"
    )


def filter2(
    expression: str, operation: str = "subtract", *, prefix: str = "ds", namespace: str = DS_NS
) -> str:
    """An XPath Filter 2.0 transform (W3C REC-xmldsig-filter2) with one XPath element."""
    return (
        f'<ds:Transform Algorithm="{FILTER2}"><f:XPath xmlns:f="{FILTER2}" '
        f'xmlns:{prefix}="{namespace}" Filter="{operation}">{expression}</f:XPath></ds:Transform>'
    )


def xmlsec_sign(tools: PemSigner, directory: Path, template: bytes, *id_nodes: str) -> bytes:
    """``template`` signed by xmlsec1; ``id_nodes`` are the elements whose ``Id`` attribute
    is an ID (``[namespace:]name``), as a sender's schema would declare them."""
    (directory / "template.xml").write_bytes(template)
    ids = [arg for node in id_nodes for arg in ("--id-attr:Id", node)]
    result = subprocess.run(
        [
            "xmlsec1",
            "--sign",
            "--privkey-pem",
            f"{tools.key},{tools.cert}",
            *ids,
            "--output",
            str(directory / "signed.xml"),
            str(directory / "template.xml"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return (directory / "signed.xml").read_bytes()


def xmlsec_verifies(tools: PemSigner, directory: Path, signed: bytes, *id_nodes: str) -> bool:
    (directory / "check.xml").write_bytes(signed)
    ids = [arg for node in id_nodes for arg in ("--id-attr:Id", node)]
    result = subprocess.run(
        [
            "xmlsec1",
            "--verify",
            "--trusted-pem",
            str(tools.root),
            "--untrusted-pem",
            str(tools.issuing),
            *ids,
            str(directory / "check.xml"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result.returncode == 0


def only(report_signatures: list[SignatureReport]) -> SignatureReport:
    (sig,) = report_signatures
    return sig


def verdict(sig: SignatureReport) -> tuple[Indication, SubIndication | None]:
    return sig.indication, sig.sub_indication


def scope_text(sig: SignatureReport) -> str:
    return " | ".join(f"{s.kind.value}: {s.description_en} / {s.description_vi}" for s in sig.scope)


@pytest.fixture(scope="module")
def tools(sqlite_ctx: Context, tmp_path_factory: pytest.TempPathFactory) -> PemSigner:
    return pem_signer(sqlite_ctx, tmp_path_factory.mktemp("xml-wrapping-signer"))


# A plain document whose root carries Id="doc", signed by reference to that Id.
LETTER = (
    '<van-ban Id="doc"><so>125/STTTT-VP</so><noi-dung>Cấp kinh phí 10 triệu đồng.</noi-dung>'
    f"{signature(reference('#doc', ENVELOPED, EXC_C14N))}</van-ban>"
).encode()
FORGED = ("<so>999/STTTT-VP</so><noi-dung>Cấp kinh phí 10 tỷ đồng.</noi-dung>").encode()


@pytest.fixture(scope="module")
def signed_letter(tools: PemSigner, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return xmlsec_sign(tools, tmp_path_factory.mktemp("letter"), LETTER, "van-ban")


def forged_root(original: etree._Element, **attributes: str) -> etree._Element:
    """A new root with forged content, the signed original moved into a child."""
    root = etree.Element("van-ban", attrib=attributes)
    for child in etree.fromstring(b"<x>" + FORGED + b"</x>"):
        root.append(child)
    etree.SubElement(root, "ban-goc").append(original)
    return root


# -- what passes: the whole document ---------------------------------------------------------


def test_a_signature_over_the_root_id_covers_the_whole_document(
    signed_letter: bytes, trust: TrustContext
) -> None:
    sig = only(validate_xml(signed_letter, trust).signatures)
    assert sig.indication is Indication.TOTAL_PASSED, sig.message_en
    assert [s.kind for s in sig.scope] == [ScopeKind.FULL], scope_text(sig)
    assert "van-ban" in sig.scope[0].description_en


def test_kyso_signature_covers_the_whole_edxml_message(
    tools: PemSigner, trust: TrustContext
) -> None:
    signed = sign_xml(EDXML, tools.identity, parent_xpath="//edxml:edXMLHeader")
    sig = only(validate_xml(signed, trust).signatures)
    assert sig.indication is Indication.TOTAL_PASSED, sig.message_en
    assert [s.kind for s in sig.scope] == [ScopeKind.FULL], scope_text(sig)
    assert "edXML" in sig.scope[0].description_en and "edXML" in sig.scope[0].description_vi


@pytest.mark.interop
def test_enveloping_signature_covers_the_content_it_encloses(
    tools: PemSigner, trust: TrustContext, tmp_path: Path
) -> None:
    """An enveloping signature (the file is the ds:Signature, the content in its ds:Object)
    covers the whole file when its reference resolves to that ds:Object."""
    template = signature(reference("#obj")).replace(
        "</ds:Signature>",
        '<ds:Object Id="obj"><van-ban><so>125</so></van-ban></ds:Object></ds:Signature>',
    )
    signed = xmlsec_sign(tools, tmp_path, template.encode(), f"{DS_NS}:Object")
    sig = only(validate_xml(signed, trust).signatures)
    assert sig.indication is Indication.TOTAL_PASSED, sig.message_en
    assert [s.kind for s in sig.scope] == [ScopeKind.FULL], scope_text(sig)
    assert "ds:Object" in sig.scope[0].description_en


# -- wrapping: the signed original moved below a forged root -----------------------------------


@pytest.mark.interop
@pytest.mark.parametrize("attribute", ["id", "ID", "{http://www.w3.org/XML/1998/namespace}id"])
def test_wrapped_xml_whose_new_root_claims_the_signed_id_is_not_total_passed(
    attribute: str, signed_letter: bytes, trust: TrustContext
) -> None:
    """The reported attack: a new root carrying ``id="doc"`` (not ``Id``) with forged content,
    the signed original moved into a child. Two elements now claim the id the signature
    refers to: which one was signed cannot be told, so nothing is vouched for."""
    wrapped = etree.tostring(forged_root(xmlsafe.parse(signed_letter), **{attribute: "doc"}))
    sig = only(validate_xml(wrapped, trust).signatures)
    assert verdict(sig) == (Indication.TOTAL_FAILED, SubIndication.FORMAT_FAILURE), sig.message_en
    assert [s.kind for s in sig.scope] == [ScopeKind.NOTHING], scope_text(sig)
    assert '"doc"' in sig.scope[0].description_en and '"doc"' in sig.scope[0].description_vi
    assert "wrapping" in sig.message_en and "two elements" in sig.message_en
    assert "hai phần tử" in sig.message_vi


def test_original_moved_below_a_forged_root_is_partial(
    signed_letter: bytes, trust: TrustContext
) -> None:
    wrapped = etree.tostring(forged_root(xmlsafe.parse(signed_letter)))
    report = validate_xml(wrapped, trust)
    sig = only(report.signatures)
    assert sig.integrity  # what it signed is intact ...
    assert verdict(sig) == (Indication.INDETERMINATE, SubIndication.SIG_CONSTRAINTS_FAILURE)
    assert not report.passed  # ... but it is not the document
    assert [s.kind for s in sig.scope] == [ScopeKind.PARTIAL], scope_text(sig)
    assert "/van-ban/ban-goc/van-ban" in sig.scope[0].description_en
    assert "does not cover the whole document" in sig.message_en
    assert "/van-ban/ban-goc/van-ban" in sig.message_en
    assert "không bao phủ toàn bộ tài liệu" in sig.message_vi


@pytest.mark.interop
def test_original_moved_into_the_signature_object_is_not_the_document(
    signed_letter: bytes, tools: PemSigner, trust: TrustContext, tmp_path: Path
) -> None:
    """The classic wrapping: the forged root carries the signature, the signed original is
    hidden in a ds:Object of that signature. The reference's enveloped-signature transform
    now removes the signature and, with it, everything the reference designates (XML-DSig
    §6.6.4): nothing is left to match the digest, as xmlsec1 also finds."""
    original = xmlsafe.parse(signed_letter)
    sig_element = original.find(f"{{{DS_NS}}}Signature")
    original.remove(sig_element)
    etree.SubElement(sig_element, f"{{{DS_NS}}}Object").append(original)
    root = etree.Element("van-ban")
    for child in etree.fromstring(b"<x>" + FORGED + b"</x>"):
        root.append(child)
    root.append(sig_element)
    assert not xmlsec_verifies(tools, tmp_path, etree.tostring(root), "van-ban")
    sig = only(validate_xml(etree.tostring(root), trust).signatures)
    assert sig.indication is not Indication.TOTAL_PASSED
    assert verdict(sig) == (Indication.TOTAL_FAILED, SubIndication.HASH_FAILURE)
    assert [s.kind for s in sig.scope] == [ScopeKind.PARTIAL], scope_text(sig)
    assert "inside the signature" in sig.scope[0].description_en


@pytest.mark.interop
@pytest.mark.parametrize(
    "attribute", ["Id", "ID", "id", "{http://www.w3.org/XML/1998/namespace}id"]
)
def test_two_elements_claiming_the_same_id_are_refused(
    attribute: str, tools: PemSigner, trust: TrustContext, tmp_path: Path
) -> None:
    """A decoy with the referenced id next to the signed element, under any ID attribute
    name: refused whichever the resolver would have picked."""
    template = (
        '<ho-so><noi-dung Id="nd">Cấp kinh phí 10 triệu đồng.</noi-dung>'
        f"{signature(reference('#nd', EXC_C14N))}</ho-so>"
    ).encode()
    signed = xmlsafe.parse(xmlsec_sign(tools, tmp_path, template, "noi-dung"))
    decoy = etree.Element("noi-dung", attrib={attribute: "nd"})
    decoy.text = "Cấp kinh phí 10 tỷ đồng."
    signed.insert(0, decoy)
    sig = only(validate_xml(etree.tostring(signed), trust).signatures)
    assert verdict(sig) == (Indication.TOTAL_FAILED, SubIndication.FORMAT_FAILURE), sig.message_en
    assert [s.kind for s in sig.scope] == [ScopeKind.NOTHING], scope_text(sig)
    assert '"nd"' in sig.scope[0].description_en


def test_kyso_signature_wrapped_in_a_new_root_is_hash_failure(
    tools: PemSigner, trust: TrustContext
) -> None:
    """kyso signs URI="": the whole document is what the digest covers, so a new root around
    it breaks the digest whatever ids it carries."""
    signed = sign_xml(b'<van-ban Id="doc"><so>125/STTTT-VP</so></van-ban>', tools.identity)
    wrapped = etree.tostring(forged_root(xmlsafe.parse(signed), id="doc"))
    sig = only(validate_xml(wrapped, trust).signatures)
    assert verdict(sig) == (Indication.TOTAL_FAILED, SubIndication.HASH_FAILURE), sig.message_en


def test_signed_properties_moved_away_and_forged_is_format_failure(
    tools: PemSigner, trust: TrustContext
) -> None:
    """The XAdES SignedProperties kyso reads (signing time, signing certificate) must be the
    element the reference resolved to, not another one carrying the signed copy."""
    root = xmlsafe.parse(sign_xml(EDXML, tools.identity, parent_xpath="//edxml:edXMLHeader"))
    ns = {"ds": DS_NS, "xades": XADES_NS}
    qualifying = root.find(".//ds:Object/xades:QualifyingProperties", ns)
    properties = qualifying.find("xades:SignedProperties", ns)
    # The signed copy goes to a second ds:Object, where nobody reads it ...
    hidden = etree.SubElement(qualifying.getparent().getparent(), f"{{{DS_NS}}}Object")
    hidden.append(copy.deepcopy(qualifying))
    # ... and the one in place is forged (a signing time a year earlier, no Id).
    del properties.attrib["Id"]
    signing_time = properties.find(".//xades:SigningTime", ns)
    signing_time.text = "2000-01-01T00:00:00+00:00"
    sig = only(validate_xml(etree.tostring(root), trust).signatures)
    assert verdict(sig) == (Indication.TOTAL_FAILED, SubIndication.FORMAT_FAILURE), sig.message_en


# -- signed data not found, external data, transforms kyso does not run ------------------------


def test_reference_to_an_element_that_does_not_exist_is_signed_data_not_found(
    signed_letter: bytes, trust: TrustContext
) -> None:
    renamed = signed_letter.replace(b'<van-ban Id="doc">', b'<van-ban Ma="doc">')
    assert renamed != signed_letter
    sig = only(validate_xml(renamed, trust).signatures)
    assert verdict(sig) == (Indication.INDETERMINATE, SubIndication.SIGNED_DATA_NOT_FOUND)
    assert [s.kind for s in sig.scope] == [ScopeKind.NOTHING], scope_text(sig)
    assert '"doc"' in sig.scope[0].description_en and "does not exist" in sig.message_en


def test_a_signature_over_nothing_but_its_own_properties_is_signed_data_not_found(
    tools: PemSigner, trust: TrustContext
) -> None:
    """EU DSS's dss-signed-altered-refRemoved.xml, made by kyso: the document reference is
    gone. The signed data is looked for before the signature value is checked (EN 319 102-1
    §5.2.7), so the answer is that nothing is signed, not that the value is wrong."""
    root = xmlsafe.parse(sign_xml(b"<van-ban><so>125/STTTT-VP</so></van-ban>", tools.identity))
    (document_reference,) = root.findall(f".//{{{DS_NS}}}Reference[@URI='']")
    document_reference.getparent().remove(document_reference)
    sig = only(validate_xml(etree.tostring(root), trust).signatures)
    assert verdict(sig) == (Indication.INDETERMINATE, SubIndication.SIGNED_DATA_NOT_FOUND)
    assert [s.kind for s in sig.scope] == [ScopeKind.NOTHING], scope_text(sig)
    assert "own properties" in sig.scope[0].description_en


def test_signed_properties_outside_the_signature_are_signed_data_not_found(
    tools: PemSigner, trust: TrustContext
) -> None:
    """A reference typed SignedProperties must designate the xades:SignedProperties in the
    signature's own ds:Object (EU DSS's XSW check); the signed copy elsewhere is not it."""
    root = xmlsafe.parse(sign_xml(EDXML, tools.identity, parent_xpath="//edxml:edXMLHeader"))
    properties = root.find(f".//{{{XADES_NS}}}SignedProperties")
    root.append(copy.deepcopy(properties.getparent()))  # the signed copy, outside
    del properties.attrib["Id"]
    sig = only(validate_xml(etree.tostring(root), trust).signatures)
    assert verdict(sig) == (Indication.INDETERMINATE, SubIndication.SIGNED_DATA_NOT_FOUND)
    assert "SignedProperties" in scope_text(sig)


@pytest.mark.interop
def test_an_object_reference_to_an_object_moved_away_is_signed_data_not_found(
    tools: PemSigner, trust: TrustContext, tmp_path: Path
) -> None:
    """A reference typed Object designates a ds:Object of the signature itself (EU DSS's
    XSW-enveloping-fake-object.xml): one moved into a wrapper, with a decoy in its place,
    is not what was signed as far as a reader can tell."""
    template = (
        signature(reference("#obj"))
        .replace(
            '<ds:Reference URI="#obj">',
            '<ds:Reference URI="#obj" Type="http://www.w3.org/2000/09/xmldsig#Object">',
        )
        .replace(
            "</ds:Signature>",
            '<ds:Object Id="obj"><van-ban><so>125</so></van-ban></ds:Object></ds:Signature>',
        )
    )
    signed = xmlsafe.parse(xmlsec_sign(tools, tmp_path, template.encode(), f"{DS_NS}:Object"))
    assert only(validate_xml(etree.tostring(signed), trust).signatures).indication is (
        Indication.TOTAL_PASSED
    )
    original = signed.find(f"{{{DS_NS}}}Object")
    signed.remove(original)
    decoy = etree.SubElement(signed, f"{{{DS_NS}}}Object")
    decoy.append(etree.fromstring(b"<van-ban>" + FORGED + b"</van-ban>"))
    etree.SubElement(etree.SubElement(signed, f"{{{DS_NS}}}Object"), "wrapper").append(original)
    sig = only(validate_xml(etree.tostring(signed), trust).signatures)
    assert verdict(sig) == (Indication.INDETERMINATE, SubIndication.SIGNED_DATA_NOT_FOUND)
    assert "/Signature/Object[2]/wrapper/Object" in scope_text(sig)


@pytest.mark.interop
def test_reference_to_a_file_outside_the_document_is_not_followed(
    tools: PemSigner, trust: TrustContext, tmp_path: Path
) -> None:
    outside = tmp_path / "phu-luc.txt"
    outside.write_bytes("Phụ lục kinh phí.\n".encode())
    template = (
        "<van-ban><so>125/STTTT-VP</so>"
        f"{signature(reference('', ENVELOPED), reference(outside.as_uri()))}</van-ban>"
    ).encode()
    signed = xmlsec_sign(tools, tmp_path, template)
    assert xmlsec_verifies(tools, tmp_path, signed)  # the file is there and matches
    sig = only(validate_xml(signed, trust).signatures)
    # kyso does not read files or the network a document names: the data is not found.
    assert verdict(sig) == (Indication.INDETERMINATE, SubIndication.SIGNED_DATA_NOT_FOUND)
    assert ScopeKind.DETACHED in [s.kind for s in sig.scope], scope_text(sig)
    assert outside.as_uri() in scope_text(sig)


XPATH_TRANSFORM = (
    f'<ds:Transform Algorithm="{XPATH}"><ds:XPath>not(ancestor-or-self::ds:Signature)'
    "</ds:XPath></ds:Transform>"
)
XSLT_TRANSFORM = (
    f'<ds:Transform Algorithm="{XSLT}"><xsl:stylesheet version="1.0" '
    'xmlns:xsl="http://www.w3.org/1999/XSL/Transform"><xsl:template match="/">'
    '<kq><xsl:value-of select="//so"/></kq></xsl:template></xsl:stylesheet></ds:Transform>'
)


@pytest.mark.interop
@pytest.mark.parametrize(
    ("transforms", "named"),
    [((XPATH_TRANSFORM,), "XPath"), ((ENVELOPED, XSLT_TRANSFORM), "XSLT")],
    ids=["xpath", "xslt"],
)
def test_xpath_and_xslt_transforms_are_refused(
    transforms: tuple[str, ...], named: str, tools: PemSigner, trust: TrustContext, tmp_path: Path
) -> None:
    """Such a transform decides what is signed by running a program kyso would have to trust;
    xmlsec1 verifies these, kyso refuses to say what they cover."""
    template = (
        "<van-ban><so>125/STTTT-VP</so><noi-dung>Cấp kinh phí 10 triệu đồng.</noi-dung>"
        f"{signature(reference('', *transforms))}</van-ban>"
    ).encode()
    signed = xmlsec_sign(tools, tmp_path, template)
    assert xmlsec_verifies(tools, tmp_path, signed)
    sig = only(validate_xml(signed, trust).signatures)
    assert verdict(sig) == (Indication.INDETERMINATE, SubIndication.SIGNED_DATA_NOT_FOUND)
    assert named in scope_text(sig) and named in sig.message_en


@pytest.mark.interop
@pytest.mark.parametrize(
    "transforms",
    [
        (filter2("/descendant::ds:Signature"),),
        (ENVELOPED, filter2("//ds:Signature")),
        (filter2("/descendant::dsig:Signature", prefix="dsig"), EXC_C14N),
    ],
    ids=["dss", "enveloped-then-filter", "other-prefix"],
)
def test_xpath_filter2_subtracting_every_signature_covers_the_document(
    transforms: tuple[str, ...], tools: PemSigner, trust: TrustContext, tmp_path: Path
) -> None:
    """Parallel signatures (EU DSS writes this for every enveloped signature): the whole
    document less every ds:Signature in it. The one form of XPath kyso evaluates, because
    it is not a program but a fixed meaning."""
    template = (
        "<van-ban><so>125/STTTT-VP</so><noi-dung>Cấp kinh phí 10 triệu đồng.</noi-dung>"
        f"{signature(reference('', *transforms))}</van-ban>"
    ).encode()
    signed = xmlsec_sign(tools, tmp_path, template)
    assert xmlsec_verifies(tools, tmp_path, signed)
    sig = only(validate_xml(signed, trust).signatures)
    assert sig.indication is Indication.TOTAL_PASSED, sig.message_en
    assert [s.kind for s in sig.scope] == [ScopeKind.FULL], scope_text(sig)
    assert "signatures" in sig.scope[0].description_en
    assert "chữ ký" in sig.scope[0].description_vi

    changed = signed.replace(b"125/STTTT-VP", b"999/STTTT-VP")
    assert changed != signed and not xmlsec_verifies(tools, tmp_path, changed)
    sig = only(validate_xml(changed, trust).signatures)
    assert verdict(sig) == (Indication.TOTAL_FAILED, SubIndication.HASH_FAILURE)


@pytest.mark.interop
@pytest.mark.parametrize(
    ("uri", "transform"),
    [
        ("", filter2("//noi-dung")),
        ("", filter2("//ds:Signature", "intersect")),
        ("", filter2("/", "union")),
        ("", filter2("//ds:Signature", namespace="urn:not-xmldsig")),
        ("", filter2("//ds:Signature | //noi-dung")),
        (
            "",
            filter2("//ds:Signature").replace(
                "</ds:Transform>",
                f'<f:XPath xmlns:f="{FILTER2}" Filter="union">/</f:XPath></ds:Transform>',
            ),
        ),
        ("#doc", filter2("//ds:Signature")),
    ],
    ids=[
        "subtracts-content",
        "intersect",
        "union",
        "other-namespace",
        "more-than-signatures",
        "two-steps",
        "by-id",
    ],
)
def test_other_xpath_filter2_transforms_are_refused(
    uri: str, transform: str, tools: PemSigner, trust: TrustContext, tmp_path: Path
) -> None:
    """Any other filter (one that removes content, keeps only part, or reads the prefix in
    another namespace) decides what is signed by a program: refused as before, though
    xmlsec1 verifies each."""
    template = (
        '<van-ban Id="doc"><so>125/STTTT-VP</so><noi-dung>Cấp kinh phí 10 triệu đồng.</noi-dung>'
        f"{signature(reference(uri, ENVELOPED, transform))}</van-ban>"
    ).encode()
    signed = xmlsec_sign(tools, tmp_path, template, "van-ban")
    assert xmlsec_verifies(tools, tmp_path, signed, "van-ban")
    sig = only(validate_xml(signed, trust).signatures)
    assert verdict(sig) == (Indication.INDETERMINATE, SubIndication.SIGNED_DATA_NOT_FOUND)
    assert "XPath Filter 2.0" in scope_text(sig) and "XPath Filter 2.0" in sig.message_en


def test_content_hidden_in_an_element_named_signature_is_not_total_passed(
    tools: PemSigner, trust: TrustContext
) -> None:
    """A parallel signature does not cover what sits inside other ds:Signature elements, so
    every one of them is reported: forged content wrapped in a fake ds:Signature leaves
    the real signature intact but the document is not TOTAL-PASSED."""
    signed = xmlsafe.parse(
        sign_xml(b"<van-ban><so>125/STTTT-VP</so></van-ban>", tools.identity, parallel=True)
    )
    fake = etree.SubElement(signed, f"{{{DS_NS}}}Signature")
    fake.append(etree.fromstring(b"<x>" + FORGED + b"</x>")[1])
    report = validate_xml(etree.tostring(signed), trust)
    real, forged = report.signatures
    assert real.indication is Indication.TOTAL_PASSED, real.message_en
    assert forged.indication is Indication.TOTAL_FAILED
    assert report.indication is Indication.TOTAL_FAILED and not report.passed


@pytest.mark.interop
def test_a_processing_instruction_added_before_the_root_breaks_the_signature(
    tools: PemSigner, trust: TrustContext, tmp_path: Path
) -> None:
    """URI="" is the whole document (XML-DSig §4.4.3.2), processing instructions outside the
    root included: a style sheet added after signing changes what a reader is shown."""
    signed = sign_xml(b"<van-ban><so>125/STTTT-VP</so></van-ban>", tools.identity)
    assert xmlsec_verifies(tools, tmp_path, signed)
    restyled = signed.replace(
        b"?>", b'?>\n<?xml-stylesheet type="text/xsl" href="https://example.org/an.xsl"?>', 1
    )
    assert restyled != signed and not xmlsec_verifies(tools, tmp_path, restyled)
    sig = only(validate_xml(restyled, trust).signatures)
    assert verdict(sig) == (Indication.TOTAL_FAILED, SubIndication.HASH_FAILURE), sig.message_en


# -- partial scope -------------------------------------------------------------------------


@pytest.mark.interop
def test_signature_over_one_element_is_partial_and_names_it(
    tools: PemSigner, trust: TrustContext, tmp_path: Path
) -> None:
    template = (
        '<ho-so><so>125/STTTT-VP</so><noi-dung Id="nd">Cấp kinh phí 10 triệu đồng.</noi-dung>'
        f"{signature(reference('#nd', EXC_C14N))}</ho-so>"
    ).encode()
    report = validate_xml(xmlsec_sign(tools, tmp_path, template, "noi-dung"), trust)
    sig = only(report.signatures)
    assert sig.integrity and not report.passed
    assert verdict(sig) == (Indication.INDETERMINATE, SubIndication.SIG_CONSTRAINTS_FAILURE)
    assert [s.kind for s in sig.scope] == [ScopeKind.PARTIAL], scope_text(sig)
    assert "noi-dung" in sig.scope[0].description_en and '"nd"' in sig.scope[0].description_en
    assert "noi-dung" in sig.scope[0].description_vi


# -- edXML ------------------------------------------------------------------------------------

EDXML_NODE = f"{EDXML_NS}:"


def edxml_with(signature_xml: str, **ids: str) -> bytes:
    """The sample edXML with the signature template in edXMLHeader and ``Id`` attributes on
    the named elements."""
    document = EDXML.replace(b"</edXMLHeader>", signature_xml.encode() + b"</edXMLHeader>")
    for element, value in ids.items():
        document = document.replace(f"<{element}>".encode(), f'<{element} Id="{value}">'.encode())
        document = document.replace(
            f'<{element} xmlns="{EDXML_NS}">'.encode(),
            f'<{element} xmlns="{EDXML_NS}" Id="{value}">'.encode(),
        )
    return document


@pytest.mark.interop
def test_edxml_signed_over_the_header_only_is_format_failure(
    tools: PemSigner, trust: TrustContext, tmp_path: Path
) -> None:
    template = edxml_with(signature(reference("#hdr", ENVELOPED)), edXMLHeader="hdr")
    signed = xmlsec_sign(tools, tmp_path, template, EDXML_NODE + "edXMLHeader")
    sig = only(validate_xml(signed, trust).signatures)
    assert verdict(sig) == (Indication.TOTAL_FAILED, SubIndication.FORMAT_FAILURE)
    assert [s.kind for s in sig.scope] == [ScopeKind.PARTIAL], scope_text(sig)
    assert "edXMLHeader" in sig.scope[0].description_en
    assert "QCVN 102:2016" in sig.message_en and "QCVN 102:2016" in sig.message_vi


@pytest.mark.interop
def test_edxml_signed_over_header_and_body_but_not_attachments_is_partial(
    tools: PemSigner, trust: TrustContext, tmp_path: Path
) -> None:
    """QCVN 102:2016's header and body are signed, the attachments are not: the attached
    document could be swapped, so the message is not TOTAL-PASSED either."""
    template = edxml_with(
        signature(reference("#hdr", ENVELOPED), reference("#body")),
        edXMLHeader="hdr",
        edXMLBody="body",
    )
    signed = xmlsec_sign(
        tools, tmp_path, template, EDXML_NODE + "edXMLHeader", EDXML_NODE + "edXMLBody"
    )
    sig = only(validate_xml(signed, trust).signatures)
    assert verdict(sig) == (Indication.INDETERMINATE, SubIndication.SIG_CONSTRAINTS_FAILURE)
    assert [s.kind for s in sig.scope] == [ScopeKind.PARTIAL, ScopeKind.PARTIAL], scope_text(sig)
    assert "edXMLHeader" in scope_text(sig) and "edXMLBody" in scope_text(sig)


@pytest.fixture(scope="module")
def signed_edxml(tools: PemSigner, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The edXML message signed by reference to its root's Id, as some senders do."""
    template = edxml_with(signature(reference("#msg", ENVELOPED)), edXML="msg")
    return xmlsec_sign(tools, tmp_path_factory.mktemp("edxml"), template, EDXML_NODE + "edXML")


def test_edxml_signed_by_the_root_id_covers_the_message(
    signed_edxml: bytes, trust: TrustContext
) -> None:
    sig = only(validate_xml(signed_edxml, trust).signatures)
    assert sig.indication is Indication.TOTAL_PASSED, sig.message_en
    assert [s.kind for s in sig.scope] == [ScopeKind.FULL], scope_text(sig)


def forged_edxml(original: etree._Element, **attributes: str) -> etree._Element:
    """A new edXML root with a forged envelope, the signed message moved into a child."""
    forged = xmlsafe.parse(EDXML.replace(b"<Priority>0</Priority>", b"<Priority>3</Priority>"))
    for name, value in attributes.items():
        forged.set(name, value)
    etree.SubElement(forged, f"{{{EDXML_NS}}}OtherInfo").append(original)
    return forged


@pytest.mark.parametrize("attribute", ["id", "ID"])
def test_wrapped_edxml_whose_new_root_claims_the_signed_id_is_not_total_passed(
    attribute: str, signed_edxml: bytes, trust: TrustContext
) -> None:
    wrapped = etree.tostring(forged_edxml(xmlsafe.parse(signed_edxml), **{attribute: "msg"}))
    sig = only(validate_xml(wrapped, trust).signatures)
    assert verdict(sig) == (Indication.TOTAL_FAILED, SubIndication.FORMAT_FAILURE), sig.message_en
    assert [s.kind for s in sig.scope] == [ScopeKind.NOTHING], scope_text(sig)


def test_wrapped_edxml_below_a_forged_message_names_what_is_signed(
    signed_edxml: bytes, trust: TrustContext
) -> None:
    wrapped = etree.tostring(forged_edxml(xmlsafe.parse(signed_edxml)))
    sig = only(validate_xml(wrapped, trust).signatures)
    assert verdict(sig) == (Indication.TOTAL_FAILED, SubIndication.FORMAT_FAILURE)
    assert [s.kind for s in sig.scope] == [ScopeKind.PARTIAL], scope_text(sig)
    assert "/edXML/OtherInfo/edXML" in sig.scope[0].description_en


# -- older senders ----------------------------------------------------------------------------


@pytest.mark.interop
@pytest.mark.parametrize(("uri", "ids"), [("", {}), ("#msg", {"edXML": "msg"})])
def test_sha1_edxml_from_older_senders_is_read_and_reported_weak(
    uri: str, ids: dict[str, str], tools: PemSigner, trust: TrustContext, tmp_path: Path
) -> None:
    template = edxml_with(signature(reference(uri, ENVELOPED, digest=SHA1), method=RSA_SHA1), **ids)
    signed = xmlsec_sign(tools, tmp_path, template, EDXML_NODE + "edXML")
    sig = only(validate_xml(signed, trust).signatures)
    assert sig.integrity and sig.trusted_chain
    assert verdict(sig) == (Indication.INDETERMINATE, SubIndication.CRYPTO_CONSTRAINTS_FAILURE)
    assert "algorithm" in sig.message_en and "thuật toán" in sig.message_vi
    assert [s.kind for s in sig.scope] == [ScopeKind.FULL], scope_text(sig)
