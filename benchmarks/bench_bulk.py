"""Bulk issuance benchmark: the plan's 2018 batch — 1,300 individual certificates for the
leaders of education and health units — from an XLSX upload to issued, end to end, beside
the CA's raw batch rate (``issue_many`` of the same number of specs) measured in the same run.

    python benchmarks/bench_bulk.py                 # SQLite in a temp dir, lint on and off
    python benchmarks/bench_bulk.py --rows 650 --lint on --database-url postgresql+psycopg://…

Prints one table. The target is < 30 s end to end for 1,300 rows; the ratio to the raw rate
is the figure that survives this noisy 2-core machine (see PERFORMANCE.md).
"""

from __future__ import annotations

import argparse
import io
import secrets
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec
from openpyxl import Workbook

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kyso import clock
from kyso.context import Context
from kyso.lifecycle import bulk, subjects
from kyso.pki import bootstrap, issuance
from kyso.registry import organizations
from kyso.registry.access import Principal, cli_principal
from kyso.registry.fields import cccd_prefix
from kyso.settings import Settings
from kyso.store.models import IdentityRole, Organization, OrgKind, Profile, Role, Sector, User

HEADERS = [
    "STT",
    "Họ và tên",
    "Ngày sinh",
    "Số CCCD",
    "Ngày cấp",
    "Nơi cấp",
    "Thư điện tử công vụ",
    "Cơ quan, đơn vị",
    "Tỉnh/Thành phố",
    "Chức vụ",
    "Số điện thoại di động",
]
SURNAMES = ["Nguyễn", "Trần", "Hoàng", "Nông", "Triệu", "Hà", "Lý", "Ma", "Đàm", "Lục", "Hứa"]
GIVEN = [
    "Văn An",
    "Thị Bình",
    "Đức Cường",
    "Thị Dung",
    "Văn Giang",
    "Thị Hạnh",
    "Minh Khoa",
    "Thị Lan",
    "Văn Mạnh",
    "Thị Nga",
    "Quốc Phong",
    "Thị Quyên",
]
UNITS = [
    f"Trường Tiểu học xã {n}"
    for n in (
        "Chu Hương",
        "Mỹ Phương",
        "Hà Hiệu",
        "Quảng Khê",
        "Khang Ninh",
        "Cao Thượng",
        "Nam Mẫu",
        "Đồng Phúc",
    )
]
UNITS += [
    f"Trạm Y tế xã {n}"
    for n in (
        "Chu Hương",
        "Mỹ Phương",
        "Hà Hiệu",
        "Quảng Khê",
        "Khang Ninh",
        "Cao Thượng",
        "Nam Mẫu",
        "Đồng Phúc",
    )
]


@dataclass
class Row:
    measure: str
    seconds: float
    count: int
    raw: float | None = None

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0


ROWS: list[Row] = []


def note(text: str) -> None:
    print(f"  {text}", file=sys.stderr, flush=True)


def open_ctx(home: Path, database_url: str | None, lint: bool) -> Context:
    env = {
        "KYSO_HOME": str(home),
        "KYSO_KEYSTORE_PASSPHRASE": "bench-passphrase",
        "KYSO_LINT_ON_ISSUE": "1" if lint else "0",
    }
    if database_url:
        env["KYSO_DATABASE_URL"] = database_url
    return Context(Settings.from_env(env))


def setup(ctx: Context) -> tuple[Principal, Principal, str]:
    ctx.db.migrate()
    with ctx.db.session() as session:
        bootstrap.initialize(
            session,
            ctx.authority,
            ctx.keystore,
            names=bootstrap.CaNames.for_organization("UBND tỉnh Bắc Kạn", "Bắc Kạn"),
        )
    cli = cli_principal("bench")
    with ctx.db.session() as session:
        province = organizations.create(
            cli,
            session,
            organizations.OrgInput(
                "UBND tỉnh Bắc Kạn", OrgKind.PROVINCE, Sector.GOVERNMENT, province="Bắc Kạn"
            ),
        )
        district = organizations.create(
            cli,
            session,
            organizations.OrgInput(
                "UBND huyện Ba Bể", OrgKind.DISTRICT, Sector.GOVERNMENT, parent=province.public_id
            ),
        )
        for name in UNITS:
            organizations.create(
                cli,
                session,
                organizations.OrgInput(
                    name,
                    OrgKind.SCHOOL if "Trường" in name else OrgKind.HEALTH_STATION,
                    Sector.EDUCATION if "Trường" in name else Sector.HEALTH,
                    parent=district.public_id,
                ),
            )
        now = clock.now()
        users = {}
        for key, role, org in (
            ("officer", Role.UNIT_OFFICER, district),
            ("admin", Role.PROVINCE_ADMIN, province),
        ):
            user = User(
                public_id=secrets.token_hex(8),
                username=f"bench-{key}",
                full_name=key,
                email=f"{key}@backan.gov.vn",
                password_hash="!",
                role=role,
                organization_id=org.id,
                password_changed_at=now,
                created_at=now,
                active=True,
                failed_logins=0,
            )
            session.add(user)
            session.flush()
            users[key] = Principal(
                actor=f"user:bench-{key}",
                role=role,
                user_id=user.id,
                organization_id=org.id,
                org_path=org.path,
            )
        return users["officer"], users["admin"], district.public_id


def workbook(count: int, salt: int) -> bytes:
    book = Workbook()
    sheet = book.active
    sheet.append(["DANH SÁCH ĐỀ NGHỊ CẤP CHỨNG THƯ SỐ CÁ NHÂN (Mẫu 01)"])
    sheet.append(HEADERS)
    for n in range(count):
        born = date(1960 + n % 35, 1 + n % 12, 1 + n % 28)
        sheet.append(
            [
                n + 1,
                f"{SURNAMES[n % len(SURNAMES)]} {GIVEN[(n // 7) % len(GIVEN)]} {salt}{n}",
                born.strftime("%d/%m/%Y"),
                cccd_prefix(born, n % 2 == 1) + f"{(salt * 100_000 + n) % 10**6:06d}",
                "20/05/2021",
                "Cục Cảnh sát QLHC về TTXH",
                f"cb{salt}x{n}@backan.gov.vn",
                UNITS[n % len(UNITS)],
                "Bắc Kạn",
                "Hiệu trưởng" if "Trường" in UNITS[n % len(UNITS)] else "Trưởng trạm",
                f"09{(salt * 7 + n) % 10**8:08d}",
            ]
        )
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def raw_sign_rate(ctx: Context, seconds: float = 1.5) -> float:
    """The issuing CA's own key signing in a loop: the ceiling of any issuance."""
    key = ctx.authority.identity(IdentityRole.ISSUING).key
    hash_algorithm = key.algorithm.default_hash()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        key.sign(b"x" * 1200, hash_algorithm)
        n += 1
    return n / (time.perf_counter() - start)


def raw_issue_many(ctx: Context, count: int) -> float:
    """The CA alone: the same number of specs (EC P-256 keys made beforehand), one call."""
    keys = [ec.generate_private_key(ec.SECP256R1()).public_key() for _ in range(count)]
    unit = Organization(name=UNITS[0])
    parent = Organization(name="UBND huyện Ba Bể")
    specs = []
    for n, key in enumerate(keys):
        name, problems = subjects.individual(
            f"Cán bộ thử {n}",
            subjects.Placement(unit, parent),
            "Bắc Kạn",
            cccd_prefix(date(1970, 1, 1), False) + f"{n:06d}",
        )
        assert name is not None, problems
        specs.append(
            issuance.IssueSpec(
                Profile.INDIVIDUAL, name, key, emails=(f"raw{n}@backan.gov.vn",), key_location="csr"
            )
        )
    start = time.perf_counter()
    with ctx.db.session() as session:
        issuance.issue_many(session, ctx.authority, specs, "bench")
    return time.perf_counter() - start


def bulk_end_to_end(
    ctx: Context,
    officer: Principal,
    admin: Principal,
    unit: str,
    data: bytes,
    count: int,
    label: str,
) -> None:
    start = time.perf_counter()
    with ctx.db.session() as session:
        job = bulk.upload(officer, session, ctx.settings, data, unit=unit).public_id
    uploaded = time.perf_counter()
    with ctx.db.session() as session:
        assert bulk.approve(admin, session, job).approved
    approved = time.perf_counter()
    view = bulk.run(admin, ctx.authority, job)
    finished = time.perf_counter()
    if view.done != count:
        raise SystemExit(f"batch ended {view.state.value} with {view.done}: {view.errors[:3]}")
    raw = next(r for r in ROWS if r.measure.startswith(f"raw issue_many, {label}"))
    ROWS.append(
        Row(f"  upload: read + check {count} rows, create requests", uploaded - start, count)
    )
    ROWS.append(Row("  approve the batch", approved - uploaded, count))
    ROWS.append(
        Row(
            "  run the job: keys (EC P-256) + issue + records", finished - approved, count, raw.rate
        )
    )
    ROWS.append(Row(f"bulk XLSX → issued, end to end, {label}", finished - start, count, raw.rate))


def print_table(count: int) -> None:
    head = ("measure", "seconds", "certs/s", "vs raw issue_many")
    lines = [
        (r.measure, f"{r.seconds:.2f}", f"{r.rate:,.0f}", f"{r.rate / r.raw:.0%}" if r.raw else "")
        for r in ROWS
    ]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(head)]
    print(f"\nBulk issuance of {count} individual certificates (target: < 30 s end to end)\n")
    print("| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for line in lines:
        print(
            "| "
            + " | ".join(
                (c.ljust(w) if i == 0 else c.rjust(w))
                for i, (c, w) in enumerate(zip(line, widths, strict=True))
            )
            + " |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1300)
    parser.add_argument("--lint", choices=("on", "off", "both"), default="both")
    parser.add_argument("--database-url", help="default: a SQLite file in a temp dir")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="kyso-bench-bulk-"))
    try:
        base = open_ctx(tmp / "home", args.database_url, lint=True)
        officer, admin, unit = setup(base)
        signs = raw_sign_rate(base)
        algorithm = base.authority.identity(IdentityRole.ISSUING).key.algorithm.value
        ROWS.append(
            Row(
                f"raw signature with the CA's key ({algorithm}), {args.rows} of them",
                args.rows / signs,
                args.rows,
            )
        )
        modes = {"on": [True], "off": [False], "both": [False, True]}[args.lint]
        for salt, lint in enumerate(modes, start=1):
            label = f"pkilint {'on' if lint else 'off'}"
            ctx = open_ctx(tmp / "home", args.database_url, lint=lint)
            ctx.authority.identity(IdentityRole.ISSUING)  # keys loaded beforehand
            note(f"{label}: raw issue_many of {args.rows} …")
            seconds = raw_issue_many(ctx, args.rows)
            ROWS.append(
                Row(f"raw issue_many, {label} (CA alone, one transaction)", seconds, args.rows)
            )
            data = workbook(args.rows, salt)
            note(f"{label}: bulk upload → issued …")
            bulk_end_to_end(ctx, officer, admin, unit, data, args.rows, label)
            ctx.close()
        base.close()
        backend = "PostgreSQL" if args.database_url else "SQLite"
        print_table(args.rows)
        print(
            f"\n{backend}; CA key RSA-3072 (kyso init's default); "
            f"{base.settings.keystore} key store; keys for rows without a CSR: EC P-256"
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
