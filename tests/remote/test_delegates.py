"""The users of a central seal: who may grant and revoke them (the service, the API, the page,
the CLI), who may be granted, the audit entries, and what it changes for signing — a delegate
signs with the seal after approving on the phone; a colleague who is not one cannot even ask."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Callable, Iterator

import pytest
from conftest import Instance
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from fastapi.testclient import TestClient
from sqlalchemy import select
from support.cli import kyso
from support.remote import PIN, central_seal, central_signer
from support.world import World, app_client, make_world
from ui.conftest import Web

from kyso import clock
from kyso.errors import Forbidden
from kyso.registry import totp
from kyso.registry.access import Principal, cli_principal
from kyso.remote import approvals, delegates, factors
from kyso.remote.signer import sign_digests
from kyso.signing.keyuse import KeyNotAllowed
from kyso.store.models import (
    ApprovalPurpose,
    AuditEntry,
    Certificate,
    KeyDelegate,
    Role,
    User,
)

pytestmark = pytest.mark.softhsm


@pytest.fixture
def world(central_instance: Instance) -> World:
    return make_world(central_instance.ctx, central_instance.backend)


@pytest.fixture(scope="module")
def _apps() -> Iterator[dict[tuple[str, str], TestClient]]:
    made: dict[tuple[str, str], TestClient] = {}
    yield made
    for client in made.values():
        client.__exit__(None, None, None)


@pytest.fixture
def api(central_instance: Instance, _apps: dict[tuple[str, str], TestClient]) -> TestClient:
    return app_client(central_instance, _apps)


@pytest.fixture
def web_for(api: TestClient, world: World) -> Callable[[str | User], Web]:
    def make(who: str | User) -> Web:
        return Web(TestClient(api.app, raise_server_exceptions=False), world).login(who)

    return make


def _user(world: World, unit: str, role: Role = Role.SIGNER, *, active: bool = True) -> User:
    tag = secrets.token_hex(3)
    with world.ctx.db.session() as session:
        user = User(
            public_id=secrets.token_hex(8),
            username=f"vanthu-{tag}",
            full_name=f"Nông Thị Thư {tag}",
            email=f"vanthu.{tag}@backan.gov.vn",
            password_hash="!",
            role=role,
            organization_id=world.unit(unit).id,
            password_changed_at=clock.now(),
            created_at=clock.now(),
            active=active,
            failed_logins=0,
        )
        session.add(user)
        session.flush()
        session.expunge(user)
        return user


def _principal(world: World, user: User) -> Principal:
    with world.ctx.db.read() as session:
        return approvals.signer_principal(session, user)


def _seal(world: World, unit: str = "babe") -> str:
    return central_seal(world, unit, [])[1]


def _grant(world: World, who: Principal, serial: str, username: str) -> None:
    with world.ctx.db.session() as session:
        delegates.grant(who, session, serial, username)


def _names(world: World, serial: str) -> list[str]:
    with world.ctx.db.read() as session:
        listed = delegates.list_delegates(cli_principal("cli:test"), session, serial)
    return [d.username for d in listed.delegates]


def _audit(world: World, action: str, serial: str) -> list[dict]:
    with world.ctx.db.read() as session:
        rows = session.execute(
            select(AuditEntry).where(AuditEntry.action == action, AuditEntry.target == serial)
        ).scalars()
        return [{"actor": r.actor, **json.loads(r.details)} for r in rows]


# -- who may grant and revoke
def test_the_units_officer_grants_and_revokes_a_clerk_and_each_change_is_audited(
    world: World,
) -> None:
    serial = _seal(world)
    clerk = _user(world, "babe")
    officer = world.who("officer")

    _grant(world, officer, serial, clerk.username)
    assert _names(world, serial) == [clerk.username]
    with world.ctx.db.session() as session:
        delegates.revoke(officer, session, serial, clerk.username)
    assert _names(world, serial) == []

    granted = _audit(world, delegates.GRANTED, serial)
    revoked = _audit(world, delegates.REVOKED, serial)
    assert [(e["actor"], e["user"]) for e in granted] == [(officer.actor, clerk.username)]
    assert [(e["actor"], e["user"]) for e in revoked] == [(officer.actor, clerk.username)]
    with pytest.raises(delegates.NotADelegate), world.ctx.db.session() as session:
        delegates.revoke(officer, session, serial, clerk.username)


def test_an_officer_of_a_unit_above_and_the_province_may_grant_a_communes_seal(
    world: World,
) -> None:
    serial = _seal(world, "chuhuong")
    first, second = _user(world, "chuhuong"), _user(world, "chuhuong")
    _grant(world, world.who("officer"), serial, first.username)  # Ba Bể, above Chu Hương
    _grant(world, world.who("admin1"), serial, second.username)
    assert sorted(_names(world, serial)) == sorted([first.username, second.username])


@pytest.mark.parametrize("who", ["officer_ns", "auditor", "clerk"])
def test_another_districts_officer_an_auditor_or_a_clerk_cannot_grant_the_seal(
    world: World, who: str
) -> None:
    serial = _seal(world)
    target = _user(world, "babe")
    principal = _principal(world, _user(world, "babe")) if who == "clerk" else world.who(who)
    with pytest.raises(Forbidden), world.ctx.db.session() as session:
        delegates.grant(principal, session, serial, target.username)
    assert _names(world, serial) == []
    assert _audit(world, delegates.GRANTED, serial) == []


@pytest.mark.parametrize("case", ["sub_unit", "other_district", "inactive", "auditor_role"])
def test_only_an_active_user_of_the_seals_own_unit_who_may_sign_can_be_granted(
    world: World, case: str
) -> None:
    serial = _seal(world)
    target = {
        "sub_unit": lambda: _user(world, "chuhuong"),  # a commune's clerk, not the district's
        "other_district": lambda: _user(world, "nganson"),
        "inactive": lambda: _user(world, "babe", active=False),
        "auditor_role": lambda: _user(world, "babe", Role.AUDITOR),
    }[case]()
    with pytest.raises(delegates.NotAUnitClerk) as refused, world.ctx.db.session() as session:
        delegates.grant(world.who("admin1"), session, serial, target.username)
    assert "đơn vị sở hữu con dấu" in refused.value.message("vi")
    assert "seal's own unit" in refused.value.message("en")
    assert _names(world, serial) == []


def test_a_certificate_that_is_not_a_central_seal_has_no_users(world: World) -> None:
    leader = central_signer(world)  # a person's central key: applied by its holder alone
    with pytest.raises(delegates.NotACentralSeal) as refused, world.ctx.db.session() as session:
        delegates.grant(world.who("admin1"), session, leader.serial, leader.user.username)
    assert refused.value.http_status == 409
    assert "HSM ký tập trung" in refused.value.message("vi")


def test_a_clerk_is_granted_once(world: World) -> None:
    serial = _seal(world)
    clerk = _user(world, "babe")
    _grant(world, world.who("officer"), serial, clerk.username)
    with pytest.raises(delegates.AlreadyDelegate), world.ctx.db.session() as session:
        delegates.grant(world.who("officer"), session, serial, clerk.username)


# -- what it changes for signing
def _enrol(world: World, user: User) -> str:
    with world.ctx.db.session() as session:
        row = session.get(User, user.id)
        assert row is not None
        enrolment = factors.enrol_pin_and_code(session, row, PIN, name="Điện thoại", actor="t")
        assert enrolment.totp_secret is not None
        return enrolment.totp_secret


def _ask(world: World, user: User, key_id: str, digest: bytes) -> str:
    ctx = world.ctx
    with ctx.db.session() as session:
        signer = session.get(User, user.id)
        assert signer is not None
        return approvals.ask(
            ctx,
            _principal(world, user),
            session,
            approvals.Request(
                signer=signer,
                key_id=key_id,
                purpose=ApprovalPurpose.CSC,
                items=[approvals.ItemSpec("Công văn 12/UBND", base64.b64encode(digest).decode())],
            ),
        ).public_id


def test_only_the_seals_delegates_can_sign_with_it_and_a_revoked_one_no_longer_can(
    world: World,
) -> None:
    ctx = world.ctx
    key_id, serial = central_seal(world, "babe", [])
    clerk, colleague = _user(world, "babe"), _user(world, "babe")
    secret = _enrol(world, clerk)
    _enrol(world, colleague)
    digest = hashlib.sha256(b"con dau UBND huyen Ba Be").digest()

    with pytest.raises(KeyNotAllowed):  # nobody yet, the clerk included
        _ask(world, clerk, key_id, digest)
    _grant(world, world.who("officer"), serial, clerk.username)

    public_id = _ask(world, clerk, key_id, digest)
    approvals.approve(
        ctx,
        _principal(world, clerk),
        public_id,
        factors.PinAndCode(PIN, totp.code_at(secret, clock.timestamp())),
    )
    found = approvals.collect_sad(ctx, _principal(world, clerk), public_id)
    assert found is not None
    with ctx.db.read() as session:
        binding = approvals.binding_of(approvals.get(_principal(world, clerk), session, public_id))
        der = session.execute(select(Certificate.der).where(Certificate.serial == serial)).scalar()
    [signature] = sign_digests(
        ctx, _principal(world, clerk), found[0], binding, [digest], entry="t"
    )
    x509.load_der_x509_certificate(der).public_key().verify(  # type: ignore[union-attr]
        signature,
        digest,
        padding.PKCS1v15(),  # type: ignore[call-arg]
        Prehashed(hashes.SHA256()),  # type: ignore[call-arg]
    )

    with pytest.raises(KeyNotAllowed):  # a colleague of the same unit, not named for it
        _ask(world, colleague, key_id, digest)
    with world.ctx.db.session() as session:
        delegates.revoke(world.who("officer"), session, serial, clerk.username)
    with pytest.raises(KeyNotAllowed):
        _ask(world, clerk, key_id, digest)


# -- the API
def test_the_api_lists_grants_and_revokes_with_the_certificate_scopes(
    world: World, api: TestClient
) -> None:
    serial = _seal(world)
    clerk = _user(world, "babe")
    url = f"/api/v1/certificates/{serial}/delegates"
    officer = world.headers("officer")

    made = api.post(url, headers=officer, json={"username": clerk.username})
    assert made.status_code == 201, made.text
    assert made.json()["username"] == clerk.username and made.json()["usable"] is True
    listed = api.get(url, headers=officer)
    assert listed.status_code == 200, listed.text
    assert listed.json()["unit"]["name"] == "UBND huyện Ba Bể"
    assert [d["username"] for d in listed.json()["delegates"]] == [clerk.username]

    again = api.post(url, headers=officer, json={"username": clerk.username})
    assert again.status_code == 409 and again.json()["code"] == "already_delegate"
    other = api.post(url, headers=world.headers("officer_ns"), json={"username": "x"})
    assert other.status_code == 403
    auditor = api.post(url, headers=world.headers("auditor"), json={"username": clerk.username})
    assert auditor.status_code == 403
    assert api.get(url, headers=world.headers("auditor")).status_code == 200  # reads only
    outsider = _user(world, "nganson")
    refused = api.post(url, headers=officer, json={"username": outsider.username})
    assert refused.status_code == 422 and refused.json()["code"] == "not_a_unit_clerk"
    assert api.post(url, headers=officer, json={"username": ""}).status_code == 422

    gone = api.delete(f"{url}/{clerk.username}", headers=officer)
    assert gone.status_code == 204, gone.text
    assert api.get(url, headers=officer).json()["delegates"] == []
    missing = api.delete(f"{url}/{clerk.username}", headers=officer)
    assert missing.status_code == 404 and missing.json()["code"] == "not_a_delegate"
    assert api.get("/api/v1/certificates/ffff0000/delegates", headers=officer).status_code == 404


# -- the page
def test_the_certificate_page_lists_the_seals_users_and_grants_and_revokes_them(
    world: World, web_for: Callable[[str | User], Web]
) -> None:
    serial = _seal(world)
    clerk = _user(world, "babe")
    officer = web_for("officer")

    page = officer.get(f"/certificates/{serial}")
    assert page.status_code == 200, page.text
    assert "Người được dùng con dấu" in page.text and "Trong HSM ký tập trung" in page.text
    assert f'value="{clerk.username}"' in page.text  # offered in the grant form

    refused = officer.post(f"/certificates/{serial}/delegates", {"username": ""})
    assert refused.status_code == 422 and "Hãy chọn một người dùng của đơn vị." in refused.text
    done = officer.post(f"/certificates/{serial}/delegates", {"username": clerk.username})
    assert done.status_code == 303, done.text
    assert _names(world, serial) == [clerk.username]
    shown = officer.get(f"/certificates/{serial}")
    assert clerk.full_name in shown.text and f"/delegates/{clerk.username}/revoke" in shown.text

    no_csrf = officer.post(f"/certificates/{serial}/delegates/{clerk.username}/revoke", csrf=False)
    assert no_csrf.status_code == 403 and _names(world, serial) == [clerk.username]
    revoked = officer.post(f"/certificates/{serial}/delegates/{clerk.username}/revoke")
    assert revoked.status_code == 303 and _names(world, serial) == []

    # the clerk reads the seal's page (their unit's certificate) but has no grant form
    reader = web_for(clerk)
    seen = reader.get(f"/certificates/{serial}")
    assert seen.status_code == 200 and "Người được dùng con dấu" in seen.text
    assert "Giao quyền dùng con dấu" not in seen.text
    forbidden = reader.post(f"/certificates/{serial}/delegates", {"username": clerk.username})
    assert forbidden.status_code == 403 and _names(world, serial) == []


# -- the command line
def test_the_command_line_grants_lists_and_revokes(
    world: World, central_instance: Instance
) -> None:
    serial = _seal(world)
    clerk = _user(world, "babe")
    env = central_instance.env

    granted = kyso(env, "seal", "delegates", "grant", serial, clerk.username)
    assert granted.returncode == 0, granted.stderr
    listed = kyso(env, "seal", "delegates", "list", serial, "--json")
    assert listed.returncode == 0, listed.stderr
    assert [d["username"] for d in json.loads(listed.stdout)["delegates"]] == [clerk.username]
    twice = kyso(env, "seal", "delegates", "grant", serial, clerk.username)
    assert twice.returncode == 1 and "[already_delegate]" in twice.stderr
    assert "Traceback" not in twice.stderr
    revoked = kyso(env, "seal", "delegates", "revoke", serial, clerk.username)
    assert revoked.returncode == 0, revoked.stderr
    with world.ctx.db.read() as session:
        assert not session.execute(
            select(KeyDelegate).where(KeyDelegate.user_id == clerk.id)
        ).first()
    assert [e["actor"].startswith("cli:") for e in _audit(world, delegates.REVOKED, serial)] == [
        True
    ]
