"""Test-support helpers shared by the test suite (not a test module itself)."""

from __future__ import annotations

import os

import pytest


def require_or_skip(condition: object, what: str) -> None:
    """Skip the calling test unless ``condition`` holds.

    In CI (``CI=true``) a missing prerequisite is a broken setup, not a reason to
    skip, so the test fails instead. ``what`` says what is missing, e.g.
    ``"PostgreSQL (run scripts/test-setup.sh and export KYSO_TEST_PG_URL)"``.
    """
    if condition:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is required in CI but not available", pytrace=False)
    pytest.skip(f"{what} not available")
