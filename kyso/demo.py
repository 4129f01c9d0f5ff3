"""Demo data for `kyso init --demo`: the Bắc Kạn tree of units, a few hundred subscribers,
users (one per role, and a leader and a records clerk of Ba Bể who sign with keys in the
central signing HSM) and a stock of key devices, some of them handed over.

Remote signing: the Ba Bể leader (``lanhdao``) has an individual certificate and the
district its seal with keys made in the central HSM (the software stand-in of
:mod:`kyso.remote.central` unless ``KYSO_HSM_MODULE`` is set), both through the ordinary
request workflow; the district's clerk (``vanthu``) is the seal's delegate. Both have the
PIN + TOTP fallback enrolled to approve each signature; the PIN and the TOTP secret are
printed with the passwords (demo only).

Everything but the passwords and TOTP secrets is deterministic (a seeded generator), so two
demo instances list the same people; the secrets are random and are printed once and written
to ``$KYSO_HOME/demo-users.txt`` (mode 0600). Agency codes, tax codes, identity numbers and
phone numbers are made up in the right formats: this is not an official list.
"""

from __future__ import annotations

import csv
import os
import random
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from kyso import clock
from kyso.audit.log import Event, record
from kyso.context import Context
from kyso.errors import Conflict
from kyso.keys.base import KeyAlgorithm
from kyso.lifecycle import workflow
from kyso.lifecycle.forms import KeySource
from kyso.registry import devices, organizations, people, totp, users
from kyso.registry import fields as f
from kyso.registry.access import Principal, cli_principal
from kyso.remote import delegates, factors
from kyso.store.models import (
    Certificate,
    DeviceKind,
    Organization,
    OrgKind,
    Person,
    RequestType,
    Role,
    Sector,
    User,
)

UNITS_CSV = Path(__file__).resolve().parent / "data" / "backan-demo-units.csv"
SEED = 20170616  # the day of Decision 832/QĐ-UBND
PROVINCE = "Bắc Kạn"
DOMAIN = "backan.gov.vn"
CODE_SUFFIX = "H06"  # demo level-1 code: 06 is Bắc Kạn's administrative code

KINDS = {
    "province": OrgKind.PROVINCE,
    "department": OrgKind.DEPARTMENT,
    "district": OrgKind.DISTRICT,
    "commune": OrgKind.COMMUNE,
    "hospital": OrgKind.HOSPITAL,
    "health-centre": OrgKind.HEALTH_CENTRE,
    "clinic": OrgKind.HEALTH_STATION,
    "school": OrgKind.SCHOOL,
    "association": OrgKind.ASSOCIATION,
}
SECTORS = {
    "government": Sector.GOVERNMENT,
    "health": Sector.HEALTH,
    "education": Sector.EDUCATION,
    "front": Sector.PARTY_FRONT,
}


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# Family names as they occur in Bắc Kạn (Kinh, Tày, Nùng, Dao), commoner ones repeated.
HO = _words(
    "Nguyễn Nguyễn Nguyễn Hoàng Hoàng Nông Nông Hà Hà Triệu Triệu Lý Ma Bế Lục Đàm Dương "
    "Trần Lê Phạm Lường Hứa Chu Đinh Vi Mông Lèo Phùng"
)
DEM_NAM = _words("Văn Văn Văn Đức Minh Quang Hữu Xuân Thanh Ngọc Công Trung Tiến")
DEM_NU = _words("Thị Thị Thị Thu Thanh Ngọc Hồng Minh Thùy Phương Kim")
TEN_NAM = _words(
    "An Bình Cường Dũng Đạt Hải Hùng Khánh Long Minh Nam Phong Quân Sơn Thắng Toàn "
    "Trung Tuấn Việt Vinh Hiếu Kiên Thành Lâm Tùng"
)
TEN_NU = _words(
    "Anh Chi Dung Giang Hà Hằng Hoa Hương Lan Liên Linh Mai Nga Ngọc Nhung Phương "
    "Thảo Thủy Trang Yến Huyền Vân Thơm"
)
MOBILE_PREFIXES = _words(
    "091 094 088 083 084 085 081 082 096 097 098 086 032 033 034 035 036 037 "
    "038 039 070 079 077 076 078 089 090 093 056 058"
)
ID_ISSUER = "Cục Cảnh sát quản lý hành chính về trật tự xã hội"  # CCCD issuer 2021–06/2024
TOKEN_MODELS = ("ePass2003 (Ban Cơ yếu Chính phủ)", "SafeNet eToken 5110 CC", "Token BCY-USB v2")


@dataclass(frozen=True)
class DemoUser:
    username: str
    role: Role
    unit: str
    password: str
    totp_secret: str | None
    totp_uri: str | None
    signing_pin: str | None = None  # the PIN + TOTP fallback for approving central signatures


@dataclass(frozen=True)
class DemoData:
    organizations: int
    people: int
    devices: int
    users: list[DemoUser]
    credentials_file: Path
    certificates: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "organizations": self.organizations,
            "people": self.people,
            "devices": self.devices,
            "certificates": self.certificates,
            "credentials_file": str(self.credentials_file),
            "users": [
                {
                    "username": u.username,
                    "role": u.role.value,
                    "unit": u.unit,
                    "password": u.password,
                    "totp_secret": u.totp_secret,
                    "signing_pin": u.signing_pin,
                }
                for u in self.users
            ],
        }


@dataclass(frozen=True)
class _UnitRow:
    name: str
    parent: str | None
    kind: OrgKind
    sector: Sector


def read_units(path: Path = UNITS_CSV) -> list[_UnitRow]:
    with path.open(encoding="utf-8", newline="") as handle:
        return [
            _UnitRow(r["name"], r["parent"] or None, KINDS[r["kind"]], SECTORS[r["sector"]])
            for r in csv.DictReader(handle)
        ]


def _locality(name: str) -> str | None:
    """ "UBND xã Khang Ninh" → "xã Khang Ninh": the place an UBND unit governs."""
    return name[5:] if name.startswith("UBND ") else None


def _slug(name: str) -> str:
    words = f.fold(name).replace(",", " ").split()
    if words and words[0] == "ubnd":
        words = words[1:]
    if len(words) <= 2:
        return "".join(words)
    return "".join(w[0] for w in words[:-2]) + "".join(words[-2:])


def _password() -> str:
    return secrets.token_urlsafe(12)


def load_demo(ctx: Context, actor: str) -> DemoData:
    """Fill an empty registry with the demo province. Refuses if any unit exists."""
    rng = random.Random(SEED)  # noqa: S311 (repeatable demo names, not secrets)
    principal = cli_principal(actor)
    with ctx.db.session() as session:
        if session.execute(select(Organization.id).limit(1)).first():
            raise Conflict(
                "the registry already has units; the demo needs an empty one",
                vi="danh bạ đã có đơn vị; dữ liệu mẫu cần danh bạ trống",
            )
        units = _load_units(principal, session)
        persons = _load_people(principal, session, units, rng)
        demo_users = _load_users(principal, session, units, persons)
        device_count = _load_devices(principal, session, units, persons, rng)
        # A registry-only instance (no CA yet) gets the units, people and users alone.
        issued = (
            _load_certificates(ctx, session, units, persons, rng)
            if ctx.authority.is_initialized()
            else 0
        )
        record(
            session,
            Event(
                actor,
                "demo.loaded",
                None,
                {
                    "organizations": len(units),
                    "people": len(persons),
                    "devices": device_count,
                    "certificates": issued,
                },
            ),
        )
    path = ctx.settings.home / "demo-users.txt"
    _write_credentials(path, demo_users)
    return DemoData(len(units), len(persons), device_count, demo_users, path, issued)


def _load_units(principal: Principal, session: Session) -> dict[str, Organization]:
    rows = read_units()
    index: dict[str, int] = {}
    locality: dict[str, str] = {}
    children: dict[str, int] = {}
    codes: dict[str, list[str]] = {}  # name → the code's groups, right to left
    emails: set[str] = set()
    batch: list[tuple[organizations.OrgInput, int | None]] = []
    for number, row in enumerate(rows, start=1):
        if row.parent is not None and row.parent not in index:
            raise ValueError(f"{UNITS_CSV.name}: '{row.name}' comes before its parent")
        place = _locality(row.name)
        chain = [place] if place else []
        if row.parent:
            chain += [p for p in locality[row.parent].split(", ") if p not in chain]
        locality[row.name] = ", ".join(chain) or f"tỉnh {PROVINCE}"
        groups = _code_groups(row, codes, children)
        slug = _slug(row.name)
        email, suffix = f"{slug}@{DOMAIN}", 2
        while email in emails:
            email, suffix = f"{slug}{suffix}@{DOMAIN}", suffix + 1
        emails.add(email)
        data = organizations.OrgInput(
            name=row.name,
            kind=row.kind,
            sector=row.sector,
            code=_format_code(groups) if groups else None,
            address=locality[row.name],
            province=PROVINCE,
            tax_code=f"47000{number:05d}",
            budget_code=f"10{number:05d}",
            email=email,
            phone=f"0209 3{number:06d}",
        )
        index[row.name] = len(batch)
        batch.append((organizations.clean(data), index[row.parent] if row.parent else None))
    made = organizations.create_many(principal, session, batch)
    return {row.name: made[index[row.name]] for row in rows}


def _code_groups(
    row: _UnitRow, codes: dict[str, list[str]], children: dict[str, int]
) -> list[str] | None:
    """Demo agency codes with the shape of 000.00.00.H06: the province is 000.00.00.H06, its
    units 000.00.NN.H06, theirs 000.MM.NN.H06, theirs KKK.MM.NN.H06 (deeper: none)."""
    if row.parent is None:
        codes[row.name] = [CODE_SUFFIX]
        return codes[row.name]
    above = codes.get(row.parent)
    if above is None or len(above) >= 4:
        return None
    children[row.parent] = children.get(row.parent, 0) + 1
    width = 3 if len(above) == 3 else 2
    codes[row.name] = [*above, f"{children[row.parent]:0{width}d}"]
    return codes[row.name]


def _format_code(groups: list[str]) -> str:
    level1, *rest = groups
    widths = (2, 2, 3)
    filled = [*rest, *["0" * widths[i] for i in range(len(rest), 3)]]
    return f"{filled[2]}.{filled[1]}.{filled[0]}.{level1}"


def _positions(row: Organization) -> list[str]:
    name = row.name
    if row.kind is OrgKind.PROVINCE:
        return [
            "Chủ tịch UBND tỉnh",
            "Phó Chủ tịch UBND tỉnh",
            "Phó Chủ tịch UBND tỉnh",
            "Chánh Văn phòng UBND tỉnh",
        ]
    if row.kind is OrgKind.DISTRICT:
        return ["Chủ tịch UBND", "Phó Chủ tịch UBND", "Phó Chủ tịch UBND", "Văn thư"]
    if row.kind is OrgKind.COMMUNE:
        return ["Chủ tịch UBND", "Phó Chủ tịch UBND", "Văn thư"]
    if row.kind is OrgKind.SCHOOL:
        return ["Hiệu trưởng"]
    if row.kind is OrgKind.HEALTH_STATION:
        return ["Trạm trưởng, Bác sỹ"]
    if row.kind is OrgKind.HOSPITAL:
        return ["Giám đốc", "Phó Giám đốc"] + ["Bác sỹ"] * 6 + ["Văn thư"]
    if row.kind is OrgKind.HEALTH_CENTRE:
        return ["Giám đốc", "Bác sỹ", "Bác sỹ"]
    if row.kind is OrgKind.ASSOCIATION:
        return ["Chủ tịch"] if not name.startswith("Tỉnh Đoàn") else ["Bí thư"]
    if name.startswith("Sở"):
        return ["Giám đốc", "Phó Giám đốc", "Chánh Văn phòng", "Văn thư"]
    if name.startswith("Phòng"):
        return ["Trưởng phòng", "Phó Trưởng phòng"]
    if name.startswith("Văn phòng"):
        return ["Chánh Văn phòng", "Văn thư"]
    if name.startswith("Thanh tra"):
        return ["Chánh Thanh tra", "Văn thư"]
    if name.startswith("Ban"):
        return ["Trưởng ban", "Văn thư"]
    return ["Thủ trưởng", "Văn thư"]


def _load_people(
    principal: Principal, session: Session, units: dict[str, Organization], rng: random.Random
) -> list[Person]:
    batch: list[tuple[people.PersonInput, Organization]] = []
    used_ids: set[str] = set()
    used_mail: set[str] = set()
    for org in units.values():
        for position in _positions(org):
            female = rng.random() < 0.45
            ho = rng.choice(HO)
            dem = rng.choice(DEM_NU if female else DEM_NAM)
            ten = rng.choice(TEN_NU if female else TEN_NAM)
            born = date(1965, 1, 1) + timedelta(days=rng.randrange(365 * 30))
            province = "006" if rng.random() < 0.85 else rng.choice(["001", "004", "019", "020"])
            id_number = f.cccd_prefix(born, female, province) + f"{rng.randrange(10**6):06d}"
            while id_number in used_ids:
                id_number = id_number[:6] + f"{rng.randrange(10**6):06d}"
            used_ids.add(id_number)
            local = f.fold(ten).replace(" ", "") + "".join(
                w[0] for w in f.fold(f"{ho} {dem}").split()
            )
            mail, n = f"{local}@{DOMAIN}", 2
            while mail in used_mail:
                mail, n = f"{local}{n}@{DOMAIN}", n + 1
            used_mail.add(mail)
            data = people.PersonInput(
                full_name=f"{ho} {dem} {ten}",
                organization=org.public_id,
                date_of_birth=born,
                id_number=id_number,
                id_issue_date=date(2021, 1, 1) + timedelta(days=rng.randrange(1200)),
                id_issue_place=ID_ISSUER,
                position=position,
                email=mail,
                mobile=rng.choice(MOBILE_PREFIXES) + f"{rng.randrange(10**7):07d}",
            )
            batch.append((people.clean(data), org))
    return people.insert_many(principal, session, batch)


def _load_users(
    principal: Principal,
    session: Session,
    units: dict[str, Organization],
    persons: list[Person],
) -> list[DemoUser]:
    signer_unit = units["UBND xã Khang Ninh"]
    signer_person = next(p for p in persons if p.organization_id == signer_unit.id)
    ba_be = units[CENTRAL_UNIT]
    leader = next(
        p for p in persons if p.organization_id == ba_be.id and p.position == "Chủ tịch UBND"
    )
    clerk = next(p for p in persons if p.organization_id == ba_be.id and p.position == "Văn thư")
    plan = [
        (
            "admin",
            "Quản trị hệ thống (Sở TTTT)",
            Role.PROVINCE_ADMIN,
            "Sở Thông tin và Truyền thông",
            None,
        ),
        ("auditor", "Thanh tra viên", Role.AUDITOR, "Thanh tra tỉnh", None),
        (
            "babe",
            "Cán bộ quản lý chứng thư UBND huyện Ba Bể",
            Role.UNIT_OFFICER,
            "UBND huyện Ba Bể",
            None,
        ),
        ("signer", signer_person.full_name, Role.SIGNER, signer_unit.name, signer_person),
        (CENTRAL_LEADER, leader.full_name, Role.SIGNER, CENTRAL_UNIT, leader),
        (CENTRAL_CLERK, clerk.full_name, Role.SIGNER, CENTRAL_UNIT, clerk),
    ]
    made = []
    for username, full_name, role, unit_name, person in plan:
        password = _password()
        created = users.create(
            principal,
            session,
            users.UserInput(
                username=username,
                full_name=full_name,
                password=password,
                role=role,
                unit=units[unit_name].public_id,
                email=f"{username}@{DOMAIN}" if person is None else person.email,
                person=person.public_id if person else None,
            ),
        )
        secret = created.totp.secret if created.totp else None
        uri = created.totp.uri if created.totp else None
        pin = None
        if username in (CENTRAL_LEADER, CENTRAL_CLERK):
            # Each central signature is approved with the signing PIN and a TOTP code (the
            # fallback for a phone without WebAuthn); the TOTP secret is also the login's.
            pin = f"{secrets.randbelow(10**6):06d}"
            enrolment = factors.enrol_pin_and_code(
                session, created.user, pin, name="Điện thoại (dữ liệu mẫu)", actor=principal.actor
            )
            if enrolment.totp_secret is not None:
                secret = enrolment.totp_secret
                uri = totp.provisioning_uri(secret, username)
        made.append(DemoUser(username, role, unit_name, password, secret, uri, pin))
    return made


DEMO_INDIVIDUALS = 40  # besides the demo signer: enough for the dashboard's charts
DEMO_ORGANIZATIONS = 12
# Remote signing: a leader's key and a seal in the central HSM, the seal's clerk as delegate.
CENTRAL_UNIT = "UBND huyện Ba Bể"
CENTRAL_LEADER, CENTRAL_CLERK = "lanhdao", "vanthu"


def _load_certificates(
    ctx: Context,
    session: Session,
    units: dict[str, Organization],
    persons: list[Person],
    rng: random.Random,
) -> int:
    """Certificates with server-held keys, each through the real workflow (a request made,
    submitted, and approved by the demo administrator): the demo signer can sign at once,
    and the dashboard, lists and history pages have something to show."""
    admin = users.by_username(session, "admin")
    signer = users.by_username(session, "signer")
    assert admin is not None and signer is not None
    approver = users.principal_for_user(session, admin)
    by_id = {org.id: org for org in units.values()}
    leader = users.by_username(session, CENTRAL_LEADER)
    assert leader is not None
    chosen = [p for p in persons if p.id == signer.person_id]
    others = [p for p in persons if p.id not in (signer.person_id, leader.person_id)]
    chosen += rng.sample(others, min(DEMO_INDIVIDUALS, len(others)))
    count = 0
    for person in chosen:
        unit = by_id[person.organization_id]
        form = _individual_form(person)
        _through_workflow(ctx, session, approver, RequestType.NEW_INDIVIDUAL, form, unit)
        count += 1
    seal_units = [u for u in units.values() if u.email][:DEMO_ORGANIZATIONS]
    signer_unit = by_id.get(signer.organization_id or 0)
    if signer_unit is not None and signer_unit not in seal_units:
        seal_units.append(signer_unit)
    for unit in seal_units:
        form = {"recipient_name": "Văn thư " + unit.name}
        _through_workflow(ctx, session, approver, RequestType.NEW_ORGANIZATION, form, unit)
        count += 1
    return count + _load_central(ctx, session, approver, units, persons, leader)


def _load_central(
    ctx: Context,
    session: Session,
    approver: Principal,
    units: dict[str, Organization],
    persons: list[Person],
    leader: User,
) -> int:
    """The leader's key and the district's seal in the central signing HSM (requests with the
    "central HSM" key location), and the district's clerk allowed to apply the seal."""
    unit = units[CENTRAL_UNIT]
    person = next(p for p in persons if p.id == leader.person_id)
    _through_workflow(
        ctx,
        session,
        approver,
        RequestType.NEW_INDIVIDUAL,
        _individual_form(person),
        unit,
        KeySource.CENTRAL,
    )
    clerk = users.by_username(session, CENTRAL_CLERK)
    assert clerk is not None
    seal = _through_workflow(
        ctx,
        session,
        approver,
        RequestType.NEW_ORGANIZATION,
        {"recipient_name": clerk.full_name, "recipient_position": "Văn thư"},
        unit,
        KeySource.CENTRAL,
    )
    delegates.grant(approver, session, seal, clerk.username)
    return 2


def _individual_form(person: Person) -> dict[str, object]:
    return {
        "full_name": person.full_name,
        "date_of_birth": person.date_of_birth.strftime("%d/%m/%Y")
        if person.date_of_birth
        else None,
        "id_number": person.id_number,
        "id_issue_date": person.id_issue_date.isoformat() if person.id_issue_date else None,
        "id_issue_place": person.id_issue_place,
        "email": person.email,
        "position": person.position,
        "mobile": person.mobile,
    }


def _through_workflow(
    ctx: Context,
    session: Session,
    approver: Principal,
    kind: RequestType,
    form: Mapping[str, object],
    unit: Organization,
    key_source: KeySource = KeySource.SERVER,
) -> str:
    """Made, submitted and approved (so issued); the certificate's serial."""
    request = workflow.create(
        approver,
        session,
        ctx.settings,
        workflow.NewRequest(
            type=kind,
            form={k: v for k, v in form.items() if v is not None},
            unit=unit.public_id,
            subject_unit=unit.public_id,
            key_source=key_source,
            # RSA for the central keys: what CSC clients and older PDF readers expect
            key_algorithm=KeyAlgorithm.RSA_2048
            if key_source is KeySource.CENTRAL
            else KeyAlgorithm.EC_P256,
        ),
    )
    workflow.submit(approver, session, ctx.settings, request.public_id)
    done = workflow.approve(approver, session, ctx.authority, request.public_id)
    cert = session.get(Certificate, done.certificate_id)
    assert cert is not None
    return cert.serial


def _load_devices(
    principal: Principal,
    session: Session,
    units: dict[str, Organization],
    persons: list[Person],
    rng: random.Random,
) -> int:
    stock = units["Sở Thông tin và Truyền thông"]
    made = []
    for n in range(1, 41):
        made.append(
            devices.add(
                principal,
                session,
                devices.DeviceInput(
                    serial=f"BCY{2017000 + n * 37:08d}",
                    model=TOKEN_MODELS[n % len(TOKEN_MODELS)],
                    kind=DeviceKind.USB_TOKEN,
                    unit=stock.public_id,
                ),
            )
        )
    for n in (1, 2):
        made.append(
            devices.add(
                principal,
                session,
                devices.DeviceInput(
                    serial=f"HSM-SLOT-{n:02d}",
                    model="HSM (khe khóa dùng chung)",
                    kind=DeviceKind.HSM_SLOT,
                    unit=stock.public_id,
                ),
            )
        )
    # Fifteen tokens handed to leaders in Ba Bể and the provincial departments, over the past
    # two years; about half of the holders changed their PIN since (the rest show as overdue).
    by_unit = {o.id: o for o in units.values()}
    ba_be = units["UBND huyện Ba Bể"].path
    leaders = [
        p
        for p in persons
        if p.position
        and p.position.startswith(("Chủ tịch", "Giám đốc", "Hiệu trưởng"))
        and (
            by_unit[p.organization_id].path.startswith(ba_be)
            or by_unit[p.organization_id].kind is OrgKind.DEPARTMENT
        )
    ]
    now = clock.now()
    receivers = rng.sample(leaders, min(15, len(leaders)))
    for device, person in zip(made, receivers, strict=False):
        handed = now - timedelta(days=rng.randrange(30, 720))
        devices.handover(
            principal,
            session,
            device.public_id,
            person.public_id,
            from_name="Sở Thông tin và Truyền thông",
            at=handed,
            note="Dữ liệu mẫu",
        )
        if rng.random() < 0.5:
            changed = handed + timedelta(days=rng.randrange(1, max(2, (now - handed).days)))
            devices.record_pin_change(principal, session, device.public_id, at=changed)
    return len(made)


def _write_credentials(path: Path, demo_users: list[DemoUser]) -> None:
    lines = ["# kyso demo users — generated passwords; change them or delete this file.", ""]
    for u in demo_users:
        lines.append(f"{u.username}\t{u.role.value}\t{u.unit}\tpassword: {u.password}")
        if u.totp_secret:
            lines.append(f"\tTOTP secret: {u.totp_secret}")
            lines.append(f"\t{u.totp_uri}")
        if u.signing_pin:
            lines.append(f"\tsigning PIN (central HSM, demo only): {u.signing_pin}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    path.chmod(0o600)  # also when the file was there before with wider permissions
