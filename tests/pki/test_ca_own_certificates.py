"""The CA's own certificates (root, issuing CA, OCSP responder, TSA) cannot be suspended or
revoked by any page, API token, request form or subscriber command: only ``kyso ca revoke``
on the server, with the serial typed again. Suspending the issuing CA would stop every
subscriber's signature from validating, so the rule lives in the service, not in a page.

Each test works on a CA of its own: on the code before the rule, the attack succeeds and
would otherwise have disabled the CA the rest of the suite shares.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Instance, _database_url, make_env, open_instance
from fastapi.testclient import TestClient
from sqlalchemy import select
from support.cli import kyso
from support.world import make_world

from kyso.api import clients
from kyso.context import Context
from kyso.errors import KysoError
from kyso.lifecycle import certificates, workflow
from kyso.pki import issuance, status
from kyso.registry.access import cli_principal
from kyso.settings import Settings
from kyso.store.models import (
    Certificate,
    CertStatus,
    IdentityRole,
    Profile,
    RequestType,
    RevocationReason,
)
from kyso.web.app import create_app

ROLES = tuple(IdentityRole)  # root, issuing CA, OCSP responder, TSA, audit signer


@pytest.fixture
def own(instance: Instance, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Instance]:
    env = make_env(tmp_path, _database_url(instance.backend, tmp_path, request))
    ctx = open_instance(env)
    yield Instance(ctx, env, instance.backend)
    ctx.close()


def _serial(ctx: Context, role: IdentityRole) -> str:
    return f"{ctx.authority.identity(role).certificate.serial_number:x}"


def _status(ctx: Context, serial: str) -> CertStatus:
    with ctx.db.read() as session:
        return session.execute(
            select(Certificate.status).where(Certificate.serial == serial)
        ).scalar_one()


def _all_good(ctx: Context) -> None:
    for role in ROLES:
        assert _status(ctx, _serial(ctx, role)) is CertStatus.GOOD, role


def test_a_province_token_cannot_suspend_or_revoke_the_cas_own_certificates(
    own: Instance,
) -> None:
    ctx = own.ctx
    with ctx.db.session() as session:  # a system token with every certificate scope
        token = clients.create(session, "erp", ["certificates:read", "certificates:revoke"], "test")
    headers = {"authorization": f"Bearer {token}"}
    app = create_app(Settings.from_env(own.env), scheduler=False)
    with TestClient(app, raise_server_exceptions=False) as client:
        for role in ROLES:
            serial = _serial(ctx, role)
            for action, body in (
                ("suspend", {}),
                ("revoke", {"reason": "ca-compromise"}),
                ("revoke", {"reason": "key-compromise"}),
            ):
                reply = client.post(
                    f"/api/v1/certificates/{serial}/{action}", json=body, headers=headers
                )
                assert reply.status_code == 403, (role, action, reply.text)
                assert reply.json()["code"] == "ca_certificate_protected"
            # reading them stays possible
            assert client.get(f"/api/v1/certificates/{serial}", headers=headers).status_code == 200
    _all_good(ctx)


def test_the_certificate_service_refuses_the_cas_own_certificates_for_anyone(
    own: Instance,
) -> None:
    ctx = own.ctx
    who = cli_principal("cli:root")  # province-wide: even the CLI's subscriber commands
    for role in ROLES:
        serial = _serial(ctx, role)
        for change in (
            lambda s, serial=serial: certificates.suspend(who, s, ctx.authority, serial),
            lambda s, serial=serial: certificates.revoke(
                who, s, ctx.authority, serial, RevocationReason.SUPERSEDED
            ),
            lambda s, serial=serial: status.revoke(
                s, ctx.authority, serial, RevocationReason.UNSPECIFIED, "test"
            ),
        ):
            with pytest.raises(status.CaCertificateProtected), ctx.db.session() as session:
                change(session)
    _all_good(ctx)


def test_a_revocation_request_cannot_name_a_cas_own_certificate(own: Instance) -> None:
    ctx = own.ctx
    world = make_world(ctx, own.backend)
    with pytest.raises(status.CaCertificateProtected), ctx.db.session() as session:
        workflow.create(
            world.who("admin1"),
            session,
            ctx.settings,
            workflow.NewRequest(
                RequestType.REVOCATION,
                {
                    "certificate_serial": _serial(ctx, IdentityRole.ISSUING),
                    "reason": "ca-compromise",
                    "explanation": "thử",
                },
                unit=world.unit("province").public_id,
            ),
        )
    _all_good(ctx)


def _kyso(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return kyso(env, *args, lang="en", stdin=stdin, timeout=120)


def test_only_kyso_ca_revoke_with_the_serial_typed_again_changes_them(own: Instance) -> None:
    if own.backend != "sqlite":
        pytest.skip("the command is the same on both backends; once is enough")
    ctx, env = own.ctx, own.env
    tsa = _serial(ctx, IdentityRole.TSA)
    # the subscriber command refuses, on one clean line
    refused = _kyso(env, "cert", "suspend", tsa)
    assert refused.returncode == 1 and "ca_certificate_protected" in refused.stderr
    assert "Traceback" not in refused.stderr
    # the dedicated command asks for the serial again: a wrong answer changes nothing
    wrong = _kyso(env, "ca", "revoke", "tsa", "--suspend", stdin="0123\n")
    assert wrong.returncode == 1, wrong.stdout + wrong.stderr
    assert _status(ctx, tsa) is CertStatus.GOOD
    done = _kyso(env, "ca", "revoke", "tsa", "--suspend", stdin=f"{tsa}\n")
    assert done.returncode == 0, done.stdout + done.stderr
    assert _status(ctx, tsa) is CertStatus.SUSPENDED
    back = _kyso(env, "ca", "revoke", tsa, "--restore", "--confirm", tsa)
    assert back.returncode == 0, back.stdout + back.stderr
    assert _status(ctx, tsa) is CertStatus.GOOD
    # a subscriber's certificate is not for this command, and stays as it is
    with ctx.db.session() as session:
        subscriber = issuance.issue_with_server_key(
            session,
            ctx.authority,
            profile=Profile.INDIVIDUAL,
            subject="CN=Nông Văn Dân,O=UBND huyện Ba Bể,C=VN",
            algorithm=issuance.KeyAlgorithm.EC_P256,
            actor="test",
        ).serial
    wrong_kind = _kyso(env, "ca", "revoke", subscriber, "--confirm", subscriber)
    assert wrong_kind.returncode == 1 and "kyso cert" in wrong_kind.stderr, wrong_kind.stderr
    assert _status(ctx, subscriber) is CertStatus.GOOD


def test_the_error_names_the_command_that_can(own: Instance) -> None:
    error = status.CaCertificateProtected("x")
    assert isinstance(error, KysoError) and error.http_status == 403
    assert "kyso ca revoke" in error.message("en") and "kyso ca revoke" in error.message("vi")
