"""`kyso request …` as an operator runs it on the server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Instance

from .conftest import World
from .conftest import make_world as _make_world
from .test_bulk import rows, xlsx


@pytest.fixture
def sqlite_world(sqlite_instance: Instance) -> World:
    return _make_world(sqlite_instance.ctx, "sqlite")


def _kyso(instance: Instance, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **instance.env, "KYSO_LANG": "vi", "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "kyso.cli.main", "request", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_list_is_imported_approved_and_issued_from_the_command_line(
    sqlite_world: World, sqlite_instance: Instance, tmp_path: Path
) -> None:
    bad = rows(3)
    bad[1][3] = "123"
    (tmp_path / "bad.xlsx").write_bytes(xlsx(bad))
    refused = _kyso(
        sqlite_instance,
        "bulk",
        str(tmp_path / "bad.xlsx"),
        "--unit",
        sqlite_world.unit("babe").public_id,
        "--json",
    )
    assert refused.returncode == 1
    errors = json.loads(refused.stdout)["errors"]
    assert [(e["row"], e["column"]) for e in errors] == [(5, "D")]

    (tmp_path / "good.xlsx").write_bytes(xlsx(rows(4)))
    admin = sqlite_world.users["admin1"].username
    done = _kyso(
        sqlite_instance,
        "bulk",
        str(tmp_path / "good.xlsx"),
        "--unit",
        sqlite_world.unit("babe").public_id,
        "--approve-as",
        admin,
    )
    assert done.returncode == 0, done.stderr
    assert "đã cấp 4 chứng thư" in done.stdout

    listed = _kyso(
        sqlite_instance,
        "list",
        "--state",
        "issued",
        "--unit",
        sqlite_world.unit("babe").public_id,
        "--json",
    )
    assert listed.returncode == 0, listed.stderr
    items = json.loads(listed.stdout)["items"]
    assert len(items) == 4 and all(i["certificate"] for i in items)
    shown = _kyso(sqlite_instance, "show", items[0]["id"], "--json")
    history = json.loads(shown.stdout)["history"]
    assert [h["to"] for h in history] == ["submitted", "approved", "issued"]
    assert history[1]["by"].endswith(f" as {admin}")
