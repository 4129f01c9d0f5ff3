"""Units and subscribers to and from spreadsheets (XLSX or CSV), with Vietnamese headers.

An import reads and checks every row before it writes anything: either every row goes in,
or nothing does and the answer lists each problem by row and column, as the user sees them
in Excel ("dòng 7, cột 'Đơn vị cấp trên': không tìm thấy"). Row numbers are the sheet's own.

Uploaded workbooks are untrusted zip files: they are opened through :mod:`kyso.xlsxsafe`,
the one intake every workbook goes through (size, parts, expansion checked before openpyxl
parses anything; anything it cannot read a plain "cannot be read" answer).
"""

from __future__ import annotations

import csv
import enum
import io
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from kyso import xlsxsafe
from kyso.errors import InvalidInput
from kyso.registry import fields as f
from kyso.registry import organizations, people
from kyso.registry.access import Action, Principal, require, visible
from kyso.store.models import Certificate, Organization, OrgKind, Person, Sector

MAX_ROWS = 20_000
MAX_COLUMNS = 60
HEADER_SEARCH_ROWS = 15  # the header row may sit under a title, as on form 01
MAX_REPORTED = 500


class Format(enum.StrEnum):
    XLSX = "xlsx"
    CSV = "csv"

    @property
    def media_type(self) -> str:
        from kyso.xlsxsafe import MEDIA_TYPE

        return MEDIA_TYPE if self is Format.XLSX else "text/csv; charset=utf-8"


# -- errors -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class RowError:
    row: int
    column: str | None
    vi: str
    en: str

    def text(self, lang: str = "vi") -> str:
        if lang == "vi":
            where = f"dòng {self.row}" + (f", cột '{self.column}'" if self.column else "")
            return f"{where}: {self.vi}"
        where = f"row {self.row}" + (f", column '{self.column}'" if self.column else "")
        return f"{where}: {self.en}"


class ImportRejected(InvalidInput):
    """Some rows are wrong; nothing was imported. ``errors`` locates each problem."""

    code = "import_rejected"
    message_vi = "Không nhập dòng nào vì tệp có lỗi."
    message_en = "Nothing was imported: the file has errors."

    def __init__(self, errors: Sequence[RowError]) -> None:
        self.errors = sorted(errors, key=lambda e: (e.row, e.column or ""))
        shown = self.errors[:5]
        more = len(self.errors) - len(shown)
        tail_vi = f"; và {more} lỗi khác" if more else ""
        tail_en = f"; and {more} more" if more else ""
        super().__init__(
            "; ".join(e.text("en") for e in shown) + tail_en,
            vi="; ".join(e.text("vi") for e in shown) + tail_vi,
        )

    def body(self, lang: str = "vi") -> dict[str, Any]:
        return {
            **self.to_dict(lang),
            "error_count": len(self.errors),
            "errors": [
                {"row": e.row, "column": e.column, "message": e.vi if lang == "vi" else e.en}
                for e in self.errors[:MAX_REPORTED]
            ],
        }


def _bad_file(en: str, vi: str) -> InvalidInput:
    return InvalidInput(en, vi=vi)


# -- columns ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Column:
    header: str
    field: str  # the service's attribute name ("" for columns only exported)
    required: bool = False
    kind: str = "text"  # text | date | digits


ORG_SHEET = "Đơn vị"
ORG_COLUMNS = (
    Column("STT", ""),
    Column("Tên đơn vị", "name", required=True),
    Column("Mã định danh", "code"),
    Column("Đơn vị cấp trên", "parent"),
    Column("Loại đơn vị", "kind", required=True),
    Column("Lĩnh vực", "sector", required=True),
    Column("Địa chỉ", "address"),
    Column("Tỉnh/Thành phố", "province"),
    Column("Mã số thuế", "tax_code", kind="digits"),
    Column("Mã quan hệ ngân sách", "budget_code", kind="digits"),
    Column("Thư điện tử công vụ", "email"),
    Column("Điện thoại", "phone", kind="digits"),
)

# The list of request form 01 (Decree 68/2024/NĐ-CP), in its order.
PERSON_SHEET = "Thuê bao"
PERSON_COLUMNS = (
    Column("STT", ""),
    Column("Họ và tên", "full_name", required=True),
    Column("Ngày sinh", "date_of_birth", kind="date"),
    Column("Số CCCD", "id_number", kind="digits"),
    Column("Ngày cấp", "id_issue_date", kind="date"),
    Column("Nơi cấp", "id_issue_place"),
    Column("Thư điện tử công vụ", "email"),
    Column("Cơ quan, đơn vị", "organization", required=True),
    Column("Tỉnh/Thành phố", ""),
    Column("Chức vụ", "position"),
    Column("Số điện thoại di động", "mobile", kind="digits"),
    Column("Số chứng thư số cũ", ""),
)


def _header_key(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", f.fold(text)).strip()


# -- reading ----------------------------------------------------------------------------------
@dataclass
class Table:
    rows: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # (sheet row, values)


def detect(data: bytes, filename: str | None = None) -> Format:
    if data[:4] == b"PK\x03\x04":
        return Format.XLSX
    if data[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1":
        raise _bad_file(
            "this is an old Excel 97–2003 (.xls) file: save it as .xlsx or .csv",
            "đây là tệp Excel 97–2003 (.xls) cũ: hãy lưu lại dạng .xlsx hoặc .csv",
        )
    if filename and filename.lower().endswith((".xlsx", ".xlsm")):
        raise _bad_file(
            "the file is named .xlsx but is not an Excel workbook",
            "tệp có đuôi .xlsx nhưng không phải sổ tính Excel",
        )
    return Format.CSV


def read_table(
    data: bytes, columns: Sequence[Column], sheet: str, filename: str | None = None
) -> Table:
    if not data:
        raise _bad_file("the file is empty", "tệp rỗng")
    if detect(data, filename) is Format.XLSX:
        grid = _xlsx_rows(data, columns, sheet)
    else:
        grid = _csv_rows(data)
    return _to_table(grid, columns, sheet)


def _xlsx_rows(
    data: bytes, columns: Sequence[Column], sheet: str
) -> Iterator[tuple[int, list[Any]]]:
    with xlsxsafe.open_workbook(data) as book:
        names = book.sheetnames
        ordered = [sheet] if sheet in names else []
        ordered += [n for n in names if n != sheet]
        for name in ordered:
            worksheet = book[name]
            if not hasattr(worksheet, "iter_rows"):  # a chart sheet
                continue
            rows = _sheet_rows(worksheet)
            head = [r for _, r in zip(range(HEADER_SEARCH_ROWS), rows, strict=False)]
            if _find_header(head, columns) is not None:
                return iter(head + list(_sheet_rows(worksheet, start=len(head) + 1)))
    wanted = ", ".join(f"'{c.header}'" for c in columns if c.required)
    raise _bad_file(
        f"no sheet of the workbook has the columns {wanted} (expected sheet '{sheet}')",
        f"không trang tính nào có các cột {wanted} (cần trang '{sheet}')",
    )


def _sheet_rows(worksheet: Any, start: int = 1) -> Iterator[tuple[int, list[Any]]]:
    for number, values in enumerate(
        worksheet.iter_rows(min_row=start, max_col=MAX_COLUMNS, values_only=True), start=start
    ):
        if number > MAX_ROWS + HEADER_SEARCH_ROWS:
            raise _bad_file(
                f"more than {MAX_ROWS} rows: split the file",
                f"quá {MAX_ROWS} dòng: hãy chia nhỏ tệp",
            )
        yield number, list(values)


def _csv_rows(data: bytes) -> Iterator[tuple[int, list[Any]]]:
    if b"\x00" in data:
        raise _bad_file(
            "the file is neither .xlsx nor a text CSV",
            "tệp không phải .xlsx cũng không phải CSV dạng văn bản",
        )
    try:
        content = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _bad_file(
            "the CSV file is not UTF-8: save it as 'CSV UTF-8' in Excel",
            "tệp CSV không ở mã UTF-8: trong Excel hãy lưu dạng 'CSV UTF-8'",
        ) from exc
    first = next((ln for ln in content.splitlines() if ln.strip()), "")
    delimiter = max(",;\t", key=first.count)
    reader = csv.reader(io.StringIO(content, newline=""), delimiter=delimiter)
    try:
        for number, values in enumerate(reader, start=1):
            if number > MAX_ROWS + HEADER_SEARCH_ROWS:
                raise _bad_file(
                    f"more than {MAX_ROWS} rows: split the file",
                    f"quá {MAX_ROWS} dòng: hãy chia nhỏ tệp",
                )
            yield number, values[:MAX_COLUMNS]
    except csv.Error as exc:
        raise _bad_file(
            f"the CSV file is malformed ({exc})", f"tệp CSV sai định dạng ({exc})"
        ) from exc


def _find_header(
    rows: Sequence[tuple[int, list[Any]]], columns: Sequence[Column]
) -> tuple[int, dict[int, Column]] | None:
    by_key = {_header_key(c.header): c for c in columns}
    required = {c.header for c in columns if c.required}
    for number, values in rows:
        mapping = {
            index: by_key[_header_key(str(v))]
            for index, v in enumerate(values)
            if v is not None and _header_key(str(v)) in by_key
        }
        if required <= {c.header for c in mapping.values()}:
            return number, mapping
    return None


def _to_table(
    grid: Iterable[tuple[int, list[Any]]], columns: Sequence[Column], sheet: str
) -> Table:
    iterator = iter(grid)
    head = [r for _, r in zip(range(HEADER_SEARCH_ROWS), iterator, strict=False)]
    found = _find_header(head, columns)
    if found is None:
        missing = ", ".join(f"'{c.header}'" for c in columns if c.required)
        raise _bad_file(
            f"the header row with the columns {missing} was not found (use the '{sheet}' template)",
            f"không tìm thấy dòng tiêu đề có các cột {missing} (dùng mẫu '{sheet}')",
        )
    header_row, mapping = found
    table = Table()
    for number, values in [*head, *iterator]:
        if number <= header_row:
            continue
        row = {
            mapping[i].header: _cell(v)
            for i, v in enumerate(values)
            if i in mapping and _cell(v) not in (None, "")
        }
        if row and set(row) != {"STT"}:
            table.rows.append((number, row))
    return table


def _cell(value: Any) -> Any:
    if isinstance(value, str):
        value = unicodedata.normalize("NFC", value.strip())
        if len(value) > 1 and value[0] == "'" and value[1] in "=+-@":
            value = value[1:]  # the guard our own export adds against formula injection
        return value
    return value


# -- cell conversions -------------------------------------------------------------------------
def _date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip()
    for pattern in ("%d/%m/%Y", "%Y-%m-%d", "%d-%m-%Y", "%d.%m.%Y"):
        try:
            return datetime.strptime(text, pattern).date()
        except ValueError:
            continue
    raise ValueError(text)


def _digits(value: Any, width: int | None = None) -> str:
    """Numbers Excel stored as numbers lose their leading zeros: give them back."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int):
        text = str(value)
        return text.zfill(width) if width and len(text) < width else text
    return str(value).strip()


def _text(value: Any) -> str:
    if isinstance(value, datetime | date):
        return value.strftime("%d/%m/%Y")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _choice(options: dict[str, Any], value: Any) -> Any:
    key = f.fold(str(value))
    if key in options:
        return options[key]
    raise KeyError(value)


_KINDS: dict[str, OrgKind] = {
    **{f.fold(label): kind for kind, label in organizations.KIND_LABELS.items()},
    **{f.fold(kind.value): kind for kind in OrgKind},
    f.fold("health-centre"): OrgKind.HEALTH_CENTRE,
    f.fold("clinic"): OrgKind.HEALTH_STATION,
}
_SECTORS: dict[str, Sector] = {
    **{f.fold(label): sector for sector, label in organizations.SECTOR_LABELS.items()},
    **{f.fold(sector.value): sector for sector in Sector},
    f.fold("front"): Sector.PARTY_FRONT,
}


class _Row:
    """One row's values and the problems found in it, filed by column header."""

    def __init__(self, number: int, values: dict[str, Any], columns: Sequence[Column]) -> None:
        self.number = number
        self.values = values
        self.errors: list[RowError] = []
        self.header_of = {c.field: c.header for c in columns if c.field}

    def get(self, header: str) -> Any:
        return self.values.get(header)

    def text(self, header: str) -> str | None:
        value = self.get(header)
        return None if value is None else _text(value)

    def error(self, header: str | None, vi: str, en: str) -> None:
        self.errors.append(RowError(self.number, header, vi, en))

    def convert(self, header: str, convert: Callable[[Any], Any], vi: str, en: str) -> Any:
        value = self.get(header)
        if value is None:
            return None
        try:
            return convert(value)
        except (ValueError, KeyError, TypeError):
            self.error(header, vi, en)
            return None

    def clean(self, clean: Callable[[Any], Any], data: Any) -> Any:
        """Run the service's own field checks; file each problem under its column."""
        try:
            return clean(data)
        except f.FieldErrors as exc:
            for p in exc.problems:
                self.error(self.header_of.get(p.field, p.field), p.vi, p.en)
            return None


def _reject_if(rows: Iterable[_Row], extra: Iterable[RowError] = ()) -> None:
    errors = [e for r in rows for e in r.errors] + list(extra)
    if errors:
        raise ImportRejected(errors)


def _no_rows(sheet: str) -> InvalidInput:
    return _bad_file(
        f"the sheet '{sheet}' has no data rows under its header",
        f"trang '{sheet}' không có dòng dữ liệu nào dưới dòng tiêu đề",
    )


@dataclass
class _Known:
    """Units already in the database, found by agency code or by exact name."""

    by_code: dict[str, Organization]
    by_name: dict[str, list[Organization]]

    @classmethod
    def load(cls, session: Session) -> _Known:
        rows = list(session.execute(select(Organization)).scalars())
        by_name: dict[str, list[Organization]] = {}
        for org in rows:
            by_name.setdefault(org.name.casefold(), []).append(org)
        return cls({o.code: o for o in rows if o.code}, by_name)

    def find(self, ref: str) -> list[Organization]:
        hit = self.by_code.get(ref.upper())
        return [hit] if hit else self.by_name.get(ref.casefold(), [])


def _options(labels: Iterable[str]) -> str:
    return ", ".join(f"'{x}'" for x in labels)


# -- organizations ----------------------------------------------------------------------------
@dataclass
class _OrgRow:
    row: _Row
    data: organizations.OrgInput | None
    parent_ref: str | None
    file_parent: int | None = None  # index of the parent row in this file
    db_parent: Organization | None = None


def import_organizations(
    principal: Principal, session: Session, data: bytes, *, filename: str | None = None
) -> list[Organization]:
    """Create every unit of the file (parents may be earlier or later rows of the same file,
    or units already registered, by agency code or exact name) — or none of them."""
    require(principal, Action.ORG_WRITE)
    table = read_table(data, ORG_COLUMNS, ORG_SHEET, filename)
    if not table.rows:
        raise _no_rows(ORG_SHEET)
    kinds = _options(organizations.KIND_LABELS.values())
    sectors = _options(organizations.SECTOR_LABELS.values())
    items: list[_OrgRow] = []
    for number, values in table.rows:
        row = _Row(number, values, ORG_COLUMNS)
        kind = row.convert(
            "Loại đơn vị",
            lambda v: _choice(_KINDS, v),
            f"không rõ loại đơn vị; dùng một trong {kinds}",
            f"unknown kind of unit; use one of {kinds}",
        )
        sector = row.convert(
            "Lĩnh vực",
            lambda v: _choice(_SECTORS, v),
            f"không rõ lĩnh vực; dùng một trong {sectors}",
            f"unknown sector; use one of {sectors}",
        )
        raw = organizations.OrgInput(
            name=row.text("Tên đơn vị") or "",
            kind=kind or OrgKind.OTHER,
            sector=sector or Sector.OTHER,
            code=row.text("Mã định danh"),
            address=row.text("Địa chỉ"),
            province=row.text("Tỉnh/Thành phố"),
            tax_code=row.convert("Mã số thuế", lambda v: _digits(v, 10), "", ""),
            budget_code=row.convert("Mã quan hệ ngân sách", lambda v: _digits(v, 7), "", ""),
            email=row.text("Thư điện tử công vụ"),
            phone=row.convert("Điện thoại", lambda v: _digits(v), "", ""),
        )
        items.append(_OrgRow(row, row.clean(organizations.clean, raw), row.text("Đơn vị cấp trên")))
    _check_org_rows(principal, session, items)
    _reject_if(item.row for item in items)
    order = _tree_order(items)
    position = {row: n for n, row in enumerate(order)}  # file row → place in the batch
    batch: list[tuple[organizations.OrgInput, Organization | int | None]] = []
    for index in order:
        item = items[index]
        assert item.data is not None
        parent = position[item.file_parent] if item.file_parent is not None else item.db_parent
        batch.append((item.data, parent))
    made = organizations.create_many(principal, session, batch)
    return [made[position[i]] for i in range(len(items))]


def _check_org_rows(principal: Principal, session: Session, items: list[_OrgRow]) -> None:
    known = _Known.load(session)
    code_rows: dict[str, int] = {}
    name_rows: dict[str, list[int]] = {}
    for index, item in enumerate(items):
        if item.data is None:
            continue
        name_rows.setdefault(item.data.name.casefold(), []).append(index)
        code = item.data.code
        if code is None:
            continue
        if code in code_rows:
            item.row.error(
                "Mã định danh",
                f"trùng với dòng {items[code_rows[code]].row.number}",
                f"same as row {items[code_rows[code]].row.number}",
            )
        else:
            code_rows[code] = index
        if code in known.by_code:
            item.row.error("Mã định danh", "đã có trong hệ thống", "is already registered")
    siblings: set[tuple[str, str]] = set()
    for index, item in enumerate(items):
        if item.data is None:
            continue
        parent_key = _resolve_parent(principal, items, index, code_rows, name_rows, known)
        if parent_key is None:
            continue
        pair = (parent_key, item.data.name.casefold())
        if pair in siblings:
            item.row.error(
                "Tên đơn vị",
                "trùng tên với một đơn vị khác cùng cấp trên trong tệp",
                "another unit of the file has this name under the same parent",
            )
        siblings.add(pair)
        if item.db_parent is not None and any(
            o.parent_id == item.db_parent.id for o in known.by_name.get(pair[1], [])
        ):
            item.row.error(
                "Tên đơn vị",
                f"đã có đơn vị này dưới '{item.db_parent.name}'",
                f"this unit already exists under '{item.db_parent.name}'",
            )


def _resolve_parent(
    principal: Principal,
    items: list[_OrgRow],
    index: int,
    code_rows: dict[str, int],
    name_rows: dict[str, list[int]],
    known: _Known,
) -> str | None:
    """Find the row's parent (in the file first, then registered); a key for sibling checks."""
    item = items[index]
    column = "Đơn vị cấp trên"
    ref = item.parent_ref
    if ref is None:
        if not principal.province_wide:
            item.row.error(
                column,
                "bắt buộc phải có (chỉ cấp tỉnh được thêm đơn vị gốc)",
                "is required (only the province may add a top-level unit)",
            )
            return None
        return "root"
    in_file = (
        [code_rows[ref.upper()]] if ref.upper() in code_rows else name_rows.get(ref.casefold(), [])
    )
    if len(in_file) > 1:
        item.row.error(
            column,
            "nhiều dòng trong tệp trùng tên này; hãy dùng mã định danh",
            "several rows of the file have this name; use the agency code",
        )
        return None
    if in_file:
        if in_file[0] == index:
            item.row.error(column, "không thể là chính đơn vị này", "cannot be the unit itself")
            return None
        item.file_parent = in_file[0]
        return f"row:{in_file[0]}"
    found = known.find(ref)
    if not found:
        item.row.error(column, "không tìm thấy", "not found")
        return None
    if len(found) > 1:
        item.row.error(
            column,
            "nhiều đơn vị trùng tên này; hãy dùng mã định danh",
            "several units have this name; use the agency code",
        )
        return None
    parent = found[0]
    if not principal.covers(parent.path):
        item.row.error(column, "ngoài phạm vi đơn vị của bạn", "outside your unit")
        return None
    item.db_parent = parent
    return f"db:{parent.id}"


def _tree_order(items: list[_OrgRow]) -> list[int]:
    """Parents before children; rows caught in a cycle get an error instead."""
    order: list[int] = []
    placed: set[int] = set()
    pending = list(range(len(items)))
    while pending:
        ready = [
            i for i in pending if items[i].file_parent is None or items[i].file_parent in placed
        ]
        if not ready:
            for i in pending:
                items[i].row.error(
                    "Đơn vị cấp trên",
                    "các dòng tham chiếu vòng tròn lẫn nhau",
                    "the rows refer to each other in a cycle",
                )
            _reject_if(item.row for item in items)
        order += ready
        placed.update(ready)
        pending = [i for i in pending if i not in placed]
    return order


def _org_rows(principal: Principal, session: Session, under: str | None) -> list[list[Any]]:
    require(principal, Action.ORG_READ)
    query = select(Organization).where(visible(principal, Organization.path))
    if under is not None:
        root = organizations.get(principal, session, under)
        query = query.where(Organization.path.startswith(root.path, autoescape=True))
    orgs = list(session.execute(query.order_by(Organization.path)).scalars())
    parent_ids = {o.parent_id for o in orgs if o.parent_id is not None}
    parents = (
        {
            p.id: p
            for p in session.execute(
                select(Organization).where(Organization.id.in_(parent_ids))
            ).scalars()
        }
        if parent_ids
        else {}
    )
    rows = []
    for number, org in enumerate(orgs, start=1):
        parent = parents.get(org.parent_id) if org.parent_id else None
        rows.append(
            [
                number,
                org.name,
                org.code,
                (parent.code or parent.name) if parent else None,
                organizations.KIND_LABELS[org.kind],
                organizations.SECTOR_LABELS[org.sector],
                org.address,
                org.province,
                org.tax_code,
                org.budget_code,
                org.email,
                org.phone,
            ]
        )
    return rows


def export_organizations(
    principal: Principal, session: Session, fmt: Format, *, under: str | None = None
) -> bytes:
    """The units in view (or one unit's subtree), parents first, ready to import again."""
    return _write(Format(fmt), ORG_SHEET, ORG_COLUMNS, _org_rows(principal, session, under))


# -- people -----------------------------------------------------------------------------------
def import_people(
    principal: Principal,
    session: Session,
    data: bytes,
    *,
    filename: str | None = None,
    default_unit: str | None = None,
) -> list[Person]:
    """Create every subscriber of a form-01 list — or none. The unit column names a
    registered unit by agency code or exact name; empty means ``default_unit``."""
    require(principal, Action.PERSON_WRITE)
    fallback = None
    if default_unit is not None:
        fallback = organizations.get(principal, session, default_unit)
        require(principal, Action.PERSON_WRITE, fallback.path)
    table = read_table(data, PERSON_COLUMNS, PERSON_SHEET, filename)
    if not table.rows:
        raise _no_rows(PERSON_SHEET)
    known = _Known.load(session)
    date_vi, date_en = "không phải ngày dạng dd/mm/yyyy", "is not a date such as 25/06/1985"
    parsed: list[tuple[_Row, people.PersonInput | None, Organization | None]] = []
    for number, values in table.rows:
        row = _Row(number, values, PERSON_COLUMNS)
        unit = _person_unit(principal, row, known, fallback)
        raw = people.PersonInput(
            full_name=row.text("Họ và tên") or "",
            organization=unit.public_id if unit else "",
            date_of_birth=row.convert("Ngày sinh", _date, date_vi, date_en),
            id_number=row.convert("Số CCCD", lambda v: _digits(v, 12), "", ""),
            id_issue_date=row.convert("Ngày cấp", _date, date_vi, date_en),
            id_issue_place=row.text("Nơi cấp"),
            position=row.text("Chức vụ"),
            email=row.text("Thư điện tử công vụ"),
            mobile=row.convert("Số điện thoại di động", _mobile_cell, "", ""),
        )
        parsed.append((row, row.clean(people.clean, raw), unit))
    _check_id_numbers(session, parsed)
    _reject_if(row for row, _, _ in parsed)
    batch = []
    for _row, person, unit in parsed:
        assert person is not None and unit is not None
        batch.append((person, unit))
    return people.insert_many(principal, session, batch)


def _mobile_cell(value: Any) -> str:
    text = _digits(value)
    # 912345678 typed into a number cell: Excel dropped the leading 0.
    return "0" + text if isinstance(value, int | float) and len(text) == 9 else text


def _person_unit(
    principal: Principal, row: _Row, known: _Known, fallback: Organization | None
) -> Organization | None:
    column = "Cơ quan, đơn vị"
    ref = row.text(column)
    if ref is None:
        if fallback is None:
            row.error(column, "bắt buộc phải có", "is required")
        return fallback
    found = known.find(ref)
    if not found:
        row.error(column, "không tìm thấy", "not found")
        return None
    if len(found) > 1:
        row.error(
            column,
            "nhiều đơn vị trùng tên này; hãy dùng mã định danh",
            "several units have this name; use the agency code",
        )
        return None
    if not principal.covers(found[0].path):
        row.error(column, "ngoài phạm vi đơn vị của bạn", "outside your unit")
        return None
    return found[0]


def _check_id_numbers(
    session: Session,
    parsed: list[tuple[_Row, people.PersonInput | None, Organization | None]],
) -> None:
    column = "Số CCCD"
    numbers = [p.id_number for _, p, _ in parsed if p is not None and p.id_number]
    existing = (
        set(
            session.execute(select(Person.id_number).where(Person.id_number.in_(numbers))).scalars()
        )
        if numbers
        else set()
    )
    seen: dict[str, int] = {}
    for row, person, _ in parsed:
        if person is None or person.id_number is None:
            continue
        if person.id_number in seen:
            row.error(
                column,
                f"trùng với dòng {seen[person.id_number]}",
                f"same as row {seen[person.id_number]}",
            )
        else:
            seen[person.id_number] = row.number
        if person.id_number in existing:
            row.error(column, "đã có trong danh sách thuê bao", "is already registered")


def _people_rows(principal: Principal, session: Session, under: str | None) -> list[list[Any]]:
    require(principal, Action.PERSON_READ)
    query = (
        select(Person, Organization)
        .join(Organization, Person.organization_id == Organization.id)
        .where(visible(principal, Organization.path))
    )
    if under is not None:
        root = organizations.get(principal, session, under)
        require(principal, Action.PERSON_READ, root.path)
        query = query.where(Organization.path.startswith(root.path, autoescape=True))
    found = session.execute(query.order_by(Organization.path, Person.full_name, Person.id)).all()
    ids = [p.id for p, _ in found]
    latest: dict[int, str] = {}
    if ids:
        for person_id, serial in session.execute(
            select(Certificate.person_id, Certificate.serial)
            .where(Certificate.person_id.in_(ids))
            .order_by(Certificate.id)
        ):
            if person_id is not None:
                latest[person_id] = serial  # the newest wins
    return [
        [
            number,
            p.full_name,
            p.date_of_birth,
            p.id_number,
            p.id_issue_date,
            p.id_issue_place,
            p.email,
            org.code or org.name,
            org.province,
            p.position,
            p.mobile,
            latest.get(p.id),
        ]
        for number, (p, org) in enumerate(found, start=1)
    ]


def export_people(
    principal: Principal, session: Session, fmt: Format, *, under: str | None = None
) -> bytes:
    """The subscribers in view as the list of form 01, ready to import again."""
    rows = _people_rows(principal, session, under)
    return _write(Format(fmt), PERSON_SHEET, PERSON_COLUMNS, rows)


# -- writing ----------------------------------------------------------------------------------
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def formula_safe(text: str) -> str:
    """A cell starting like a formula is run by Excel (CWE-1236, OWASP "CSV injection"):
    a leading quote makes it text."""
    return "'" + text if text.startswith(_FORMULA_START) else text


def csv_table(header: list[str], body: list[list[Any]]) -> bytes:
    """Rows as a CSV Excel opens in Vietnamese (UTF-8 with a BOM), dates as officials write
    them (dd/mm/yyyy hh:mm), every cell formula-safe."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for values in body:
        writer.writerow(
            [
                ""
                if v is None
                else formula_safe(
                    v.strftime("%d/%m/%Y %H:%M") if isinstance(v, datetime) else str(v)
                )
                for v in values
            ]
        )
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def _write(fmt: Format, sheet: str, columns: Sequence[Column], rows: list[list[Any]]) -> bytes:
    return _xlsx(sheet, columns, rows) if fmt is Format.XLSX else _csv(columns, rows)


def _csv(columns: Sequence[Column], rows: list[list[Any]]) -> bytes:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([c.header for c in columns])
    for values in rows:
        out = []
        for value in values:
            out.append("" if value is None else formula_safe(_text(value)))
        writer.writerow(out)
    # UTF-8 with a BOM: how Excel recognises a UTF-8 CSV (Vietnamese would be garbled).
    return buffer.getvalue().encode("utf-8-sig")


def _xlsx(sheet: str, columns: Sequence[Column], rows: list[list[Any]]) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font

    book = Workbook()
    ws = book.active
    assert ws is not None
    ws.title = sheet
    ws.append([c.header for c in columns])
    for cell in ws[1]:
        cell.font = Font(bold=True)
        cell.alignment = Alignment(wrap_text=True, vertical="center")
    rows = [list(values) + [None] * (len(columns) - len(values)) for values in rows]
    for r, values in enumerate(rows, start=2):
        for c, value in enumerate(values, start=1):
            if value is None:
                continue
            cell = ws.cell(row=r, column=c)
            if isinstance(value, date):
                cell.value = value
                cell.number_format = "DD/MM/YYYY"
            elif isinstance(value, int) and c == 1:
                cell.value = value
            else:
                cell.value = str(value)
                cell.data_type = "s"  # never a formula, and identity numbers keep their zeros
                cell.number_format = "@"
    for c, column in enumerate(columns, start=1):
        width = max([len(column.header)] + [len(_text(v[c - 1])) for v in rows if v[c - 1]])
        ws.column_dimensions[ws.cell(row=1, column=c).column_letter].width = min(width + 2, 60)
    ws.freeze_panes = "A2"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
