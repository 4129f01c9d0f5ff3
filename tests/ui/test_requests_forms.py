"""The other forms (02–06) and the later steps on a request's page: a key made on a token
waits, approved, for its PIN; hand-over; cancelling a draft; English labels."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable

from sqlalchemy import select
from support.world import World, individual_form

from kyso.registry import devices
from kyso.store.models import CertificateRequest, RequestState

from .conftest import Web
from .test_requests import NEW_01, _created, _state, submitted_request


def test_every_form_has_its_page_with_the_official_labels(
    world: World, web_for: Callable[..., Web]
) -> None:
    officer = web_for("officer")
    expected = {
        "new_organization": ("Tên cơ quan, tổ chức", "Mã quan hệ ngân sách", "Người nhận thiết bị"),
        "device_service": ("Tên thiết bị, dịch vụ, phần mềm", "Người chịu trách nhiệm"),
        "renewal_change": ("Loại đề nghị (gia hạn / thay đổi thông tin)", "Số hiệu chứng thư số"),
        "revocation": ("Lý do thu hồi", "Giải trình", "Lộ khóa bí mật"),
        "device_unlock": ("Số sê-ri thiết bị", "Người giữ thiết bị"),
    }
    for code, labels in expected.items():
        page = officer.get(f"/requests/new/{code}")
        assert page.status_code == 200, code
        for label in labels:
            assert label in page.text, (code, label)
    assert officer.get("/requests/new/02").status_code == 200  # by the form's number too
    english = web_for("officer")
    english.client.cookies.set("kyso_lang", "en")
    assert "Full name" in english.get(NEW_01).text


def test_an_organization_request_is_filled_from_the_registry_and_issued(
    world: World, web_for: Callable[..., Web]
) -> None:
    officer, admin = web_for("officer"), web_for("admin1")
    answer = officer.post(
        "/requests/new/new_organization",
        {
            "subject_unit": world.unit("chuhuong").public_id,
            "recipient_name": "Đàm Thị Văn Thư",
            "action": "submit",
        },
    )
    assert answer.status_code == 303, answer.text
    public_id = _created(answer)
    page = officer.get(f"/requests/{public_id}")
    assert "UBND xã Chu Hương" in page.text  # the organization's name from the registry
    assert admin.post(f"/requests/{public_id}/approve").status_code == 303
    assert _state(world, public_id) is RequestState.ISSUED


def test_a_revocation_names_a_wrong_serial_next_to_its_field(
    world: World, web_for: Callable[..., Web]
) -> None:
    officer = web_for("officer")
    answer = officer.post(
        "/requests/new/revocation",
        {
            "certificate_serial": "not-hex!",
            "reason": "key-compromise",
            "explanation": "Mất thiết bị",
            "action": "submit",
        },
    )
    assert answer.status_code == 422
    block = re.search(r'<label for="f-certificate_serial">.*?</div>', answer.text, re.S)
    assert block and 'id="e-certificate_serial"' in block.group(0)
    assert 'value="not-hex!"' in block.group(0)
    assert '<option value="key-compromise" selected>' in answer.text


def test_a_token_key_waits_approved_for_the_pin_and_issuing_without_it_is_refused(
    world: World, web_for: Callable[..., Web]
) -> None:
    officer, admin = web_for("officer"), web_for("admin1")
    serial = f"TK{secrets.token_hex(4)}"
    with world.ctx.db.session() as session:
        devices.add(
            world.who("admin1"),
            session,
            devices.DeviceInput(
                serial=serial, model="ePass2003", unit=world.unit("babe").public_id
            ),
        )
    answer = officer.post(
        NEW_01, {**individual_form(), "key_source": "token", "device": serial, "action": "submit"}
    )
    assert answer.status_code == 303, answer.text
    public_id = _created(answer)
    assert admin.post(f"/requests/{public_id}/approve").status_code == 303
    assert _state(world, public_id) is RequestState.APPROVED  # waits for the token
    page = admin.get(f"/requests/{public_id}")
    assert f'action="/requests/{public_id}/issue"' in page.text and serial in page.text
    assert "/issue" not in officer.get(f"/requests/{public_id}").text
    refused = admin.post(f"/requests/{public_id}/issue", {"token_pin": ""})
    assert refused.status_code == 422
    block = re.search(r'<label for="f-token_pin">.*?</div>', refused.text, re.S)
    assert block and 'id="e-token_pin"' in block.group(0)
    assert officer.post(f"/requests/{public_id}/issue", {"token_pin": "1234"}).status_code == 403
    assert _state(world, public_id) is RequestState.APPROVED


def test_a_token_key_without_a_device_is_refused_next_to_the_device_field(
    world: World, web_for: Callable[..., Web]
) -> None:
    officer = web_for("officer")
    answer = officer.post(NEW_01, {**individual_form(), "key_source": "token", "action": "submit"})
    assert answer.status_code == 422
    assert 'id="e-device"' in answer.text
    unknown = officer.post(
        NEW_01,
        {**individual_form(), "key_source": "token", "device": "KHONG-CO", "action": "draft"},
    )
    assert unknown.status_code == 422
    block = re.search(r'<label for="f-device">.*?</div>', unknown.text, re.S)
    assert block and 'id="e-device"' in block.group(0) and 'value="KHONG-CO"' in block.group(0)


def test_the_officer_hands_over_the_issued_certificate_and_cancels_a_draft(
    world: World, web_for: Callable[..., Web]
) -> None:
    officer, admin = web_for("officer"), web_for("admin1")
    public_id = submitted_request(officer)
    admin.post(f"/requests/{public_id}/approve")
    page = officer.get(f"/requests/{public_id}")
    assert f'action="/requests/{public_id}/handover"' in page.text
    done = officer.post(
        f"/requests/{public_id}/handover", {"from_name": "Lý Văn Cán", "note": "tại UBND huyện"}
    )
    assert done.status_code == 303
    assert _state(world, public_id) is RequestState.HANDED_OVER
    assert "Đã bàn giao" in officer.get(f"/requests/{public_id}").text

    draft = _created(officer.post(NEW_01, {"full_name": "Hà Văn Bốn", "action": "draft"}))
    assert officer.post(f"/requests/{draft}/cancel").status_code == 303
    assert _state(world, draft) is RequestState.CANCELLED
    again = officer.post(f"/requests/{draft}/submit")
    assert again.status_code == 409  # a cancelled request cannot be submitted
    assert officer.get(f"/requests/{draft}/edit", follow_redirects=False).status_code == 303


def test_an_oversized_csr_upload_is_refused_with_413(
    world: World, web_for: Callable[..., Web]
) -> None:
    officer = web_for("officer")
    big = b"-----BEGIN CERTIFICATE REQUEST-----\n" + b"A" * (70 * 1024)
    body = individual_form()
    answer = officer.post(
        NEW_01,
        {**body, "key_source": "csr", "action": "draft"},
        files={"csr_file": ("big.csr", big, "application/pkcs10")},
    )
    assert answer.status_code == 413
    with world.ctx.db.read() as session:
        stored = select(CertificateRequest.id).where(
            CertificateRequest.form.contains(body["email"])
        )
        assert session.execute(stored).first() is None
