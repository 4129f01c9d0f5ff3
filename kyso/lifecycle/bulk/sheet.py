"""Reading a unit's list: the XLSX file with the columns of form 01, its header row found
in the first rows under any title, each problem located by row and column as Excel shows
them; and the empty template to fill.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from kyso import xlsxsafe
from kyso.errors import InvalidInput
from kyso.registry import fields as f

XLSX_TYPE = xlsxsafe.MEDIA_TYPE
MAX_ROWS = 5000


@dataclass(frozen=True)
class Column:
    field: str
    header: str
    aliases: tuple[str, ...]
    required: bool = True


COLUMNS: tuple[Column, ...] = (
    Column("no", "STT", ("stt", "so thu tu", "tt", "no"), False),
    Column("full_name", "Họ và tên", ("ho va ten", "ho ten", "full name")),
    Column("date_of_birth", "Ngày sinh", ("ngay sinh", "ngay thang nam sinh", "date of birth")),
    Column(
        "id_number",
        "Số CCCD",
        (
            "so cccd",
            "so cccd cmnd",
            "so can cuoc cong dan",
            "so dinh danh ca nhan",
            "cccd",
            "id number",
        ),
    ),
    Column("id_issue_date", "Ngày cấp", ("ngay cap", "ngay cap cccd", "issue date")),
    Column("id_issue_place", "Nơi cấp", ("noi cap", "noi cap cccd", "issue place")),
    Column(
        "email", "Thư điện tử công vụ", ("thu dien tu cong vu", "thu dien tu", "email", "e mail")
    ),
    Column(
        "organization",
        "Cơ quan, đơn vị",
        ("co quan don vi", "co quan", "don vi", "don vi cong tac", "organization", "unit"),
    ),
    Column("province", "Tỉnh/Thành phố", ("tinh thanh pho", "tinh", "province")),
    Column("position", "Chức vụ", ("chuc vu", "position")),
    Column(
        "mobile",
        "Số điện thoại di động",
        ("so dien thoai di dong", "so dien thoai", "dien thoai", "so di dong", "mobile"),
        False,
    ),
    Column(
        "old_certificate",
        "Số hiệu chứng thư số cũ",
        ("so hieu chung thu so cu", "so hieu chung thu cu", "chung thu so cu", "old certificate"),
        False,
    ),
    Column("csr", "CSR (PEM)", ("csr", "csr pem", "yeu cau chung thu so"), False),
)
BY_FIELD = {c.field: c for c in COLUMNS}


def _fold_header(value: object) -> str:
    return " ".join(re.sub(r"[^0-9a-z]+", " ", f.fold(str(value))).split())


_ALIASES = {alias: c for c in COLUMNS for alias in c.aliases}


# -- errors ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RowError:
    row: int | None  # the spreadsheet's row number (1-based, as Excel shows it)
    column: str | None  # the column letter
    header: str | None  # the column's heading
    field: str | None
    message: str  # Vietnamese
    message_en: str

    def to_json(self) -> dict[str, Any]:
        return {
            "row": self.row,
            "column": self.column,
            "header": self.header,
            "field": self.field,
            "message": self.message,
            "message_en": self.message_en,
        }


class BulkRejected(InvalidInput):
    code = "bulk_invalid"
    message_vi = "Tệp danh sách có lỗi; chưa có yêu cầu nào được tạo."
    message_en = "The list has errors; no request was created."

    def __init__(self, errors: Sequence[RowError]) -> None:
        self.errors = list(errors)
        first = self.errors[0]
        where = f"row {first.row}" + (f", column {first.column}" if first.column else "")
        where_vi = f"dòng {first.row}" + (f", cột {first.column}" if first.column else "")
        super().__init__(
            f"{len(self.errors)} problem(s), the first at {where}: {first.message_en}",
            vi=f"{len(self.errors)} lỗi, lỗi đầu tiên ở {where_vi}: {first.message}",
        )


def _col_letter(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


# -- reading the file -----------------------------------------------------------------------------
@dataclass
class Sheet:
    header_row: int
    columns: dict[str, int]  # field -> 0-based column index
    rows: list[tuple[int, dict[str, Any]]]  # (row number, field -> cell value)

    def where(self, row: int | None, field_name: str | None) -> tuple[str | None, str | None]:
        if field_name is None:
            return None, None
        base = field_name.split(".")[0]
        if base not in self.columns:
            return None, BY_FIELD[base].header if base in BY_FIELD else None
        return _col_letter(self.columns[base]), BY_FIELD[base].header


def read(data: bytes, *, max_rows: int = MAX_ROWS) -> Sheet:
    """The rows of the first worksheet under its header row (found in the first 10 rows);
    the file is opened through :mod:`kyso.xlsxsafe`, like every uploaded workbook."""
    with xlsxsafe.open_workbook(data) as workbook:
        if not workbook.worksheets:
            raise InvalidInput("the workbook has no worksheet", vi="tệp không có trang tính")
        return _rows(workbook.worksheets[0].iter_rows(values_only=True), max_rows)


def _rows(rows: Iterable[tuple[Any, ...]], max_rows: int) -> Sheet:
    header: tuple[int, dict[str, int]] | None = None
    data: list[tuple[int, dict[str, Any]]] = []
    for number, values in enumerate(rows, start=1):
        if header is None:
            if number > 10:
                break
            found = {}
            for index, value in enumerate(values):
                column = _ALIASES.get(_fold_header(value)) if value is not None else None
                if column is not None and column.field not in found:
                    found[column.field] = index
            if "full_name" in found and len(found) >= 3:
                header = (number, found)
            continue
        cells = {
            name: values[index] if index < len(values) else None
            for name, index in header[1].items()
        }
        if all(v is None or (isinstance(v, str) and not v.strip()) for v in cells.values()):
            continue
        if len(data) >= max_rows:
            raise InvalidInput(
                f"more than {max_rows} rows: split the list",
                vi=f"quá {max_rows} dòng: hãy chia danh sách",
            )
        data.append((number, cells))
    if header is None:
        raise BulkRejected(
            [
                RowError(
                    None,
                    None,
                    None,
                    None,
                    "không tìm thấy dòng tiêu đề (Họ và tên, Ngày sinh, Số CCCD, "
                    "…) trong 10 dòng đầu",
                    "no header row (Họ và tên, Ngày sinh, Số CCCD, …) in the first 10 rows",
                )
            ]
        )
    sheet = Sheet(header[0], header[1], data)
    missing = [c for c in COLUMNS if c.required and c.field not in header[1]]
    if missing:
        raise BulkRejected(
            [
                RowError(
                    header[0],
                    None,
                    c.header,
                    c.field,
                    f"thiếu cột '{c.header}'",
                    f"column '{c.header}' is missing",
                )
                for c in missing
            ]
        )
    if not data:
        raise BulkRejected(
            [
                RowError(
                    header[0] + 1,
                    None,
                    None,
                    None,
                    "danh sách không có dòng nào",
                    "the list has no rows",
                )
            ]
        )
    return sheet


# -- the template -------------------------------------------------------------------------------
def template() -> bytes:
    """An empty list with the form 01 headings (what :func:`read` expects)."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = "Mẫu 01"
    sheet.append(["DANH SÁCH ĐỀ NGHỊ CẤP CHỨNG THƯ SỐ CÁ NHÂN (Mẫu 01, Nghị định 68/2024/NĐ-CP)"])
    sheet["A1"].font = Font(bold=True)
    sheet.append([c.header for c in COLUMNS])
    for cell in sheet[2]:
        cell.font = Font(bold=True)
    for index, width in enumerate((5, 28, 12, 15, 12, 22, 30, 36, 14, 22, 14, 24, 40)):
        sheet.column_dimensions[_col_letter(index)].width = width
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
