"""`kyso init --demo` and the registry commands as an operator runs them (separate processes;
state a step needs is read or made in process, which is quicker than a process per step)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest
from conftest import make_env
from sqlalchemy import select

from kyso.context import Context
from kyso.registry import devices, totp, users
from kyso.registry.access import cli_principal
from kyso.settings import Settings
from kyso.store.models import Organization, Person

KYSO = [sys.executable, "-m", "kyso.cli.main"]


def run(env: dict[str, str], *args: str, stdin: str | None = None, ok: bool = True):
    done = subprocess.run(
        [*KYSO, *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if ok:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("cli-demo")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KYSO_")}
    env.update(make_env(home, f"sqlite:///{home / 'kyso.db'}"), COLUMNS="200")
    result = json.loads(run(env, "init", "--demo", "--json").stdout)
    ctx = Context(Settings.from_env(env))
    yield env, home, result, ctx
    ctx.close()


def _unit(ctx: Context, name: str) -> Organization:
    with ctx.db.read() as session:
        return session.execute(select(Organization).where(Organization.name == name)).scalar_one()


def test_init_demo_prints_the_demo_users_once(demo) -> None:
    _, home, result, _ = demo
    assert result["demo"]["organizations"] == 385
    assert result["demo"]["people"] >= 300
    users = {u["username"]: u for u in result["demo"]["users"]}
    assert set(users) == {"admin", "auditor", "babe", "signer", "lanhdao", "vanthu"}
    assert len(users["admin"]["password"]) >= 10
    assert len(totp.code_at(users["admin"]["totp_secret"], 0)) == 6  # a working secret
    credentials = home / "demo-users.txt"
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    assert users["admin"]["password"] in credentials.read_text(encoding="utf-8")


def test_org_export_by_agency_code(demo, tmp_path) -> None:
    env, _, _, ctx = demo
    target = tmp_path / "don-vi.csv"
    run(env, "org", "export", str(target), "--under", _unit(ctx, "UBND huyện Ba Bể").code)
    lines = target.read_text(encoding="utf-8-sig").splitlines()
    assert lines[0].startswith("STT,Tên đơn vị,Mã định danh,Đơn vị cấp trên")
    assert lines[1].split(",")[1] == "UBND huyện Ba Bể"
    assert any("UBND xã Khang Ninh" in line for line in lines)
    assert not any("Chợ Đồn" in line for line in lines)


def test_person_import_prints_each_problem_and_exits_1(demo, tmp_path) -> None:
    env, _, _, _ = demo
    bad = tmp_path / "thue-bao.csv"
    bad.write_text(
        'STT,Họ và tên,Số CCCD,"Cơ quan, đơn vị"\n'
        "1,Nông Văn Dũng,12345,UBND xã Khang Ninh\n"
        "2,Hà Thị Lan,,UBND xã Không Có\n",
        encoding="utf-8",
    )
    done = run(env, "person", "import", str(bad), ok=False)
    assert done.returncode == 1
    assert "dòng 2, cột 'Số CCCD'" in done.stderr
    assert "dòng 3, cột 'Cơ quan, đơn vị': không tìm thấy" in done.stderr
    assert "Traceback" not in done.stderr


def test_user_create_reads_the_password_from_stdin(demo) -> None:
    env, _, _, ctx = demo
    code = _unit(ctx, "Thanh tra tỉnh").code
    made = json.loads(
        run(
            env,
            "user",
            "create",
            "thanhtra2",
            "--role",
            "auditor",
            "--full-name",
            "Thanh tra viên 2",
            "--unit",
            code,
            "--password-stdin",
            "--json",
            stdin="Mat-khau-rat-dai-2025\n",
        ).stdout
    )
    assert made["role"] == "auditor" and made["totp_uri"].startswith("otpauth://totp/")


def test_user_reset_totp_gives_a_new_secret_and_the_old_one_stops_working(demo) -> None:
    env, _, _, ctx = demo
    code = _unit(ctx, "Thanh tra tỉnh").code
    first = json.loads(
        run(env, "user", "create", "thanhtra3", "--role", "auditor", "--full-name",
            "Thanh tra viên 3", "--unit", code, "--password-stdin", "--json",
            stdin="Mat-khau-rat-dai-2026\n").stdout
    )  # fmt: skip
    reset = json.loads(run(env, "user", "reset-totp", "thanhtra3", "--json").stdout)
    assert reset["totp_secret"] != first["totp_secret"]
    with ctx.db.read() as session:
        user = users.by_username(session, "thanhtra3")
        assert user is not None
        assert totp.read_secret(session, user) == reset["totp_secret"]
    missing = run(env, "user", "reset-totp", "nobody-here", ok=False)
    assert missing.returncode == 1 and "not_found" in missing.stderr


def test_device_handover_writes_the_minutes(demo, tmp_path) -> None:
    env, _, _, ctx = demo
    with ctx.db.session() as session:
        devices.add(
            cli_principal("cli:test"),
            session,
            devices.DeviceInput("CLI-0001", "ePass2003", unit=None),
        )
    with ctx.db.read() as session:
        receiver = session.execute(
            select(Person)
            .where(Person.organization_id == _unit(ctx, "UBND xã Khang Ninh").id)
            .limit(1)
        ).scalar_one()
    minutes = tmp_path / "bien-ban.pdf"
    handed = json.loads(
        run(
            env,
            "device",
            "handover",
            "CLI-0001",
            "--to",
            receiver.id_number,
            "--minutes",
            str(minutes),
            "--json",
        ).stdout
    )
    assert handed["to"] == receiver.full_name
    assert minutes.read_bytes().startswith(b"%PDF-")
    with ctx.db.read() as session:
        device = devices.by_serial(cli_principal("cli:test"), session, "CLI-0001")
        assert device.holder_person_id == receiver.id
