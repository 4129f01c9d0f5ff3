"""Reading the audit log (kyso.audit.search): only audit readers read it, whatever asks, and a
date means that day in Vietnam. Each backend gets a migrated database of its own whose log
holds only what these tests write."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from conftest import _database_url, make_env, open_instance
from sqlalchemy import text

from kyso import clock
from kyso.audit import search
from kyso.audit.log import Event, record
from kyso.context import Context
from kyso.errors import Forbidden, NotFound
from kyso.registry.access import Principal, cli_principal
from kyso.store.models import Role

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
ADMIN = cli_principal("cli:test")
AUDITOR = Principal(actor="user:kiem", role=Role.AUDITOR)
OFFICER = Principal(actor="user:can", role=Role.UNIT_OFFICER, organization_id=1, org_path="/1/")


@pytest.fixture(scope="module", params=BACKENDS)
def ctx(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Context]:
    home = tmp_path_factory.mktemp(f"audit-search-{request.param}")
    made = open_instance(make_env(home, _database_url(request.param, home, request)), init=False)
    with made.db.engine.begin() as conn:
        for table in ("audit_entries", "audit_head"):
            conn.execute(text(f"DELETE FROM {table}"))
    yield made
    made.close()


def _write_at(ctx: Context, moment: datetime, *events: Event) -> None:
    with clock.using(clock.FakeClock(moment.astimezone(UTC))), ctx.db.session() as session:
        record(session, *events)


def test_only_audit_readers_search_read_export_or_check_the_log(ctx: Context) -> None:
    _write_at(ctx, clock.now(), Event("user:lan", "certificate.revoked", "0a1b"))
    with ctx.db.read() as session:
        for reader in (ADMIN, AUDITOR):
            assert "certificate.revoked" in search.actions(reader, session)
            found = search.search(reader, session, search.AuditFilter(actor="LAN"))
            assert found.total == 1 and found.rows[0].target == "0a1b"
            assert search.export(reader, session, search.AuditFilter(actor="lan"))[0].actor == (
                "user:lan"
            )
            assert search.entry(reader, session, found.rows[0].seq).action == "certificate.revoked"
        with pytest.raises(Forbidden):
            search.actions(OFFICER, session)  # even the list of kinds of entries
        with pytest.raises(Forbidden):
            search.search(OFFICER, session, search.AuditFilter())
        with pytest.raises(Forbidden):
            search.export(OFFICER, session, search.AuditFilter())
        with pytest.raises(Forbidden):
            search.entry(OFFICER, session, 1)
        with pytest.raises(NotFound):
            search.entry(AUDITOR, session, 10**9)
    with pytest.raises(Forbidden):
        search.verify(OFFICER, ctx)
    assert search.verify(AUDITOR, ctx).chain.ok


def test_a_date_means_that_day_in_vietnam(ctx: Context) -> None:
    day = date(2026, 3, 10)
    midnight = datetime(2026, 3, 10, tzinfo=clock.VIETNAM)
    # 00:30 on 10 March in Vietnam is 17:30 on 9 March in UTC; 23:30 is 16:30 UTC the same day.
    _write_at(ctx, midnight + timedelta(minutes=30), Event("user:dau-ngay", "test.day"))
    _write_at(ctx, midnight + timedelta(hours=23, minutes=30), Event("user:cuoi-ngay", "test.day"))
    _write_at(ctx, midnight + timedelta(days=1, minutes=1), Event("user:hom-sau", "test.day"))

    def actors(since: date | None, until: date | None) -> list[str]:
        wanted = search.AuditFilter(action="test.day", since=since, until=until)
        with ctx.db.read() as session:
            return [row.actor for row in search.search(AUDITOR, session, wanted).rows]

    assert actors(day, day) == ["user:cuoi-ngay", "user:dau-ngay"]  # newest first
    assert actors(None, day - timedelta(days=1)) == []
    assert actors(day + timedelta(days=1), None) == ["user:hom-sau"]
