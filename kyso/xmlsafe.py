"""Parse untrusted XML without letting it reach files, the network or unbounded memory.

Every XML kyso reads (edXML messages, XAdES signatures, anything uploaded) goes through
:func:`parse`. A document type declaration is refused before the parser sees it: no
legitimate edXML (QCVN 102:2016) or XML-DSig document needs one, and it is the only way in
for external entities (``file:///etc/passwd``, XXE) and entity expansion bombs ("billion
laughs"). The parser itself is also configured defensively (no entity substitution, no DTD
loading, no network), in case the prolog check were ever bypassed.

Large documents are allowed (``huge_tree``): edXML carries attachments base64-encoded in
one text node, easily over libxml2's 10 MB default; with DTDs refused the relaxed limits
cannot be abused by entities.

:func:`c14n` canonicalizes a subtree correctly despite a libxml2 2.14 bug (see there); XML
signing and validation use it instead of lxml's ``method="c14n"``.
"""

from __future__ import annotations

import re

from lxml import etree

from kyso.errors import InvalidInput

__all__ = ["c14n", "parse", "parser"]

# "<!DOCTYPE" in the encodings an XML prolog may use (UTF-8/ASCII, UTF-16 LE/BE).
_DOCTYPE_PATTERNS = [
    re.compile(rb"<!\s*DOCTYPE", re.IGNORECASE),
    re.compile("<!DOCTYPE".encode("utf-16-le"), re.IGNORECASE),
    re.compile("<!DOCTYPE".encode("utf-16-be"), re.IGNORECASE),
]
_ENTITY_PATTERNS = [
    re.compile(rb"<!\s*ENTITY", re.IGNORECASE),
    re.compile("<!ENTITY".encode("utf-16-le"), re.IGNORECASE),
    re.compile("<!ENTITY".encode("utf-16-be"), re.IGNORECASE),
]


def parser() -> etree.XMLParser:
    """A new lxml parser with every external or expanding feature off (one per call: lxml
    parsers are not thread-safe)."""
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=True,
        remove_blank_text=False,
        collect_ids=True,
    )


def _refuse(detail: str, vi: str) -> InvalidInput:
    return InvalidInput(detail, vi=vi)


def parse(data: bytes) -> etree._Element:
    """The root element of ``data``; ``InvalidInput`` for anything but plain well-formed XML.

    Refused: a DOCTYPE or entity declaration (external entities, entity bombs), XML that is
    not well-formed, empty input. Nothing is fetched, no entity is expanded.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise _refuse("XML must be given as bytes", vi="dữ liệu XML phải ở dạng byte")
    data = bytes(data)
    if not data.strip():
        raise _refuse("the XML document is empty", vi="tài liệu XML rỗng")
    for pattern in _DOCTYPE_PATTERNS:
        if pattern.search(data):
            raise _refuse(
                "XML with a DOCTYPE (document type declaration) is not accepted: "
                "it could load external files or expand entities without limit",
                vi="không chấp nhận XML có khai báo DOCTYPE (có thể đọc tệp bên ngoài "
                "hoặc khai triển thực thể vô hạn)",
            )
    for pattern in _ENTITY_PATTERNS:
        if pattern.search(data):
            raise _refuse(
                "XML entity declarations are not accepted",
                vi="không chấp nhận khai báo thực thể (ENTITY) trong XML",
            )
    try:
        root = etree.fromstring(data, parser=parser())
    except etree.XMLSyntaxError as exc:
        message = str(exc.msg or exc).strip()
        raise _refuse(
            f"not well-formed XML: {message}", vi=f"XML không đúng cú pháp: {message}"
        ) from exc
    except ValueError as exc:  # e.g. an encoding declaration lxml cannot honour
        raise _refuse(f"XML cannot be read: {exc}", vi=f"không đọc được XML: {exc}") from exc
    if root is None:
        raise _refuse("the XML document has no root element", vi="XML không có phần tử gốc")
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise _refuse(
            "XML with a DOCTYPE is not accepted", vi="không chấp nhận XML có khai báo DOCTYPE"
        )
    for node in root.iter(etree.Entity):
        raise _refuse(
            f"XML entity reference &{node.name}; is not accepted",
            vi=f"không chấp nhận tham chiếu thực thể &{node.name}; trong XML",
        )
    return root


_XML_NS = "http://www.w3.org/XML/1998/namespace"
_INHERITED = (f"{{{_XML_NS}}}lang", f"{{{_XML_NS}}}space")


def c14n(
    element: etree._Element,
    *,
    exclusive: bool = False,
    with_comments: bool = False,
    inclusive_ns_prefixes: list[str] | None = None,
) -> bytes:
    """Canonical XML 1.0 (inclusive or exclusive) of ``element`` and its subtree.

    Inclusive c14n of an element below the root is done on a standalone copy: libxml2
    2.14 (lxml 6) writes a spurious ``xmlns=""`` on descendants of such an element when a
    default namespace is declared above it, e.g. .NET's ``<Signature xmlns="…xmldsig#">``,
    so SignedInfo would not verify. The copy is the element serialized and parsed again:
    lxml declares every in-scope namespace on the serialized element and keeps each
    descendant's own declarations, even one only text uses (the ``ds`` of an XPath Filter
    2.0 expression; a deep copy appended elsewhere would drop it); the copy's root also gets
    the inherited ``xml:lang``/``xml:space``, as c14n 1.0 renders them on the apex (§2.4),
    and c14n of a document root is unaffected by the bug.
    """
    if exclusive or element.getparent() is None:
        return etree.tostring(
            element,
            method="c14n",
            exclusive=exclusive,
            with_comments=with_comments,
            inclusive_ns_prefixes=inclusive_ns_prefixes,
        )
    apex = etree.fromstring(etree.tostring(element, with_tail=False), parser=parser())
    for name in _INHERITED:
        if element.get(name) is None:
            holder = next((a for a in element.iterancestors() if a.get(name) is not None), None)
            if holder is not None:
                apex.set(name, holder.get(name))  # type: ignore[arg-type]
    return etree.tostring(apex, method="c14n", with_comments=with_comments)
