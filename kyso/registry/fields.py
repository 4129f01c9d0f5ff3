"""The registry's field rules, shared by its services and its spreadsheet import.

Each check returns the cleaned value or raises :class:`FieldProblem` naming the field, so a
service turns it into one :class:`~kyso.errors.InvalidInput` and an import turns it into
"row 7, column 'Số CCCD': …" without a second copy of the rule.
"""

from __future__ import annotations

import base64
import re
import secrets
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Generic, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import InstrumentedAttribute, Session

from kyso.errors import InvalidInput
from kyso.textcheck import hidden_character

T = TypeVar("T")


class FieldProblem(ValueError):
    """One field's value is not acceptable (``field`` is the service's attribute name)."""

    def __init__(self, field: str, en: str, vi: str) -> None:
        super().__init__(f"{field}: {en}")
        self.field = field
        self.en = en
        self.vi = vi


class FieldErrors(InvalidInput):
    """Invalid input that says which fields are wrong (an import files them by column)."""

    def __init__(self, problems: Sequence[FieldProblem]) -> None:
        self.problems = list(problems)
        super().__init__(
            "; ".join(f"{p.field}: {p.en}" for p in self.problems),
            vi="; ".join(f"{p.field}: {p.vi}" for p in self.problems),
        )


def invalid(problems: Sequence[FieldProblem]) -> FieldErrors:
    """One error listing every problem found, in the order of the form's fields."""
    return FieldErrors(problems)


class Collector:
    """Runs checks and keeps every problem instead of stopping at the first."""

    def __init__(self) -> None:
        self.problems: list[FieldProblem] = []

    def check(self, check: Callable[[], T]) -> T | None:
        try:
            return check()
        except FieldProblem as problem:
            self.problems.append(problem)
            return None

    def raise_if_any(self) -> None:
        if self.problems:
            raise invalid(self.problems)


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    total: int
    offset: int
    limit: int


def new_public_id() -> str:
    """Opaque, URL-safe, 80 random bits: never a row id in a URL or a body."""
    return base64.b32encode(secrets.token_bytes(10)).decode().lower()


def fold(text: str) -> str:
    """Case- and accent-insensitive form for search: "Bể" and "be" match, as do "Đ" and "d"."""
    decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(stripped.casefold().split())


def text(field: str, value: str | None, *, max_length: int, required: bool = False) -> str | None:
    """Trimmed NFC text (names typed on a Mac arrive decomposed), no control characters and
    no invisible or direction-changing ones (:mod:`kyso.textcheck`)."""
    if value is None or not str(value).strip():
        if required:
            raise FieldProblem(field, "is required", "bắt buộc phải có")
        return None
    cleaned = unicodedata.normalize("NFC", " ".join(str(value).split()))
    hidden = hidden_character(cleaned)
    if hidden is not None:
        raise FieldProblem(
            field,
            f"contains a control or invisible character ({hidden})",
            f"chứa ký tự điều khiển hoặc ký tự ẩn ({hidden})",
        )
    if len(cleaned) > max_length:
        raise FieldProblem(
            field, f"is longer than {max_length} characters", f"dài quá {max_length} ký tự"
        )
    return cleaned


# RFC 5321 mailbox, dot-atom local part, host name of two labels or more: the subset that fits
# an rfc822Name in a certificate (pkilint refuses the rest).
_MAILBOX = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
)


def email(field: str, value: str | None) -> str | None:
    cleaned = text(field, value, max_length=200)
    if cleaned is None:
        return None
    local, _, domain = cleaned.partition("@")
    if not _MAILBOX.fullmatch(cleaned) or len(local) > 64 or len(domain) > 253:
        raise FieldProblem(
            field,
            "is not an e-mail address such as ten.ho@backan.gov.vn",
            "không phải địa chỉ thư điện tử dạng ten.ho@backan.gov.vn",
        )
    return f"{local}@{domain.lower()}"


# Vietnamese mobile numbers: ten digits, 0 then 3/5/7/8/9 since the 2018 renumbering
# (Decision 798/QĐ-BTTTT); +84 / 84 are the country-code forms of the same number.
_MOBILE = re.compile(r"0[35789]\d{8}")


def mobile(field: str, value: str | None) -> str | None:
    cleaned = text(field, value, max_length=30)
    if cleaned is None:
        return None
    digits = re.sub(r"[\s.\-()]", "", cleaned)
    if digits.startswith("+84"):
        digits = "0" + digits[3:]
    elif digits.startswith("84") and len(digits) == 11:
        digits = "0" + digits[2:]
    if not _MOBILE.fullmatch(digits):
        raise FieldProblem(
            field,
            "is not a Vietnamese mobile number (10 digits, e.g. 0912 345 678 or +84 912 345 678)",
            "không phải số di động Việt Nam (10 chữ số, ví dụ 0912 345 678 hoặc +84 912 345 678)",
        )
    return digits


def phone(field: str, value: str | None) -> str | None:
    """A landline or mobile as written (digits, spaces, dots, dashes, + and brackets)."""
    cleaned = text(field, value, max_length=40)
    if cleaned is not None and not re.fullmatch(r"[0-9+][0-9 .\-()]{5,39}", cleaned):
        raise FieldProblem(field, "is not a telephone number", "không phải số điện thoại")
    return cleaned


# Province codes of the 12-digit citizen identity number (Circular 07/2016/TT-BCA, Annex;
# the first three digits are the province where the birth was registered, 006 = Bắc Kạn).
CCCD_PROVINCES = frozenset(
    {
        "001",
        "002",
        "004",
        "006",
        "008",
        "010",
        "011",
        "012",
        "014",
        "015",
        "017",
        "019",
        "020",
        "022",
        "024",
        "025",
        "026",
        "027",
        "030",
        "031",
        "033",
        "034",
        "035",
        "036",
        "037",
        "038",
        "040",
        "042",
        "044",
        "045",
        "046",
        "048",
        "049",
        "051",
        "052",
        "054",
        "056",
        "058",
        "060",
        "062",
        "064",
        "066",
        "067",
        "068",
        "070",
        "072",
        "074",
        "075",
        "077",
        "079",
        "080",
        "082",
        "083",
        "084",
        "086",
        "087",
        "089",
        "091",
        "092",
        "093",
        "094",
        "095",
        "096",
    }
)


def cccd(field: str, value: str | None, date_of_birth: date | None = None) -> str | None:
    """The citizen identity number (CCCD, 12 digits; the 9-digit CMND ceased on 31/12/2024
    under the Law on Identification 2023, Art. 46).

    Digits 1–3 are the province code, digit 4 encodes century and sex (0/1 for 1900–1999,
    2/3 for 2000–2099, …), digits 5–6 the last two digits of the year of birth: when the
    date of birth is known, both must agree with it."""
    cleaned = text(field, value, max_length=20)
    if cleaned is None:
        return None
    digits = cleaned.replace(" ", "").replace(".", "")
    if not re.fullmatch(r"\d{12}", digits):
        raise FieldProblem(
            field,
            "must be the 12 digits of the citizen identity card (CCCD)",
            "phải gồm đúng 12 chữ số của căn cước công dân (CCCD)",
        )
    if digits[:3] not in CCCD_PROVINCES:
        raise FieldProblem(
            field,
            f"starts with {digits[:3]}, which is no province code",
            f"bắt đầu bằng {digits[:3]}, không phải mã tỉnh",
        )
    if date_of_birth is not None:
        century = 1900 + 100 * (int(digits[3]) // 2)
        year = century + int(digits[4:6])
        if year != date_of_birth.year:
            raise FieldProblem(
                field,
                f"encodes the year of birth {year}, not {date_of_birth.year}",
                f"mã hóa năm sinh {year}, không khớp năm sinh {date_of_birth.year}",
            )
    return digits


def cccd_prefix(date_of_birth: date, female: bool, province: str = "006") -> str:
    """The first six digits a CCCD for this person carries (for demo data and tests)."""
    century_digit = 2 * ((date_of_birth.year - 1900) // 100) + (1 if female else 0)
    return f"{province}{century_digit}{date_of_birth.year % 100:02d}"


# Tax code (mã số thuế): 10 digits, or 10 + "-" + 3 for a dependent unit (Circular
# 105/2020/TT-BTC, Art. 5). Budget-relationship code (mã quan hệ ngân sách): 7 digits
# (Circular 185/2015/TT-BTC).
def tax_code(field: str, value: str | None) -> str | None:
    cleaned = text(field, value, max_length=20)
    if cleaned is not None and not re.fullmatch(r"\d{10}(-\d{3})?", cleaned):
        raise FieldProblem(
            field,
            "must be 10 digits, or 10 digits, a dash and 3 digits",
            "phải gồm 10 chữ số, hoặc 10 chữ số, dấu gạch và 3 chữ số",
        )
    return cleaned


def budget_code(field: str, value: str | None) -> str | None:
    cleaned = text(field, value, max_length=20)
    if cleaned is not None and not re.fullmatch(r"\d{7}", cleaned):
        raise FieldProblem(field, "must be 7 digits", "phải gồm 7 chữ số")
    return cleaned


# State agency identifier (mã định danh) as in the electronic document exchange
# (QCVN 102:2016/BTTTT, Decision 20/2020/QĐ-TTg): four groups read right to left, level 1 a
# letter and two digits, then 2, 2 and 3 digits, e.g. 000.00.00.G22.
_AGENCY_CODE = re.compile(r"\d{3}\.\d{2}\.\d{2}\.[A-Z]\d{2}")


def agency_code(field: str, value: str | None) -> str | None:
    cleaned = text(field, value, max_length=40)
    if cleaned is None:
        return None
    cleaned = cleaned.upper()
    if not _AGENCY_CODE.fullmatch(cleaned):
        raise FieldProblem(
            field,
            "is not an agency identifier such as 000.00.00.G22",
            "không phải mã định danh dạng 000.00.00.G22",
        )
    return cleaned


def past_date(field: str, value: date | None, today: date) -> date | None:
    if value is None:
        return None
    if value > today:
        raise FieldProblem(field, "is in the future", "ở tương lai")
    if value.year < 1900:
        raise FieldProblem(field, "is before 1900", "trước năm 1900")
    return value


def password_problem(password: str, username: str) -> FieldProblem | None:
    """The password policy: at least 10 characters, not the user name; at most 256 (a longer
    one only makes each Argon2 hash an easy way to load the server)."""
    if len(password) < 10:
        return FieldProblem(
            "password", "must have at least 10 characters", "phải có ít nhất 10 ký tự"
        )
    if len(password) > 256:
        return FieldProblem("password", "is longer than 256 characters", "dài quá 256 ký tự")
    if username and username.casefold() in password.casefold():
        return FieldProblem(
            "password", "must not contain the user name", "không được chứa tên đăng nhập"
        )
    if len(set(password)) < 4:
        return FieldProblem(
            "password", "uses too few different characters", "dùng quá ít ký tự khác nhau"
        )
    return None


def taken(
    session: Session,
    column: InstrumentedAttribute[Any],
    value: object | None,
    *,
    other_than: tuple[InstrumentedAttribute[int], int] | None = None,
) -> bool:
    """Whether a unique value (an agency code, a CCCD number) already belongs to a row —
    other than the row being edited, named by ``other_than=(id column, id)``."""
    if value is None:
        return False
    query = select(column).where(column == value)
    if other_than is not None:
        id_column, own_id = other_than
        query = query.where(id_column != own_id)
    return session.execute(query.limit(1)).first() is not None
