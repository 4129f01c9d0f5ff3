"""Status messages (QCVN 102:2016): what the receiving agency says about a document.

A status is an edXML document whose ``edXMLHeader`` holds one ``Status`` element, signed
like a package by the agency that sends it::

    edXML/edXMLEnvelope/edXMLHeader/Status
      ResponseFor   OrganId, Code, PromulgationDate, DocumentId of the document answered
      From          the agency reporting
      StatusCode    01 … 16 (:class:`StatusCode`)
      Description   the reason, for a refusal
      Timestamp     yyyy/MM/dd HH:mm:ss
      StaffInfo     Department, Staff, Mobile, Email of who handled it
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from lxml import etree

from kyso.exchange.elements import (
    TIME_FORMAT,
    add,
    child,
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
from kyso.exchange.model import Organ, ResponseFor
from kyso.formats.xmldsig import EDXML_NS


class StatusCode(enum.StrEnum):
    ARRIVED = "01"  # đã đến
    REFUSED = "02"  # từ chối tiếp nhận
    RECEIVED = "03"  # đã tiếp nhận
    WAITING_ASSIGNMENT = "04"  # chờ phân công
    ASSIGNED = "05"  # đã phân công / đang xử lý
    COMPLETED = "06"  # hoàn thành
    RECALLED = "13"  # đã thu hồi
    RECALL_ACCEPTED = "15"  # đồng ý thu hồi / cập nhật
    RECALL_REFUSED = "16"  # từ chối thu hồi / cập nhật

    @property
    def label_vi(self) -> str:
        return _LABELS[self][0]

    @property
    def label_en(self) -> str:
        return _LABELS[self][1]


_LABELS = {
    StatusCode.ARRIVED: ("Đã đến", "Arrived"),
    StatusCode.REFUSED: ("Từ chối tiếp nhận", "Refused"),
    StatusCode.RECEIVED: ("Đã tiếp nhận", "Received"),
    StatusCode.WAITING_ASSIGNMENT: ("Chờ phân công xử lý", "Waiting for assignment"),
    StatusCode.ASSIGNED: ("Đang xử lý", "Assigned, in progress"),
    StatusCode.COMPLETED: ("Hoàn thành", "Completed"),
    StatusCode.RECALLED: ("Đã thu hồi", "Recalled"),
    StatusCode.RECALL_ACCEPTED: ("Đồng ý thu hồi/cập nhật", "Recall or update accepted"),
    StatusCode.RECALL_REFUSED: ("Từ chối thu hồi/cập nhật", "Recall or update refused"),
}


@dataclass(frozen=True)
class StaffInfo:
    department: str = ""
    staff: str = ""
    mobile: str = ""
    email: str = ""


@dataclass(frozen=True)
class Status:
    response_for: ResponseFor
    sender: Organ
    code: StatusCode
    timestamp: datetime
    description: str = ""
    staff: StaffInfo | None = None


def build(status: Status) -> bytes:
    """The unsigned status message; the reporting unit signs it under ``edXMLHeader``."""
    root = etree.Element(q("edXML"), nsmap={None: EDXML_NS})
    head = add(add(root, "edXMLEnvelope"), "edXMLHeader")
    node = add(head, "Status")
    write_response_for(node, status.response_for)
    write_organ(node, "From", status.sender)
    add(node, "StatusCode", status.code.value)
    add(node, "Description", status.description)
    add(node, "Timestamp", status.timestamp.strftime(TIME_FORMAT))
    if status.staff is not None:
        staff = add(node, "StaffInfo")
        add(staff, "Department", status.staff.department)
        add(staff, "Staff", status.staff.staff)
        add(staff, "Mobile", status.staff.mobile)
        add(staff, "Email", status.staff.email)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def is_status(data: bytes) -> bool:
    """Whether ``data`` is a status message rather than a package (both are edXML)."""
    return child(root_of(data), "edXMLEnvelope", "edXMLHeader", "Status") is not None


def parse(data: bytes) -> Status:
    node = child(root_of(data), "edXMLEnvelope", "edXMLHeader", "Status")
    if node is None:
        raise problem("edXMLHeader/Status is required", "thiếu edXMLHeader/Status")
    answer = read_response_for(child(node, "ResponseFor"))
    sender = child(node, "From")
    if answer is None or sender is None:
        raise problem(
            "a status needs ResponseFor and From", "thông điệp trạng thái cần ResponseFor và From"
        )
    code = required(node, "StatusCode")
    try:
        status_code = StatusCode(code)
    except ValueError:
        raise problem(
            f"unknown StatusCode {code[:10]!r}", f"mã trạng thái không hợp lệ: {code[:10]!r}"
        ) from None
    staff = child(node, "StaffInfo")
    return Status(
        response_for=answer,
        sender=read_organ(sender),
        code=status_code,
        timestamp=parse_timestamp(required(node, "Timestamp"), "Status/Timestamp"),
        description=text(node, "Description"),
        staff=StaffInfo(
            text(staff, "Department"),
            text(staff, "Staff"),
            text(staff, "Mobile"),
            text(staff, "Email"),
        )
        if staff is not None
        else None,
    )
