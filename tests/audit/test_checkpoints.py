"""Signed, time-stamped checkpoints anchor the audit chain, so what the hash chain alone cannot
show is found: the tail deleted (and the head row fixed to match), entries edited and every
later hash recomputed, everything deleted (checkpoint rows included).

Each checkpoint states ``{seq, head_hash, at}``; it is a detached CAdES B-T signature by
kyso's audit-signing certificate (issued by the issuing CA, never a CA key), stored in the
database and appended to a 0600 file outside it. ``verify`` walks the chain, then checks it
against the newest checkpoint of either place and says what comes after it.

Tampering happens on an instance of its own per backend (audit tables and checkpoint file
emptied before each test), never on the shared CA.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from asn1crypto import cms
from conftest import _database_url, make_env, open_instance
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text
from support.cli import kyso

from kyso import clock
from kyso.audit import checkpoints
from kyso.audit.checkpoints import AUDIT_SIGNING_EKU, Problem
from kyso.audit.log import Event, _digest, record
from kyso.context import Context
from kyso.keys.software import SoftwareKey
from kyso.pki import issuance
from kyso.pki.names import parse_subject
from kyso.pki.tsa import TimeStampAuthority
from kyso.registry import sessions, users
from kyso.registry.access import cli_principal
from kyso.settings import Settings
from kyso.signing.identity import SignerIdentity
from kyso.store.models import (
    AuditCheckpoint,
    AuditEntry,
    CaIdentity,
    IdentityRole,
    Profile,
    Role,
    User,
)
from kyso.web import app as web_app

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@dataclass
class Anchored:
    ctx: Context
    env: dict[str, str]
    home: Path

    def sql(self, statement: str, **params: object) -> None:
        with self.ctx.db.engine.begin() as conn:
            conn.execute(text(statement), params)

    @property
    def file(self) -> Path:
        return self.ctx.settings.audit_checkpoint_dir / "checkpoints.jsonl"

    def check(self) -> checkpoints.AnchoredCheck:
        return checkpoints.verify(self.ctx)

    def append(self, n: int, start: int = 1) -> None:
        for i in range(start, start + n):
            with self.ctx.db.session() as session:
                record(session, Event(f"user:{i}", "test.action", f"mục {i}", {"n": i}))

    def entry(self, seq: int) -> AuditEntry:
        with self.ctx.db.read() as session:
            return session.execute(select(AuditEntry).where(AuditEntry.seq == seq)).scalar_one()

    def checkpoint_rows(self) -> int:
        with self.ctx.db.read() as session:
            return session.execute(select(func.count()).select_from(AuditCheckpoint)).scalar_one()


@pytest.fixture(scope="module", params=BACKENDS)
def instance(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Anchored]:
    """A CA of its own (with its audit-signing certificate), tampered with by these tests."""
    home = tmp_path_factory.mktemp(f"anchored-{request.param}")
    env = make_env(home, _database_url(request.param, home, request))
    ctx = open_instance(env)
    yield Anchored(ctx, env, home)
    ctx.close()


@pytest.fixture
def logged(instance: Anchored) -> Anchored:
    """Six entries, a checkpoint at entry 6, then two more entries not yet anchored."""
    for table in ("audit_checkpoints", "audit_entries", "audit_head"):
        instance.sql(f"DELETE FROM {table}")
    instance.file.unlink(missing_ok=True)
    instance.append(6)
    made = checkpoints.make(instance.ctx)
    assert made is not None and made.seq == 6
    instance.append(2, start=7)
    return instance


def _rechain(anchored: Anchored, from_seq: int, details: dict[str, object]) -> None:
    """Edit one entry and recompute every later hash and the head: the chain alone is fine."""
    with anchored.ctx.db.read() as session:
        rows = list(
            session.execute(
                select(AuditEntry).where(AuditEntry.seq >= from_seq).order_by(AuditEntry.seq)
            ).scalars()
        )
    prev = rows[0].prev_hash
    for row in rows:
        data = details if row.seq == from_seq else json.loads(row.details)
        digest = _digest(prev, row.seq, row.at, Event(row.actor, row.action, row.target, data))
        anchored.sql(
            "UPDATE audit_entries SET details = :d, prev_hash = :p, hash = :h WHERE seq = :s",
            d=json.dumps(data, ensure_ascii=False, sort_keys=True),
            p=prev,
            h=digest,
            s=row.seq,
        )
        prev = digest
    anchored.sql("UPDATE audit_head SET hash = :h WHERE id = 1", h=prev)


def _cut_tail(anchored: Anchored, keep: int) -> None:
    """Delete every entry after ``keep`` and set the head row to match."""
    last = anchored.entry(keep)
    anchored.sql("DELETE FROM audit_entries WHERE seq > :k", k=keep)
    anchored.sql("UPDATE audit_head SET seq = :s, hash = :h WHERE id = 1", s=keep, h=last.hash)


# -- an intact log ----------------------------------------------------------------------------
def test_an_intact_log_says_what_is_after_the_last_checkpoint(logged: Anchored) -> None:
    check = logged.check()
    assert check.ok, check.describe()
    assert check.chain.entries == 8
    assert check.checkpoint is not None and check.checkpoint.seq == 6
    assert check.unanchored == 2
    when = clock.local(check.checkpoint.at).strftime("%Y-%m-%d %H:%M:%S")
    assert f"2 entries after the last checkpoint of {when}, not yet anchored" in check.describe()


def test_a_checkpoint_is_kept_in_the_database_and_in_a_private_file(logged: Anchored) -> None:
    assert logged.checkpoint_rows() == 1
    assert stat.S_IMODE(logged.file.stat().st_mode) == 0o600
    assert stat.S_IMODE(logged.file.parent.stat().st_mode) == 0o700
    line = json.loads(logged.file.read_text().splitlines()[-1])
    statement = json.loads(line["statement"])
    assert statement["seq"] == 6
    assert statement["head_hash"] == logged.entry(6).hash


def test_the_checkpoint_is_signed_by_the_audit_certificate_not_a_ca_key(logged: Anchored) -> None:
    with logged.ctx.db.read() as session:
        row = session.execute(select(AuditCheckpoint)).scalar_one()
    signed = cms.ContentInfo.load(row.signature)["content"]
    signer = signed["signer_infos"][0]["sid"].chosen
    audit = logged.ctx.authority.identity(IdentityRole.AUDIT)
    assert signer["serial_number"].native == audit.certificate.serial_number
    assert row.signer_serial == format(audit.certificate.serial_number, "x")
    eku = audit.certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert list(eku.value) == [AUDIT_SIGNING_EKU]
    ca_keys = {
        logged.ctx.authority.identity(role).key.key_id
        for role in (IdentityRole.ROOT, IdentityRole.ISSUING, IdentityRole.OCSP, IdentityRole.TSA)
    }
    assert audit.key.key_id not in ca_keys


def test_openssl_verifies_the_checkpoint_and_its_time_stamp(
    logged: Anchored, tmp_path: Path
) -> None:
    """Independent check: `openssl cms -verify` for the signature over the statement and
    `openssl ts -verify` for the signature time-stamp over the signature value."""
    with logged.ctx.db.read() as session:
        row = session.execute(select(AuditCheckpoint)).scalar_one()
    authority = logged.ctx.authority
    chain = tmp_path / "chain.pem"
    chain.write_text(
        authority.identity(IdentityRole.ISSUING).pem() + authority.identity(IdentityRole.ROOT).pem()
    )
    (tmp_path / "statement.json").write_bytes(row.statement.encode())
    (tmp_path / "checkpoint.p7s").write_bytes(row.signature)
    verified = subprocess.run(
        [
            "openssl", "cms", "-verify", "-binary", "-inform", "DER",
            "-in", str(tmp_path / "checkpoint.p7s"),
            "-content", str(tmp_path / "statement.json"),
            "-CAfile", str(chain), "-purpose", "any", "-out", os.devnull,
        ],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stderr
    assert "Verification successful" in verified.stderr

    signer_info = cms.ContentInfo.load(row.signature)["content"]["signer_infos"][0]
    token = next(
        a["values"][0]
        for a in signer_info["unsigned_attrs"]
        if a["type"].native == "signature_time_stamp_token"
    )
    assert row.timestamp_token == token.dump()
    (tmp_path / "token.der").write_bytes(token.dump())
    (tmp_path / "tsa.pem").write_text(authority.identity(IdentityRole.TSA).pem())
    digest = hashlib.sha256(signer_info["signature"].native).hexdigest()
    stamped = subprocess.run(
        [
            "openssl", "ts", "-verify", "-digest", digest, "-in", str(tmp_path / "token.der"),
            "-token_in", "-CAfile", str(chain), "-untrusted", str(tmp_path / "tsa.pem"),
        ],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert stamped.returncode == 0, stamped.stdout + stamped.stderr
    assert "Verification: OK" in stamped.stdout


def test_nothing_new_means_no_new_checkpoint(logged: Anchored) -> None:
    made = checkpoints.make(logged.ctx)
    assert made is not None and made.seq == 8
    assert checkpoints.make(logged.ctx) is None
    assert logged.checkpoint_rows() == 2
    assert len(logged.file.read_text().splitlines()) == 2
    check = logged.check()
    assert check.ok and check.unanchored == 0
    assert "every entry is anchored" in check.describe()


# -- the three attacks ------------------------------------------------------------------------
def test_a_deleted_tail_with_the_head_row_fixed_is_found(logged: Anchored) -> None:
    _cut_tail(logged, keep=4)
    check = logged.check()
    assert check.chain.ok  # the chain alone cannot tell
    assert not check.ok
    assert check.problem is Problem.ENTRIES_REMOVED
    assert "the log has 4 entries but the checkpoint of" in check.describe()
    assert "anchored 6" in check.describe()


def test_a_deleted_tail_is_found_from_the_file_when_the_checkpoint_rows_are_gone(
    logged: Anchored,
) -> None:
    _cut_tail(logged, keep=3)
    logged.sql("DELETE FROM audit_checkpoints")
    check = logged.check()
    assert (check.ok, check.problem) == (False, Problem.ENTRIES_REMOVED)
    assert check.checkpoint is not None and check.checkpoint.source == "file"


def test_a_deleted_tail_is_found_from_the_database_when_the_file_is_gone(
    logged: Anchored,
) -> None:
    _cut_tail(logged, keep=5)
    logged.file.unlink()
    check = logged.check()
    assert (check.ok, check.problem) == (False, Problem.ENTRIES_REMOVED)
    assert check.checkpoint is not None and check.checkpoint.source == "database"


def test_an_edited_and_rechained_log_is_found(logged: Anchored) -> None:
    _rechain(logged, 3, {"n": 3, "ghi chú": "đã sửa và tính lại chuỗi"})
    check = logged.check()
    assert check.chain.ok  # every link fits again
    assert not check.ok
    assert check.problem is Problem.REWRITTEN
    assert "entry 6 no longer has the hash the checkpoint of" in check.describe()


def test_deleting_everything_including_the_checkpoint_rows_is_found(logged: Anchored) -> None:
    for table in ("audit_entries", "audit_head", "audit_checkpoints"):
        logged.sql(f"DELETE FROM {table}")
    check = logged.check()
    assert check.chain.ok and check.chain.entries == 0
    assert not check.ok
    assert check.problem is Problem.ENTRIES_REMOVED
    assert "the log has 0 entries" in check.describe()


def test_a_broken_chain_is_reported_first(logged: Anchored) -> None:
    logged.sql("UPDATE audit_entries SET actor = 'user:khác' WHERE seq = 7")
    check = logged.check()
    assert (check.ok, check.problem, check.chain.first_bad_seq) == (
        False,
        Problem.CHAIN_BROKEN,
        7,
    )


def test_a_tampered_log_is_not_anchored(logged: Anchored) -> None:
    """A checkpoint only extends a chain that still fits the previous checkpoint."""
    _rechain(logged, 2, {"n": 2, "ghi chú": "giả mạo"})
    with pytest.raises(checkpoints.AuditLogTampered):
        checkpoints.make(logged.ctx)
    assert logged.checkpoint_rows() == 1


# -- forged checkpoints -----------------------------------------------------------------------
def _forge_row(anchored: Anchored, statement: bytes, signature: bytes) -> None:
    data = json.loads(statement)
    with anchored.ctx.db.session() as session:
        session.add(
            AuditCheckpoint(
                seq=data["seq"],
                head_hash=data["head_hash"],
                at=clock.now(),
                statement=statement.decode(),
                signature=signature,
                timestamp_token=None,
                signer_serial="00",
            )
        )


def _statement_for(anchored: Anchored, seq: int) -> bytes:
    return checkpoints.statement(seq, anchored.entry(seq).hash, clock.now())


def test_a_checkpoint_whose_signature_does_not_match_is_refused(logged: Anchored) -> None:
    with logged.ctx.db.read() as session:
        genuine = session.execute(select(AuditCheckpoint)).scalar_one()
    _forge_row(logged, _statement_for(logged, 8), genuine.signature)  # old signature, new text
    check = logged.check()
    assert (check.ok, check.problem) == (False, Problem.BAD_SIGNATURE)
    assert check.checkpoint is not None and check.checkpoint.seq == 8


def test_a_checkpoint_line_with_a_changed_signature_byte_is_refused(logged: Anchored) -> None:
    line = json.loads(logged.file.read_text().splitlines()[-1])
    signature = bytearray(base64.b64decode(line["signature"]))
    value = cms.ContentInfo.load(bytes(signature))["content"]["signer_infos"][0]["signature"]
    offset = bytes(signature).index(value.native)
    signature[offset + 10] ^= 0x01
    line["signature"] = base64.b64encode(bytes(signature)).decode()
    logged.sql("DELETE FROM audit_checkpoints")
    with logged.file.open("a") as handle:
        handle.write(json.dumps(line) + "\n")
    check = logged.check()
    assert (check.ok, check.problem) == (False, Problem.BAD_SIGNATURE)


def _outside_identity(eku: x509.ObjectIdentifier | None) -> SignerIdentity:
    """A self-made CA's certificate carrying ``eku`` (critical) as its one purpose, with its
    key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Kẻ giả mạo")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(clock.now() - timedelta(days=1))
        .not_valid_after(clock.now() + timedelta(days=30))
    )
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([eku]), critical=True)
    cert = builder.sign(key, hashes.SHA256())
    return SignerIdentity(SoftwareKey("outside", key), cert, [])


def _subscriber_identity(anchored: Anchored) -> SignerIdentity:
    """A genuine certificate from kyso's own issuing CA, but a subscriber's, not the audit one."""
    key = ec.generate_private_key(ec.SECP256R1())
    spec = issuance.IssueSpec(
        Profile.INDIVIDUAL, parse_subject("CN=Lý Văn Mạo,O=UBND huyện Na Rì,C=VN"), key.public_key()
    )
    with anchored.ctx.db.session() as session:
        made = issuance.issue(session, anchored.ctx.authority, spec, "test:forge")
    return SignerIdentity(SoftwareKey("subscriber", key), made.certificate, [])


@pytest.mark.parametrize("who", ["outside CA with the audit EKU", "kyso subscriber"])
def test_a_checkpoint_signed_by_another_key_is_refused(logged: Anchored, who: str) -> None:
    identity = (
        _outside_identity(AUDIT_SIGNING_EKU)
        if who.startswith("outside")
        else _subscriber_identity(logged)
    )
    statement = _statement_for(logged, 8)
    signature = checkpoints.sign_statement(statement, identity, logged.ctx.tsa)
    _forge_row(logged, statement, signature)
    check = logged.check()
    assert (check.ok, check.problem) == (False, Problem.FOREIGN_SIGNER)
    assert "not kyso's audit-signing certificate" in check.describe()


def test_a_forged_checkpoint_cannot_hide_a_deleted_tail(logged: Anchored) -> None:
    """Delete the tail, then sign a checkpoint for the shorter log with one's own key."""
    _cut_tail(logged, keep=4)
    logged.sql("DELETE FROM audit_checkpoints")
    logged.file.unlink()
    statement = _statement_for(logged, 4)
    _forge_row(
        logged,
        statement,
        checkpoints.sign_statement(statement, _outside_identity(AUDIT_SIGNING_EKU), logged.ctx.tsa),
    )
    assert logged.check().problem is Problem.FOREIGN_SIGNER


def _genuine_signature(anchored: Anchored, statement: bytes, tsa: TimeStampAuthority) -> bytes:
    """``statement`` signed by kyso's audit-signing key, time-stamped by ``tsa``."""
    audit = anchored.ctx.authority.identity(IdentityRole.AUDIT)
    return checkpoints.sign_statement(
        statement, SignerIdentity(audit.key, audit.certificate, []), tsa
    )


def test_a_checkpoint_without_its_time_stamp_is_refused(logged: Anchored) -> None:
    statement = _statement_for(logged, 8)
    signed = cms.ContentInfo.load(_genuine_signature(logged, statement, logged.ctx.tsa))
    signer_info = signed["content"]["signer_infos"][0]
    signer_info["unsigned_attrs"] = cms.CMSAttributes(
        [
            a
            for a in signer_info["unsigned_attrs"]
            if a["type"].native != "signature_time_stamp_token"
        ]
    )  # unsigned: the signature over the statement still holds
    _forge_row(logged, statement, signed.dump(force=True))
    check = logged.check()
    assert (check.ok, check.problem) == (False, Problem.BAD_TIMESTAMP)
    assert "has no valid time-stamp from kyso's TSA" in check.describe()


def test_a_checkpoint_time_stamped_by_another_tsa_is_refused(logged: Anchored) -> None:
    outside = _outside_identity(ExtendedKeyUsageOID.TIME_STAMPING)
    tsa = TimeStampAuthority(
        outside.key,
        outside.certificate.public_bytes(serialization.Encoding.DER),
        policy_oid=logged.ctx.settings.tsa_policy_oid,
    )
    statement = _statement_for(logged, 8)
    _forge_row(logged, statement, _genuine_signature(logged, statement, tsa))
    check = logged.check()
    assert (check.ok, check.problem) == (False, Problem.BAD_TIMESTAMP)
    assert check.detail == "the time-stamp's certificate is unknown"


def test_the_newest_checkpoint_is_read_from_the_end_of_a_long_file(
    logged: Anchored, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file is read backwards in blocks; the newest line spans several of them here."""
    for start in (9, 10, 11):
        checkpoints.make(logged.ctx)
        logged.append(1, start=start)
    made = checkpoints.make(logged.ctx)
    assert made is not None and made.seq == 11
    logged.sql("DELETE FROM audit_checkpoints")
    monkeypatch.setattr(checkpoints, "_TAIL_BLOCK", 1000)
    assert len(logged.file.read_text().splitlines()[-1]) > 3 * 1000
    check = logged.check()
    assert check.ok, check.describe()
    assert check.checkpoint is not None
    assert (check.checkpoint.source, check.checkpoint.seq) == ("file", 11)


# -- when checkpoints are made ----------------------------------------------------------------
def test_the_server_loop_anchors_new_entries_every_n_minutes(
    fake_clock: clock.FakeClock, logged: Anchored
) -> None:
    every = timedelta(minutes=logged.ctx.settings.audit_checkpoint_minutes)
    assert checkpoints.make_if_due(logged.ctx, every) is None  # the last one is too recent
    fake_clock.advance(every)
    made = checkpoints.make_if_due(logged.ctx, every)
    assert made is not None and made.seq == 8
    fake_clock.advance(every)
    assert checkpoints.make_if_due(logged.ctx, every) is None  # nothing new since
    logged.append(1, start=9)
    fake_clock.advance(every)
    stop = threading.Event()
    loop = threading.Thread(target=web_app._refresh_loop, args=(logged.ctx, stop, 0.02))
    loop.start()
    try:
        deadline = time.monotonic() + 60
        while logged.checkpoint_rows() < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        loop.join(30)
    assert logged.checkpoint_rows() == 3
    assert logged.check().checkpoint.seq == 9  # type: ignore[union-attr]


def _cli(anchored: Anchored, *args: str) -> subprocess.CompletedProcess[str]:
    """``kyso ARGS`` on this instance, in a process of its own."""
    return kyso(anchored.env, *args)


def test_cli_checkpoint_then_verify_report_the_anchor(logged: Anchored) -> None:
    made = _cli(logged, "audit", "checkpoint")
    assert made.returncode == 0, made.stdout + made.stderr
    assert "entry 8" in made.stdout
    logged.append(3, start=9)
    checked = _cli(logged, "audit", "verify")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "audit chain intact: 11 entries" in checked.stdout
    assert "3 entries after the last checkpoint of" in checked.stdout
    assert "not yet anchored" in checked.stdout
    as_json = json.loads(_cli(logged, "audit", "verify", "--json").stdout)
    assert as_json["ok"] is True
    assert as_json["checkpoint"]["seq"] == 8 and as_json["unanchored"] == 3


@pytest.mark.parametrize("attack", ["tail", "rechain", "everything"])
def test_cli_verify_fails_on_each_attack(logged: Anchored, attack: str) -> None:
    if attack == "tail":
        _cut_tail(logged, keep=2)
    elif attack == "rechain":
        _rechain(logged, 5, {"n": 5, "ghi chú": "sửa"})
    else:
        for table in ("audit_entries", "audit_head", "audit_checkpoints"):
            logged.sql(f"DELETE FROM {table}")
    result = _cli(logged, "audit", "verify")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "audit log does not match its checkpoint" in result.stderr


def test_cli_checkpoint_refuses_a_tampered_log(logged: Anchored) -> None:
    _rechain(logged, 2, {"n": 2, "ghi chú": "giả mạo"})
    result = _cli(logged, "audit", "checkpoint")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "audit_log_tampered" in result.stderr


# -- the audit page ---------------------------------------------------------------------------
def _auditor_page(anchored: Anchored) -> TestClient:
    with anchored.ctx.db.session() as session:
        user = session.execute(select(User).where(User.username == "kiemtoan")).scalar_one_or_none()
        if user is None:
            user = users.create(
                cli_principal("cli:test"),
                session,
                users.UserInput("kiemtoan", "Hà Thị Kiểm", "Bac-Kan-ky-so-2017", Role.AUDITOR),
            ).user
        token = sessions.start(session, user)
    app = web_app.create_app(Settings.from_env(anchored.env), scheduler=False)
    client = TestClient(app, raise_server_exceptions=False)
    client.cookies.set("kyso_sid", token, domain="testserver.local", path="/")
    return client


def test_the_audit_page_shows_the_anchor_and_the_attack(logged: Anchored) -> None:
    with _auditor_page(logged) as client:
        page = client.get("/audit/check", headers={"accept": "text/html"})
        assert page.status_code == 200
        assert 'data-chain="ok"' in page.text
        assert 'data-anchor="ok"' in page.text
        after = logged.check().unanchored  # 2, and the auditor's account and session
        assert f"{after} mục sau điểm neo cuối cùng" in page.text  # entries after the checkpoint
        assert "mục 6," in page.text  # the last checkpoint: entry 6
        _cut_tail(logged, keep=4)
        page = client.get("/audit/check", headers={"accept": "text/html"})
        assert page.status_code == 200
        assert 'data-anchor="broken"' in page.text
        assert "nhật ký chỉ còn 4 mục" in page.text


# -- instances made before the audit signer ---------------------------------------------------
def _audit_signers(anchored: Anchored) -> list[x509.Certificate]:
    with anchored.ctx.db.read() as session:
        ders = session.execute(
            select(CaIdentity.certificate_der).where(
                CaIdentity.role == IdentityRole.AUDIT, CaIdentity.active.is_(True)
            )
        ).scalars()
        return [x509.load_der_x509_certificate(der) for der in ders]


def _forget_the_audit_signer(anchored: Anchored) -> None:
    """The CA as kyso made it before the audit signer existed."""
    anchored.sql("DELETE FROM ca_identities WHERE role = 'audit'")
    assert _audit_signers(anchored) == []


def test_an_older_ca_gets_an_audit_signer_when_the_server_starts(logged: Anchored) -> None:
    _forget_the_audit_signer(logged)
    app = web_app.create_app(Settings.from_env(logged.env), scheduler=False)
    with TestClient(app):
        pass
    (signer,) = _audit_signers(logged)
    issuing = logged.ctx.authority.identity(IdentityRole.ISSUING).certificate
    signer.verify_directly_issued_by(issuing)
    assert list(signer.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        AUDIT_SIGNING_EKU
    ]
    with logged.ctx.db.read() as session:
        last = session.execute(select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(1))
        assert last.scalar_one().action == "ca.audit_signer_created"
    with TestClient(web_app.create_app(Settings.from_env(logged.env), scheduler=False)):
        pass
    assert len(_audit_signers(logged)) == 1  # a second start makes no other
    assert logged.check().ok  # the checkpoint the old signer made still holds


def test_an_older_ca_gets_an_audit_signer_and_its_first_anchor_from_init_exist_ok(
    logged: Anchored,
) -> None:
    _forget_the_audit_signer(logged)
    result = _cli(logged, "init", "--exist-ok")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "audit-log signer made" in result.stderr
    assert len(_audit_signers(logged)) == 1
    check = logged.check()
    assert check.ok and check.unanchored == 0  # anchored up to the signer's own entry


@pytest.mark.softhsm
def test_a_checkpoint_signed_by_an_audit_key_in_the_hsm_verifies(hsm_instance) -> None:
    ctx = hsm_instance.ctx
    assert ctx.authority.identity(IdentityRole.AUDIT).key.key_id.startswith("p11-")
    with ctx.db.session() as session:
        record(session, Event("test:hsm", "test.action", None, {"n": 1}))
    made = checkpoints.make(ctx)
    check = checkpoints.verify(ctx)
    assert made is not None and check.ok, check.describe()
    assert check.checkpoint is not None and check.checkpoint.seq == made.seq
