"""The records clerk's pages for documents between agencies (/exchange), on SQLite and
PostgreSQL: Ba Bể's clerk fills the send form for Ngân Sơn; Ngân Sơn's clerk finds it in the
inbox "Chờ tiếp nhận", receives it (the incoming number shows) and downloads the PDF with the
ĐẾN mark, while Ba Bể's outbox reads "Đã tiếp nhận"; a refusal says why; a recall withdraws
it; bad input comes back on the form in Vietnamese (422, values kept); nobody opens another
unit's mail; every form needs its CSRF token; a leader has neither the pages nor the link."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from typing import Any

import pytest
from conftest import Instance
from fixtures.pdf import samples
from sqlalchemy import func, select, update
from support.world import World, make_world

from kyso import clock
from kyso.exchange import edxml
from kyso.store.models import ExchangeDirection, ExchangeMessage, Organization, Role, User
from kyso.trust import trust_context
from kyso.validation.verify import verify

from .conftest import Web
from .test_sign import server_key

PDF = samples.official_document()
ANNEX = samples.official_document(signer_name="Nguyễn Văn Phụ", position="Phụ lục")
DETAIL = re.compile(r"^/exchange/([A-Za-z0-9_-]{22})$")


@pytest.fixture(scope="module")
def world(instance: Instance) -> World:
    """Ba Bể, its Phòng TN&MT and Ngân Sơn with identifier codes (mã định danh)."""
    found = make_world(instance.ctx, instance.backend)
    with instance.ctx.db.session() as session:
        for key in ("babe", "tnmt", "nganson"):
            session.execute(
                update(Organization)
                .where(Organization.id == found.unit(key).id)
                .values(code=code(found, key))
            )
    return found


def code(world: World, key: str) -> str:
    return f"{dict(babe='000.41', tnmt='000.43', nganson='000.42')[key]}.{world.tag}.H03"


@pytest.fixture(scope="module")
def seals(instance: Instance, world: World) -> dict[str, str]:
    """Each district's seal key (kyso's key store), issued to the unit."""
    return {key: server_key(instance, world.unit(key))[0] for key in ("babe", "nganson")}


def form(world: World, seals: dict[str, str], **changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "unit": world.unit("babe").public_id,
        "recipients": [code(world, "nganson")],
        "other_codes": "",
        "code_number": str(secrets.randbelow(900) + 100),
        "code_notation": "QĐ-UBND",
        "type_name": "Quyết định",
        "subject": f"Quyết định ban hành Quy chế sử dụng chữ ký số {secrets.token_hex(3)}",
        "place": "Ba Bể",
        "competence": "KT. CHỦ TỊCH",
        "position": "PHÓ CHỦ TỊCH",
        "full_name": "Hoàng Văn Lãnh",
        "priority": "1",
        "key_id": seals["babe"],
    }
    values.update(changes)
    return values


def documents(*extra: tuple[str, bytes]) -> list[tuple[str, Any]]:
    files = [("document", ("quyet-dinh.pdf", PDF, "application/pdf"))]
    files += [("attachments", (name, data, "application/pdf")) for name, data in extra]
    return files


def send(clerk: Web, values: dict[str, Any], files: Any = None) -> str:
    """Send through the form; the OUT message's public id."""
    answer = clerk.post("/exchange/send", values, files=documents() if files is None else files)
    assert answer.status_code == 303, answer.text[:3000]
    found = DETAIL.match(answer.headers["location"])
    assert found, answer.headers["location"]
    return found.group(1)


def inbox_id(clerk: Web, subject: str) -> str:
    """The id of the message with ``subject`` in the clerk's inbox page."""
    page = clerk.get("/exchange")
    assert page.status_code == 200
    found = re.search(rf'href="/exchange/([A-Za-z0-9_-]{{22}})">{re.escape(subject)}<', page.text)
    assert found, f"{subject} is not in the inbox"
    return found.group(1)


def row(page: str, subject: str) -> str:
    """The table row of ``subject`` in a list page."""
    found = re.search(rf"<tr>(?:(?!</tr>).)*{re.escape(subject)}(?:(?!</tr>).)*</tr>", page, re.S)
    assert found, f"{subject} is not listed"
    return found.group(0)


def count_out(world: World) -> int:
    with world.ctx.db.read() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(ExchangeMessage)
                .where(
                    ExchangeMessage.direction == ExchangeDirection.OUT,
                    ExchangeMessage.organization_id == world.unit("babe").id,
                )
            )
            or 0
        )


def test_a_document_sent_from_ba_be_is_received_in_ngan_son_with_the_den_mark(
    world: World, seals: dict[str, str], web_for: Callable[..., Web]
) -> None:
    clerk = web_for("officer")
    page = clerk.get("/exchange/send")
    assert page.status_code == 200
    assert f'value="{world.unit("babe").public_id}"' in page.text  # the sending unit
    assert f'<option value="{code(world, "nganson")}"' in page.text  # a recipient here
    assert f'<option value="{code(world, "babe")}"' not in page.text  # not itself
    assert f'value="{seals["babe"]}"' in page.text  # the seal
    values = form(world, seals)
    out = send(clerk, values, documents(("phu-luc.pdf", ANNEX)))

    sent = clerk.get(f"/exchange/{out}")
    assert sent.status_code == 200
    assert "Văn bản đã được ký số của cơ quan và gửi đi." in sent.text
    assert 'data-state="delivered">Đã đến nơi nhận<' in sent.text
    assert "Thu hồi văn bản" in sent.text  # the sender may recall it
    assert "UBND huyện Ngân Sơn" in sent.text and "Khẩn" in sent.text
    assert "KT. CHỦ TỊCH – PHÓ CHỦ TỊCH – Hoàng Văn Lãnh" in sent.text

    # Ngân Sơn's clerk finds it waiting, with both files
    receiver = web_for("officer_ns")
    assert 'href="/exchange"' in receiver.get("/").text  # the menu link
    inbox = receiver.get("/exchange")
    assert "Văn bản đến" in inbox.text and "Gửi văn bản" in inbox.text
    line = row(inbox.text, values["subject"])
    assert "Chờ tiếp nhận" in line and "UBND huyện Ba Bể" in line
    assert f"{values['code_number']}/QĐ-UBND" in line
    arrived = inbox_id(receiver, values["subject"])
    detail = receiver.get(f"/exchange/{arrived}")
    assert detail.status_code == 200
    assert "Tiếp nhận" in detail.text and "Từ chối" in detail.text
    assert "quyet-dinh.pdf" in detail.text and "phu-luc.pdf" in detail.text
    assert "01 · Đã đến" in detail.text  # the status history
    first = receiver.get(f"/exchange/{arrived}/files/1")
    assert first.status_code == 200 and first.content == PDF
    assert first.headers["content-type"] == "application/pdf"
    assert first.headers["content-disposition"] == 'attachment; filename="quyet-dinh.pdf"'
    assert receiver.get(f"/exchange/{arrived}/files/2").content == ANNEX
    assert receiver.get(f"/exchange/{arrived}/files/3").status_code == 404
    xml = receiver.get(f"/exchange/{arrived}/package.xml")
    assert xml.status_code == 200 and xml.headers["content-type"].startswith("application/xml")
    assert edxml.parse(xml.content).header.subject == values["subject"]
    assert receiver.get(f"/exchange/{arrived}/marked.pdf").status_code == 404  # not yet

    # …receives it with Ngân Sơn's seal: the incoming number shows
    took = receiver.post(f"/exchange/{arrived}/accept", {"key_id": seals["nganson"]})
    assert took.status_code == 303 and took.headers["location"] == f"/exchange/{arrived}"
    received = receiver.get(f"/exchange/{arrived}")
    number = re.search(r'id="received-number">(\d+)<', received.text)
    assert number, received.text[:3000]
    assert f"Đã tiếp nhận: số đến {number.group(1)}." in received.text
    assert 'data-state="received">Đã tiếp nhận<' in received.text
    assert "03 · Đã tiếp nhận" in received.text
    assert 'action="/exchange/' not in received.text.split("<main", 1)[1]  # nothing left to do
    assert f">{number.group(1)}</td>" in row(receiver.get("/exchange").text, values["subject"])

    # …and downloads the PDF with the ĐẾN mark, signed by Ngân Sơn
    marked = receiver.get(f"/exchange/{arrived}/marked.pdf")
    assert marked.status_code == 200 and marked.content.startswith(b"%PDF")
    assert marked.headers["content-type"] == "application/pdf"
    assert marked.headers["content-disposition"].startswith("attachment;")
    report = verify(marked.content, trust_context(world.ctx), name="den.pdf")
    assert report.passed and len(report.signatures) == 1
    signer = report.signatures[0].signer
    assert signer is not None and "UBND huyện Ngân Sơn" in signer.subject

    # Ba Bể's outbox says so
    outbox = clerk.get("/exchange?box=out")
    assert "Đã tiếp nhận" in row(outbox.text, values["subject"])
    assert "03 · Đã tiếp nhận" in clerk.get(f"/exchange/{out}").text

    # the same pages in English
    receiver.client.cookies.set("kyso_lang", "en")
    english = receiver.get(f"/exchange/{arrived}")
    assert "Received by the clerk" in english.text and "Incoming number" in english.text
    assert "Documents exchange" in english.text


def test_the_clerk_refuses_with_a_reason_that_the_sender_reads(
    world: World, seals: dict[str, str], web_for: Callable[..., Web]
) -> None:
    clerk, receiver = web_for("officer"), web_for("officer_ns")
    values = form(world, seals)
    out = send(clerk, values)
    arrived = inbox_id(receiver, values["subject"])

    empty = receiver.post(f"/exchange/{arrived}/refuse", {"reason": "   "})
    assert empty.status_code == 422
    assert 'role="alert">Dữ liệu không hợp lệ. (hãy nêu lý do từ chối)<' in empty.text
    refused = receiver.post(f"/exchange/{arrived}/refuse", {"reason": "Gửi nhầm đơn vị"})
    assert refused.status_code == 303
    page = receiver.get(f"/exchange/{arrived}")
    assert "Đã từ chối: nơi gửi được báo lý do." in page.text
    assert 'data-state="refused">Bị từ chối<' in page.text and "Gửi nhầm đơn vị" in page.text
    # too late to receive it now: said on the page, not a 500
    late = receiver.post(f"/exchange/{arrived}/accept", {"key_id": seals["nganson"]})
    assert late.status_code == 409 and "không ở trạng thái chờ tiếp nhận" in late.text

    assert "Bị từ chối" in row(clerk.get("/exchange?box=out").text, values["subject"])
    told = clerk.get(f"/exchange/{out}")
    assert "Gửi nhầm đơn vị" in told.text and "02 · Từ chối tiếp nhận" in told.text


def test_a_refusal_to_a_sender_elsewhere_is_signed_with_the_seal_chosen_on_the_form(
    instance: Instance, world: World, seals: dict[str, str], web_for: Callable[..., Web]
) -> None:
    """Chu Hương sends; then its code leaves this installation (as if it had moved to
    another system), so Ngân Sơn's refusal must travel back as a signed status."""
    elsewhere = f"000.44.{world.tag}.H03"
    chuhuong = world.unit("chuhuong")
    with world.ctx.db.session() as session:
        session.execute(
            update(Organization).where(Organization.id == chuhuong.id).values(code=elsewhere)
        )
    receiver = web_for("officer_ns")
    # Ba Bể's clerk may use Ba Bể's seal, but not to send for the commune below it
    wrong = web_for("officer").post(
        "/exchange/send", form(world, seals, unit=chuhuong.public_id), files=documents()
    )
    assert wrong.status_code == 422 and "không phải con dấu của đơn vị" in wrong.text
    # the commune's own clerk sends with the commune's own seal
    from kyso.registry import users
    from kyso.registry.access import cli_principal
    from kyso.store.models import Role

    with world.ctx.db.session() as session:
        commune_clerk = users.create(
            cli_principal("cli:test"),
            session,
            users.UserInput(
                username=f"vanthu-chuhuong-{world.tag}",
                full_name="Ma Thị Văn Thư",
                password="mật-khẩu-văn-thư-2026",
                role=Role.UNIT_OFFICER,
                unit=chuhuong.public_id,
            ),
        ).user
    clerk = web_for().login(commune_clerk)
    commune_seal = server_key(instance, chuhuong)[0]
    values = form(world, seals, unit=chuhuong.public_id, key_id=commune_seal)
    send(clerk, values)
    arrived = inbox_id(receiver, values["subject"])
    with world.ctx.db.session() as session:
        session.execute(
            update(Organization).where(Organization.id == chuhuong.id).values(code=None)
        )
    page = receiver.get(f"/exchange/{arrived}")
    assert f'<option value="{seals["nganson"]}"' in page.text  # one seal for both actions
    assert 'formaction="/exchange/' in page.text

    unsigned = receiver.post(f"/exchange/{arrived}/refuse", {"reason": "Gửi nhầm", "key_id": ""})
    assert unsigned.status_code == 422 and "hãy chọn khóa con dấu của đơn vị" in unsigned.text
    assert "Gửi nhầm" in unsigned.text  # the reason is kept
    refused = receiver.post(
        f"/exchange/{arrived}/refuse", {"reason": "Gửi nhầm", "key_id": seals["nganson"]}
    )
    assert refused.status_code == 303, refused.text[:2000]
    page = receiver.get(f"/exchange/{arrived}")
    assert 'data-state="refused">Bị từ chối<' in page.text and "Gửi nhầm" in page.text


def test_a_recall_takes_the_document_back_from_the_inbox(
    world: World, seals: dict[str, str], web_for: Callable[..., Web]
) -> None:
    clerk, receiver = web_for("officer"), web_for("officer_ns")
    values = form(world, seals)
    out = send(clerk, values)
    arrived = inbox_id(receiver, values["subject"])

    no_reason = clerk.post(f"/exchange/{out}/recall", {"reason": "", "key_id": seals["babe"]})
    assert no_reason.status_code == 422 and "hãy nêu lý do thu hồi" in no_reason.text
    no_key = clerk.post(f"/exchange/{out}/recall", {"reason": "Sai số ký hiệu", "key_id": ""})
    assert no_key.status_code == 422 and 'id="e-key_id"' in no_key.text
    assert "Sai số ký hiệu" in no_key.text  # the reason is kept
    done = clerk.post(
        f"/exchange/{out}/recall", {"reason": "Sai số ký hiệu", "key_id": seals["babe"]}
    )
    assert done.status_code == 303
    page = clerk.get(f"/exchange/{out}")
    assert "Yêu cầu thu hồi đã được ký và gửi đến nơi nhận." in page.text
    assert 'data-state="recalled">Đã thu hồi<' in page.text
    assert "Thu hồi văn bản" not in page.text  # once is enough

    withdrawn = receiver.get(f"/exchange/{arrived}")
    assert 'data-state="recalled">Đã thu hồi<' in withdrawn.text
    assert "Sai số ký hiệu" in withdrawn.text and "13 · Đã thu hồi" in withdrawn.text
    assert 'action="/exchange/' not in withdrawn.text.split("<main", 1)[1]


def test_bad_input_comes_back_on_the_form_in_vietnamese(
    world: World, seals: dict[str, str], web_for: Callable[..., Web]
) -> None:
    clerk = web_for("officer")
    before = count_out(world)
    cases: list[tuple[dict[str, Any], Any, str]] = [
        ({}, [], "hãy đính kèm văn bản"),
        ({}, [("document", ("", b"", "application/octet-stream"))], "hãy đính kèm văn bản"),
        ({"subject": ""}, None, "hãy nhập trích yếu nội dung"),
        ({"subject": "Trích yếu " + "rất dài " * 80}, None, "trích yếu tối đa 500 ký tự"),
        (
            {"recipients": [], "other_codes": "999.99.99.H99"},
            None,
            "không có đơn vị hay hệ thống nào mang mã định danh 999.99.99.H99",
        ),
        ({"recipients": [code(world, "babe")]}, None, "đơn vị không gửi cho chính mình"),
        ({"recipients": []}, None, "hãy chọn ít nhất một nơi nhận"),
        ({"code_number": " "}, None, "hãy nhập số của văn bản"),
        ({"promulgation_date": "31/02/2026"}, None, "dd/mm/yyyy"),
        ({"priority": "9"}, None, "Hãy chọn độ khẩn của văn bản."),
        ({"key_id": ""}, None, "Hãy chọn khóa chữ ký số của cơ quan để ký gói tin."),
    ]
    for changes, files, words in cases:
        values = form(world, seals, **changes)
        answer = clerk.post("/exchange/send", values, files=documents() if files is None else files)
        assert answer.status_code == 422, (changes, answer.text[:2000])
        assert words in answer.text, (changes, words)
        assert 'role="alert"' in answer.text or 'class="error"' in answer.text
        assert 'value="Ba Bể"' in answer.text  # what was typed is kept
        if values["subject"]:
            assert values["subject"].split()[-1] in answer.text
    unknown = clerk.post(
        "/exchange/send",
        form(world, seals, recipients=[], other_codes="999.99.99.H99"),
        files=documents(),
    )
    assert 'id="e-recipients"' in unknown.text  # beside the recipients
    assert 'value="999.99.99.H99"' in unknown.text
    picked = clerk.post(
        "/exchange/send", form(world, seals, subject=""), files=documents()
    )  # the ticked recipient stays ticked
    assert re.search(rf'value="{re.escape(code(world, "nganson"))}" selected', picked.text)
    assert count_out(world) == before  # nothing was sent

    # the sending unit must be the clerk's own; another key than the unit's is refused too
    elsewhere = clerk.post(
        "/exchange/send",
        form(world, seals, unit=world.unit("nganson").public_id, recipients=[code(world, "tnmt")]),
        files=documents(),
    )
    assert elsewhere.status_code == 403
    foreign = clerk.post(
        "/exchange/send", form(world, seals, key_id=seals["nganson"]), files=documents()
    )
    assert foreign.status_code == 403
    assert count_out(world) == before


def test_another_units_clerk_opens_none_of_it(
    world: World, seals: dict[str, str], web_for: Callable[..., Web]
) -> None:
    clerk, receiver = web_for("officer"), web_for("officer_ns")
    values = form(world, seals)
    out = send(clerk, values)
    arrived = inbox_id(receiver, values["subject"])
    assert values["subject"] not in clerk.get("/exchange").text  # not in Ba Bể's inbox
    assert values["subject"] not in receiver.get("/exchange?box=out").text
    for who, other in ((clerk, arrived), (receiver, out)):
        for path in ("", "/files/1", "/marked.pdf", "/package.xml"):
            assert who.get(f"/exchange/{other}{path}").status_code == 404, path
    assert clerk.post(f"/exchange/{arrived}/accept", {"key_id": seals["babe"]}).status_code == 404
    assert clerk.post(f"/exchange/{arrived}/refuse", {"reason": "x"}).status_code == 404
    recall = receiver.post(f"/exchange/{out}/recall", {"reason": "x", "key_id": seals["nganson"]})
    assert recall.status_code == 404
    # Ngân Sơn's clerk may not apply Ba Bể's seal to the ĐẾN mark
    foreign = receiver.post(f"/exchange/{arrived}/accept", {"key_id": seals["babe"]})
    assert foreign.status_code == 403
    assert "Chờ tiếp nhận" in receiver.get(f"/exchange/{arrived}").text
    for path in ("/exchange/nothing-here", f"/exchange/{arrived}/files/0", "/exchange/x/files/²"):
        assert receiver.get(path).status_code == 404


def test_every_form_needs_its_csrf_token(
    world: World, seals: dict[str, str], web_for: Callable[..., Web]
) -> None:
    clerk, receiver = web_for("officer"), web_for("officer_ns")
    values = form(world, seals)
    before = count_out(world)
    forged = clerk.post("/exchange/send", values, files=documents(), csrf=False)
    assert forged.status_code == 403 and count_out(world) == before
    out = send(clerk, values)
    arrived = inbox_id(receiver, values["subject"])
    for who, path, data in (
        (receiver, f"/exchange/{arrived}/accept", {"key_id": seals["nganson"]}),
        (receiver, f"/exchange/{arrived}/refuse", {"reason": "Gửi nhầm"}),
        (clerk, f"/exchange/{out}/recall", {"reason": "Sai", "key_id": seals["babe"]}),
    ):
        answer = who.post(path, data, csrf=False)
        assert answer.status_code == 403, path
    assert "Chờ tiếp nhận" in receiver.get(f"/exchange/{arrived}").text
    assert 'data-state="delivered"' in clerk.get(f"/exchange/{out}").text


def test_a_leader_has_neither_the_pages_nor_the_link(
    world: World, seals: dict[str, str], web_for: Callable[..., Web]
) -> None:
    out = send(web_for("officer"), form(world, seals))
    with world.ctx.db.session() as session:
        leader = User(
            public_id=secrets.token_hex(8),
            username=f"lanh-x-{world.tag}",
            full_name="Hoàng Văn Lãnh",
            email=f"lanh-x.{world.tag}@backan.gov.vn",
            password_hash="!",
            role=Role.SIGNER,
            organization_id=world.unit("babe").id,
            password_changed_at=clock.now(),
            created_at=clock.now(),
            active=True,
            failed_logins=0,
        )
        session.add(leader)
    visitor = web_for().login(leader)
    home = visitor.get("/")
    assert home.status_code == 200
    assert 'href="/exchange"' not in home.text and "Văn bản điện tử" not in home.text
    for path in ("/exchange", "/exchange/send", f"/exchange/{out}", f"/exchange/{out}/files/1"):
        assert visitor.get(path).status_code in (403, 404), path
    assert visitor.post("/exchange/send", form(world, seals)).status_code == 403
    assert visitor.post(f"/exchange/{out}/recall", {"reason": "x"}).status_code == 403
    assert web_for("auditor").get("/exchange").status_code == 403
    anonymous = web_for().get("/exchange", follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login")
