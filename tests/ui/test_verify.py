"""The public verification pages: anyone uploads a signed file and reads the report, in
Vietnamese or English, with a clear verdict and why; the report downloads as PDF."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Instance
from fastapi.testclient import TestClient
from fixtures.pdf import samples
from support.world import World, app_client

from kyso.pki import status
from kyso.store.models import RevocationReason

from .conftest import Web
from .test_sign import server_key, sign, upload

REPORT = re.compile(r"^/verify/report/([A-Za-z0-9_-]{32})$")


@pytest.fixture
def signed_pdf(instance: Instance, world: World, web_for: Callable[..., Web]) -> tuple[bytes, str]:
    """(a PDF the babe officer signed on the signing page at B-B, the certificate's serial)"""
    key_id, serial = server_key(instance, world.unit("babe"))
    web = web_for("officer")
    upload_id = upload(web, samples.official_document())
    done = sign(
        web,
        upload_id,
        {
            "kind": "attachment",
            "key_id": key_id,
            "level": "B-B",
            "place": "corner",
            "number": "15/QĐ-UBND",
        },
    )
    assert done.status_code == 303, done.text[:2000]
    return web.get(f"/sign/{upload_id}/signed.pdf").content, serial


def check(web: Web, data: bytes, name: str = "quyet-dinh-da-ky.pdf", **extra: object):
    """Post the verification form; return (the redirect's report URL, the report page)."""
    response = web.post("/verify/report", files={"file": (name, data, "application/pdf")}, **extra)
    assert response.status_code == 303, response.text[:2000]
    url = response.headers["location"]
    assert REPORT.match(url), url
    return url, web.get(url)


def verdict(page_text: str) -> str:
    found = re.search(r'class="verdict-word"[^>]*>([^<]+)<', page_text)
    assert found, "no verdict on the page"
    return found.group(1).strip()


def test_the_verify_form_is_public_and_posts_to_the_page_report(web: Web) -> None:
    page = web.get("/verify")
    assert page.status_code == 200
    assert 'action="/verify/report"' in page.text and 'name="csrf_token"' in page.text
    assert "Tệp có chữ ký" in page.text  # Vietnamese by default


def test_an_anonymous_visitor_reads_valid_for_the_signed_file(
    web: Web, signed_pdf: tuple[bytes, str]
) -> None:
    url, page = check(web, signed_pdf[0])
    assert page.status_code == 200
    assert verdict(page.text) == "HỢP LỆ"
    assert "Chữ ký hợp lệ; tài liệu toàn vẹn." in page.text
    assert "Lý do" not in page.text  # nothing to explain
    assert "Văn thư UBND huyện Ba Bể" in page.text  # the signer's name in the details
    assert f'href="{url}.pdf"' in page.text


def test_a_changed_copy_is_not_valid_and_the_page_says_why(
    web: Web, signed_pdf: tuple[bytes, str]
) -> None:
    # text drawn on the page in a later revision: a change no signature allows
    _, page = check(web, samples.change_text(signed_pdf[0]))
    assert verdict(page.text) != "HỢP LỆ"
    why = page.text.split("Lý do", 1)[1].split("</ul>", 1)[0]
    assert "thay đổi sau khi ký" in why, why

    # bytes changed inside the signed revision: the hash no longer matches
    data = signed_pdf[0]
    assert data[9:10] == b"%"  # the binary comment line after the header, inside the signed range
    forged = data[:10] + bytes(b ^ 1 for b in data[10:14]) + data[14:]
    _, page = check(web, forged)
    assert verdict(page.text) == "KHÔNG HỢP LỆ"
    why = page.text.split("Lý do", 1)[1].split("</ul>", 1)[0]
    assert "bị sửa sau khi ký" in why or "không khớp" in why, why


def test_after_revocation_the_page_says_the_certificate_was_revoked(
    instance: Instance, web: Web, signed_pdf: tuple[bytes, str]
) -> None:
    data, serial = signed_pdf
    with instance.ctx.db.session() as session:
        status.revoke(
            session, instance.ctx.authority, serial, RevocationReason.KEY_COMPROMISE, "test"
        )
    _, page = check(web, data)
    assert verdict(page.text) != "HỢP LỆ"
    why = page.text.split("Lý do", 1)[1].split("</ul>", 1)[0]
    assert "thu hồi" in why and "lộ khóa" in why
    assert "đã bị thu hồi" in page.text  # the details say it too


def test_the_english_switch_gives_english(web: Web, signed_pdf: tuple[bytes, str]) -> None:
    switched = web.get("/lang/en?next=/verify", follow_redirects=False)
    assert switched.status_code == 303
    url, page = check(web, signed_pdf[0])
    assert page.text.startswith('<!doctype html>\n<html lang="en">')
    assert verdict(page.text) == "VALID"
    assert "The signature is valid; the document is intact." in page.text
    # The same report, back in Vietnamese after switching again
    web.get(f"/lang/vi?next={url}")
    assert verdict(web.get(url).text) == "HỢP LỆ"


def test_the_report_downloads_as_a_pdf(
    web: Web, signed_pdf: tuple[bytes, str], tmp_path: Path
) -> None:
    url, _ = check(web, signed_pdf[0])
    pdf = web.get(url + ".pdf")
    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF-")
    assert "attachment" in pdf.headers["content-disposition"]
    path = tmp_path / "bao-cao.pdf"
    path.write_bytes(pdf.content)
    try:
        text = subprocess.run(
            ["pdftotext", str(path), "-"], capture_output=True, text=True, check=True
        ).stdout
    except FileNotFoundError:
        return
    assert "Báo cáo xác thực chữ ký số" in text and "HỢP LỆ" in text


def test_the_signer_verifies_a_file_just_signed_from_the_result_page(
    instance: Instance, world: World, web_for: Callable[..., Web]
) -> None:
    key_id, _ = server_key(instance, world.unit("babe"))
    officer = web_for("officer")
    upload_id = upload(officer, samples.official_document())
    sign(
        officer,
        upload_id,
        {"kind": "attachment", "key_id": key_id, "place": "corner", "number": "1"},
    )
    done = officer.get(f"/sign/{upload_id}/done")
    assert f'name="signed" value="{upload_id}"' in done.text
    response = officer.post("/verify/report", {"signed": upload_id})
    assert response.status_code == 303
    assert verdict(officer.get(response.headers["location"]).text) == "HỢP LỆ"
    # someone else cannot verify (read) that file by its id
    other = web_for("officer_ns").post("/verify/report", {"signed": upload_id})
    assert other.status_code == 404


def test_bad_input_is_refused_with_a_message(web: Web) -> None:
    nothing = web.post("/verify/report", {})
    assert nothing.status_code == 422 and "Chọn tệp có chữ ký" in nothing.text
    junk = web.post("/verify/report", files={"file": ("a.txt", b"just some text", "text/plain")})
    assert junk.status_code == 422 and 'id="e-file"' in junk.text
    assert "không phải PDF" in junk.text


def test_forms_without_the_csrf_token_are_refused(web: Web, signed_pdf: tuple[bytes, str]) -> None:
    refused = web.post(
        "/verify/report",
        files={"file": ("a.pdf", signed_pdf[0], "application/pdf")},
        csrf=False,
    )
    assert refused.status_code == 403


def test_unknown_reports_are_404(web: Web) -> None:
    assert web.get("/verify/report/" + "x" * 32).status_code == 404
    assert web.get("/verify/report/" + "x" * 32 + ".pdf").status_code == 404
    assert web.get("/verify/report/..%2F..%2Fetc").status_code == 404


def test_the_json_api_at_post_verify_still_answers(web: Web, signed_pdf: tuple[bytes, str]) -> None:
    response = web.client.post(
        "/verify", files={"file": ("a.pdf", signed_pdf[0], "application/pdf")}
    )
    assert response.status_code == 200
    assert response.json()["indication"] == "TOTAL-PASSED"


def test_anonymous_verification_has_a_budget_per_client(
    instance: Instance, world: World, _ui_apps: dict, signed_pdf: tuple[bytes, str]
) -> None:
    """3 a minute (a burst of 1): the second anonymous check in a row waits; a signed-in
    user is not counted; the JSON API shares the budget and answers 429 in JSON."""
    app = app_client(instance, _ui_apps, verify_per_minute=3).app
    # an address of its own: the budgets live in the database, shared by every app of the run
    small = TestClient(app, raise_server_exceptions=False, client=(f"192.0.2.{id(app) % 250}", 1))
    visitor = Web(small, world)
    first = visitor.post(
        "/verify/report", files={"file": ("a.pdf", signed_pdf[0], "application/pdf")}
    )
    assert first.status_code == 303
    second = visitor.post(
        "/verify/report", files={"file": ("a.pdf", signed_pdf[0], "application/pdf")}
    )
    assert second.status_code == 429
    assert "Quá nhiều yêu cầu" in second.text and "text/html" in second.headers["content-type"]
    api = small.post("/verify", files={"file": ("a.pdf", signed_pdf[0], "application/pdf")})
    assert api.status_code == 429 and api.json()["code"] == "rate_limited"
    officer = Web(small, world).login("officer")
    assert (
        officer.post(
            "/verify/report", files={"file": ("a.pdf", signed_pdf[0], "application/pdf")}
        ).status_code
        == 303
    )
