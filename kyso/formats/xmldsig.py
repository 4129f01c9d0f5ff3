"""XML-DSig and XAdES as kyso writes and reads them: the namespaces, the canonicalization
methods, and the canonicalization itself (:class:`SafeC14n`).

Signing (:mod:`kyso.signing.xades`) and validation (:mod:`kyso.validation.xml`) must compute
the very same canonical bytes, or a signature kyso makes would not verify in kyso; both use
this module, through :func:`kyso.xmlsafe.c14n`.
"""

from __future__ import annotations

from lxml import etree
from signxml.algorithms import CanonicalizationMethod

from kyso import xmlsafe

__all__ = ["C14N", "DS_NS", "EDXML_NS", "EXC_C14N", "XADES_NS", "SafeC14n"]

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
