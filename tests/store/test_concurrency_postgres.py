"""Several kyso processes on one PostgreSQL database (the production shape): nothing is
shared in memory, so serials, the audit chain and status changes must hold through the
database's own locks.

The workers are separate processes (multiprocessing, spawn), each with its own Context, that
start together at a barrier.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from support import postgres as pg
from support import require_or_skip

from kyso.audit.log import verify
from kyso.context import Context
from kyso.store.models import (
    AuditEntry,
    CertEventKind,
    Certificate,
    CertificateEvent,
    CertStatus,
    RevocationReason,
)

pytestmark = pytest.mark.postgres

PER_PROCESS = 100
HOLD_SECONDS = 0.5


# -- what each worker process runs (module level, so spawn can import it) ----------------------
def _open(env: dict[str, str]) -> Context:
    from kyso.settings import Settings
    from kyso.store.models import IdentityRole

    ctx = Context(Settings.from_env(env))
    ctx.authority.identity(IdentityRole.ISSUING)  # keys loaded before the start line
    ctx.authority.identity(IdentityRole.OCSP)
    return ctx


def _issue_worker(env: dict[str, str], name: str, count: int) -> list[str]:
    from cryptography.hazmat.primitives.asymmetric import ec

    from kyso.pki import issuance
    from kyso.pki.names import parse_subject
    from kyso.store.models import Profile

    ctx = _open(env)
    _BARRIER.wait(60)
    serials = []
    for n in range(count):
        spec = issuance.IssueSpec(
            Profile.INDIVIDUAL,
            parse_subject(f"CN=Cán bộ {name}-{n},O=UBND tỉnh Bắc Kạn,C=VN"),
            ec.generate_private_key(ec.SECP256R1()).public_key(),
        )
        with ctx.db.session() as session:
            serials.append(issuance.issue(session, ctx.authority, spec, f"proc:{name}").serial)
    ctx.close()
    return serials


def _revoke_worker(env: dict[str, str], name: str, serial: str) -> dict[str, Any]:
    """Revoke, then keep the transaction (and its row lock) open a moment before committing."""
    from kyso.errors import KysoError
    from kyso.pki import status

    ctx = _open(env)
    _BARRIER.wait(60)
    started = time.monotonic()
    try:
        with ctx.db.session() as session:
            status.revoke(
                session, ctx.authority, serial, RevocationReason.KEY_COMPROMISE, f"proc:{name}"
            )
            time.sleep(HOLD_SECONDS)
        outcome = "revoked"
    except KysoError as exc:
        outcome = exc.code
    finally:
        ctx.close()
    return {"outcome": outcome, "seconds": time.monotonic() - started}


_BARRIER: Any = None


def _child(barrier: Any, results: Any, work: Callable[..., Any], args: tuple[Any, ...]) -> None:
    global _BARRIER
    _BARRIER = barrier
    try:
        results.put(("ok", args[1], work(*args)))
    except BaseException:
        barrier.abort()
        results.put(("error", args[1], traceback.format_exc()))


def _in_processes(work: Callable[..., Any], argsets: list[tuple[Any, ...]]) -> dict[str, Any]:
    spawn = mp.get_context("spawn")
    barrier, results = spawn.Barrier(len(argsets)), spawn.Queue()
    processes = [spawn.Process(target=_child, args=(barrier, results, work, a)) for a in argsets]
    for p in processes:
        p.start()
    out: dict[str, Any] = {}
    try:
        for _ in processes:
            kind, name, value = results.get(timeout=180)
            assert kind == "ok", f"worker {name} failed:\n{value}"
            out[name] = value
    except queue.Empty:
        pytest.fail("a worker process did not answer in 180 s")
    finally:
        for p in processes:
            p.join(10)
            if p.is_alive():
                p.kill()
    return out


# -- the database and its CA ------------------------------------------------------------------
@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Context, dict[str, str]]]:
    from conftest import make_env, open_instance  # here: spawned workers need not load it

    base = pg.server_url()
    require_or_skip(base, "PostgreSQL (run scripts/test-setup.sh and export KYSO_TEST_PG_URL)")
    assert base is not None
    url, drop = pg.fresh_database(base)
    # pkilint is not under test here; without it the workers' transactions come ~4x denser.
    env = make_env(tmp_path_factory.mktemp("pg-concurrency"), url, KYSO_LINT_ON_ISSUE="false")
    ctx = open_instance(env)
    yield ctx, env
    ctx.close()
    drop()


def _chain_ok(ctx: Context) -> int:
    with ctx.db.read() as session:
        check = verify(session)
    assert check.ok, check
    with ctx.db.read() as session:
        seqs = list(session.execute(select(AuditEntry.seq).order_by(AuditEntry.seq)).scalars())
    assert seqs == list(range(1, len(seqs) + 1))
    return check.entries


def test_two_processes_issuing_at_once_never_share_a_serial(
    shared: tuple[Context, dict[str, str]], tmp_path: Path
) -> None:
    ctx, env = shared
    entries_before = _chain_ok(ctx)
    with ctx.db.read() as session:
        rows_before = session.scalar(select(func.count()).select_from(Certificate))

    serials = _in_processes(_issue_worker, [(env, "a", PER_PROCESS), (env, "b", PER_PROCESS)])

    assert len(serials["a"]) == len(serials["b"]) == PER_PROCESS
    everything = serials["a"] + serials["b"]
    assert len(set(everything)) == 2 * PER_PROCESS
    with ctx.db.read() as session:
        assert (
            session.scalar(select(func.count()).select_from(Certificate))
            == rows_before + 2 * PER_PROCESS
        )
        stored = set(
            session.execute(
                select(Certificate.serial).where(Certificate.serial.in_(everything))
            ).scalars()
        )
        issued_by = dict(
            session.execute(
                select(AuditEntry.actor, func.count())
                .where(
                    AuditEntry.action == "certificate.issued",
                    AuditEntry.actor.in_(["proc:a", "proc:b"]),
                )
                .group_by(AuditEntry.actor)
            ).all()
        )
    assert stored == set(everything)
    assert issued_by == {"proc:a": PER_PROCESS, "proc:b": PER_PROCESS}
    assert _chain_ok(ctx) == entries_before + 2 * PER_PROCESS


def test_two_processes_revoking_one_certificate_revoke_it_once(
    shared: tuple[Context, dict[str, str]],
) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    from kyso.pki import issuance
    from kyso.pki.names import parse_subject
    from kyso.store.models import Profile

    ctx, env = shared
    spec = issuance.IssueSpec(
        Profile.INDIVIDUAL,
        parse_subject("CN=Nông Văn Hai,O=UBND huyện Ngân Sơn,C=VN"),
        ec.generate_private_key(ec.SECP256R1()).public_key(),
    )
    with ctx.db.session() as session:
        serial = issuance.issue(session, ctx.authority, spec, "test").serial

    results = _in_processes(_revoke_worker, [(env, "a", serial), (env, "b", serial)])

    outcomes = sorted(r["outcome"] for r in results.values())
    assert outcomes == ["invalid_transition", "revoked"], results
    loser = next(r for r in results.values() if r["outcome"] != "revoked")
    # The loser waited on the winner's row lock rather than reading a stale "good".
    assert loser["seconds"] >= HOLD_SECONDS * 0.8, results
    with ctx.db.read() as session:
        row = session.execute(select(Certificate).where(Certificate.serial == serial)).scalar_one()
        revoked_events = session.scalar(
            select(func.count())
            .select_from(CertificateEvent)
            .where(
                CertificateEvent.certificate_id == row.id,
                CertificateEvent.kind == CertEventKind.REVOKED,
            )
        )
        audit_revocations = session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "certificate.revoked", AuditEntry.target == serial)
        )
    assert row.status is CertStatus.REVOKED
    assert revoked_events == 1
    assert audit_revocations == 1
    _chain_ok(ctx)
