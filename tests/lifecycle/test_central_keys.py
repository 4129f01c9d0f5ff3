"""The "central HSM" key location of the request forms: a request approved through the ordinary
workflow gets its key made inside the central signing HSM (SoftHSM2 here), never extractable,
and a certificate named ``hsm:<key id>`` that chains to the CA; renewals keep it there."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Instance
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi.testclient import TestClient
from sqlalchemy import select
from support.world import World, app_client, individual_form, make_world

from kyso.errors import InvalidInput
from kyso.lifecycle import workflow
from kyso.lifecycle.forms import KeySource
from kyso.lifecycle.workflow import NewRequest
from kyso.remote import central, delegates
from kyso.store.models import (
    Certificate,
    CertificateRequest,
    Person,
    Profile,
    RequestState,
    RequestType,
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


def _issue(world: World, request_type: RequestType, form: dict, **extra: object) -> Certificate:
    """Drafted and submitted by the unit officer, approved by the province: the certificate."""
    ctx = world.ctx
    with ctx.db.session() as session:
        made = workflow.create(
            world.who("officer"),
            session,
            ctx.settings,
            NewRequest(type=request_type, form=form, **extra),  # type: ignore[arg-type]
        )
        workflow.submit(world.who("officer"), session, ctx.settings, made.public_id)
        rid = made.public_id
    with ctx.db.session() as session:
        done = workflow.approve(world.who("admin1"), session, ctx.authority, rid)
        assert done.state is RequestState.ISSUED
        cert = session.get(Certificate, done.certificate_id)
        assert cert is not None
        session.expunge(cert)
        return cert


def _token_attributes(instance: Instance, key_location: str) -> dict[str, object]:
    """The private key's attributes as another process reads them from the token itself."""
    cka_id = central.key_id_of(key_location).removeprefix("p11-")
    script = """
import json, sys, pkcs11
from pkcs11 import Attribute, ObjectClass
module, label, pin, cka_id = sys.argv[1:]
token = pkcs11.lib(module).get_token(token_label=label)
with token.open(user_pin=pin) as session:
    found = list(session.get_objects(
        {Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.ID: bytes.fromhex(cka_id)}))
    print(json.dumps([
        {"sensitive": k[Attribute.SENSITIVE], "extractable": k[Attribute.EXTRACTABLE],
         "never_extractable": k[Attribute.NEVER_EXTRACTABLE], "token": k[Attribute.TOKEN]}
        for k in found]))
"""
    env = instance.env
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            *(env[k] for k in ("KYSO_HSM_MODULE", "KYSO_HSM_TOKEN")),
            env["KYSO_HSM_PIN"],
            cka_id,
        ],
        env={"SOFTHSM2_CONF": env["SOFTHSM2_CONF"], "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    keys = json.loads(result.stdout)
    assert len(keys) == 1, keys
    return dict(keys[0])


def _openssl_verifies(world: World, cert: Certificate, tmp_path: Path) -> None:
    chain = "".join(i.pem() for i in world.ctx.authority.chain())
    (tmp_path / "chain.pem").write_text(chain)
    leaf = x509.load_der_x509_certificate(cert.der).public_bytes(Encoding.PEM)
    (tmp_path / "leaf.pem").write_bytes(leaf)
    verify = subprocess.run(
        ["openssl", "verify", "-CAfile", tmp_path / "chain.pem", tmp_path / "leaf.pem"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr


def _same_public_key(world: World, cert: Certificate) -> bool:
    held = world.ctx.central.get(central.key_id_of(cert.key_location)).public_key()
    issued = x509.load_der_x509_certificate(cert.der).public_key()
    spki = (Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return held.public_bytes(*spki) == issued.public_bytes(*spki)


def test_an_approved_form_01_with_the_central_hsm_gets_a_non_extractable_key_in_the_token(
    world: World, central_instance: Instance, tmp_path: Path
) -> None:
    form = individual_form()
    cert = _issue(world, RequestType.NEW_INDIVIDUAL, form, key_source=KeySource.CENTRAL)

    assert cert.key_location.startswith("hsm:p11-")
    assert cert.profile is Profile.INDIVIDUAL and cert.device_id is None
    assert _same_public_key(world, cert)
    attributes = _token_attributes(central_instance, cert.key_location)
    assert attributes == {
        "sensitive": True,
        "extractable": False,
        "never_extractable": True,
        "token": True,
    }
    with world.ctx.db.read() as session:
        person = session.execute(
            select(Person).where(Person.id_number == form["id_number"])
        ).scalar_one()
    assert cert.person_id == person.id  # the key is the person's
    assert cert.organization_id == world.unit("babe").id
    _openssl_verifies(world, cert, tmp_path)


def test_an_approved_form_02_seal_with_the_central_hsm_is_its_units_with_no_user_yet(
    world: World, central_instance: Instance, tmp_path: Path
) -> None:
    cert = _issue(
        world,
        RequestType.NEW_ORGANIZATION,
        {"recipient_name": "Văn thư UBND huyện Ba Bể"},
        subject_unit=world.unit("babe").public_id,
        key_source=KeySource.CENTRAL,
    )

    assert central.is_central(cert.key_location) and delegates.is_central_seal(cert)
    assert cert.person_id is None and cert.organization_id == world.unit("babe").id
    assert _token_attributes(central_instance, cert.key_location)["extractable"] is False
    with world.ctx.db.read() as session:
        listed = delegates.list_delegates(world.who("officer"), session, cert.serial)
    assert listed.delegates == [] and listed.unit_name == "UBND huyện Ba Bể"
    _openssl_verifies(world, cert, tmp_path)


def _clerk(world: World, unit: str = "babe") -> User:
    import secrets

    from kyso import clock

    with world.ctx.db.session() as session:
        user = User(
            public_id=secrets.token_hex(8),
            username=f"vanthu-{secrets.token_hex(3)}",
            full_name="Nông Thị Văn Thư",
            email=f"vanthu.{secrets.token_hex(3)}@backan.gov.vn",
            password_hash="!",
            role=Role.SIGNER,
            organization_id=world.unit(unit).id,
            password_changed_at=clock.now(),
            created_at=clock.now(),
            active=True,
            failed_logins=0,
        )
        session.add(user)
        session.flush()
        session.expunge(user)
        return user


def test_renewing_a_central_seal_makes_a_new_key_in_the_hsm_and_keeps_its_clerks(
    world: World, central_instance: Instance
) -> None:
    unit = world.unit("babe").public_id
    seal = _issue(
        world,
        RequestType.NEW_ORGANIZATION,
        {"recipient_name": "Văn thư"},
        subject_unit=unit,
        key_source=KeySource.CENTRAL,
    )
    clerk = _clerk(world)
    with world.ctx.db.session() as session:
        delegates.grant(world.who("officer"), session, seal.serial, clerk.username)

    # form 04 names no key location: the renewal keeps the old certificate's, central
    renewed = _issue(
        world,
        RequestType.RENEWAL_CHANGE,
        {"kind": "renewal", "certificate_serial": seal.serial, "reason": "sắp hết hạn"},
    )

    assert central.is_central(renewed.key_location)
    assert renewed.key_location != seal.key_location  # a new key, made in the HSM
    assert renewed.subject == seal.subject and renewed.organization_id == seal.organization_id
    assert _token_attributes(central_instance, renewed.key_location)["sensitive"] is True
    assert _same_public_key(world, renewed)
    with world.ctx.db.read() as session:
        listed = delegates.list_delegates(world.who("officer"), session, renewed.serial)
        request = session.execute(
            select(CertificateRequest).where(CertificateRequest.certificate_id == renewed.id)
        ).scalar_one()
        assert workflow.envelope(request).key.source is KeySource.CENTRAL  # type: ignore[union-attr]
    assert [d.username for d in listed.delegates] == [clerk.username]


def test_renewing_a_leaders_central_key_keeps_it_central(world: World) -> None:
    first = _issue(
        world, RequestType.NEW_INDIVIDUAL, individual_form(), key_source=KeySource.CENTRAL
    )
    renewed = _issue(
        world,
        RequestType.RENEWAL_CHANGE,
        {"kind": "renewal", "certificate_serial": first.serial},
    )
    assert central.is_central(renewed.key_location)
    assert renewed.key_location != first.key_location
    assert renewed.person_id == first.person_id


def test_a_device_or_service_certificate_cannot_have_its_key_in_the_central_hsm(
    world: World,
) -> None:
    ctx = world.ctx
    with pytest.raises(InvalidInput) as refused, ctx.db.session() as session:
        made = workflow.create(
            world.who("officer"),
            session,
            ctx.settings,
            NewRequest(
                type=RequestType.DEVICE_SERVICE,
                form={
                    "service_name": "Hệ thống quản lý văn bản",
                    "email": "qlvb@babe.backan.gov.vn",
                    "responsible_name": "Lý Văn Cán",
                },
                key_source=KeySource.CENTRAL,
            ),
        )
        workflow.submit(world.who("officer"), session, ctx.settings, made.public_id)
    assert "key_source" in str(refused.value)
    assert "HSM ký tập trung" in refused.value.message("vi")


def test_the_api_takes_the_central_hsm_as_key_source_and_issues_into_it(
    world: World, api: TestClient, central_instance: Instance, tmp_path: Path
) -> None:
    created = api.post(
        "/api/v1/requests",
        headers=world.headers("officer"),
        json={
            "type": "new_individual",
            "form": individual_form(),
            "key_source": "central",
            "submit": True,
        },
    )
    assert created.status_code == 201, created.text
    assert created.json()["key_source"] == "central"
    rid = created.json()["id"]
    approved = api.post(f"/api/v1/requests/{rid}/approve", headers=world.headers("admin1"))
    assert approved.status_code == 200, approved.text
    detail = approved.json()
    assert detail["state"] == "issued" and detail["key_source"] == "central"
    with world.ctx.db.read() as session:
        cert = session.execute(
            select(Certificate).where(Certificate.serial == detail["certificate"])
        ).scalar_one()
        session.expunge(cert)
    assert cert.key_location.startswith("hsm:")
    assert _token_attributes(central_instance, cert.key_location)["extractable"] is False
    _openssl_verifies(world, cert, tmp_path)

    wrong = api.post(
        "/api/v1/requests",
        headers=world.headers("officer"),
        json={"type": "new_individual", "form": individual_form(), "key_source": "hsm"},
    )
    assert wrong.status_code == 422


def test_the_request_page_offers_the_central_hsm_and_the_approvers_see_it(
    world: World, api: TestClient
) -> None:
    from ui.conftest import Web

    officer = Web(TestClient(api.app, raise_server_exceptions=False), world).login("officer")
    admin = Web(TestClient(api.app, raise_server_exceptions=False), world).login("admin1")
    blank = officer.get("/requests/new/01")
    assert 'value="central"' in blank.text and "HSM ký tập trung" in blank.text
    sent = officer.post(
        "/requests/new/01", {**individual_form(), "key_source": "central", "action": "submit"}
    )
    assert sent.status_code == 303, sent.text
    rid = sent.headers["location"].split("/")[-1].split("?")[0]
    with world.ctx.db.read() as session:
        stored = session.execute(
            select(CertificateRequest).where(CertificateRequest.public_id == rid)
        ).scalar_one()
        assert workflow.envelope(stored).key.source is KeySource.CENTRAL  # type: ignore[union-attr]

    shown = officer.get(f"/requests/{rid}")
    assert "Tạo trong HSM ký tập trung" in shown.text
    queue = admin.get("/approvals")
    row = next(line for line in queue.text.splitlines() if f"/requests/{rid}" in line)
    assert row  # the request is listed; its form column says where the key is made
    assert "HSM ký tập trung" in queue.text.split(f"/requests/{rid}")[1].split("</tr>")[0]

    approved = admin.post(f"/requests/{rid}/approve", {})
    assert approved.status_code == 303, approved.text
    with world.ctx.db.read() as session:
        request = session.execute(
            select(CertificateRequest).where(CertificateRequest.public_id == rid)
        ).scalar_one()
        cert = session.get(Certificate, request.certificate_id)
        assert cert is not None and cert.key_location.startswith("hsm:")
    page = admin.get(f"/certificates/{cert.serial}")
    assert "Trong HSM ký tập trung" in page.text


def test_the_demo_has_a_central_leader_and_a_central_seal_its_clerk_can_apply(
    tmp_path: Path,
) -> None:
    """`kyso init --demo` (no KYSO_HSM_MODULE: the software stand-in) issues both through the
    workflow; the printed PIN and TOTP secret approve a signature with the seal."""
    import base64
    import hashlib

    from conftest import make_env
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
    from support.cli import kyso

    from kyso import clock
    from kyso.context import Context
    from kyso.registry import totp
    from kyso.remote import approvals, factors
    from kyso.remote.signer import sign_digests
    from kyso.settings import Settings
    from kyso.store.models import ApprovalPurpose

    env = make_env(tmp_path, f"sqlite:///{tmp_path / 'kyso.db'}")
    made = kyso(env, "init", "--demo", "--json")
    assert made.returncode == 0, made.stderr
    people = {u["username"]: u for u in json.loads(made.stdout)["demo"]["users"]}
    clerk_pin, clerk_secret = people["vanthu"]["signing_pin"], people["vanthu"]["totp_secret"]
    assert people["lanhdao"]["signing_pin"] and clerk_pin and clerk_secret

    ctx = Context(Settings.from_env(env))
    try:
        with ctx.db.read() as session:
            leader = session.execute(select(User).where(User.username == "lanhdao")).scalar_one()
            clerk = session.execute(select(User).where(User.username == "vanthu")).scalar_one()
            leaders = (
                session.execute(
                    select(Certificate).where(Certificate.person_id == leader.person_id)
                )
                .scalars()
                .all()
            )
            assert [central.is_central(c.key_location) for c in leaders] == [True]
            seal = session.execute(
                select(Certificate).where(
                    Certificate.organization_id == clerk.organization_id,
                    Certificate.profile == Profile.ORGANIZATION,
                )
            ).scalar_one()
            listed = delegates.list_delegates(
                approvals.signer_principal(session, clerk), session, seal.serial
            )
            assert [d.username for d in listed.delegates] == ["vanthu"]
            as_clerk = approvals.signer_principal(session, clerk)
        digest = hashlib.sha256(b"Cong van so 12/UBND-VP").digest()
        with ctx.db.session() as session:
            public_id = approvals.ask(
                ctx,
                as_clerk,
                session,
                approvals.Request(
                    signer=session.merge(clerk),
                    key_id=central.key_id_of(seal.key_location),
                    purpose=ApprovalPurpose.CSC,
                    items=[approvals.ItemSpec("Công văn 12", base64.b64encode(digest).decode())],
                ),
            ).public_id
        code = totp.code_at(clerk_secret, clock.timestamp())
        approvals.approve(ctx, as_clerk, public_id, factors.PinAndCode(clerk_pin, code))
        found = approvals.collect_sad(ctx, as_clerk, public_id)
        assert found is not None
        with ctx.db.read() as session:
            binding = approvals.binding_of(approvals.get(as_clerk, session, public_id))
        [signature] = sign_digests(ctx, as_clerk, found[0], binding, [digest], entry="test")
        x509.load_der_x509_certificate(seal.der).public_key().verify(  # type: ignore[union-attr]
            signature,
            digest,
            padding.PKCS1v15(),  # type: ignore[call-arg]
            Prehashed(hashes.SHA256()),  # type: ignore[call-arg]
        )
    finally:
        ctx.close()
