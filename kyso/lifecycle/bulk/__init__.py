"""Hundreds of certificates at once: a unit's list (the columns of form 01) as an XLSX file.

1. **Upload** (a unit officer): every row is checked — the form's field rules, the unit named
   in the row (found in the officer's part of the tree), the subject it makes (RFC 5280
   lengths), the CSR if the row has one, and duplicates in the file or among open requests.
   Any problem, and nothing is created: the answer lists each one by row and column. A clean
   file becomes one job (``batch_jobs``) and one submitted request per row.
2. **Approval** (province administrators, as many as a single request of the type needs)
   approves the whole batch.
3. **Issuance** runs as the job: certificates in chunks, progress readable while it runs.

Keys. Rows with a CSR use it. For the others the job makes ECDSA P-256 keys in kyso's key
store (HSM or software): RSA-2048 key generation runs at ~31 keys/s (PERFORMANCE.md), 42 s
for the plan's 1,300 leaders; P-256 keys take milliseconds. Such keys are the province's
centralized (HSM) signing keys the plan asks for in 2018. ``key_source=token`` instead leaves
every row approved and "awaiting token": each key is then made on its USB token, with its
PIN, through :func:`kyso.lifecycle.workflow.issue`.

All or nothing. A CA must not delete a certificate it has signed, so "compensating" a
half-done batch would leave revoked certificates behind; instead the whole issuance is **one
transaction**: a chunk that fails (a lint error, a key barred as compromised, a constraint)
rolls everything back, and the failing row is found by retrying its chunk row by row in
savepoints. Progress cannot live in that transaction (nobody else would see it before the
commit), so it goes through a side channel: a separate short transaction on PostgreSQL, a
small file beside the database on SQLite (one writer at a time: the batch holds it; a
SQLite deployment is one machine, so every process sees the file). The cost: while the batch
runs, other audited writes wait for it (the audit chain's head row is locked) — on this
2-core machine about 8 s for 1,300 certificates with pkilint off, 20–30 s with it on
(benchmarks/bench_bulk.py); on SQLite longer than its 30 s busy timeout would make other
writers fail, so split lists far beyond the plan's 1,300 rows.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import zipfile
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Table, bindparam, func, insert, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from kyso import clock
from kyso.audit.log import Event, record, record_many
from kyso.errors import Conflict, Forbidden, InvalidInput, KysoError, NotFound, TooLarge
from kyso.keys.base import KeyAlgorithm
from kyso.lifecycle import forms, notify, subjects, workflow
from kyso.lifecycle.forms import IndividualForm, KeyChoice, KeySource
from kyso.lifecycle.workflow import Envelope, envelope
from kyso.pki import issuance
from kyso.pki.authority import Authority
from kyso.pki.csr import load_csr
from kyso.pki.names import subject_text
from kyso.registry import fields as f
from kyso.registry.access import Action, Principal, require, visible
from kyso.registry.fields import FieldProblem
from kyso.settings import Settings
from kyso.store.db import Database
from kyso.store.models import (
    Approval,
    BatchJob,
    CertificateRequest,
    JobState,
    Organization,
    Person,
    RequestEvent,
    RequestState,
    RequestType,
    User,
)

log = logging.getLogger("kyso.lifecycle.bulk")

KIND = "bulk_individual"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MAX_ROWS = 5000
MAX_UNCOMPRESSED = 200 * 1024 * 1024  # an XLSX is a ZIP: refuse bombs before parsing
CHUNK = 100
BULK_ALGORITHM = KeyAlgorithm.EC_P256
S = RequestState


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
_BY_FIELD = {c.field: c for c in COLUMNS}
_REQUESTS: Table = CertificateRequest.__table__  # type: ignore[assignment]


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


class BatchFailed(KysoError):
    code = "batch_failed"
    http_status = 422
    message_vi = "Lô không cấp được; không chứng thư nào được phát hành."
    message_en = "The batch could not be issued; no certificate was released."

    def __init__(self, errors: Sequence[RowError]) -> None:
        self.errors = list(errors)
        first = self.errors[0]
        super().__init__(
            f"row {first.row}: {first.message_en}", vi=f"dòng {first.row}: {first.message}"
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
            return None, _BY_FIELD[base].header if base in _BY_FIELD else None
        return _col_letter(self.columns[base]), _BY_FIELD[base].header


def _error(sheet: Sheet | None, row: int | None, problem: FieldProblem) -> RowError:
    column, header = sheet.where(row, problem.field) if sheet else (None, None)
    return RowError(row, column, header, problem.field, problem.vi, problem.en)


def read(data: bytes, *, max_rows: int = MAX_ROWS) -> Sheet:
    """The rows of the first worksheet under its header row (found in the first 10 rows)."""
    if not data:
        raise InvalidInput("the file is empty", vi="tệp trống")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            expanded = sum(i.file_size for i in archive.infolist())
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise InvalidInput(
            "not an XLSX workbook (Excel 2007 or later)",
            vi="không phải tệp XLSX (Excel 2007 trở lên)",
        ) from exc
    if expanded > MAX_UNCOMPRESSED:
        raise TooLarge(
            f"the workbook expands to {expanded // 1_000_000} MB",
            vi=f"tệp giải nén ra {expanded // 1_000_000} MB",
        )
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    # openpyxl raises whatever its parsers raise on a damaged file (KeyError, ValueError,
    # lxml and zipfile errors, InvalidFileException): all mean "not a workbook we can read".
    except Exception as exc:
        raise InvalidInput(
            "the workbook cannot be read (damaged or not XLSX)",
            vi="không đọc được tệp (hỏng hoặc không phải XLSX)",
        ) from exc
    try:
        if not workbook.worksheets:
            raise InvalidInput("the workbook has no worksheet", vi="tệp không có trang tính")
        sheet = workbook.worksheets[0]
        try:
            return _rows(sheet.iter_rows(values_only=True), max_rows)
        except KysoError:
            raise
        except Exception as exc:  # as above: a damaged sheet part
            raise InvalidInput(
                "the worksheet cannot be read", vi="không đọc được trang tính"
            ) from exc
    finally:
        workbook.close()


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


# -- checking every row ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Row:
    number: int
    form: IndividualForm
    unit: Organization
    csr: str | None


class _Units:
    """The units a row may name: the requesting unit's subtree, by code or by name."""

    def __init__(self, session: Session, root: Organization) -> None:
        self.by_code: dict[str, Organization] = {}
        self.by_name: dict[str, list[Organization]] = {}
        self.by_id: dict[int, Organization] = {}
        for org in session.execute(
            select(Organization).where(Organization.path.startswith(root.path, autoescape=True))
        ).scalars():
            self.by_id[org.id] = org
            if org.code:
                self.by_code[org.code.upper()] = org
            self.by_name.setdefault(f.fold(org.name), []).append(org)

    def parent(self, org: Organization, session: Session) -> Organization | None:
        if org.parent_id is None:
            return None
        return self.by_id.get(org.parent_id) or session.get(Organization, org.parent_id)

    def find(self, text: str, session: Session) -> Organization:
        code = text.strip().upper()
        if code in self.by_code:
            return self.by_code[code]
        folded = f.fold(text)
        matches = self.by_name.get(folded, [])
        if not matches and " - " in text:  # "Phòng Nội vụ - UBND huyện Ba Bể"
            name, _, parent = text.rpartition(" - ")
            matches = [
                o
                for o in self.by_name.get(f.fold(name), [])
                if (p := self.parent(o, session)) is not None and f.fold(p.name) == f.fold(parent)
            ]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise FieldProblem(
                "organization",
                f"no unit named '{text}' in your part of the registry",
                f"không có đơn vị '{text}' trong danh mục thuộc phạm vi của bạn",
            )
        raise FieldProblem(
            "organization",
            f"{len(matches)} units are named '{text}': write its code or 'name - parent body'",
            f"có {len(matches)} đơn vị tên "
            f"'{text}': hãy ghi mã đơn vị hoặc 'tên - cơ quan chủ quản'",
        )


def _open_id_numbers(session: Session) -> dict[str, str]:
    """Identity numbers with a new-individual request still open (not issued, refused or
    cancelled): a second request for them is a duplicate."""
    open_states = [S.DRAFT, S.SUBMITTED, S.APPROVED]
    found: dict[str, str] = {}
    for public_id, text in session.execute(
        select(CertificateRequest.public_id, CertificateRequest.form).where(
            CertificateRequest.type == RequestType.NEW_INDIVIDUAL,
            CertificateRequest.state.in_(open_states),
        )
    ):
        number = Envelope.loads(text).fields.get("id_number")
        if number:
            found[str(number)] = public_id
    return found


def check_rows(
    principal: Principal, session: Session, sheet: Sheet, unit: Organization
) -> list[Row]:
    """Every row checked; :class:`BulkRejected` with every problem found, or the rows."""
    units = _Units(session, unit)
    open_ids = _open_id_numbers(session)
    seen: dict[str, int] = {}
    errors: list[RowError] = []
    rows: list[Row] = []
    today = clock.local(clock.now()).date()
    for number, cells in sheet.rows:
        values = {k: v for k, v in cells.items() if k not in ("no", "csr")}
        form, problems = forms.check(RequestType.NEW_INDIVIDUAL, values, complete=True, today=today)
        row_errors = [_error(sheet, number, p) for p in problems]
        org = None
        if form.organization:
            try:
                org = units.find(form.organization, session)
                require(principal, Action.REQUEST_CREATE, org.path)
            except FieldProblem as problem:
                row_errors.append(_error(sheet, number, problem))
            except Forbidden:
                row_errors.append(
                    _error(
                        sheet,
                        number,
                        FieldProblem(
                            "organization", "is outside your unit", "ngoài phạm vi đơn vị của bạn"
                        ),
                    )
                )
                org = None
        if org is not None and not problems:
            _, subject_problems = subjects.individual(
                str(form.full_name),
                subjects.Placement(org, units.parent(org, session)),
                str(form.province),
                form.id_number,
            )
            row_errors += [_error(sheet, number, p) for p in subject_problems]
        csr = cells.get("csr")
        csr_text = None
        if csr is not None and str(csr).strip():
            csr_text = str(csr).strip()
            try:
                load_csr(csr_text.encode())
            except KysoError as exc:
                row_errors.append(
                    _error(sheet, number, FieldProblem("csr", exc.message("en"), exc.message("vi")))
                )
        if form.id_number:
            if form.id_number in seen:
                row_errors.append(
                    _error(
                        sheet,
                        number,
                        FieldProblem(
                            "id_number",
                            f"repeats row {seen[form.id_number]}",
                            f"trùng với dòng {seen[form.id_number]}",
                        ),
                    )
                )
            elif form.id_number in open_ids:
                row_errors.append(
                    _error(
                        sheet,
                        number,
                        FieldProblem(
                            "id_number",
                            f"already has open request {open_ids[form.id_number]}",
                            f"đã có yêu cầu đang xử lý {open_ids[form.id_number]}",
                        ),
                    )
                )
            seen.setdefault(form.id_number, number)
        if row_errors:
            errors += row_errors
        else:
            assert org is not None
            rows.append(Row(number, form, org, csr_text))
    if errors:
        raise BulkRejected(errors)
    return rows


# -- upload -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class JobView:
    public_id: str
    kind: str
    state: JobState
    total: int
    done: int
    errors: list[dict[str, Any]]
    unit: str | None
    created_at: datetime
    finished_at: datetime | None
    requests: dict[str, int] = field(default_factory=dict)  # state -> count

    @property
    def percent(self) -> float:
        if self.state is JobState.DONE:
            return 100.0
        return round(100.0 * self.done / self.total, 1) if self.total else 0.0


def upload(
    principal: Principal,
    session: Session,
    settings: Settings,
    data: bytes,
    *,
    unit: str | None = None,
    key_source: KeySource = KeySource.SERVER,
) -> BatchJob:
    """Check the file and, if every row is right, create the job and its submitted
    requests (one per row), in the caller's transaction."""
    require(principal, Action.REQUEST_CREATE)
    if key_source is KeySource.CSR:
        raise InvalidInput(
            "rows carry their own CSRs; choose server or token for the others",
            vi="CSR nằm trong từng dòng; chọn server hoặc token cho dòng khác",
        )
    requesting = workflow.requesting_unit(principal, session, unit)
    require(principal, Action.REQUEST_CREATE, requesting.path)
    sheet = read(data)
    rows = check_rows(principal, session, sheet, requesting)
    now = clock.now()
    job = BatchJob(
        public_id=f.new_public_id(),
        kind=KIND,
        state=JobState.PENDING,
        organization_id=requesting.id,
        total=len(rows),
        done=0,
        errors="[]",
        created_by=principal.user_id,
        created_at=now,
    )
    session.add(job)
    session.flush()
    ids = _people_ids(session, [r.form.id_number for r in rows])
    required = settings.approvals_required.get(RequestType.NEW_INDIVIDUAL.value, 1)
    values = []
    for row in rows:
        key = (
            KeyChoice(
                KeySource.CSR,
                KeyAlgorithm.of_public_key(load_csr(row.csr.encode()).public_key()),
                row.csr,
            )
            if row.csr
            else KeyChoice(
                key_source,
                BULK_ALGORITHM if key_source is KeySource.SERVER else workflow.DEFAULT_ALGORITHM,
            )
        )
        fields = {**forms.to_json(row.form), "organization": row.unit.name}
        values.append(
            {
                "public_id": f.new_public_id(),
                "type": RequestType.NEW_INDIVIDUAL,
                "state": S.SUBMITTED,
                "organization_id": requesting.id,
                "person_id": ids.get(row.form.id_number or ""),
                "subject_organization_id": row.unit.id,
                "batch_id": job.id,
                "form": Envelope(fields, key, row.number).dumps(),
                "required_approvals": required,
                "created_by": principal.user_id,
                "created_at": now,
                "submitted_at": now,
                "version": 1,
            }
        )
    request_ids = list(
        session.execute(
            insert(CertificateRequest).returning(
                CertificateRequest.id, sort_by_parameter_order=True
            ),
            values,
        ).scalars()
    )
    session.execute(
        insert(RequestEvent),
        [
            {
                "request_id": rid,
                "at": now,
                "actor": principal.actor,
                "from_state": None,
                "to_state": S.SUBMITTED,
                "note": f"lô {job.public_id}, dòng {row.number}",
            }
            for rid, row in zip(request_ids, rows, strict=True)
        ],
    )
    record_many(
        session,
        [
            Event(
                principal.actor,
                "request.submitted",
                str(v["public_id"]),
                {
                    "type": RequestType.NEW_INDIVIDUAL.value,
                    "batch": job.public_id,
                    "row": row.number,
                },
            )
            for v, row in zip(values, rows, strict=True)
        ]
        + [
            Event(
                principal.actor,
                "batch.uploaded",
                job.public_id,
                {"rows": len(rows), "unit": requesting.public_id, "key_source": key_source.value},
            )
        ],
    )
    notify.batch_submitted(session, job.public_id, len(rows), requesting.name)
    return job


def _people_ids(session: Session, numbers: Sequence[str | None]) -> dict[str, int]:
    wanted = sorted({n for n in numbers if n})
    found: dict[str, int] = {}
    for start in range(0, len(wanted), 500):
        for pid, number in session.execute(
            select(Person.id, Person.id_number).where(
                Person.id_number.in_(wanted[start : start + 500])
            )
        ):
            found[str(number)] = pid
    return found


# -- approval -------------------------------------------------------------------------------------
def _lock_job(session: Session, public_id: str) -> tuple[BatchJob, Organization | None]:
    job = session.execute(
        select(BatchJob)
        .where(BatchJob.public_id == public_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if job is None:
        raise NotFound(f"job {public_id}", vi=f"lô {public_id}")
    org = session.get(Organization, job.organization_id) if job.organization_id else None
    return job, org


@dataclass(frozen=True)
class BatchDecision:
    job: BatchJob
    approvals: int
    required: int
    issuable: int = 0  # approved rows the job can issue now (the others await their tokens)

    @property
    def approved(self) -> bool:
        return self.approvals >= self.required

    @property
    def runnable(self) -> bool:
        return self.approved and self.issuable > 0


def approve(
    principal: Principal, session: Session, job_public_id: str, *, note: str | None = None
) -> BatchDecision:
    """One administrator approves every submitted request of the batch; when the batch has
    the approvals its type needs, its requests become approved (the caller then runs it)."""
    require(principal, Action.REQUEST_DECIDE)
    if principal.user_id is None:
        raise Forbidden(
            "an approval is given by a named user, not by a system token",
            vi="phê duyệt phải do một người dùng cụ thể thực hiện",
        )
    job, org = _lock_job(session, job_public_id)
    require(principal, Action.REQUEST_DECIDE, org.path if org else None)
    rows = session.execute(
        select(
            CertificateRequest.id,
            CertificateRequest.public_id,
            CertificateRequest.required_approvals,
        )
        .where(CertificateRequest.batch_id == job.id, CertificateRequest.state == S.SUBMITTED)
        .order_by(CertificateRequest.id)
    ).all()
    if not rows:
        raise workflow.RequestTransitionError(
            f"batch {job_public_id} has no submitted request left to approve",
            vi=f"lô {job_public_id} không còn yêu cầu nào chờ duyệt",
        )
    ids = [r.id for r in rows]
    if session.execute(
        select(Approval.id).where(
            Approval.request_id.in_(ids[:1]), Approval.user_id == principal.user_id
        )
    ).first():
        raise Conflict(
            f"you have already approved batch {job_public_id}; it needs another approver",
            vi=f"bạn đã duyệt lô {job_public_id}; cần người duyệt khác",
        )
    now = clock.now()
    session.execute(
        insert(Approval), [{"request_id": i, "user_id": principal.user_id, "at": now} for i in ids]
    )
    count = session.execute(
        select(func.count()).select_from(Approval).where(Approval.request_id == ids[0])
    ).scalar_one()
    required = max(r.required_approvals for r in rows)
    tally = f"phê duyệt {count}/{required}" + (f": {note}" if note else "")
    if count < required:
        _events(session, principal, ids, S.SUBMITTED, S.SUBMITTED, tally, now)
        record(
            session,
            Event(
                principal.actor,
                "batch.approval",
                job.public_id,
                {"requests": len(ids), "tally": f"{count}/{required}"},
            ),
        )
        return BatchDecision(job, count, required)
    session.execute(
        update(_REQUESTS)
        .where(_REQUESTS.c.id.in_(ids))
        .values(state=S.APPROVED.value, decided_at=now, version=_REQUESTS.c.version + 1)
    )
    _events(session, principal, ids, S.SUBMITTED, S.APPROVED, tally, now)
    record_many(
        session,
        [
            Event(
                principal.actor,
                "request.approved",
                r.public_id,
                {"type": RequestType.NEW_INDIVIDUAL.value, "batch": job.public_id},
            )
            for r in rows
        ],
    )
    uploader = session.get(User, job.created_by) if job.created_by else None
    notify.batch_decided(
        session, uploader.email if uploader and uploader.active else None, job.public_id, len(ids)
    )
    return BatchDecision(job, count, required, len(_issuable(session, job.id, lock=False)))


def _events(
    session: Session,
    principal: Principal,
    ids: Sequence[int],
    before: RequestState,
    after: RequestState,
    note: str | None,
    now: datetime,
) -> None:
    session.execute(
        insert(RequestEvent),
        [
            {
                "request_id": i,
                "at": now,
                "actor": principal.actor,
                "from_state": before,
                "to_state": after,
                "note": note,
            }
            for i in ids
        ],
    )


# -- the job ------------------------------------------------------------------------------------
class _Progress:
    """Where a running job's progress goes while its own transaction is still open."""

    def __init__(self, db: Database, settings: Settings, job_id: int, public_id: str) -> None:
        self.db, self.job_id = db, job_id
        self.path = progress_file(settings, public_id) if db.is_sqlite else None

    def write(self, done: int, total: int) -> None:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"done": done, "total": total}))
            os.replace(tmp, self.path)
            return
        with self.db.session() as session:
            session.execute(update(BatchJob).where(BatchJob.id == self.job_id).values(done=done))

    def clear(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)


def progress_file(settings: Settings, public_id: str) -> Path:
    return settings.home / "jobs" / f"{re.sub(r'[^a-z0-9]', '', public_id)}.progress"


def check_runnable(
    principal: Principal, session: Session, job_public_id: str, *, force: bool = False
) -> BatchJob:
    """What :func:`run` checks before it starts, without starting (for callers that run the
    job in the background and must refuse at once)."""
    job = session.execute(
        select(BatchJob).where(BatchJob.public_id == job_public_id)
    ).scalar_one_or_none()
    if job is None:
        raise NotFound(f"job {job_public_id}", vi=f"lô {job_public_id}")
    org = session.get(Organization, job.organization_id) if job.organization_id else None
    require(principal, Action.REQUEST_DECIDE, org.path if org else None)
    if job.state is JobState.DONE:
        raise Conflict(
            f"batch {job_public_id} is already issued", vi=f"lô {job_public_id} đã được cấp xong"
        )
    if job.state is JobState.RUNNING and not force:
        raise Conflict(f"batch {job_public_id} is running", vi=f"lô {job_public_id} đang chạy")
    if not _issuable(session, job.id, lock=False):
        raise workflow.RequestTransitionError(
            f"batch {job_public_id} has no approved request to issue (approve it first)",
            vi=f"lô {job_public_id} chưa có yêu cầu nào được duyệt để cấp",
        )
    return job


def run(
    principal: Principal,
    authority: Authority,
    job_public_id: str,
    *,
    chunk: int = CHUNK,
    force: bool = False,
) -> JobView:
    """Issue the batch's approved requests as one transaction; see the module's notes.

    Returns the job as it ended (done, or failed with the rows at fault). ``force`` re-runs
    a job left "running" by a process that stopped."""
    db, settings = authority.db, authority.settings
    with db.session() as session:
        _lock_job(session, job_public_id)
        job = check_runnable(principal, session, job_public_id, force=force)
        waiting = _issuable(session, job.id, lock=False)
        job.state, job.total, job.done, job.errors = JobState.RUNNING, len(waiting), 0, "[]"
        job.finished_at = None
        job_id = job.id
    channel = _Progress(db, settings, job_id, job_public_id)
    channel.write(0, len(waiting))
    try:
        with db.session() as session:
            _issue_batch(principal, session, authority, job_id, channel, chunk)
    except Exception as exc:
        errors = (
            exc.errors
            if isinstance(exc, BatchFailed)
            else [
                RowError(
                    None,
                    None,
                    None,
                    None,
                    exc.message("vi")
                    if isinstance(exc, KysoError)
                    else "lỗi hệ thống; đã ghi nhật ký",
                    exc.message("en")
                    if isinstance(exc, KysoError)
                    else f"internal error ({type(exc).__name__})",
                )
            ]
        )
        if not isinstance(exc, KysoError):
            log.exception("batch %s failed", job_public_id)
        with db.session() as session:
            session.execute(
                update(BatchJob)
                .where(BatchJob.id == job_id)
                .values(
                    state=JobState.FAILED,
                    done=0,
                    finished_at=clock.now(),
                    errors=json.dumps([e.to_json() for e in errors], ensure_ascii=False),
                )
            )
            record(
                session,
                Event(
                    principal.actor,
                    "batch.failed",
                    job_public_id,
                    {"errors": [e.to_json() for e in errors[:5]]},
                ),
            )
    finally:
        channel.clear()
    with db.read() as session:
        return _job_view(
            session,
            settings,
            session.execute(select(BatchJob).where(BatchJob.id == job_id)).scalar_one(),
        )


def _issuable(session: Session, job_id: int, *, lock: bool) -> list[CertificateRequest]:
    query = (
        select(CertificateRequest)
        .where(CertificateRequest.batch_id == job_id, CertificateRequest.state == S.APPROVED)
        .order_by(CertificateRequest.id)
        .execution_options(populate_existing=True)
    )
    if lock:
        query = query.with_for_update()
    return [
        r
        for r in session.execute(query).scalars()
        if (key := envelope(r).key) is None or key.source is not KeySource.TOKEN
    ]


def _row_error(request: CertificateRequest, exc: Exception) -> RowError:
    row = envelope(request).row
    if isinstance(exc, InvalidInput) and exc.detail:
        field_name = exc.detail.partition(": ")[0]
        column = _BY_FIELD.get(field_name.split(".")[0])
        return RowError(
            row,
            None,
            column.header if column else None,
            field_name if column else None,
            exc.detail_vi or exc.detail,
            exc.detail,
        )
    if isinstance(exc, KysoError):
        return RowError(row, None, None, None, exc.message("vi"), exc.message("en"))
    return RowError(
        row,
        None,
        None,
        None,
        f"lỗi cơ sở dữ liệu ({type(exc).__name__})",
        f"database error ({type(exc).__name__})",
    )


def _issue_batch(
    principal: Principal,
    session: Session,
    authority: Authority,
    job_id: int,
    channel: _Progress,
    chunk: int,
) -> None:
    requests = _issuable(session, job_id, lock=True)
    total = len(requests)
    # The units the rows name and their parents, loaded once and held: the session's identity
    # map keeps objects only while someone references them.
    units = list(
        session.execute(
            select(Organization).where(
                Organization.id.in_(
                    {r.subject_organization_id for r in requests if r.subject_organization_id}
                )
            )
        ).scalars()
    )
    units += (
        session.execute(
            select(Organization).where(
                Organization.id.in_({u.parent_id for u in units if u.parent_id})
            )
        )
        .scalars()
        .all()
    )
    # Everything checked again before the first signature: a row changed since the upload
    # fails here, located, before any key is made.
    prepared: list[workflow.Prepared] = []
    for request in requests:
        try:
            prepared.append(workflow.prepare(session, request))
        except KysoError as exc:
            raise BatchFailed([_row_error(request, exc)]) from exc
    people = _subscribers(principal, session, requests, prepared)
    store = authority.keystore
    parts = [
        list(zip(requests[i : i + chunk], prepared[i : i + chunk], strict=True))
        for i in range(0, total, chunk)
    ]

    def keys(part: list[tuple[CertificateRequest, workflow.Prepared]]) -> list[tuple[Any, str]]:
        made: list[tuple[Any, str]] = []
        for _, p in part:
            assert p.name is not None and p.key is not None
            if p.key.source is KeySource.CSR:
                assert p.key.csr is not None
                made.append((load_csr(p.key.csr.encode()).public_key(), "csr"))
            else:
                handle = store.generate(subject_text(p.name)[:64], p.key.algorithm)
                made.append((handle.public_key(), f"{store.name}:{handle.key_id}"))
        return made

    # The next chunk's keys are made while this one is signed (both release the GIL: ~2x on
    # two cores). Only in the software store: python-pkcs11 on one module is not thread-safe
    # (PERFORMANCE.md), and the CA's own key may live in that module.
    pool = ThreadPoolExecutor(max_workers=1) if store.name == "software" else None
    issued: list[issuance.Issued] = []
    try:
        upcoming = pool.submit(keys, parts[0]) if pool and parts else None
        for index, part in enumerate(parts):
            made = upcoming.result() if upcoming is not None else keys(part)
            upcoming = (
                pool.submit(keys, parts[index + 1]) if pool and index + 1 < len(parts) else None
            )
            specs = []
            for (request, p), (public_key, location) in zip(part, made, strict=True):
                assert p.profile is not None and p.name is not None
                specs.append(
                    issuance.IssueSpec(
                        p.profile,
                        p.name,
                        public_key,
                        emails=p.emails,
                        key_location=location,
                        person_id=people[request.id],
                        organization_id=p.subject_unit.id if p.subject_unit else None,
                    )
                )
            try:
                with session.begin_nested():
                    issued += issuance.issue_many(session, authority, specs, principal.actor)
            except (KysoError, SQLAlchemyError) as exc:
                culprit = _culprit(principal, session, authority, part, specs, exc)
                raise BatchFailed([culprit]) from exc
            channel.write(len(issued), total)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    _finish(principal, session, job_id, requests, prepared, issued, people)
    del units


def _culprit(
    principal: Principal,
    session: Session,
    authority: Authority,
    part: list[tuple[CertificateRequest, workflow.Prepared]],
    specs: list[issuance.IssueSpec],
    exc: Exception,
) -> RowError:
    """The row of a failed chunk at fault: each tried alone in a savepoint rolled back."""
    for (request, _), spec in zip(part, specs, strict=True):
        nested = session.begin_nested()
        try:
            issuance.issue_many(session, authority, [spec], principal.actor)
        except (KysoError, SQLAlchemyError) as own:
            nested.rollback()
            return _row_error(request, own)
        nested.rollback()
    return _row_error(part[0][0], exc)


def _subscribers(
    principal: Principal,
    session: Session,
    requests: Sequence[CertificateRequest],
    prepared: Sequence[workflow.Prepared],
) -> dict[int, int]:
    """Request id → person id: the registry's person by identity number, or a new one made
    from the row (one multi-row INSERT). Known people keep their record as it is."""
    known = _people_ids(
        session, [p.subscriber.id_number if p.subscriber else None for p in prepared]
    )
    result: dict[int, int] = {}
    new: list[tuple[int, dict[str, Any]]] = []
    now = clock.now()
    made: dict[str, int] = {}
    for request, p in zip(requests, prepared, strict=True):
        form = p.subscriber
        assert form is not None and p.subject_unit is not None
        number = form.id_number or ""
        if request.person_id is not None:
            result[request.id] = request.person_id
        elif number in known:
            result[request.id] = known[number]
        else:
            new.append(
                (
                    request.id,
                    {
                        "public_id": f.new_public_id(),
                        "full_name": form.full_name,
                        "date_of_birth": form.date_of_birth,
                        "id_number": form.id_number,
                        "id_issue_date": form.id_issue_date,
                        "id_issue_place": form.id_issue_place,
                        "position": form.position,
                        "organization_id": p.subject_unit.id,
                        "email": form.email,
                        "mobile": form.mobile,
                        "created_at": now,
                        "updated_at": now,
                        "version": 1,
                    },
                )
            )
    if new:
        ids = list(
            session.execute(
                insert(Person).returning(Person.id, sort_by_parameter_order=True),
                [v for _, v in new],
            ).scalars()
        )
        for (request_id, values), person_id in zip(new, ids, strict=True):
            result[request_id] = person_id
            made[values["public_id"]] = person_id
        units = {p.subject_unit.id: p.subject_unit.public_id for p in prepared if p.subject_unit}
        record_many(
            session,
            [
                Event(
                    principal.actor,
                    "person.created",
                    v["public_id"],
                    {"full_name": v["full_name"], "organization": units[v["organization_id"]]},
                )
                for _, v in new
            ],
        )
    return result


def _finish(
    principal: Principal,
    session: Session,
    job_id: int,
    requests: Sequence[CertificateRequest],
    prepared: Sequence[workflow.Prepared],
    issued: Sequence[issuance.Issued],
    people: dict[int, int],
) -> None:
    now = clock.now()
    table = _REQUESTS
    session.execute(
        update(table)
        .where(table.c.id == bindparam("b_id"))
        .values(
            state=S.ISSUED.value,
            issued_at=now,
            certificate_id=bindparam("b_cert"),
            person_id=bindparam("b_person"),
            version=table.c.version + 1,
        ),
        [
            {"b_id": r.id, "b_cert": i.row.id, "b_person": people[r.id]}
            for r, i in zip(requests, issued, strict=True)
        ],
    )
    session.execute(
        insert(RequestEvent),
        [
            {
                "request_id": r.id,
                "at": now,
                "actor": principal.actor,
                "from_state": S.APPROVED,
                "to_state": S.ISSUED,
                "note": f"chứng thư {i.serial}",
            }
            for r, i in zip(requests, issued, strict=True)
        ],
    )
    record_many(
        session,
        [
            Event(
                principal.actor,
                "request.issued",
                r.public_id,
                {"type": r.type.value, "certificate": i.serial},
            )
            for r, i in zip(requests, issued, strict=True)
        ],
    )
    notify.enqueue_many(
        session,
        [
            notify.issued_mail(p.notify_to, r.public_id, i.serial, i.row.subject, i.row.not_after)
            for r, p, i in zip(requests, prepared, issued, strict=True)
        ],
    )
    done = session.execute(
        select(func.count())
        .select_from(CertificateRequest)
        .where(
            CertificateRequest.batch_id == job_id,
            CertificateRequest.state.in_([S.ISSUED, S.HANDED_OVER]),
        )
    ).scalar_one()
    session.execute(
        update(BatchJob)
        .where(BatchJob.id == job_id)
        .values(state=JobState.DONE, done=done, total=done, finished_at=now, errors="[]")
    )
    job_public_id = session.execute(
        select(BatchJob.public_id).where(BatchJob.id == job_id)
    ).scalar_one()
    record(
        session,
        Event(principal.actor, "batch.issued", job_public_id, {"certificates": len(issued)}),
    )


# -- reading ------------------------------------------------------------------------------------
def _job_view(session: Session, settings: Settings, job: BatchJob) -> JobView:
    done, total = job.done, job.total
    if job.state is JobState.RUNNING:
        path = progress_file(settings, job.public_id)
        try:
            live = json.loads(path.read_text())
            done, total = int(live["done"]), int(live["total"])
        except (OSError, ValueError, KeyError):
            pass
    counts = {
        state.value: n
        for state, n in session.execute(
            select(CertificateRequest.state, func.count())
            .where(CertificateRequest.batch_id == job.id)
            .group_by(CertificateRequest.state)
        )
    }
    unit = session.get(Organization, job.organization_id) if job.organization_id else None
    return JobView(
        job.public_id,
        job.kind,
        job.state,
        total,
        done,
        json.loads(job.errors),
        unit.public_id if unit else None,
        job.created_at,
        job.finished_at,
        counts,
    )


def get(principal: Principal, session: Session, settings: Settings, public_id: str) -> JobView:
    row = session.execute(
        select(BatchJob, Organization.path)
        .outerjoin(Organization, BatchJob.organization_id == Organization.id)
        .where(BatchJob.public_id == public_id)
    ).first()
    if row is None:
        raise NotFound(f"job {public_id}", vi=f"lô {public_id}")
    require(principal, Action.REQUEST_READ, row[1])
    if row[1] is None and not principal.province_wide:
        raise Forbidden("outside your unit", vi="ngoài phạm vi đơn vị của bạn")
    return _job_view(session, settings, row[0])


def search(
    principal: Principal, session: Session, settings: Settings, *, offset: int = 0, limit: int = 50
) -> f.Page[JobView]:
    require(principal, Action.REQUEST_READ)
    query = (
        select(BatchJob)
        .outerjoin(Organization, BatchJob.organization_id == Organization.id)
        .where(visible(principal, Organization.path))
    )
    total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    jobs = session.execute(query.order_by(BatchJob.id.desc()).offset(offset).limit(limit)).scalars()
    return f.Page([_job_view(session, settings, j) for j in jobs], total, offset, limit)


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
