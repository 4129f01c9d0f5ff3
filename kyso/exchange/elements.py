"""The pieces edXML packages and status messages share: namespaced elements, the
``From``/``To`` agency blocks, ``ResponseFor``, dates as QCVN 102:2016 writes them, and the
refusal every reader raises (:class:`EdxmlError`)."""

from __future__ import annotations

from datetime import date, datetime

from lxml import etree

from kyso.errors import InvalidInput
from kyso.exchange.model import DATE_FORMAT, Organ, ResponseFor
from kyso.formats.xmldsig import EDXML_NS
from kyso.xmlsafe import parse as parse_xml

TIME_FORMAT = "%Y/%m/%d %H:%M:%S"


class EdxmlError(InvalidInput):
    code = "edxml_invalid"
    message_vi = "Gói tin edXML không hợp lệ."
    message_en = "The edXML package is not valid."


def problem(en: str, vi: str) -> EdxmlError:
    return EdxmlError(en, vi=vi)


def q(tag: str) -> str:
    return f"{{{EDXML_NS}}}{tag}"


def add(parent: etree._Element, tag: str, value: str | None = None) -> etree._Element:
    element = etree.SubElement(parent, q(tag))
    if value is not None:
        element.text = value
    return element


def write_organ(parent: etree._Element, tag: str, organ: Organ) -> None:
    node = add(parent, tag)
    add(node, "OrganId", organ.organ_id)
    add(node, "OrganizationInCharge", organ.in_charge)
    add(node, "OrganName", organ.name)
    add(node, "OrganAdd", organ.address)
    add(node, "Email", organ.email)
    add(node, "Telephone", organ.telephone)
    add(node, "Fax", organ.fax)
    add(node, "Website", organ.website)


def write_response_for(parent: etree._Element, answer: ResponseFor) -> None:
    node = add(parent, "ResponseFor")
    add(node, "OrganId", answer.organ_id)
    add(node, "Code", answer.code)
    add(node, "PromulgationDate", answer.promulgation_date.strftime(DATE_FORMAT))
    add(node, "DocumentId", answer.document_id)


def child(parent: etree._Element | None, *path: str) -> etree._Element | None:
    node = parent
    for tag in path:
        if node is None:
            return None
        node = node.find(q(tag))
    return node


def text(parent: etree._Element | None, *path: str) -> str:
    node = child(parent, *path)
    return (node.text or "").strip() if node is not None else ""


def required(parent: etree._Element | None, *path: str) -> str:
    value = text(parent, *path)
    if not value:
        where = "/".join(path)
        raise problem(f"{where} is required", f"thiếu {where}")
    return value


def parse_date(value: str, where: str) -> date:
    try:
        return datetime.strptime(value, DATE_FORMAT).date()
    except ValueError:
        raise problem(
            f"{where} is not a date yyyy/MM/dd: {value[:40]!r}",
            f"{where} không phải ngày dạng yyyy/MM/dd: {value[:40]!r}",
        ) from None


def parse_int(value: str, where: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except ValueError:
        number = low - 1
    if not low <= number <= high:
        raise problem(
            f"{where} must be a number from {low} to {high}",
            f"{where} phải là số từ {low} đến {high}",
        )
    return number


ORGAN_ID_MAX = 60


def read_organ(node: etree._Element) -> Organ:
    organ_id = required(node, "OrganId")
    if len(organ_id) > ORGAN_ID_MAX:
        raise problem(
            f"OrganId is longer than {ORGAN_ID_MAX} characters",
            f"mã định danh (OrganId) dài quá {ORGAN_ID_MAX} ký tự",
        )
    return Organ(
        organ_id=organ_id,
        name=text(node, "OrganName"),
        in_charge=text(node, "OrganizationInCharge"),
        address=text(node, "OrganAdd"),
        email=text(node, "Email"),
        telephone=text(node, "Telephone"),
        fax=text(node, "Fax"),
        website=text(node, "Website"),
    )


def read_response_for(node: etree._Element | None) -> ResponseFor | None:
    if node is None:
        return None
    return ResponseFor(
        organ_id=required(node, "OrganId"),
        code=text(node, "Code"),
        promulgation_date=parse_date(required(node, "PromulgationDate"), "PromulgationDate"),
        document_id=required(node, "DocumentId"),
    )


def parse_timestamp(value: str, where: str) -> datetime:
    for pattern in (TIME_FORMAT, "%Y/%m/%d %H:%M", DATE_FORMAT):
        try:
            return datetime.strptime(value, pattern)
        except ValueError:
            continue
    raise problem(
        f"{where} is not a time yyyy/MM/dd HH:mm:ss: {value[:40]!r}",
        f"{where} không phải thời điểm dạng yyyy/MM/dd HH:mm:ss: {value[:40]!r}",
    )


def root_of(data: bytes) -> etree._Element:
    """The ``edXML`` root of ``data`` (safely parsed), or :class:`EdxmlError`."""
    root = parse_xml(data)
    if root.tag != q("edXML"):
        raise problem(
            f"the root element is not edXML in {EDXML_NS}",
            f"phần tử gốc không phải edXML thuộc {EDXML_NS}",
        )
    return root
