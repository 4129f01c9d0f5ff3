"""What an edXML package (QCVN 102:2016) says, as plain values: the agencies, the
document's header, the trace of who handled it, and the attachments."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import date, datetime

SUBJECT_MAX = 500
DATE_FORMAT = "%Y/%m/%d"


class BusinessDocType(enum.IntEnum):
    """``TraceHeader/Bussiness/BussinessDocType`` (spelled so by the standard)."""

    NEW = 0
    RECALL = 1
    UPDATE = 2
    REPLACE = 3


class Priority(enum.IntEnum):
    NORMAL = 0
    URGENT = 1  # khẩn
    VERY_URGENT = 2  # thượng khẩn
    EXPRESS = 3  # hỏa tốc
    TIMED_EXPRESS = 4  # hỏa tốc hẹn giờ


@dataclass(frozen=True)
class Organ:
    """An agency as ``From`` and ``To`` name it; ``organ_id`` is its identifier code
    (mã định danh, e.g. ``000.00.01.H05``), which routes the message."""

    organ_id: str
    name: str
    in_charge: str = ""  # OrganizationInCharge: the body it reports to
    address: str = ""
    email: str = ""
    telephone: str = ""
    fax: str = ""
    website: str = ""


@dataclass(frozen=True)
class SignerInfo:
    competence: str  # "KT. CHỦ TỊCH", "TM. ỦY BAN NHÂN DÂN"
    position: str
    full_name: str


@dataclass(frozen=True)
class ResponseFor:
    """The document a reply, or a status message, answers."""

    organ_id: str
    code: str  # number/notation, "125/STTTT-VP"
    promulgation_date: date
    document_id: str


@dataclass(frozen=True)
class Trace:
    """One ``TraceHeader``: an agency that handled the message, and what the message is."""

    organ_id: str
    timestamp: datetime
    business: BusinessDocType = BusinessDocType.NEW
    reason: str = ""  # why a recall, update or replacement


@dataclass(frozen=True)
class Attachment:
    content_id: str  # "cid:…", as the manifest names it
    name: str
    content_type: str
    content: bytes = field(repr=False)
    description: str = ""


@dataclass(frozen=True)
class Header:
    """``MessageHeader``: what the document is (its number, date, type, subject, signer)."""

    sender: Organ
    recipients: tuple[Organ, ...]
    code_number: str  # "125"
    code_notation: str  # "STTTT-VP"
    place: str
    promulgation_date: date
    type_code: str  # DocumentType/Type
    type_detail: str  # DocumentType/TypeDetail
    type_name: str  # "Công văn", "Quyết định"
    subject: str
    content: str = ""
    signer: SignerInfo | None = None
    due_date: date | None = None
    priority: Priority = Priority.NORMAL
    page_amount: int | None = None
    steering_type: int = 1
    response_for: ResponseFor | None = None

    @property
    def code(self) -> str:
        return f"{self.code_number}/{self.code_notation}"

    @property
    def document_id(self) -> str:
        """``OrganId,yyyy/MM/dd,number/notation``: the document's identity everywhere."""
        return f"{self.sender.organ_id},{self.promulgation_date.strftime(DATE_FORMAT)},{self.code}"


@dataclass(frozen=True)
class Package:
    header: Header
    traces: tuple[Trace, ...]
    attachments: tuple[Attachment, ...]

    @property
    def business(self) -> BusinessDocType:
        """What the last handler says the message is (new, recall, update, replace)."""
        return self.traces[-1].business if self.traces else BusinessDocType.NEW
