"""TOTP secrets at rest: sealed with the key store's data key, never in clear in the database.

Whoever reads the database (a copied file, a backup, a SQL injection) learns nothing that
computes a code; logging in with a code still works; and rows an older kyso left in clear
are sealed when the server starts and on ``kyso init --exist-ok``.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from conftest import make_env, open_instance
from fastapi.testclient import TestClient
from sqlalchemy import select, text
from support.cli import kyso

from kyso import clock
from kyso.registry import totp, users
from kyso.registry.access import cli_principal
from kyso.registry.users import LoginStatus
from kyso.settings import Settings
from kyso.store.models import Role, User
from kyso.web.app import create_app

ADMIN = cli_principal("cli:test")
PASSWORD = "Bac-Kan-ky-so-2017"


def _auditor(ctx, username: str) -> tuple[str, str]:
    """A new auditor (a role that must give a TOTP code): their id and the secret shown once."""
    with ctx.db.session() as session:
        made = users.create(
            ADMIN,
            session,
            users.UserInput(
                username=username, full_name="Hà Thị Kiểm", password=PASSWORD, role=Role.AUDITOR
            ),
        )
        assert made.totp is not None
        return made.user.public_id, made.totp.secret


def _row(ctx, username: str) -> dict[str, object]:
    with ctx.db.engine.connect() as conn:
        return dict(
            conn.execute(text("SELECT * FROM users WHERE username = :u"), {"u": username})
            .one()
            ._mapping
        )


def _login(ctx, username: str, secret: str) -> LoginStatus:
    now = clock.now()
    with ctx.db.session() as session:
        return users.login(session, username, PASSWORD, totp.code_at(secret, now), now=now).status


def _revealing_forms(secret: str) -> list[bytes]:
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    return [secret.encode(), secret.lower().encode(), key, key.hex().encode()]


def test_the_users_row_holds_no_form_of_the_secret(registry, uniq) -> None:
    username = f"kiem{uniq()}"
    _, secret = _auditor(registry.ctx, username)
    row = _row(registry.ctx, username)
    assert row["totp_secret"] is None
    assert row["totp_secret_sealed"]
    for value in row.values():
        data = value if isinstance(value, bytes) else str(value).encode()
        for form in _revealing_forms(secret):
            assert form not in data


def test_the_sqlite_files_hold_no_form_of_the_secret(tmp_path: Path) -> None:
    env = make_env(tmp_path, f"sqlite:///{tmp_path / 'kyso.db'}")
    ctx = open_instance(env, init=False)
    try:
        _, secret = _auditor(ctx, "kiemtoan")
        with ctx.db.read() as session:  # still open: the -wal file holds the newest pages
            session.execute(select(User.id)).all()
            files = [p for p in tmp_path.glob("kyso.db*") if p.is_file()]
            contents = b"".join(p.read_bytes() for p in files)
    finally:
        ctx.close()
    assert files
    for form in _revealing_forms(secret):
        assert form not in contents


def test_login_with_a_totp_code_still_works(registry, uniq) -> None:
    username = f"kiem{uniq()}"
    _, secret = _auditor(registry.ctx, username)
    assert _login(registry.ctx, username, secret) is LoginStatus.OK


def test_a_sealed_secret_copied_to_another_user_opens_nothing(registry, uniq) -> None:
    victim, attacker = f"kiem{uniq()}", f"kiem{uniq()}"
    _, victim_secret = _auditor(registry.ctx, victim)
    _auditor(registry.ctx, attacker)
    with registry.ctx.db.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE users SET totp_secret_sealed = "
                "(SELECT totp_secret_sealed FROM users WHERE username = :v) WHERE username = :a"
            ),
            {"v": victim, "a": attacker},
        )
    with pytest.raises(Exception) as refused:
        _login(registry.ctx, attacker, victim_secret)
    assert getattr(refused.value, "code", None) == "sealed_data_unreadable"


def _make_clear(ctx, username: str, secret: str) -> None:
    """The row as kyso before migration 0007 left it: the secret in clear, nothing sealed."""
    with ctx.db.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE users SET totp_secret = :s, totp_secret_sealed = NULL WHERE username = :u"
            ),
            {"s": secret, "u": username},
        )


def test_clear_secrets_are_sealed_when_the_server_starts(registry, uniq) -> None:
    username = f"kiem{uniq()}"
    _, secret = _auditor(registry.ctx, username)
    _make_clear(registry.ctx, username, secret)
    assert _row(registry.ctx, username)["totp_secret"] == secret
    app = create_app(Settings.from_env(registry.env), scheduler=False)
    with TestClient(app):
        pass
    row = _row(registry.ctx, username)
    assert row["totp_secret"] is None and row["totp_secret_sealed"]
    assert _login(registry.ctx, username, secret) is LoginStatus.OK


def test_clear_secrets_are_sealed_by_init_exist_ok(tmp_path: Path) -> None:
    env = make_env(tmp_path, f"sqlite:///{tmp_path / 'kyso.db'}")
    ctx = open_instance(env)
    try:
        _, secret = _auditor(ctx, "kiemtoan")
        _make_clear(ctx, "kiemtoan", secret)
        result = kyso(env, "init", "--exist-ok")
        assert result.returncode == 0, result.stdout + result.stderr
        row = _row(ctx, "kiemtoan")
        assert row["totp_secret"] is None and row["totp_secret_sealed"]
        assert _login(ctx, "kiemtoan", secret) is LoginStatus.OK
    finally:
        ctx.close()
