"""edXML packages (QCVN 102:2016/BTTTT): the message one agency sends another.

Layout (``../shared/VIETNAM.md``)::

    edXML                               xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016"
      edXMLEnvelope
        edXMLHeader
          MessageHeader                 From, To+, DocumentId, Code, PromulgationInfo, ...
          TraceHeaderList/TraceHeader+  who handled it, and whether it is new or a recall
          Signature                     enveloped XML-DSig, added by kyso.signing.xades
        edXMLBody/edXMLManifest         one Reference per attachment
      AttachmentEncoded/Attachment*     base64 content, matched to the manifest by ContentId

:func:`build` writes a :class:`Package` (unsigned: the sending unit signs it next, with the
signature under ``edXMLHeader``); :func:`parse` reads one from anyone, through
:mod:`kyso.xmlsafe` (no DTD, no entities), checking what the standard's implementations
refuse: a subject that is missing or over 500 characters, no recipient or the same one
twice, manifest references without their attachment or the other way round, dates that are
not ``yyyy/MM/dd``. Every refusal is an :class:`EdxmlError` saying, in Vietnamese and
English, which element is wrong. Unknown elements are ignored (senders add their own).
"""

from __future__ import annotations

import base64
import binascii

from lxml import etree

from kyso.exchange.elements import (
    DATE_FORMAT,
    TIME_FORMAT,
    EdxmlError,
    add,
    child,
    parse_date,
    parse_int,
    parse_timestamp,
    problem,
    q,
    read_organ,
    read_response_for,
    required,
    root_of,
    text,
    write_organ,
    write_response_for,
)
from kyso.exchange.model import (
    SUBJECT_MAX,
    Attachment,
    BusinessDocType,
    Header,
    Package,
    Priority,
    SignerInfo,
    Trace,
)
from kyso.formats.xmldsig import EDXML_NS

__all__ = ["EdxmlError", "build", "check", "parse"]


# -- writing ------------------------------------------------------------------------------------
def check(package: Package) -> None:
    """What :func:`parse` would refuse, refused before anything is written or sent."""
    header = package.header
    if not header.subject.strip():
        raise problem("Subject is required", "thiếu trích yếu (Subject)")
    if len(header.subject) > SUBJECT_MAX:
        raise problem(
            f"Subject is longer than {SUBJECT_MAX} characters",
            f"trích yếu (Subject) dài quá {SUBJECT_MAX} ký tự",
        )
    if not header.recipients:
        raise problem("at least one recipient (To) is required", "cần ít nhất một nơi nhận (To)")
    seen: set[str] = set()
    for organ in (header.sender, *header.recipients):
        if not organ.organ_id.strip():
            raise problem("an agency without OrganId", "có cơ quan thiếu mã định danh (OrganId)")
    for organ in header.recipients:
        if organ.organ_id in seen:
            raise problem(
                f"recipient {organ.organ_id} is named twice",
                f"nơi nhận {organ.organ_id} bị lặp",
            )
        seen.add(organ.organ_id)
    ids = [a.content_id for a in package.attachments]
    if len(set(ids)) != len(ids):
        raise problem("two attachments share a ContentId", "hai tệp đính kèm trùng ContentId")


def build(package: Package) -> bytes:
    """The unsigned edXML document (UTF-8), ready for the sending unit's signature under
    ``edXMLHeader`` (``kyso.signing.xades.sign_xml(..., parent_xpath="//edxml:edXMLHeader")``)."""
    check(package)
    header = package.header
    root = etree.Element(q("edXML"), nsmap={None: EDXML_NS})
    envelope = add(root, "edXMLEnvelope")
    head = add(envelope, "edXMLHeader")
    message = add(head, "MessageHeader")
    write_organ(message, "From", header.sender)
    for organ in header.recipients:
        write_organ(message, "To", organ)
    add(message, "DocumentId", header.document_id)
    code = add(message, "Code")
    add(code, "CodeNumber", header.code_number)
    add(code, "CodeNotation", header.code_notation)
    info = add(message, "PromulgationInfo")
    add(info, "Place", header.place)
    add(info, "PromulgationDate", header.promulgation_date.strftime(DATE_FORMAT))
    kind = add(message, "DocumentType")
    add(kind, "Type", header.type_code)
    add(kind, "TypeDetail", header.type_detail)
    add(kind, "TypeName", header.type_name)
    add(message, "Subject", header.subject)
    add(message, "Content", header.content)
    if header.signer is not None:
        signer = add(message, "SignerInfo")
        add(signer, "Competence", header.signer.competence)
        add(signer, "Position", header.signer.position)
        add(signer, "FullName", header.signer.full_name)
    if header.due_date is not None:
        add(message, "DueDate", header.due_date.strftime(DATE_FORMAT))
    other = add(message, "OtherInfo")
    add(other, "Priority", str(int(header.priority)))
    if header.page_amount is not None:
        add(other, "PageAmount", str(header.page_amount))
    add(message, "SteeringType", str(header.steering_type))
    if header.response_for is not None:
        write_response_for(message, header.response_for)
    traces = add(head, "TraceHeaderList")
    for trace in package.traces:
        node = add(traces, "TraceHeader")
        add(node, "OrganId", trace.organ_id)
        add(node, "Timestamp", trace.timestamp.strftime(TIME_FORMAT))
        if trace.business is not BusinessDocType.NEW or trace.reason:
            business = add(node, "Bussiness")
            add(business, "BussinessDocType", str(int(trace.business)))
            add(business, "BussinessDocReason", trace.reason)
    body = add(envelope, "edXMLBody")
    manifest = add(body, "edXMLManifest")
    manifest.set("version", "1.0")
    for a in package.attachments:
        ref = add(manifest, "Reference")
        add(ref, "ContentId", a.content_id)
        add(ref, "ContentType", a.content_type)
        add(ref, "Description", a.description)
        add(ref, "AttachmentName", a.name)
    encoded = add(root, "AttachmentEncoded")
    for a in package.attachments:
        node = add(encoded, "Attachment")
        add(node, "ContentId", a.content_id)
        add(node, "AttachmentName", a.name)
        add(node, "Description", a.description)
        add(node, "ContentType", a.content_type)
        add(node, "Content", base64.b64encode(a.content).decode("ascii"))
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


# -- reading ------------------------------------------------------------------------------------
def _header(message: etree._Element) -> Header:
    sender = child(message, "From")
    if sender is None:
        raise problem("MessageHeader/From is required", "thiếu cơ quan gửi (From)")
    subject = required(message, "Subject")
    type_node = child(message, "DocumentType")
    due = text(message, "DueDate")
    priority = text(message, "OtherInfo", "Priority")
    pages = text(message, "OtherInfo", "PageAmount")
    steering = text(message, "SteeringType")
    signer = child(message, "SignerInfo")
    return Header(
        sender=read_organ(sender),
        recipients=tuple(read_organ(n) for n in message.findall(q("To"))),
        code_number=required(message, "Code", "CodeNumber"),
        code_notation=text(message, "Code", "CodeNotation"),
        place=text(message, "PromulgationInfo", "Place"),
        promulgation_date=parse_date(
            required(message, "PromulgationInfo", "PromulgationDate"), "PromulgationDate"
        ),
        type_code=text(type_node, "Type"),
        type_detail=text(type_node, "TypeDetail"),
        type_name=text(type_node, "TypeName"),
        subject=subject,
        content=text(message, "Content"),
        signer=SignerInfo(
            text(signer, "Competence"), text(signer, "Position"), text(signer, "FullName")
        )
        if signer is not None
        else None,
        due_date=parse_date(due, "DueDate") if due else None,
        priority=Priority(parse_int(priority, "Priority", 0, 4)) if priority else Priority.NORMAL,
        page_amount=parse_int(pages, "PageAmount", 0, 100_000) if pages else None,
        steering_type=parse_int(steering, "SteeringType", 1, 3) if steering else 1,
        response_for=read_response_for(child(message, "ResponseFor")),
    )


def _traces(head: etree._Element) -> tuple[Trace, ...]:
    found = []
    for node in head.findall(f"{q('TraceHeaderList')}/{q('TraceHeader')}"):
        kind = text(node, "Bussiness", "BussinessDocType")
        found.append(
            Trace(
                organ_id=required(node, "OrganId"),
                timestamp=parse_timestamp(required(node, "Timestamp"), "TraceHeader/Timestamp"),
                business=BusinessDocType(parse_int(kind, "BussinessDocType", 0, 3))
                if kind
                else BusinessDocType.NEW,
                reason=text(node, "Bussiness", "BussinessDocReason"),
            )
        )
    return tuple(found)


def _attachments(root: etree._Element, envelope: etree._Element) -> tuple[Attachment, ...]:
    manifest = child(envelope, "edXMLBody", "edXMLManifest")
    listed = {
        required(ref, "ContentId"): ref
        for ref in (manifest.findall(q("Reference")) if manifest is not None else [])
    }
    found: dict[str, Attachment] = {}
    for node in root.findall(f"{q('AttachmentEncoded')}/{q('Attachment')}"):
        content_id = required(node, "ContentId")
        if content_id in found:
            raise problem(
                f"attachment {content_id} appears twice", f"tệp đính kèm {content_id} bị lặp"
            )
        if content_id not in listed:
            raise problem(
                f"attachment {content_id} is not in the manifest",
                f"tệp đính kèm {content_id} không có trong danh mục (edXMLManifest)",
            )
        raw = "".join((text(node, "Content")).split())
        try:
            content = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise problem(
                f"attachment {content_id} is not valid base64",
                f"nội dung tệp đính kèm {content_id} không đúng mã base64",
            ) from None
        ref = listed[content_id]
        found[content_id] = Attachment(
            content_id=content_id,
            name=text(node, "AttachmentName") or text(ref, "AttachmentName"),
            content_type=text(node, "ContentType") or text(ref, "ContentType"),
            content=content,
            description=text(node, "Description") or text(ref, "Description"),
        )
    missing = [c for c in listed if c not in found]
    if missing:
        raise problem(
            f"the manifest lists {missing[0]} but no attachment carries it",
            f"danh mục liệt kê {missing[0]} nhưng không có tệp đính kèm đó",
        )
    return tuple(found[c] for c in listed)


def parse(data: bytes) -> Package:
    """The package in ``data``; :class:`EdxmlError` (or xmlsafe's InvalidInput) otherwise.
    Signatures are not judged here: kyso.validation does that, on the same bytes."""
    root = root_of(data)
    envelope = child(root, "edXMLEnvelope")
    head = child(envelope, "edXMLHeader")
    message = child(head, "MessageHeader")
    if envelope is None or head is None or message is None:
        raise problem(
            "edXMLEnvelope/edXMLHeader/MessageHeader is required",
            "thiếu edXMLEnvelope/edXMLHeader/MessageHeader",
        )
    package = Package(_header(message), _traces(head), _attachments(root, envelope))
    check(package)
    return package
