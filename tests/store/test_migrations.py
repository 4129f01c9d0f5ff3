"""Alembic migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from conftest import _database_url
from sqlalchemy import Column, Integer, MetaData, String, Table, inspect, text

from kyso.store.db import MIGRATIONS, Database
from kyso.store.models import Base

# compare_type is on: alembic compares a TypeDecorator (UTCDateTime) by its impl (DateTime),
# so the migrations' plain sa.DateTime() columns match without any special casing.
COMPARE_OPTS = {"compare_type": True, "compare_server_default": True}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A Database on an empty SQLite file or an empty PostgreSQL database."""
    database = Database(_database_url(request.param, tmp_path / "nested", request))
    yield database
    database.dispose()


def _head_revision() -> str:
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert head is not None
    return head


def _version(database: Database) -> str | None:
    with database.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _schema(database: Database) -> dict[str, Any]:
    """Everything the inspector can say about every table, in a comparable form."""
    inspector = inspect(database.engine)
    schema: dict[str, Any] = {}
    for table in sorted(inspector.get_table_names()):
        schema[table] = {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)
            ],
            "pk": inspector.get_pk_constraint(table)["constrained_columns"],
            "indexes": sorted(
                (i["name"] or "", tuple(i["column_names"]), bool(i["unique"]))
                for i in inspector.get_indexes(table)
            ),
            "unique": sorted(
                tuple(u["column_names"]) for u in inspector.get_unique_constraints(table)
            ),
            "fks": sorted(
                (tuple(f["constrained_columns"]), f["referred_table"])
                for f in inspector.get_foreign_keys(table)
            ),
        }
    return schema


def _differences(database: Database, metadata: MetaData) -> list[Any]:
    with database.engine.connect() as conn:
        return list(compare_metadata(MigrationContext.configure(conn, opts=COMPARE_OPTS), metadata))


def test_migrate_creates_every_model_table(db: Database) -> None:
    assert inspect(db.engine).get_table_names() == []
    assert not db.is_migrated()
    db.migrate()
    tables = set(inspect(db.engine).get_table_names())
    assert set(Base.metadata.tables) <= tables
    assert tables - set(Base.metadata.tables) == {"alembic_version"}
    assert db.is_migrated()
    assert _version(db) == _head_revision()


def test_migrating_twice_changes_nothing(db: Database) -> None:
    db.migrate()
    with db.engine.begin() as conn:
        conn.execute(text("INSERT INTO counters (name, value) VALUES ('crl:1', 41)"))
    before = _schema(db)
    db.migrate()
    assert _schema(db) == before
    assert _version(db) == _head_revision()
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT value FROM counters WHERE name = 'crl:1'")).scalar() == 41


def test_models_and_migrations_agree(db: Database) -> None:
    db.migrate()
    assert _differences(db, Base.metadata) == []


def test_the_comparison_notices_what_the_migrations_lack(db: Database) -> None:
    """The check above is not vacuous: a model change without a migration shows up."""
    db.migrate()
    changed = MetaData()
    for table in Base.metadata.sorted_tables:
        table.to_metadata(changed)
    changed.tables["certificates"].append_column(Column("note", String(100), nullable=True))
    Table("not_migrated", changed, Column("id", Integer, primary_key=True))
    found = {(d[0], d[2] if d[0] == "add_column" else d[1].name) for d in _differences(db, changed)}
    assert found == {("add_column", "certificates"), ("add_table", "not_migrated")}
