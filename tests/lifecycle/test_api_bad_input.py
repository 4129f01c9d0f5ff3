"""Bad input on every lifecycle endpoint: a 4xx with a JSON body, never a 500, and nothing
left behind."""

from __future__ import annotations

import io
import zipfile

import pytest
from sqlalchemy import func, select

from kyso.lifecycle import bulk
from kyso.store.models import BatchJob, CertificateRequest

from .conftest import World, app_client, individual_form
from .test_bulk import rows, xlsx

UNKNOWN = "zzzzzzzzzzzzzzzz"


def _refused(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body.get("message"), str) and body["message"]
    if code:
        assert body["code"] == code, body
    return body


def _counts(world: World) -> tuple[int, int]:
    with world.ctx.db.read() as session:
        return (
            session.scalar(select(func.count()).select_from(CertificateRequest)),
            session.scalar(select(func.count()).select_from(BatchJob)),
        )


def test_bad_request_bodies_and_parameters_are_refused_cleanly(world: World, api) -> None:
    h = world.headers("officer")
    before = _counts(world)
    for body in (
        {"type": "new_pet", "form": {}},
        {"type": "new_individual", "form": "not an object"},
        {"type": "new_individual", "form": {"favourite_colour": "đỏ"}},
        {"type": "new_individual", "form": {"full_name": ["a", "b"]}},
        {"type": "new_individual", "form": {"full_name": "Nguyễn\x00An"}},
        {"type": "new_individual", "form": {"date_of_birth": "31/02/1980"}},
        {"type": "new_individual", "form": {"individual": {"x": 1}}},
        {"type": "new_individual", "form": {}, "csr": "-----BEGIN CERTIFICATE REQUEST-----"},
        {"type": "new_individual", "form": {}, "csr": "x\x00"},
        {"type": "new_individual", "form": {}, "surprise": True},
        {"type": "new_individual", "form": {}, "key_source": "floppy"},
        {"type": "renewal_change", "form": {"kind": "renewal", "certificate_serial": "zz"}},
        {"type": "renewal_change", "form": {"kind": "renewal", "certificate_serial": "abcd"}},
        {"type": "revocation", "form": {"reason": "certificate-hold"}},
        {"type": "revocation", "form": {"certificate_serial": 12.5}},
        [1, 2, 3],
    ):
        _refused(api.post("/api/v1/requests", headers=h, json=body), 422)
    _refused(api.post("/api/v1/requests", headers=h, content=b"{not json", params={}), 422)
    _refused(
        api.post(
            "/api/v1/requests",
            headers=h,
            json={"type": "new_individual", "form": individual_form(), "device": UNKNOWN},
        ),
        404,
    )
    _refused(
        api.post(
            "/api/v1/requests",
            headers=h,
            json={"type": "new_individual", "form": individual_form(), "unit": UNKNOWN},
        ),
        404,
    )
    _refused(api.post("/api/v1/requests", json={"type": "new_individual"}), 401)
    for params in (
        {"state": "sleeping"},
        {"limit": 0},
        {"limit": 10_000},
        {"offset": -1},
        {"since": "yesterday"},
        {"type": "x"},
        {"q": "a\x00"},
    ):
        _refused(api.get("/api/v1/requests", headers=h, params=params), 422)
    _refused(api.get("/api/v1/requests", headers=h, params={"unit": UNKNOWN}), 404)
    assert _counts(world) == before


def test_unknown_ids_answer_404_on_every_request_endpoint(world: World, api) -> None:
    h = world.headers("admin1")
    _refused(api.get(f"/api/v1/requests/{UNKNOWN}", headers=h), 404, "not_found")
    _refused(api.patch(f"/api/v1/requests/{UNKNOWN}", headers=h, json={"form": {}}), 404)
    for action, body in (
        ("submit", None),
        ("cancel", {}),
        ("approve", {}),
        ("reject", {"reason": "không"}),
        ("issue", {}),
        ("handover", {}),
    ):
        _refused(api.post(f"/api/v1/requests/{UNKNOWN}/{action}", headers=h, json=body), 404)
    _refused(api.get(f"/api/v1/jobs/{UNKNOWN}", headers=h), 404)
    _refused(api.post(f"/api/v1/jobs/{UNKNOWN}/approve", headers=h), 404)
    _refused(api.post(f"/api/v1/jobs/{UNKNOWN}/run", headers=h), 404)
    _refused(api.post(f"/api/v1/devices/{UNKNOWN}/lost", headers=h), 404)
    for path in ("/api/v1/requests/a%00b", "/api/v1/jobs/a%00b"):
        _refused(api.get(path, headers=h), 422)
    _refused(api.post("/api/v1/devices/a%00b/lost", headers=h), 422)
    _refused(
        api.post(
            "/api/v1/requests/bulk",
            headers=h,
            data={"unit": "a\x00"},
            files={"file": ("ds.xlsx", xlsx(rows(1)), bulk.XLSX_TYPE)},
        ),
        422,
    )
    _refused(api.get("/api/v1/certificates/expiring", headers=h, params={"unit": UNKNOWN}), 404)
    _refused(api.get("/api/v1/reports/turnaround", headers=h, params={"unit": UNKNOWN}), 404)
    # wrong types on known paths
    created = api.post(
        "/api/v1/requests",
        headers=world.headers("officer"),
        json={"type": "new_individual", "form": individual_form()},
    ).json()
    rid = created["id"]
    _refused(
        api.patch(
            f"/api/v1/requests/{rid}", headers=world.headers("officer"), json={"version": "one"}
        ),
        422,
    )
    _refused(
        api.patch(
            f"/api/v1/requests/{rid}",
            headers=world.headers("officer"),
            json={"version": 99, "form": {"position": "x"}},
        ),
        409,
        "conflict",
    )
    _refused(api.post(f"/api/v1/requests/{rid}/reject", headers=h, json={"reason": ""}), 422)
    _refused(api.post(f"/api/v1/requests/{rid}/reject", headers=h, json={}), 422)
    _refused(api.post(f"/api/v1/requests/{rid}/approve", headers=h, json={"note": 5}), 422)
    _refused(api.post(f"/api/v1/requests/{rid}/approve", headers=h), 409, "invalid_transition")
    _refused(api.post(f"/api/v1/requests/{rid}/issue", headers=h, json={"token_pin": 1234}), 422)
    for params in ({"days": 0}, {"days": "thirty"}, {"days": 5000}):
        _refused(api.get("/api/v1/certificates/expiring", headers=h, params=params), 422)
    for params in ({"since": "last week"}, {"type": "unknown"}):
        _refused(api.get("/api/v1/reports/turnaround", headers=h, params=params), 422)


def _zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _corrupt_sheet() -> bytes:
    good = zipfile.ZipFile(io.BytesIO(xlsx(rows(2))))
    entries = {i.filename: good.read(i.filename) for i in good.infolist()}
    entries["xl/worksheets/sheet1.xml"] = b"<worksheet><sheetData><row><c r='A1"
    return _zip(entries)


@pytest.mark.parametrize(
    "name,data",
    [
        ("empty", b""),
        ("text", "Họ và tên,Ngày sinh\n".encode()),
        ("random", bytes(range(256)) * 10),
        ("zip-not-xlsx", _zip({"hello.txt": b"xin chao"})),
        ("corrupt-sheet", _corrupt_sheet()),
        ("no-header", xlsx([["a", "b", "c"]] * 3, headers=["x", "y", "z"], title=False)),
        ("header-only", xlsx([], title=False)),
    ],
)
def test_a_malformed_workbook_is_refused_with_422_and_creates_nothing(
    world: World, api, name: str, data: bytes
) -> None:
    before = _counts(world)
    _refused(
        api.post(
            "/api/v1/requests/bulk",
            headers=world.headers("officer"),
            files={"file": ("ds.xlsx", data, bulk.XLSX_TYPE)},
        ),
        422,
    )
    assert _counts(world) == before


def test_bulk_upload_without_a_file_or_with_a_bad_key_source_is_422(world: World, api) -> None:
    h = world.headers("officer")
    _refused(api.post("/api/v1/requests/bulk", headers=h), 422)
    _refused(
        api.post(
            "/api/v1/requests/bulk",
            headers=h,
            data={"key_source": "floppy"},
            files={"file": ("ds.xlsx", xlsx(rows(1)), bulk.XLSX_TYPE)},
        ),
        422,
    )
    _refused(
        api.post(
            "/api/v1/requests/bulk",
            headers=h,
            data={"unit": UNKNOWN},
            files={"file": ("ds.xlsx", xlsx(rows(1)), bulk.XLSX_TYPE)},
        ),
        404,
    )


def test_an_oversized_upload_is_413(world: World, instance, _apps) -> None:
    small = app_client(instance, _apps, max_upload_bytes=50_000)
    before = _counts(world)
    _refused(
        small.post(
            "/api/v1/requests/bulk",
            headers=world.headers("officer"),
            files={"file": ("ds.xlsx", b"PK" + b"\0" * 60_000, bulk.XLSX_TYPE)},
        ),
        413,
        "too_large",
    )
    assert _counts(world) == before


def test_a_zip_bomb_is_refused_before_it_is_expanded() -> None:
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/worksheets/sheet1.xml", b"\0" * 2_000_000)
    assert len(bomb.getvalue()) < 10_000
    from kyso.errors import TooLarge

    with pytest.raises(TooLarge):
        bulk.read(bomb.getvalue())
