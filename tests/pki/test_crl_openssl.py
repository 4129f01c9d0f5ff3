"""`openssl verify -crl_check` agrees with kyso at every step of a certificate's life."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from kyso.context import Context
from kyso.pki import crl, issuance, status
from kyso.pki.names import parse_subject
from kyso.store.models import IdentityRole, Profile, RevocationReason

pytestmark = pytest.mark.interop


def _issue(ctx: Context) -> issuance.Issued:
    key = rsa.generate_private_key(65537, 2048)
    spec = issuance.IssueSpec(
        Profile.INDIVIDUAL,
        parse_subject("CN=Hoàng Thị Lan,OU=Phòng Y tế,O=UBND huyện Chợ Đồn,L=Bắc Kạn,C=VN"),
        key.public_key(),
    )
    with ctx.db.session() as session:
        return issuance.issue(session, ctx.authority, spec, "test")


def _verify(
    ctx: Context, leaf: issuance.Issued, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    (tmp_path / "chain.pem").write_text("".join(i.pem() for i in ctx.authority.chain()))
    (tmp_path / "leaf.pem").write_text(leaf.pem())
    with ctx.db.session() as session:
        der = crl.generate(session, ctx.authority, ctx.authority.identity(IdentityRole.ISSUING)).der
    (tmp_path / "crl.der").write_bytes(der)
    subprocess.run(
        [
            "openssl",
            "crl",
            "-inform",
            "DER",
            "-in",
            tmp_path / "crl.der",
            "-out",
            tmp_path / "crl.pem",
        ],
        check=True,
    )
    return subprocess.run(
        [
            "openssl",
            "verify",
            "-crl_check",
            "-CAfile",
            tmp_path / "chain.pem",
            "-CRLfile",
            tmp_path / "crl.pem",
            tmp_path / "leaf.pem",
        ],
        capture_output=True,
        text=True,
    )


def test_openssl_sees_good_then_revoked(ctx: Context, tmp_path: Path) -> None:
    leaf = _issue(ctx)
    good = _verify(ctx, leaf, tmp_path)
    assert good.returncode == 0, good.stdout + good.stderr
    with ctx.db.session() as session:
        status.revoke(session, ctx.authority, leaf.serial, RevocationReason.KEY_COMPROMISE, "test")
    revoked = _verify(ctx, leaf, tmp_path)
    assert revoked.returncode != 0
    assert "certificate revoked" in revoked.stdout + revoked.stderr


def test_openssl_sees_suspension_and_restore(ctx: Context, tmp_path: Path) -> None:
    leaf = _issue(ctx)
    with ctx.db.session() as session:
        status.suspend(session, ctx.authority, leaf.serial, "test")
    held = _verify(ctx, leaf, tmp_path)
    assert held.returncode != 0
    assert "certificate revoked" in held.stdout + held.stderr
    with ctx.db.session() as session:
        status.restore(session, ctx.authority, leaf.serial, "test")
    restored = _verify(ctx, leaf, tmp_path)
    assert restored.returncode == 0, restored.stdout + restored.stderr
