"""`kyso` as an operator runs it: a separate process, its exit status and what it prints.

One CA per module is made by `kyso init` itself, without a passphrase in the environment, so
every later command also proves that the generated secrets/keystore.pass is picked up. State a
test needs (a certificate to revoke, say) is set up through the services, which is quicker
than a process per step; the step under test always goes through the command.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import _database_url, make_env
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID
from sqlalchemy import func, select

from kyso.audit.log import verify
from kyso.context import Context
from kyso.pki import issuance, status
from kyso.pki.names import parse_subject
from kyso.settings import Settings
from kyso.store.models import (
    ApiClient,
    CaIdentity,
    CertEventKind,
    Certificate,
    CertificateEvent,
    CertificateRequest,
    CertStatus,
    IdentityRole,
    Profile,
    RequestState,
    RevocationReason,
    User,
)

KYSO = [sys.executable, "-m", "kyso.cli.main"]
SUBJECT = "CN=Nguyễn Văn An,OU=Văn phòng,O=UBND huyện Ba Bể,L=Bắc Kạn,C=VN"
P12_PASSWORD = "Bac-Kan-2025-p12"


def _env(home: Path, database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KYSO_")}
    # Rich wraps at the terminal width; 80 columns is what a pipe or a log file gets.
    env.update(make_env(home, database_url, **extra), COLUMNS="80")
    return env


def _run(
    env: dict[str, str], *args: str | Path, cwd: Path | None = None, **extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*KYSO, *map(str, args)],
        env={**env, **extra},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def _json(result: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(_ok(result).stdout)


def _fails_cleanly(result: subprocess.CompletedProcess[str], code: str, label: str = "lỗi") -> str:
    """Exit 1, and the error on exactly one stderr line: ``<label> [<code>]: message``."""
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"{label} [{code}]: "), lines[0]
    return lines[0]


@dataclass
class Cli:
    home: Path
    env: dict[str, str]
    init: dict[str, Any]
    ctx: Context

    def run(self, *args: str | Path, **extra: str) -> subprocess.CompletedProcess[str]:
        return _run(self.env, *args, cwd=self.home, **extra)

    def issue(self, cn: str = "Phạm Thị Thu") -> str:
        key = ec.generate_private_key(ec.SECP256R1())
        spec = issuance.IssueSpec(
            Profile.INDIVIDUAL,
            parse_subject(f"CN={cn},O=UBND huyện Pác Nặm,C=VN"),
            key.public_key(),
        )
        with self.ctx.db.session() as session:
            return issuance.issue(session, self.ctx.authority, spec, "test:cli").serial

    def row(self, serial: str) -> Certificate:
        with self.ctx.db.read() as session:
            return session.execute(
                select(Certificate).where(Certificate.serial == serial)
            ).scalar_one()


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    home = tmp_path_factory.mktemp("cli")
    env = _env(home, f"sqlite:///{home / 'kyso.db'}")
    del env["KYSO_KEYSTORE_PASSPHRASE"]
    init = _json(_run(env, "init", "--json", cwd=home))
    ctx = Context(Settings.from_env(env))
    yield Cli(home, env, init, ctx)
    ctx.close()


def _openssl(*args: str | Path) -> subprocess.CompletedProcess[str]:
    # errors="replace": openssl prints a BMPString friendlyName as raw low bytes.
    return subprocess.run(
        ["openssl", *map(str, args)], capture_output=True, text=True, errors="replace"
    )


def _attr(name: x509.Name, oid: x509.ObjectIdentifier) -> str:
    (attribute,) = name.get_attributes_for_oid(oid)
    return str(attribute.value)


def _crl_serials(text: str) -> set[str]:
    """Serials listed by ``openssl crl -text``, as kyso spells them (lower-case, no padding)."""
    return {m.lstrip("0").lower() for m in re.findall(r"Serial Number: ([0-9A-Fa-f]+)", text)}


# -- init -------------------------------------------------------------------------------------
def test_init_json_names_root_issuing_ocsp_tsa_and_audit_signer(cli: Cli) -> None:
    identities = cli.init["identities"]
    assert [i["role"] for i in identities] == ["root", "issuing", "ocsp", "tsa", "audit"]
    for item in identities:
        assert item["subject"].startswith("CN=") and item["key_id"]
        assert int(item["serial"], 16) >= 1 << 64
    with cli.ctx.db.read() as session:
        stored = dict(session.execute(select(CaIdentity.role, CaIdentity.serial)).all())
    assert {r.value: s for r, s in stored.items()} == {i["role"]: i["serial"] for i in identities}


def test_init_without_a_passphrase_writes_a_0600_secret_later_commands_use(cli: Cli) -> None:
    assert "KYSO_KEYSTORE_PASSPHRASE" not in cli.env
    secret = cli.home / "secrets" / "keystore.pass"
    assert cli.init["passphrase_file"] == str(secret)
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert len(secret.read_text().strip()) >= 32
    # Signing with the CA's OCSP key needs the store opened with that secret.
    result = _ok(cli.run("ocsp", "refresh"))
    assert re.search(r"signed \d+ OCSP responses", result.stdout)


def test_second_init_is_refused_on_one_clean_line(cli: Cli) -> None:
    keys_before = sorted(p.name for p in (cli.home / "keys").iterdir())
    line = _fails_cleanly(cli.run("init"), "already_initialized")
    assert "khởi tạo" in line
    line = _fails_cleanly(cli.run("init", KYSO_LANG="en"), "already_initialized", label="error")
    assert "already initialized" in line and "not overwritten" in line
    assert sorted(p.name for p in (cli.home / "keys").iterdir()) == keys_before
    with cli.ctx.db.read() as session:
        assert session.scalar(select(func.count()).select_from(CaIdentity)) == 5


def test_init_exist_ok_leaves_the_ca_alone(cli: Cli) -> None:
    result = _ok(cli.run("init", "--exist-ok"))
    assert "already initialized" in result.stderr
    with cli.ctx.db.read() as session:
        assert session.scalar(select(func.count()).select_from(CaIdentity)) == 5


def test_init_demo_gives_vietnamese_ca_names(tmp_path: Path) -> None:
    env = _env(tmp_path, f"sqlite:///{tmp_path / 'kyso.db'}")
    data = _json(
        _run(
            env,
            "init",
            "--demo",
            "--json",
            "--algorithm",
            "ec-p384",
            "--signer-algorithm",
            "ec-p256",
            cwd=tmp_path,
        )
    )
    assert data["passphrase_file"] is None
    ctx = Context(Settings.from_env(env))
    try:
        for role in (IdentityRole.ROOT, IdentityRole.ISSUING):
            subject = ctx.authority.identity(role).certificate.subject
            assert "chuyên dùng" in _attr(subject, NameOID.COMMON_NAME)
            assert "UBND tỉnh Bắc Kạn" in _attr(subject, NameOID.ORGANIZATION_NAME)
            assert _attr(subject, NameOID.LOCALITY_NAME) == "Bắc Kạn"
        ocsp = ctx.authority.identity(IdentityRole.OCSP).certificate.subject
        assert "UBND tỉnh Bắc Kạn" in _attr(ocsp, NameOID.ORGANIZATION_NAME)
        # The demo signer can sign at once: a server-held key certified through the workflow.
        with ctx.db.read() as session:
            signer = session.execute(select(User).where(User.username == "signer")).scalar_one()
            theirs = session.execute(
                select(Certificate).where(Certificate.person_id == signer.person_id)
            ).scalar_one()
            issued = session.scalar(
                select(func.count())
                .select_from(CertificateRequest)
                .where(CertificateRequest.state == RequestState.ISSUED)
            )
        assert theirs.key_location.startswith("software:")
        assert theirs.status is CertStatus.GOOD
        assert issued == data["demo"]["certificates"] > 40
    finally:
        ctx.close()


@pytest.mark.postgres
def test_init_on_a_fresh_postgresql_database(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = _database_url("postgres", tmp_path, request)
    env = _env(tmp_path, url)
    data = _json(
        _run(
            env,
            "init",
            "--json",
            "--algorithm",
            "ec-p384",
            "--signer-algorithm",
            "ec-p256",
            cwd=tmp_path,
        )
    )
    assert [i["role"] for i in data["identities"]] == ["root", "issuing", "ocsp", "tsa", "audit"]
    assert data["database"] == url.split("@")[-1]  # no user name in what is printed
    ctx = Context(Settings.from_env(env))
    try:
        assert ctx.db.engine.dialect.name == "postgresql"
        with ctx.db.read() as session:
            assert session.scalar(select(func.count()).select_from(CaIdentity)) == 5
            assert verify(session).ok
    finally:
        ctx.close()


# -- the CA's chain ---------------------------------------------------------------------------
def test_ca_chain_writes_the_issuing_ca_then_the_root(cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "chain.pem"
    _ok(cli.run("ca", "chain", "-o", out))
    issuing, root = x509.load_pem_x509_certificates(out.read_bytes())
    serials = {i["role"]: i["serial"] for i in cli.init["identities"]}
    assert format(issuing.serial_number, "x") == serials["issuing"]
    assert format(root.serial_number, "x") == serials["root"]
    assert root.subject == root.issuer
    assert issuing.issuer == root.subject != issuing.subject
    issuing.verify_directly_issued_by(root)


# -- issuance ---------------------------------------------------------------------------------
def test_issue_from_a_csr_keeps_the_vietnamese_subject_and_chains(cli: Cli, tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "yêu cầu")]))
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "req.pem").write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    data = _json(
        cli.run(
            "cert",
            "issue",
            "--profile",
            "individual",
            "--subject",
            SUBJECT,
            "--csr",
            tmp_path / "req.pem",
            "--json",
        )
    )

    cert = x509.load_pem_x509_certificate(data["certificate_pem"].encode())
    assert re.fullmatch(r"[0-9a-f]+", data["serial"])
    assert int(data["serial"], 16) == cert.serial_number
    assert (data["status"], data["profile"], data["key_location"]) == ("good", "individual", "csr")
    assert _attr(cert.subject, NameOID.COMMON_NAME) == "Nguyễn Văn An"
    assert _attr(cert.subject, NameOID.ORGANIZATIONAL_UNIT_NAME) == "Văn phòng"
    assert _attr(cert.subject, NameOID.ORGANIZATION_NAME) == "UBND huyện Ba Bể"
    assert _attr(cert.subject, NameOID.LOCALITY_NAME) == "Bắc Kạn"
    assert cert.public_key() == key.public_key()

    (tmp_path / "leaf.pem").write_text(data["certificate_pem"])
    (tmp_path / "chain.pem").write_text("".join(i.pem() for i in cli.ctx.authority.chain()))
    verified = _openssl("verify", "-CAfile", tmp_path / "chain.pem", tmp_path / "leaf.pem")
    assert verified.returncode == 0 and ": OK" in verified.stdout, verified.stdout + verified.stderr
    shown = _openssl(
        "x509",
        "-in",
        tmp_path / "leaf.pem",
        "-noout",
        "-subject",
        "-nameopt",
        "utf8,sep_comma_plus",
    )
    assert "CN=Nguyễn Văn An" in shown.stdout, shown.stdout
    assert cli.row(data["serial"]).subject == SUBJECT


def test_issue_as_pkcs12_writes_a_0600_file_opened_by_the_password(
    cli: Cli, tmp_path: Path
) -> None:
    p12 = tmp_path / "an.p12"
    data = _json(
        cli.run(
            "cert",
            "issue",
            "--profile",
            "individual",
            "--subject",
            SUBJECT,
            "--p12-out",
            p12,
            "--p12-password",
            P12_PASSWORD,
            "--json",
        )
    )
    assert data["pkcs12"] == str(p12)
    assert data["key_location"] == "pkcs12"
    assert stat.S_IMODE(p12.stat().st_mode) == 0o600

    bundle = pkcs12.load_pkcs12(p12.read_bytes(), P12_PASSWORD.encode())
    assert bundle.cert is not None and bundle.key is not None
    assert format(bundle.cert.certificate.serial_number, "x") == data["serial"]
    assert bundle.key.public_key() == bundle.cert.certificate.public_key()
    assert _attr(bundle.cert.certificate.subject, NameOID.COMMON_NAME) == "Nguyễn Văn An"
    issuing = cli.ctx.authority.identity(IdentityRole.ISSUING).certificate
    assert issuing in [c.certificate for c in bundle.additional_certs]

    opened = _openssl("pkcs12", "-in", p12, "-passin", f"pass:{P12_PASSWORD}", "-nokeys")
    assert opened.returncode == 0, opened.stderr
    assert opened.stdout.count("BEGIN CERTIFICATE") == 1 + len(bundle.additional_certs)
    refused = _openssl("pkcs12", "-in", p12, "-passin", "pass:wrong-password", "-nokeys")
    assert refused.returncode != 0


@pytest.mark.parametrize("sources", ["none", "two"])
def test_issue_needs_exactly_one_key_source(cli: Cli, tmp_path: Path, sources: str) -> None:
    p12 = tmp_path / "x.p12"
    (tmp_path / "req.pem").write_text("not read")
    extra = {
        "none": [],
        "two": ["--csr", tmp_path / "req.pem", "--p12-out", p12, "--p12-password", P12_PASSWORD],
    }[sources]
    line = _fails_cleanly(
        cli.run("cert", "issue", "--profile", "individual", "--subject", SUBJECT, *extra),
        "invalid_input",
    )
    assert "--csr" in line and "--p12-out" in line and "--token" in line
    assert not p12.exists()


# -- listing and showing ----------------------------------------------------------------------
def test_cert_list_json_and_the_status_filter(cli: Cli) -> None:
    good, revoked = cli.issue("Hà Văn Tốt"), cli.issue("Hà Văn Hủy")
    with cli.ctx.db.session() as session:
        status.revoke(session, cli.ctx.authority, revoked, RevocationReason.SUPERSEDED, "test")

    everything = {c["serial"]: c for c in _json(cli.run("cert", "list", "--json"))}
    assert everything[good]["status"] == "good"
    assert everything[revoked]["status"] == "revoked"
    assert everything[revoked]["reason"] == "superseded"
    assert everything[good]["subject"] == "CN=Hà Văn Tốt,O=UBND huyện Pác Nặm,C=VN"

    only_revoked = _json(cli.run("cert", "list", "--status", "revoked", "--json"))
    assert revoked in {c["serial"] for c in only_revoked}
    assert {c["status"] for c in only_revoked} == {"revoked"}


def test_cert_show_pem_prints_the_stored_certificate(cli: Cli) -> None:
    serial = cli.issue()
    result = _ok(cli.run("cert", "show", serial, "--pem"))
    cert = x509.load_pem_x509_certificate(result.stdout.encode())
    assert cert.public_bytes(serialization.Encoding.DER) == cli.row(serial).der
    assert result.stdout.startswith("-----BEGIN CERTIFICATE-----")


# -- status changes ---------------------------------------------------------------------------
def test_suspend_restore_revoke_are_shown_with_their_history(cli: Cli) -> None:
    serial = cli.issue()
    suspended = _json(cli.run("cert", "suspend", serial, "--json"))
    assert (suspended["status"], suspended["reason"]) == ("suspended", "certificate-hold")
    assert cli.row(serial).status is CertStatus.SUSPENDED

    assert _json(cli.run("cert", "restore", serial, "--json"))["status"] == "good"
    revoked = _json(cli.run("cert", "revoke", serial, "--reason", "key-compromise", "--json"))
    assert (revoked["status"], revoked["reason"]) == ("revoked", "key-compromise")

    shown = _json(cli.run("cert", "show", serial, "--json"))
    assert (shown["status"], shown["reason"]) == ("revoked", "key-compromise")
    assert shown["revoked_at"] is not None
    history = shown["history"]
    assert [h["event"] for h in history] == ["issued", "suspended", "restored", "revoked"]
    assert history[-1]["reason"] == "key-compromise"
    assert history[-1]["by"].startswith("cli:")
    assert x509.load_pem_x509_certificate(shown["certificate_pem"].encode()).serial_number == int(
        serial, 16
    )


def test_revoking_twice_is_an_invalid_transition(cli: Cli) -> None:
    serial = cli.issue()
    with cli.ctx.db.session() as session:
        status.revoke(session, cli.ctx.authority, serial, RevocationReason.SUPERSEDED, "test")
    line = _fails_cleanly(
        cli.run("cert", "revoke", serial, "--reason", "key-compromise"), "invalid_transition"
    )
    assert serial in line
    row = cli.row(serial)
    assert row.reason is RevocationReason.SUPERSEDED
    with cli.ctx.db.read() as session:
        revocations = session.scalar(
            select(func.count())
            .select_from(CertificateEvent)
            .where(
                CertificateEvent.certificate_id == row.id,
                CertificateEvent.kind == CertEventKind.REVOKED,
            )
        )
    assert revocations == 1


def test_unknown_serial_is_not_found(cli: Cli) -> None:
    line = _fails_cleanly(cli.run("cert", "revoke", "1234abcd" * 4), "not_found")
    assert "1234abcd" in line


def test_bad_reason_is_a_usage_error(cli: Cli) -> None:
    serial = cli.issue()
    result = cli.run("cert", "revoke", serial, "--reason", "lost-it")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "--reason" in result.stderr
    assert cli.row(serial).status is CertStatus.GOOD


# -- CRLs, audit, API clients -----------------------------------------------------------------
@pytest.mark.interop
def test_full_and_delta_crls_are_der_that_openssl_reads(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "chain.pem").write_text("".join(i.pem() for i in cli.ctx.authority.chain()))
    revoked = cli.issue("Đinh Văn Lộ")
    with cli.ctx.db.session() as session:
        status.revoke(session, cli.ctx.authority, revoked, RevocationReason.KEY_COMPROMISE, "t")
    _ok(cli.run("crl", "-o", tmp_path / "full.crl"))
    full = _openssl(
        "crl",
        "-inform",
        "DER",
        "-in",
        tmp_path / "full.crl",
        "-noout",
        "-text",
        "-CAfile",
        tmp_path / "chain.pem",
    )
    assert full.returncode == 0, full.stderr
    assert "verify OK" in full.stdout + full.stderr
    assert "Delta CRL Indicator" not in full.stdout
    assert revoked in _crl_serials(full.stdout)
    assert "Key Compromise" in full.stdout

    # Changed after the full CRL, so in the delta: one revoked, one suspended.
    gone, held = cli.issue("Đinh Văn Thay"), cli.issue("Đinh Thị Chờ")
    with cli.ctx.db.session() as session:
        status.revoke(session, cli.ctx.authority, gone, RevocationReason.SUPERSEDED, "t")
        status.suspend(session, cli.ctx.authority, held, "t")
    _ok(cli.run("crl", "--delta", "-o", tmp_path / "delta.crl"))
    delta = _openssl(
        "crl",
        "-inform",
        "DER",
        "-in",
        tmp_path / "delta.crl",
        "-noout",
        "-text",
        "-CAfile",
        tmp_path / "chain.pem",
    )
    assert delta.returncode == 0, delta.stderr
    assert "verify OK" in delta.stdout + delta.stderr
    assert "Delta CRL Indicator" in delta.stdout
    assert {gone, held} <= _crl_serials(delta.stdout)
    assert "Superseded" in delta.stdout and "Certificate Hold" in delta.stdout


def test_audit_verify_exits_0_on_the_intact_chain(cli: Cli) -> None:
    with cli.ctx.db.read() as session:
        entries = verify(session).entries
    assert entries >= 3  # ca.initialized and the first CRL of each CA
    result = _ok(cli.run("audit", "verify"))
    assert "audit chain intact" in result.stdout
    assert f"{entries} entries" in result.stdout


def test_api_client_create_prints_a_token_once(cli: Cli) -> None:
    result = _ok(
        cli.run("api-client", "create", "Cổng dịch vụ công", "--scope", "certificates:read")
    )
    token = result.stdout.strip()
    assert token.startswith("kyso_") and "\n" not in token
    with cli.ctx.db.read() as session:
        client = session.execute(
            select(ApiClient).where(ApiClient.name == "Cổng dịch vụ công")
        ).scalar_one()
    assert client.token_sha256 == hashlib.sha256(token.encode()).hexdigest()
    assert client.scopes == "certificates:read"


def test_an_empty_numeric_variable_means_its_default(tmp_path: Path) -> None:
    """``KYSO_X=`` (as a compose or systemd file leaves it) is unset, for every number."""
    defaults = Settings.from_env({"KYSO_HOME": str(tmp_path)})
    numbers = {
        "KYSO_CRL_NEXT_UPDATE_HOURS": "crl_next_update_hours",
        "KYSO_MAX_UPLOAD_BYTES": "max_upload_bytes",
        "KYSO_VERIFY_QUEUE": "verify_queue",
        "KYSO_TSA_PER_MINUTE": "tsa_per_minute",
        "KYSO_LOGIN_FAILURES_PER_HOUR": "login_failures_per_hour",
        "KYSO_SMTP_PORT": "smtp_port",
        "KYSO_AUDIT_CHECKPOINT_MINUTES": "audit_checkpoint_minutes",
    }
    empty = Settings.from_env({"KYSO_HOME": str(tmp_path), **dict.fromkeys(numbers, "")})
    for field in numbers.values():
        assert getattr(empty, field) == getattr(defaults, field), field
    assert (
        Settings.from_env({"KYSO_HOME": str(tmp_path), "KYSO_TSA_PER_MINUTE": "7"}).tsa_per_minute
        == 7
    )
