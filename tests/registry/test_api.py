"""/api/v1 registry endpoints as another system calls them: tokens acting as demo users."""

from __future__ import annotations

import io
import secrets
import subprocess

import pytest
from fastapi.testclient import TestClient
from openpyxl import Workbook, load_workbook
from sqlalchemy import select

from kyso.api import clients
from kyso.registry import spreadsheets
from kyso.settings import Settings
from kyso.store.models import User
from kyso.web.app import create_app
from registry.conftest import cccd_for, new_code

ALL = ["registry:read", "registry:write", "users:admin"]


@pytest.fixture(scope="module")
def api(registry):
    app = create_app(Settings.from_env(registry.env), scheduler=False)
    return TestClient(app)


def token(registry, username: str, scopes=ALL) -> dict[str, str]:
    with registry.ctx.db.session() as session:
        user = session.execute(select(User).where(User.username == username)).scalar_one()
        value = clients.create(
            session, f"t-{secrets.token_hex(6)}", scopes, "test", user_id=user.id
        )
    return {"authorization": f"Bearer {value}"}


def test_units_are_listed_in_pages_with_opaque_ids(api, registry) -> None:
    headers = token(registry, "admin")
    first = api.get(
        "/api/v1/organizations", params={"limit": 10, "kind": "commune"}, headers=headers
    )
    assert first.status_code == 200, first.text
    body = first.json()
    assert set(body) == {"items", "total", "offset", "limit"}
    assert body["limit"] == 10 and len(body["items"]) == 10 and body["total"] >= 100
    second = api.get(
        "/api/v1/organizations",
        params={"limit": 10, "offset": 10, "kind": "commune"},
        headers=headers,
    ).json()
    assert not {i["id"] for i in body["items"]} & {i["id"] for i in second["items"]}
    for item in body["items"]:
        assert not item["id"].isdigit() and "path" not in item
    found = api.get(
        "/api/v1/organizations", params={"q": "ba be", "kind": "district"}, headers=headers
    ).json()["items"]
    assert [i["name"] for i in found] == ["UBND huyện Ba Bể"]
    shown = api.get(f"/api/v1/organizations/{found[0]['id']}", headers=headers).json()
    assert shown["parent"] == registry.unit("UBND tỉnh Bắc Kạn").public_id
    tree = api.get(f"/api/v1/organizations/{found[0]['id']}/subtree", headers=headers).json()
    assert tree[0]["id"] == found[0]["id"] and len(tree) > 40


def test_create_then_update_with_version_and_a_stale_one_conflicts(api, registry) -> None:
    headers = token(registry, "admin")
    parent = registry.unit("UBND huyện Ba Bể").public_id
    made = api.post(
        "/api/v1/organizations",
        headers=headers,
        json={
            "name": f"Phòng Văn hóa {secrets.token_hex(3)}",
            "kind": "department",
            "sector": "government",
            "parent": parent,
            "code": new_code(),
            "email": "pvh@babe.backan.gov.vn",
        },
    )
    assert made.status_code == 201, made.text
    org = made.json()
    assert org["version"] == 1 and org["parent"] == parent and org["province"] == "Bắc Kạn"
    updated = api.patch(
        f"/api/v1/organizations/{org['id']}",
        headers=headers,
        json={"version": 1, "phone": "0209 3876 543"},
    )
    assert updated.status_code == 200 and updated.json()["version"] == 2
    stale = api.patch(
        f"/api/v1/organizations/{org['id']}",
        headers=headers,
        json={"version": 1, "phone": "0209 3876 000"},
    )
    assert stale.status_code == 409
    assert stale.json()["code"] == "conflict"
    bad = api.post(
        "/api/v1/organizations",
        headers=headers,
        json={
            "name": "X",
            "kind": "department",
            "sector": "government",
            "parent": parent,
            "email": "nope",
        },
    )
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_input"
    missing = api.get("/api/v1/organizations/doesnotexist", headers=headers)
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    assert (
        api.get("/api/v1/organizations", params={"q": "a\x00b"}, headers=headers).status_code == 422
    )


def test_import_reports_rows_with_422_and_export_downloads(api, registry) -> None:
    headers = token(registry, "admin")
    book = Workbook()
    ws = book.active
    ws.title = spreadsheets.ORG_SHEET
    ws.append([c.header for c in spreadsheets.ORG_COLUMNS])
    ws.append([1, "Sở Lạ", None, "Không có đơn vị này", "Sở, ban, ngành", "Chính quyền"])
    ws.append([2, "Sở Lạ 2", None, "UBND tỉnh Bắc Kạn", "Công ty", "Chính quyền"])
    data = io.BytesIO()
    book.save(data)
    answer = api.post(
        "/api/v1/organizations/import",
        headers=headers,
        files={"file": ("don-vi.xlsx", data.getvalue())},
    )
    assert answer.status_code == 422
    body = answer.json()
    assert body["code"] == "import_rejected" and body["error_count"] == 2
    assert {"row": 2, "column": "Đơn vị cấp trên", "message": "không tìm thấy"} in body["errors"]
    assert any(e["row"] == 3 and e["column"] == "Loại đơn vị" for e in body["errors"])
    garbage = api.post(
        "/api/v1/organizations/import",
        headers=headers,
        files={"file": ("x.xlsx", b"PK\x03\x04junk")},
    )
    assert garbage.status_code == 422 and garbage.json()["code"] == "invalid_input"

    good = (
        "STT,Họ và tên,Ngày sinh,Số CCCD,Cơ quan\\, đơn vị\n"
        f"1,Triệu Thị Nga,02/02/1992,{cccd_for(1992, True)},"
    )
    people = api.post(
        "/api/v1/people/import",
        headers=headers,
        params={"unit": registry.unit("UBND xã Nam Mẫu").public_id},
        files={
            "file": (
                "p.csv",
                good.replace("\\,", ",").replace("Cơ quan, đơn vị", '"Cơ quan, đơn vị"').encode(),
            )
        },
    )
    assert people.status_code == 201, people.text
    assert people.json()["created"] == 1

    csv_export = api.get("/api/v1/people/export", params={"format": "csv"}, headers=headers)
    assert csv_export.status_code == 200
    assert csv_export.headers["content-type"].startswith("text/csv")
    assert "Triệu Thị Nga" in csv_export.content.decode("utf-8-sig")
    xlsx_export = api.get("/api/v1/organizations/export", headers=headers)
    assert xlsx_export.status_code == 200
    ws = load_workbook(io.BytesIO(xlsx_export.content), read_only=True)[spreadsheets.ORG_SHEET]
    assert next(ws.iter_rows(max_row=1, values_only=True))[1] == "Tên đơn vị"


def test_people_crud_over_http(api, registry) -> None:
    headers = token(registry, "babe")
    unit = registry.unit("UBND xã Khang Ninh").public_id
    made = api.post(
        "/api/v1/people",
        headers=headers,
        json={
            "full_name": "Lý Văn Tùng",
            "organization": unit,
            "date_of_birth": "1979-09-02",
            "id_number": cccd_for(1979),
            "mobile": "+84 912 000 111",
            "email": "tunglv@backan.gov.vn",
            "position": "Phó Chủ tịch UBND",
        },
    )
    assert made.status_code == 201, made.text
    person = made.json()
    assert person["mobile"] == "0912000111" and person["organization_name"] == "UBND xã Khang Ninh"
    bad = api.post(
        "/api/v1/people",
        headers=headers,
        json={"full_name": "Lý Văn Tùng", "organization": unit, "id_number": "12345678901"},
    )
    assert bad.status_code == 422 and "id_number" in bad.json()["message"]
    changed = api.patch(
        f"/api/v1/people/{person['id']}",
        headers=headers,
        json={"version": person["version"], "position": "Chủ tịch UBND"},
    )
    assert changed.status_code == 200 and changed.json()["position"] == "Chủ tịch UBND"
    outside = registry.unit("UBND xã Bằng Lãng").public_id
    assert (
        api.post(
            "/api/v1/people",
            headers=headers,
            json={"full_name": "Người Chợ Đồn", "organization": outside},
        ).status_code
        == 403
    )
    listed = api.get("/api/v1/people", params={"q": "ly van tung"}, headers=headers).json()
    assert person["id"] in {p["id"] for p in listed["items"]}
    gone = api.delete(
        f"/api/v1/people/{person['id']}",
        headers=headers,
        params={"version": changed.json()["version"]},
    )
    assert gone.status_code == 204
    assert api.get(f"/api/v1/people/{person['id']}", headers=headers).status_code == 404


def test_devices_over_http(api, registry, tmp_path) -> None:
    headers = token(registry, "admin")
    made = api.post(
        "/api/v1/devices",
        headers=headers,
        json={
            "serial": f"API-{secrets.token_hex(4)}",
            "model": "ePass2003",
            "unit": registry.unit("Sở Thông tin và Truyền thông").public_id,
        },
    )
    assert made.status_code == 201, made.text
    device = made.json()
    assert device["status"] == "in_stock"
    person = registry.person_in("UBND xã Khang Ninh")
    handed = api.post(
        f"/api/v1/devices/{device['id']}/handover",
        headers=headers,
        json={"person": person.public_id, "from_name": "Nguyễn Văn An"},
    )
    assert handed.status_code == 201, handed.text
    record = handed.json()
    assert record["to_person"] == person.public_id
    pdf = api.get(record["minutes_url"], headers=headers)
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    (tmp_path / "m.pdf").write_bytes(pdf.content)
    text = subprocess.run(
        ["pdftotext", str(tmp_path / "m.pdf"), "-"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    assert "BIÊN BẢN BÀN GIAO" in text and "Nguyễn Văn An" in text
    listed = api.get(f"/api/v1/devices/{device['id']}/handovers", headers=headers).json()
    assert [h["id"] for h in listed] == [record["id"]]
    pin = api.post(f"/api/v1/devices/{device['id']}/pin-change", headers=headers, json={})
    assert pin.status_code == 200 and pin.json()["last_pin_change_at"]
    illegal = api.post(
        f"/api/v1/devices/{device['id']}/status", headers=headers, json={"status": "in_stock"}
    )
    assert illegal.status_code == 409
    overdue = api.get("/api/v1/devices/pin-overdue", headers=headers).json()
    assert overdue["days"] == 180 and overdue["items"]
    assert device["id"] not in {i["device"]["id"] for i in overdue["items"]}
    status = api.post(
        f"/api/v1/devices/{device['id']}/status", headers=headers, json={"status": "locked"}
    )
    assert status.status_code == 200 and status.json()["status"] == "locked"
    shown = api.get(f"/api/v1/devices/{device['id']}", headers=headers).json()
    assert shown["holder"] == person.public_id and shown["holder_name"] == person.full_name
    assert shown["certificates"] == []
    naive = api.post(
        f"/api/v1/devices/{device['id']}/pin-change",
        headers=headers,
        json={"at": "2026-01-01T08:00:00"},
    )
    assert naive.status_code == 422


def test_users_are_for_the_province_admin_only(api, registry) -> None:
    admin = token(registry, "admin")
    listed = api.get("/api/v1/users", headers=admin)
    assert listed.status_code == 200
    assert {"admin", "auditor", "babe", "signer"} <= {u["username"] for u in listed.json()["items"]}
    assert all("password" not in str(u) and "totp_secret" not in u for u in listed.json()["items"])
    name = f"canbo{secrets.token_hex(3)}"
    made = api.post(
        "/api/v1/users",
        headers=admin,
        json={
            "username": name,
            "full_name": "Cán bộ Thử",
            "password": "Mat-khau-du-dai-1",
            "role": "auditor",
            "unit": registry.unit("Thanh tra tỉnh").public_id,
        },
    )
    assert made.status_code == 201, made.text
    assert made.json()["totp"]["uri"].startswith("otpauth://totp/")
    user_id = made.json()["user"]["id"]
    weak = api.post(
        "/api/v1/users",
        headers=admin,
        json={
            "username": f"x{name}",
            "full_name": "X",
            "password": "short",
            "role": "signer",
            "unit": registry.unit("Thanh tra tỉnh").public_id,
        },
    )
    assert weak.status_code == 422
    for who in ("babe", "auditor", "signer"):
        headers = token(registry, who, ["users:admin", "registry:read"])
        assert api.get("/api/v1/users", headers=headers).status_code == 403, who
        assert (
            api.post(f"/api/v1/users/{user_id}/deactivate", headers=headers).status_code == 403
        ), who
    done = api.post(f"/api/v1/users/{user_id}/deactivate", headers=admin)
    assert done.status_code == 200 and done.json()["active"] is False


def test_scopes_and_roles_both_limit_a_token(api, registry) -> None:
    read_only = token(registry, "admin", ["registry:read"])
    assert api.get("/api/v1/organizations", headers=read_only).status_code == 200
    assert (
        api.post(
            "/api/v1/devices", headers=read_only, json={"serial": "S-1", "model": "m"}
        ).status_code
        == 403
    )
    auditor = token(registry, "auditor")
    assert api.get("/api/v1/people", headers=auditor).status_code == 200
    assert (
        api.post(
            "/api/v1/organizations",
            headers=auditor,
            json={"name": "X", "kind": "other", "sector": "other"},
        ).status_code
        == 403
    )
    officer = token(registry, "babe")
    assert (
        api.post(
            "/api/v1/organizations",
            headers=officer,
            json={
                "name": "X",
                "kind": "other",
                "sector": "other",
                "parent": registry.unit("UBND huyện Ba Bể").public_id,
            },
        ).status_code
        == 403
    )
    chodon = registry.person_in("UBND xã Bằng Lãng").public_id
    assert api.get(f"/api/v1/people/{chodon}", headers=officer).status_code == 403
    assert api.get("/api/v1/organizations").status_code == 401
