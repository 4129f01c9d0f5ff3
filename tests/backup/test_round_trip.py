"""A backup restored into a new home and a new database is the same CA: the audit chain
verifies against its checkpoints, CRL numbers go on after the last one, no serial comes back,
and OCSP answers the same for the same serials (status, revocation time, reason), signed by
the restored responder key. A wrong passphrase or a changed byte writes nothing."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from asn1crypto import ocsp as asn1_ocsp
from conftest import make_env, open_instance
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509 import ocsp
from sqlalchemy import select
from support import postgres as pg
from support import require_or_skip
from support.cli import kyso

from kyso.audit import checkpoints
from kyso.backup import archive
from kyso.backup.sealed import BackupDamaged, BackupPassphraseWrong
from kyso.context import Context
from kyso.errors import Conflict
from kyso.pki import crl, issuance, status
from kyso.pki.names import parse_subject
from kyso.settings import Settings
from kyso.store.models import Certificate, IdentityRole, Profile, RevocationReason

PASSPHRASE = b"backup passphrase, not a secret"


@dataclass
class Source:
    ctx: Context
    env: dict[str, str]
    backend: str
    serials: list[str]
    revoked: str
    suspended: str
    last_crl: int
    backup: Path


def _database(backend: str, home: Path, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        return f"sqlite:///{home / 'kyso.db'}"
    base = pg.server_url()
    require_or_skip(base, "PostgreSQL (run scripts/test-setup.sh and export KYSO_TEST_PG_URL)")
    assert base is not None
    url, drop = pg.fresh_database(base)
    request.addfinalizer(drop)
    return url


def _issue(ctx: Context, name: str) -> str:
    key = rsa.generate_private_key(65537, 2048)
    spec = issuance.IssueSpec(
        Profile.INDIVIDUAL,
        parse_subject(f"CN={name},O=UBND huyện Ba Bể,L=Bắc Kạn,C=VN"),
        key.public_key(),
    )
    with ctx.db.session() as session:
        return issuance.issue(session, ctx.authority, spec, "test").serial


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def source(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Source]:
    """An instance with certificates issued, one revoked, one suspended, a CRL made, OCSP
    answers signed and its audit log anchored; and its backup."""
    home = tmp_path_factory.mktemp(f"source-{request.param}")
    env = make_env(home, _database(request.param, home, request))
    ctx = open_instance(env)
    serials = [_issue(ctx, n) for n in ("Nguyễn Văn An", "Trần Thị Bình", "Lê Văn Cường")]
    with ctx.db.session() as session:
        status.revoke(session, ctx.authority, serials[0], RevocationReason.KEY_COMPROMISE, "t")
        status.suspend(session, ctx.authority, serials[1], "t")
    with ctx.db.session() as session:
        issuing = ctx.authority.identity(IdentityRole.ISSUING)
        last_crl = crl.generate(session, ctx.authority, issuing).number
    ctx.responder.refresh()
    checkpoints.make(ctx)
    backup = tmp_path_factory.mktemp("archives") / f"{request.param}.kbk"
    archive.make(ctx.settings, backup, PASSPHRASE)
    yield Source(ctx, env, request.param, serials, serials[0], serials[1], last_crl, backup)
    ctx.close()


@dataclass
class Target:
    ctx: Context
    env: dict[str, str]
    restored: archive.Restored


@pytest.fixture(scope="module")
def target(
    source: Source, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Target]:
    """The backup restored into a new home and a new database."""
    home = tmp_path_factory.mktemp(f"target-{source.backend}") / "home"
    url = _database(source.backend, home, request)
    env = make_env(home, url)
    restored = archive.restore(
        source.backup,
        home,
        PASSPHRASE,
        database_url=None if source.backend == "sqlite" else url,
        env=env,
    )
    ctx = Context(Settings.from_env(env))
    yield Target(ctx, env, restored)
    ctx.close()


def _ocsp(ctx: Context, serial: str) -> tuple[str, datetime | None, str | None]:
    """The restored or original responder's answer for ``serial``, signed now (a nonce),
    with its signature checked against the responder certificate it carries."""
    issuing = ctx.authority.identity(IdentityRole.ISSUING)
    with ctx.db.read() as session:
        der = session.execute(
            select(Certificate.der).where(Certificate.serial == serial)
        ).scalar_one()
    request = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(x509.load_der_x509_certificate(der), issuing.certificate, hashes.SHA1())
        .add_extension(x509.OCSPNonce(os.urandom(16)), critical=False)
        .build()
    )
    answer = ctx.responder.respond(request.public_bytes(serialization.Encoding.DER))
    parsed = ocsp.load_der_ocsp_response(answer.der)
    responder = parsed.certificates[0]
    responder.verify_directly_issued_by(issuing.certificate)
    assert parsed.signature_hash_algorithm is not None
    responder.public_key().verify(  # type: ignore[union-attr,call-arg]
        parsed.signature,
        parsed.tbs_response_bytes,
        padding.PKCS1v15(),  # type: ignore[arg-type]
        parsed.signature_hash_algorithm,  # type: ignore[arg-type]
    )
    single = asn1_ocsp.OCSPResponse.load(answer.der)["response_bytes"]["response"].parsed[
        "tbs_response_data"
    ]["responses"][0]["cert_status"]
    if single.name != "revoked":
        return single.name, None, None
    return (
        single.name,
        single.chosen["revocation_time"].native,
        single.chosen["revocation_reason"].native,
    )


def test_the_restored_audit_chain_verifies_against_its_checkpoints(
    source: Source, target: Target
) -> None:
    check = checkpoints.verify(target.ctx)
    assert check.ok, check.describe()
    assert check.checkpoint is not None and check.unanchored == 0
    assert check.chain.entries == checkpoints.verify(source.ctx).chain.entries
    assert target.restored.manifest["database"]["kind"] == (
        "sqlite" if source.backend == "sqlite" else "postgresql"
    )
    done = kyso(target.env, "audit", "verify", lang="en")
    assert done.returncode == 0, done.stderr
    assert "audit chain intact" in done.stdout


def test_ocsp_answers_the_same_for_the_same_serials(source: Source, target: Target) -> None:
    for serial in source.serials:
        assert _ocsp(target.ctx, serial) == _ocsp(source.ctx, serial)
    revoked = _ocsp(target.ctx, source.revoked)
    assert revoked[0] == "revoked" and revoked[2] == "key_compromise"
    assert _ocsp(target.ctx, source.suspended)[2] == "certificate_hold"
    assert _ocsp(target.ctx, source.serials[2])[0] == "good"


def test_the_next_crl_number_continues_after_the_last_one(source: Source, target: Target) -> None:
    with target.ctx.db.session() as session:
        issuing = target.ctx.authority.identity(IdentityRole.ISSUING)
        made = crl.generate(session, target.ctx.authority, issuing)
    assert made.number > source.last_crl
    parsed = x509.load_der_x509_crl(made.der)
    parsed_number = parsed.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    assert parsed_number == made.number
    assert parsed.is_signature_valid(issuing.certificate.public_key())  # type: ignore[arg-type]
    assert {e.serial_number for e in parsed} >= {int(source.revoked, 16)}


def test_a_new_certificate_gets_a_serial_never_used_before(source: Source, target: Target) -> None:
    with source.ctx.db.read() as session:
        before = set(session.execute(select(Certificate.serial)).scalars())
    new = _issue(target.ctx, "Phạm Thị Dung")
    assert new not in before
    with target.ctx.db.read() as session:
        assert set(session.execute(select(Certificate.serial)).scalars()) == before | {new}


def test_restored_files_are_owner_only(target: Target) -> None:
    home = target.restored.home
    assert home.stat().st_mode & 0o777 == 0o700
    for path in home.rglob("*"):
        expected = 0o700 if path.is_dir() else 0o600
        assert path.stat().st_mode & 0o777 == expected, path
    assert (home / "audit" / "checkpoints.jsonl").is_file()
    assert any((home / "keys").iterdir())


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


@pytest.mark.parametrize(
    "change",
    ["wrong passphrase", "byte flipped in the middle", "last byte flipped", "cut short"],
)
def test_a_wrong_passphrase_or_a_changed_archive_is_refused_and_writes_nothing(
    source: Source, tmp_path: Path, change: str
) -> None:
    data = source.backup.read_bytes()
    passphrase = PASSPHRASE
    if change == "wrong passphrase":
        passphrase = b"not the backup passphrase"
    elif change == "byte flipped in the middle":
        data = _flip(data, len(data) // 2)
    elif change == "last byte flipped":
        data = _flip(data, len(data) - 1)
    else:
        data = data[: len(data) - 100]
    changed = tmp_path / "in" / "changed.kbk"
    changed.parent.mkdir()
    changed.write_bytes(data)
    parent = tmp_path / "out"
    parent.mkdir()
    home = parent / "home"
    expected = BackupPassphraseWrong if change == "wrong passphrase" else BackupDamaged
    with pytest.raises(expected):
        archive.restore(changed, home, passphrase, env=make_env(home, f"sqlite:///{home}/x.db"))
    assert list(parent.iterdir()) == []  # no home, no staging left behind


def test_the_command_refuses_a_changed_archive_with_a_clear_message(
    source: Source, tmp_path: Path
) -> None:
    changed = tmp_path / "changed.kbk"
    changed.write_bytes(_flip(source.backup.read_bytes(), 5000))
    (tmp_path / "pass").write_text(PASSPHRASE.decode() + "\n")
    home = tmp_path / "home"
    env = make_env(home, f"sqlite:///{home}/kyso.db")
    done = kyso(
        env, "restore", changed, "--home", home, "--passphrase-file", tmp_path / "pass", lang="en"
    )
    assert done.returncode == 1
    assert "[backup_damaged]" in done.stderr and "nothing was restored" in done.stderr
    assert not home.exists()
    (tmp_path / "wrong").write_text("another passphrase entirely\n")
    done = kyso(
        env, "restore", source.backup, "--home", home, "--passphrase-file", tmp_path / "wrong"
    )
    assert done.returncode == 1
    assert "[backup_passphrase_wrong]" in done.stderr and "không đúng" in done.stderr
    assert not home.exists()


def test_a_home_that_is_not_empty_is_refused(source: Source, tmp_path: Path) -> None:
    (tmp_path / "something").write_text("x")
    with pytest.raises(Conflict):
        archive.restore(source.backup, tmp_path, PASSPHRASE, env=source.env)
    assert [p.name for p in tmp_path.iterdir()] == ["something"]


def test_the_manifest_names_every_member_with_its_digest(
    source: Source, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    home = tmp_path / "home"
    url = _database(source.backend, home, request)
    manifest = archive.restore(
        source.backup,
        home,
        PASSPHRASE,
        database_url=None if source.backend == "sqlite" else url,
        env=make_env(home, url),
    ).manifest
    names = {m["name"] for m in manifest["members"]}
    assert "audit/checkpoints.jsonl" in names
    assert any(n.startswith("home/keys/") for n in names)
    assert all(len(m["sha256"]) == 64 for m in manifest["members"])
    assert manifest["keystore"] == {
        "kind": "software",
        "in_backup": True,
        "pkcs11_token": None,
        "passphrase_in_backup": False,  # the tests give it in KYSO_KEYSTORE_PASSPHRASE
        "note": None,
    }
    assert {k["role"] for k in manifest["ca_keys"]} >= {"root", "issuing", "ocsp", "tsa"}
    assert manifest["schema_revision"] and manifest["kyso_version"]


def test_the_command_writes_an_owner_only_archive_and_refuses_a_short_passphrase(
    source: Source, tmp_path: Path
) -> None:
    (tmp_path / "pass").write_text(PASSPHRASE.decode() + "\n")
    (tmp_path / "short").write_text("short\n")
    out = tmp_path / "by-command.kbk"
    done = kyso(source.env, "backup", "-o", out, "--passphrase-file", tmp_path / "short")
    assert done.returncode == 1 and "12" in done.stderr
    assert not out.exists()
    done = kyso(source.env, "backup", "-o", out, "--passphrase-file", tmp_path / "pass", lang="en")
    assert done.returncode == 0, done.stderr
    assert "backup written" in done.stdout and "certificates" in done.stdout
    assert out.stat().st_mode & 0o777 == 0o600
    assert "KYSO_KEYSTORE_PASSPHRASE" in done.stderr  # the key store's passphrase is not in it
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
