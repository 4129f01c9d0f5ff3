"""XML-DSig and XAdES as kyso writes and reads them: the namespaces, the canonicalization
methods, and the canonicalization itself (:class:`SafeC14n`).

Signing (:mod:`kyso.signing.xades`) and validation (:mod:`kyso.validation.xml`) must compute
the very same canonical bytes, or a signature kyso makes would not verify in kyso; both use
this module, through :func:`kyso.xmlsafe.c14n`.
"""

from __future__ import annotations

import re

from lxml import etree
from signxml.algorithms import CanonicalizationMethod

from kyso import xmlsafe

__all__ = [
    "C14N",
    "DS_NS",
    "EDXML_NS",
    "EXC_C14N",
    "FILTER2",
    "SUBTRACT_SIGNATURES",
    "XADES_NS",
    "SafeC14n",
    "detach",
    "is_id",
    "outermost_signatures",
    "subtracts_every_signature",
]

DS_NS = "http://www.w3.org/2000/09/xmldsig#"
XADES_NS = "http://uri.etsi.org/01903/v1.3.2#"
EDXML_NS = "http://www.mic.gov.vn/TBT/QCVN_102_2016"
EXC_C14N = CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0
C14N = CanonicalizationMethod.CANONICAL_XML_1_0


class SafeC14n:
    """signxml processor mixin: canonicalize through :func:`kyso.xmlsafe.c14n`, which works
    around libxml2 2.14's inclusive-c14n bug on elements below the root."""

    def _c14n(
        self,
        nodes: etree._Element | list[etree._Element],
        algorithm: CanonicalizationMethod,
        inclusive_ns_prefixes: list[str] | None = None,
    ) -> bytes:
        uri = CanonicalizationMethod(algorithm).value
        exclusive = uri.startswith(EXC_C14N.value)
        with_comments = uri.endswith("#WithComments")
        return b"".join(
            xmlsafe.c14n(
                node,
                exclusive=exclusive,
                with_comments=with_comments,
                inclusive_ns_prefixes=inclusive_ns_prefixes,
            )
            for node in (nodes if isinstance(nodes, list) else [nodes])
        )


#: XPath Filter 2.0 (W3C REC-xmldsig-filter2-20021108, §3).
FILTER2 = "http://www.w3.org/2002/06/xmldsig-filter2"
#: What kyso subtracts with it, as EU DSS writes it for every enveloped signature: every
#: ds:Signature, so that signatures added later (parallel signatures) leave this one intact.
SUBTRACT_SIGNATURES = "/descendant::ds:Signature"

_EVERY_SIGNATURE = re.compile(r"(?:/descendant::|//)([A-Za-z_][\w.\-]*):Signature")


def subtracts_every_signature(transform: etree._Element) -> bool:
    """Whether the ds:Transform ``transform`` is exactly the XPath Filter 2.0 that subtracts
    every ds:Signature from its input: one ``XPath`` child in the filter's namespace with
    ``Filter="subtract"`` and nothing else, whose expression is ``/descendant::P:Signature``
    or ``//P:Signature`` with P bound, on that element, to the XML-DSig namespace.

    This is the one XPath kyso evaluates (by removing the elements, not by running XPath):
    any other expression is a program the signer wrote that decides what is signed."""
    if transform.get("Algorithm") != FILTER2 or (transform.text or "").strip():
        return False
    children = list(transform)
    if len(children) != 1 or children[0].tag != f"{{{FILTER2}}}XPath":
        return False
    xpath = children[0]
    if dict(xpath.attrib) != {"Filter": "subtract"} or len(xpath) or (xpath.tail or "").strip():
        return False
    match = _EVERY_SIGNATURE.fullmatch((xpath.text or "").strip())
    return match is not None and xpath.nsmap.get(match[1]) == DS_NS


def is_id(attribute: str) -> bool:
    """Whether an attribute (by its lxml name) is an ID to a same-document reference
    (``URI="#x"``): its local name is ``id`` in any case and any namespace (``Id``, ``ID``,
    ``xml:id``, ``wsu:Id``). Signer and validator must agree on it: a validator that looked
    the names up one after the other could be shown a forged element claiming the id."""
    return etree.QName(attribute).localname.lower() == "id"


def outermost_signatures(root: etree._Element) -> list[etree._Element]:
    """The ds:Signature elements of ``root`` (itself included) not inside another one: the
    signatures of a document, each with its countersignatures and objects inside it."""
    tag = f"{{{DS_NS}}}Signature"
    return [s for s in root.iter(tag) if not any(a.tag == tag for a in s.iterancestors())]


def detach(element: etree._Element) -> None:
    """Remove ``element`` with its subtree, keeping the text after it (its lxml tail, which
    is not part of it): what the enveloped-signature transform and the filter above remove."""
    parent = element.getparent()
    if parent is None:
        return
    if element.tail:
        previous = element.getprevious()
        if previous is not None:
            previous.tail = (previous.tail or "") + element.tail
        else:
            parent.text = (parent.text or "") + element.tail
    parent.remove(element)
