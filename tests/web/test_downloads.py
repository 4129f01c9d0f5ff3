"""Vietnamese file names on every download: RFC 6266 ``filename*`` with an ASCII fallback,
never a 500 (issue 9, item 9)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from urllib.parse import unquote

import httpx
import pytest
from conftest import Instance
from fastapi.testclient import TestClient
from fixtures.pdf import samples

from kyso.api import clients
from kyso.pki import issuance
from kyso.settings import Settings
from kyso.store.models import Profile
from kyso.web.app import create_app
from kyso.web.downloads import content_disposition

NAME = "Quyết định số 15.pdf"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _filenames(header: str) -> tuple[str, str | None]:
    """(the ASCII ``filename``, the decoded ``filename*``) as RFC 6266 §4.1 reads them."""
    header.encode("latin-1")  # an HTTP header must be sendable at all
    plain = re.search(r'filename="([^"]*)"', header)
    assert plain is not None, header
    extended = re.search(r"filename\*=UTF-8''([^;\s]+)", header)
    return plain.group(1), unquote(extended.group(1), errors="strict") if extended else None


def test_a_vietnamese_name_has_an_ascii_fallback_and_the_utf8_name() -> None:
    header = content_disposition(NAME)
    assert header.startswith("attachment; ")
    assert _filenames(header) == ("Quyet dinh so 15.pdf", NAME)
    assert _filenames(content_disposition("Đơn đề nghị.xlsx", "inline")) == (
        "Don de nghi.xlsx",
        "Đơn đề nghị.xlsx",
    )
    assert content_disposition("plain.pdf") == 'attachment; filename="plain.pdf"'


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ('a"b\\c.pdf', "c.pdf"),  # a path keeps its last part, and no quote survives
        ("hoá đơn\r\nSet-Cookie: x=1.pdf", "hoá đơnSet-Cookie_ x=1.pdf"),
        ("\u202efdp.exe", "fdp.exe"),  # a bidi override would show "exe.pdf"
        ("../../etc/passwd", "passwd"),
        ("", "download"),
        ("...", "download"),
    ],
)
def test_hostile_names_are_cleaned(sent: str, kept: str) -> None:
    plain, encoded = _filenames(content_disposition(sent))
    assert (encoded or plain) == kept
    assert "\r" not in plain and "\n" not in plain and '"' not in plain


@pytest.fixture(scope="module")
def http(sqlite_instance: Instance) -> Iterator[TestClient]:
    app = create_app(Settings.from_env(sqlite_instance.env), scheduler=False)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture(scope="module")
def signing_token(sqlite_instance: Instance) -> tuple[str, dict[str, str]]:
    ctx = sqlite_instance.ctx
    with ctx.db.session() as session:
        issued = issuance.issue_with_server_key(
            session,
            ctx.authority,
            profile=Profile.ORGANIZATION,
            subject="CN=Văn phòng UBND huyện Ba Bể,O=UBND huyện Ba Bể,L=Bắc Kạn,C=VN",
            algorithm=issuance.KeyAlgorithm.EC_P256,
            actor="test",
        )
        key_id = issued.row.key_location.split(":", 1)[1]
        token = clients.create(
            session,
            f"downloads-{os.urandom(4).hex()}",
            ["documents:sign"],
            "test",
            keys=[key_id],
            keystore=ctx.keystore.name,
        )
    return key_id, {"Authorization": f"Bearer {token}"}


def _sign(http: TestClient, signing_token: tuple[str, dict[str, str]]) -> httpx.Response:
    """``POST /api/v1/sign/pdf`` of a document named :data:`NAME`."""
    key_id, headers = signing_token
    return http.post(
        "/api/v1/sign/pdf",
        headers=headers,
        data={"key_id": key_id},
        files={"file": (NAME, samples.official_document(), "application/pdf")},
    )


def test_the_api_signs_a_file_with_a_vietnamese_name(
    http: TestClient, signing_token: tuple[str, dict[str, str]]
) -> None:
    answer = _sign(http, signing_token)
    assert answer.status_code == 200, answer.text
    assert answer.content.startswith(b"%PDF")
    assert _filenames(answer.headers["content-disposition"]) == ("Quyet dinh so 15.pdf", NAME)


def test_the_verification_report_pdf_keeps_the_vietnamese_name(
    http: TestClient, signing_token: tuple[str, dict[str, str]]
) -> None:
    signed = _sign(http, signing_token).content
    page = http.get("/verify", headers={"accept": "text/html"})
    csrf = CSRF.search(page.text)
    assert csrf
    answer = http.post(
        "/verify/report",
        data={"csrf_token": csrf.group(1)},
        files={"file": (NAME, signed, "application/pdf")},
        headers={"accept": "text/html"},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    report = http.get(answer.headers["location"] + ".pdf")
    assert report.status_code == 200 and report.content.startswith(b"%PDF")
    assert _filenames(report.headers["content-disposition"]) == (
        "Quyet dinh so 15-bao-cao-xac-thuc.pdf",
        "Quyết định số 15-bao-cao-xac-thuc.pdf",
    )
