"""XLSX/CSV import and export: every row checked first, errors located by row and column,
all or nothing; malformed workbooks refused with a plain message; export → import round trip."""

from __future__ import annotations

import csv
import io
import zipfile
from datetime import datetime

import pytest
from openpyxl import Workbook, load_workbook
from sqlalchemy import func, select

from kyso.errors import Forbidden, InvalidInput, TooLarge
from kyso.registry import organizations as orgs
from kyso.registry import spreadsheets as sheets
from kyso.registry.access import cli_principal
from kyso.store.models import AuditEntry, Organization, OrgKind, Person, Sector
from registry.conftest import cccd_for, new_code

ADMIN = cli_principal("cli:test")
ORG_HEADERS = [c.header for c in sheets.ORG_COLUMNS]
PERSON_HEADERS = [c.header for c in sheets.PERSON_COLUMNS]


def xlsx(rows: list[list[object]], title: str = "Sheet", above: list[list[object]] = ()) -> bytes:
    book = Workbook()
    ws = book.active
    ws.title = title
    for row in [*above, *rows]:
        ws.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _counts(registry) -> tuple[int, int, int]:
    with registry.ctx.db.read() as session:
        return (
            session.execute(select(func.count(Organization.id))).scalar_one(),
            session.execute(select(func.count(Person.id))).scalar_one(),
            session.execute(select(func.count(AuditEntry.seq))).scalar_one(),
        )


def _located(exc: sheets.ImportRejected) -> set[tuple[int, str | None]]:
    return {(e.row, e.column) for e in exc.errors}


def test_org_import_reports_every_bad_row_and_creates_nothing(registry, uniq) -> None:
    token, code, other = uniq(), new_code(), new_code()
    rows = [
        ORG_HEADERS,
        [1, f"Sở Thử {token}", code, "UBND tỉnh Bắc Kạn", "Sở, ban, ngành", "Chính quyền"],
        [2, f"Phòng Một {token}", None, code, "department", "government"],
        [
            3,
            f"Phòng Hai {token}",
            None,
            code,
            "Sở, ban, ngành",
            "Chính quyền",
            None,
            None,
            None,
            None,
            "abc@",
        ],
        [4, f"Công ty {token}", None, code, "Công ty", "Chính quyền"],
        [5, f"Phòng Ba {token}", code, code, "Sở, ban, ngành", "Chính quyền"],
        [6, f"Phòng Bốn {token}", other, "Không có đơn vị này", "Sở, ban, ngành", "Y tế"],
        [7, None, None, code, "Sở, ban, ngành", "Chính quyền", None, None, "12345"],
    ]
    before = _counts(registry)
    with pytest.raises(sheets.ImportRejected) as caught, registry.ctx.db.session() as session:
        sheets.import_organizations(ADMIN, session, xlsx(rows, sheets.ORG_SHEET))
    assert _located(caught.value) == {
        (4, "Thư điện tử công vụ"),
        (5, "Loại đơn vị"),
        (6, "Mã định danh"),
        (7, "Đơn vị cấp trên"),
        (8, "Tên đơn vị"),
        (8, "Mã số thuế"),
    }
    texts = [e.text("vi") for e in caught.value.errors]
    assert "dòng 7, cột 'Đơn vị cấp trên': không tìm thấy" in texts
    assert "dòng 6, cột 'Mã định danh': trùng với dòng 2" in texts
    assert "row 7, column 'Đơn vị cấp trên': not found" in [
        e.text("en") for e in caught.value.errors
    ]
    assert caught.value.code == "import_rejected"
    assert _counts(registry) == before  # nothing at all, not even an audit entry


def test_org_import_creates_a_subtree_with_parents_in_any_order(registry, uniq) -> None:
    token, code = uniq(), new_code()
    rows = [
        ORG_HEADERS,
        [1, f"Trạm Y tế {token}", None, f"UBND xã Mới {token}", "Trạm y tế", "Y tế"],
        [
            2,
            f"UBND xã Mới {token}",
            code,
            "UBND huyện Ba Bể",
            "Cấp xã",
            "Chính quyền",
            "xã Mới, huyện Ba Bể",
            "Bắc Kạn",
            4700999999,
            1234567,
            "xamoi@backan.gov.vn",
            "0209 3870 123",
        ],
    ]
    with registry.ctx.db.session() as session:
        made = sheets.import_organizations(ADMIN, session, xlsx(rows, sheets.ORG_SHEET))
    clinic, commune = made
    ba_be = registry.unit("UBND huyện Ba Bể")
    assert commune.parent_id == ba_be.id and clinic.parent_id == commune.id
    assert clinic.path == f"{ba_be.path}{commune.id}/{clinic.id}/"
    assert commune.tax_code == "4700999999" and commune.budget_code == "1234567"
    assert commune.kind is OrgKind.COMMUNE and clinic.sector is Sector.HEALTH


def test_people_import_locates_errors_under_a_title_and_creates_nothing(registry) -> None:
    khang_ninh = registry.unit("UBND xã Khang Ninh")
    existing = registry.person_in("UBND xã Nam Mẫu").id_number
    good = cccd_for(1980)
    title = [["DANH SÁCH ĐỀ NGHỊ CẤP CHỨNG THƯ SỐ CÁ NHÂN"], ["(Mẫu 01)"], []]
    rows = [
        PERSON_HEADERS,
        [
            1,
            "Lục Văn Hùng",
            "12/03/1980",
            good,
            "01/06/2022",
            "Cục CS QLHC về TTXH",
            "hunglv@backan.gov.vn",
            khang_ninh.code,
            "Bắc Kạn",
            "Phó Chủ tịch",
            "0912345678",
        ],
        [2, "Ma Thị Hoa", "05/05/1985", "12345", None, None, None, khang_ninh.code],
        [
            3,
            "Hà Văn Nam",
            "1990-01-02",
            None,
            None,
            None,
            None,
            khang_ninh.code,
            None,
            None,
            "0212345678",
        ],
        [4, "Bế Thị Lan", "31/02/1980", None, None, None, None, khang_ninh.code],
        [5, "Triệu Văn An", None, None, None, None, None, "UBND xã Không Có"],
        [6, "Nông Văn Bình", "12/03/1980", good, None, None, None, khang_ninh.code],
        [7, "Dương Thị Mai", None, existing, None, None, None, khang_ninh.name],
    ]
    before = _counts(registry)
    with pytest.raises(sheets.ImportRejected) as caught, registry.ctx.db.session() as session:
        sheets.import_people(ADMIN, session, xlsx(rows, sheets.PERSON_SHEET, above=title))
    # The header sits on sheet row 4, so data starts on row 5.
    assert _located(caught.value) == {
        (6, "Số CCCD"),
        (7, "Số điện thoại di động"),
        (8, "Ngày sinh"),
        (9, "Cơ quan, đơn vị"),
        (10, "Số CCCD"),
        (11, "Số CCCD"),
    }
    assert _counts(registry) == before


def test_people_import_by_a_unit_officer_stops_at_the_district(registry) -> None:
    officer = registry.principal("babe")
    rows = [PERSON_HEADERS, [1, "Hứa Văn Toàn", None, None, None, None, None, "UBND xã Bằng Lãng"]]
    with pytest.raises(sheets.ImportRejected) as caught, registry.ctx.db.session() as session:
        sheets.import_people(officer, session, xlsx(rows))
    assert [e.text("vi") for e in caught.value.errors] == [
        "dòng 2, cột 'Cơ quan, đơn vị': ngoài phạm vi đơn vị của bạn"
    ]
    with pytest.raises(Forbidden), registry.ctx.db.session() as session:
        sheets.import_organizations(officer, session, xlsx([ORG_HEADERS]))


def _zip(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


@pytest.mark.parametrize(
    ("name", "data", "words"),
    [
        ("units.xlsx", b"this is not a workbook at all", ".xlsx"),
        ("units.xlsx", b"PK\x03\x04garbage-after-a-zip-magic", "damaged"),
        ("units.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 512, "97–2003"),
        (None, "Tên đơn vị;x\n".encode("utf-16"), "neither"),
        (None, b"T\xean \xf0\xf4n v\xf2\n", "UTF-8"),  # Windows-1258, not UTF-8
        ("units.xlsx", _zip({"word/document.xml": b"<w/>"}), "not an Excel workbook"),
        (
            "units.xlsx",
            _zip({"xl/workbook.xml": b"<not-xml", "[Content_Types].xml": b"<"}),
            "cannot be read",
        ),
        ("units.xlsx", xlsx([["Họ tên", "Ghi chú"], ["A", "B"]], "Sheet1"), "no sheet"),
        ("units.csv", b"A,B\n1,2\n", "header row"),
    ],
)
def test_malformed_files_are_refused_plainly(registry, name, data, words) -> None:
    with pytest.raises(InvalidInput) as caught, registry.ctx.db.session() as session:
        sheets.import_organizations(ADMIN, session, data, filename=name)
    assert not isinstance(caught.value, sheets.ImportRejected)
    assert words in caught.value.message("en"), caught.value.message("en")


def test_a_zip_bomb_is_refused_as_too_large_before_parsing(registry) -> None:
    bomb = _zip({"xl/workbook.xml": b"<x/>", "xl/big.bin": b"\0" * (8 << 20)})
    with pytest.raises(TooLarge) as caught, registry.ctx.db.session() as session:
        sheets.import_organizations(ADMIN, session, bomb, filename="units.xlsx")
    assert "zip bomb" in caught.value.message("en")
    assert "xl/big.bin" in caught.value.message("vi")


def test_a_truncated_workbook_is_refused(registry) -> None:
    with registry.ctx.db.read() as session:
        good = sheets.export_organizations(ADMIN, session, sheets.Format.XLSX)
    with pytest.raises(InvalidInput) as caught, registry.ctx.db.session() as session:
        sheets.import_organizations(ADMIN, session, good[: len(good) // 2], filename="u.xlsx")
    assert "xlsx" in caught.value.message("en")


def _org_rows(data: bytes, fmt: sheets.Format) -> set[tuple[str, ...]]:
    if fmt is sheets.Format.XLSX:
        ws = load_workbook(io.BytesIO(data), read_only=True)[sheets.ORG_SHEET]
        rows = [[("" if v is None else str(v)) for v in r] for r in ws.iter_rows(values_only=True)]
    else:
        rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows[0] == ORG_HEADERS
    return {tuple(r[1:]) for r in rows[1:]}  # without the running number


@pytest.mark.parametrize("fmt", list(sheets.Format))
def test_export_then_import_gives_the_same_tree(registry, empty_instance, fmt) -> None:
    """A district's units and subscribers, exported and imported under the same province
    in a blank registry, export again to the same rows."""
    province, ba_be = registry.unit("UBND tỉnh Bắc Kạn"), registry.unit("UBND huyện Ba Bể")
    with registry.ctx.db.read() as session:
        units = sheets.export_organizations(ADMIN, session, fmt, under=ba_be.public_id)
        subscribers = sheets.export_people(ADMIN, session, fmt, under=ba_be.public_id)
    with empty_instance.db.session() as session:
        orgs.create(
            ADMIN,
            session,
            orgs.OrgInput(
                name=province.name, kind=province.kind, sector=province.sector, code=province.code
            ),
        )
        made = sheets.import_organizations(ADMIN, session, units, filename=f"u.{fmt.value}")
        imported = sheets.import_people(ADMIN, session, subscribers, filename=f"p.{fmt.value}")
        new_ba_be = made[0]
    with empty_instance.db.read() as session:
        again = sheets.export_organizations(ADMIN, session, fmt, under=new_ba_be.public_id)
        people_again = sheets.export_people(ADMIN, session, fmt)
        khang_ninh = session.execute(
            select(Organization).where(Organization.name == "UBND xã Khang Ninh")
        ).scalar_one()
        parent = session.get(Organization, khang_ninh.parent_id)
        assert parent is not None and parent.name == "UBND huyện Ba Bể"
        assert khang_ninh.path == f"{parent.path}{khang_ninh.id}/"
    assert _org_rows(again, fmt) == _org_rows(units, fmt)
    assert len(made) == len(_org_rows(units, fmt)) >= 40
    assert len(imported) >= 80

    def people_rows(data: bytes) -> set[tuple[str, ...]]:
        if fmt is sheets.Format.XLSX:
            ws = load_workbook(io.BytesIO(data), read_only=True)[sheets.PERSON_SHEET]
            rows = [
                [
                    v.strftime("%d/%m/%Y")
                    if isinstance(v, datetime)
                    else ("" if v is None else str(v))
                    for v in r
                ]
                for r in ws.iter_rows(values_only=True)
            ]
        else:
            rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
        assert rows[0] == PERSON_HEADERS
        return {tuple(r[1:11]) for r in rows[1:]}

    before, after = people_rows(subscribers), people_rows(people_again)
    assert before == after
    assert any(r[2].startswith("00") for r in after)  # CCCD leading zeros survive


def test_exported_cells_are_never_formulas(registry, uniq) -> None:
    with registry.ctx.db.session() as session:
        org = orgs.create(
            ADMIN,
            session,
            orgs.OrgInput(
                name=f'=HYPERLINK("http://x") {uniq()}',
                kind=OrgKind.OTHER,
                sector=Sector.OTHER,
                parent=registry.unit("UBND tỉnh Bắc Kạn").public_id,
            ),
        )
    with registry.ctx.db.read() as session:
        as_csv = sheets.export_organizations(
            ADMIN, session, sheets.Format.CSV, under=org.public_id
        ).decode("utf-8-sig")
        as_xlsx = sheets.export_organizations(
            ADMIN, session, sheets.Format.XLSX, under=org.public_id
        )
    assert "'=HYPERLINK" in as_csv
    cell = load_workbook(io.BytesIO(as_xlsx))[sheets.ORG_SHEET]["B2"]
    assert cell.data_type == "s" and cell.value == org.name
