"""The audit log is a hash chain: any edit, deletion or reordering is found, and concurrent
appends never fork or skip a sequence number.

Tampering happens on a separate migrated database (one per backend, its audit tables emptied
before each test), never on the shared CA.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from conftest import _database_url, make_env, open_instance
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, select, text
from support.cli import kyso

from kyso.api import clients
from kyso.audit.log import ChainCheck, Event, _digest, record, verify
from kyso.context import Context
from kyso.pki import crl, issuance, status
from kyso.pki.names import parse_subject
from kyso.store.models import AuditEntry, IdentityRole, Profile, RevocationReason

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def _verify(ctx: Context) -> ChainCheck:
    with ctx.db.read() as session:
        return verify(session)


def _seqs(ctx: Context) -> list[int]:
    with ctx.db.read() as session:
        return list(session.execute(select(AuditEntry.seq).order_by(AuditEntry.seq)).scalars())


@dataclass
class Fresh:
    ctx: Context
    env: dict[str, str]

    def sql(self, statement: str, **params: object) -> None:
        with self.ctx.db.engine.begin() as conn:
            conn.execute(text(statement), params)


@pytest.fixture(scope="module", params=BACKENDS)
def scratch(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fresh]:
    """A migrated database of its own (no CA), apart from the shared one: tampered with."""
    home = tmp_path_factory.mktemp(f"audit-{request.param}")
    env = make_env(home, _database_url(request.param, home, request))
    ctx = open_instance(env, init=False)
    yield Fresh(ctx, env)
    ctx.close()


@pytest.fixture
def empty(scratch: Fresh) -> Fresh:
    """The scratch database with an empty audit log (no head row either)."""
    for table in ("audit_entries", "audit_head", "api_clients"):
        scratch.sql(f"DELETE FROM {table}")
    assert _verify(scratch.ctx) == ChainCheck(True, 0)
    return scratch


@pytest.fixture
def fresh(empty: Fresh) -> Fresh:
    """Six entries, each written in its own transaction like real actions."""
    with empty.ctx.db.session() as session:
        clients.create(session, "hệ thống một cửa", ["certificates:read"], "admin:an")
    for n in range(2, 7):
        with empty.ctx.db.session() as session:
            record(
                session,
                Event(
                    f"user:{n}",
                    "test.action",
                    f"mục {n}",
                    {"n": n, "ghi chú": "Sở Thông tin và Truyền thông"},
                ),
            )
    assert _verify(empty.ctx) == ChainCheck(True, 6)
    return empty


# -- a healthy chain --------------------------------------------------------------------------
def test_certificate_actions_extend_an_intact_chain(ctx: Context) -> None:
    before = _verify(ctx)
    assert before.ok, before
    assert before.entries == len(_seqs(ctx))

    key = ec.generate_private_key(ec.SECP256R1())
    spec = issuance.IssueSpec(
        Profile.INDIVIDUAL, parse_subject("CN=Lý Thị Hoa,O=UBND huyện Na Rì,C=VN"), key.public_key()
    )
    with ctx.db.session() as session:
        serial = issuance.issue(session, ctx.authority, spec, "test:audit").serial
    with ctx.db.session() as session:
        status.suspend(session, ctx.authority, serial, "test:audit")
    with ctx.db.session() as session:
        status.restore(session, ctx.authority, serial, "test:audit")
    with ctx.db.session() as session:
        status.revoke(session, ctx.authority, serial, RevocationReason.SUPERSEDED, "test:audit")
    with ctx.db.session() as session:
        crl.generate(
            session, ctx.authority, ctx.authority.identity(IdentityRole.ISSUING), actor="test:audit"
        )

    after = _verify(ctx)
    assert after == ChainCheck(True, before.entries + 5)
    with ctx.db.read() as session:
        last = (
            session.execute(select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(5))
            .scalars()
            .all()
        )
    assert [e.action for e in reversed(last)] == [
        "certificate.issued",
        "certificate.suspended",
        "certificate.restored",
        "certificate.revoked",
        "crl.issued",
    ]
    assert all(e.actor == "test:audit" for e in last)
    assert [e.target for e in reversed(last)][:4] == [serial] * 4


def test_a_fresh_log_verifies(fresh: Fresh) -> None:
    assert _verify(fresh.ctx) == ChainCheck(True, 6)
    assert _seqs(fresh.ctx) == [1, 2, 3, 4, 5, 6]


# -- tampering --------------------------------------------------------------------------------
def test_edited_details_are_found_at_that_entry(fresh: Fresh) -> None:
    fresh.sql(
        "UPDATE audit_entries SET details = :d WHERE seq = 3",
        d=json.dumps({"n": 3, "ghi chú": "đã sửa"}, ensure_ascii=False, sort_keys=True),
    )
    check = _verify(fresh.ctx)
    assert not check.ok
    assert check.first_bad_seq == 3
    assert check.entries == 2
    assert "changed" in (check.problem or "")


def test_edited_actor_is_found_at_that_entry(fresh: Fresh) -> None:
    fresh.sql("UPDATE audit_entries SET actor = 'user:someone-else' WHERE seq = 5")
    check = _verify(fresh.ctx)
    assert (check.ok, check.first_bad_seq) == (False, 5)


def test_edit_with_a_recomputed_hash_breaks_the_next_link(fresh: Fresh) -> None:
    with fresh.ctx.db.read() as session:
        entry = session.execute(select(AuditEntry).where(AuditEntry.seq == 3)).scalar_one()
    forged = Event(entry.actor, entry.action, entry.target, {"n": 3, "ghi chú": "giả mạo"})
    fresh.sql(
        "UPDATE audit_entries SET details = :d, hash = :h WHERE seq = 3",
        d=json.dumps(forged.details, ensure_ascii=False, sort_keys=True),
        h=_digest(entry.prev_hash, 3, entry.at, forged),
    )
    check = _verify(fresh.ctx)
    assert (check.ok, check.first_bad_seq) == (False, 4)
    assert "link" in (check.problem or "")


def test_deleted_middle_entry_is_found(fresh: Fresh) -> None:
    fresh.sql("DELETE FROM audit_entries WHERE seq = 3")
    check = _verify(fresh.ctx)
    assert (check.ok, check.first_bad_seq) == (False, 3)
    assert "missing" in (check.problem or "")


def test_deleted_last_entry_is_found_by_the_head(fresh: Fresh) -> None:
    fresh.sql("DELETE FROM audit_entries WHERE seq = 6")
    check = _verify(fresh.ctx)
    assert (check.ok, check.first_bad_seq) == (False, 6)


def test_deleted_last_entry_and_head_row_are_found(fresh: Fresh) -> None:
    fresh.sql("DELETE FROM audit_entries WHERE seq = 6")
    fresh.sql("DELETE FROM audit_head")
    check = _verify(fresh.ctx)
    assert not check.ok


def test_reordered_entries_are_found(fresh: Fresh) -> None:
    columns = ("at", "actor", "action", "target", "details", "prev_hash", "hash")
    with fresh.ctx.db.engine.connect() as conn:
        rows = {
            seq: conn.execute(
                text(f"SELECT {', '.join(columns)} FROM audit_entries WHERE seq = :s"), {"s": seq}
            )
            .one()
            ._asdict()
            for seq in (2, 4)
        }
    assignments = ", ".join(f"{c} = :{c}" for c in columns)
    fresh.sql(f"UPDATE audit_entries SET {assignments} WHERE seq = :seq", seq=2, **rows[4])
    fresh.sql(f"UPDATE audit_entries SET {assignments} WHERE seq = :seq", seq=4, **rows[2])
    check = _verify(fresh.ctx)
    assert (check.ok, check.first_bad_seq) == (False, 2)


def test_cli_audit_verify_exits_1_and_names_the_entry(fresh: Fresh) -> None:
    fresh.sql("UPDATE audit_entries SET target = 'mục khác' WHERE seq = 4")
    result = kyso(fresh.env, "audit", "verify")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "entry 4" in result.stderr


# -- concurrency ------------------------------------------------------------------------------
def _in_threads(n: int, work: Callable[[int], None]) -> list[BaseException]:
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait(30)
            work(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return errors


def test_appends_from_many_threads_form_one_contiguous_chain(empty: Fresh) -> None:
    """8 threads × 25 appends on an empty log, all starting at once (the head row does not
    exist yet, so the first appends also race to create it)."""
    threads, per_thread = 8, 25

    def work(i: int) -> None:
        for n in range(per_thread):
            with empty.ctx.db.session() as session:
                record(session, Event(f"thread:{i}", "test.append", f"{i}/{n}", {"n": n}))

    errors = _in_threads(threads, work)
    assert errors == []
    total = threads * per_thread
    assert _seqs(empty.ctx) == list(range(1, total + 1))
    assert _verify(empty.ctx) == ChainCheck(True, total)
    with empty.ctx.db.read() as session:
        per_actor = dict(
            session.execute(select(AuditEntry.actor, func.count()).group_by(AuditEntry.actor)).all()
        )
    assert per_actor == {f"thread:{i}": per_thread for i in range(threads)}


def test_verify_during_appends_never_reports_a_false_break(fresh: Fresh) -> None:
    """A check that runs while others append sees a consistent chain (no false alarm)."""
    done = threading.Event()
    results: list[ChainCheck] = []
    appenders = [3]
    lock = threading.Lock()

    def work(i: int) -> None:
        if i == 0:
            while not done.is_set():
                results.append(_verify(fresh.ctx))
            return
        try:
            for n in range(40):
                with fresh.ctx.db.session() as session:
                    record(session, Event(f"thread:{i}", "test.append", None, {"n": n}))
        finally:
            with lock:
                appenders[0] -= 1
                if appenders[0] == 0:
                    done.set()

    errors = _in_threads(4, work)
    assert errors == []
    assert results, "verify never ran"
    assert [r for r in results if not r.ok] == []
    assert _verify(fresh.ctx) == ChainCheck(True, 6 + 3 * 40)
