"""XAdES enveloped signatures for edXML: what ``xmlsec1`` (libxmlsec) accepts."""

from __future__ import annotations

import base64
import hashlib
import subprocess
from pathlib import Path

import pytest
from asn1crypto import cms
from conftest import Instance
from lxml import etree

from kyso import xmlsafe
from kyso.errors import InvalidInput
from kyso.keys.base import KeyAlgorithm
from kyso.signing.identity import SignerIdentity
from kyso.signing.timestamps import InProcessTimeStamper, Level
from kyso.signing.xades import DS_NS, EDXML_NS, XADES_NS, sign_xml
from kyso.trust import trust_context
from kyso.validation.report import Indication, SubIndication
from kyso.validation.xml import validate_xml
from signing.test_cades import issue_signer, openssl, write_chain

EDXML = (Path(__file__).parent.parent / "fixtures" / "xml" / "edxml-sample.xml").read_bytes()
NS = {"ds": DS_NS, "xades": XADES_NS, "edxml": EDXML_NS}
HEADER = "//edxml:edXMLHeader"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
FILTER2 = "http://www.w3.org/2002/06/xmldsig-filter2"
C14N = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
HEAD = "CN=Lê Văn Hùng,OU=Ban Giám đốc,O=Sở Thông tin và Truyền thông tỉnh Bắc Kạn,C=VN"


def xmlsec_verify(
    signed: bytes, files: dict[str, Path], directory: Path, *, node_xpath: str | None = None
) -> subprocess.CompletedProcess[str]:
    """xmlsec1 on ``signed``: its first signature, or the one ``node_xpath`` selects."""
    path = directory / "signed.xml"
    path.write_bytes(signed)
    start = ["--node-xpath", node_xpath] if node_xpath else []
    return subprocess.run(
        [
            "xmlsec1",
            "--verify",
            "--trusted-pem",
            str(files["root"]),
            "--untrusted-pem",
            str(files["issuing"]),
            *start,
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def xmlsec_verify_each(
    signed: bytes, files: dict[str, Path], directory: Path
) -> list[subprocess.CompletedProcess[str]]:
    """xmlsec1 on each signature of ``signed`` in turn (its start node chosen by XPath)."""
    count = len(xmlsafe.parse(signed).findall(".//ds:Signature", NS))
    return [
        xmlsec_verify(
            signed,
            files,
            directory,
            node_xpath=f"(//*[local-name()='Signature' and namespace-uri()='{DS_NS}'])[{n}]",
        )
        for n in range(1, count + 1)
    ]


def document_transforms(signature: etree._Element) -> list[str]:
    """The transforms of the signature's reference to the document (URI="")."""
    (reference,) = signature.findall("ds:SignedInfo/ds:Reference[@URI='']", NS)
    return [t.get("Algorithm") for t in reference.iterfind("ds:Transforms/ds:Transform", NS)]


@pytest.fixture(scope="module", params=[KeyAlgorithm.RSA_2048, KeyAlgorithm.EC_P256])
def signer(request: pytest.FixtureRequest, sqlite_instance: Instance) -> SignerIdentity:
    return issue_signer(sqlite_instance.ctx, algorithm=request.param)


@pytest.mark.interop
@pytest.mark.parametrize("level", [Level.B_B, Level.B_T, Level.B_LT])
def test_xmlsec1_verifies_each_level_inside_the_edxml_header(
    sqlite_instance: Instance, signer: SignerIdentity, level: Level, tmp_path: Path
) -> None:
    ctx = sqlite_instance.ctx
    signed = sign_xml(
        EDXML,
        signer,
        level=level,
        timestamper=InProcessTimeStamper(ctx.tsa),
        parent_xpath=HEADER,
        trust=trust_context(ctx),
    )
    root = xmlsafe.parse(signed)
    (signature,) = root.findall(".//ds:Signature", NS)
    assert signature.getparent().tag == f"{{{EDXML_NS}}}edXMLHeader"
    assert {
        m.get("Algorithm") for m in signature.iterfind(".//ds:Reference/ds:DigestMethod", NS)
    } == {"http://www.w3.org/2001/04/xmlenc#sha256"}
    assert signature.find(".//xades:SigningCertificateV2", NS) is not None
    assert signature.find(".//xades:SigningTime", NS) is not None
    stamped = signature.find(".//xades:SignatureTimeStamp", NS) is not None
    assert stamped == level.needs_timestamp
    assert (signature.find(".//xades:RevocationValues", NS) is not None) == (level is Level.B_LT)

    files = write_chain(signer, tmp_path)
    result = xmlsec_verify(signed, files, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "SignedInfo References (ok/all): 3/3" in result.stderr

    tampered = signed.replace("PHÓ GIÁM ĐỐC".encode(), "GIÁM ĐỐC".encode())
    assert tampered != signed
    assert xmlsec_verify(tampered, files, tmp_path).returncode != 0


@pytest.mark.interop
def test_openssl_ts_verifies_the_xades_signature_time_stamp(
    sqlite_instance: Instance, signer: SignerIdentity, tmp_path: Path
) -> None:
    """EN 319 132-1 §5.3: the imprint is over ds:SignatureValue, canonicalized as declared."""
    signed = sign_xml(
        EDXML,
        signer,
        level=Level.B_T,
        timestamper=InProcessTimeStamper(sqlite_instance.ctx.tsa),
        parent_xpath=HEADER,
    )
    root = xmlsafe.parse(signed)
    stamp = root.find(".//xades:SignatureTimeStamp", NS)
    method = stamp.find("ds:CanonicalizationMethod", NS).get("Algorithm")
    assert method == "http://www.w3.org/2001/10/xml-exc-c14n#"
    token = base64.b64decode(stamp.find("xades:EncapsulatedTimeStamp", NS).text)
    value = root.find(".//ds:SignatureValue", NS)
    canonical = etree.tostring(value, method="c14n", exclusive=True)
    tst_info = cms.ContentInfo.load(token)["content"]["encap_content_info"]["content"].parsed
    assert (
        tst_info["message_imprint"]["hashed_message"].native == hashlib.sha256(canonical).digest()
    )

    files = write_chain(signer, tmp_path)
    (tmp_path / "token.der").write_bytes(token)
    (tmp_path / "value.c14n").write_bytes(canonical)
    result = openssl(
        "ts",
        "-verify",
        "-in",
        tmp_path / "token.der",
        "-token_in",
        "-data",
        tmp_path / "value.c14n",
        "-CAfile",
        files["chain"],
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.interop
@pytest.mark.parametrize("parallel", [False, True], ids=["single", "parallel"])
@pytest.mark.parametrize(
    "document",
    [
        EDXML,
        EDXML.replace(b"<edXML ", b'<edXML Id="msg" '),
        b'<van-ban Id="doc"><so>1</so></van-ban>',
    ],
    ids=["edxml", "edxml-with-root-id", "root-with-id"],
)
def test_kyso_signs_the_whole_document_with_an_empty_uri(
    document: bytes,
    parallel: bool,
    signer: SignerIdentity,
    sqlite_instance: Instance,
    tmp_path: Path,
) -> None:
    """The document reference is URI="" with the enveloped-signature transform (the whole
    document), even when the root carries an Id: a "#id" reference would let the signed
    element be moved below a forged root. The XAdES SignedProperties reference stays. By
    default nothing else (the form .NET's SignedXml checks); with ``parallel`` the XPath
    Filter 2.0 subtraction of signatures, EU DSS's form, which later signatures leave
    intact."""
    parent = "/*" if b"van-ban" in document else HEADER
    signed = sign_xml(document, signer, parent_xpath=parent, parallel=parallel)
    root = xmlsafe.parse(signed)
    references = root.findall(".//ds:Signature/ds:SignedInfo/ds:Reference", NS)
    data = [r for r in references if not r.get("URI", "").startswith("#")]
    assert [r.get("URI") for r in data] == [""]
    transforms = list(data[0].iterfind("ds:Transforms/ds:Transform", NS))
    assert transforms[0].get("Algorithm") == ENVELOPED
    assert transforms[-1].get("Algorithm") == C14N
    if parallel:
        subtract = transforms[1]
        assert subtract.get("Algorithm") == FILTER2
        (xpath,) = subtract
        assert (xpath.get("Filter"), xpath.text) == ("subtract", "/descendant::ds:Signature")
        assert xpath.nsmap["ds"] == DS_NS
    else:
        assert len(transforms) == 2
    (properties,) = [
        r for r in references if r.get("Type") == "http://uri.etsi.org/01903#SignedProperties"
    ]
    assert (
        root.find(f".//xades:SignedProperties[@Id='{properties.get('URI')[1:]}']", NS) is not None
    )

    result = xmlsec_verify(signed, write_chain(signer, tmp_path), tmp_path)
    assert result.returncode == 0, result.stderr
    assert "SignedInfo References (ok/all): 3/3" in result.stderr
    report = validate_xml(signed, trust_context(sqlite_instance.ctx))
    assert report.indication is Indication.TOTAL_PASSED, report.signatures[0].message_en
    assert [s.kind.value for s in report.signatures[0].scope] == ["full"]


@pytest.mark.interop
def test_a_second_signature_leaves_the_first_intact(
    sqlite_instance: Instance, signer: SignerIdentity, tmp_path: Path
) -> None:
    """A deputy signs, then the head signs the same edXML: parallel signatures (EN 319 132-1
    §4.3.x), each over the whole message less the signatures in it, both valid for kyso and
    for xmlsec1; a change to the message breaks both. The first signer asks for parallel
    signatures; the second gets them because a signature is already there."""
    ctx = sqlite_instance.ctx
    head = issue_signer(ctx, subject=HEAD)
    first = sign_xml(EDXML, signer, parent_xpath=HEADER, parallel=True)
    both = sign_xml(
        first,
        head,
        level=Level.B_T,
        timestamper=InProcessTimeStamper(ctx.tsa),
        parent_xpath=HEADER,
    )
    signatures = xmlsafe.parse(both).findall(".//ds:Signature", NS)
    assert len(signatures) == 2
    assert all(s.getparent().tag == f"{{{EDXML_NS}}}edXMLHeader" for s in signatures)
    assert [document_transforms(s) for s in signatures] == [[ENVELOPED, FILTER2, C14N]] * 2

    report = validate_xml(both, trust_context(ctx))
    assert [s.indication for s in report.signatures] == [Indication.TOTAL_PASSED] * 2, [
        s.message_en for s in report.signatures
    ]
    assert report.passed
    assert [s.format for s in report.signatures] == ["XAdES-B-B", "XAdES-B-T"]
    assert "Hồng Nhung" in report.signatures[0].signer.subject
    assert "Văn Hùng" in report.signatures[1].signer.subject
    assert all([x.kind.value for x in s.scope] == ["full"] for s in report.signatures)

    files = write_chain(signer, tmp_path)
    for result in xmlsec_verify_each(both, files, tmp_path):
        assert result.returncode == 0, result.stderr
        assert "SignedInfo References (ok/all): 3/3" in result.stderr

    tampered = both.replace("PHÓ GIÁM ĐỐC".encode(), "GIÁM ĐỐC".encode())
    report = validate_xml(tampered, trust_context(ctx))
    assert [s.sub_indication for s in report.signatures] == [SubIndication.HASH_FAILURE] * 2
    assert all(r.returncode != 0 for r in xmlsec_verify_each(tampered, files, tmp_path))


@pytest.mark.interop
def test_a_signature_that_would_break_an_existing_one_is_refused(
    sqlite_instance: Instance, signer: SignerIdentity, tmp_path: Path
) -> None:
    """The default single-signature form (enveloped transform only), which .NET's SignedXml
    can check, covers the whole document, the place of any later signature included, so
    kyso refuses to add one rather than break it."""
    single = sign_xml(EDXML, signer, parent_xpath=HEADER)
    (signature,) = xmlsafe.parse(single).findall(".//ds:Signature", NS)
    assert document_transforms(signature) == [ENVELOPED, C14N]
    result = xmlsec_verify(single, write_chain(signer, tmp_path), tmp_path)
    assert result.returncode == 0, result.stderr
    report = validate_xml(single, trust_context(sqlite_instance.ctx))
    assert report.passed, report.signatures[0].message_en

    head = issue_signer(sqlite_instance.ctx, subject=HEAD)
    with pytest.raises(InvalidInput, match="no longer verify") as refused:
        sign_xml(single, head, parent_xpath=HEADER)
    assert "Hồng Nhung" in str(refused.value)
    assert "không còn" in refused.value.message("vi")


def test_without_parent_the_signature_closes_the_root(signer: SignerIdentity) -> None:
    signed = sign_xml(b"<van-ban><so>125</so></van-ban>", signer)
    root = xmlsafe.parse(signed)
    assert root[-1].tag == f"{{{DS_NS}}}Signature"


def test_parent_xpath_must_select_exactly_one_element(signer: SignerIdentity) -> None:
    with pytest.raises(InvalidInput, match="exactly one"):
        sign_xml(EDXML, signer, parent_xpath="//edxml:Nothing")
    with pytest.raises(InvalidInput, match="exactly one"):
        sign_xml(EDXML, signer, parent_xpath="//edxml:OrganId")
    with pytest.raises(InvalidInput, match="not a valid XPath"):
        sign_xml(EDXML, signer, parent_xpath="//[")


def test_unsafe_xml_is_refused_before_signing(signer: SignerIdentity) -> None:
    xxe = b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><a>&x;</a>'
    with pytest.raises(InvalidInput, match="DOCTYPE"):
        sign_xml(xxe, signer)
    with pytest.raises(InvalidInput, match="well-formed"):
        sign_xml(b"<a><b></a>", signer)


@pytest.mark.softhsm
@pytest.mark.interop
def test_xml_signed_with_a_key_in_softhsm(hsm_instance: Instance, tmp_path: Path) -> None:
    ctx = hsm_instance.ctx
    identity = issue_signer(ctx, algorithm=KeyAlgorithm.EC_P256)
    assert identity.key.cryptography_key() is None
    signed = sign_xml(
        EDXML,
        identity,
        level=Level.B_T,
        timestamper=InProcessTimeStamper(ctx.tsa),
        parent_xpath=HEADER,
    )
    result = xmlsec_verify(signed, write_chain(identity, tmp_path), tmp_path)
    assert result.returncode == 0, result.stderr
    report = validate_xml(signed, trust_context(ctx))
    assert report.indication is Indication.TOTAL_PASSED, report.signatures[0].message_en
    assert report.signatures[0].format == "XAdES-B-T"
