"""The audit log pages: administrators and auditors only; search by who, what, which record
and when; each entry in full; CSV export; and the hash chain's check, intact or broken."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

from sqlalchemy import select, update
from support.world import World

from kyso import clock
from kyso.store.models import AuditEntry

from .test_certificates import issue


def seqs(html: str) -> list[int]:
    return [int(s) for s in re.findall(r'href="/audit/(\d+)" aria-label', html)]


def test_only_administrators_and_auditors_read_the_log(world: World, web_for) -> None:
    for who in ("officer", "officer_ns"):
        visitor = web_for(who)
        for url in ("/audit", "/audit/1", "/audit/export.csv", "/audit/check"):
            assert visitor.get(url).status_code == 403, (who, url)
    assert web_for("admin1").get("/audit").status_code == 200
    page = web_for("auditor").get("/audit")
    assert page.status_code == 200 and "Nhật ký hệ thống" in page.text
    anonymous = web_for().get("/audit", follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login")


def test_the_chain_check_says_intact_then_names_the_broken_entry(world: World, web_for) -> None:
    serial = issue(world, "babe")
    auditor = web_for("auditor")
    listing = auditor.get("/audit")
    assert 'action="/audit/check"' in listing.text and "Kiểm tra chuỗi ngay" in listing.text
    page = auditor.get("/audit/check")
    assert page.status_code == 200
    assert 'data-chain="ok"' in page.text and "Chuỗi nhật ký toàn vẹn" in page.text
    with world.ctx.db.session() as session:
        entry = session.execute(select(AuditEntry).where(AuditEntry.target == serial)).scalar_one()
        seq, original = entry.seq, entry.details
        session.execute(
            update(AuditEntry).where(AuditEntry.seq == seq).values(details='{"forged": true}')
        )
    try:
        page = auditor.get("/audit/check")
        assert page.status_code == 200
        assert 'data-chain="broken"' in page.text
        assert f"Chuỗi nhật ký bị đứt tại mục {seq}" in page.text
        assert "đã bị sửa sau khi ghi" in page.text
        assert f'href="/audit/{seq}"' in page.text
    finally:
        with world.ctx.db.session() as session:
            session.execute(
                update(AuditEntry).where(AuditEntry.seq == seq).values(details=original)
            )
    assert 'data-chain="ok"' in auditor.get("/audit/check").text


def test_search_filters_entries(world: World, web_for) -> None:
    serial = issue(world, "tnmt")
    other = issue(world, "tnmt")
    auditor = web_for("auditor")
    actor = world.who("admin1").actor

    page = auditor.get("/audit", params={"target": serial})
    found = seqs(page.text)
    assert found and "certificate.issued" in page.text
    with world.ctx.db.read() as session:
        expected = list(
            session.execute(
                select(AuditEntry.seq)
                .where(AuditEntry.target.contains(serial))
                .order_by(AuditEntry.seq.desc())
            ).scalars()
        )
    assert found == expected  # newest first, exactly the entries about this certificate
    assert other not in page.text

    page = auditor.get("/audit", params={"actor": actor, "action": "certificate.issued"})
    with world.ctx.db.read() as session:
        mine = set(
            session.execute(
                select(AuditEntry.seq).where(
                    AuditEntry.actor == actor, AuditEntry.action == "certificate.issued"
                )
            ).scalars()
        )
    assert set(seqs(page.text)) == mine and len(mine) == 2

    tomorrow = (clock.local(clock.now()) + timedelta(days=1)).date().isoformat()
    today = clock.local(clock.now()).date().isoformat()
    assert seqs(auditor.get("/audit", params={"actor": actor, "date_from": tomorrow}).text) == []
    assert (
        set(
            seqs(
                auditor.get(
                    "/audit",
                    params={
                        "actor": actor,
                        "date_from": today,
                        "date_to": today,
                        "action": "certificate.issued",
                    },
                ).text
            )
        )
        == mine
    )


def test_bad_search_values_are_refused_next_to_the_field(world: World, web_for) -> None:
    auditor = web_for("auditor")
    page = auditor.get("/audit", params={"date_from": "2026-13-45"})
    assert page.status_code == 422 and 'id="e-date_from"' in page.text
    page = auditor.get("/audit", params={"date_from": "2026-05-02", "date_to": "2026-05-01"})
    assert page.status_code == 422 and 'id="e-date_to"' in page.text
    assert auditor.get("/audit", params={"offset": "x"}).status_code == 422
    for bad in ("0", "abc", "99999999999999", "9" * 30):
        assert auditor.get(f"/audit/{bad}").status_code == 404, bad


def test_an_entry_shows_everything_written_and_links_its_certificate(world: World, web_for) -> None:
    serial = issue(world, "babe")
    with world.ctx.db.read() as session:
        entry = session.execute(
            select(AuditEntry).where(
                AuditEntry.target == serial, AuditEntry.action == "certificate.issued"
            )
        ).scalar_one()
    page = web_for("auditor").get(f"/audit/{entry.seq}")
    assert page.status_code == 200
    assert entry.hash in page.text and entry.prev_hash in page.text
    assert f'href="/certificates/{serial}"' in page.text
    assert (
        "&#34;profile&#34;: &#34;individual&#34;" in page.text
        or '"profile": "individual"' in page.text
    )


def test_export_csv_has_the_filtered_entries(world: World, web_for) -> None:
    serial = issue(world, "chuhuong")
    reply = web_for("admin1").get("/audit/export.csv", params={"target": serial})
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/csv")
    lines = list(csv.reader(io.StringIO(reply.content.decode("utf-8-sig"))))
    assert lines[0][:4] == ["STT", "Thời gian", "Người thực hiện", "Thao tác"]
    assert lines[1:] and all(line[4] == serial for line in lines[1:])
    assert "certificate.issued" in {line[3] for line in lines[1:]}
