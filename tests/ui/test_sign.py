"""The signing pages: upload a PDF, see its pages, place the stamp, sign with a key kyso holds
for the user or the unit, download the signed file."""

from __future__ import annotations

import io
import re
import secrets
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Instance
from fixtures.pdf import images, pki, samples
from PIL import Image
from pyhanko.pdf_utils.reader import PdfFileReader
from sqlalchemy import update
from support.world import World, app_client

from kyso.keys.base import KeyAlgorithm
from kyso.pki import issuance
from kyso.registry import people
from kyso.registry.access import cli_principal
from kyso.store.models import Certificate, Organization, Profile
from kyso.trust import trust_context
from kyso.validation.verify import verify

from .conftest import Web

PNG = b"\x89PNG\r\n\x1a\n"
UPLOAD = re.compile(r"^/sign/([A-Za-z0-9_-]{22})$")


def server_key(
    instance: Instance, unit: Organization, *, person_id: int | None = None, cn: str = ""
) -> tuple[str, str]:
    """(key id, serial) of a key kyso holds, with a certificate issued to ``unit`` (an
    organization's seal) or to a person of it."""
    ctx = instance.ctx
    cn = cn or f"Văn thư {unit.name} {secrets.token_hex(2)}"
    profile = Profile.INDIVIDUAL if person_id else Profile.ORGANIZATION
    with ctx.db.session() as session:
        issued = issuance.issue_with_server_key(
            session,
            ctx.authority,
            profile=profile,
            subject=f"CN={cn},O={unit.name},L=Bắc Kạn,C=VN",
            algorithm=KeyAlgorithm.EC_P256,
            actor="test",
        )
        # the registry links, as the workflow sets them when it issues a request
        session.execute(
            update(Certificate)
            .where(Certificate.serial == issued.serial)
            .values(organization_id=unit.id, person_id=person_id)
        )
    return issued.row.key_location.split(":", 1)[1], issued.serial


def upload(web: Web, data: bytes, name: str = "quyet-dinh.pdf") -> str:
    response = web.post("/sign", files={"file": (name, data, "application/pdf")})
    assert response.status_code == 303, response.text[:2000]
    found = UPLOAD.match(response.headers["location"])
    assert found, response.headers["location"]
    return found.group(1)


def sign(web: Web, upload_id: str, fields: dict[str, str], files: dict | None = None):
    return web.post(f"/sign/{upload_id}", fields, files=files or {})


def widget_rect(signed: bytes) -> tuple[int, list[float]]:
    """(page index, rectangle) of the last signature widget in the signed PDF."""
    reader = PdfFileReader(io.BytesIO(signed))
    found = None
    for index in range(int(reader.root["/Pages"]["/Count"])):
        page, _ = reader.find_page_for_modification(index)
        for annot in page.get_object().get("/Annots", []) or []:
            annot = annot.get_object()
            if annot.get("/FT") == "/Sig" or annot.get("/Parent", {}).get("/FT") == "/Sig":
                found = (index, [float(v) for v in annot["/Rect"]])
    assert found is not None, "no signature widget"
    return found


@pytest.fixture
def babe_key(instance: Instance, world: World) -> str:
    return server_key(instance, world.unit("babe"))[0]


def test_a_signer_uploads_sees_pages_places_the_stamp_by_click_and_downloads_a_valid_file(
    instance: Instance, world: World, web_for: Callable[..., Web], babe_key: str, tmp_path: Path
) -> None:
    web = web_for("officer")
    start = web.get("/sign")
    assert start.status_code == 200 and 'action="/sign"' in start.text
    upload_id = upload(web, samples.official_document(pages=2))

    page = web.get(f"/sign/{upload_id}")
    assert page.status_code == 200
    assert f"/sign/{upload_id}/page/1.png" in page.text
    assert f"/sign/{upload_id}/page/2.png" in page.text
    assert 'data-box="0.0,0.0,595.0,842.0"' in page.text
    assert babe_key in page.text  # the unit's key is offered
    assert "Phụ lục" in page.text or "phụ lục" in page.text  # kinds named as Decree 30 does

    preview = web.get(f"/sign/{upload_id}/page/1.png")
    assert preview.status_code == 200 and preview.headers["content-type"] == "image/png"
    assert preview.content.startswith(PNG)
    assert Image.open(io.BytesIO(preview.content)).size == (794, 1123)  # A4 at 96 dpi, ceiled
    assert web.get(f"/sign/{upload_id}/page/3.png").status_code == 404

    # The clerk clicked on page 2 at (300, 400) PDF points: the stamp is centred there.
    done = sign(
        web,
        upload_id,
        {
            "kind": "attachment",
            "key_id": babe_key,
            "level": "B-B",
            "place": "click",
            "page": "2",
            "x": "300",
            "y": "400",
            "number": "15/QĐ-UBND",
        },
    )
    assert done.status_code == 303, done.text[:3000]
    assert done.headers["location"] == f"/sign/{upload_id}/done"
    result = web.get(done.headers["location"])
    assert result.status_code == 200
    assert "Tài liệu đã được ký" in result.text
    assert f"/sign/{upload_id}/signed.pdf" in result.text

    download = web.get(f"/sign/{upload_id}/signed.pdf")
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/pdf"
    assert "quyet-dinh-da-ky.pdf" in download.headers["content-disposition"]
    signed = download.content
    report = verify(signed, trust_context(instance.ctx), name="a.pdf")
    assert report.passed, report.signatures[0].message_en

    page_index, (x1, y1, x2, y2) = widget_rect(signed)
    assert page_index == 1
    assert abs((x1 + x2) / 2 - 300) < 0.6 and abs((y1 + y2) / 2 - 400) < 0.6
    assert x2 - x1 > 100  # the stamp's own size, not a dot

    # Only the signed file is kept; the original and its previews are gone.
    folder = instance.ctx.settings.home / "uploads" / "sign" / world.users["officer"].public_id
    assert sorted(p.name for p in (folder / upload_id).iterdir()) == ["meta.json", "signed.pdf"]
    # The form of a signed upload leads to its result.
    again = web.get(f"/sign/{upload_id}", follow_redirects=False)
    assert again.headers["location"] == f"/sign/{upload_id}/done"

    if pki.have_poppler():
        path = tmp_path / "signed.pdf"
        path.write_bytes(signed)
        nss = pki.nss_db(tmp_path / "nss", pki.root_pem(instance.ctx))
        results = pki.pdfsig(path, nss)
        assert [r.signature for r in results] == ["Signature is Valid."]


def test_an_approval_signature_is_placed_above_the_signers_name_by_anchor_text(
    instance: Instance, world: World, web_for: Callable[..., Web], babe_key: str
) -> None:
    web = web_for("officer")
    upload_id = upload(web, samples.official_document())
    done = sign(
        web,
        upload_id,
        {
            "kind": "approval",
            "key_id": babe_key,
            "level": "B-T",
            "place": "anchor",
            "anchor": samples.SIGNER_NAME,
            "where": "above",
            "title": "CHỦ TỊCH",
            "name": samples.SIGNER_NAME,
        },
        files={"image": ("chu-ky.png", images.signature_png(), "image/png")},
    )
    assert done.status_code == 303, done.text[:3000]
    signed = web.get(f"/sign/{upload_id}/signed.pdf").content
    page_index, (x1, y1, x2, _y2) = widget_rect(signed)
    name_x, name_y = samples.NAME_AT
    assert page_index == 0
    assert name_y < y1 < name_y + 30  # just above the printed name
    assert x1 < name_x + 40 < x2  # over the name horizontally
    report = verify(signed, trust_context(instance.ctx), name="a.pdf")
    assert report.passed and report.signatures[0].timestamp_time is not None


def test_a_copy_goes_top_right_of_the_first_page_when_no_place_is_clicked(
    world: World, web_for: Callable[..., Web], babe_key: str
) -> None:
    web = web_for("officer")
    upload_id = upload(web, samples.official_document())
    done = sign(
        web,
        upload_id,
        {
            "kind": "copy",
            "key_id": babe_key,
            "place": "corner",
            "copy_kind": "SAO Y",
            "copying_org": "Văn phòng UBND huyện Ba Bể",
        },
    )
    assert done.status_code == 303, done.text[:3000]
    page_index, (_x1, _y1, x2, y2) = widget_rect(web.get(f"/sign/{upload_id}/signed.pdf").content)
    assert page_index == 0 and x2 > 500 and y2 > 800


def test_a_signer_signs_with_their_own_key_but_not_a_colleagues(
    instance: Instance, world: World, web_for: Callable[..., Web], babe_key: str
) -> None:
    from kyso.registry import users
    from kyso.store.models import Role

    cli = cli_principal("cli:test")
    with instance.ctx.db.session() as session:
        mine = people.create(
            cli, session, people.PersonInput("Hoàng Thị Mai", world.unit("babe").public_id)
        )
        other = people.create(
            cli, session, people.PersonInput("Lý Văn Khác", world.unit("babe").public_id)
        )
        made = users.create(
            cli,
            session,
            users.UserInput(
                username=f"mai{world.tag}",
                full_name="Hoàng Thị Mai",
                password="mật-khẩu-dài-2026",
                role=Role.SIGNER,
                unit=world.unit("babe").public_id,
                person=mine.public_id,
            ),
        )
        mine_id, other_id = mine.id, other.id
    own_key, _ = server_key(instance, world.unit("babe"), person_id=mine_id, cn="Hoàng Thị Mai")
    colleague_key, _ = server_key(
        instance, world.unit("babe"), person_id=other_id, cn="Lý Văn Khác"
    )
    web = web_for()
    web.login(made.user)
    upload_id = upload(web, samples.official_document())
    form = web.get(f"/sign/{upload_id}").text
    assert own_key in form and babe_key in form
    assert colleague_key not in form
    fields = {
        "kind": "attachment",
        "place": "corner",
        "number": "15/QĐ-UBND",
    }
    refused = sign(web, upload_id, {**fields, "key_id": colleague_key})
    assert refused.status_code == 403
    assert sign(web, upload_id, {**fields, "key_id": own_key}).status_code == 303


def test_an_officer_of_another_district_can_neither_use_babes_keys_nor_see_babes_uploads(
    world: World, web_for: Callable[..., Web], babe_key: str
) -> None:
    babe, nganson = web_for("officer"), web_for("officer_ns")
    upload_id = upload(babe, samples.official_document())

    assert babe_key not in nganson.get("/sign").text
    assert nganson.get(f"/sign/{upload_id}").status_code == 404
    assert nganson.get(f"/sign/{upload_id}/page/1.png").status_code == 404
    own = upload(nganson, samples.official_document())
    assert babe_key not in nganson.get(f"/sign/{own}").text
    refused = sign(
        nganson,
        own,
        {"kind": "attachment", "key_id": babe_key, "place": "corner", "number": "1/QĐ"},
    )
    assert refused.status_code == 403
    assert "khóa" in refused.text
    # …and babe's signed file stays babe's
    assert (
        sign(
            babe,
            upload_id,
            {"kind": "attachment", "key_id": babe_key, "place": "corner", "number": "1/QĐ"},
        ).status_code
        == 303
    )
    assert nganson.get(f"/sign/{upload_id}/signed.pdf").status_code == 404
    assert nganson.get(f"/sign/{upload_id}/done").status_code == 404


def test_a_key_of_another_unit_is_refused_even_for_a_unit_below(
    instance: Instance, world: World, web_for: Callable[..., Web]
) -> None:
    hospital_key, _ = server_key(instance, world.unit("hospital"))
    web = web_for("officer")
    upload_id = upload(web, samples.official_document())
    refused = sign(
        web,
        upload_id,
        {"kind": "attachment", "key_id": hospital_key, "place": "corner", "number": "1/QĐ"},
    )
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"Day khong phai PDF", "không phải tệp PDF"),
        (samples.official_document()[:-600], "bị cắt cụt"),
        (samples.encrypted(), "mật khẩu"),
        (b"", "rỗng"),
    ],
    ids=["not-pdf", "truncated", "encrypted", "empty"],
)
def test_bad_files_get_the_form_again_with_a_message(
    world: World, web_for: Callable[..., Web], data: bytes, message: str
) -> None:
    web = web_for("officer")
    response = web.post("/sign", files={"file": ("x.pdf", data, "application/pdf")})
    assert response.status_code == 422
    assert message in response.text
    assert 'id="e-file"' in response.text and 'action="/sign"' in response.text


def test_a_broken_pdf_body_is_refused_not_a_500(world: World, web_for: Callable[..., Web]) -> None:
    broken = b"%PDF-1.7\n1 0 obj << /Type /Catalog >>\nendobj\nstartxref\n9999\n%%EOF\n"
    response = web_for("officer").post(
        "/sign", files={"file": ("x.pdf", broken, "application/pdf")}
    )
    assert response.status_code == 422
    assert "PDF" in response.text


def test_no_file_is_a_message_next_to_the_field(world: World, web_for: Callable[..., Web]) -> None:
    response = web_for("officer").post("/sign", {})
    assert response.status_code == 422
    assert "Chọn tệp PDF" in response.text


def test_a_file_over_the_limit_is_413(
    instance: Instance, world: World, _ui_apps: dict, web_for: Callable[..., Web]
) -> None:
    small = app_client(instance, _ui_apps, max_upload_bytes=40_000)
    web = Web(small, world).login("officer")
    big = samples.official_document(padding_bytes=60_000)
    response = web.post("/sign", files={"file": ("big.pdf", big, "application/pdf")})
    assert response.status_code == 413
    assert "text/html" in response.headers["content-type"]  # the site's error page
    assert "Tệp quá lớn" in response.text and "<nav" in response.text


def test_missing_stamp_details_and_place_are_shown_by_their_fields(
    world: World, web_for: Callable[..., Web], babe_key: str
) -> None:
    web = web_for("officer")
    upload_id = upload(web, samples.official_document())
    base = {"key_id": babe_key, "level": "B-B"}

    no_kind = sign(web, upload_id, {**base, "place": "corner"})
    assert no_kind.status_code == 422 and 'id="e-kind"' in no_kind.text

    no_number = sign(web, upload_id, {**base, "kind": "attachment", "place": "corner"})
    assert no_number.status_code == 422
    assert 'id="e-number"' in no_number.text and "số và ký hiệu" in no_number.text

    no_click = sign(
        web, upload_id, {**base, "kind": "attachment", "number": "1/QĐ", "place": "click"}
    )
    assert no_click.status_code == 422 and 'id="e-page"' in no_click.text
    assert 'value="1/QĐ"' in no_click.text  # what was typed is kept

    bad_page = sign(
        web,
        upload_id,
        {**base, "kind": "attachment", "number": "1/QĐ", "page": "7", "x": "1", "y": "1"},
    )
    assert bad_page.status_code == 422 and 'id="e-page"' in bad_page.text

    no_image = sign(web, upload_id, {**base, "kind": "approval", "place": "anchor", "anchor": "An"})
    assert no_image.status_code == 422 and 'id="e-image"' in no_image.text

    not_png = sign(
        web,
        upload_id,
        {**base, "kind": "approval", "place": "anchor", "anchor": samples.SIGNER_NAME},
        files={"image": ("a.png", b"GIF89a....", "image/png")},
    )
    assert not_png.status_code == 422 and "PNG" in not_png.text

    missing_anchor = sign(
        web,
        upload_id,
        {**base, "kind": "attachment", "number": "1/QĐ", "place": "anchor", "anchor": "Không có"},
    )
    assert missing_anchor.status_code == 422
    assert 'id="e-anchor"' in missing_anchor.text and "Không có" in missing_anchor.text

    bad_level = sign(web, upload_id, {**base, "level": "B-X", "kind": "attachment", "number": "1"})
    assert bad_level.status_code == 422 and 'id="e-level"' in bad_level.text

    no_key = sign(web, upload_id, {"kind": "attachment", "number": "1", "place": "corner"})
    assert no_key.status_code == 422 and 'id="e-key_id"' in no_key.text


def test_unknown_uploads_are_404_and_forms_need_their_csrf_token(
    world: World, web_for: Callable[..., Web], babe_key: str
) -> None:
    web = web_for("officer")
    assert web.get("/sign/" + "A" * 22).status_code == 404
    assert web.get("/sign/../../etc").status_code == 404
    assert web.get("/sign/" + "A" * 22 + "/page/1.png").status_code == 404
    assert web.get("/sign/" + "A" * 22 + "/signed.pdf").status_code == 404
    refused = web.post(
        "/sign",
        files={"file": ("a.pdf", samples.official_document(), "application/pdf")},
        csrf=False,
    )
    assert refused.status_code == 403
    upload_id = upload(web, samples.official_document())
    no_token = web.post(
        f"/sign/{upload_id}",
        {"kind": "attachment", "key_id": babe_key, "place": "corner", "number": "1"},
        csrf=False,
    )
    assert no_token.status_code == 403


def test_who_may_open_the_signing_pages(world: World, web_for: Callable[..., Web]) -> None:
    assert web_for("auditor").get("/sign").status_code == 403
    anonymous = web_for().get("/sign", follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login")
    assert web_for("admin1").get("/sign").status_code == 200


def test_the_incoming_mark_goes_top_left_with_its_received_number_and_date(
    world: World, web_for: Callable[..., Web], babe_key: str
) -> None:
    web = web_for("officer")
    upload_id = upload(web, samples.official_document())
    bad_date = sign(
        web,
        upload_id,
        {"kind": "incoming", "key_id": babe_key, "place": "corner", "received_number": "123",
         "received_date": "31/02/2026"},
    )  # fmt: skip
    assert bad_date.status_code == 422 and 'id="e-received_date"' in bad_date.text
    done = sign(
        web,
        upload_id,
        {"kind": "incoming", "key_id": babe_key, "place": "corner", "received_number": "123",
         "received_date": "2026-03-02", "receiving_org": "UBND huyện Ba Bể"},
    )  # fmt: skip
    assert done.status_code == 303, done.text[:3000]
    page_index, (x1, _, _, y2) = widget_rect(web.get(f"/sign/{upload_id}/signed.pdf").content)
    assert page_index == 0 and x1 < 100 and y2 > 800


def test_a_seal_is_offered_to_its_own_unit_only_not_to_the_unit_above(
    instance: Instance, world: World, web_for: Callable[..., Web]
) -> None:
    """A district's officer signs with the district's seal, not with a commune's below it."""
    commune_key, _ = server_key(instance, world.unit("chuhuong"))
    own_key, _ = server_key(instance, world.unit("babe"))
    web = web_for("officer")
    upload_id = upload(web, samples.official_document())
    form = web.get(f"/sign/{upload_id}")
    assert f'value="{own_key}"' in form.text
    assert f'value="{commune_key}"' not in form.text
    refused = sign(
        web,
        upload_id,
        {"kind": "attachment", "key_id": commune_key, "place": "corner", "number": "2/QĐ"},
    )
    assert refused.status_code == 403


def test_a_giant_page_is_previewed_at_a_bounded_size_and_not_cached(
    world: World, web_for: Callable[..., Web]
) -> None:
    import pypdfium2 as pdfium

    document = pdfium.PdfDocument.new()
    document.new_page(14_400, 14_400)  # the largest page a PDF may declare (200 inches)
    buffer = io.BytesIO()
    document.save(buffer)
    web = web_for("officer")
    upload_id = upload(web, buffer.getvalue(), name="ban-ve.pdf")
    preview = web.get(f"/sign/{upload_id}/page/1.png")
    assert preview.status_code == 200 and preview.content.startswith(b"\x89PNG")
    width, height = struct.unpack(">II", preview.content[16:24])
    assert max(width, height) <= 2000
    assert preview.headers["cache-control"] == "no-store"
