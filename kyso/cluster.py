"""Which process of a cluster does the scheduled work: one lead, the others stand by.

Several ``kyso serve`` processes (``--workers``, several machines) share one database. The
server's loop (kyso.web.app) re-signs OCSP answers, sweeps sessions, rate-limit buckets and
login challenges, expires signature approvals and anchors the audit log: work on shared
rows that is right once per period and only wasteful (or, for audit checkpoints, noisy) when
every process does it. So each period the loop asks :meth:`Leadership.lead` first, and only
the process that holds the lead does the work.

- **PostgreSQL**: a session-level advisory lock (``pg_try_advisory_lock``, PostgreSQL
  manual §13.3.5 "Advisory Locks") on a connection of its own, kept open while leading. The
  lock lives exactly as long as that session: a process that dies (even ``kill -9``) closes
  its socket, the server ends the session and frees the lock, and the next process to ask
  takes it, within one period. Advisory locks are per database, so two kyso instances on one
  server do not share a lead. The leader checks at every period, in ``pg_locks``, that its
  own session still holds the lock; TCP keepalives and ``tcp_user_timeout`` bound how long a
  leader cut off from the database can go on believing it leads.
- **SQLite**: the processes of one machine on one file (``kyso serve --workers 2``). An
  exclusive ``flock`` on ``<database>.leader`` plays the same part; the kernel drops it when
  the process dies. An in-memory database is one process: always leader.

Leading is "at most one at a time" only as far as the network lets a database see its
clients: a leader partitioned from the database may finish the run it started while
another takes over. Every job of the loop is idempotent (sweeps delete what has expired,
OCSP refresh re-signs what is stale, a checkpoint is made only when due, under the audit
chain's row lock), so an overlap costs work, never correctness.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
from pathlib import Path
from typing import IO, Protocol

from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from kyso.observability import metrics
from kyso.store.db import Database

log = logging.getLogger(__name__)

SCHEDULED = "kyso.scheduled"  # the server loop's lead


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for ``name`` (the first 8 bytes of its
    SHA-256), so that kyso's locks do not collide with small integers other software uses."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


class Leadership(Protocol):
    def lead(self) -> bool:
        """Whether this process leads now: keeps the lead it holds, or tries to take it."""
        ...

    def release(self) -> None:
        """Give the lead up (the server is stopping); another process may take it."""
        ...


class AlwaysLeader:
    """One process by construction (an in-memory database)."""

    def lead(self) -> bool:
        metrics.set_leader(True)
        return True

    def release(self) -> None:
        metrics.set_leader(False)


class AdvisoryLock:
    """The lead as a PostgreSQL session-level advisory lock held on a dedicated connection."""

    def __init__(self, url: str, name: str = SCHEDULED, *, connect_timeout: int = 5) -> None:
        self.key = lock_key(name)
        self.name = name
        args: dict[str, object] = {"connect_timeout": connect_timeout}
        if make_url(url).get_driver_name() in ("psycopg", "psycopg2"):
            # libpq: notice a dead server or a cut network in about 15 s, not in TCP's minutes
            args.update(
                keepalives=1,
                keepalives_idle=5,
                keepalives_interval=2,
                keepalives_count=3,
                tcp_user_timeout=15000,
                application_name=f"kyso lead {os.getpid()}",
            )
        # Not the request pool: this connection stays checked out as long as the lead lasts.
        self._engine = create_engine(url, poolclass=NullPool, connect_args=args)
        self._conn: Connection | None = None
        self._leading = False

    def _connection(self) -> Connection:
        if self._conn is None:
            self._conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        return self._conn

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(SQLAlchemyError):
                conn.invalidate()  # never handed back to anyone: the session (and lock) ends
                conn.close()

    def _still_held(self, conn: Connection) -> bool:
        """Whether this very session still holds the lock (pg_locks keeps a bigint key's high
        and low halves in classid and objid, objsubid 1)."""
        unsigned = self.key & 0xFFFF_FFFF_FFFF_FFFF
        held = conn.execute(
            text(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' "
                "AND pid = pg_backend_pid() AND granted AND objsubid = 1 "
                "AND classid::bigint = :high AND objid::bigint = :low)"
            ),
            {"high": unsigned >> 32, "low": unsigned & 0xFFFF_FFFF},
        ).scalar()
        return bool(held)

    def lead(self) -> bool:
        try:
            conn = self._connection()
            if self._leading:
                if self._still_held(conn):
                    return True
                log.warning("lost the lead of %s (the database session ended)", self.name)
                self._set(False)
                self._drop()
                conn = self._connection()
            taken = conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key})
            self._set(bool(taken.scalar()))
        except SQLAlchemyError as exc:
            if self._leading:
                log.warning("lost the lead of %s: %s", self.name, type(exc).__name__)
            else:
                log.warning("cannot ask for the lead of %s: %s", self.name, type(exc).__name__)
            self._set(False)
            self._drop()
        return self._leading

    def _set(self, leading: bool) -> None:
        if leading and not self._leading:
            log.info("this process now leads %s", self.name)
        self._leading = leading
        metrics.set_leader(leading)

    def release(self) -> None:
        if self._conn is not None and self._leading:
            with contextlib.suppress(SQLAlchemyError):
                self._conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
        self._set(False)
        self._drop()
        self._engine.dispose()


class FileLock:
    """The lead as an exclusive ``flock`` on a file beside the SQLite database."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[bytes] | None = None

    def lead(self) -> bool:
        if self._file is None:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            handle = os.fdopen(fd, "r+b")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
            else:
                self._file = handle
                log.info("this process now leads %s", SCHEDULED)
        metrics.set_leader(self._file is not None)
        return self._file is not None

    def release(self) -> None:
        handle, self._file = self._file, None
        if handle is not None:
            handle.close()  # closing the only descriptor drops the flock
        metrics.set_leader(False)


def leadership(db: Database, name: str = SCHEDULED) -> Leadership:
    """The lead of ``name`` among the processes sharing ``db``."""
    if not db.is_sqlite:
        return AdvisoryLock(db.url, name)
    path = db.url.split("///", 1)[1].split("?", 1)[0] if "///" in db.url else ""
    if not path or path == ":memory:":
        return AlwaysLeader()
    suffix = "" if name == SCHEDULED else "." + hashlib.sha256(name.encode()).hexdigest()[:8]
    return FileLock(Path(f"{path}.leader{suffix}"))
