"""Validating XML signatures (edXML): kyso's XAdES, xmlsec1's XML-DSig, SHA-1 samples,
tampering, revoked and foreign signers, and hostile XML."""

from __future__ import annotations

import datetime as dt
import subprocess
import time
from pathlib import Path

import pytest
from lxml import etree

from kyso import xmlsafe
from kyso.context import Context
from kyso.errors import InvalidInput
from kyso.pki import status
from kyso.signing.timestamps import InProcessTimeStamper, Level
from kyso.signing.xades import sign_xml
from kyso.store.models import RevocationReason
from kyso.trust import TrustContext, trust_context
from kyso.validation.cms import MAX_SIGNATURES
from kyso.validation.report import Indication, RevocationStatus, ScopeKind, SubIndication
from kyso.validation.verify import verify
from kyso.validation.xml import validate_xml
from validation.test_cms_validation import (
    PemSigner,
    _chain_of_three,
    foreign_signer,
    foreign_tsa,
    local_text,
    pem_signer,
    server_signer,
)

FIXTURES = Path(__file__).parent.parent / "fixtures" / "xml"
EDXML = (FIXTURES / "edxml-sample.xml").read_bytes()
HEADER = "//edxml:edXMLHeader"

# The enveloped signature .NET's SignedXml writes (ds as the default namespace), as a template
# for xmlsec1; {method} and {digest} pick the algorithms.
TEMPLATE = """<Signature xmlns="http://www.w3.org/2000/09/xmldsig#"><SignedInfo>\
<CanonicalizationMethod Algorithm="http://www.w3.org/TR/2001/REC-xml-c14n-20010315"/>\
<SignatureMethod Algorithm="{method}"/><Reference URI=""><Transforms>\
<Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/></Transforms>\
<DigestMethod Algorithm="{digest}"/><DigestValue/></Reference></SignedInfo><SignatureValue/>\
<KeyInfo><X509Data><X509Certificate/></X509Data></KeyInfo></Signature>"""
SHA256 = (
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
    "http://www.w3.org/2001/04/xmlenc#sha256",
)
SHA1 = ("http://www.w3.org/2000/09/xmldsig#rsa-sha1", "http://www.w3.org/2000/09/xmldsig#sha1")


def xmlsec_sign(signer: PemSigner, directory: Path, algorithms: tuple[str, str]) -> bytes:
    """edXML signed by xmlsec1 with the signature inside edXMLHeader."""
    template = TEMPLATE.format(method=algorithms[0], digest=algorithms[1])
    document = EDXML.replace(b"</edXMLHeader>", template.encode() + b"</edXMLHeader>")
    (directory / "template.xml").write_bytes(document)
    result = subprocess.run(
        [
            "xmlsec1",
            "--sign",
            "--privkey-pem",
            f"{signer.key},{signer.cert}",
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


@pytest.fixture(scope="module")
def tools(sqlite_ctx: Context, tmp_path_factory: pytest.TempPathFactory) -> PemSigner:
    return pem_signer(sqlite_ctx, tmp_path_factory.mktemp("xml-signer"))


# -- what passes ---------------------------------------------------------------------------


@pytest.mark.parametrize("level", [Level.B_B, Level.B_T, Level.B_LT])
def test_kyso_xades_is_total_passed(ctx: Context, level: Level) -> None:
    identity, _ = server_signer(ctx)
    trust = trust_context(ctx)
    signed = sign_xml(
        EDXML,
        identity,
        level=level,
        timestamper=InProcessTimeStamper(ctx.tsa),
        parent_xpath=HEADER,
        trust=trust,
    )
    report = validate_xml(signed, trust, name="125-STTTT-VP.xml")
    assert report.document_kind == "xml"
    (sig,) = report.signatures
    assert sig.indication is Indication.TOTAL_PASSED, sig.message_en
    assert sig.format == f"XAdES-{level.value}"
    assert sig.integrity and sig.trusted_chain and len(sig.chain) == 3
    assert sig.claimed_signing_time is not None
    assert sig.timestamp_trusted is (True if level.needs_timestamp else None)
    assert sig.revocation is not None and sig.revocation.status is RevocationStatus.GOOD
    assert sig.revocation.source == ("ocsp-embedded" if level is Level.B_LT else "kyso-ca")


@pytest.mark.interop
def test_xmlsec1_signed_edxml_is_total_passed(
    tools: PemSigner, trust: TrustContext, tmp_path: Path
) -> None:
    signed = xmlsec_sign(tools, tmp_path, SHA256)
    (sig,) = validate_xml(signed, trust).signatures
    assert sig.indication is Indication.TOTAL_PASSED, sig.message_en
    assert sig.format == "XML-DSig"
    assert sig.signer is not None and "Trần Văn Bình" in sig.signer.subject


@pytest.mark.interop
def test_sha1_edxml_is_checked_but_reported_weak(
    tools: PemSigner, trust: TrustContext, tmp_path: Path
) -> None:
    """Older edXML samples sign with SHA-1: integrity is checked, the result is not a pass."""
    signed = xmlsec_sign(tools, tmp_path, SHA1)
    (sig,) = validate_xml(signed, trust).signatures
    assert sig.integrity and sig.trusted_chain
    assert (sig.indication, sig.sub_indication) == (
        Indication.INDETERMINATE,
        SubIndication.CRYPTO_CONSTRAINTS_FAILURE,
    )

    tampered = signed.replace("Công văn".encode(), "Quyết định".encode())
    (sig,) = validate_xml(tampered, trust).signatures
    assert (sig.indication, sig.sub_indication) == (
        Indication.TOTAL_FAILED,
        SubIndication.HASH_FAILURE,
    )


@pytest.mark.interop
def test_kyso_does_not_sign_over_a_signature_another_signature_would_break(
    tools: PemSigner, trust: TrustContext, tmp_path: Path
) -> None:
    """An edXML signed elsewhere the way .NET's SignedXml signs (URI="", enveloped transform
    only) covers the place of any second signature: adding one would break it, so kyso
    refuses and names whose signature it would break."""
    signed = xmlsec_sign(tools, tmp_path, SHA256)
    with pytest.raises(InvalidInput, match="Trần Văn Bình"):
        sign_xml(signed, tools.identity, parent_xpath=HEADER)
    assert validate_xml(signed, trust).passed


# -- what fails ----------------------------------------------------------------------------


@pytest.mark.interop
@pytest.mark.parametrize("signed_by", ["kyso", "xmlsec1"])
def test_a_changed_element_is_hash_failure(
    signed_by: str, tools: PemSigner, trust: TrustContext, tmp_path: Path
) -> None:
    signed = (
        sign_xml(EDXML, tools.identity, parent_xpath=HEADER)
        if signed_by == "kyso"
        else xmlsec_sign(tools, tmp_path, SHA256)
    )
    tampered = signed.replace(b"<PageAmount>2</PageAmount>", b"<PageAmount>3</PageAmount>")
    assert tampered != signed
    (sig,) = validate_xml(tampered, trust).signatures
    assert (sig.indication, sig.sub_indication) == (
        Indication.TOTAL_FAILED,
        SubIndication.HASH_FAILURE,
    )
    assert not sig.integrity


@pytest.mark.interop
def test_edxml_signed_only_in_part_is_format_failure_and_other_xml_is_partial(
    tools: PemSigner, trust: TrustContext, tmp_path: Path
) -> None:
    template = (
        TEMPLATE.format(method=SHA256[0], digest=SHA256[1])
        .replace('URI=""', 'URI="#hdr"')
        .replace(
            '<Transforms><Transform Algorithm="http://www.w3.org/2000/09/xmldsig#'
            'enveloped-signature"/></Transforms>',
            "",
        )
    )

    def sign_part(namespace: bytes) -> bytes:
        document = (
            EDXML.replace(b"<MessageHeader>", b'<MessageHeader Id="hdr">')
            .replace(b"</edXMLHeader>", template.encode() + b"</edXMLHeader>")
            .replace(b"http://www.mic.gov.vn/TBT/QCVN_102_2016", namespace)
        )
        (tmp_path / "template.xml").write_bytes(document)
        result = subprocess.run(
            [
                "xmlsec1",
                "--sign",
                "--privkey-pem",
                f"{tools.key},{tools.cert}",
                "--id-attr:Id",
                f"{namespace.decode()}:MessageHeader",
                "--output",
                str(tmp_path / "signed.xml"),
                str(tmp_path / "template.xml"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return (tmp_path / "signed.xml").read_bytes()

    (sig,) = validate_xml(sign_part(b"http://www.mic.gov.vn/TBT/QCVN_102_2016"), trust).signatures
    assert (sig.indication, sig.sub_indication) == (
        Indication.TOTAL_FAILED,
        SubIndication.FORMAT_FAILURE,
    )
    # Outside edXML, signing one element is legitimate XML-DSig, but it vouches for that
    # element only: not TOTAL-PASSED for the document, and the report says which element.
    other = validate_xml(sign_part(b"urn:example:other"), trust).signatures[0]
    assert other.integrity
    assert (other.indication, other.sub_indication) == (
        Indication.INDETERMINATE,
        SubIndication.SIG_CONSTRAINTS_FAILURE,
    )
    assert [s.kind for s in other.scope] == [ScopeKind.PARTIAL]
    assert "MessageHeader" in other.message_en and "MessageHeader" in other.message_vi


@pytest.mark.interop
def test_a_changed_document_whose_signature_value_is_also_broken_is_hash_failure(
    tools: PemSigner, trust: TrustContext, tmp_path: Path
) -> None:
    """EN 319 102-1 §5.2.7: the signed data's integrity is checked before the signature
    value, so a document changed after signing is reported as changed (as xmlsec1 and EU
    DSS do), whatever else is wrong with the signature."""
    signed = xmlsafe.parse(xmlsec_sign(tools, tmp_path, SHA256))
    value = signed.find(".//{http://www.w3.org/2000/09/xmldsig#}SignatureValue")
    value.text = "A" + value.text[1:] if value.text[0] != "A" else "B" + value.text[1:]
    broken = xmlsafe.parse(etree.tostring(signed))
    (sig,) = validate_xml(etree.tostring(broken), trust).signatures
    assert (sig.indication, sig.sub_indication) == (
        Indication.TOTAL_FAILED,
        SubIndication.SIG_CRYPTO_FAILURE,
    )
    tampered = etree.tostring(broken).replace(b"<PageAmount>2<", b"<PageAmount>3<")
    (sig,) = validate_xml(tampered, trust).signatures
    assert (sig.indication, sig.sub_indication) == (
        Indication.TOTAL_FAILED,
        SubIndication.HASH_FAILURE,
    )


def test_a_changed_signed_property_is_hash_failure(tools: PemSigner, trust: TrustContext) -> None:
    signed = sign_xml(EDXML, tools.identity, parent_xpath=HEADER)
    tampered = signed.replace(b"<xades:SigningTime>", b"<xades:SigningTime>1")
    (sig,) = validate_xml(tampered, trust).signatures
    assert sig.indication is Indication.TOTAL_FAILED


def test_revoked_signer_is_reported_with_the_date(sqlite_ctx: Context, trust: TrustContext) -> None:
    identity, serial = server_signer(sqlite_ctx)
    signed = sign_xml(EDXML, identity, parent_xpath=HEADER)
    with sqlite_ctx.db.session() as session:
        revoked_at = status.revoke(
            session, sqlite_ctx.authority, serial, RevocationReason.KEY_COMPROMISE, "test"
        ).revoked_at
    (sig,) = validate_xml(signed, trust).signatures
    assert (sig.indication, sig.sub_indication) == (
        Indication.INDETERMINATE,
        SubIndication.REVOKED_NO_POE,
    )
    vi, en = local_text(revoked_at)
    assert vi in sig.message_vi and en in sig.message_en

    late = sign_xml(
        EDXML,
        identity,
        level=Level.B_T,
        timestamper=InProcessTimeStamper(sqlite_ctx.tsa),
        parent_xpath=HEADER,
    )
    (sig,) = validate_xml(late, trust).signatures
    assert (sig.indication, sig.sub_indication) == (Indication.TOTAL_FAILED, SubIndication.REVOKED)


def test_foreign_signer_is_no_certificate_chain_found(trust: TrustContext) -> None:
    signed = sign_xml(EDXML, foreign_signer(), parent_xpath=HEADER)
    (sig,) = validate_xml(signed, trust).signatures
    assert sig.integrity
    assert (sig.indication, sig.sub_indication) == (
        Indication.INDETERMINATE,
        SubIndication.NO_CERTIFICATE_CHAIN_FOUND,
    )


def test_time_stamp_from_an_untrusted_tsa_is_reported(
    tools: PemSigner, trust: TrustContext
) -> None:
    signed = sign_xml(
        EDXML,
        tools.identity,
        level=Level.B_T,
        timestamper=InProcessTimeStamper(foreign_tsa()),
        parent_xpath=HEADER,
    )
    (sig,) = validate_xml(signed, trust).signatures
    assert sig.timestamp_time is not None and sig.timestamp_trusted is False
    assert sig.trusted_chain and sig.indication is Indication.INDETERMINATE


def test_document_without_signature_has_no_signatures(trust: TrustContext) -> None:
    report = validate_xml(EDXML, trust)
    assert report.signatures == [] and report.indication is Indication.TOTAL_FAILED


# -- hostile and broken XML ------------------------------------------------------------------

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE edXML [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016"><Subject>&secret;</Subject></edXML>"""
BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<lolz>&lol9;</lolz>"""


@pytest.mark.parametrize(
    "payload",
    [XXE, BILLION_LAUGHS, XXE.decode().encode("utf-16")],
    ids=["xxe", "billion-laughs", "xxe-utf16"],
)
def test_entities_are_refused_without_expansion(payload: bytes, trust: TrustContext) -> None:
    started = time.monotonic()
    for parse in (xmlsafe.parse, lambda data: validate_xml(data, trust)):
        with pytest.raises(InvalidInput) as raised:
            parse(payload)
        text = raised.value.message("en") + raised.value.message("vi")
        assert "DOCTYPE" in text
        assert "root:" not in text and "lollol" not in text
    assert time.monotonic() - started < 2


def test_entity_references_without_doctype_are_refused() -> None:
    with pytest.raises(InvalidInput):
        xmlsafe.parse(b"<a>&undefined;</a>")


@pytest.mark.parametrize(
    "payload",
    [b"", b"   ", b"not xml", b"<a><b></a>", b"<a>", b"\x00\x01\x02"],
    ids=["empty", "blank", "text", "mismatched", "unclosed", "binary"],
)
def test_malformed_xml_is_invalid_input(payload: bytes, trust: TrustContext) -> None:
    with pytest.raises(InvalidInput):
        validate_xml(payload, trust)


def test_more_signatures_than_kyso_checks_in_one_file_are_refused(trust: TrustContext) -> None:
    """Each signature costs a path validation: a file with more than MAX_SIGNATURES (as for
    CMS) is refused before any is checked, not validated for minutes."""
    empty = '<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"/>'
    many = EDXML.replace(
        b"</edXMLHeader>", (empty * (MAX_SIGNATURES + 1)).encode() + b"</edXMLHeader>"
    )
    with pytest.raises(InvalidInput, match=str(MAX_SIGNATURES)):
        validate_xml(many, trust)
    few = EDXML.replace(b"</edXMLHeader>", (empty * 2).encode() + b"</edXMLHeader>")
    assert len(validate_xml(few, trust).signatures) == 2


def test_large_edxml_attachment_is_signed_and_validated(
    tools: PemSigner, trust: TrustContext
) -> None:
    """edXML carries attachments base64 in one text node, over libxml2's 10 MB default."""
    big = b"A" * (12 * 1024 * 1024)
    document = EDXML.replace(b"<Content>JVBERi0xLjQ", b"<Content>" + big + b"JVBERi0xLjQ")
    root = xmlsafe.parse(document)
    assert len(root.findtext(".//{*}Attachment/{*}Content")) > 12 * 1024 * 1024
    signed = sign_xml(document, tools.identity, parent_xpath=HEADER)
    assert validate_xml(signed, trust).passed


def test_a_past_moment_validates_an_xml_signature_whose_certificate_has_since_expired() -> None:
    identity, _, root = _chain_of_three(ca_days=(-300, 300), signer_days=(-20, -2))
    signed = sign_xml(b"<van-ban><so>125/STTTT-VP</so></van-ban>", identity)
    trust = TrustContext([root])
    (now,) = validate_xml(signed, trust).signatures
    assert now.sub_indication is SubIndication.OUT_OF_BOUNDS_NO_POE
    then = dt.datetime.now(dt.UTC) - dt.timedelta(days=10)
    for report in (validate_xml(signed, trust, moment=then), verify(signed, trust, moment=then)):
        assert report.passed, report.signatures[0].message_en
        assert report.validated_at == then
    assert not verify(signed, trust).passed
