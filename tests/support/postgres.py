"""The test PostgreSQL server started by ``scripts/test-setup.sh``.

The setup script prints ``KYSO_TEST_PG_URL=postgresql+psycopg://kyso@127.0.0.1:55432/kyso_test``;
export it before running pytest. Role ``kyso`` is a superuser, so each test (or
test session) can get a database of its own with :func:`fresh_database`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

ENV_VAR = "KYSO_TEST_PG_URL"


def to_libpq(url: str) -> str:
    """``postgresql+psycopg://...`` (SQLAlchemy) -> ``postgresql://...`` (libpq/psycopg)."""
    scheme, rest = url.split("://", 1)
    return f"{scheme.split('+', 1)[0]}://{rest}"


def with_database(url: str, dbname: str) -> str:
    """The same URL (any scheme) pointing at database ``dbname``."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + dbname))


def server_url() -> str | None:
    """``$KYSO_TEST_PG_URL`` if it is set and the server answers within 2 s, else None."""
    url = os.environ.get(ENV_VAR)
    if not url:
        return None
    try:
        with psycopg.connect(to_libpq(url), connect_timeout=2) as conn:
            conn.execute("select 1")
    except psycopg.Error:
        return None
    return url


def fresh_database(base_url: str) -> tuple[str, Callable[[], None]]:
    """Create a new, uniquely named database on the server of ``base_url``.

    Returns its SQLAlchemy URL (same ``postgresql+psycopg://`` form as ``base_url``)
    and a function that drops it again (idempotent; it first disconnects any
    session still using the database).
    """
    name = f"kyso_t_{uuid.uuid4().hex[:16]}"
    admin = to_libpq(base_url)
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        # template0: never connected to, so concurrent creates (pytest-xdist) cannot
        # fail with "source database is being accessed by other users".
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))

    def drop() -> None:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            if conn.info.server_version >= 130000:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
            else:
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = %s AND pid <> pg_backend_pid()",
                    (name,),
                )
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))

    return with_database(base_url, name), drop
