"""The registry's fixtures: the demo province loaded once per backend (SQLite and PostgreSQL),
principals for each demo user, and empty instances for imports that need a blank registry.

Tests that change data add their own units and people (unique names and codes), so they can
share one demo instance in any order.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import _database_url, make_env, open_instance
from sqlalchemy import select

from kyso.context import Context
from kyso.demo import DemoData, load_demo
from kyso.registry import users
from kyso.registry.access import Principal
from kyso.store.models import Organization, Person, User


@dataclass
class Registry:
    ctx: Context
    env: dict[str, str]
    backend: str
    demo: DemoData
    home: Path

    def principal(self, username: str) -> Principal:
        with self.ctx.db.read() as session:
            user = session.execute(select(User).where(User.username == username)).scalar_one()
            return users.principal_for_user(session, user)

    def unit(self, name: str) -> Organization:
        with self.ctx.db.read() as session:
            return (
                session.execute(
                    select(Organization).where(Organization.name == name).order_by(Organization.id)
                )
                .scalars()
                .first()
            )  # type: ignore[return-value]

    def person_in(self, unit_name: str) -> Person:
        unit = self.unit(unit_name)
        with self.ctx.db.read() as session:
            return (
                session.execute(
                    select(Person).where(Person.organization_id == unit.id).order_by(Person.id)
                )
                .scalars()
                .first()
            )  # type: ignore[return-value]

    def password(self, username: str) -> str:
        return next(u.password for u in self.demo.users if u.username == username)

    def totp_secret(self, username: str) -> str:
        secret = next(u.totp_secret for u in self.demo.users if u.username == username)
        assert secret is not None
        return secret


@pytest.fixture(scope="session")
def _registries(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[str], Registry]]:
    """Builds the demo instance of a backend on first use and keeps it to the session's end.

    (A parametrized session fixture would be torn down and rebuilt each time the backend
    switches, which under ``--dist loadfile`` is once per test file.)"""
    made: dict[str, Registry] = {}

    def get(backend: str) -> Registry:
        if backend not in made:
            home = tmp_path_factory.mktemp(f"registry-{backend}")
            env = make_env(home, _database_url(backend, home, request))
            ctx = open_instance(env, init=False)  # the registry needs no CA keys
            made[backend] = Registry(ctx, env, backend, load_demo(ctx, "cli:test-setup"), home)
        return made[backend]

    yield get
    for registry in made.values():
        registry.ctx.close()


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def registry(request: pytest.FixtureRequest, _registries: Callable[[str], Registry]) -> Registry:
    """The demo province on SQLite and on PostgreSQL."""
    return _registries(request.param)


@pytest.fixture
def empty_instance(
    registry: Registry, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Context]:
    """A migrated, empty instance on the same backend as ``registry``."""
    env = make_env(tmp_path, _database_url(registry.backend, tmp_path, request))
    ctx = open_instance(env, init=False)
    yield ctx
    ctx.close()


_counter = itertools.count(1)


@pytest.fixture
def uniq() -> Callable[[], str]:
    """A short unique token for names and codes made by one test."""
    run = secrets.randbelow(900) + 100
    return lambda: f"{run}{next(_counter):03d}"


def cccd_for(year: int, female: bool = False, tail: int | None = None) -> str:
    """A well-formed CCCD number (Bắc Kạn) for someone born in ``year``."""
    century = 2 * ((year - 1900) // 100) + (1 if female else 0)
    rest = tail if tail is not None else secrets.randbelow(10**6)
    return f"006{century}{year % 100:02d}{rest:06d}"


def new_code() -> str:
    """A random, well-formed agency code that no demo unit has (level 1 'T' for test)."""
    r = secrets.randbelow
    return f"{r(1000):03d}.{r(100):02d}.{r(100):02d}.T{r(100):02d}"
