"""The requests pages: a unit officer fills a form, saves a draft, submits; the province
approves (one by one or ticked in the queue), rejects with a reason, issues; the officer
then sees the request issued and downloads the certificate."""

from __future__ import annotations

import re
from collections.abc import Callable

from cryptography import x509
from cryptography.x509.oid import NameOID
from sqlalchemy import select
from support.world import World, individual_form

from kyso.store.models import CertificateRequest, RequestEvent, RequestState

from .conftest import Web

NEW_01 = "/requests/new/new_individual"


def _state(world: World, public_id: str) -> RequestState:
    with world.ctx.db.read() as session:
        return session.execute(
            select(CertificateRequest.state).where(CertificateRequest.public_id == public_id)
        ).scalar_one()


def _created(answer: object) -> str:
    location = answer.headers["location"]  # type: ignore[attr-defined]
    found = re.fullmatch(r"/requests/([a-z0-9]+)", location)
    assert found, location
    return found.group(1)


def submitted_request(officer: Web, **overrides: str) -> str:
    answer = officer.post(NEW_01, {**individual_form(**overrides), "action": "submit"})
    assert answer.status_code == 303, answer.text
    return _created(answer)


def test_officer_fills_form_01_saves_a_draft_then_submits_it(
    world: World, web_for: Callable[..., Web]
) -> None:
    officer = web_for("officer")
    choose = officer.get("/requests/new")
    assert choose.status_code == 200
    assert 'href="/requests/new/new_individual"' in choose.text
    page = officer.get(NEW_01)
    assert page.status_code == 200
    for label in ("Họ và tên", "Ngày sinh", "Số CCCD", "Ngày cấp", "Nơi cấp", "Chức vụ"):
        assert label in page.text, label
    assert '<label for="f-full_name">' in page.text

    body = individual_form(full_name="Nông Văn Dũng")
    answer = officer.post(NEW_01, {**body, "action": "draft"})
    assert answer.status_code == 303, answer.text
    public_id = _created(answer)
    assert _state(world, public_id) is RequestState.DRAFT

    draft = officer.get(f"/requests/{public_id}")
    assert draft.status_code == 200
    assert "Nông Văn Dũng" in draft.text and "Nháp" in draft.text
    assert "Đã lưu bản nháp" in draft.text  # the flash message
    assert f'action="/requests/{public_id}/submit"' in draft.text
    assert "/approve" not in draft.text  # an officer decides nothing

    edit = officer.get(f"/requests/{public_id}/edit")
    assert edit.status_code == 200 and 'value="Nông Văn Dũng"' in edit.text
    version = re.search(r'name="version" value="(\d+)"', edit.text).group(1)  # type: ignore[union-attr]
    changed = officer.post(
        f"/requests/{public_id}/edit",
        {**body, "position": "Chánh Văn phòng", "version": version, "action": "draft"},
    )
    assert changed.status_code == 303, changed.text

    sent = officer.post(f"/requests/{public_id}/submit")
    assert sent.status_code == 303
    assert _state(world, public_id) is RequestState.SUBMITTED
    shown = officer.get(f"/requests/{public_id}")
    assert "Chờ phê duyệt" in shown.text and "Chánh Văn phòng" in shown.text
    assert "Gửi yêu cầu" not in shown.text or f"/requests/{public_id}/submit" not in shown.text

    listed = officer.get("/requests?state=submitted")
    assert listed.status_code == 200 and public_id in listed.text
    drafts = officer.get("/requests?state=draft")
    assert public_id not in drafts.text


def test_bad_fields_come_back_with_messages_next_to_them_and_the_typed_values(
    world: World, web_for: Callable[..., Web]
) -> None:
    officer = web_for("officer")
    body = individual_form(email="mai-at-babe", id_number="12345", full_name="Hoàng Thị Mai")
    answer = officer.post(NEW_01, {**body, "action": "submit"})
    assert answer.status_code == 422
    text = answer.text
    # the message sits in the field's block, tied to it for screen readers
    email_block = re.search(
        r'<div class="field has-error">\s*<label for="f-email">.*?</div>', text, re.S
    )
    assert email_block, text
    assert 'aria-describedby="e-email"' in email_block.group(0)
    assert 'value="mai-at-babe"' in email_block.group(0)
    assert 'id="e-email"' in email_block.group(0)
    id_block = re.search(r'<label for="f-id_number">.*?</div>', text, re.S)
    assert id_block and 'id="e-id_number"' in id_block.group(0)
    assert 'value="12345"' in id_block.group(0)
    assert 'value="Hoàng Thị Mai"' in text  # good fields are kept too
    with world.ctx.db.read() as session:
        assert not session.execute(
            select(CertificateRequest.id).where(CertificateRequest.form.contains("mai-at-babe"))
        ).first()

    # a draft may be incomplete, but a submission names every missing field
    missing = officer.post(NEW_01, {"full_name": "Hoàng Thị Mai", "action": "submit"})
    assert missing.status_code == 422
    assert 'id="e-date_of_birth"' in missing.text and "bắt buộc" in missing.text
    draft = officer.post(NEW_01, {"full_name": "Hoàng Thị Mai", "action": "draft"})
    assert draft.status_code == 303


def test_the_province_approves_and_the_officer_downloads_the_issued_certificate(
    world: World, web_for: Callable[..., Web]
) -> None:
    officer, admin = web_for("officer"), web_for("admin1")
    public_id = submitted_request(officer, full_name="Hoàng Thị Mai")

    page = admin.get(f"/requests/{public_id}")
    assert page.status_code == 200
    assert f'action="/requests/{public_id}/approve"' in page.text
    assert f'action="/requests/{public_id}/reject"' in page.text
    approved = admin.post(f"/requests/{public_id}/approve", {"note": "đủ hồ sơ"})
    assert approved.status_code == 303, approved.text
    assert _state(world, public_id) is RequestState.ISSUED  # a server-held key: issued at once
    told = admin.get(f"/requests/{public_id}")
    assert "Đã phê duyệt: chứng thư đã được cấp." in told.text

    seen = officer.get(f"/requests/{public_id}")
    assert seen.status_code == 200
    assert "Đã cấp" in seen.text
    assert "Tải chứng thư (PEM)" in seen.text
    serial = re.search(r'href="/certificates/([0-9a-f]+)"', seen.text)
    assert serial
    assert "đủ hồ sơ" in seen.text  # the history keeps the approver's note
    assert "12/04/1978" in seen.text  # dates as officials write them

    pem = officer.get(f"/requests/{public_id}/certificate.pem")
    assert pem.status_code == 200
    assert "attachment" in pem.headers["content-disposition"]
    cert = x509.load_pem_x509_certificate(pem.content)
    assert format(cert.serial_number, "x") == serial.group(1).lstrip("0")
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert names[0].value == "Hoàng Thị Mai"
    der = officer.get(f"/requests/{public_id}/certificate.cer")
    assert der.status_code == 200
    assert x509.load_der_x509_certificate(der.content) == cert

    listed = officer.get("/requests?state=issued")
    assert public_id in listed.text


def test_the_queue_lists_the_oldest_first_and_decides_ticked_requests(
    world: World, web_for: Callable[..., Web]
) -> None:
    officer, admin = web_for("officer"), web_for("admin2")
    first = submitted_request(officer, full_name="Triệu Văn Một")
    second = submitted_request(officer, full_name="Triệu Thị Hai")
    queue = admin.get("/approvals")
    assert queue.status_code == 200
    assert 'data-check-all="request"' in queue.text
    total = int(re.search(r'data-total="(\d+)"', queue.text).group(1))  # type: ignore[union-attr]
    tail = admin.get(f"/approvals?offset={total - 2}").text
    assert tail.index(first) < tail.index(second)  # the longest-waiting first
    assert "UBND huyện Ba Bể" in tail and "Triệu Văn Một" in tail

    # rejecting needs a reason, shown next to the reason field
    refused = admin.post(
        "/approvals", [("request", first), ("request", second), ("decision", "reject")]
    )
    assert refused.status_code == 422
    block = re.search(r'<label for="f-reason">.*?</div>', refused.text, re.S)
    assert block and 'id="e-reason"' in block.group(0)
    assert _state(world, first) is RequestState.SUBMITTED

    done = admin.post(
        "/approvals", [("request", first), ("request", second), ("decision", "approve")]
    )
    assert done.status_code == 303
    assert _state(world, first) is _state(world, second) is RequestState.ISSUED
    after = admin.get("/approvals")
    assert "2 yêu cầu đã được phê duyệt" in after.text


def test_a_rejection_needs_a_reason_and_the_unit_reads_it(
    world: World, web_for: Callable[..., Web]
) -> None:
    officer, admin = web_for("officer"), web_for("admin1")
    public_id = submitted_request(officer)
    empty = admin.post(f"/requests/{public_id}/reject", {"reason": "  "})
    assert empty.status_code == 422
    block = re.search(r'<label for="f-reason">.*?</div>', empty.text, re.S)
    assert block and 'id="e-reason"' in block.group(0)
    assert _state(world, public_id) is RequestState.SUBMITTED

    rejected = admin.post(f"/requests/{public_id}/reject", {"reason": "Sai ngày cấp CCCD"})
    assert rejected.status_code == 303
    assert _state(world, public_id) is RequestState.REJECTED
    page = officer.get(f"/requests/{public_id}")
    assert "Bị từ chối" in page.text and "Sai ngày cấp CCCD" in page.text
    with world.ctx.db.read() as session:
        notes = (
            session.execute(
                select(RequestEvent.note)
                .join(CertificateRequest, RequestEvent.request_id == CertificateRequest.id)
                .where(CertificateRequest.public_id == public_id)
            )
            .scalars()
            .all()
        )
    assert "Sai ngày cấp CCCD" in notes

    again = admin.post(f"/requests/{public_id}/approve")
    assert again.status_code == 409  # a rejected request cannot be approved
    assert "không thể duyệt" in again.text


def test_an_officer_cannot_approve_and_another_district_cannot_see_the_request(
    world: World, web_for: Callable[..., Web]
) -> None:
    officer = web_for("officer")
    public_id = submitted_request(officer)
    page = officer.get(f"/requests/{public_id}")
    assert "/approve" not in page.text and "/reject" not in page.text
    assert officer.post(f"/requests/{public_id}/approve").status_code == 403
    assert officer.post(f"/requests/{public_id}/reject", {"reason": "x"}).status_code == 403
    assert officer.get("/approvals").status_code == 403
    assert officer.post(
        "/approvals", [("request", public_id), ("decision", "approve")]
    ).status_code in (403,)
    assert _state(world, public_id) is RequestState.SUBMITTED

    other = web_for("officer_ns")
    assert other.get(f"/requests/{public_id}").status_code in (403, 404)
    assert other.get(f"/requests/{public_id}/certificate.pem").status_code in (403, 404)
    assert other.post(f"/requests/{public_id}/cancel").status_code in (403, 404)
    assert public_id not in other.get("/requests").text
    # the auditor reads but decides nothing
    auditor = web_for("auditor")
    assert auditor.get(f"/requests/{public_id}").status_code == 200
    assert auditor.post(f"/requests/{public_id}/approve").status_code == 403


def test_bad_addresses_and_filters_give_clean_pages(
    world: World, web_for: Callable[..., Web], web: Web
) -> None:
    officer = web_for("officer")
    assert officer.get("/requests/aaaaaaaaaaaaaaaa").status_code == 404
    assert officer.get("/requests/no%20such!").status_code == 404
    assert officer.get("/requests/new/99").status_code == 404
    assert officer.get("/requests/bulk/zzzzzzzzzzzzzzzz").status_code == 404
    odd = officer.get("/requests?state=nonsense&type=x&unit=nope&offset=5")
    assert odd.status_code == 200
    assert officer.get("/requests?offset=-1").status_code == 422
    assert web.get("/requests", follow_redirects=False).status_code == 303  # to the login page
    draft = officer.post(NEW_01, {"full_name": "Lục Văn Ba", "action": "draft"})
    public_id = _created(draft)
    # no certificate yet
    assert officer.get(f"/requests/{public_id}/certificate.pem").status_code == 404


def test_a_post_without_the_csrf_token_is_refused(
    world: World, web_for: Callable[..., Web]
) -> None:
    officer = web_for("officer")
    answer = officer.post(NEW_01, {**individual_form(), "action": "submit"}, csrf=False)
    assert answer.status_code == 403
    admin = web_for("admin1")
    public_id = submitted_request(officer)
    assert admin.post(f"/requests/{public_id}/approve", csrf=False).status_code == 403
    assert (
        admin.post(
            "/approvals", [("request", public_id), ("decision", "approve")], csrf=False
        ).status_code
        == 403
    )
    assert _state(world, public_id) is RequestState.SUBMITTED
