"""A stamp described the way people ask for one (command-line flags, form fields).

The CLI and the HTTP API take the same plain options; this turns them into an
:class:`~kyso.signing.stamps.Appearance` with its :class:`~kyso.signing.placement.Placement`,
so the two entry points cannot disagree about what a stamp means.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

from kyso.errors import InvalidInput
from kyso.signing.placement import Placement
from kyso.signing.stamps import Appearance, StampKind


@dataclass
class StampOptions:
    kind: StampKind | None = None
    page: int | None = None  # 1-based, as people count pages
    box: str | None = None  # "X1,Y1,X2,Y2" in PDF points from the bottom left
    field: str | None = None
    anchor: str | None = None
    title: str | None = None
    name: str | None = None
    number: str | None = None
    date: str | None = None
    copy_kind: str | None = None
    copying_org: str | None = None
    received_number: str | None = None
    received_date: str | None = None  # dd/mm/yyyy or yyyy-mm-dd, as the clerk writes it
    receiving_org: str | None = None
    image: bytes | None = None
    seal: bytes | None = None


def _box(text: str) -> tuple[float, float, float, float]:
    try:
        x1, y1, x2, y2 = (float(part) for part in text.split(","))
    except ValueError as exc:
        raise InvalidInput(
            "--box takes X1,Y1,X2,Y2 in points", vi="--box cần X1,Y1,X2,Y2 (điểm)"
        ) from exc
    return x1, y1, x2, y2


def _day(text: str | None) -> _dt.date | None:
    """A date typed by a person: 27/11/2026 or 2026-11-27."""
    if text is None or not text.strip():
        return None
    for pattern in ("%d/%m/%Y", "%Y-%m-%d"):
        try:
            return _dt.datetime.strptime(text.strip(), pattern).date()
        except ValueError:
            continue
    raise InvalidInput(
        f"'{text}' is not a date (dd/mm/yyyy)", vi=f"'{text}' không phải ngày (dd/mm/yyyy)"
    )


def placement(options: StampOptions) -> Placement | None:
    chosen = [x for x in (options.box, options.field, options.anchor) if x]
    if len(chosen) > 1:
        raise InvalidInput(
            "place the stamp by one of box, field or anchor",
            vi="chọn một cách đặt dấu: hộp, trường ký hoặc văn bản neo",
        )
    page = None if options.page is None else options.page - 1
    if page is not None and page < 0:
        raise InvalidInput("pages are counted from 1", vi="số trang tính từ 1")
    if options.box:
        return Placement.at(page or 0, _box(options.box))
    if options.field:
        return Placement.in_field(options.field)
    if options.anchor:
        return Placement.by_anchor(options.anchor, page=page)
    return None


def appearance(options: StampOptions) -> Appearance | None:
    """None for an invisible signature (no kind asked for)."""
    if options.kind is None:
        if any((options.box, options.field, options.anchor, options.image, options.seal)):
            raise InvalidInput(
                "choose --kind for a visible stamp", vi="chọn --kind cho chữ ký hiển thị"
            )
        return None
    where = placement(options)
    if where is None and options.kind in (StampKind.ATTACHMENT, StampKind.COPY):
        where = Placement.top_right()  # Decree 30/2020 Annex I: top right of the first page
    look = Appearance(
        kind=options.kind,
        placement=where,
        position_title=options.title,
        full_name=options.name,
        number=options.number,
        date=options.date,
        copy_kind=options.copy_kind,
        copying_org=options.copying_org,
        received_number=options.received_number,
        received_date=_day(options.received_date),
        receiving_org=options.receiving_org,
        signature_image=options.image,
        seal_image=options.seal,
    )
    look.check()
    return look
