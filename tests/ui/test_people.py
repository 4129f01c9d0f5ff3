"""The subscribers pages: list and search, a person's page, add and edit, import the form-01
list with a per-row report, export it — within the viewer's units only."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from datetime import date

from conftest import Instance
from openpyxl import load_workbook
from sqlalchemy import func, select
from support.world import World, new_cccd

from kyso.registry import people
from kyso.store.models import Person

from .conftest import Web
from .test_units import field_error, xlsx

BORN = date(1978, 4, 12)


def add_person(instance: Instance, world: World, unit: str, name: str, **extra: object) -> Person:
    with instance.ctx.db.session() as session:
        return people.create(
            world.who("admin1"),
            session,
            people.PersonInput(
                full_name=name,
                organization=world.unit(unit).public_id,
                **extra,  # type: ignore[arg-type]
            ),
        )


def stored(instance: Instance, id_number: str) -> Person | None:
    with instance.ctx.db.read() as session:
        return session.execute(
            select(Person).where(Person.id_number == id_number)
        ).scalar_one_or_none()


def person_form(world: World, unit: str = "babe", **overrides: str) -> dict[str, str]:
    form = {
        "full_name": f"Hoàng Thị Mai {world.tag}",
        "organization": world.unit(unit).public_id,
        "position": "Phó Chủ tịch UBND huyện",
        "date_of_birth": BORN.isoformat(),
        "id_number": new_cccd(BORN, female=True),
        "id_issue_date": "2021-07-01",
        "id_issue_place": "Cục Cảnh sát QLHC về TTXH",
        "email": f"mai.ht.{world.tag}@babe.backan.gov.vn",
        "mobile": "0912 345 678",
    }
    form.update(overrides)
    return form


# -- list, search, detail ----------------------------------------------------------------------
def test_the_list_searches_without_accents_and_filters_by_unit(
    instance: Instance, world: World, web_for: Callable[..., Web]
) -> None:
    mai = add_person(instance, world, "chuhuong", f"Hoàng Thị Mai {world.tag}")
    son = add_person(instance, world, "tnmt2", f"Hà Văn Sơn {world.tag}")
    admin = web_for("admin1")
    page = admin.get("/people", params={"q": f"hoang thi mai {world.tag}"})
    assert page.status_code == 200
    assert f'href="/people/{mai.public_id}"' in page.text
    assert f'href="/people/{son.public_id}"' not in page.text
    assert "UBND xã Chu Hương" in page.text  # the person's unit is named
    # The unit filter keeps a unit and the units below it.
    babe = admin.get("/people", params={"unit": world.unit("babe").public_id})
    assert f'href="/people/{mai.public_id}"' in babe.text
    assert f'href="/people/{son.public_id}"' not in babe.text

    detail = admin.get(f"/people/{mai.public_id}")
    assert detail.status_code == 200
    assert f"Hoàng Thị Mai {world.tag}" in detail.text
    assert f'href="/units/{world.unit("chuhuong").public_id}"' in detail.text
    assert f'href="/people/{mai.public_id}/edit"' in detail.text
    assert "Chưa có chứng thư số nào" in detail.text  # certificates section, empty


def test_an_officer_never_sees_another_districts_people(
    instance: Instance, world: World, web_for: Callable[..., Web]
) -> None:
    mai = add_person(instance, world, "chuhuong", f"Hoàng Thị Mai {world.tag}")
    son = add_person(instance, world, "tnmt2", f"Hà Văn Sơn {world.tag}")
    officer = web_for("officer_ns")
    listing = officer.get("/people", params={"q": world.tag})
    assert f'href="/people/{son.public_id}"' in listing.text
    assert mai.public_id not in listing.text
    assert world.unit("babe").public_id not in listing.text  # not even in the unit filter
    assert officer.get(f"/people/{mai.public_id}").status_code == 403
    assert officer.get(f"/people/{mai.public_id}/edit").status_code == 403
    assert officer.get("/people", params={"unit": world.unit("babe").public_id}).status_code == 403
    export = officer.get("/people/export.xlsx")
    names = {
        row[1]
        for row in load_workbook(io.BytesIO(export.content)).active.iter_rows(values_only=True)
    }  # type: ignore[union-attr]
    assert f"Hà Văn Sơn {world.tag}" in names and f"Hoàng Thị Mai {world.tag}" not in names
    # Nor can the officer add a person to the other district.
    form = person_form(world, unit="babe")
    assert officer.post("/people/new", form).status_code == 403
    assert stored(instance, form["id_number"]) is None


def test_unknown_people_are_404(world: World, web_for: Callable[..., Web]) -> None:
    admin = web_for("admin1")
    assert admin.get("/people/aaaaaaaaaaaaaaaa").status_code == 404
    assert admin.get("/people", params={"unit": "aaaaaaaaaaaaaaaa"}).status_code == 404
    assert admin.get("/people", params={"offset": "x"}).status_code == 422


# -- add and edit ------------------------------------------------------------------------------
def test_an_officer_adds_a_subscriber_and_edits_them(
    instance: Instance, world: World, web_for: Callable[..., Web]
) -> None:
    officer = web_for("officer")
    form_page = officer.get(f"/people/new?unit={world.unit('tnmt').public_id}")
    assert form_page.status_code == 200
    assert f'<option value="{world.unit("tnmt").public_id}" selected>' in form_page.text
    assert world.unit("nganson").public_id not in form_page.text  # only units in view
    form = person_form(world, unit="tnmt", date_of_birth="12/04/1978")  # either date form
    answer = officer.post("/people/new", form)
    assert answer.status_code == 303
    person = stored(instance, form["id_number"])
    assert person is not None
    assert person.full_name == f"Hoàng Thị Mai {world.tag}"
    assert person.organization_id == world.unit("tnmt").id
    assert person.date_of_birth == BORN and person.mobile == "0912345678"
    assert answer.headers["location"] == f"/people/{person.public_id}"
    assert "Đã thêm thuê bao" in officer.get(answer.headers["location"]).text

    edit = officer.get(f"/people/{person.public_id}/edit")
    assert f'name="version" value="{person.version}"' in edit.text
    assert 'value="1978-04-12"' in edit.text
    moved = officer.post(
        f"/people/{person.public_id}/edit",
        {
            **form,
            "version": str(person.version),
            "position": "Trưởng phòng",
            "organization": world.unit("chuhuong").public_id,
        },
    )
    assert moved.status_code == 303
    after = stored(instance, form["id_number"])
    assert after is not None
    assert after.position == "Trưởng phòng"
    assert after.organization_id == world.unit("chuhuong").id
    assert after.version == person.version + 1


def test_bad_input_is_shown_next_to_each_field(
    instance: Instance, world: World, web_for: Callable[..., Web]
) -> None:
    admin = web_for("admin1")
    form = person_form(
        world, email="mai@", id_number="12345", mobile="12345", date_of_birth="31/02/1978"
    )
    answer = admin.post("/people/new", form)
    assert answer.status_code == 422
    assert "thư điện tử" in (field_error(answer.text, "email") or "")
    assert "12 chữ số" in (field_error(answer.text, "id_number") or "")
    assert "di động" in (field_error(answer.text, "mobile") or "")
    assert "25/06/1985" in (field_error(answer.text, "date_of_birth") or "")
    assert field_error(answer.text, "full_name") is None
    assert f'value="Hoàng Thị Mai {world.tag}"' in answer.text  # what was typed is kept
    assert 'value="mai@"' in answer.text

    # A CCCD whose year digits disagree with the date of birth.
    wrong_year = person_form(world, id_number=new_cccd(date(1990, 1, 1)))
    refused = admin.post("/people/new", wrong_year)
    assert refused.status_code == 422
    assert "năm sinh" in (field_error(refused.text, "id_number") or "")
    assert stored(instance, wrong_year["id_number"]) is None

    no_unit = admin.post("/people/new", person_form(world, organization=""))
    assert no_unit.status_code == 422
    assert field_error(no_unit.text, "organization")


def test_an_identity_number_already_registered_is_refused_at_its_field(
    instance: Instance, world: World, web_for: Callable[..., Web]
) -> None:
    number = new_cccd(BORN)
    add_person(instance, world, "babe", "Người có trước", id_number=number)
    answer = web_for("admin1").post("/people/new", person_form(world, id_number=number))
    assert answer.status_code == 409
    assert number in (field_error(answer.text, "id_number") or "")


def test_a_subscriber_changed_meanwhile_gives_a_conflict_message(
    instance: Instance, world: World, web_for: Callable[..., Web]
) -> None:
    person = add_person(instance, world, "babe", f"Lương Văn Đức {world.tag}")
    officer = web_for("officer")
    edit = officer.get(f"/people/{person.public_id}/edit")
    version = re.search(r'name="version" value="(\d+)"', edit.text).group(1)  # type: ignore[union-attr]
    with instance.ctx.db.session() as session:
        people.update(
            world.who("admin1"),
            session,
            person.public_id,
            int(version),
            {"position": "Chánh Văn phòng"},
        )
    answer = officer.post(
        f"/people/{person.public_id}/edit",
        {
            "version": version,
            "full_name": f"Lương Văn Đức {world.tag}",
            "organization": world.unit("babe").public_id,
            "position": "Phó Chánh Văn phòng",
        },
    )
    assert answer.status_code == 409
    assert "người khác đã lưu" in answer.text
    assert "Chánh Văn phòng" in answer.text and 'value="Phó Chánh Văn phòng"' in answer.text
    with instance.ctx.db.read() as session:
        assert (
            people.get(world.who("admin1"), session, person.public_id).position == "Chánh Văn phòng"
        )


def test_the_auditor_reads_people_but_cannot_change_them(
    instance: Instance, world: World, web_for: Callable[..., Web]
) -> None:
    person = add_person(instance, world, "babe", f"Nông Thị Hoa {world.tag}")
    auditor = web_for("auditor")
    page = auditor.get(f"/people/{person.public_id}")
    assert page.status_code == 200
    assert "/edit" not in page.text
    listing = auditor.get("/people")
    assert listing.status_code == 200
    assert "/people/new" not in listing.text and "/people/import" not in listing.text
    assert auditor.get("/people/new").status_code == 403
    form = person_form(world)
    assert auditor.post("/people/new", form).status_code == 403
    assert stored(instance, form["id_number"]) is None
    edited = auditor.post(
        f"/people/{person.public_id}/edit",
        {"version": "1", "full_name": "Đổi tên", "organization": world.unit("babe").public_id},
    )
    assert edited.status_code == 403


def test_a_person_form_without_csrf_is_refused(
    instance: Instance, world: World, web_for: Callable[..., Web]
) -> None:
    form = person_form(world)
    answer = web_for("admin1").post("/people/new", form, csrf=False)
    assert answer.status_code == 403
    assert stored(instance, form["id_number"]) is None


# -- import and export -------------------------------------------------------------------------
PEOPLE_HEADERS = ["STT", "Họ và tên", "Ngày sinh", "Số CCCD", "Ngày cấp", "Nơi cấp",
                  "Thư điện tử công vụ", "Cơ quan, đơn vị", "Tỉnh/Thành phố", "Chức vụ",
                  "Số điện thoại di động"]  # fmt: skip


def _count_tag(instance: Instance, tag: str) -> int:
    with instance.ctx.db.read() as session:
        return session.execute(
            select(func.count()).select_from(Person).where(Person.full_name.contains(tag))
        ).scalar_one()


def test_a_people_import_with_errors_lists_them_by_row_and_writes_nothing(
    instance: Instance, world: World, web_for: Callable[..., Web]
) -> None:
    rows = [
        [1, f"Triệu Văn An {world.tag}", "12/04/1978", new_cccd(BORN), "01/07/2021", "Cục CS",
         None, None, "Bắc Kạn", "Chuyên viên", "0912345678"],
        [2, f"Ma Thị Bình {world.tag}", "30/02/1980", "12345", None, None,
         "binh@", None, "Bắc Kạn", None, None],
    ]  # fmt: skip
    answer = web_for("officer").post(
        "/people/import",
        {"unit": world.unit("babe").public_id},
        files={"file": ("thue-bao.xlsx", xlsx(PEOPLE_HEADERS, rows, sheet="Thuê bao"))},
    )
    assert answer.status_code == 422
    problems = set(re.findall(r'<tr><td class="num">(\d+)</td><td>(.*?)</td>', answer.text))
    assert ("3", "Ngày sinh") in problems
    assert ("3", "Số CCCD") in problems
    assert ("3", "Thư điện tử công vụ") in problems
    assert not any(row == "2" for row, _ in problems)
    assert _count_tag(instance, world.tag) == 0
    # The chosen default unit is still selected for the next try.
    assert f'<option value="{world.unit("babe").public_id}" selected>' in answer.text


def test_a_people_import_adds_everyone_to_the_chosen_unit(
    instance: Instance, world: World, web_for: Callable[..., Web]
) -> None:
    rows = [
        [1, f"Triệu Văn An {world.tag}", "12/04/1978", new_cccd(BORN), "01/07/2021", "Cục CS",
         None, None, "Bắc Kạn", "Chuyên viên", "0912345678"],
        [2, f"Ma Thị Bình {world.tag}", None, None, None, None,
         f"binh.{world.tag}@babe.backan.gov.vn", None, "Bắc Kạn", None, None],
    ]  # fmt: skip
    officer = web_for("officer")
    answer = officer.post(
        "/people/import",
        {"unit": world.unit("chuhuong").public_id},
        files={"file": ("thue-bao.xlsx", xlsx(PEOPLE_HEADERS, rows, sheet="Thuê bao"))},
    )
    assert answer.status_code == 303
    assert "Đã thêm 2 thuê bao" in officer.get(answer.headers["location"]).text
    with instance.ctx.db.read() as session:
        found = people.search(world.who("officer"), session, q=world.tag)
    assert {p.organization_id for p in found.items} == {world.unit("chuhuong").id}
    assert found.total == 2
    # Another district's officer cannot import into this unit.
    refused = web_for("officer_ns").post(
        "/people/import",
        {"unit": world.unit("chuhuong").public_id},
        files={"file": ("thue-bao.xlsx", xlsx(PEOPLE_HEADERS, rows, sheet="Thuê bao"))},
    )
    assert refused.status_code == 403


def test_the_people_export_is_the_form_01_workbook(
    instance: Instance, world: World, web_for: Callable[..., Web]
) -> None:
    number = new_cccd(BORN)
    add_person(instance, world, "babe", f"Đinh Thị Lan {world.tag}", id_number=number)
    answer = web_for("admin1").get(f"/people/export.xlsx?unit={world.unit('babe').public_id}")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/vnd.openxmlformats")
    sheet = load_workbook(io.BytesIO(answer.content)).active
    assert sheet is not None and sheet.title == "Thuê bao"
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][:4] == ("STT", "Họ và tên", "Ngày sinh", "Số CCCD")
    assert (f"Đinh Thị Lan {world.tag}", number) in {(r[1], r[3]) for r in rows[1:]}
