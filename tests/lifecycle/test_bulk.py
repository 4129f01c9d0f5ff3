"""Bulk issuance from a unit's XLSX list (form 01 columns): checked before anything exists,
issued as one job with progress, all or nothing."""

from __future__ import annotations

import io
import secrets
import threading
import time
from datetime import date, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from openpyxl import Workbook, load_workbook
from sqlalchemy import func, select

from kyso import clock
from kyso.audit.log import verify
from kyso.lifecycle import bulk, workflow
from kyso.lifecycle.bulk import sheet as bulk_sheet
from kyso.pki import lint
from kyso.pki.authority import spki_sha256
from kyso.store.models import (
    BatchJob,
    Certificate,
    CertificateRequest,
    CompromisedKey,
    JobState,
    Notification,
    Person,
    RequestState,
)

from .conftest import World, make_csr, new_cccd

HEADERS = [
    "STT",
    "Họ và tên",
    "Ngày sinh",
    "Số CCCD",
    "Ngày cấp",
    "Nơi cấp",
    "Thư điện tử công vụ",
    "Cơ quan, đơn vị",
    "Tỉnh/Thành phố",
    "Chức vụ",
    "Số điện thoại di động",
    "Số hiệu chứng thư số cũ",
    "CSR (PEM)",
]
SURNAMES = ["Nguyễn", "Trần", "Hoàng", "Nông", "Triệu", "Hà", "Lý", "Ma", "Đàm", "Lục"]
GIVEN = ["Văn An", "Thị Bình", "Đức Cường", "Thị Dung", "Văn Giang", "Thị Hạnh", "Minh Khoa"]


def rows(count: int, *, csr_every: int = 0) -> list[list[Any]]:
    made = []
    for n in range(count):
        born = date(1965 + n % 30, 1 + n % 12, 1 + n % 27)
        number = new_cccd(born, female=n % 2 == 1)
        made.append(
            [
                n + 1,
                f"{SURNAMES[n % len(SURNAMES)]} {GIVEN[n % len(GIVEN)]} {n}",
                datetime(born.year, born.month, born.day) if n % 2 else born.strftime("%d/%m/%Y"),
                int(number) if n % 3 == 0 else number,  # Excel drops the leading zeros of numbers
                "15/03/2021",
                "Cục Cảnh sát QLHC về TTXH",
                f"canbo{n}.{secrets.token_hex(3)}@backan.gov.vn",
                "UBND xã Chu Hương" if n % 2 else "Phòng Tài nguyên và Môi trường",
                "Bắc Kạn",
                "Chủ tịch UBND xã" if n % 2 else "Trưởng phòng",
                f"09{secrets.randbelow(10**8):08d}",
                None,
                make_csr() if csr_every and n % csr_every == 0 else None,
            ]
        )
    return made


def xlsx(data: list[list[Any]], headers: list[str] = HEADERS, title: bool = True) -> bytes:
    book = Workbook()
    sheet = book.active
    if title:
        sheet.append(["DANH SÁCH ĐỀ NGHỊ CẤP CHỨNG THƯ SỐ — UBND huyện Ba Bể"])
        sheet.append([])
    sheet.append(headers)
    for row in data:
        sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _counts(world: World) -> tuple[int, int, int, int]:
    with world.ctx.db.read() as session:
        return (
            session.scalar(select(func.count()).select_from(CertificateRequest)),
            session.scalar(select(func.count()).select_from(BatchJob)),
            session.scalar(select(func.count()).select_from(Certificate)),
            session.scalar(select(func.count()).select_from(Person)),
        )


def _upload(world: World, data: bytes) -> str:
    with world.ctx.db.session() as session:
        return bulk.upload(world.who("officer"), session, world.ctx.settings, data).public_id


def _approve(world: World, job: str, who: str = "admin1") -> bulk.BatchDecision:
    with world.ctx.db.session() as session:
        return bulk.approve(world.who(who), session, job)


def test_a_list_with_bad_rows_creates_nothing_and_names_each_row_and_column(
    world: World, api
) -> None:
    data = rows(8)
    data[1][3] = "12345"  # row 5: CCCD too short
    data[2][6] = "không phải thư"  # row 6: e-mail
    data[3][7] = "UBND xã Không Có"  # row 7: unknown unit
    data[4][2] = "01/01/2090"  # row 8: born in the future
    data[5][2], data[5][3] = data[0][2], data[0][3]  # row 9: same person as row 4
    data[6][1] = None  # row 10: no name
    data[7][12] = "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----"
    before = _counts(world)
    response = api.post(
        "/api/v1/requests/bulk",
        headers=world.headers("officer"),
        files={"file": ("ds.xlsx", xlsx(data), bulk.XLSX_TYPE)},
    )
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "bulk_invalid"
    found = {(e["row"], e["column"], e["field"]) for e in body["errors"]}
    assert {
        (5, "D", "id_number"),
        (6, "G", "email"),
        (7, "H", "organization"),
        (8, "C", "date_of_birth"),
        (9, "D", "id_number"),
        (10, "B", "full_name"),
        (11, "M", "csr"),
    } <= found
    messages = {(e["row"], e["column"]): e["message"] for e in body["errors"]}
    assert "12 chữ số" in messages[(5, "D")]
    assert "trùng với dòng 4" in messages[(9, "D")]
    assert "UBND xã Không Có" in messages[(7, "H")]
    assert all(e["header"] for e in body["errors"] if e["column"])
    assert _counts(world) == before


def test_a_unit_name_shared_by_two_districts_is_found_inside_the_officers_own(
    world: World,
) -> None:
    # "Phòng Tài nguyên và Môi trường" exists in Ba Bể and in Ngân Sơn; the Ba Bể officer
    # means Ba Bể's. The province administrator must say which.
    sheet = bulk_sheet._rows(iter([HEADERS, rows(1)[0]]), 10)
    with world.ctx.db.read() as session:
        [row] = bulk.check_rows(world.who("officer"), session, sheet, world.unit("babe"))
        assert row.unit.id == world.unit("tnmt").id
        with pytest.raises(bulk.BulkRejected) as refused:
            bulk.check_rows(world.who("admin1"), session, sheet, world.unit("province"))
    assert "2 đơn vị tên" in refused.value.errors[0].message


def test_the_template_is_read_back_and_a_missing_column_is_reported(world: World) -> None:
    sheet = load_workbook(io.BytesIO(bulk.template())).active
    headers = [c.value for c in sheet[2]]
    assert headers[:4] == ["STT", "Họ và tên", "Ngày sinh", "Số CCCD"]
    with pytest.raises(bulk.BulkRejected) as refused:
        bulk.read(xlsx(rows(1), headers=[*HEADERS[:5], "?", *HEADERS[6:]]))
    assert refused.value.errors[0].message == "thiếu cột 'Nơi cấp'"


def test_a_hundred_rows_are_issued_as_one_job_whose_progress_reaches_100(world: World) -> None:
    job = _upload(world, xlsx(rows(100, csr_every=10)))
    with world.ctx.db.read() as session:
        view = bulk.get(world.who("officer"), session, world.ctx.settings, job)
    assert (view.state, view.total, view.requests) == (JobState.PENDING, 100, {"submitted": 100})
    decision = _approve(world, job)
    assert decision.approved

    seen: list[int] = []
    outcome: dict[str, Any] = {}
    thread = threading.Thread(
        target=lambda: outcome.setdefault(
            "job", bulk.run(world.who("admin1"), world.ctx.authority, job, chunk=10)
        )
    )
    thread.start()
    while thread.is_alive():
        with world.ctx.db.read() as session:
            seen.append(bulk.get(world.who("officer"), session, world.ctx.settings, job).done)
        time.sleep(0.01)
    thread.join()
    final = outcome["job"]
    assert final.state is JobState.DONE, final.errors
    assert (final.done, final.total, final.percent) == (100, 100, 100.0)
    assert any(0 < done < 100 for done in seen), seen  # it was seen moving
    assert seen == sorted(seen)
    with world.ctx.db.read() as session:
        requests = list(
            session.execute(
                select(CertificateRequest)
                .where(
                    CertificateRequest.batch_id
                    == select(BatchJob.id).where(BatchJob.public_id == job).scalar_subquery()
                )
                .order_by(CertificateRequest.id)
            ).scalars()
        )
        certs = {
            c.id: c
            for c in session.execute(
                select(Certificate).where(Certificate.id.in_([r.certificate_id for r in requests]))
            ).scalars()
        }
        mails = session.scalar(
            select(func.count())
            .select_from(Notification)
            .where(
                Notification.kind == "certificate.issued",
                Notification.body.contains(requests[0].public_id),
            )
        )
    assert {r.state for r in requests} == {RequestState.ISSUED}
    assert len(certs) == 100
    assert sum(c.key_location == "csr" for c in certs.values()) == 10
    assert sum(c.key_location.startswith("software:") for c in certs.values()) == 90
    assert all(c.person_id for c in certs.values())
    assert mails == 1
    sample = certs[requests[1].certificate_id]
    assert sample.subject.endswith(",OU=UBND xã Chu Hương,O=UBND huyện Ba Bể,L=Bắc Kạn,C=VN")
    with world.ctx.db.read() as session:
        assert verify(session).ok


def test_a_failure_in_the_middle_of_a_batch_leaves_no_certificate_and_no_issued_request(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = rows(40)
    compromised = ec.generate_private_key(ec.SECP256R1())
    data[27][12] = make_csr_with(compromised)
    lint_victim = data[15][1]
    job = _upload(world, xlsx(data))
    assert _approve(world, job).approved
    before = _counts(world)

    # 1. a row's subject fails pkilint (the lint is made to fail for that one name)
    real = lint.lint_certificate

    def failing(der: bytes) -> list[lint.Finding]:
        if lint_victim.encode() in der:
            return [
                lint.Finding(
                    "ERROR",
                    "test.injected",
                    "certificate.tbsCertificate.subject",
                    "injected failure",
                )
            ]
        return real(der)

    monkeypatch.setattr(lint, "lint_certificate", failing)
    first = bulk.run(world.who("admin1"), world.ctx.authority, job, chunk=10)
    assert first.state is JobState.FAILED
    assert [e["row"] for e in first.errors] == [4 + 15]  # title, blank, header, then rows
    assert "test.injected" in first.errors[0]["message_en"]
    assert _counts(world) == before  # no certificate, no person
    _assert_nothing_issued(world, job)
    monkeypatch.undo()

    # 2. the key of another row's CSR was revoked for key compromise meanwhile (a constraint
    #    of the CA: such a key is never certified again)
    public = compromised.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with world.ctx.db.session() as session:
        session.add(
            CompromisedKey(spki_sha256=spki_sha256(public), certificate_serial="1", at=clock.now())
        )
    second = bulk.run(world.who("admin1"), world.ctx.authority, job, chunk=10)
    assert second.state is JobState.FAILED
    assert [e["row"] for e in second.errors] == [4 + 27]
    assert "compromise" in second.errors[0]["message_en"]
    assert _counts(world) == before
    _assert_nothing_issued(world, job)

    # 3. the administrator refuses that row and runs the batch again: the rest is issued
    with world.ctx.db.read() as session:
        culprit = next(
            r.public_id
            for r in session.execute(
                select(CertificateRequest).where(
                    CertificateRequest.batch_id
                    == select(BatchJob.id).where(BatchJob.public_id == job).scalar_subquery()
                )
            ).scalars()
            if workflow.envelope(r).row == 4 + 27
        )
    with world.ctx.db.session() as session:
        workflow.reject(world.who("admin1"), session, culprit, "khóa đã bị lộ")
    third = bulk.run(world.who("admin1"), world.ctx.authority, job, chunk=10)
    assert third.state is JobState.DONE and third.done == 39
    assert third.requests == {"issued": 39, "rejected": 1}


def make_csr_with(key: ec.EllipticCurvePrivateKey) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def _assert_nothing_issued(world: World, job: str) -> None:
    with world.ctx.db.read() as session:
        states = set(
            session.execute(
                select(CertificateRequest.state).where(
                    CertificateRequest.batch_id
                    == select(BatchJob.id).where(BatchJob.public_id == job).scalar_subquery()
                )
            ).scalars()
        )
        assert states == {RequestState.APPROVED}
        assert verify(session).ok
    assert not bulk.progress_file(world.ctx.settings, job).exists()


def test_a_batch_goes_through_the_api_upload_approve_and_progress(world: World, api) -> None:
    response = api.post(
        "/api/v1/requests/bulk",
        headers=world.headers("officer"),
        files={"file": ("ds.xlsx", xlsx(rows(5)), bulk.XLSX_TYPE)},
    )
    assert response.status_code == 202, response.text
    job = response.json()
    assert (job["state"], job["total"], job["percent"]) == ("pending", 5, 0.0)
    refused = api.post(f"/api/v1/jobs/{job['id']}/approve", headers=world.headers("officer"))
    assert refused.status_code == 403
    approved = api.post(f"/api/v1/jobs/{job['id']}/approve", headers=world.headers("admin2"))
    assert approved.status_code == 202, approved.text
    # the issuance ran as a background task of that response
    progress = api.get(f"/api/v1/jobs/{job['id']}", headers=world.headers("officer")).json()
    assert (progress["state"], progress["done"], progress["percent"]) == ("done", 5, 100.0)
    assert progress["requests"] == {"issued": 5}
    again = api.post(f"/api/v1/jobs/{job['id']}/approve", headers=world.headers("admin1"))
    assert again.status_code == 409
    listed = api.get(
        "/api/v1/requests", headers=world.headers("officer"), params={"batch": job["id"]}
    ).json()
    assert listed["total"] == 5
    template = api.get("/api/v1/requests/bulk/template", headers=world.headers("officer"))
    assert template.status_code == 200 and template.content[:2] == b"PK"
