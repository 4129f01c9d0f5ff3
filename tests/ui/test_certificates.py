"""The certificate pages: a list that really filters, exports that open, one certificate in
plain words with its history and downloads, and suspend / restore / revoke for the province
only — checked against the database, OCSP and the audit log."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from sqlalchemy import select
from support.world import World, individual_form

from kyso import clock
from kyso.lifecycle import workflow
from kyso.lifecycle.workflow import NewRequest
from kyso.pki import status
from kyso.store.models import (
    AuditEntry,
    Certificate,
    CertStatus,
    IdentityRole,
    Profile,
    RequestType,
    RevocationReason,
)


def ocsp_status(world: World, pem: str) -> tuple[ocsp.OCSPCertStatus, x509.ReasonFlags | None]:
    """The CA's responder's answer, parsed by pyca/cryptography as a relying party would."""
    leaf = x509.load_pem_x509_certificate(pem.encode())
    issuer = world.ctx.authority.identity(IdentityRole.ISSUING).certificate
    asked = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, hashes.SHA1()).build()
    answer = world.ctx.responder.respond(asked.public_bytes(Encoding.DER))
    response = ocsp.load_der_ocsp_response(answer.der)
    assert response.serial_number == leaf.serial_number
    revoked = response.certificate_status is ocsp.OCSPCertStatus.REVOKED
    return response.certificate_status, response.revocation_reason if revoked else None


def issue(world: World, unit: str, *, days_left: int | None = None, name: str | None = None) -> str:
    """A certificate issued the way the province issues one: form 01, submitted, approved."""
    form = individual_form(world.unit(unit).name)
    if name:
        form["full_name"] = name
    with world.ctx.db.session() as session:
        request = workflow.create(
            world.who("admin1"),
            session,
            world.ctx.settings,
            NewRequest(RequestType.NEW_INDIVIDUAL, form, unit=world.unit(unit).public_id),
        )
        workflow.submit(world.who("admin1"), session, world.ctx.settings, request.public_id)
        workflow.approve(world.who("admin1"), session, world.ctx.authority, request.public_id)
        cert = session.get(Certificate, request.certificate_id)
        assert cert is not None
        if days_left is not None:
            cert.not_after = clock.now() + timedelta(days=days_left, hours=1)
        return cert.serial


def serials(html: str) -> set[str]:
    return set(re.findall(r'href="/certificates/([0-9a-f]+)"', html))


def row(world: World, serial: str) -> Certificate:
    with world.ctx.db.read() as session:
        cert = session.execute(select(Certificate).where(Certificate.serial == serial)).scalar_one()
    return cert


def audit_actions(world: World, serial: str) -> list[tuple[str, str]]:
    with world.ctx.db.read() as session:
        return [
            (e.action, e.actor)
            for e in session.execute(
                select(AuditEntry).where(AuditEntry.target == serial).order_by(AuditEntry.seq)
            ).scalars()
        ]


def pem_of(world: World, serial: str) -> str:
    return (
        x509.load_der_x509_certificate(row(world, serial).der).public_bytes(Encoding.PEM).decode()
    )


# -- the list ----------------------------------------------------------------------------------
def test_each_filter_really_filters_the_list(world: World, web_for) -> None:
    babe = issue(world, "babe")
    commune = issue(world, "chuhuong", days_left=20)
    later = issue(world, "tnmt", days_left=75)
    health = issue(world, "hospital")
    suspended = issue(world, "babe")
    with world.ctx.db.session() as session:
        status.suspend(session, world.ctx.authority, suspended, "test")
    admin = web_for("admin1")

    def listed(**params: str) -> set[str]:
        page = admin.get("/certificates", params=params)
        assert page.status_code == 200, page.text
        return serials(page.text)

    mine = {babe, commune, later, health, suspended}
    # a unit brings its subtree: Ba Bể's commune and office, not the hospital
    assert listed(unit=world.unit("babe").public_id) >= {babe, commune, later, suspended}
    assert health not in listed(unit=world.unit("babe").public_id)
    assert listed(unit=world.unit("chuhuong").public_id) == {commune}
    # sector: the hospital is health
    in_health = listed(sector="health")
    assert health in in_health and not ({babe, commune, later} & in_health)
    # status
    assert suspended in listed(status="suspended", unit=world.unit("babe").public_id)
    assert listed(status="suspended", unit=world.unit("babe").public_id) == {suspended}
    assert suspended not in listed(status="good", unit=world.unit("babe").public_id)
    # expiring: within 30 days only the commune's, within 90 also the office's
    assert listed(expiring="30", unit=world.unit("babe").public_id) == {commune}
    assert listed(expiring="90", unit=world.unit("babe").public_id) == {commune, later}
    # profile
    assert listed(profile="organization", unit=world.unit("babe").public_id) == set()
    assert mine & listed(profile="individual", unit=world.unit("babe").public_id) == {
        babe,
        commune,
        later,
        suspended,
    }


def test_expired_status_and_the_home_page_link(world: World, web_for) -> None:
    old = issue(world, "tnmt2", days_left=-3)
    soon = issue(world, "tnmt2", days_left=10)
    admin = web_for("admin1")
    unit = world.unit("tnmt2").public_id
    page = admin.get("/certificates", params={"status": "expired", "unit": unit})
    assert serials(page.text) == {old}
    assert "Hết hạn" in page.text
    page = admin.get(f"/certificates?expiring=30&unit={unit}")
    assert serials(page.text) == {soon}
    assert "10 ngày" in page.text or "10 days" in page.text


def test_search_finds_holder_name_subject_and_serial(world: World, web_for) -> None:
    name = f"Triệu Thị Tìm {world.tag.upper()}"
    wanted = issue(world, "babe", name=name)
    other = issue(world, "babe")
    admin = web_for("admin1")
    by_name = serials(admin.get("/certificates", params={"q": name.lower()}).text)
    assert wanted in by_name and other not in by_name
    by_serial = serials(admin.get("/certificates", params={"q": wanted[:12]}).text)
    assert wanted in by_serial and other not in by_serial
    page = admin.get("/certificates", params={"q": "không có ai tên này %_"})
    assert page.status_code == 200 and not serials(page.text)
    assert "Không có chứng thư nào" in page.text


def test_a_unit_officer_sees_only_its_units_certificates(world: World, web_for) -> None:
    babe = issue(world, "tnmt")
    nganson = issue(world, "tnmt2")
    officer_ns = web_for("officer_ns")
    page = officer_ns.get("/certificates")
    assert page.status_code == 200
    assert nganson in serials(page.text) and babe not in serials(page.text)
    # asking for Ba Bể's unit, a certificate, its downloads or actions is refused
    assert (
        officer_ns.get("/certificates", params={"unit": world.unit("babe").public_id}).status_code
        == 403
    )
    assert officer_ns.get(f"/certificates/{babe}").status_code == 403
    assert officer_ns.get(f"/certificates/{babe}/certificate.pem").status_code == 403
    export = officer_ns.get("/certificates/export.csv")
    assert babe not in export.text and nganson in export.text
    # the unit filter only offers units in view
    assert world.unit("babe").public_id not in page.text
    assert world.unit("tnmt2").public_id in page.text


def test_bad_filters_are_refused_next_to_the_field(world: World, web_for) -> None:
    admin = web_for("admin1")
    page = admin.get("/certificates", params={"expiring": "45", "status": "bogus"})
    assert page.status_code == 422
    assert 'id="e-expiring"' in page.text and 'id="e-status"' in page.text
    assert admin.get("/certificates", params={"unit": "nope"}).status_code == 404
    assert admin.get("/certificates", params={"offset": "-1"}).status_code == 422
    assert admin.get("/certificates", params={"q": "x" * 300}).status_code == 422
    assert admin.get("/certificates", params={"q": "a\x00b"}).status_code == 422


def test_export_xlsx_opens_with_openpyxl_and_has_the_rows(world: World, web_for) -> None:
    from openpyxl import load_workbook

    first = issue(world, "chuhuong")
    second = issue(world, "chuhuong", name='=HYPERLINK("http://x")')
    reply = web_for("officer").get(
        "/certificates/export.xlsx", params={"unit": world.unit("chuhuong").public_id}
    )
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith(
        "application/vnd.openxmlformats-officedocument.spreadsheetml"
    )
    assert "attachment" in reply.headers["content-disposition"]
    sheet = load_workbook(io.BytesIO(reply.content)).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][1] == "Chủ sở hữu chứng thư" and len(rows[0]) == 12
    assert {r[0] for r in rows[1:]} == {first, second}
    assert all(r[6] == "Còn hiệu lực" for r in rows[1:])
    # a name that looks like a formula stays text
    formula = next(r for r in rows[1:] if r[0] == second)
    assert formula[1] == '=HYPERLINK("http://x")'
    assert all(c.data_type != "f" for line in sheet.iter_rows() for c in line)


def test_export_csv_has_the_same_rows_and_defuses_formulas(world: World, web_for) -> None:
    first = issue(world, "tnmt2", name="=1+2")
    reply = web_for("admin1").get(
        "/certificates/export.csv", params={"unit": world.unit("tnmt2").public_id}
    )
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/csv")
    lines = list(csv.reader(io.StringIO(reply.content.decode("utf-8-sig"))))
    assert [line[0] for line in lines[1:]] == [first]
    assert lines[1][1] == "'=1+2"


# -- one certificate ---------------------------------------------------------------------------
def test_the_certificate_page_speaks_plainly_and_shows_the_history(world: World, web_for) -> None:
    serial = issue(world, "tnmt", days_left=40, name="Hoàng Văn Rõ")
    page = web_for("officer").get(f"/certificates/{serial}")
    assert page.status_code == 200
    text = page.text
    assert "Hoàng Văn Rõ" in text and "Phòng Tài nguyên và Môi trường" in text
    assert "Dùng để làm gì" in text and "Ký văn bản" in text
    assert "còn 40 ngày" in text
    assert "Nơi giữ khóa bí mật" in text and "Trên máy chủ kyso" in text
    assert "Dấu vân tay (SHA-256)" in text
    assert "Lịch sử trạng thái" in text and "Đã cấp" in text
    # an officer reads, but has no button to change the status
    assert "Thu hồi chứng thư" not in text and "/revoke" not in text
    # unknown or malformed serials: a 404 page
    assert web_for("officer").get("/certificates/00ff00ff").status_code == 404
    assert web_for("officer").get("/certificates/not-a-serial").status_code == 404
    assert web_for("officer").get("/certificates/" + "a" * 300).status_code == 404


def test_downloads_parse_with_cryptography(world: World, web_for) -> None:
    serial = issue(world, "babe")
    officer = web_for("officer")
    pem = officer.get(f"/certificates/{serial}/certificate.pem")
    der = officer.get(f"/certificates/{serial}/certificate.cer")
    chain = officer.get(f"/certificates/{serial}/chain.pem")
    assert pem.status_code == der.status_code == chain.status_code == 200
    leaf = x509.load_pem_x509_certificate(pem.content)
    assert format(leaf.serial_number, "x") == serial
    assert x509.load_der_x509_certificate(der.content) == leaf
    certs = x509.load_pem_x509_certificates(chain.content)
    assert certs[0] == leaf and len(certs) == 3
    leaf.verify_directly_issued_by(certs[1])
    certs[1].verify_directly_issued_by(certs[2])


def test_suspend_restore_revoke_change_the_status_ocsp_and_audit(world: World, web_for) -> None:
    serial = issue(world, "babe")
    admin = web_for("admin1")
    page = admin.get(f"/certificates/{serial}")
    assert "Tạm dừng chứng thư" in page.text and "Thu hồi chứng thư" in page.text
    assert "không thể hoàn tác" in page.text  # the revoke form's data-confirm names it
    pem = pem_of(world, serial)

    reply = admin.post(f"/certificates/{serial}/suspend", {"hold_note": "nghỉ phép"})
    assert reply.status_code == 303 and reply.headers["location"] == f"/certificates/{serial}"
    assert row(world, serial).status is CertStatus.SUSPENDED
    assert ocsp_status(world, pem)[0] is ocsp.OCSPCertStatus.REVOKED
    page = admin.get(f"/certificates/{serial}")
    assert "Khôi phục chứng thư" in page.text and "nghỉ phép" in page.text

    reply = admin.post(f"/certificates/{serial}/restore", {})
    assert reply.status_code == 303
    assert row(world, serial).status is CertStatus.GOOD
    assert ocsp_status(world, pem)[0] is ocsp.OCSPCertStatus.GOOD

    reply = admin.post(
        f"/certificates/{serial}/revoke", {"reason": "key-compromise", "note": "mất token"}
    )
    assert reply.status_code == 303
    cert = row(world, serial)
    assert cert.status is CertStatus.REVOKED and cert.reason is RevocationReason.KEY_COMPROMISE
    state, reason = ocsp_status(world, pem)
    assert state is ocsp.OCSPCertStatus.REVOKED and reason is x509.ReasonFlags.key_compromise
    actor = world.who("admin1").actor
    assert audit_actions(world, serial)[-3:] == [
        ("certificate.suspended", actor),
        ("certificate.restored", actor),
        ("certificate.revoked", actor),
    ]
    page = admin.get(f"/certificates/{serial}")
    assert "Đã thu hồi" in page.text and "mất token" in page.text
    assert "Thu hồi chứng thư" not in page.text  # revocation is final: no more buttons
    # revoking twice is refused in words, not a 500
    again = admin.post(f"/certificates/{serial}/revoke", {"reason": "superseded"})
    assert again.status_code == 409 and "thu hồi là vĩnh viễn" in again.text


def test_an_officer_has_no_buttons_and_their_posts_are_refused(world: World, web_for) -> None:
    serial = issue(world, "babe")
    officer = web_for("officer")
    for action, data in (
        ("suspend", {}),
        ("restore", {}),
        ("revoke", {"reason": "superseded"}),
        ("revoke", {}),  # no reason either: still 403, not a 422 that reveals the form
    ):
        reply = officer.post(f"/certificates/{serial}/{action}", data)
        assert reply.status_code == 403, (action, reply.status_code)
    assert row(world, serial).status is CertStatus.GOOD
    assert audit_actions(world, serial) == [("certificate.issued", world.who("admin1").actor)]


@pytest.mark.parametrize("reason", ["", "certificate-hold", "nonsense"])
def test_revoke_without_a_good_reason_is_refused_next_to_the_field(
    world: World, web_for, reason: str
) -> None:
    serial = issue(world, "babe")
    reply = web_for("admin1").post(
        f"/certificates/{serial}/revoke", {"reason": reason, "note": "giữ lại"}
    )
    assert reply.status_code == 422
    assert 'id="e-reason"' in reply.text and 'aria-invalid="true"' in reply.text
    assert "giữ lại" in reply.text  # what was typed is kept
    assert row(world, serial).status is CertStatus.GOOD


def test_a_post_without_the_csrf_token_is_refused(world: World, web_for) -> None:
    serial = issue(world, "babe")
    reply = web_for("admin1").post(
        f"/certificates/{serial}/revoke", {"reason": "superseded"}, csrf=False
    )
    assert reply.status_code == 403
    assert row(world, serial).status is CertStatus.GOOD


def test_anonymous_visitors_are_sent_to_the_login(web) -> None:
    reply = web.get("/certificates", follow_redirects=False)
    assert reply.status_code == 303 and reply.headers["location"].startswith("/login")


def test_the_cas_own_certificates_cannot_be_changed_by_a_click(world: World, web_for) -> None:
    with world.ctx.db.read() as session:
        root = session.execute(
            select(Certificate).where(Certificate.profile == Profile.ROOT_CA)
        ).scalar_one()
    admin = web_for("admin1")
    page = admin.get(f"/certificates/{root.serial}")
    assert page.status_code == 200 and "CA gốc" in page.text
    assert "/suspend" not in page.text and "/revoke" not in page.text
    try:
        reply = admin.post(f"/certificates/{root.serial}/suspend", {})
        assert reply.status_code == 403 and "kyso ca revoke" in reply.text
        assert row(world, root.serial).status is CertStatus.GOOD
    finally:  # never leave the shared CA suspended, whatever happened
        if row(world, root.serial).status is CertStatus.SUSPENDED:
            with world.ctx.db.session() as session:
                status.restore(
                    session, world.ctx.authority, root.serial, "test", ca_own_confirmed=root.serial
                )
