"""edXML packages and status messages (QCVN 102:2016): read what others send, write what
they read, signed by the sending unit so that xmlsec1 and kyso's validation agree."""

from __future__ import annotations

import base64
import dataclasses
from datetime import date, datetime
from pathlib import Path

import pytest
from conftest import Instance
from fixtures.pdf import samples
from signing.test_cades import issue_signer, write_chain
from signing.test_xades import HEADER, xmlsec_verify

from kyso.errors import InvalidInput
from kyso.exchange import edxml, status
from kyso.exchange.model import (
    Attachment,
    BusinessDocType,
    Header,
    Organ,
    Package,
    Priority,
    ResponseFor,
    SignerInfo,
    Trace,
)
from kyso.signing.identity import SignerIdentity
from kyso.signing.xades import sign_xml
from kyso.trust import trust_context
from kyso.validation.xml import validate_xml

SAMPLE = (Path(__file__).parent.parent / "fixtures" / "xml" / "edxml-sample.xml").read_bytes()
SENDER = Organ(
    "000.00.01.H05",
    "Sở Khoa học và Công nghệ tỉnh Thái Nguyên",
    in_charge="UBND tỉnh Thái Nguyên",
    email="sokhcn@thainguyen.gov.vn",
)
TO = Organ("000.00.31.H05", "UBND xã Chợ Rã")
PDF = samples.official_document()


def package(**changes: object) -> Package:
    header = Header(
        sender=SENDER,
        recipients=(TO, Organ("000.00.32.H05", "UBND xã Ba Bể")),
        code_number="15",
        code_notation="QĐ-SKHCN",
        place="Thái Nguyên",
        promulgation_date=date(2026, 12, 4),
        type_code="1",
        type_detail="2",
        type_name="Quyết định",
        subject="Quyết định ban hành Quy chế sử dụng chữ ký số chuyên dùng",
        content="Ban hành kèm theo Quyết định này Quy chế …",
        signer=SignerInfo("KT. GIÁM ĐỐC", "PHÓ GIÁM ĐỐC", "Nguyễn Thị Hồng Nhung"),
        due_date=date(2026, 12, 31),
        priority=Priority.URGENT,
        page_amount=3,
    )
    header = dataclasses.replace(header, **changes)  # type: ignore[arg-type]
    return Package(
        header=header,
        traces=(Trace(SENDER.organ_id, datetime(2026, 12, 4, 9, 15, 0)),),
        attachments=(
            Attachment(
                "cid:qd-15",
                "15-QD-SKHCN.pdf",
                "application/pdf",
                PDF,
                "Quyết định số 15/QĐ-SKHCN",
            ),
        ),
    )


@pytest.fixture(scope="module")
def unit(sqlite_instance: Instance) -> SignerIdentity:
    return issue_signer(
        sqlite_instance.ctx, subject="CN=Sở Khoa học và Công nghệ,O=UBND tỉnh Thái Nguyên,C=VN"
    )


def test_the_sample_from_another_system_reads_with_every_field() -> None:
    found = edxml.parse(SAMPLE)
    header = found.header
    assert header.sender.organ_id == "000.00.01.H05"
    assert header.sender.name == "Sở Thông tin và Truyền thông tỉnh Bắc Kạn"
    assert [o.organ_id for o in header.recipients] == ["000.00.00.H05"]
    assert (header.code, header.promulgation_date) == ("125/STTTT-VP", date(2025, 3, 14))
    assert header.document_id == "000.00.01.H05,2025/03/14,125/STTTT-VP"
    assert header.type_name == "Công văn" and header.page_amount == 2
    assert header.signer == SignerInfo("KT. GIÁM ĐỐC", "PHÓ GIÁM ĐỐC", "Nguyễn Thị Hồng Nhung")
    assert found.traces[0].timestamp == datetime(2025, 3, 14, 9, 15)
    assert found.business is BusinessDocType.NEW
    (attachment,) = found.attachments
    assert attachment.content.startswith(b"%PDF-1.4") and attachment.name == "125-STTTT-VP.pdf"


def test_what_kyso_writes_reads_back_the_same() -> None:
    made = package()
    assert edxml.parse(edxml.build(made)) == made
    recall = dataclasses.replace(
        made,
        traces=(
            *made.traces,
            Trace(SENDER.organ_id, datetime(2026, 12, 5, 8, 0), BusinessDocType.RECALL, "Sai số"),
        ),
    )
    again = edxml.parse(edxml.build(recall))
    assert again.business is BusinessDocType.RECALL and again.traces[-1].reason == "Sai số"


@pytest.mark.interop
def test_a_package_signed_by_the_unit_verifies_in_xmlsec1_and_in_kyso(
    sqlite_instance: Instance, unit: SignerIdentity, tmp_path: Path
) -> None:
    signed = sign_xml(edxml.build(package()), unit, parent_xpath=HEADER)
    assert edxml.parse(signed) == package()  # the signature does not disturb reading
    files = write_chain(unit, tmp_path)
    checked = xmlsec_verify(signed, files, tmp_path)
    assert checked.returncode == 0, checked.stderr
    report = validate_xml(signed, trust_context(sqlite_instance.ctx))
    assert report.passed, [s.message_en for s in report.signatures]

    # a changed attachment breaks both verifiers
    pdf = base64.b64encode(PDF).decode()
    assert pdf.encode() in signed
    tampered = signed.replace(pdf[-40:].encode(), pdf[-40:][::-1].encode())
    assert tampered != signed
    assert xmlsec_verify(tampered, files, tmp_path).returncode != 0
    assert not validate_xml(tampered, trust_context(sqlite_instance.ctx)).passed


def _broken(old: str, new: str) -> bytes:
    text = SAMPLE.decode()
    assert old in text, old
    return text.replace(old, new, 1).encode()


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (
            _broken(
                "<Subject>V/v triển khai chữ ký số chuyên dùng trong gửi nhận văn bản điện tử",
                "<Subject>  ",
            ),
            "Subject",
        ),
        (
            _broken(
                "<Subject>V/v triển khai chữ ký số chuyên dùng trong gửi nhận văn bản điện tử",
                "<Subject>" + "x" * 501,
            ),
            "500",
        ),
        (_broken("<To>", "<Other>").replace(b"</To>", b"</Other>", 1), "To"),
        (
            _broken(
                "</To>",
                "</To><To><OrganId>000.00.00.H05</OrganId><OrganName>lặp</OrganName></To>",
            ),
            "000.00.00.H05",
        ),
        (_broken("<Content>JVBER", "<Content>!!!JVBER"), "base64"),
        (
            _broken(
                "<ContentId>cid:vanban-125</ContentId>\n      <AttachmentName>",
                "<ContentId>cid:khac</ContentId>\n      <AttachmentName>",
            ),
            "cid:khac",
        ),
        (_broken("<PromulgationDate>2025/03/14", "<PromulgationDate>14-03-2025"), "yyyy/MM/dd"),
        (_broken("<Priority>0", "<Priority>9"), "Priority"),
        (
            _broken('<edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016">', "<edXML>").replace(
                b"", b""
            ),
            "edXML",
        ),
        (
            b'<?xml version="1.0"?><!DOCTYPE edXML [<!ENTITY x SYSTEM "file:///etc/passwd">]><edXML/>',
            "DOCTYPE",
        ),
        (b"<edXML", "XML"),
        (b"", "XML"),
    ],
    ids=[
        "no-subject",
        "long-subject",
        "no-recipient",
        "same-recipient-twice",
        "bad-base64",
        "attachment-not-in-manifest",
        "bad-date",
        "bad-priority",
        "wrong-namespace",
        "doctype",
        "not-well-formed",
        "empty",
    ],
)
def test_a_broken_package_is_refused_saying_what_is_wrong(data: bytes, words: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        edxml.parse(data)
    assert words in caught.value.message("en"), caught.value.message("en")
    assert caught.value.message("vi") != caught.value.message("en")
    assert caught.value.http_status in (400, 422)


def test_the_manifest_naming_an_attachment_nobody_carries_is_refused() -> None:
    data = _broken(
        "</edXMLManifest>",
        "<Reference><ContentId>cid:phu-luc</ContentId><ContentType>application/pdf"
        "</ContentType></Reference></edXMLManifest>",
    )
    with pytest.raises(InvalidInput, match="cid:phu-luc"):
        edxml.parse(data)


def test_kyso_does_not_write_what_it_would_refuse() -> None:
    with pytest.raises(InvalidInput, match="Subject"):
        edxml.build(package(subject=" "))
    with pytest.raises(InvalidInput, match="recipient"):
        edxml.build(package(recipients=()))
    with pytest.raises(InvalidInput, match="twice"):
        edxml.build(package(recipients=(TO, TO)))


def test_a_status_message_reads_back_and_is_told_apart_from_a_package() -> None:
    made = status.Status(
        response_for=ResponseFor(
            SENDER.organ_id, "15/QĐ-SKHCN", date(2026, 12, 4), package().header.document_id
        ),
        sender=TO,
        code=status.StatusCode.REFUSED,
        timestamp=datetime(2026, 12, 4, 10, 0, 5),
        description="Chữ ký số không hợp lệ: văn bản đã bị thay đổi sau khi ký",
        staff=status.StaffInfo("Văn phòng", "Lý Thị Mai", "0912345678", "mai@chora.gov.vn"),
    )
    data = status.build(made)
    assert status.parse(data) == made
    assert status.is_status(data) and not status.is_status(SAMPLE)
    assert made.code.label_vi == "Từ chối tiếp nhận"
    with pytest.raises(InvalidInput, match="StatusCode"):
        status.parse(data.replace(b"<StatusCode>02<", b"<StatusCode>99<"))
    with pytest.raises(InvalidInput, match="Status"):
        status.parse(SAMPLE)
