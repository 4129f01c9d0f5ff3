"""Printable hand-over minutes (biên bản bàn giao) of a key storage device, as PDF.

Laid out as Vietnamese administrative papers are (Decree 30/2020/NĐ-CP, Annex I: the
issuing unit top left, the national title and motto top right, place and date, the title in
capitals, the parties, the object, signature blocks), with a Unicode font embedded so every
diacritic prints. The receiver's duties are those of a subscriber under Decree 68/2024/NĐ-CP.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from fpdf import FPDF
from fpdf.enums import XPos, YPos
from sqlalchemy.orm import Session

from kyso import clock
from kyso.registry import devices, organizations
from kyso.registry.access import Principal
from kyso.store.models import DeviceKind, Organization, Person, User
from kyso.store.models import KeyDevice as KeyDeviceRow

TITLE = "BIÊN BẢN BÀN GIAO THIẾT BỊ LƯU KHÓA BÍ MẬT"
_FALLBACK = Path("/usr/share/fonts/truetype/dejavu")
_KIND = {DeviceKind.USB_TOKEN: "USB token", DeviceKind.HSM_SLOT: "Khe HSM"}


def _fonts() -> tuple[Path, Path]:
    """Liberation Serif (Times New Roman metrics, as official papers use) when present,
    otherwise Debian's DejaVu Serif."""
    try:
        from kyso.signing.fonts import SERIF_BOLD, SERIF_REGULAR

        if SERIF_REGULAR.exists():
            return SERIF_REGULAR, SERIF_BOLD if SERIF_BOLD.exists() else SERIF_REGULAR
    except ImportError:  # pragma: no cover - the signing package ships the fonts
        pass
    regular = _FALLBACK / "DejaVuSerif.ttf"
    bold = _FALLBACK / "DejaVuSerif-Bold.ttf"
    return regular, bold if bold.exists() else regular


@dataclass(frozen=True)
class CertLine:
    serial: str
    subject: str
    not_after: datetime


@dataclass(frozen=True)
class Minutes:
    """Everything the paper shows, gathered first so the layout reads no database."""

    reference: str
    at: datetime
    issuer_unit: str
    place: str
    from_name: str
    to_name: str
    to_position: str | None
    to_unit: str | None
    to_id_number: str | None
    device_serial: str
    device_model: str
    device_kind: str
    certificates: Sequence[CertLine]
    note: str | None


def gather(principal: Principal, session: Session, handover_public_id: str) -> Minutes:
    """The contents of one hand-over's minutes (read access to the device is checked)."""
    record, device = devices.get_handover(principal, session, handover_public_id)
    person = session.get(Person, record.to_person_id) if record.to_person_id else None
    unit = session.get(Organization, person.organization_id) if person else None
    recorder = session.get(User, record.recorded_by) if record.recorded_by else None
    issuer = (
        session.get(Organization, recorder.organization_id)
        if (recorder and recorder.organization_id)
        else None
    )
    if issuer is None:
        issuer = _root(session, unit or _device_unit(session, device))
    return Minutes(
        reference=record.public_id,
        at=record.at,
        issuer_unit=issuer.name if issuer else "",
        place=(unit.province if unit and unit.province else issuer.province if issuer else None)
        or "",
        from_name=record.from_name,
        to_name=record.to_name,
        to_position=person.position if person else None,
        to_unit=unit.name if unit else None,
        to_id_number=person.id_number if person else None,
        device_serial=device.serial,
        device_model=device.model,
        device_kind=_KIND.get(device.kind, device.kind.value),
        certificates=[
            CertLine(c.serial, c.subject, c.not_after)
            for c in devices.certificates(session, device)
        ],
        note=record.note,
    )


def _device_unit(session: Session, device: KeyDeviceRow) -> Organization | None:
    return session.get(Organization, device.organization_id) if device.organization_id else None


def _root(session: Session, unit: Organization | None) -> Organization | None:
    if unit is None:
        return None
    chain = organizations.ancestors(session, unit)
    return chain[0] if chain else unit


def handover_pdf(principal: Principal, session: Session, handover_public_id: str) -> bytes:
    return render(gather(principal, session, handover_public_id))


def render(m: Minutes) -> bytes:
    regular, bold = _fonts()
    pdf = FPDF(format="A4")
    pdf.set_title(TITLE)
    pdf.set_creator("kyso")
    pdf.set_margins(20, 15, 15)
    pdf.set_auto_page_break(True, margin=15)
    pdf.add_page()
    pdf.add_font("serif", "", str(regular))
    pdf.add_font("serif", "B", str(bold))
    width = pdf.w - pdf.l_margin - pdf.r_margin
    half = width / 2
    local = clock.local(m.at)

    def line(
        text: str,
        size: float = 13,
        style: str = "",
        align: str = "L",
        h: float = 6.5,
        w: float | None = None,
    ) -> None:
        pdf.set_font("serif", style, size)
        pdf.multi_cell(w or width, h, text, align=align, new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    # Header: the unit (left), the national title and motto (right).
    top = pdf.get_y()
    pdf.set_font("serif", "B", 12)
    pdf.multi_cell(half - 5, 6, m.issuer_unit.upper(), align="C")
    left_bottom = pdf.get_y()
    pdf.set_xy(pdf.l_margin + half - 5, top)
    pdf.multi_cell(
        half + 5,
        6,
        "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM",
        align="C",
        new_x=XPos.LEFT,
        new_y=YPos.NEXT,
    )
    pdf.set_font("serif", "B", 13)
    pdf.multi_cell(
        half + 5, 6, "Độc lập - Tự do - Hạnh phúc", align="C", new_x=XPos.LEFT, new_y=YPos.NEXT
    )
    pdf.set_y(max(left_bottom, pdf.get_y()) + 2)
    place = f"{m.place}, " if m.place else ""
    pdf.set_x(pdf.l_margin + half - 5)
    pdf.set_font("serif", "", 13)
    pdf.multi_cell(
        half + 5,
        6.5,
        f"{place}ngày {local.day:02d} tháng {local.month:02d} năm {local.year}",
        align="C",
        new_x=XPos.LMARGIN,
        new_y=YPos.NEXT,
    )
    pdf.ln(5)

    line(TITLE, 14, "B", "C", 7)
    pdf.ln(3)
    line(
        "Căn cứ Nghị định số 68/2024/NĐ-CP ngày 25 tháng 6 năm 2024 của Chính phủ quy định "
        "về chữ ký số chuyên dùng công vụ;",
        13,
    )
    line(
        f"Hôm nay, vào hồi {local.hour:02d} giờ {local.minute:02d} phút, ngày "
        f"{local.day:02d}/{local.month:02d}/{local.year}, chúng tôi gồm:",
        13,
    )
    pdf.ln(2)
    line("BÊN GIAO:", 13, "B")
    line(f"Đại diện: {m.from_name}")
    pdf.ln(1)
    line("BÊN NHẬN:", 13, "B")
    line(f"Ông/Bà: {m.to_name}")
    if m.to_position:
        line(f"Chức vụ: {m.to_position}")
    if m.to_unit:
        line(f"Đơn vị: {m.to_unit}")
    if m.to_id_number:
        line(f"Số định danh cá nhân (CCCD): {m.to_id_number}")
    pdf.ln(2)
    line("Hai bên đã tiến hành bàn giao thiết bị lưu khóa bí mật như sau:")
    pdf.ln(1)
    _table(
        pdf,
        width,
        [
            ("STT", 0.08),
            ("Loại thiết bị", 0.22),
            ("Số hiệu (serial)", 0.30),
            ("Kiểu (model)", 0.30),
            ("Số lượng", 0.10),
        ],
        [["1", m.device_kind, m.device_serial, m.device_model, "01"]],
    )
    pdf.ln(3)
    if m.certificates:
        line("Chứng thư số lưu trên thiết bị:")
        pdf.ln(1)
        _table(
            pdf,
            width,
            [("STT", 0.07), ("Số hiệu chứng thư", 0.42), ("Chủ thể", 0.35), ("Hiệu lực đến", 0.16)],
            [
                [str(i), c.serial, c.subject, clock.local(c.not_after).strftime("%d/%m/%Y")]
                for i, c in enumerate(m.certificates, start=1)
            ],
            size=9.5,
        )
    else:
        line("Chứng thư số lưu trên thiết bị: chưa có.")
    pdf.ln(3)
    line("Trách nhiệm của bên nhận:", 13, "B")
    for duty in (
        "Quản lý, bảo quản thiết bị lưu khóa bí mật; không giao thiết bị cho người khác sử dụng.",
        "Giữ bí mật mã PIN; đổi mã PIN ngay sau khi nhận thiết bị và định kỳ theo quy định.",
        "Thông báo ngay cho cơ quan quản lý thuê bao khi thiết bị bị mất, bị khóa hoặc khi khóa "
        "bí mật có nguy cơ bị lộ, để tạm dừng hoặc thu hồi chứng thư số.",
    ):
        line(f"- {duty}")
    if m.note:
        pdf.ln(1)
        line(f"Ghi chú: {m.note}")
    pdf.ln(2)
    line("Biên bản được lập thành 02 bản có giá trị như nhau, mỗi bên giữ 01 bản.")
    pdf.ln(6)
    if pdf.get_y() > pdf.h - 70:
        pdf.add_page()
    top = pdf.get_y()
    for index, (party, name) in enumerate((("BÊN GIAO", m.from_name), ("BÊN NHẬN", m.to_name))):
        x = pdf.l_margin + index * half
        pdf.set_xy(x, top)
        pdf.set_font("serif", "B", 13)
        pdf.cell(half, 6.5, party, align="C", new_x=XPos.LEFT, new_y=YPos.NEXT)
        pdf.set_font("serif", "", 12)
        pdf.cell(half, 6, "(Ký, ghi rõ họ tên)", align="C", new_x=XPos.LEFT, new_y=YPos.NEXT)
        pdf.set_y(pdf.get_y() + 25)
        pdf.set_x(x)
        pdf.set_font("serif", "B", 13)
        pdf.multi_cell(half, 6.5, name, align="C")
    pdf.ln(8)
    line(f"Mã biên bản: {m.reference}", 9)
    return bytes(pdf.output())


def _table(
    pdf: FPDF,
    width: float,
    columns: list[tuple[str, float]],
    rows: list[list[str]],
    size: float = 11,
) -> None:
    with pdf.table(
        col_widths=tuple(share for _, share in columns),
        width=width,
        line_height=6,
        text_align="CENTER",
        first_row_as_headings=True,
    ) as table:
        pdf.set_font("serif", "B", 11)
        head = table.row()
        for title, _ in columns:
            head.cell(title)
        pdf.set_font("serif", "", size)
        for values in rows:
            row = table.row()
            for value in values:
                row.cell(value)
