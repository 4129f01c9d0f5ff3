"""What the validation tests share: kyso's own CA (the session's SQLite instance) and the trust
context built from it, once per test module."""

from __future__ import annotations

import pytest
from conftest import Instance

from kyso.context import Context
from kyso.trust import TrustContext, trust_context


@pytest.fixture(scope="module")
def sqlite_ctx(sqlite_instance: Instance) -> Context:
    return sqlite_instance.ctx


@pytest.fixture(scope="module")
def trust(sqlite_ctx: Context) -> TrustContext:
    return trust_context(sqlite_ctx)
