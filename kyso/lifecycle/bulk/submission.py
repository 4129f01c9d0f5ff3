"""A unit officer's list becomes a batch: every row checked — the form's field rules, the unit
named in the row (found in the officer's part of the tree), the subject it makes (RFC 5280
lengths), the CSR if the row has one, duplicates in the file or among open requests — and,
only if every row is right, one job and one submitted request per row, in the caller's
transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from kyso import clock
from kyso.audit.log import Event, record_many
from kyso.errors import Forbidden, InvalidInput, KysoError
from kyso.keys.base import KeyAlgorithm
from kyso.lifecycle import forms, notify, subjects
from kyso.lifecycle.bulk.jobs import KIND
from kyso.lifecycle.bulk.sheet import BulkRejected, RowError, Sheet, read
from kyso.lifecycle.forms import IndividualForm, KeyChoice, KeySource
from kyso.lifecycle.workflow.drafts import requesting_unit
from kyso.lifecycle.workflow.states import DEFAULT_ALGORITHM, Envelope, S
from kyso.pki.csr import load_csr
from kyso.registry import fields as f
from kyso.registry.access import Action, Principal, require
from kyso.registry.fields import FieldProblem
from kyso.settings import Settings
from kyso.store.models import (
    BatchJob,
    CertificateRequest,
    JobState,
    Organization,
    Person,
    RequestEvent,
    RequestType,
)

# Keys the job makes for rows without a CSR: P-256 takes milliseconds where RSA-2048 takes
# ~30 ms (see the package's notes).
BULK_ALGORITHM = KeyAlgorithm.EC_P256


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


def _error(sheet: Sheet | None, row: int | None, problem: FieldProblem) -> RowError:
    column, header = sheet.where(row, problem.field) if sheet else (None, None)
    return RowError(row, column, header, problem.field, problem.vi, problem.en)


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


# -- the batch ----------------------------------------------------------------------------------
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
    requesting = requesting_unit(principal, session, unit)
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
    ids = people_ids(session, [r.form.id_number for r in rows])
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
                BULK_ALGORITHM if key_source is KeySource.SERVER else DEFAULT_ALGORITHM,
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


def people_ids(session: Session, numbers: Sequence[str | None]) -> dict[str, int]:
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
