"""The records clerk's register pages, on SQLite and PostgreSQL: Ba Bể's clerk issues a draft
the chairman signed through /exchange/issue (the number shows, the issued PDF downloads and
validates with both signatures), finds it in the register and its XLSX and CSV exports, and
sends it to Ngân Sơn from the entry's page; bad input comes back beside its field in
Vietnamese (422); a paper-only entry has no send form; nobody opens another unit's entry;
the province changes the catalogue and an officer may not; /reports/electronic shows, per
unit and level, the counts the test makes itself from what it put in the register, in the
table, the chart and the exports; every form needs its CSRF token."""

from __future__ import annotations

import csv
import io
import re
import secrets
from collections import Counter
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

import openpyxl
import pytest
from conftest import Instance
from fixtures.pdf import images, samples
from sqlalchemy import func, select, update
from support.world import World, make_world

from kyso import clock
from kyso.exchange import register
from kyso.signing.identity import from_keystore
from kyso.signing.pades import sign_pdf
from kyso.signing.placement import Placement
from kyso.signing.stamps import Appearance, StampKind
from kyso.store.models import (
    Delivery,
    DocumentType,
    ExchangeDirection,
    ExchangeMessage,
    Organization,
    RegisteredDocument,
)
from kyso.trust import trust_context
from kyso.validation.verify import verify

from .conftest import Web
from .test_sign import server_key

ENTRY = re.compile(r"^/exchange/register/([A-Za-z0-9_-]{22})$")
MESSAGE = re.compile(r"^/exchange/([A-Za-z0-9_-]{22})$")
SEAL = images.seal_png()


@pytest.fixture(scope="module")
def world(instance: Instance) -> World:
    """Ba Bể, Ngân Sơn and Chu Hương with identifier codes (mã định danh)."""
    found = make_world(instance.ctx, instance.backend)
    with instance.ctx.db.session() as session:
        for key in ("babe", "nganson", "chuhuong"):
            session.execute(
                update(Organization)
                .where(Organization.id == found.unit(key).id)
                .values(code=code(found, key))
            )
    return found


def code(world: World, key: str) -> str:
    return f"{dict(babe='000.61', nganson='000.62', chuhuong='000.63')[key]}.{world.tag}.H03"


@pytest.fixture(scope="module")
def keys(instance: Instance, world: World) -> dict[str, str]:
    """Ba Bể's seal and its chairman's key, and Ngân Sơn's seal (kyso's key store)."""
    return {
        "seal": server_key(instance, world.unit("babe"))[0],
        "leader": server_key(instance, world.unit("babe"), cn="Nguyễn Văn An")[0],
        "seal_ns": server_key(instance, world.unit("nganson"))[0],
    }


@pytest.fixture(scope="module")
def draft(instance: Instance, keys: dict[str, str]) -> bytes:
    """A decision the chairman signed (his approval stamp above his printed name)."""
    return sign_pdf(
        samples.official_document(),
        from_keystore(instance.ctx, keys["leader"]),
        appearance=Appearance(
            kind=StampKind.APPROVAL,
            placement=Placement.by_anchor("Nguyễn Văn An", width=160, height=70),
            signature_image=images.signature_png(),
        ),
    )


def today() -> date:
    return clock.local(clock.now()).date()


def form(world: World, keys: dict[str, str], **changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "unit": world.unit("babe").public_id,
        "type": "QĐ",
        "notation": "QĐ-UBND",
        "subject": f"Quyết định ban hành Quy chế sử dụng chữ ký số {secrets.token_hex(3)}",
        "signer_name": "Nguyễn Văn An",
        "issued_on": today().strftime("%d/%m/%Y"),
        "key_id": keys["seal"],
    }
    values.update(changes)
    return values


def files(document: bytes, seal: bytes = SEAL) -> list[tuple[str, Any]]:
    return [
        ("document", ("quyet-dinh.pdf", document, "application/pdf")),
        ("seal_image", ("con-dau.png", seal, "image/png")),
    ]


def issue(clerk: Web, values: dict[str, Any], draft: bytes) -> str:
    """Issue through the form; the register entry's public id."""
    answer = clerk.post("/exchange/issue", values, files=files(draft))
    assert answer.status_code == 303, answer.text[:3000]
    found = ENTRY.match(answer.headers["location"])
    assert found, answer.headers["location"]
    return found.group(1)


def last_number(world: World, key: str, year: int) -> int:
    with world.ctx.db.read() as session:
        return int(
            session.scalar(
                select(func.max(RegisteredDocument.number)).where(
                    RegisteredDocument.organization_id == world.unit(key).id,
                    RegisteredDocument.year == year,
                )
            )
            or 0
        )


def count_entries(world: World, key: str) -> int:
    with world.ctx.db.read() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(RegisteredDocument)
                .where(RegisteredDocument.organization_id == world.unit(key).id)
            )
            or 0
        )


def seed(
    world: World,
    key: str,
    day: date,
    *,
    sent: bool = False,
    delivery: Delivery = Delivery.ELECTRONIC,
    kind: str = "CV",
    subject: str = "",
) -> str:
    """A register row put straight into the database (no PDF): for the pages that only read
    the register, without sealing a document each time."""
    with world.ctx.db.session() as session:
        type_id = session.scalar(select(DocumentType.id).where(DocumentType.abbreviation == kind))
        number = (
            session.scalar(
                select(func.max(RegisteredDocument.number)).where(
                    RegisteredDocument.organization_id == world.unit(key).id,
                    RegisteredDocument.year == day.year,
                )
            )
            or 0
        ) + 1
        public_id = secrets.token_urlsafe(16)
        session.add(
            RegisteredDocument(
                public_id=public_id,
                organization_id=world.unit(key).id,
                year=day.year,
                number=number,
                notation=f"{kind}-UBND",
                type_id=type_id,
                delivery=delivery,
                issued_on=day,
                subject=subject or f"Công văn về việc chuyển đổi số {secrets.token_hex(3)}",
                signer_name="Nguyễn Văn An",
                document=None,
                sent_at=clock.now() if sent else None,
                actor="test",
                created_at=clock.now(),
            )
        )
    return public_id


def row(page: str, text: str) -> str:
    """The table row holding ``text``."""
    found = re.search(rf"<tr\b(?:(?!</tr>).)*{re.escape(text)}(?:(?!</tr>).)*</tr>", page, re.S)
    assert found, f"{text} is not listed"
    return found.group(0)


def cells(html_row: str) -> list[str]:
    """The text of each cell of a table row, tags removed."""
    return [
        re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", cell)).strip()
        for cell in re.findall(r"<td[^>]*>(.*?)</td>", html_row, re.S)
    ]


def sheet_rows(content: bytes, index: int = 0) -> list[tuple[Any, ...]]:
    book = openpyxl.load_workbook(io.BytesIO(content))
    return list(book.worksheets[index].iter_rows(values_only=True))


def csv_rows(content: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))


# -- issuing, the register, its exports -----------------------------------------------------------
def test_the_clerk_issues_a_signed_draft_and_finds_it_in_the_register_and_its_exports(
    world: World, keys: dict[str, str], draft: bytes, web_for: Callable[..., Web]
) -> None:
    clerk = web_for("officer")
    exchange = clerk.get("/exchange")
    assert 'href="/exchange/issue">Phát hành văn bản<' in exchange.text
    assert 'href="/exchange/register">Sổ văn bản đi<' in exchange.text
    page = clerk.get("/exchange/issue")
    assert page.status_code == 200
    assert "<h1>Phát hành văn bản</h1>" in page.text
    assert f'value="{world.unit("babe").public_id}"' in page.text  # the issuing unit
    assert '<option value="QĐ" >Quyết định (QĐ) · Điện tử</option>' in page.text
    assert '<option value="HĐ" >Hợp đồng (HĐ) · Điện tử và giấy</option>' in page.text
    assert f'value="{keys["seal"]}"' in page.text  # the seal
    assert f'value="{today():%d/%m/%Y}"' in page.text  # today by default

    expected = last_number(world, "babe", today().year) + 1
    values = form(world, keys)
    entry = issue(clerk, values, draft)
    shown = clerk.get(f"/exchange/register/{entry}")
    assert shown.status_code == 200
    assert f"Đã phát hành văn bản số {expected}/QĐ-UBND." in shown.text
    assert f'<span id="code">{expected}/QĐ-UBND</span>' in shown.text
    assert values["subject"] in shown.text and "Nguyễn Văn An" in shown.text
    assert 'data-delivery="electronic">Điện tử<' in shown.text
    assert 'id="sent-at">—<' in shown.text  # not sent yet
    assert "Gửi văn bản" in shown.text and f'value="{code(world, "nganson")}"' in shown.text

    # the issued PDF: the chairman's signature and Ba Bể's seal over it, both valid
    pdf = clerk.get(f"/exchange/register/{entry}/document.pdf")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.headers["content-disposition"].startswith("attachment;")
    report = verify(pdf.content, trust_context(world.ctx), name="qd.pdf")
    assert report.passed and len(report.signatures) == 2
    seal = report.signatures[-1].signer
    assert seal is not None and "UBND huyện Ba Bể" in seal.subject

    # the register of this year lists it
    listing = clerk.get("/exchange/register")
    assert listing.status_code == 200 and "<h1>Sổ văn bản đi</h1>" in listing.text
    assert 'href="/exchange/issue">Phát hành văn bản<' in listing.text
    line = cells(row(listing.text, values["subject"]))
    assert line == [
        f"{expected}/QĐ-UBND UBND huyện Ba Bể",
        f"{today():%d/%m/%Y}",
        "Quyết định",
        values["subject"],
        "Nguyễn Văn An",
        "Điện tử",
        "—",
    ]
    assert f'href="/exchange/register/{entry}"' in listing.text
    assert values["subject"] not in clerk.get(f"/exchange/register?year={today().year - 1}").text
    assert values["subject"] in clerk.get("/exchange/register?year=all").text

    # …and its exports, with Vietnamese headings and dates as dd/mm/yyyy
    xlsx = clerk.get(f"/exchange/register.xlsx?year={today().year}")
    assert xlsx.status_code == 200
    assert xlsx.headers["content-type"].startswith("application/vnd.openxmlformats")
    book = openpyxl.load_workbook(io.BytesIO(xlsx.content))
    sheet = book.worksheets[0]
    header = [c.value for c in sheet[1]]
    assert header == [
        "Số và ký hiệu văn bản",
        "Ngày ban hành",
        "Loại văn bản",
        "Trích yếu",
        "Người ký",
        "Đơn vị ban hành",
        "Cách gửi",
        "Ngày gửi điện tử",
    ]
    (found,) = [r for r in sheet.iter_rows(min_row=2) if r[3].value == values["subject"]]
    assert found[0].value == f"{expected}/QĐ-UBND"
    assert found[1].value == datetime(today().year, today().month, today().day)
    assert found[1].number_format == "DD/MM/YYYY"
    assert [c.value for c in found[2:7]] == [
        "Quyết định",
        values["subject"],
        "Nguyễn Văn An",
        "UBND huyện Ba Bể",
        "Điện tử",
    ]
    assert found[7].value is None
    exported = csv_rows(clerk.get(f"/exchange/register.csv?year={today().year}").content)
    assert exported[0] == header
    (line_csv,) = [r for r in exported if r[3] == values["subject"]]
    assert line_csv[:3] == [f"{expected}/QĐ-UBND", f"{today():%d/%m/%Y}", "Quyết định"]
    assert line_csv[6:] == ["Điện tử", ""]
    assert len(exported) - 1 == sheet.max_row - 1  # the same entries in both

    # the same pages in English
    clerk.client.cookies.set("kyso_lang", "en")
    english = clerk.get("/exchange/register")
    assert "Outgoing register" in english.text and "Issue a document" in english.text
    clerk.client.cookies.delete("kyso_lang")


def test_the_clerk_sends_the_issued_document_from_its_register_entry(
    world: World, keys: dict[str, str], draft: bytes, web_for: Callable[..., Web]
) -> None:
    clerk, receiver = web_for("officer"), web_for("officer_ns")
    values = form(world, keys)
    entry = issue(clerk, values, draft)
    page = clerk.get(f"/exchange/register/{entry}")
    assert f'<option value="{code(world, "nganson")}"' in page.text
    assert f'<option value="{code(world, "babe")}"' not in page.text  # not to itself

    nobody = clerk.post(f"/exchange/register/{entry}/send", {"key_id": keys["seal"]})
    assert nobody.status_code == 422 and "Hãy chọn ít nhất một nơi nhận." in nobody.text
    unknown = clerk.post(
        f"/exchange/register/{entry}/send",
        {"other_codes": "999.99.99.H99", "key_id": keys["seal"]},
    )
    assert unknown.status_code == 422 and 'id="e-recipients"' in unknown.text
    assert "999.99.99.H99" in unknown.text  # kept on the form

    sent = clerk.post(
        f"/exchange/register/{entry}/send",
        {"recipients": [code(world, "nganson")], "key_id": keys["seal"]},
    )
    assert sent.status_code == 303, sent.text[:2000]
    found = MESSAGE.match(sent.headers["location"])
    assert found, sent.headers["location"]
    message = clerk.get(sent.headers["location"])
    assert "Văn bản đã được ký số của cơ quan và gửi đi." in message.text
    number = re.search(r'<span id="code">([^<]+)</span>', page.text)
    assert number and number.group(1) in message.text  # the register's number and notation
    with world.ctx.db.read() as session:
        out = session.scalar(
            select(ExchangeMessage).where(ExchangeMessage.public_id == found.group(1))
        )
        assert out is not None and out.direction is ExchangeDirection.OUT
        assert out.code == number.group(1) and out.subject == values["subject"]

    again = clerk.get(f"/exchange/register/{entry}")
    assert 'id="sent-at">—<' not in again.text
    assert re.search(r'id="sent-at">\d\d/\d\d/\d{4} \d\d:\d\d<', again.text)
    line = cells(row(clerk.get("/exchange/register").text, values["subject"]))
    assert re.fullmatch(r"\d\d/\d\d/\d{4} \d\d:\d\d", line[-1])
    # Ngân Sơn's clerk has it in the inbox
    inbox = receiver.get("/exchange")
    assert "Chờ tiếp nhận" in row(inbox.text, values["subject"])


def test_bad_input_comes_back_beside_its_field_in_vietnamese(
    world: World, keys: dict[str, str], draft: bytes, web_for: Callable[..., Web]
) -> None:
    clerk = web_for("officer")
    before = count_entries(world, "babe")
    unsigned = samples.official_document()
    cases: list[tuple[dict[str, Any], Any, str, str]] = [
        ({}, files(unsigned), "document", "văn bản chưa có chữ ký"),
        ({}, files(draft, b"GIF89a not a png"), "seal_image", "ảnh con dấu phải là PNG"),
        ({}, files(b"not a pdf at all"), "document", "văn bản phải là tệp PDF"),
        ({"type": "XX"}, files(draft), "type", "loại văn bản không có"),
        ({"type": ""}, files(draft), "type", "Hãy chọn loại văn bản."),
        ({"notation": " "}, files(draft), "notation", "ký hiệu, tối đa 60 ký tự"),
        ({"subject": ""}, files(draft), "subject", "trích yếu, tối đa 500 ký tự"),
        ({"issued_on": "31/02/2026"}, files(draft), "issued_on", "dd/mm/yyyy"),
        ({"key_id": ""}, files(draft), "key_id", "Hãy chọn khóa chữ ký số của cơ quan"),
        ({"key_id": keys["seal_ns"]}, files(draft), "key_id", "không được ký bằng khóa này"),
        ({}, [], "document", "Hãy đính kèm văn bản đã được lãnh đạo ký số (PDF)."),
        ({}, files(draft)[:1], "seal_image", "Hãy đính kèm ảnh con dấu của cơ quan (PNG)."),
    ]
    for changes, chosen, field, words in cases:
        values = form(world, keys, **changes)
        answer = clerk.post("/exchange/issue", values, files=chosen)
        assert answer.status_code == 422, (changes, field, answer.text[:2000])
        assert f'id="e-{field}"' in answer.text, (changes, field)
        assert words in answer.text, (changes, words)
        if values["subject"]:
            assert values["subject"] in answer.text  # what was typed is kept
        assert 'value="Nguyễn Văn An"' in answer.text
    # a unit outside the clerk's view is not theirs to issue for
    elsewhere = clerk.post(
        "/exchange/issue",
        form(world, keys, unit=world.unit("nganson").public_id),
        files=files(draft),
    )
    assert elsewhere.status_code == 403
    assert count_entries(world, "babe") == before  # nothing was registered


def test_a_paper_only_entry_has_no_send_form(
    world: World, keys: dict[str, str], web_for: Callable[..., Web]
) -> None:
    clerk = web_for("officer")
    entry = seed(world, "babe", date(2025, 4, 2), delivery=Delivery.PAPER, kind="GM")
    page = clerk.get(f"/exchange/register/{entry}")
    assert page.status_code == 200
    assert "Loại văn bản này chỉ gửi bản giấy." in page.text
    assert 'data-delivery="paper">Chỉ bản giấy<' in page.text
    assert f'action="/exchange/register/{entry}/send"' not in page.text
    refused = clerk.post(
        f"/exchange/register/{entry}/send",
        {"recipients": [code(world, "nganson")], "key_id": keys["seal"]},
    )
    assert refused.status_code == 422 and "chỉ gửi bản giấy" in refused.text
    assert clerk.get(f"/exchange/register/{entry}/document.pdf").status_code == 404  # no PDF
    assert "Chỉ bản giấy" in row(clerk.get("/exchange/register?year=2025").text, entry)


def test_another_units_clerk_opens_no_entry_of_the_register(
    world: World, keys: dict[str, str], web_for: Callable[..., Web]
) -> None:
    clerk, other = web_for("officer"), web_for("officer_ns")
    subject = f"Công văn của Ba Bể {secrets.token_hex(3)}"
    entry = seed(world, "babe", date(2025, 5, 6), subject=subject)
    assert clerk.get(f"/exchange/register/{entry}").status_code == 200
    assert subject in clerk.get("/exchange/register?year=2025").text
    for path in ("", "/document.pdf"):
        assert other.get(f"/exchange/register/{entry}{path}").status_code == 404, path
    send = other.post(
        f"/exchange/register/{entry}/send",
        {"recipients": [code(world, "babe")], "key_id": keys["seal_ns"]},
    )
    assert send.status_code == 404
    assert subject not in other.get("/exchange/register?year=2025").text
    assert subject not in other.get("/exchange/register.csv?year=2025").text
    assert other.get("/exchange/register/nothing-here").status_code == 404
    # the auditor has no register (no DOCUMENT_EXCHANGE); anonymous visitors log in first
    assert web_for("auditor").get("/exchange/register").status_code == 403
    anonymous = web_for().get("/exchange/register", follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login")


def test_every_form_needs_its_csrf_token(
    world: World, keys: dict[str, str], draft: bytes, web_for: Callable[..., Web]
) -> None:
    clerk, admin = web_for("officer"), web_for("admin1")
    before = count_entries(world, "babe")
    forged = clerk.post("/exchange/issue", form(world, keys), files=files(draft), csrf=False)
    assert forged.status_code == 403 and count_entries(world, "babe") == before
    entry = seed(world, "babe", date(2025, 6, 7))
    forged = clerk.post(
        f"/exchange/register/{entry}/send",
        {"recipients": [code(world, "nganson")], "key_id": keys["seal"]},
        csrf=False,
    )
    assert forged.status_code == 403
    assert 'id="sent-at">—<' in clerk.get(f"/exchange/register/{entry}").text
    forged = admin.post("/exchange/catalogue", {"type": "PB", "delivery": "paper"}, csrf=False)
    assert forged.status_code == 403
    with world.ctx.db.read() as session:
        (pb,) = [t for t in register.catalogue(session) if t.abbreviation == "PB"]
        assert pb.delivery is Delivery.ELECTRONIC


# -- the catalogue ------------------------------------------------------------------------------
def test_the_province_changes_how_a_type_goes_out_and_an_officer_may_not(
    world: World, keys: dict[str, str], web_for: Callable[..., Web]
) -> None:
    officer, admin = web_for("officer"), web_for("admin1")
    seen = officer.get("/exchange/catalogue")
    assert seen.status_code == 200 and "Danh mục loại văn bản" in seen.text
    assert 'action="/exchange/catalogue"' not in seen.text  # read-only
    assert cells(row(seen.text, 'data-type="PB"')) == ["PB", "Phiếu báo", "Điện tử"]
    assert "Chỉ quản trị viên cấp tỉnh được thay đổi danh mục." in seen.text
    refused = officer.post("/exchange/catalogue", {"type": "PB", "delivery": "paper"})
    assert refused.status_code == 403
    assert web_for("auditor").get("/exchange/catalogue").status_code == 403

    page = admin.get("/exchange/catalogue")
    assert page.text.count('action="/exchange/catalogue"') == page.text.count("<tr data-type=")
    try:
        done = admin.post("/exchange/catalogue", {"type": "PB", "delivery": "paper"})
        assert done.status_code == 303 and done.headers["location"] == "/exchange/catalogue"
        after = admin.get("/exchange/catalogue")
        assert "Đã lưu: Phiếu báo gửi theo cách “Chỉ bản giấy”." in after.text
        assert '<option value="paper" selected>Chỉ bản giấy</option>' in row(
            after.text, 'data-type="PB"'
        )
        assert "Phiếu báo" in cells(row(officer.get("/exchange/catalogue").text, 'data-type="PB"'))
        assert "Chỉ bản giấy" in row(officer.get("/exchange/catalogue").text, 'data-type="PB"')
        issuing = officer.get("/exchange/issue")
        assert '<option value="PB" >Phiếu báo (PB) · Chỉ bản giấy</option>' in issuing.text

        bad = admin.post("/exchange/catalogue", {"type": "PB", "delivery": "pigeon"})
        assert bad.status_code == 422 and "Hãy chọn cách gửi cho loại văn bản này." in bad.text
        unknown = admin.post("/exchange/catalogue", {"type": "XX", "delivery": "paper"})
        assert unknown.status_code == 422 and "loại văn bản không có" in unknown.text
    finally:
        with world.ctx.db.session() as session:
            register.set_delivery(world.who("admin1"), session, "PB", Delivery.ELECTRONIC)


# -- the 90 % figure ----------------------------------------------------------------------------
START, END = date(2024, 1, 1), date(2024, 6, 30)
# (unit, day, sent electronically, delivery): what the register holds for the test
SEEDS: list[tuple[str, date, bool, Delivery]] = [
    *[("babe", date(2024, 1, 5 + d), d != 3, Delivery.ELECTRONIC) for d in range(10)],
    ("babe", date(2023, 12, 31), True, Delivery.ELECTRONIC),  # before the period
    ("chuhuong", date(2024, 2, 1), True, Delivery.ELECTRONIC),
    ("chuhuong", date(2024, 3, 1), True, Delivery.ELECTRONIC),
    ("chuhuong", date(2024, 6, 30), True, Delivery.PARALLEL),
    ("chuhuong", date(2024, 4, 1), False, Delivery.PAPER),  # counted, never electronic
    ("chuhuong", date(2024, 7, 1), False, Delivery.ELECTRONIC),  # after the period
    ("tnmt", date(2024, 1, 1), True, Delivery.ELECTRONIC),
    ("tnmt", date(2024, 5, 20), True, Delivery.ELECTRONIC),
]
LEVELS = {"babe": "Huyện", "chuhuong": "Xã", "tnmt": "Tỉnh"}  # Phòng TN&MT: kind OTHER


def percent(issued: int, electronic: int) -> str:
    """A share as the page writes it: 66,7 % (a whole number without decimals)."""
    value = round(electronic * 100 / issued, 1)
    text = f"{value:.0f}" if value == int(value) else f"{value:.1f}".replace(".", ",")
    return f"{text} %"


def test_the_electronic_share_page_and_exports_count_what_the_register_holds(
    world: World, web_for: Callable[..., Web]
) -> None:
    for key, day, sent, delivery in SEEDS:
        seed(world, key, day, sent=sent, delivery=delivery)
    issued: Counter[str] = Counter()
    electronic: Counter[str] = Counter()
    for key, day, sent, _delivery in SEEDS:
        if START <= day <= END:
            issued[key] += 1
            electronic[key] += int(sent)
    assert (issued["babe"], electronic["babe"]) == (10, 9)  # exactly 90 %: meets the target

    clerk = web_for("officer")
    query = f"from={START:%d/%m/%Y}&to={END:%d/%m/%Y}"
    page = clerk.get(f"/reports/electronic?{query}")
    assert page.status_code == 200, page.text[:2000]
    assert "<h1>Tỷ lệ văn bản điện tử</h1>" in page.text
    assert "Từ ngày 01/01/2024 đến ngày 30/06/2024" in page.text
    units = page.text.split('id="units"', 1)[1]
    for key in issued:
        unit = world.unit(key)
        line = cells(row(units, f'data-unit="{unit.public_id}"'))
        share = electronic[key] / issued[key]
        mark = "✓ Đạt" if share >= 0.9 else "✗ Chưa đạt"
        assert line == [
            unit.name,
            LEVELS[key],
            str(issued[key]),
            str(electronic[key]),
            percent(issued[key], electronic[key]),
            mark,
        ], key
    assert units.count("<tr data-unit=") == len(issued)  # only units that issued something

    # the totals per level, and over all
    levels = page.text.split('id="levels"', 1)[1].split("</table>", 1)[0]
    for level, key in (("district", "babe"), ("commune", "chuhuong"), ("province", "tnmt")):
        line = cells(row(levels, f'data-level="{level}"'))
        assert line[1:4] == [
            str(issued[key]),
            str(electronic[key]),
            percent(issued[key], electronic[key]),
        ]
    total, sent_total = sum(issued.values()), sum(electronic.values())
    line = cells(row(levels, 'data-level="all"'))
    overall = "✓ Đạt" if sent_total / total >= 0.9 else "✗ Chưa đạt"
    assert line == ["Tổng cộng", str(total), str(sent_total), percent(total, sent_total), overall]

    # the chart: one bar per unit, as long as its share, and the line at 90 %
    svg = re.search(r'<svg[^>]*id="share-chart".*?</svg>', page.text, re.S)
    assert svg, "no chart"
    chart = svg.group(0)
    assert 'role="img"' in chart and '<title id="chart-title">' in chart
    plot = re.search(r'data-plot="(\d+)"', chart)
    assert plot, "the chart says how wide its bars may be"
    full = float(plot.group(1))
    assert "Tỷ lệ văn bản gửi điện tử của từng đơn vị" in chart
    for key in issued:
        group = re.search(rf'data-unit="{world.unit(key).public_id}">(.*?)</g>', chart, re.S)
        assert group, key
        bar = re.search(r'class="bar"[^>]*width="([\d.]+)"[^>]*data-share="([\d.]+)"', group[1])
        assert bar, key
        assert float(bar.group(2)) == pytest.approx(electronic[key] / issued[key], abs=1e-4)
        assert float(bar.group(1)) == pytest.approx(full * electronic[key] / issued[key], abs=0.1)
    target = re.search(r'class="target" x1="([\d.]+)"', chart)
    assert target and float(target.group(1)) == pytest.approx(full * 0.9, abs=0.1)
    assert "<script" not in page.text.split("<main", 1)[1]

    # the XLSX: the same numbers, the share as a percentage
    xlsx = clerk.get(f"/reports/electronic.xlsx?{query}")
    assert xlsx.status_code == 200
    rows = sheet_rows(xlsx.content)
    assert rows[0] == (
        "Đơn vị",
        "Cấp",
        "Văn bản phát hành",
        "Gửi điện tử",
        "Tỷ lệ điện tử (%)",
        "Đạt mục tiêu 90 %",
    )
    by_name = {r[0]: r for r in rows[1:]}
    assert len(by_name) == len(issued)
    for key in issued:
        _name, level, count, sent, share, meets = by_name[world.unit(key).name]
        assert (level, count, sent) == (LEVELS[key], issued[key], electronic[key])
        assert share == pytest.approx(electronic[key] / issued[key])
        assert meets == ("Có" if electronic[key] / issued[key] >= 0.9 else "Không")
    book = openpyxl.load_workbook(io.BytesIO(xlsx.content))
    assert book.worksheets[0]["E2"].number_format == "0.0%"
    totals = {r[0]: r for r in sheet_rows(xlsx.content, 1)[1:]}
    assert totals["Huyện"][1:3] == (issued["babe"], electronic["babe"])
    assert totals["Xã"][1:3] == (issued["chuhuong"], electronic["chuhuong"])
    assert totals["Tổng cộng"][1:3] == (total, sent_total)

    # the CSV likewise (the share with the decimal comma)
    exported = csv_rows(clerk.get(f"/reports/electronic.csv?{query}").content)
    assert exported[0] == list(rows[0])
    for line_csv in exported[1:]:
        (key,) = [k for k in issued if world.unit(k).name == line_csv[0]]
        share = electronic[key] / issued[key]
        assert line_csv[1:5] == [
            LEVELS[key],
            str(issued[key]),
            str(electronic[key]),
            f"{share * 100:.1f}".replace(".", ","),
        ]
    assert len(exported) - 1 == len(issued)


def test_the_electronic_share_page_refuses_a_bad_period_on_the_form(
    world: World, web_for: Callable[..., Web]
) -> None:
    clerk = web_for("officer")
    default = clerk.get("/reports/electronic")
    assert default.status_code == 200
    assert f'value="01/01/{today().year}"' in default.text
    assert f'value="31/12/{today().year}"' in default.text
    bad = clerk.get("/reports/electronic?from=31/02/2024&to=30/06/2024")
    assert bad.status_code == 422 and 'id="e-from"' in bad.text
    assert "Ghi ngày theo dạng ngày/tháng/năm (dd/mm/yyyy)." in bad.text
    backwards = clerk.get("/reports/electronic?from=30/06/2024&to=01/01/2024")
    assert backwards.status_code == 422
    assert "kỳ báo cáo kết thúc trước khi bắt đầu" in backwards.text
    assert clerk.get("/reports/electronic.xlsx?from=x&to=y").status_code == 422
    assert clerk.get("/reports/electronic.csv?from=30/06/2024&to=01/01/2024").status_code == 422
    # REPORT_READ: the auditor reads it (the whole province); anonymous visitors log in first
    assert web_for("auditor").get("/reports/electronic").status_code == 200
    anonymous = web_for().get("/reports/electronic", follow_redirects=False)
    assert anonymous.status_code == 303
