"""Engines, sessions and migrations.

SQLite is the embedded default: WAL, a busy timeout, and ``BEGIN IMMEDIATE`` for writing
sessions so that two processes serialize their writes instead of failing halfway. Reading
sessions (the OCSP responder, lists) take no write lock. PostgreSQL needs none of that; rows
that must be serialized there are locked with ``SELECT … FOR UPDATE``.

The SQLite file holds password hashes, sealed secrets and personal data: it is made 0600
before SQLite first opens it, and SQLite gives its ``-wal`` and ``-shm`` files the database
file's permissions (``robust_open`` in os_unix.c), whatever the process umask.

Every session carries the key store's sealer (``session.info``), so a service that keeps a
small secret (a TOTP seed) seals and unseals it without a key store in its signature.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, inspect
from sqlalchemy.orm import Session, sessionmaker

from kyso.errors import KeyStoreError

if TYPE_CHECKING:
    from kyso.keys.base import Sealer

MIGRATIONS = Path(__file__).with_name("migrations")
log = logging.getLogger(__name__)
_SEALER = "kyso_sealer"


def _owner_only(path: Path) -> None:
    """Create the database file 0600 if it is new; make an existing one (and its -wal, -shm,
    -journal, as an older kyso left them) 0600 too."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    for suffix in ("", "-wal", "-shm", "-journal"):
        try:
            os.chmod(f"{path}{suffix}", 0o600)
        except FileNotFoundError:
            pass
        except PermissionError:  # another user's file (a read-only copy, say): say so, go on
            log.warning("cannot make %s%s owner-only: not its owner", path, suffix)


def sealer(session: Session) -> Sealer:
    """The key store that seals this database's small secrets (see :class:`Database`)."""
    provider = session.info.get(_SEALER)
    if provider is None:
        raise KeyStoreError(
            "this database session has no key store to seal or unseal secrets with",
            vi="phiên cơ sở dữ liệu này không có kho khóa để niêm phong bí mật",
        )
    return provider()  # type: ignore[no-any-return]


def _sqlite_engine(url: str, begin: str) -> Engine:
    # The server runs up to 40 request threads: a pool smaller than that made and closed an
    # overflow connection (with its PRAGMAs) on nearly every request under load.
    engine = create_engine(
        url,
        connect_args={"timeout": 30, "check_same_thread": False},
        pool_size=20,
        max_overflow=40,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # A single read (the OCSP responder's) needs no transaction of its own.
        if not conn.get_execution_options().get("kyso_autocommit"):
            conn.exec_driver_sql(begin)

    return engine


class Database:
    """The two session factories of one database (write and read).

    ``sealer`` gives the key store that seals secrets kept in this database (called only
    when a secret is read or written, so commands that never touch one open no key store).
    """

    def __init__(self, url: str, *, sealer: Callable[[], Sealer] | None = None) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            path = url.split("///", 1)[1].split("?", 1)[0] if "///" in url else ""
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                _owner_only(Path(path))
            self.engine = _sqlite_engine(url, "BEGIN IMMEDIATE")
            self.read_engine = _sqlite_engine(url, "BEGIN")
        else:
            self.engine = create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)
            self.read_engine = self.engine
        info = {_SEALER: sealer} if sealer is not None else {}
        self._writer = sessionmaker(self.engine, expire_on_commit=False, info=info)
        self._write_lock = threading.RLock() if self.is_sqlite else None
        self._reader = sessionmaker(self.read_engine, expire_on_commit=False, info=info)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A writing transaction: committed at the end, rolled back on any error.

        SQLite has one writer at a time, and a connection that finds the write lock taken
        waits in SQLite's busy handler, which sleeps in growing steps (1, 2, 5, 10 ms …):
        under concurrent requests most of the time went to sleeping. Writers of one process
        therefore queue on a lock here instead; other processes still meet the busy handler.
        """
        if self._write_lock is None:
            with self._writer() as session, session.begin():
                yield session
            return
        with self._write_lock, self._writer() as session, session.begin():
            yield session

    @contextmanager
    def single(self) -> Iterator[Connection]:
        """A pooled connection for one read statement, outside any transaction (the hot
        paths: OCSP answers, API token checks)."""
        with self.read_engine.connect().execution_options(kyso_autocommit=True) as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A reading transaction (never commits; closing returns the connection, whose
        pool reset rolls back, without expiring the objects read)."""
        with self._reader() as session:
            yield session

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision.

        On SQLite, Alembic's batch mode rebuilds a table to alter it (copy, drop, rename),
        which foreign keys pointing at it would block; SQLite's documented procedure is to
        switch them off for the migration (a PRAGMA that only works outside a transaction)
        and check them afterwards.
        """
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.connect() as conn:
            if self.is_sqlite:
                conn.connection.dbapi_connection.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
            try:
                with conn.begin():
                    cfg.attributes["connection"] = conn
                    command.upgrade(cfg, "head")
                    if self.is_sqlite:
                        broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                        if broken:
                            raise RuntimeError(f"migration left broken foreign keys: {broken[:5]}")
            finally:
                if self.is_sqlite:
                    conn.connection.dbapi_connection.execute("PRAGMA foreign_keys=ON")  # type: ignore[union-attr]

    def is_current(self) -> bool:
        """Whether the schema is already at the newest revision (cheap: no env.py run)."""
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        head = ScriptDirectory.from_config(cfg).get_current_head()
        with self.read_engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision() == head

    def ensure_current(self) -> None:
        if not self.is_current():
            self.migrate()

    def is_migrated(self) -> bool:
        return inspect(self.engine).has_table("ca_identities")

    def dispose(self) -> None:
        self.engine.dispose()
        if self.read_engine is not self.engine:
            self.read_engine.dispose()
