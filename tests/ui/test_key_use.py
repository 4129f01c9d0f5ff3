"""Who may sign with which key, through every entry point (REST API, pages, CLI), and the
audit entry every signature leaves.

The rule is one service (``kyso.signing.keyuse``): a person signs with their own key or
their own unit's seal; a system token only with the keys it was given; nobody with one of
the CA's own keys. Before it, the REST API let a token use any key of a certificate in its
unit's subtree (a colleague's personal key, a commune's seal) and the province any key at
all, the CA's root included.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from conftest import Instance
from fixtures.pdf import samples
from sqlalchemy import select
from support.cli import kyso
from support.world import World

from kyso.api import clients
from kyso.errors import InvalidInput
from kyso.registry import people, users
from kyso.registry.access import cli_principal
from kyso.store.models import AuditEntry, IdentityRole, Role, User

from .conftest import Web
from .test_sign import server_key

CLI = cli_principal("cli:test")
PDF = samples.official_document()


def _person_user(world: World, unit: str, role: Role, name: str) -> tuple[User, int]:
    with world.ctx.db.session() as session:
        person = people.create(
            CLI,
            session,
            people.PersonInput(full_name=name, organization=world.unit(unit).public_id),
        )
        user = users.create(
            CLI,
            session,
            users.UserInput(
                username=f"u{secrets.token_hex(4)}-{world.tag}",
                full_name=name,
                password="mật-khẩu-dài-đủ-2026",
                role=role,
                unit=world.unit(unit).public_id,
                person=person.public_id,
            ),
        ).user
        return user, person.id


def _token(world: World, user: User | None, *, keys: list[str] | None = None) -> dict[str, str]:
    with world.ctx.db.session() as session:
        token = clients.create(
            session,
            f"t{secrets.token_hex(4)}",
            ["documents:sign"],
            "test",
            user_id=user.id if user is not None else None,
            keys=keys,
            keystore=world.ctx.keystore.name,
        )
    return {"authorization": f"Bearer {token}"}


def _sign_api(web: Web, headers: dict[str, str], key_id: str, kind: str = "cms") -> httpx.Response:
    data = PDF if kind == "pdf" else b"Bao cao so 12/BC-UBND"
    return web.client.post(
        f"/api/v1/sign/{kind}",
        data={"key_id": key_id},
        files={"file": ("tai-lieu.pdf" if kind == "pdf" else "bao-cao.txt", data)},
        headers=headers,
    )


def _ca_key(world: World, role: IdentityRole) -> str:
    return world.ctx.authority.identity(role).key.key_id


def _signatures(world: World, serial: str) -> list[dict]:
    with world.ctx.db.read() as session:
        rows = session.execute(
            select(AuditEntry).where(
                AuditEntry.action == "document.signed", AuditEntry.target == serial
            )
        ).scalars()
        return [{"actor": r.actor, **json.loads(r.details)} for r in rows]


@pytest.fixture
def keys(instance: Instance, world: World) -> dict[str, object]:
    """A signer of Ba Bể with a personal key, a colleague with one, Ba Bể's seal, the seal
    of the commune below it (Chu Hương)."""
    me, my_person = _person_user(world, "babe", Role.SIGNER, "Nông Văn Ký")
    colleague, their_person = _person_user(world, "babe", Role.SIGNER, "Triệu Thị Đồng")
    return {
        "me": me,
        "mine": server_key(instance, world.unit("babe"), person_id=my_person, cn="Nông Văn Ký"),
        "colleague": colleague,
        "theirs": server_key(
            instance, world.unit("babe"), person_id=their_person, cn="Triệu Thị Đồng"
        ),
        "seal": server_key(instance, world.unit("babe")),
        "commune_seal": server_key(instance, world.unit("chuhuong")),
    }


def test_a_users_token_signs_with_their_own_key_and_their_units_seal_only(
    world: World, web_for: Callable[..., Web], keys: dict
) -> None:
    web = web_for()
    me = _token(world, keys["me"])
    for allowed in ("mine", "seal"):
        key_id, serial = keys[allowed]
        reply = _sign_api(web, me, key_id)
        assert reply.status_code == 200, (allowed, reply.text)
        (entry,) = _signatures(world, serial)
        assert entry["entry"] == "api" and entry["kind"] == "cms"
        assert entry["key"].endswith(key_id) and len(entry["sha256"]) == 64
        assert entry["actor"].startswith("api:")
    for refused in ("theirs", "commune_seal"):
        key_id, serial = keys[refused]
        reply = _sign_api(web, me, key_id)
        assert reply.status_code == 403, (refused, reply.text)
        assert reply.json()["code"] == "key_not_allowed"
        assert _signatures(world, serial) == []
    # an officer of the district: the district's seal, never the commune's below it
    officer = _token(world, world.users["officer"])
    assert _sign_api(web, officer, keys["seal"][0]).status_code == 200
    assert _sign_api(web, officer, keys["commune_seal"][0]).status_code == 403


def test_no_token_signs_with_the_cas_own_keys(
    world: World, web_for: Callable[..., Web], keys: dict
) -> None:
    web = web_for()
    admin = _token(world, world.users["admin1"])  # the province: it used to pass every key
    system = _token(world, None, keys=[keys["seal"][0]])
    for role in IdentityRole:  # root, issuing CA, OCSP responder, TSA, audit signer
        key_id = _ca_key(world, role)
        for headers in (admin, system):
            for kind in ("cms", "pdf"):
                reply = _sign_api(web, headers, key_id, kind)
                assert reply.status_code == 403, (role, kind, reply.text)


def test_a_system_token_signs_only_with_the_keys_it_was_given(
    world: World, web_for: Callable[..., Web], keys: dict
) -> None:
    web = web_for()
    bound = _token(world, None, keys=[keys["seal"][0]])
    assert _sign_api(web, bound, keys["seal"][0], "pdf").status_code == 200
    assert _sign_api(web, bound, keys["mine"][0]).status_code == 403
    unbound = _token(world, None)
    assert _sign_api(web, unbound, keys["seal"][0]).status_code == 403
    # keys are checked when the client is made: no CA key, no unknown key, none for a user
    for wrong, user in (
        ([_ca_key(world, IdentityRole.ROOT)], None),
        (["sw-0000000000000000"], None),
        ([keys["seal"][0]], keys["me"]),
    ):
        with pytest.raises(InvalidInput):
            _token(world, user, keys=wrong)


def test_the_signing_page_refuses_a_key_that_is_not_the_viewers(
    world: World, web_for: Callable[..., Web], keys: dict
) -> None:
    web = web_for().login(keys["me"])
    answer = web.post("/sign", files={"file": ("qd.pdf", PDF, "application/pdf")})
    assert answer.status_code == 303, answer.text[:500]
    upload_id = answer.headers["location"].rsplit("/", 1)[1]
    page = web.get(f"/sign/{upload_id}")
    assert keys["mine"][0] in page.text and keys["seal"][0] in page.text
    assert keys["theirs"][0] not in page.text
    for key_id in (keys["theirs"][0], _ca_key(world, IdentityRole.ROOT)):
        refused = web.post(
            f"/sign/{upload_id}",
            {"kind": "attachment", "key_id": key_id, "level": "B-B", "place": "corner"},
        )
        assert refused.status_code == 403, refused.text[:500]
    done = web.post(
        f"/sign/{upload_id}",
        {
            "kind": "attachment",
            "key_id": keys["mine"][0],
            "level": "B-B",
            "place": "corner",
            "number": "15/QĐ-UBND",
        },
    )
    assert done.status_code == 303, done.text[:1000]
    (entry,) = _signatures(world, keys["mine"][1])
    assert (entry["entry"], entry["kind"], entry["number"]) == ("page", "pdf", "15/QĐ-UBND")
    assert entry["actor"] == f"user:{keys['me'].username}"


def _kyso(instance: Instance, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return kyso(instance.env, *args, lang="en")


def test_the_command_line_never_signs_with_a_ca_key_and_logs_what_it_signs(
    instance: Instance, world: World, keys: dict, tmp_path: Path
) -> None:
    if instance.backend != "sqlite":
        pytest.skip("the command is the same on both backends")
    document = tmp_path / "bao-cao.txt"
    document.write_bytes(b"Bao cao")
    for role in (IdentityRole.ROOT, IdentityRole.ISSUING, IdentityRole.TSA):
        refused = _kyso(
            instance,
            "sign",
            "cms",
            document,
            "-o",
            tmp_path / "x.p7s",
            "--key",
            _ca_key(world, role),
        )
        assert refused.returncode == 1 and "key_not_allowed" in refused.stderr, refused.stderr
        assert not (tmp_path / "x.p7s").exists()
    key_id, serial = keys["seal"]
    done = _kyso(instance, "sign", "cms", document, "-o", tmp_path / "ok.p7s", "--key", key_id)
    assert done.returncode == 0, done.stderr
    (entry,) = _signatures(world, serial)
    assert entry["entry"] == "cli" and entry["actor"].startswith("cli:")
