"""The server's scheduled work runs once across the cluster per period (kyso.cluster).

Two real ``uvicorn`` processes on one PostgreSQL database, with a one-second period: each
reports on ``/metrics`` the runs it made and whether it leads. Exactly one leads and runs;
the other runs nothing. ``kill -9`` the leader and the other takes over within a couple of
periods, because PostgreSQL frees a session's advisory lock when the session ends.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from conftest import make_env, open_instance
from observability import serving
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text
from support import postgres as pg
from support import require_or_skip

from kyso import cluster
from kyso.store.db import Database

PERIOD = 1.0


@pytest.fixture
def pg_url() -> Iterator[str]:
    base = pg.server_url()
    require_or_skip(base, "PostgreSQL (run scripts/test-setup.sh and export KYSO_TEST_PG_URL)")
    assert base is not None
    url, drop = pg.fresh_database(base)
    yield url
    drop()


def _scheduled(url: str) -> tuple[float, float]:
    """(runs made by this process, 1 if it leads)."""
    body = httpx.get(f"{url}/metrics", timeout=10).text
    values = {
        sample.name: sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }
    return values.get("kyso_scheduled_runs_total", 0.0), values.get("kyso_scheduled_leader", 0.0)


def _wait_for(condition, seconds: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


@pytest.mark.postgres
@pytest.mark.slow
def test_two_servers_on_postgresql_run_the_scheduled_work_once_and_hand_over_on_kill(
    pg_url: str, tmp_path: Path
) -> None:
    env = make_env(tmp_path / "home", pg_url, KYSO_LOOP_SECONDS=str(PERIOD))
    open_instance(env).close()
    servers = [serving.start(env, tmp_path / f"server-{n}.log") for n in (1, 2)]
    try:
        urls = [url for _, url in servers]
        # someone leads within a couple of periods
        assert _wait_for(lambda: sum(_scheduled(u)[1] for u in urls) == 1, 10 * PERIOD)
        before = [_scheduled(u)[0] for u in urls]
        time.sleep(6 * PERIOD)
        after = [_scheduled(u) for u in urls]
        leaders = [i for i, (_, leading) in enumerate(after) if leading == 1]
        assert len(leaders) == 1, after
        leader, other = leaders[0], 1 - leaders[0]
        made = [after[i][0] - before[i] for i in (0, 1)]
        # the leader ran about once per period (a run takes time of its own; CI is busy) ...
        assert 2 <= made[leader] <= 7, made
        # ... and the other never did
        assert after[other][0] == 0, after

        servers[leader][0].send_signal(signal.SIGKILL)
        servers[leader][0].wait(10)
        survivor = urls[other]
        # PostgreSQL ends the dead session, frees the lock: the survivor leads and runs
        assert _wait_for(lambda: _scheduled(survivor)[1] == 1.0, 3 * PERIOD + 5)
        runs = _scheduled(survivor)[0]
        assert _wait_for(lambda: _scheduled(survivor)[0] >= runs + 2, 4 * PERIOD + 2)
    finally:
        for process, _ in servers:
            serving.stop(process)


@pytest.mark.postgres
def test_the_advisory_lock_is_held_by_one_session_and_its_loss_is_noticed(pg_url: str) -> None:
    first, second = cluster.AdvisoryLock(pg_url), cluster.AdvisoryLock(pg_url)
    try:
        assert first.lead()
        assert not second.lead()
        assert first.lead()  # keeps it (and checks it still holds it, in pg_locks)
        # the leader's session is ended from outside (a restarted server, a cut network)
        admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            ended = conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
                    "AND granted AND database = "
                    "(SELECT oid FROM pg_database WHERE datname = current_database())"
                )
            ).all()
        admin.dispose()
        assert len(ended) == 1
        assert not first.lead()  # it notices, at its next period
        assert second.lead()  # and the lock is free for the other
        assert not first.lead()
        second.release()
        assert first.lead()
    finally:
        first.release()
        second.release()


def test_on_sqlite_the_processes_of_one_file_share_one_lead(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'kyso.db'}")
    one, two = cluster.leadership(db), cluster.leadership(db)
    assert isinstance(one, cluster.FileLock)
    assert one.lead()
    assert not two.lead()
    one.release()
    assert two.lead()
    two.release()
    # another process holds it, and is killed: the kernel drops its lock
    path = tmp_path / "kyso.db.leader"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys, time; f = open(sys.argv[1], 'a'); "
            "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)",
            str(path),
        ],
        stdout=subprocess.PIPE,
    )
    assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
    assert not one.lead()
    holder.send_signal(signal.SIGKILL)
    holder.wait(10)
    assert one.lead()
    one.release()
    db.dispose()


def test_an_in_memory_database_is_one_process_that_always_leads() -> None:
    memory = SimpleNamespace(is_sqlite=True, url="sqlite:///:memory:")
    leader = cluster.leadership(memory)  # type: ignore[arg-type]
    assert isinstance(leader, cluster.AlwaysLeader)
    assert leader.lead()


def test_lock_keys_are_stable_signed_64_bit_integers() -> None:
    key = cluster.lock_key(cluster.SCHEDULED)
    assert key == cluster.lock_key("kyso.scheduled")
    assert -(2**63) <= key < 2**63
    assert key != cluster.lock_key("kyso.other")
