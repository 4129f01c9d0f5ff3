"""Every uploaded workbook goes through one intake with one zip-bomb policy (kyso.xlsxsafe):
the people import and the bulk request upload refuse the same hostile files, each with one
plain refusal, before openpyxl parses any XML. The files are built here, for real."""

from __future__ import annotations

import io
import os
import struct
import zipfile
from collections.abc import Callable, Iterator
from typing import Any

import openpyxl
import pytest
from conftest import Instance
from fastapi.testclient import TestClient
from openpyxl import Workbook
from sqlalchemy import func, select
from support.world import World, app_client, make_world

from kyso import xlsxsafe
from kyso.errors import InvalidInput, KysoError, TooLarge
from kyso.lifecycle import bulk
from kyso.registry import spreadsheets
from kyso.store.models import BatchJob, CertificateRequest, Person

from .test_bulk import rows as bulk_rows
from .test_bulk import xlsx as bulk_xlsx

MiB = 1024 * 1024


# -- the two entry points -----------------------------------------------------------------------
def _people_workbook(world: World) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = spreadsheets.PERSON_SHEET
    sheet.append([c.header for c in spreadsheets.PERSON_COLUMNS])
    sheet.append([1, f"Hoàng Thị Thu {world.tag}", None, None, None, None, None, None])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _import_people(world: World, data: bytes) -> None:
    with world.ctx.db.session() as session:
        spreadsheets.import_people(
            world.who("officer"),
            session,
            data,
            filename="thue-bao.xlsx",
            default_unit=world.unit("chuhuong").public_id,
        )


def _upload_requests(world: World, data: bytes) -> None:
    with world.ctx.db.session() as session:
        bulk.upload(world.who("officer"), session, world.ctx.settings, data)


ENTRY_POINTS: dict[str, tuple[Callable[[World], bytes], Callable[[World, bytes], None]]] = {
    "people import": (_people_workbook, _import_people),
    "bulk request upload": (lambda world: bulk_xlsx(bulk_rows(1)), _upload_requests),
}


@pytest.fixture(params=list(ENTRY_POINTS))
def entry(request: pytest.FixtureRequest, sqlite_instance: Instance) -> Iterator[Any]:
    """(world, a valid small workbook for this entry point, the entry point)."""
    world = make_world(sqlite_instance.ctx, sqlite_instance.backend)
    build, call = ENTRY_POINTS[request.param]
    yield world, build(world), lambda data: call(world, data)


def _counts(world: World) -> tuple[int, int, int]:
    with world.ctx.db.read() as session:
        return (
            session.scalar(select(func.count()).select_from(Person)) or 0,
            session.scalar(select(func.count()).select_from(CertificateRequest)) or 0,
            session.scalar(select(func.count()).select_from(BatchJob)) or 0,
        )


@pytest.fixture
def no_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    """openpyxl must not see a file the checks refuse."""

    def parsed(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("openpyxl parsed the file before the archive was checked")

    monkeypatch.setattr(openpyxl, "load_workbook", parsed)
    monkeypatch.setattr(openpyxl.reader.excel, "load_workbook", parsed)


def _refused(world: World, call: Callable[[bytes], None], data: bytes) -> KysoError:
    before = _counts(world)
    with pytest.raises(KysoError) as caught:
        call(data)
    assert _counts(world) == before, "a refused file created something"
    return caught.value


# -- hostile files ------------------------------------------------------------------------------
def _members(valid: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(valid)) as archive:
        return {i.filename: archive.read(i) for i in archive.infolist()}


def _with(valid: bytes, extra: Callable[[zipfile.ZipFile], None]) -> bytes:
    """The valid workbook with more members written by ``extra``."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in _members(valid).items():
            archive.writestr(name, content)
        extra(archive)
    return out.getvalue()


def _zeros(archive: zipfile.ZipFile, name: str, size: int) -> None:
    with archive.open(name, "w", force_zip64=size > 0xFFFFFFFF) as member:
        block = bytes(MiB)
        for _ in range(size // MiB):
            member.write(block)
        member.write(bytes(size % MiB))


@pytest.fixture(scope="module")
def hundred_mb_of_zeros() -> Callable[[bytes], bytes]:
    cache: dict[bytes, bytes] = {}

    def build(valid: bytes) -> bytes:
        if valid not in cache:
            cache[valid] = _with(valid, lambda a: _zeros(a, "xl/media/zeros.bin", 100 * 1000**2))
        return cache[valid]

    return build


def test_a_valid_small_workbook_passes_both_entry_points(entry: Any) -> None:
    world, valid, call = entry
    before = _counts(world)
    call(valid)
    assert _counts(world) != before


def test_a_zip_bomb_member_of_100_mb_of_zeros_is_refused_unparsed(
    entry: Any, hundred_mb_of_zeros: Callable[[bytes], bytes], no_parsing: None
) -> None:
    world, valid, call = entry
    bomb = hundred_mb_of_zeros(valid)
    assert len(bomb) < 200_000  # 100 MB of zeros deflate to about 100 KB
    refusal = _refused(world, call, bomb)
    assert isinstance(refusal, TooLarge), refusal
    assert "zip bomb" in refusal.message("en")
    assert "xl/media/zeros.bin" in refusal.message("en")
    assert "xl/media/zeros.bin" in refusal.message("vi")


def test_a_workbook_with_too_many_members_is_refused_unparsed(entry: Any, no_parsing: None) -> None:
    world, valid, call = entry

    def many(archive: zipfile.ZipFile) -> None:
        for n in range(xlsxsafe.MAX_MEMBERS):
            archive.writestr(f"xl/media/image{n}.png", b"")

    refusal = _refused(world, call, _with(valid, many))
    assert isinstance(refusal, TooLarge), refusal
    assert f"more than {xlsxsafe.MAX_MEMBERS} parts" in refusal.message("en")
    assert f"hơn {xlsxsafe.MAX_MEMBERS} thành phần" in refusal.message("vi")


def test_a_workbook_that_expands_beyond_the_total_is_refused_unparsed(
    entry: Any, no_parsing: None
) -> None:
    # Members of 1 MiB each pass the ratio rule (it looks at larger members only); together
    # they expand past the total allowed.
    world, valid, call = entry
    count = xlsxsafe.MAX_UNCOMPRESSED // MiB + 1

    def spread(archive: zipfile.ZipFile) -> None:
        for n in range(count):
            _zeros(archive, f"customXml/item{n}.xml", MiB)

    bomb = _with(valid, spread)
    assert len(bomb) < 1_000_000
    refusal = _refused(world, call, bomb)
    assert isinstance(refusal, TooLarge), refusal
    assert "expands to more than 64 MiB" in refusal.message("en")


def test_a_workbook_over_the_size_limit_is_refused_unparsed(entry: Any, no_parsing: None) -> None:
    world, valid, call = entry
    noise = os.urandom(xlsxsafe.MAX_BYTES)  # incompressible: a real file that size
    big = _with(valid, lambda a: a.writestr("xl/media/photo.jpg", noise, zipfile.ZIP_STORED))
    refusal = _refused(world, call, big)
    assert isinstance(refusal, TooLarge), refusal
    assert "over 16 MiB" in refusal.message("en")
    assert "quá 16 MiB" in refusal.message("vi")


@pytest.mark.parametrize(
    "data",
    [
        b"PK\x03\x04 a zip's first bytes, then nothing of a zip",
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj <<>> endobj\n",
        bytes(range(256)) * 40,
    ],
    ids=["damaged-zip", "pdf", "binary"],
)
def test_a_file_that_is_not_a_zip_is_refused_unparsed(
    entry: Any, no_parsing: None, data: bytes
) -> None:
    world, _, call = entry
    refusal = _refused(world, call, data)
    assert type(refusal) is InvalidInput, refusal
    assert "xlsx" in refusal.message("en").lower()


def test_a_zip_without_a_workbook_is_refused_unparsed(entry: Any, no_parsing: None) -> None:
    world, _, call = entry
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("word/document.xml", b"<w:document/>")
    refusal = _refused(world, call, out.getvalue())
    assert type(refusal) is InvalidInput, refusal
    assert "not an Excel workbook" in refusal.message("en")


def _lie_about_size(data: bytes, name: str, declared: int) -> bytes:
    """Rewrite ``name``'s uncompressed size in its local header and its central directory
    entry, as a hostile file would, leaving its compressed data as it is."""
    raw = bytearray(data)
    encoded = name.encode()
    local = raw.find(b"PK\x03\x04")
    while local != -1:
        length = struct.unpack_from("<H", raw, local + 26)[0]
        if raw[local + 30 : local + 30 + length] == encoded:
            struct.pack_into("<I", raw, local + 22, declared)
            break
        local = raw.find(b"PK\x03\x04", local + 4)
    central = raw.find(b"PK\x01\x02")
    while central != -1:
        length = struct.unpack_from("<H", raw, central + 28)[0]
        if raw[central + 46 : central + 46 + length] == encoded:
            struct.pack_into("<I", raw, central + 24, declared)
            return bytes(raw)
        central = raw.find(b"PK\x01\x02", central + 4)
    raise AssertionError(f"{name} not found")


def test_a_member_that_lies_about_its_size_is_never_expanded_past_it(entry: Any) -> None:
    # The checks trust the sizes the archive declares; zipfile then never returns more than
    # the declared size and checks the CRC, so the lie ends as an unreadable workbook.
    world, valid, call = entry
    sheet = "xl/worksheets/sheet1.xml"
    members = _members(valid)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            if name == sheet:
                _zeros(archive, name, 50 * MiB)
            else:
                archive.writestr(name, content)
    liar = _lie_about_size(out.getvalue(), sheet, 4096)
    refusal = _refused(world, call, liar)
    assert type(refusal) is InvalidInput, refusal
    assert "cannot be read" in refusal.message("en")


def test_workbook_xml_entities_are_never_expanded(entry: Any) -> None:
    # "Billion laughs" in the worksheet itself: openpyxl reads it through defusedxml, which
    # refuses entity declarations outright.
    world, valid, call = entry
    sheet = "xl/worksheets/sheet1.xml"
    members = _members(valid)
    laughs = b'<!DOCTYPE worksheet [<!ENTITY lol "lol">' + b"".join(
        b'<!ENTITY lol%d "%s">' % (n, (b"&lol%d;" % (n - 1) if n > 1 else b"&lol;") * 10)
        for n in range(1, 10)
    )
    body = members[sheet]
    assert body.startswith(b"<worksheet") and b"<t>STT</t>" in body
    members[sheet] = laughs + b"]>" + body.replace(b"<t>STT</t>", b"<t>&lol9;</t>", 1)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    refusal = _refused(world, call, out.getvalue())
    assert type(refusal) is InvalidInput, refusal
    assert "cannot be read" in refusal.message("en")


@pytest.mark.parametrize(
    ("path", "params"), [("/api/v1/people/import", True), ("/api/v1/requests/bulk", False)]
)
def test_a_zip_bomb_over_http_is_a_413_in_json_not_a_500(
    sqlite_instance: Instance,
    _apps: dict[tuple[str, str], TestClient],
    hundred_mb_of_zeros: Callable[[bytes], bytes],
    path: str,
    params: bool,
) -> None:
    world = make_world(sqlite_instance.ctx, sqlite_instance.backend)
    api = app_client(sqlite_instance, _apps)
    valid = bulk_xlsx(bulk_rows(1)) if not params else _people_workbook(world)
    answer = api.post(
        path,
        headers={**world.headers("officer"), "accept-language": "vi"},
        params={"unit": world.unit("chuhuong").public_id} if params else None,
        files={"file": ("ds.xlsx", hundred_mb_of_zeros(valid), bulk.XLSX_TYPE)},
    )
    assert answer.status_code == 413, answer.text
    body = answer.json()
    assert body["code"] == "too_large"
    assert "xl/media/zeros.bin" in body["message"]
