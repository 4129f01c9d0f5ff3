"""`kyso sign …`, `kyso verify`, `kyso trust …`, and the same over HTTP, end to end.

The services are tested in tests/signing and tests/validation; here the question is whether
a clerk's command and another system's HTTP call reach them correctly and answer cleanly.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Instance
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from fixtures.pdf import images, samples
from pyhanko.pdf_utils.reader import PdfFileReader

from kyso.api import clients
from kyso.pki import issuance, status
from kyso.settings import Settings
from kyso.store.models import Profile, RevocationReason
from kyso.web.app import create_app

SUBJECT = "CN=Văn phòng UBND tỉnh Bắc Kạn,O=UBND tỉnh Bắc Kạn,L=Bắc Kạn,C=VN"


def kyso(instance: Instance, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kyso.cli.main", *args],
        env={**os.environ, **instance.env, "KYSO_LANG": "vi"},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def org_key(sqlite_instance: Instance) -> tuple[str, str]:
    """(key id, serial) of an organization key kyso holds."""
    ctx = sqlite_instance.ctx
    with ctx.db.session() as session:
        issued = issuance.issue_with_server_key(
            session,
            ctx.authority,
            profile=Profile.ORGANIZATION,
            subject=SUBJECT,
            algorithm=issuance.KeyAlgorithm.EC_P256,
            actor="test",
        )
    return issued.row.key_location.split(":", 1)[1], issued.serial


def test_cli_signs_a_copy_and_verifies_it_with_reports(
    sqlite_instance: Instance, org_key: tuple[str, str], tmp_path: Path
) -> None:
    key_id, _ = org_key
    source = tmp_path / "quyet-dinh.pdf"
    source.write_bytes(samples.official_document())
    signed = tmp_path / "ban-sao.pdf"
    result = kyso(
        sqlite_instance,
        "sign",
        "pdf",
        str(source),
        "-o",
        str(signed),
        "--key",
        key_id,
        "--level",
        "B-T",
        "--kind",
        "copy",
        "--number",
        "15/QĐ-UBND",
        "--copy-kind",
        "SAO Y",
        "--copying-org",
        "Văn phòng UBND tỉnh Bắc Kạn",
    )
    assert result.returncode == 0, result.stderr
    assert signed.read_bytes().startswith(b"%PDF")

    html, pdf = tmp_path / "bao-cao.html", tmp_path / "bao-cao.pdf"
    checked = kyso(sqlite_instance, "verify", str(signed), "--json", "--report", str(html))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    report = json.loads(checked.stdout)
    assert report["indication"] == "TOTAL-PASSED"
    assert report["signatures"][0]["timestamp_time"] is not None
    assert "HỢP LỆ" in html.read_text(encoding="utf-8")
    assert kyso(sqlite_instance, "verify", str(signed), "--report", str(pdf)).returncode == 0
    text = subprocess.run(
        ["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert "Báo cáo xác thực chữ ký số" in text and "HỢP LỆ" in text


def test_cli_verify_fails_with_exit_1_on_a_changed_document(
    sqlite_instance: Instance, org_key: tuple[str, str], tmp_path: Path
) -> None:
    key_id, _ = org_key
    source, signed = tmp_path / "a.pdf", tmp_path / "a-signed.pdf"
    source.write_bytes(samples.official_document())
    assert (
        kyso(
            sqlite_instance, "sign", "pdf", str(source), "-o", str(signed), "--key", key_id
        ).returncode
        == 0
    )
    changed = tmp_path / "a-changed.pdf"
    changed.write_bytes(samples.change_text(signed.read_bytes()))
    result = kyso(sqlite_instance, "verify", str(changed))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr


def test_cli_cms_detached_signature_checks_its_data(
    sqlite_instance: Instance, org_key: tuple[str, str], tmp_path: Path
) -> None:
    key_id, _ = org_key
    data = tmp_path / "bao-cao.xlsx"
    data.write_bytes(b"PK\x03\x04 pretend spreadsheet " * 100)
    p7s = tmp_path / "bao-cao.xlsx.p7s"
    assert (
        kyso(sqlite_instance, "sign", "cms", str(data), "-o", str(p7s), "--key", key_id).returncode
        == 0
    )
    assert kyso(sqlite_instance, "verify", str(p7s), "--data", str(data)).returncode == 0
    other = tmp_path / "other.bin"
    other.write_bytes(b"not the signed data")
    wrong = kyso(sqlite_instance, "verify", str(p7s), "--data", str(other), "--json")
    assert wrong.returncode == 1
    assert json.loads(wrong.stdout)["signatures"][0]["sub_indication"] == "HASH_FAILURE"


def test_cli_trust_add_and_list(sqlite_instance: Instance, tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name.from_rfc4514_string(
        "CN=RootCA chuyên dùng Chính phủ G2 (thử),O=Ban Cơ yếu Chính phủ,C=VN"
    )
    import datetime

    now = datetime.datetime.now(datetime.UTC)
    root = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = tmp_path / "root.pem"
    path.write_bytes(root.public_bytes(serialization.Encoding.PEM))
    assert kyso(sqlite_instance, "trust", "add", str(path)).returncode == 0
    again = kyso(sqlite_instance, "trust", "add", str(path))
    assert again.returncode == 1 and "conflict" in again.stderr
    listed = json.loads(kyso(sqlite_instance, "trust", "list", "--json").stdout)
    assert any("Ban Cơ yếu Chính phủ" in row["subject"] and not row["built_in"] for row in listed)
    leaf = tmp_path / "not-a-root.pem"
    leaf.write_text("garbage")
    bad = kyso(sqlite_instance, "trust", "add", str(leaf))
    assert bad.returncode == 1 and "Traceback" not in bad.stderr


@pytest.fixture(scope="module")
def http(sqlite_instance: Instance):  # type: ignore[no-untyped-def]
    app = create_app(Settings.from_env(sqlite_instance.env), scheduler=False)
    with TestClient(app) as client:
        yield client


def _token(instance: Instance, scopes: list[str], keys: list[str] | None = None) -> dict[str, str]:
    """A system's token; one that signs is given the keys it may use (and no other)."""
    with instance.ctx.db.session() as session:
        token = clients.create(
            session,
            f"docs-{os.urandom(4).hex()}",
            scopes,
            "test",
            keys=keys,
            keystore=instance.ctx.keystore.name,
        )
    return {"Authorization": f"Bearer {token}"}


def test_http_signs_with_a_stamp_and_the_public_page_verifies(
    sqlite_instance: Instance, org_key: tuple[str, str], http: TestClient
) -> None:
    key_id, _ = org_key
    headers = _token(sqlite_instance, ["documents:sign"], [org_key[0]])
    response = http.post(
        "/api/v1/sign/pdf",
        headers=headers,
        data={
            "key_id": key_id,
            "level": "B-T",
            "kind": "issuing",
            "anchor": "Nguyễn Văn An",
            "number": "15/QĐ-UBND",
            "date": "2026-11-27",
        },
        files={
            "file": ("qd.pdf", samples.official_document(), "application/pdf"),
            "seal": ("seal.png", images.seal_png(), "image/png"),
        },
    )
    assert response.status_code == 200, response.text
    signed = response.content
    report = http.post("/verify", files={"file": ("qd-signed.pdf", signed, "application/pdf")})
    assert report.status_code == 200
    assert report.json()["indication"] == "TOTAL-PASSED"
    page = http.post(
        "/verify?format=html&lang=en", files={"file": ("x.pdf", signed, "application/pdf")}
    )
    assert "VALID" in page.text and "text/html" in page.headers["content-type"]
    document = http.post("/verify?format=pdf", files={"file": ("x.pdf", signed, "application/pdf")})
    assert document.content.startswith(b"%PDF")


def test_http_signs_an_incoming_document_with_the_received_mark(
    sqlite_instance: Instance, org_key: tuple[str, str], http: TestClient
) -> None:
    key_id, _ = org_key
    headers = _token(sqlite_instance, ["documents:sign"], [org_key[0]])
    pdf = ("den.pdf", samples.official_document(), "application/pdf")
    base = {"key_id": key_id, "kind": "incoming", "received_number": "1234"}
    missing = http.post("/api/v1/sign/pdf", headers=headers, data=base, files={"file": pdf})
    assert missing.status_code == 422 and "ngày đến" in missing.json()["message"]
    bad = http.post(
        "/api/v1/sign/pdf",
        headers=headers,
        data={**base, "received_date": "31/02/2026"},
        files={"file": pdf},
    )
    assert bad.status_code == 422
    signed = http.post(
        "/api/v1/sign/pdf",
        headers=headers,
        data={**base, "received_date": "27/11/2026", "receiving_org": "UBND huyện Ba Bể"},
        files={"file": pdf},
    )
    assert signed.status_code == 200, signed.text
    # The mark sits at the top left of the first page (Decree 30/2020, Annex I).
    reader = PdfFileReader(io.BytesIO(signed.content))
    page, _ = reader.find_page_for_modification(0)
    rects = [
        [float(v) for v in a.get_object()["/Rect"]]
        for a in page.get_object().get("/Annots", [])
        if a.get_object().get("/FT") == "/Sig"
    ]
    assert len(rects) == 1
    _, bottom, right, _ = rects[0]
    assert right < 595 / 2 and bottom > 842 / 2
    report = http.post("/verify", files={"file": ("den.pdf", signed.content, "application/pdf")})
    assert report.json()["indication"] == "TOTAL-PASSED"


def test_http_sign_needs_the_scope_and_refuses_bad_input(
    sqlite_instance: Instance, org_key: tuple[str, str], http: TestClient
) -> None:
    key_id, _ = org_key
    pdf = ("qd.pdf", samples.official_document(), "application/pdf")
    no_scope = http.post(
        "/api/v1/sign/pdf",
        headers=_token(sqlite_instance, ["certificates:read"]),
        data={"key_id": key_id},
        files={"file": pdf},
    )
    assert no_scope.status_code == 403 and no_scope.json()["code"] == "forbidden"
    assert (
        http.post("/api/v1/sign/pdf", data={"key_id": key_id}, files={"file": pdf}).status_code
        == 401
    )
    headers = _token(sqlite_instance, ["documents:sign"], [org_key[0]])
    garbage = http.post(
        "/api/v1/sign/pdf",
        headers=headers,
        data={"key_id": key_id},
        files={"file": ("x.pdf", b"not a pdf", "application/pdf")},
    )
    assert garbage.status_code == 422 and garbage.json()["message"]
    unknown_key = http.post(
        "/api/v1/sign/pdf",
        headers=headers,
        data={"key_id": "sw-0000000000000000"},
        files={"file": pdf},
    )
    assert unknown_key.status_code == 403  # the same answer as for a key not given to it
    assert unknown_key.json()["code"] == "key_not_allowed"
    bad_box = http.post(
        "/api/v1/sign/pdf",
        headers=headers,
        data={"key_id": key_id, "kind": "attachment", "number": "1", "box": "a,b"},
        files={"file": pdf},
    )
    assert bad_box.status_code == 422
    not_signed = http.post("/verify", files={"file": ("x.txt", b"hello", "text/plain")})
    assert not_signed.status_code == 422 and not_signed.json()["code"] == "invalid_input"


def test_verification_page_says_why_after_revocation(
    sqlite_instance: Instance, http: TestClient
) -> None:
    ctx = sqlite_instance.ctx
    with ctx.db.session() as session:
        issued = issuance.issue_with_server_key(
            session,
            ctx.authority,
            profile=Profile.INDIVIDUAL,
            subject="CN=Lý Văn Tâm,OU=Văn phòng,O=UBND huyện Na Rì,L=Bắc Kạn,C=VN",
            algorithm=issuance.KeyAlgorithm.EC_P256,
            actor="test",
        )
    key_id = issued.row.key_location.split(":", 1)[1]
    headers = _token(sqlite_instance, ["documents:sign"], [key_id])
    signed = http.post(
        "/api/v1/sign/pdf",
        headers=headers,
        data={"key_id": key_id},
        files={"file": ("d.pdf", samples.official_document(), "application/pdf")},
    ).content
    with ctx.db.session() as session:
        status.revoke(
            session, ctx.authority, issued.serial, RevocationReason.KEY_COMPROMISE, "test"
        )
    report = http.post(
        "/verify?lang=vi", files={"file": ("d.pdf", signed, "application/pdf")}
    ).json()
    assert report["indication"] != "TOTAL-PASSED"
    assert "thu hồi" in report["signatures"][0]["message_vi"]


@pytest.mark.parametrize(
    ("endpoint", "upload", "extra"),
    [
        ("cms", ("bao-cao.txt", "Báo cáo tháng 11".encode(), "text/plain"), {"level": "B-T"}),
        (
            "xml",
            (
                "van-ban.xml",
                "<VanBan><TrichYeu>Về việc triển khai</TrichYeu></VanBan>".encode(),
                "application/xml",
            ),
            {"level": "B-B"},
        ),
        (
            "email",
            (
                "thu.eml",
                b"From: vanthu@backan.gov.vn\r\nTo: so@backan.gov.vn\r\nSubject: Test\r\n"
                b"Content-Type: text/plain; charset=utf-8\r\n\r\nXin chao\r\n",
                "message/rfc822",
            ),
            {},
        ),
    ],
)
def test_http_signs_cms_xml_and_email_and_they_verify(
    sqlite_instance: Instance,
    org_key: tuple[str, str],
    http: TestClient,
    endpoint: str,
    upload: tuple[str, bytes, str],
    extra: dict[str, str],
) -> None:
    key_id, _ = org_key
    signed = http.post(
        f"/api/v1/sign/{endpoint}",
        headers=_token(sqlite_instance, ["documents:sign"], [org_key[0]]),
        data={"key_id": key_id, **extra},
        files={"file": upload},
    )
    assert signed.status_code == 200, signed.text
    files = {"file": ("signed", signed.content, "application/octet-stream")}
    if endpoint == "cms":
        files["data"] = ("original", upload[1], "application/octet-stream")
    report = http.post("/verify", files=files)
    assert report.status_code == 200, report.text
    assert report.json()["indication"] == "TOTAL-PASSED", report.json()


def test_http_signs_an_edxml_twice_when_the_first_leaves_room_for_more(
    sqlite_instance: Instance, org_key: tuple[str, str], http: TestClient
) -> None:
    """By default an XML signature is the single form .NET's SignedXml checks, and a second
    one is refused rather than break it; ``parallel`` on the first leaves room for more."""
    key_id, _ = org_key
    headers = _token(sqlite_instance, ["documents:sign"], [key_id])
    edxml = (Path(__file__).parents[1] / "fixtures" / "xml" / "edxml-sample.xml").read_bytes()
    fields = {"key_id": key_id, "parent_xpath": "//edxml:edXMLHeader"}

    def sign(data: bytes, **extra: str):  # type: ignore[no-untyped-def]
        return http.post(
            "/api/v1/sign/xml",
            headers=headers,
            data={**fields, **extra},
            files={"file": ("thu.xml", data, "application/xml")},
        )

    single = sign(edxml)
    assert single.status_code == 200, single.text
    refused = sign(single.content)
    assert refused.status_code == 422 and "parallel" in refused.json()["message"]
    first = sign(edxml, parallel="true")
    assert first.status_code == 200, first.text
    second = sign(first.content)
    assert second.status_code == 200, second.text
    report = http.post("/verify", files={"file": ("thu.xml", second.content, "application/xml")})
    assert report.status_code == 200
    body = report.json()
    assert body["indication"] == "TOTAL-PASSED", body
    assert len(body["signatures"]) == 2
