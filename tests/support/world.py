"""A small province for one test: its own units, users (with principals and API tokens), so
tests share one CA instance per backend in any order; and the app in process.

Used by the lifecycle tests (tests/lifecycle) and the page tests (tests/ui)."""

from __future__ import annotations

import dataclasses
import secrets
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fastapi.testclient import TestClient

from kyso import clock
from kyso.api import clients
from kyso.context import Context
from kyso.registry import organizations
from kyso.registry.access import SCOPE_ACTIONS, Principal, cli_principal
from kyso.registry.fields import cccd_prefix
from kyso.settings import Settings
from kyso.store.models import Organization, OrgKind, Role, Sector, User
from kyso.web.app import create_app

ALL_SCOPES = sorted(set(SCOPE_ACTIONS) | {s.value for s in clients.Scope})
OFFICER_SCOPES = [
    "requests:read",
    "requests:write",
    "registry:read",
    "registry:write",
    "certificates:read",
    "reports:read",
]


def new_cccd(born: date, female: bool = False) -> str:
    return cccd_prefix(born, female) + f"{secrets.randbelow(10**6):06d}"


def individual_form(unit_name: str = "UBND huyện Ba Bể", **overrides: Any) -> dict[str, Any]:
    born = date(1978, 4, 12)
    form = {
        "full_name": "Hoàng Thị Mai",
        "date_of_birth": "12/04/1978",
        "id_number": new_cccd(born, female=True),
        "id_issue_date": "2021-07-01",
        "id_issue_place": "Cục Cảnh sát QLHC về TTXH",
        "email": f"mai.ht.{secrets.token_hex(3)}@babe.backan.gov.vn",
        "organization": unit_name,
        "province": "Bắc Kạn",
        "position": "Phó Chủ tịch UBND huyện",
        "mobile": "0912 345 678",
    }
    form.update(overrides)
    return form


@dataclass
class World:
    """One test's province: units, users (with principals and API tokens)."""

    ctx: Context
    backend: str
    tag: str
    units: dict[str, Organization] = field(default_factory=dict)
    users: dict[str, User] = field(default_factory=dict)
    principals: dict[str, Principal] = field(default_factory=dict)
    tokens: dict[str, dict[str, str]] = field(default_factory=dict)

    def unit(self, key: str) -> Organization:
        return self.units[key]

    def who(self, key: str) -> Principal:
        return self.principals[key]

    def headers(self, key: str) -> dict[str, str]:
        return self.tokens[key]


def make_world(ctx: Context, backend: str) -> World:
    tag = secrets.token_hex(3)
    world = World(ctx, backend, tag)
    cli = cli_principal("cli:test")
    tree = [
        ("province", None, "UBND tỉnh Bắc Kạn", OrgKind.PROVINCE, Sector.GOVERNMENT),
        ("babe", "province", "UBND huyện Ba Bể", OrgKind.DISTRICT, Sector.GOVERNMENT),
        ("tnmt", "babe", "Phòng Tài nguyên và Môi trường", OrgKind.OTHER, Sector.GOVERNMENT),
        ("chuhuong", "babe", "UBND xã Chu Hương", OrgKind.COMMUNE, Sector.GOVERNMENT),
        ("nganson", "province", "UBND huyện Ngân Sơn", OrgKind.DISTRICT, Sector.GOVERNMENT),
        ("tnmt2", "nganson", "Phòng Tài nguyên và Môi trường", OrgKind.OTHER, Sector.GOVERNMENT),
        ("hospital", "province", "Bệnh viện Đa khoa tỉnh Bắc Kạn", OrgKind.HOSPITAL, Sector.HEALTH),
    ]
    with ctx.db.session() as session:
        for key, parent, name, kind, sector in tree:
            org = organizations.create(
                cli,
                session,
                organizations.OrgInput(
                    name=name,
                    kind=kind,
                    sector=sector,
                    parent=world.units[parent].public_id if parent else None,
                    province="Bắc Kạn",
                    address=f"Tổ 1, {name}",
                    email=f"{key}.{tag}@backan.gov.vn",
                ),
            )
            world.units[key] = org
        now = clock.now()
        people = [
            ("admin1", Role.PROVINCE_ADMIN, "province", "Nguyễn Văn Quản"),
            ("admin2", Role.PROVINCE_ADMIN, "province", "Trần Thị Duyệt"),
            ("officer", Role.UNIT_OFFICER, "babe", "Lý Văn Cán"),
            ("officer_ns", Role.UNIT_OFFICER, "nganson", "Hà Văn Sơn"),
            ("auditor", Role.AUDITOR, "province", "Đỗ Thị Kiểm"),
        ]
        for key, role, unit_key, full_name in people:
            user = User(
                public_id=secrets.token_hex(8),
                username=f"{key}-{tag}",
                full_name=full_name,
                email=f"{key}.{tag}@backan.gov.vn",
                password_hash="!",
                role=role,
                organization_id=world.units[unit_key].id,
                password_changed_at=now,
                created_at=now,
                active=True,
                failed_logins=0,
            )
            session.add(user)
            session.flush()
            world.users[key] = user
            world.principals[key] = Principal(
                actor=f"user:{user.username}",
                role=role,
                user_id=user.id,
                organization_id=user.organization_id,
                org_path=world.units[unit_key].path,
            )
            scopes = OFFICER_SCOPES if role is Role.UNIT_OFFICER else ALL_SCOPES
            token = clients.create(session, f"{key}-{tag}", scopes, "test", user_id=user.id)
            world.tokens[key] = {"authorization": f"Bearer {token}"}
    return world


def app_client(
    instance: Any, apps: dict[tuple[str, str], TestClient], **settings: Any
) -> TestClient:
    # keyed by the database: a session fixture may be torn down and made anew (xdist)
    key = (instance.env["KYSO_DATABASE_URL"], repr(sorted(settings.items())))
    if key not in apps:
        base = Settings.from_env(instance.env)
        app = create_app(dataclasses.replace(base, **settings), scheduler=False)
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        apps[key] = client
    return apps[key]


def make_csr(cn: str = "ignored") -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()
