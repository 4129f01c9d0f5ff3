"""The SQLite database and its write-ahead log and shared-memory index are readable by their
owner only (mode 0600), whatever the process umask, for new and for existing files."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from sqlalchemy import text

from kyso.store.db import Database


def _modes(path: Path) -> dict[str, int]:
    return {
        p.name: stat.S_IMODE(os.stat(p).st_mode)
        for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm"))
        if p.exists()
    }


def _write(database: Database) -> None:
    database.migrate()
    with database.session() as session:
        session.execute(text("INSERT INTO counters (name, value) VALUES ('mode-test', 1)"))


@pytest.fixture
def loose_umask() -> object:
    previous = os.umask(0o022)  # the usual default: files 0644, readable by every local user
    yield
    os.umask(previous)


def test_a_new_database_and_its_wal_and_shm_are_owner_only(
    tmp_path: Path, loose_umask: object
) -> None:
    path = tmp_path / "kyso.db"
    database = Database(f"sqlite:///{path}")
    try:
        _write(database)
        with database.read() as session:  # a reader keeps -wal and -shm open
            session.execute(text("SELECT value FROM counters")).all()
            modes = _modes(path)
    finally:
        database.dispose()
    assert set(modes) == {"kyso.db", "kyso.db-wal", "kyso.db-shm"}
    assert modes == dict.fromkeys(modes, 0o600)


def test_an_existing_world_readable_database_is_made_owner_only(
    tmp_path: Path, loose_umask: object
) -> None:
    path = tmp_path / "kyso.db"
    first = Database(f"sqlite:///{path}")
    _write(first)
    first.dispose()
    os.chmod(path, 0o644)  # as an older kyso left it
    for suffix in ("-wal", "-shm"):
        if Path(f"{path}{suffix}").exists():
            os.chmod(f"{path}{suffix}", 0o644)
    again = Database(f"sqlite:///{path}")
    try:
        with again.session() as session:
            session.execute(text("UPDATE counters SET value = 2 WHERE name = 'mode-test'"))
        modes = _modes(path)
    finally:
        again.dispose()
    assert modes["kyso.db"] == 0o600
    assert modes == dict.fromkeys(modes, 0o600)
