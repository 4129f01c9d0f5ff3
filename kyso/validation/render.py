"""The validation report as a page (HTML) and as a document an official can file (PDF).

Times are shown in Vietnam's time zone; the PDF embeds a Unicode serif font so Vietnamese
diacritics print correctly.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from fpdf import FPDF
from jinja2 import Environment, PackageLoader, select_autoescape

from kyso import clock
from kyso.validation.report import SignatureReport, ValidationReport

FONTS = Path(__file__).resolve().parent.parent / "signing" / "fonts"

LABELS = {
    "vi": {
        "title": "Báo cáo xác thực chữ ký số",
        "document": "Tài liệu",
        "validated_at": "kiểm tra lúc",
        "signature": "Chữ ký",
        "indication": "Kết luận (ETSI)",
        "format": "Định dạng",
        "signer": "Người ký",
        "issuer": "Nơi cấp",
        "serial": "số hiệu",
        "claimed_time": "Thời điểm ký (khai báo)",
        "timestamp": "Dấu thời gian",
        "integrity": "Toàn vẹn",
        "chain": "Chuỗi chứng thư",
        "revocation": "Tình trạng thu hồi",
        "changes": "Thay đổi sau khi ký",
        "countersignature": "Chữ ký xác nhận",
        "scope": "Phạm vi chữ ký",
        "notes": "Ghi chú",
        "yes": "Có",
        "no": "Không",
        "trusted": "tin cậy",
        "untrusted": "không tin cậy",
        "TOTAL-PASSED": "HỢP LỆ",
        "TOTAL-FAILED": "KHÔNG HỢP LỆ",
        "INDETERMINATE": "CHƯA XÁC ĐỊNH",
    },
    "en": {
        "title": "Digital signature validation report",
        "document": "Document",
        "validated_at": "checked at",
        "signature": "Signature",
        "indication": "Indication (ETSI)",
        "format": "Format",
        "signer": "Signer",
        "issuer": "Issuer",
        "serial": "serial",
        "claimed_time": "Claimed signing time",
        "timestamp": "Time stamp",
        "integrity": "Integrity",
        "chain": "Certificate chain",
        "revocation": "Revocation status",
        "changes": "Changes after signing",
        "countersignature": "Countersignature",
        "scope": "What the signature covers",
        "notes": "Notes",
        "yes": "Yes",
        "no": "No",
        "trusted": "trusted",
        "untrusted": "not trusted",
        "TOTAL-PASSED": "VALID",
        "TOTAL-FAILED": "NOT VALID",
        "INDETERMINATE": "INDETERMINATE",
    },
}

_env = Environment(
    loader=PackageLoader("kyso.validation", "templates"), autoescape=select_autoescape()
)


def _local(moment: datetime | None) -> str:
    return clock.local(moment).isoformat(timespec="seconds") if moment else "—"


def to_html(report: ValidationReport, lang: str = "vi") -> str:
    lang = lang if lang in LABELS else "vi"
    return _env.get_template("report.html").render(
        report=report, t=LABELS[lang], lang=lang, local=_local
    )


def to_pdf(report: ValidationReport, lang: str = "vi") -> bytes:
    lang = lang if lang in LABELS else "vi"
    t = LABELS[lang]
    pdf = FPDF(format="A4")
    pdf.set_margins(18, 18, 18)
    pdf.add_page()
    pdf.add_font("serif", "", str(FONTS / "LiberationSerif-Regular.ttf"))
    bold = FONTS / "LiberationSerif-Bold.ttf"
    pdf.add_font(
        "serif", "B", str(bold if bold.exists() else FONTS / "LiberationSerif-Regular.ttf")
    )
    width = pdf.w - pdf.l_margin - pdf.r_margin

    def line(text: str, size: float = 11, style: str = "", height: float = 6) -> None:
        pdf.set_font("serif", style, size)
        pdf.multi_cell(width, height, text, new_x="LMARGIN", new_y="NEXT")

    line(t["title"], 16, "B", 9)
    line(f"{t['document']}: {report.document} · {t['validated_at']} {_local(report.validated_at)}")
    pdf.ln(2)
    verdict = report.message_vi if lang == "vi" else report.message_en
    line(f"{t[report.indication.value]} — {verdict}", 13, "B", 7)

    def signature(sig: SignatureReport, number: str, top: bool) -> None:
        pdf.ln(3)
        title = t["signature"] if top else t["countersignature"]
        line(f"{title} {number}: {t[sig.indication.value]}", 12, "B", 7)
        line(sig.message_vi if lang == "vi" else sig.message_en)
        rows = [
            (
                t["indication"],
                sig.indication.value
                + (f" / {sig.sub_indication.value}" if sig.sub_indication else ""),
            ),
            (t["format"], sig.format),
            *((t["scope"], part.description(lang)) for part in sig.scope),
            (t["signer"], sig.signer.subject if sig.signer else "—"),
            (t["claimed_time"], _local(sig.claimed_signing_time)),
            (t["timestamp"], _local(sig.timestamp_time)),
            (t["integrity"], t["yes"] if sig.integrity else t["no"]),
            (t["chain"], t["trusted"] if sig.trusted_chain else t["untrusted"]),
        ]
        if sig.revocation:
            rows.append(
                (
                    t["revocation"],
                    f"{sig.revocation.status.value} — {sig.revocation.source}"
                    + (
                        f", {_local(sig.revocation.revoked_at)}"
                        if sig.revocation.revoked_at
                        else ""
                    ),
                )
            )
        for m in sig.modifications:
            rows.append((t["changes"], ("✓ " if m.allowed else "✗ ") + m.description))
        for note in sig.notes:
            rows.append((t["notes"], note.text(lang)))
        for label, value in rows:
            line(f"{label}: {value}", 10, "", 5)
        for index, counter in enumerate(sig.counter_signatures, start=1):
            signature(counter, f"{number}.{index}", False)

    for index, sig in enumerate(report.signatures, start=1):
        signature(sig, str(index), True)
    return bytes(pdf.output())
