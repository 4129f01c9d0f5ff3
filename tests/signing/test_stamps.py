"""Decree 30/2020 Annex I stamps: drawn where asked, with the right colours and Vietnamese text.

Pages are rendered with poppler's ``pdftoppm -r 72`` (one pixel per PDF point) and the text
is read back with ``pdftotext``.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import subprocess
from pathlib import Path

import pytest
from conftest import Instance
from fixtures.pdf import images, pki, samples
from support import require_or_skip

from kyso.errors import InvalidInput, NotFound
from kyso.signing import stamps
from kyso.signing.pades import sign_pdf
from kyso.signing.placement import Placement, find_text, resolve
from kyso.signing.stamps import Appearance, CopyKind, StampKind
from kyso.trust import trust_context
from kyso.validation.pdf import validate_pdf

ISO_VN = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+07:00")
PAGE_H = 842


@pytest.fixture(scope="module")
def env(sqlite_instance: Instance):
    ctx = sqlite_instance.ctx
    person, _ = pki.server_signer(ctx)
    org, _ = pki.server_signer(ctx, pki.ORGANIZATION, pki.Profile.ORGANIZATION)
    return ctx, trust_context(ctx), person, org


@pytest.fixture(scope="module")
def doc() -> bytes:
    return samples.official_document()


def _render(data: bytes, tmp_path: Path):
    from PIL import Image

    require_or_skip(pki.have_poppler(), "poppler-utils")
    path = tmp_path / "page.pdf"
    path.write_bytes(data)
    subprocess.run(
        [
            "pdftoppm",
            "-r",
            "72",
            "-png",
            "-f",
            "1",
            "-l",
            "1",
            "-singlefile",
            str(path),
            str(tmp_path / "page"),
        ],
        check=True,
        timeout=60,
    )
    return Image.open(tmp_path / "page.png").convert("RGB")


def _text(data: bytes, tmp_path: Path) -> str:
    path = tmp_path / "text.pdf"
    path.write_bytes(data)
    return subprocess.run(
        ["pdftotext", str(path), "-"], capture_output=True, text=True, check=True, timeout=60
    ).stdout


def _pixels(image, box):
    """Pixels inside a PDF box (x1, y1, x2, y2), PDF y growing upwards."""
    x1, y1, x2, y2 = (int(v) for v in box)
    raw = image.crop((x1, PAGE_H - y2, x2, PAGE_H - y1)).tobytes()
    return [tuple(raw[i : i + 3]) for i in range(0, len(raw), 3)]


def _red(p):
    return p[0] > 150 and p[1] < 90 and p[2] < 90


def _blue(p):
    return p[2] > 150 and p[0] < 110 and p[1] < 130


def _ink(p):
    return sum(p) < 600


def _white(pixels):
    return all(sum(p) >= 750 for p in pixels)


BLANK_AREA = (60, 300, 300, 450)  # below the articles, left of the signature: nothing there


@pytest.mark.interop
def test_approval_image_between_title_and_name(env, doc, tmp_path):
    _, trust, person, _ = env
    box = (400, 180, 560, 260)
    appearance = Appearance(
        StampKind.APPROVAL,
        placement=Placement.at(0, box),
        position_title="KT. CHỦ TỊCH",
        full_name="Trần Thị Bình",
        signature_image=images.signature_png(),
    )
    signed = sign_pdf(doc, person, trust=trust, appearance=appearance)
    page = _render(signed, tmp_path)
    inside = _pixels(page, box)
    assert sum(map(_blue, inside)) > 200
    assert not any(map(_red, inside))
    assert _white(_pixels(page, BLANK_AREA))
    text = _text(signed, tmp_path)
    assert "Trần Thị Bình" in text and "KT. CHỦ TỊCH" in text
    # the image sits between title (top) and name (bottom): blue only in the middle band
    top_band = _pixels(page, (400, 245, 560, 260))
    assert not any(map(_blue, top_band))
    assert validate_pdf(signed, trust).passed


@pytest.mark.interop
def test_issuing_seal_covers_left_third_of_leader_signature(env, doc, tmp_path):
    _, trust, person, org = env
    signature_box = (380, 170, 560, 240)
    approved = sign_pdf(
        doc,
        person,
        trust=trust,
        appearance=Appearance(
            StampKind.APPROVAL,
            placement=Placement.at(0, signature_box),
            signature_image=images.signature_png(),
        ),
    )
    issuing = Appearance(
        StampKind.ISSUING,
        placement=Placement.over_field("approval-1"),
        seal_image=images.seal_png(),
        number="15/QĐ-UBND",
        date=dt.date(2025, 3, 1),
    )
    issued = sign_pdf(approved, org, trust=trust, appearance=issuing)
    page = _render(issued, tmp_path)
    x1, y1, x2, y2 = signature_box
    third = x1 + (x2 - x1) / 3
    assert sum(map(_red, _pixels(page, (x1, y1, third, y2)))) > 100  # seal over the left third
    assert not any(map(_red, _pixels(page, (third + 8, y1, x2, y2))))  # not beyond it
    assert sum(map(_blue, _pixels(page, (third + 8, y1, x2, y2)))) > 100  # signature visible
    # real size: 36 mm at 300 dpi = 102 pt wide
    reds = [
        i
        for i, p in enumerate(_pixels(page, (third - 140, y1 - 40, third + 5, y2 + 40)))
        if _red(p)
    ]
    width = third + 5 - (third - 140)
    cols = {i % int(width) for i in reds}
    assert 95 <= max(cols) - min(cols) <= 106
    text = _text(issued, tmp_path)
    assert "Số: 15/QĐ-UBND" in text and "01/03/2025" in text
    assert _white(_pixels(page, BLANK_AREA))
    assert validate_pdf(issued, trust).passed


@pytest.mark.interop
@pytest.mark.parametrize(
    "appearance, expected",
    [
        (Appearance(StampKind.ATTACHMENT, number="15/QĐ-UBND"), ["Số, ký hiệu: 15/QĐ-UBND"]),
        (
            Appearance(
                StampKind.COPY,
                copy_kind="trích sao",
                copying_org="Văn phòng Ủy ban nhân dân tỉnh Bắc Kạn",
                number="07/TS-VP",
            ),
            ["TRÍCH SAO", "Văn phòng Ủy ban nhân dân tỉnh Bắc Kạn"],
        ),
    ],
    ids=["attachment", "copy"],
)
def test_top_right_text_stamps(env, doc, tmp_path, appearance, expected):
    _, trust, _, org = env
    signed = sign_pdf(doc, org, trust=trust, appearance=appearance)
    page = _render(signed, tmp_path)
    corner = (360, 760, 575, 822)
    inside = _pixels(page, corner)
    assert sum(map(_ink, inside)) > 100
    assert not any(map(_red, inside)) and not any(map(_blue, inside))  # black text, no image
    assert all(abs(p[0] - p[1]) < 40 and abs(p[1] - p[2]) < 40 for p in inside)  # grey/black
    assert _white(_pixels(page, BLANK_AREA))
    text = _text(signed, tmp_path)
    for line in expected:
        assert line in text
    assert ISO_VN.search(text), text
    assert validate_pdf(signed, trust).passed


@pytest.mark.interop
def test_incoming_mark(env, doc, tmp_path):
    _, trust, _, org = env
    appearance = Appearance(
        StampKind.INCOMING,
        received_number="1234",
        received_date=dt.date(2025, 3, 2),
        receiving_org="Sở Tài chính tỉnh Bắc Kạn",
    )
    signed = sign_pdf(doc, org, trust=trust, appearance=appearance)
    text = _text(signed, tmp_path)
    assert "ĐẾN" in text and "Số: 1234" in text and "02/03/2025" in text
    assert ISO_VN.search(text)
    page = _render(signed, tmp_path)
    assert sum(map(_ink, _pixels(page, (20, 760, 230, 822)))) > 100


def test_text_anchor_finds_the_signer_name(doc):
    page, (x1, y1, x2, y2) = find_text(doc, "nguyễn văn an")  # case-insensitive
    assert page == 0
    assert abs(x1 - samples.NAME_AT[0]) < 2 and y1 < samples.NAME_AT[1] + 2 < y2 + 2
    from pyhanko.pdf_utils.reader import PdfFileReader

    reader = PdfFileReader(io.BytesIO(doc))
    resolved = resolve(
        Placement.by_anchor(samples.SIGNER_NAME, width=150, height=60), reader, doc, (1, 1)
    )
    bx1, by1, bx2, by2 = resolved.box
    assert by1 >= y2 and by2 - by1 == 60 and abs((bx1 + bx2) / 2 - (x1 + x2) / 2) < 0.01
    with pytest.raises(NotFound):
        find_text(doc, "Lê Văn Không Có")


def test_appearance_checks():
    with pytest.raises(InvalidInput):
        Appearance(StampKind.APPROVAL, placement=Placement.at(0, (0, 0, 10, 10))).check()
    with pytest.raises(InvalidInput):
        Appearance(StampKind.APPROVAL, signature_image=images.signature_png()).check()
    with pytest.raises(InvalidInput):
        Appearance(
            StampKind.ISSUING,
            placement=Placement.at(0, (0, 0, 10, 10)),
            seal_image=images.seal_png(),
        ).check()
    with pytest.raises(InvalidInput):
        Appearance(StampKind.COPY, copy_kind="BẢN CHỤP", copying_org="X")
    with pytest.raises(InvalidInput, match="PNG"):
        Appearance(
            StampKind.APPROVAL,
            placement=Placement.at(0, (0, 0, 10, 10)),
            signature_image=b"GIF89a....",
        ).check()
    with pytest.raises(InvalidInput):
        Placement.at(0, (10, 10, 5, 20))
    assert Appearance(StampKind.COPY, copy_kind="sao lục", copying_org="X").copy_kind is (
        CopyKind.SAO_LUC
    )


def test_placement_errors(env, doc):
    _, trust, person, _ = env
    appearance = Appearance(
        StampKind.APPROVAL,
        placement=Placement.at(5, (0, 0, 50, 50)),
        signature_image=images.signature_png(),
    )
    with pytest.raises(InvalidInput, match="page 6"):
        sign_pdf(doc, person, trust=trust, appearance=appearance)
    appearance.placement = Placement.in_field("KhongCo")
    with pytest.raises(NotFound):
        sign_pdf(doc, person, trust=trust, appearance=appearance)


def test_iso_time_and_width_helpers():
    moment = dt.datetime(2025, 3, 1, 3, 15, 30, 500, tzinfo=dt.UTC)
    assert stamps.iso_vietnam(moment) == "2025-03-01T10:15:30+07:00"
    assert stamps.text_width("Nguyễn", 10) > stamps.text_width("N", 10) > 0
    assert stamps.wrap("một hai ba bốn năm", 10, 40) == ["một hai", "ba bốn", "năm"]
