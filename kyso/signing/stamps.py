"""Signature stamps of Decree 30/2020/NĐ-CP, Annex I, drawn into the signature's appearance.

Each kind is a choice of the signer:

* ``APPROVAL`` — the competent person's signature: the image of the handwritten signature
  (blue, transparent PNG) centred between the position title and the name.
* ``ISSUING`` — the organization's signature, made by the records clerk with the
  organization's certificate: the red seal image (transparent PNG) at real size, covering about
  the left third of the competent person's signature image, with the document's number and
  notation and its date.
* ``ATTACHMENT`` — attachments in separate files and appendices: top right of the first page,
  no image; the number and notation of the document and the signing time (ISO 8601, Vietnam
  time zone), Times New Roman 10 pt regular upright, black.
* ``COPY`` — electronic copies ("SAO Y", "SAO LỤC", "TRÍCH SAO"): top right of the first page,
  no image; the copy kind, the copying organization and the signing time, same font.
* ``INCOMING`` — the "ĐẾN" mark on a received document: received number and date.

All text is set in Liberation Serif (metric-compatible with Times New Roman), embedded as a
subset with a ToUnicode map so the Vietnamese text can be searched and copied.
"""

from __future__ import annotations

import datetime as _dt
import enum
import functools
import io
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from pyhanko.pdf_utils import layout
from pyhanko.pdf_utils.content import ResourceType
from pyhanko.pdf_utils.font.opentype import GlyphAccumulator
from pyhanko.pdf_utils.generic import pdf_name
from pyhanko.pdf_utils.writer import BasePdfFileWriter
from pyhanko.stamp.text import TextStamp, TextStampStyle

from kyso import clock
from kyso.errors import InvalidInput
from kyso.signing.fonts import SERIF_BOLD, SERIF_REGULAR
from kyso.signing.placement import Placement
from kyso.textcheck import hidden_character

if TYPE_CHECKING:
    from PIL import Image

# fontTools logs a warning for each table it cannot subset (FFTM); harmless, and noisy.
logging.getLogger("fontTools.subset").setLevel(logging.ERROR)

#: Stamp text size of Decree 30/2020 Annex I (attachments, copies): 10 pt.
TEXT_SIZE = 10.0
LEADING = 1.2
#: Position title and name under an approval signature: 13 pt bold, as printed in documents.
TITLE_SIZE = 13.0
#: A seal PNG without a resolution is drawn this wide; state agency seals are 32-42 mm.
DEFAULT_SEAL_MM = 36.0
MM = 72 / 25.4
MAX_IMAGE_BYTES = 5 * 1024 * 1024
MAX_IMAGE_PIXELS = 4096 * 4096
PADDING = 3.0
# The signature image of an approval fills at most this share of the box (the rest: text).
_APPROVAL_BOX = (170.0, 100.0)


class StampKind(enum.StrEnum):
    APPROVAL = "approval"  # chữ ký của người có thẩm quyền
    ISSUING = "issuing"  # chữ ký của cơ quan, tổ chức (phát hành)
    ATTACHMENT = "attachment"  # tệp đính kèm, phụ lục
    COPY = "copy"  # bản sao điện tử
    INCOMING = "incoming"  # dấu "ĐẾN" của văn bản đến


class CopyKind(enum.StrEnum):
    SAO_Y = "SAO Y"
    SAO_LUC = "SAO LỤC"
    TRICH_SAO = "TRÍCH SAO"


_TEXTS = (
    "position_title",
    "full_name",
    "number",
    "copy_kind",
    "copying_org",
    "received_number",
    "receiving_org",
)


@dataclass
class Appearance:
    """What a visible signature shows. Which fields are needed depends on ``kind``."""

    kind: StampKind = StampKind.APPROVAL
    placement: Placement | None = None
    position_title: str | None = None  # "CHỦ TỊCH", "KT. GIÁM ĐỐC / PHÓ GIÁM ĐỐC"
    full_name: str | None = None
    number: str | None = None  # số và ký hiệu: "15/QĐ-UBND"
    date: _dt.date | str | None = None  # the document's date (issuing)
    copy_kind: CopyKind | str | None = None
    copying_org: str | None = None
    received_number: str | None = None
    received_date: _dt.date | str | None = None
    receiving_org: str | None = None
    signature_image: bytes | None = field(default=None, repr=False)
    seal_image: bytes | None = field(default=None, repr=False)
    seal_mm: float | None = None  # the seal's real width; None: from the PNG's resolution

    def __post_init__(self) -> None:
        self.kind = StampKind(self.kind)
        if self.copy_kind is not None:
            try:
                self.copy_kind = CopyKind(str(self.copy_kind).strip().upper())
            except ValueError as exc:
                raise InvalidInput(
                    f"copy kind {self.copy_kind!r}: use SAO Y, SAO LỤC or TRÍCH SAO",
                    vi=f"hình thức sao {self.copy_kind!r}: dùng SAO Y, SAO LỤC hoặc TRÍCH SAO",
                ) from exc

    def check(self) -> None:
        """Refuse an appearance that misses what its kind must show, or whose text holds a
        character that would print differently from what is stored (:mod:`kyso.textcheck`)."""
        need: dict[StampKind, list[tuple[str, str, str]]] = {
            StampKind.APPROVAL: [("signature_image", "the signature image", "ảnh chữ ký")],
            StampKind.ISSUING: [
                ("seal_image", "the seal image", "ảnh con dấu"),
                ("number", "the number and notation", "số và ký hiệu văn bản"),
                ("date", "the document's date", "ngày tháng văn bản"),
            ],
            StampKind.ATTACHMENT: [("number", "the number and notation", "số và ký hiệu văn bản")],
            StampKind.COPY: [
                ("copy_kind", "the copy kind", "hình thức sao"),
                ("copying_org", "the copying organization", "tên cơ quan sao"),
            ],
            StampKind.INCOMING: [
                ("received_number", "the received number", "số đến"),
                ("received_date", "the received date", "ngày đến"),
            ],
        }
        for attr, en, vi in need[self.kind]:
            value = getattr(self, attr)
            if value is None or (isinstance(value, str | bytes) and not value.strip()):
                raise InvalidInput(
                    f"a {self.kind.value} stamp needs {en}", vi=f"chữ ký loại này cần {vi}"
                )
        for attr in _TEXTS:  # what the stamp prints must read as it is stored
            value = getattr(self, attr)
            # line breaks are the stamp's own (a title on two lines); nothing else hidden
            lines = value.replace("\r\n", "\n").replace("\n", "") if isinstance(value, str) else ""
            hidden = hidden_character(lines)
            if hidden is not None:
                raise InvalidInput(
                    f"{attr}: contains a control or invisible character ({hidden})",
                    vi=f"{attr}: chứa ký tự điều khiển hoặc ký tự ẩn ({hidden})",
                )
        if self.kind is StampKind.APPROVAL and self.placement is None:
            raise InvalidInput(
                "an approval signature needs a placement (box, field or text anchor)",
                vi="chữ ký phê duyệt cần vị trí (khung, trường ký hoặc văn bản neo)",
            )
        if self.kind is StampKind.ISSUING and self.placement is None:
            raise InvalidInput(
                "an issuing signature needs the place of the leader's signature",
                vi="chữ ký phát hành cần vị trí chữ ký của người có thẩm quyền",
            )
        for image in (self.signature_image, self.seal_image):
            if image is not None:
                load_png(image)

    def default_placement(self) -> Placement:
        if self.placement is not None:
            return self.placement
        if self.kind is StampKind.INCOMING:
            return Placement.top_left()
        return Placement.top_right()


# -- fonts and measuring --------------------------------------------------------------------


class SerifAccumulator(GlyphAccumulator):
    """pyHanko's glyph accumulator, with widths in the PDF's 1/1000 em.

    pyHanko 0.38 writes ``/W`` widths and ``TJ`` adjustments in the font's own units; that is
    right only for fonts of 1000 units per em (CFF). Liberation Serif has 2048, so every glyph
    would be drawn twice as far apart. HarfBuzz is told to position in 1000ths of an em and
    widths are scaled to match."""

    def __init__(self, writer: BasePdfFileWriter, bold: bool = False, font_size: float = 10):
        super().__init__(writer, io.BytesIO(_font_bytes(bold)), font_size=font_size)
        self._scale = 1000 / self.units_per_em
        self.units_per_em = 1000
        self.hb_font.scale = (1000, 1000)

    def _get_cid_and_width(self, glyph_id: int) -> tuple[int, int]:
        known = self._glyphs.get(glyph_id)
        if known is not None:
            return known
        cid, width = super()._get_cid_and_width(glyph_id)
        scaled = (cid, round(width * self._scale))
        self._glyphs[glyph_id] = scaled
        return scaled


@functools.cache
def _font_bytes(bold: bool) -> bytes:
    return (SERIF_BOLD if bold else SERIF_REGULAR).read_bytes()


@functools.cache
def _metrics(bold: bool) -> tuple[dict[int, str], dict[str, tuple[int, int]], int]:
    from fontTools.ttLib import TTFont

    font = TTFont(io.BytesIO(_font_bytes(bold)), lazy=True)
    return dict(font.getBestCmap()), dict(font["hmtx"].metrics), font["head"].unitsPerEm


def text_width(text: str, size: float, bold: bool = False) -> float:
    """Advance width of ``text`` in points (no kerning: close enough for layout)."""
    cmap, hmtx, upem = _metrics(bold)
    total = 0
    for ch in text:
        glyph = cmap.get(ord(ch), ".notdef")
        total += hmtx.get(glyph, (upem // 2, 0))[0]
    return total * size / upem


def wrap(text: str, size: float, width: float, bold: bool = False) -> list[str]:
    """Break ``text`` into lines no wider than ``width`` (a too-long word stays whole)."""
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        current = ""
        for word in paragraph.split():
            candidate = f"{current} {word}" if current else word
            if current and text_width(candidate, size, bold) > width + 0.5:
                lines.append(current)
                current = word
            else:
                current = candidate
        lines.append(current)
    return lines


def _fmt_date(value: _dt.date | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return (
            clock.local(value).strftime("%d/%m/%Y") if value.tzinfo else value.strftime("%d/%m/%Y")
        )
    if isinstance(value, _dt.date):
        return value.strftime("%d/%m/%Y")
    return str(value)


def iso_vietnam(moment: datetime) -> str:
    """ISO 8601 in Vietnam time, e.g. 2025-03-01T10:15:30+07:00 (Decree 30/2020 Annex I)."""
    if moment.tzinfo is None:
        raise ValueError("a naive time")
    return clock.local(moment).replace(microsecond=0).isoformat()


# -- images ---------------------------------------------------------------------------------


def load_png(data: bytes) -> Image.Image:
    """A Pillow image from PNG bytes, converted to a mode pyHanko embeds with transparency."""
    from PIL import Image, UnidentifiedImageError

    if len(data) > MAX_IMAGE_BYTES:
        raise InvalidInput("the image is larger than 5 MB", vi="ảnh lớn hơn 5 MB")
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise InvalidInput(
            "signature and seal images must be PNG (with transparency)",
            vi="ảnh chữ ký và con dấu phải là tệp PNG (nền trong suốt)",
        )
    image: Image.Image
    try:
        image = Image.open(io.BytesIO(data))
        if image.width * image.height > MAX_IMAGE_PIXELS:
            raise InvalidInput("the image has too many pixels", vi="ảnh quá nhiều điểm ảnh")
        image.load()
    except InvalidInput:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise InvalidInput("the PNG image cannot be read", vi="không đọc được ảnh PNG") from exc
    if image.mode not in ("RGB", "RGBA", "L", "LA") or "transparency" in image.info:
        image = image.convert("RGBA")
    return image


def image_size_pt(image, width_mm: float | None = None) -> tuple[float, float]:
    """The real size of an image in points: from ``width_mm``, else its DPI, else 96 dpi."""
    if width_mm:
        width = width_mm * MM
        return width, width * image.height / image.width
    dpi = image.info.get("dpi")
    try:
        dpi_x, dpi_y = (float(dpi[0]), float(dpi[1])) if dpi else (0.0, 0.0)
    except (TypeError, ValueError, IndexError):
        dpi_x = dpi_y = 0.0
    if dpi_x > 1 and dpi_y > 1:
        return image.width * 72 / dpi_x, image.height * 72 / dpi_y
    return 0.0, 0.0


def seal_size_pt(image, seal_mm: float | None) -> tuple[float, float]:
    width, height = image_size_pt(image, seal_mm)
    if not width:
        width, height = image_size_pt(image, DEFAULT_SEAL_MM)
    return width, height


# -- layout ---------------------------------------------------------------------------------


@dataclass
class _Text:
    text: str
    x: float
    y: float  # baseline
    size: float
    bold: bool = False


@dataclass
class _Image:
    png: bytes
    box: tuple[float, float, float, float]  # x, y, width, height


@dataclass
class _Layout:
    width: float
    height: float
    texts: list[_Text] = field(default_factory=list)
    images: list[_Image] = field(default_factory=list)
    border: bool = False


def _text_lines(appearance: Appearance, signing_time: str) -> list[str]:
    a = appearance
    if a.kind is StampKind.ATTACHMENT:
        return [f"Số, ký hiệu: {a.number}", f"Thời gian ký: {signing_time}"]
    if a.kind is StampKind.COPY:
        lines = [str(a.copy_kind), str(a.copying_org)]
        if a.number:
            lines.append(f"Số, ký hiệu: {a.number}")
        return [*lines, f"Thời gian ký: {signing_time}"]
    if a.kind is StampKind.INCOMING:
        lines = [a.receiving_org] if a.receiving_org else []
        return [
            *lines,
            "ĐẾN",
            f"Số: {a.received_number}",
            f"Ngày: {_fmt_date(a.received_date)}",
            f"Thời gian ký: {signing_time}",
        ]
    if a.kind is StampKind.ISSUING:
        return [f"Số: {a.number}", f"Ngày: {_fmt_date(a.date)}"]
    return []


#: A box wide enough for "Thời gian ký: 2025-03-01T10:15:30+07:00" at 10 pt.
_TIME_SAMPLE = "Thời gian ký: 2025-03-01T10:15:30+07:00"


def natural_size(appearance: Appearance) -> tuple[float, float]:
    """The size a stamp takes when the placement gives none (points)."""
    a = appearance
    if a.kind is StampKind.APPROVAL:
        return _APPROVAL_BOX
    if a.kind is StampKind.ISSUING:
        return _APPROVAL_BOX
    lines = _text_lines(a, _TIME_SAMPLE.split(": ", 1)[1])
    width = max(text_width(line, TEXT_SIZE) for line in lines)
    width = min(max(width, text_width(_TIME_SAMPLE, TEXT_SIZE)), 260.0) + 2 * PADDING + 2
    wrapped = sum(len(wrap(line, TEXT_SIZE, width - 2 * PADDING)) for line in lines)
    return width, wrapped * TEXT_SIZE * LEADING + 2 * PADDING


def layout_stamp(appearance: Appearance, width: float, height: float, signing_time: str) -> _Layout:
    """Where each text line and image of ``appearance`` goes in a ``width`` × ``height`` box."""
    a = appearance
    out = _Layout(width, height)
    if a.kind is StampKind.APPROVAL:
        _layout_approval(a, out)
        return out
    if a.kind is StampKind.ISSUING:
        return _layout_issuing(a, width, height)
    lines: list[str] = []
    for line in _text_lines(a, signing_time):
        lines.extend(wrap(line, TEXT_SIZE, width - 2 * PADDING))
    step = TEXT_SIZE * LEADING
    y = height - PADDING - TEXT_SIZE
    for line in lines:
        centred = a.kind is StampKind.INCOMING and line == "ĐẾN"
        x = (width - text_width(line, TEXT_SIZE, centred)) / 2 if centred else PADDING
        out.texts.append(_Text(line, x, y, TEXT_SIZE, bold=centred))
        y -= step
    out.border = a.kind is StampKind.INCOMING
    return out


def _fit_line(text: str, width: float, size: float, bold: bool) -> float:
    """The largest size ≤ ``size`` at which ``text`` fits ``width``."""
    natural = text_width(text, size, bold)
    return size if natural <= width or natural == 0 else max(6.0, size * width / natural)


def _layout_approval(a: Appearance, out: _Layout) -> None:
    top, bottom = out.height, 0.0
    if a.position_title:
        size = _fit_line(a.position_title, out.width, TITLE_SIZE, True)
        top -= size * LEADING
        out.texts.append(
            _Text(
                a.position_title,
                (out.width - text_width(a.position_title, size, True)) / 2,
                top + size * 0.25,
                size,
                True,
            )
        )
    if a.full_name:
        size = _fit_line(a.full_name, out.width, TITLE_SIZE, True)
        out.texts.append(
            _Text(
                a.full_name,
                (out.width - text_width(a.full_name, size, True)) / 2,
                size * 0.3,
                size,
                True,
            )
        )
        bottom = size * LEADING
    assert a.signature_image is not None
    image = load_png(a.signature_image)
    room_w, room_h = out.width - 2 * PADDING, max(top - bottom - 2 * PADDING, 1.0)
    scale = min(room_w / image.width, room_h / image.height)
    w, h = image.width * scale, image.height * scale
    out.images.append(
        _Image(a.signature_image, ((out.width - w) / 2, bottom + (top - bottom - h) / 2, w, h))
    )


def issuing_box(
    appearance: Appearance, signature_box: tuple[float, float, float, float]
) -> tuple[float, float, float, float]:
    """The widget box of an issuing stamp for the leader's signature at ``signature_box``: the
    seal at real size whose right edge reaches a third into the signature (Decree 30/2020
    Annex I), and the number/notation and date under it."""
    assert appearance.seal_image is not None
    seal_w, seal_h = seal_size_pt(load_png(appearance.seal_image), appearance.seal_mm)
    x1, y1, x2, y2 = signature_box
    right = x1 + (x2 - x1) / 3
    cy = (y1 + y2) / 2
    lines = _text_lines(appearance, "")
    text_w = max(text_width(line, TEXT_SIZE) for line in lines) + 2 * PADDING
    text_h = len(lines) * TEXT_SIZE * LEADING + PADDING
    width = max(seal_w, text_w)
    return (right - width, cy - seal_h / 2 - text_h, right, cy + seal_h / 2)


def _layout_issuing(a: Appearance, width: float, height: float) -> _Layout:
    assert a.seal_image is not None
    out = _Layout(width, height)
    lines = _text_lines(a, "")
    text_h = len(lines) * TEXT_SIZE * LEADING + PADDING
    seal_w, seal_h = seal_size_pt(load_png(a.seal_image), a.seal_mm)
    if seal_h > height - text_h or seal_w > width:  # a box smaller than the real size: shrink
        scale = min((height - text_h) / seal_h, width / seal_w)
        seal_w, seal_h = seal_w * max(scale, 0.05), seal_h * max(scale, 0.05)
    out.images.append(_Image(a.seal_image, (width - seal_w, height - seal_h, seal_w, seal_h)))
    y = height - seal_h - TEXT_SIZE
    for line in lines:
        out.texts.append(
            _Text(line, width - seal_w + (seal_w - text_width(line, TEXT_SIZE)) / 2, y, TEXT_SIZE)
        )
        y -= TEXT_SIZE * LEADING
    return out


# -- pyHanko glue ---------------------------------------------------------------------------

#: strftime pattern pyHanko applies to the signing time before handing it to the stamp;
#: parsed back so the stamp can show it in Vietnam time with a +07:00 offset.
_TS_FORMAT = "%Y-%m-%dT%H:%M:%S%z"


@dataclass(frozen=True)
class Decree30StampStyle(TextStampStyle):
    """A pyHanko stamp style drawing a Decree 30/2020 appearance (``PdfSigner(stamp_style=…)``).

    It is a ``TextStampStyle`` only so that pyHanko passes the signing time (``ts``)."""

    appearance: Appearance | None = None
    border_width: int = 0
    timestamp_format: str = _TS_FORMAT

    def create_stamp(
        self, writer: BasePdfFileWriter, box: layout.BoxConstraints, text_params: dict
    ) -> Decree30Stamp:
        return Decree30Stamp(writer, self, box, text_params)


class Decree30Stamp(TextStamp):
    """The appearance itself: images and text lines laid out by :func:`layout_stamp`."""

    def __init__(
        self,
        writer: BasePdfFileWriter,
        style: Decree30StampStyle,
        box: layout.BoxConstraints,
        text_params: dict | None,
    ) -> None:
        super().__init__(writer=writer, style=style, text_params=text_params or {}, box=box)

    def _signing_time(self) -> str:
        ts = self.text_params.get("ts")
        moment = datetime.strptime(ts, _TS_FORMAT) if ts else clock.now()
        return iso_vietnam(moment)

    def _render_inner_content(self) -> list[bytes]:
        appearance = self.style.appearance
        writer = self.writer
        assert appearance is not None and writer is not None
        plan = layout_stamp(appearance, self.box.width, self.box.height, self._signing_time())
        commands: list[bytes] = []
        for index, item in enumerate(plan.images):
            commands.append(self._image(item, index))
        engines: dict[bool, SerifAccumulator] = {}
        for text in plan.texts:
            if text.bold not in engines:
                engines[text.bold] = SerifAccumulator(writer, text.bold, text.size)
                name = pdf_name("/KysoB" if text.bold else "/KysoR")
                self.set_resource(ResourceType.FONT, name, engines[text.bold].as_resource())
            shaped = engines[text.bold].shape(text.text)
            commands.append(
                b"BT 0 g %s %g Tf 1 0 0 1 %g %g Tm %s ET"
                % (
                    b"/KysoB" if text.bold else b"/KysoR",
                    text.size,
                    text.x,
                    text.y,
                    shaped.graphics_ops,
                )
            )
        if plan.border:
            commands.append(
                b"q 0 G 0.8 w 0.4 0.4 %g %g re S Q" % (plan.width - 0.8, plan.height - 0.8)
            )
        return commands

    def _image(self, item: _Image, index: int) -> bytes:
        from pyhanko.pdf_utils.images import pil_image

        assert self.writer is not None
        ref = pil_image(load_png(item.png), self.writer)
        name = f"/KysoImg{index}"
        self.set_resource(ResourceType.XOBJECT, pdf_name(name), ref)
        x, y, w, h = item.box
        return b"q %g 0 0 %g %g %g cm %s Do Q" % (w, h, x, y, name.encode("ascii"))


def stamp_style(appearance: Appearance) -> Decree30StampStyle:
    return Decree30StampStyle(appearance=appearance)


__all__ = [
    "Appearance",
    "CopyKind",
    "Decree30StampStyle",
    "StampKind",
    "iso_vietnam",
    "issuing_box",
    "natural_size",
    "stamp_style",
    "text_width",
]
