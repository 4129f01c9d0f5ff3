"""The electronic archive: what a unit issues, sends and receives is kept with the fields of
the archiving rules, in a store whose file names are their SHA-256; the whole archive is
checked (a changed or missing file is found); a record file exported as a ZIP is checked by
``sha256sum -c`` without kyso."""

from __future__ import annotations

import io
import json
import os
import subprocess
import zipfile
from datetime import date, timedelta
from pathlib import Path

import pytest
from conftest import Instance
from fixtures.pdf import images
from sqlalchemy import select, update
from support.world import World, make_world
from ui.test_sign import server_key

from kyso import clock
from kyso.archive import service as archive
from kyso.errors import NotFound
from kyso.exchange import register, service
from kyso.store.models import (
    ArchiveRecord,
    AuditEntry,
    ExchangeDirection,
    ExchangeMessage,
    Organization,
)

from .test_register import draft


@pytest.fixture(scope="module")
def world(instance: Instance) -> World:
    found = make_world(instance.ctx, instance.backend)
    with instance.ctx.db.session() as session:
        for key, code in (("babe", "000.61"), ("nganson", "000.62")):
            session.execute(
                update(Organization)
                .where(Organization.id == found.unit(key).id)
                .values(code=f"{code}.{found.tag}.H03")
            )
    return found


@pytest.fixture(scope="module")
def kept(instance: Instance, world: World) -> dict[str, ArchiveRecord]:
    """A decision issued by Ba Bể, sent to Ngân Sơn, received there with its ĐẾN mark."""
    ctx = instance.ctx
    keys = {
        "seal": server_key(instance, world.unit("babe"))[0],
        "leader": server_key(instance, world.unit("babe"), cn="Nguyễn Văn An")[0],
        "seal_ns": server_key(instance, world.unit("nganson"))[0],
    }
    issued = register.issue(
        ctx,
        world.who("officer"),
        register.Issue(
            unit=world.unit("babe").public_id,
            type="QĐ",
            notation="QĐ-UBND",
            subject="Quyết định về lưu trữ điện tử",
            document=draft(instance, keys),
            seal_image=images.seal_png(),
            key_id=keys["seal"],
            issued_on=date(2026, 12, 5),
        ),
    )
    (sent,) = register.send(
        ctx, world.who("officer"), issued.public_id, [f"000.62.{world.tag}.H03"], keys["seal"]
    )
    with ctx.db.read() as session:
        digest = session.scalar(
            select(ExchangeMessage.package_sha256).where(ExchangeMessage.public_id == sent)
        )
        arrived = session.scalar(
            select(ExchangeMessage.public_id).where(
                ExchangeMessage.package_sha256 == digest,
                ExchangeMessage.direction == ExchangeDirection.IN,
            )
        )
    service.accept(ctx, world.who("officer_ns"), str(arrived), key_id=keys["seal_ns"])
    sources = {
        "issued": f"register:{issued.public_id}",
        "sent": f"exchange:{sent}",
        "received": f"exchange:{arrived}",
        "den": f"den:{arrived}",
    }
    with ctx.db.read() as session:
        found = {}
        for name, source in sources.items():
            row = session.execute(
                select(ArchiveRecord).where(ArchiveRecord.source == source)
            ).scalar_one()
            session.expunge(row)
            found[name] = row
    return found


def test_issued_sent_and_received_documents_are_kept_with_their_fields(
    instance: Instance, world: World, kept: dict[str, ArchiveRecord]
) -> None:
    issued, sent, received, den = kept["issued"], kept["sent"], kept["received"], kept["den"]
    assert issued.code.endswith("/QĐ-UBND") and issued.type_name == "Quyết định"
    assert issued.retention == "vĩnh viễn" and issued.pages == 1
    assert issued.document_date == date(2026, 12, 5)
    assert issued.issuer == world.unit("babe").name
    assert (sent.kind, sent.media_type) == ("sent", "application/xml")
    assert (received.kind, received.issuer) == ("received", world.unit("babe").name)
    assert received.sha256 == sent.sha256  # the very package, byte for byte
    assert den.media_type == "application/pdf" and den.organization_id == world.unit("nganson").id
    blobs = archive.store(instance.ctx)
    with instance.ctx.db.read() as session:
        package = session.scalar(
            select(ExchangeMessage.package).where(
                ExchangeMessage.public_id == sent.source.split(":", 1)[1]
            )
        )
    assert blobs.get(sent.sha256) == bytes(package)
    assert archive.catch_up(instance.ctx) == 0  # nothing left to keep, nothing kept twice


def test_the_whole_archive_is_checked_and_a_changed_or_missing_file_is_found(
    instance: Instance, kept: dict[str, ArchiveRecord]
) -> None:
    ctx = instance.ctx
    assert archive.check(ctx).intact
    blobs = archive.store(ctx)
    changed, gone = blobs.path(kept["issued"].sha256), blobs.path(kept["den"].sha256)
    originals = {changed: changed.read_bytes(), gone: gone.read_bytes()}
    try:
        os.chmod(changed, 0o640)
        changed.write_bytes(originals[changed].replace(b"%%EOF", b"%%EOF \n", 1))
        gone.unlink()
        seen: list[tuple[int, int]] = []
        found = archive.check(ctx, batch=2, progress=lambda done, total: seen.append((done, total)))
        assert not found.intact
        assert kept["issued"].public_id in found.changed
        assert kept["den"].public_id in found.missing
        assert seen and seen[-1][0] == seen[-1][1] == found.checked
        with ctx.db.read() as session:
            entry = session.scalars(
                select(AuditEntry.details)
                .where(AuditEntry.action == "archive.checked")
                .order_by(AuditEntry.seq.desc())
            ).first()
        assert entry is not None and kept["den"].public_id in json.loads(entry)["missing"]
    finally:
        for path, data in originals.items():
            if path.exists():
                os.chmod(path, 0o640)
            path.write_bytes(data)
    assert archive.check(ctx).intact


def test_a_record_file_is_checked_by_sha256sum_without_kyso(
    instance: Instance, world: World, kept: dict[str, ArchiveRecord], tmp_path: Path
) -> None:
    ids = [kept["issued"].public_id, kept["sent"].public_id]
    data = archive.export(instance.ctx, world.who("officer"), ids, "Hồ sơ chữ ký số 2026")
    with zipfile.ZipFile(io.BytesIO(data)) as zipped:
        zipped.extractall(tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["title"] == "Hồ sơ chữ ký số 2026"
    assert [f["code"] for f in manifest["files"]] == [kept["issued"].code, kept["sent"].code]
    assert manifest["files"][0]["retention"] == "vĩnh viễn"
    checked = subprocess.run(
        ["sha256sum", "-c", "SHA256SUMS"], cwd=tmp_path, capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count(": OK") == 2
    first = tmp_path / manifest["files"][0]["file"]
    first.write_bytes(first.read_bytes() + b"\n")
    assert (
        subprocess.run(
            ["sha256sum", "-c", "SHA256SUMS"], cwd=tmp_path, capture_output=True
        ).returncode
        != 0
    )

    with pytest.raises(NotFound):  # Ngân Sơn's clerk does not export Ba Bể's records
        archive.export(instance.ctx, world.who("officer_ns"), ids, "x")


def test_the_command_line_checks_the_archive_and_exports_a_record_file(
    instance: Instance, kept: dict[str, ArchiveRecord], tmp_path: Path
) -> None:
    import sys

    env = {**os.environ, **instance.env}
    kyso = [sys.executable, "-m", "kyso.cli.main"]
    checked = subprocess.run(
        [*kyso, "archive", "check"], env=env, capture_output=True, text=True, timeout=300
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "thiếu 0, bị thay đổi 0" in checked.stdout
    target = tmp_path / "ho-so.zip"
    made = subprocess.run(
        [*kyso, "archive", "export", kept["issued"].public_id, "-o", str(target)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert made.returncode == 0, made.stdout + made.stderr
    with zipfile.ZipFile(target) as zipped:
        assert {"SHA256SUMS", "manifest.json"} <= set(zipped.namelist())


def test_archived_pdfs_get_their_archival_time_stamp_once(
    instance: Instance, kept: dict[str, ArchiveRecord], tmp_path: Path
) -> None:
    """PAdES B-LTA: validation data and a document time-stamp over the issued PDF; the file
    before it is kept as well, and the archive stays intact."""
    from kyso.trust import trust_context
    from kyso.validation.verify import verify

    ctx = instance.ctx
    while archive.timestamp_due(ctx):
        pass
    with ctx.db.read() as session:
        row = session.execute(
            select(ArchiveRecord).where(ArchiveRecord.public_id == kept["issued"].public_id)
        ).scalar_one()
        session.expunge(row)
    assert row.previous_sha256 == kept["issued"].sha256 and row.sha256 != row.previous_sha256
    assert row.timestamped_until is not None and row.timestamped_until > row.created_at
    blobs = archive.store(ctx)
    before, after = blobs.get(row.previous_sha256), blobs.get(row.sha256)
    assert after.startswith(before)  # an incremental update: the signed bytes are untouched
    report = verify(after, trust_context(ctx), name="lta.pdf")
    assert report.passed, [s.message_en for s in report.all_signatures()]
    path = tmp_path / "lta.pdf"
    path.write_bytes(after)
    pdfsig = subprocess.run(["pdfsig", str(path)], capture_output=True, text=True, timeout=60)
    assert pdfsig.stdout.count("Signature Validation: Signature is Valid.") == 2, pdfsig.stdout
    assert "Timestamp-" in pdfsig.stdout  # the document time-stamp's field
    assert archive.timestamp_due(ctx) == 0  # once, until it is due again

    # a year before the TSA certificate lapses, a new time-stamp goes over the chain
    with ctx.db.session() as session:
        session.execute(
            update(ArchiveRecord)
            .where(ArchiveRecord.id == row.id)
            .values(timestamped_until=clock.now() + timedelta(days=30))
        )
    assert archive.timestamp_due(ctx) >= 1
    with ctx.db.read() as session:
        renewed = session.execute(
            select(ArchiveRecord).where(ArchiveRecord.id == row.id)
        ).scalar_one()
        session.expunge(renewed)
    assert renewed.previous_sha256 == row.sha256
    again = blobs.get(renewed.sha256)
    assert again.startswith(after)
    report = verify(again, trust_context(ctx), name="lta2.pdf")
    assert report.passed, [s.message_en for s in report.all_signatures()]
    assert (
        len(report.all_signatures())
        == len(verify(after, trust_context(ctx), name="a").all_signatures()) + 1
    )
    path.write_bytes(again)
    pdfsig = subprocess.run(["pdfsig", str(path)], capture_output=True, text=True, timeout=60)
    assert pdfsig.stdout.count("Signature Validation: Signature is Valid.") == 2, pdfsig.stdout
    assert pdfsig.stdout.count("Timestamp-") == 2
    assert archive.check(ctx).intact
