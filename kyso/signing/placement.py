"""Where a signature stamp goes: a box on a page, an existing signature field, or a text anchor.

Coordinates are PDF user-space points (1/72 inch) with the origin at the bottom left of the
page, as in the PDF itself; a box is ``(x1, y1, x2, y2)``. Pages count from 0.

A text anchor finds words printed in the document — usually the signer's name, under which
the Decree 30/2020 Annex I signature image belongs — with pdfminer.six, and places the box
relative to them. Attachments, appendices and copies go to the top right of the first page
(Decree 30/2020 Annex I, items c and d); ``Placement.top_right`` does that.
"""

from __future__ import annotations

import enum
import io
import unicodedata
from dataclasses import dataclass

from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields

from kyso.errors import InvalidInput, NotFound

Box = tuple[float, float, float, float]

#: Distance from the page edge for corner placements (about 7 mm).
CORNER_MARGIN = 20.0


class Where(enum.StrEnum):
    """Where the box goes relative to an anchor's text."""

    ABOVE = "above"  # centred above the text (the signature image above the signer's name)
    BELOW = "below"
    OVER = "over"  # centred on the text
    LEFT = "left"
    RIGHT = "right"


class Corner(enum.StrEnum):
    TOP_RIGHT = "top-right"
    TOP_LEFT = "top-left"


@dataclass(frozen=True)
class Placement:
    """One of: ``box`` on ``page``; an existing ``field``; an ``anchor`` text; a page ``corner``.

    Build it with the class methods. ``width``/``height`` size a box placed by anchor or corner
    (``None``: the stamp's natural size, or a default)."""

    page: int = 0
    box: Box | None = None
    field: str | None = None
    over_signed_field: bool = False
    anchor: str | None = None
    where: Where = Where.ABOVE
    occurrence: int = -1
    corner: Corner | None = None
    width: float | None = None
    height: float | None = None
    gap: float = 2.0

    @classmethod
    def at(cls, page: int, box: Box) -> Placement:
        """A box on a page (0-based), PDF points from the bottom left."""
        return cls(page=page, box=_check_box(box))

    @classmethod
    def in_field(cls, name: str) -> Placement:
        """An existing empty signature field (its page and rectangle)."""
        return cls(field=name)

    @classmethod
    def over_field(cls, name: str) -> Placement:
        """The rectangle of an existing field, even one already signed: a new field on top of
        it (the organization's seal over the leader's signature when a document is issued)."""
        return cls(field=name, over_signed_field=True)

    @classmethod
    def by_anchor(
        cls,
        text: str,
        *,
        where: Where | str = Where.ABOVE,
        width: float | None = None,
        height: float | None = None,
        page: int | None = None,
        occurrence: int = -1,
        gap: float = 2.0,
    ) -> Placement:
        """Next to the ``occurrence``-th place (default: the last) where ``text`` is printed,
        on ``page`` or on any page. Matching ignores case and Unicode normalization form."""
        if not text or not text.strip():
            raise InvalidInput("an empty anchor text", vi="văn bản neo trống")
        return cls(
            page=-1 if page is None else page,
            anchor=text,
            where=Where(where),
            width=width,
            height=height,
            occurrence=occurrence,
            gap=gap,
        )

    @classmethod
    def top_right(
        cls, page: int = 0, width: float | None = None, height: float | None = None
    ) -> Placement:
        """The top right corner of a page (first page by default)."""
        return cls(page=page, corner=Corner.TOP_RIGHT, width=width, height=height)

    @classmethod
    def top_left(
        cls, page: int = 0, width: float | None = None, height: float | None = None
    ) -> Placement:
        return cls(page=page, corner=Corner.TOP_LEFT, width=width, height=height)


@dataclass(frozen=True)
class Resolved:
    """A placement resolved against a document: a page and a box, and whether the signature
    goes into an existing empty field (``existing_field``) or a new one."""

    page: int
    box: Box
    existing_field: str | None = None

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]


def _check_box(box: Box) -> Box:
    try:
        x1, y1, x2, y2 = (float(v) for v in box)
    except (TypeError, ValueError) as exc:
        raise InvalidInput("a box is four numbers", vi="khung là bốn số") from exc
    if x2 <= x1 or y2 <= y1:
        raise InvalidInput(
            "the box must be (x1, y1, x2, y2) with x2 > x1 and y2 > y1",
            vi="khung phải là (x1, y1, x2, y2) với x2 > x1 và y2 > y1",
        )
    return (x1, y1, x2, y2)


def page_count(reader: PdfFileReader) -> int:
    return int(reader.root["/Pages"]["/Count"])


def page_box(reader: PdfFileReader, page: int) -> Box:
    """The visible area of a page (CropBox, else MediaBox)."""
    page_obj, _ = reader.find_page_for_modification(page)
    page_dict = page_obj.get_object()
    for key in ("/CropBox", "/MediaBox"):
        node = page_dict
        while node is not None:
            if key in node:
                return tuple(float(v) for v in node[key])  # type: ignore[return-value]
            parent = node.get("/Parent")
            node = parent.get_object() if parent is not None else None
    return (0.0, 0.0, 612.0, 792.0)


def _check_page(reader: PdfFileReader, page: int) -> int:
    count = page_count(reader)
    if not 0 <= page < count:
        raise InvalidInput(
            f"page {page + 1} does not exist (the document has {count})",
            vi=f"không có trang {page + 1} (tài liệu có {count} trang)",
        )
    return page


def resolve(
    placement: Placement,
    reader: PdfFileReader,
    data: bytes,
    natural_size: tuple[float, float],
) -> Resolved:
    """Page and box for ``placement`` in the document ``reader`` reads (``data``: its bytes,
    for text search). ``natural_size`` is the stamp's own size, used when none is given."""
    width = placement.width or natural_size[0]
    height = placement.height or natural_size[1]
    if placement.field is not None:
        return _resolve_field(placement, reader)
    if placement.box is not None:
        return Resolved(_check_page(reader, placement.page), _check_box(placement.box))
    if placement.corner is not None:
        page = _check_page(reader, placement.page)
        x1, _, x2, y2 = page_box(reader, page)
        top = y2 - CORNER_MARGIN
        if placement.corner is Corner.TOP_RIGHT:
            right = x2 - CORNER_MARGIN
            return Resolved(page, (right - width, top - height, right, top))
        left = x1 + CORNER_MARGIN
        return Resolved(page, (left, top - height, left + width, top))
    if placement.anchor is not None:
        page, (ax1, ay1, ax2, ay2) = find_text(
            data, placement.anchor, page=placement.page, occurrence=placement.occurrence
        )
        cx, cy, gap = (ax1 + ax2) / 2, (ay1 + ay2) / 2, placement.gap
        boxes = {
            Where.ABOVE: (cx - width / 2, ay2 + gap, cx + width / 2, ay2 + gap + height),
            Where.BELOW: (cx - width / 2, ay1 - gap - height, cx + width / 2, ay1 - gap),
            Where.OVER: (cx - width / 2, cy - height / 2, cx + width / 2, cy + height / 2),
            Where.LEFT: (ax1 - gap - width, cy - height / 2, ax1 - gap, cy + height / 2),
            Where.RIGHT: (ax2 + gap, cy - height / 2, ax2 + gap + width, cy + height / 2),
        }
        return Resolved(page, boxes[placement.where])
    raise InvalidInput(
        "a placement needs a box, a field, an anchor or a corner",
        vi="vị trí ký cần khung, trường ký, văn bản neo hoặc góc trang",
    )


def _resolve_field(placement: Placement, reader: PdfFileReader) -> Resolved:
    name = placement.field
    assert name is not None
    for fq_name, value, field_ref in fields.enumerate_sig_fields(reader, filled_status=None):
        if fq_name != name:
            continue
        field = field_ref.get_object()
        annot_ref = field_ref
        if "/Rect" not in field:
            kids = field.get("/Kids")
            if not kids:
                raise InvalidInput(
                    f"signature field {name} has no widget", vi=f"trường ký {name} không có ô ký"
                )
            annot_ref = kids.raw_get(0)
        rect = [float(v) for v in annot_ref.get_object()["/Rect"]]
        box = (
            min(rect[0], rect[2]),
            min(rect[1], rect[3]),
            max(rect[0], rect[2]),
            max(rect[1], rect[3]),
        )
        page = _page_of_annot(reader, annot_ref)
        if placement.over_signed_field:
            return Resolved(page, box)
        if value is not None:
            raise InvalidInput(
                f"signature field {name} is already signed", vi=f"trường ký {name} đã được ký"
            )
        return Resolved(page, box, existing_field=name)
    raise NotFound(f"signature field {name}", vi=f"trường ký {name}")


def _page_of_annot(reader: PdfFileReader, annot_ref) -> int:
    target = getattr(annot_ref, "idnum", None)
    for index in range(page_count(reader)):
        page_obj, _ = reader.find_page_for_modification(index)
        annots = page_obj.get_object().get("/Annots")
        if annots is None:
            continue
        annots = annots.get_object()
        for i in range(len(annots)):
            if getattr(annots.raw_get(i), "idnum", None) == target:
                return index
    return 0


def _fold(text: str) -> str:
    return unicodedata.normalize("NFC", text).casefold()


def find_text(data: bytes, text: str, *, page: int = -1, occurrence: int = -1) -> tuple[int, Box]:
    """The page and bounding box of the ``occurrence``-th match of ``text`` (default: the last
    one in the document, where a signer's name usually is). ``page`` -1 searches every page.
    Spaces in ``text`` match any run of white space in the document."""
    from pdfminer.high_level import extract_pages
    from pdfminer.layout import LAParams, LTChar, LTTextContainer, LTTextLine

    needle = " ".join(_fold(text).split())
    pages = None if page < 0 else [page]
    matches: list[tuple[int, Box]] = []
    try:
        for index, layout in enumerate(
            extract_pages(io.BytesIO(data), page_numbers=pages, laparams=LAParams())
        ):
            page_index = page if page >= 0 else index
            lines: list[LTTextLine] = []
            for element in layout:
                if isinstance(element, LTTextContainer):
                    lines.extend(x for x in element if isinstance(x, LTTextLine))
            for line in lines:
                chars: list[tuple[str, Box | None]] = []
                for item in line:
                    if isinstance(item, LTChar):
                        for c in _fold(item.get_text()):
                            chars.append((c, item.bbox))
                    else:
                        chars.append((" ", None))
                hay, boxes = _collapse(chars)
                start = hay.find(needle)
                while start >= 0:
                    hit = [b for b in boxes[start : start + len(needle)] if b is not None]
                    if hit:
                        matches.append(
                            (
                                page_index,
                                (
                                    min(b[0] for b in hit),
                                    min(b[1] for b in hit),
                                    max(b[2] for b in hit),
                                    max(b[3] for b in hit),
                                ),
                            )
                        )
                    start = hay.find(needle, start + 1)
    except InvalidInput:
        raise
    except Exception as exc:  # pdfminer raises many kinds on odd documents
        raise InvalidInput(
            "the PDF's text cannot be read", vi="không đọc được chữ trong PDF"
        ) from exc
    if not matches:
        raise NotFound(f"the text “{text}” in the document", vi=f"dòng chữ “{text}” trong tài liệu")
    try:
        return matches[occurrence]
    except IndexError as exc:
        raise NotFound(
            f"occurrence {occurrence} of “{text}” (found {len(matches)})",
            vi=f"lần xuất hiện {occurrence} của “{text}” (có {len(matches)})",
        ) from exc


def _collapse(chars: list[tuple[str, Box | None]]) -> tuple[str, list[Box | None]]:
    """Normalize white space runs to one space, keeping each character's box."""
    out: list[str] = []
    boxes: list[Box | None] = []
    for c, box in chars:
        if c.isspace():
            if out and out[-1] == " ":
                continue
            out.append(" ")
            boxes.append(None)
        else:
            out.append(c)
            boxes.append(box)
    # NFC may compose characters split across LTChar items: recompose the whole line.
    text = "".join(out)
    composed = unicodedata.normalize("NFC", text)
    if composed != text:
        return composed, _remap(text, composed, boxes)
    return text, boxes


def _remap(text: str, composed: str, boxes: list[Box | None]) -> list[Box | None]:
    result: list[Box | None] = []
    i = 0
    for ch in composed:
        decomposed = unicodedata.normalize("NFD", ch)
        span = 1
        while (
            i + span <= len(text) and unicodedata.normalize("NFD", text[i : i + span]) != decomposed
        ):
            span += 1
        box = boxes[i] if i < len(boxes) else None
        result.append(box)
        i += span if i + span <= len(text) else 1
    return result
