"""The units pages: browse the tree, search, add and edit a unit, import and export the
spreadsheet — each as the role matrix allows (an officer of one district never reaches
another's units; the auditor reads and changes nothing)."""

from __future__ import annotations

import html
import io
import re
import secrets
from collections.abc import Callable

from conftest import Instance
from openpyxl import Workbook, load_workbook
from sqlalchemy import func, select
from support.world import World

from kyso.registry import organizations
from kyso.store.models import Organization

from .conftest import Web


def field_error(page: str, name: str) -> str | None:
    """The message shown next to a form field (macros.field puts it in #e-<name>)."""
    found = re.search(rf'<p class="error" id="e-{name}">(.*?)</p>', page, re.S)
    return html.unescape(found.group(1)) if found else None


def new_code() -> str:
    return (
        f"{secrets.randbelow(1000):03d}.{secrets.randbelow(100):02d}."
        f"{secrets.randbelow(100):02d}.T{secrets.randbelow(100):02d}"
    )


def give_code(instance: Instance, world: World, key: str) -> str:
    """Set an agency code on one of the world's units (its names repeat across tests)."""
    code = new_code()
    with instance.ctx.db.session() as session:
        org = organizations.get(world.who("admin1"), session, world.unit(key).public_id)
        organizations.update(
            world.who("admin1"), session, org.public_id, org.version, {"code": code}
        )
    return code


def xlsx(headers: list[str], rows: list[list[object]], sheet: str = "Đơn vị") -> bytes:
    book = Workbook()
    ws = book.active
    assert ws is not None
    ws.title = sheet
    ws.append(headers)
    for row in rows:
        ws.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def count_named(instance: Instance, name: str) -> int:
    with instance.ctx.db.read() as session:
        return session.execute(
            select(func.count()).select_from(Organization).where(Organization.name == name)
        ).scalar_one()


# -- browsing and searching -------------------------------------------------------------------
def test_admin_browses_the_tree_from_the_province_down_to_a_commune(
    world: World, web_for: Callable[..., Web]
) -> None:
    admin = web_for("admin1")
    province, babe = world.unit("province"), world.unit("babe")
    page = admin.get("/units")
    assert page.status_code == 200
    assert "Đơn vị" in page.text
    assert f'href="/units/{province.public_id}"' in page.text
    assert f'href="/units/{babe.public_id}"' in page.text  # the province's sub-units are listed
    # A district's row expands to its communes without leaving the page.
    assert f'href="/units/{world.unit("chuhuong").public_id}"' in page.text

    detail = admin.get(f"/units/{babe.public_id}")
    assert detail.status_code == 200
    assert "UBND huyện Ba Bể" in detail.text
    assert "Huyện" in detail.text  # the kind in plain words
    assert "Quản lý nhà nước" in detail.text  # the sector in plain words
    # Breadcrumbs lead back to the province; the sub-units are listed with links.
    assert f'<a href="/units/{province.public_id}">UBND tỉnh Bắc Kạn</a>' in detail.text
    assert f'href="/units/{world.unit("chuhuong").public_id}"' in detail.text
    assert f'href="/units/{world.unit("tnmt").public_id}"' in detail.text
    # The admin may change the unit and add below it.
    assert f'href="/units/{babe.public_id}/edit"' in detail.text
    assert f'href="/units/new?parent={babe.public_id}"' in detail.text
    assert f'href="/people/new?unit={babe.public_id}"' in detail.text


def test_search_ignores_accents_and_finds_a_unit_by_its_agency_code(
    instance: Instance, world: World, web_for: Callable[..., Web]
) -> None:
    # The district's officer: the search stays in this test's own district (the whole
    # province holds every earlier test's "UBND xã Chu Hương" too).
    officer = web_for("officer")
    chuhuong = world.unit("chuhuong")
    page = officer.get("/units", params={"q": "chu huong"})
    assert page.status_code == 200
    assert f'href="/units/{chuhuong.public_id}"' in page.text
    assert "UBND huyện Ba Bể ›" in page.text  # where the unit sits
    assert f'href="/units/{world.unit("nganson").public_id}"' not in page.text

    admin = web_for("admin1")
    code = give_code(instance, world, "hospital")
    by_code = admin.get("/units", params={"q": code.lower()})
    assert f'href="/units/{world.unit("hospital").public_id}"' in by_code.text

    health = admin.get("/units", params={"sector": "health", "q": code})
    assert f'href="/units/{world.unit("hospital").public_id}"' in health.text
    assert f'href="/units/{chuhuong.public_id}"' not in health.text
    government = admin.get("/units", params={"sector": "government", "q": code})
    assert f'href="/units/{world.unit("hospital").public_id}"' not in government.text


def test_an_officer_sees_only_the_own_district(world: World, web_for: Callable[..., Web]) -> None:
    officer = web_for("officer_ns")
    nganson, babe = world.unit("nganson"), world.unit("babe")
    page = officer.get("/units")
    assert page.status_code == 200
    assert f'href="/units/{nganson.public_id}"' in page.text
    assert f'href="/units/{world.unit("tnmt2").public_id}"' in page.text
    assert babe.public_id not in page.text
    assert world.unit("chuhuong").public_id not in page.text
    # Searching does not reach across either (the other district has a "Phòng Tài nguyên" too).
    found = officer.get("/units", params={"q": "tai nguyen"})
    assert f'href="/units/{world.unit("tnmt2").public_id}"' in found.text
    assert world.unit("tnmt").public_id not in found.text
    # Opening another district's unit by its address is refused.
    assert officer.get(f"/units/{babe.public_id}").status_code == 403
    assert officer.get(f"/units/{world.unit('chuhuong').public_id}").status_code == 403
    assert officer.get(f"/units/{babe.public_id}/edit").status_code == 403
    # The province above is shown in the breadcrumbs but not as a link.
    own = officer.get(f"/units/{nganson.public_id}")
    assert own.status_code == 200
    assert "UBND tỉnh Bắc Kạn" in own.text
    assert f'href="/units/{world.unit("province").public_id}"' not in own.text
    # A unit officer adds people, not units.
    assert f'href="/people/new?unit={nganson.public_id}"' in own.text
    assert f'href="/units/{nganson.public_id}/edit"' not in own.text
    assert officer.get(f"/units/new?parent={nganson.public_id}").status_code == 403


def test_an_unknown_unit_is_404_and_bad_query_parameters_are_not_500(
    world: World, web_for: Callable[..., Web]
) -> None:
    admin = web_for("admin1")
    assert admin.get("/units/aaaaaaaaaaaaaaaa").status_code == 404
    assert admin.get("/units/not%20an%20id").status_code in (404, 422)
    assert admin.get("/units", params={"offset": "-1"}).status_code == 422
    assert admin.get("/units", params={"kind": "castle", "q": "ba be"}).status_code == 200
    assert admin.get("/units", params={"q": "\x00ba be"}).status_code == 422  # NUL refused
    assert admin.get("/units/export.pdf").status_code in (404, 422)


def test_anonymous_visitors_are_sent_to_the_login(web: Web) -> None:
    answer = web.get("/units", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/login?next=")


# -- adding and editing ----------------------------------------------------------------------
def test_admin_adds_a_sub_unit_and_edits_it(
    instance: Instance, world: World, web_for: Callable[..., Web]
) -> None:
    admin = web_for("admin1")
    babe = world.unit("babe")
    form = admin.get(f"/units/new?parent={babe.public_id}")
    assert form.status_code == 200
    assert 'for="f-name"' in form.text and "UBND huyện Ba Bể" in form.text
    code = new_code()
    answer = admin.post(
        "/units/new",
        {
            "parent": babe.public_id,
            "name": f"Trường THCS Đồng Phúc {world.tag}",
            "code": code,
            "kind": "school",
            "sector": "education",
            "email": "thcs.dongphuc@backan.edu.vn",
            "phone": "0209 3876 123",
        },
    )
    assert answer.status_code == 303
    with instance.ctx.db.read() as session:
        made = organizations.by_code(world.who("admin1"), session, code)
        assert made.name == f"Trường THCS Đồng Phúc {world.tag}"
        assert made.parent_id == babe.id and made.path.startswith(babe.path)
        assert made.province == "Bắc Kạn"  # inherited from the parent
        public_id, version = made.public_id, made.version
    assert answer.headers["location"] == f"/units/{public_id}"
    shown = admin.get(answer.headers["location"])
    assert "Trường học" in shown.text and "Giáo dục" in shown.text
    assert "Đã thêm đơn vị" in shown.text  # the flash message

    edit = admin.get(f"/units/{public_id}/edit")
    assert f'name="version" value="{version}"' in edit.text
    saved = admin.post(
        f"/units/{public_id}/edit",
        {
            "version": str(version),
            "name": f"Trường THCS Đồng Phúc {world.tag}",
            "code": code,
            "kind": "school",
            "sector": "education",
            "address": "Thôn Nà Làng, xã Đồng Phúc",
            "email": "thcs.dongphuc@backan.edu.vn",
            "phone": "0209 3876 123",
        },
    )
    assert saved.status_code == 303
    with instance.ctx.db.read() as session:
        again = organizations.get(world.who("admin1"), session, public_id)
        assert again.address == "Thôn Nà Làng, xã Đồng Phúc"
        assert again.version == version + 1


def test_bad_unit_input_is_refused_next_to_each_field_and_keeps_what_was_typed(
    instance: Instance, world: World, web_for: Callable[..., Web]
) -> None:
    admin = web_for("admin1")
    name = f"Trạm Y tế xã Nam Mẫu {world.tag}"
    answer = admin.post(
        "/units/new",
        {
            "parent": world.unit("babe").public_id,
            "name": name,
            "code": "G22",
            "kind": "health_station",
            "sector": "health",
            "email": "tram y te@",
            "tax_code": "12345",
        },
    )
    assert answer.status_code == 422
    assert "thư điện tử" in (field_error(answer.text, "email") or "")
    assert "000.00.00.G22" in (field_error(answer.text, "code") or "")
    assert "10 chữ số" in (field_error(answer.text, "tax_code") or "")
    assert field_error(answer.text, "name") is None
    assert f'value="{name}"' in answer.text  # what was typed is kept
    assert 'value="tram y te@"' in answer.text
    assert count_named(instance, name) == 0

    missing = admin.post("/units/new", {"parent": world.unit("babe").public_id, "name": ""})
    assert missing.status_code == 422
    assert "Bắt buộc" in (field_error(missing.text, "name") or "")
    assert field_error(missing.text, "kind")


def test_a_unit_changed_by_someone_else_meanwhile_is_answered_with_a_conflict(
    instance: Instance, world: World, web_for: Callable[..., Web]
) -> None:
    admin = web_for("admin1")
    tnmt = world.unit("tnmt")
    edit = admin.get(f"/units/{tnmt.public_id}/edit")
    version = int(re.search(r'name="version" value="(\d+)"', edit.text).group(1))  # type: ignore[union-attr]
    with instance.ctx.db.session() as session:  # admin2 saves first
        organizations.update(
            world.who("admin2"), session, tnmt.public_id, version, {"phone": "0209 3870 000"}
        )
    answer = admin.post(
        f"/units/{tnmt.public_id}/edit",
        {
            "version": str(version),
            "name": "Phòng Tài nguyên và Môi trường",
            "kind": "other",
            "sector": "government",
            "address": "Địa chỉ mới",
        },
    )
    assert answer.status_code == 409
    assert "người khác" in answer.text  # someone else saved it
    assert "0209 3870 000" in answer.text  # and what they saved is shown
    assert 'value="Địa chỉ mới"' in answer.text  # the user's typing is kept
    with instance.ctx.db.read() as session:
        stored = organizations.get(world.who("admin1"), session, tnmt.public_id)
        assert stored.address != "Địa chỉ mới"
        assert f'name="version" value="{stored.version}"' in answer.text


def test_the_auditor_reads_but_gets_no_edit_buttons_and_cannot_post(
    instance: Instance, world: World, web_for: Callable[..., Web]
) -> None:
    auditor = web_for("auditor")
    babe = world.unit("babe")
    page = auditor.get(f"/units/{babe.public_id}")
    assert page.status_code == 200
    assert "/edit" not in page.text
    assert "/units/new" not in page.text and "/people/new" not in page.text
    assert 'href="/units/import"' not in auditor.get("/units").text
    assert auditor.get("/units/new").status_code == 403
    assert auditor.get(f"/units/{babe.public_id}/edit").status_code == 403
    name = f"Đơn vị của kiểm toán {world.tag}"
    refused = auditor.post(
        "/units/new",
        {"parent": babe.public_id, "name": name, "kind": "other", "sector": "other"},
    )
    assert refused.status_code == 403
    assert count_named(instance, name) == 0
    edit = auditor.post(
        f"/units/{babe.public_id}/edit",
        {
            "version": str(babe.version),
            "name": "Đổi tên",
            "kind": "district",
            "sector": "government",
        },
    )
    assert edit.status_code == 403


def test_a_form_without_its_csrf_token_is_refused(
    instance: Instance, world: World, web_for: Callable[..., Web]
) -> None:
    admin = web_for("admin1")
    name = f"Đơn vị giả mạo {world.tag}"
    answer = admin.post(
        "/units/new",
        {"parent": world.unit("babe").public_id, "name": name, "kind": "other", "sector": "other"},
        csrf=False,
    )
    assert answer.status_code == 403
    assert count_named(instance, name) == 0


# -- import and export -----------------------------------------------------------------------
HEADERS = ["STT", "Tên đơn vị", "Mã định danh", "Đơn vị cấp trên", "Loại đơn vị", "Lĩnh vực",
           "Thư điện tử công vụ"]  # fmt: skip


def test_an_import_with_errors_lists_each_problem_and_writes_nothing(
    instance: Instance, world: World, web_for: Callable[..., Web]
) -> None:
    admin = web_for("admin1")
    parent = give_code(instance, world, "babe")
    good = f"UBND xã Cao Thượng {world.tag}"
    data = xlsx(
        HEADERS,
        [
            [1, good, None, parent, "Cấp xã", "Chính quyền", None],
            [2, f"Trường TH {world.tag}", None, "Không có đơn vị này", "Trường học", "Giáo dục"],
            [3, f"Trạm Y tế {world.tag}", None, good, "Lâu đài", "Y tế", "sai@"],
        ],
    )
    answer = admin.post(
        "/units/import", files={"file": ("don-vi.xlsx", data, "application/octet-stream")}
    )
    assert answer.status_code == 422
    assert "Không nhập dòng nào" in answer.text
    rows = re.findall(
        r'<tr><td class="num">(\d+)</td><td>(.*?)</td><td>(.*?)</td></tr>', answer.text
    )
    problems = {(int(r), html.unescape(c)) for r, c, _ in rows}
    assert (3, "Đơn vị cấp trên") in problems
    assert (4, "Loại đơn vị") in problems
    assert (4, "Thư điện tử công vụ") in problems
    assert all(r != 2 for r, _ in problems)  # the good row has nothing to correct
    assert count_named(instance, good) == 0  # nothing was written, not even the good row


def test_an_import_creates_every_unit_and_says_how_many(
    instance: Instance, world: World, web_for: Callable[..., Web]
) -> None:
    admin = web_for("admin1")
    parent = give_code(instance, world, "nganson")
    commune = f"UBND xã Vân Tùng {world.tag}"
    data = xlsx(
        HEADERS,
        [
            [1, commune, None, parent, "Cấp xã", "Chính quyền"],
            [2, f"Trạm Y tế xã Vân Tùng {world.tag}", None, commune, "Trạm y tế", "Y tế"],
        ],
    )
    answer = admin.post("/units/import", files={"file": ("don-vi.xlsx", data)})
    assert answer.status_code == 303
    landing = admin.get(answer.headers["location"])
    assert "2" in landing.text and "Đã thêm" in landing.text
    with instance.ctx.db.read() as session:
        made = organizations.search(world.who("admin1"), session, q=world.tag)
        names = {o.name: o for o in made.items}
    assert names[commune].parent_id == world.unit("nganson").id
    assert names[f"Trạm Y tế xã Vân Tùng {world.tag}"].parent_id == names[commune].id


def test_an_unreadable_file_or_no_file_is_a_message_not_an_error_page(
    world: World, web_for: Callable[..., Web]
) -> None:
    admin = web_for("admin1")
    no_file = admin.post("/units/import", {})
    assert no_file.status_code == 422
    assert field_error(no_file.text, "file")
    fake = admin.post("/units/import", files={"file": ("a.xlsx", b"not a workbook")})
    assert fake.status_code == 422
    assert "xlsx" in (field_error(fake.text, "file") or "")
    # The officer (no unit writes) and the auditor cannot import units.
    data = xlsx(HEADERS, [[1, "X", None, None, "Khác", "Khác"]])
    assert (
        web_for("officer").post("/units/import", files={"file": ("a.xlsx", data)}).status_code
        == 403
    )
    assert web_for("auditor").get("/units/import").status_code == 403


def test_the_export_is_a_real_workbook_of_the_units_in_view(
    world: World, web_for: Callable[..., Web]
) -> None:
    answer = web_for("officer_ns").get("/units/export.xlsx")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/vnd.openxmlformats")
    assert "attachment" in answer.headers["content-disposition"]
    sheet = load_workbook(io.BytesIO(answer.content)).active
    assert sheet is not None and sheet.title == "Đơn vị"
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][1] == "Tên đơn vị"
    emails = {r[10] for r in rows[1:]}
    assert f"nganson.{world.tag}@backan.gov.vn" in emails
    assert f"babe.{world.tag}@backan.gov.vn" not in emails  # another district's unit
    csv = web_for("admin1").get(f"/units/export.csv?under={world.unit('babe').public_id}")
    assert csv.status_code == 200 and csv.content.startswith(b"\xef\xbb\xbf")
    text = csv.content.decode("utf-8-sig")
    assert "UBND xã Chu Hương" in text and "Ngân Sơn" not in text


def test_a_code_another_unit_holds_is_a_field_error_not_a_stale_form(
    instance: Instance, world: World, web_for: Callable[..., Web]
) -> None:
    """The other 409: nobody saved this unit meanwhile, so the form keeps the version it was
    read at and shows no 'what they saved' list."""
    taken = give_code(instance, world, "nganson")
    admin = web_for("admin1")
    tnmt = world.unit("tnmt")
    edit = admin.get(f"/units/{tnmt.public_id}/edit")
    version = re.search(r'name="version" value="(\d+)"', edit.text).group(1)  # type: ignore[union-attr]
    answer = admin.post(
        f"/units/{tnmt.public_id}/edit",
        {
            "version": version,
            "name": "Phòng Tài nguyên và Môi trường",
            "code": taken,
            "kind": "other",
            "sector": "government",
        },
    )
    assert answer.status_code == 409
    assert 'id="e-code"' in answer.text
    assert "người khác" not in answer.text.lower()  # no "someone else saved", no list of theirs
    assert f'name="version" value="{version}"' in answer.text
