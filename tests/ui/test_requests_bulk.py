"""Bulk lists on the pages: upload an XLSX of form 01 rows, follow the job's progress, read
the per-row problems of a bad list."""

from __future__ import annotations

import io
import re
import secrets
from collections.abc import Callable
from datetime import date
from typing import Any

from openpyxl import Workbook
from sqlalchemy import func, select
from support.world import World, new_cccd

from kyso.lifecycle import bulk
from kyso.store.models import BatchJob, CertificateRequest, RequestState

from .conftest import Web

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
]


def row(n: int, **changes: Any) -> list[Any]:
    born = date(1970 + n, 3, 1 + n)
    values = {
        "no": n + 1,
        "name": f"Ma Văn Tiến {n}",
        "born": born.strftime("%d/%m/%Y"),
        "cccd": new_cccd(born),
        "issued": "15/03/2021",
        "place": "Cục Cảnh sát QLHC về TTXH",
        "email": f"tien{n}.{secrets.token_hex(3)}@backan.gov.vn",
        "unit": "UBND xã Chu Hương",
        "province": "Bắc Kạn",
        "position": "Chủ tịch UBND xã",
        "mobile": f"09{secrets.randbelow(10**8):08d}",
    }
    values.update(changes)
    return list(values.values())


def xlsx(rows: list[list[Any]]) -> bytes:
    book = Workbook()
    sheet = book.active
    sheet.append(["DANH SÁCH ĐỀ NGHỊ CẤP CHỨNG THƯ SỐ"])
    sheet.append(HEADERS)
    for values in rows:
        sheet.append(values)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _upload(officer: Web, data: bytes) -> Any:
    return officer.post(
        "/requests/bulk",
        {"key_source": "server"},
        files={"file": ("danh-sach.xlsx", data, bulk.XLSX_TYPE)},
    )


def _jobs(world: World) -> int:
    with world.ctx.db.read() as session:
        return session.scalar(select(func.count()).select_from(BatchJob)) or 0


def test_an_uploaded_list_becomes_a_job_whose_progress_finishes_once_approved(
    world: World, web_for: Callable[..., Web]
) -> None:
    officer, admin = web_for("officer"), web_for("admin1")
    page = officer.get("/requests/bulk")
    assert page.status_code == 200 and 'type="file"' in page.text
    template = officer.get("/requests/bulk/template")
    assert template.status_code == 200 and template.content[:2] == b"PK"

    answer = _upload(officer, xlsx([row(0), row(1), row(2)]))
    assert answer.status_code == 303, answer.text
    job = re.fullmatch(r"/requests/bulk/([a-z0-9]+)", answer.headers["location"])
    assert job
    job_id = job.group(1)

    waiting = officer.get(f"/requests/bulk/{job_id}")
    assert waiting.status_code == 200
    assert "<progress" in waiting.text and "0 / 3" not in waiting.text
    assert "Chờ phê duyệt: 3" in waiting.text
    assert f'action="/requests/bulk/{job_id}/approve"' not in waiting.text  # officer
    assert officer.post(f"/requests/bulk/{job_id}/approve").status_code == 403

    listed = admin.get(f"/requests?batch={job_id}")
    assert listed.text.count('href="/requests/') >= 3
    queue = admin.get("/approvals")
    assert f'href="/requests/bulk/{job_id}"' in queue.text

    shown = admin.get(f"/requests/bulk/{job_id}")
    assert f'action="/requests/bulk/{job_id}/approve"' in shown.text
    approved = admin.post(f"/requests/bulk/{job_id}/approve")
    assert approved.status_code == 303, approved.text
    # the issuance ran as the response's background task; the fragment the page polls says so
    fragment = officer.get(f"/requests/bulk/{job_id}/progress")
    assert fragment.status_code == 200
    assert "data-finished" in fragment.text
    assert '<progress max="100" value="100.0"' in fragment.text
    assert "3 / 3" not in fragment.text and "3 trong 3" in fragment.text
    with world.ctx.db.read() as session:
        states = (
            session.execute(
                select(CertificateRequest.state)
                .join(BatchJob, CertificateRequest.batch_id == BatchJob.id)
                .where(BatchJob.public_id == job_id)
            )
            .scalars()
            .all()
        )
    assert states == [RequestState.ISSUED] * 3
    done = officer.get(f"/requests/bulk/{job_id}")
    assert "data-poll" not in done.text and "Đã cấp: 3" in done.text


def test_a_bad_list_creates_nothing_and_names_each_row_and_column(
    world: World, web_for: Callable[..., Web]
) -> None:
    officer = web_for("officer")
    before = _jobs(world)
    data = xlsx([row(0), row(1, email="không-phải-email"), row(2, unit="UBND xã Không Có")])
    answer = _upload(officer, data)
    assert answer.status_code == 422
    text = answer.text
    assert "chưa có yêu cầu nào được tạo" in text
    cells = re.findall(r'<tr><td class="num">(\d+)</td><td>([A-Z]+)', text)
    assert ("4", "G") in cells  # row 4 (title, header, first row), the e-mail column
    assert ("5", "H") in cells  # row 5, the unit column
    assert "UBND xã Không Có" in text
    assert _jobs(world) == before

    not_xlsx = _upload(officer, b"%PDF-1.7 not a workbook")
    assert not_xlsx.status_code == 422
    assert 'id="e-file"' in not_xlsx.text and "XLSX" in not_xlsx.text
    nothing = officer.post("/requests/bulk", {"key_source": "server"})
    assert nothing.status_code == 422 and 'id="e-file"' in nothing.text
    assert _jobs(world) == before


def test_an_officer_of_another_district_cannot_open_the_job(
    world: World, web_for: Callable[..., Web]
) -> None:
    officer = web_for("officer")
    answer = _upload(officer, xlsx([row(5)]))
    job_id = answer.headers["location"].rsplit("/", 1)[-1]
    other = web_for("officer_ns")
    assert other.get(f"/requests/bulk/{job_id}").status_code in (403, 404)
    assert other.get(f"/requests/bulk/{job_id}/progress").status_code in (403, 404)
    assert job_id not in other.get("/requests/bulk").text
