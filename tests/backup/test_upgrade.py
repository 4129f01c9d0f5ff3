"""A backup made by an older kyso (an older schema) restores into this one: the restore runs
the migrations, and the restored instance's audit chain still verifies."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from conftest import make_env, open_instance

from kyso.audit import checkpoints
from kyso.backup import archive
from kyso.store.db import MIGRATIONS

PASSPHRASE = b"backup passphrase, not a secret"


def test_an_older_schema_is_migrated_on_restore(tmp_path: Path) -> None:
    home = tmp_path / "old"
    ctx = open_instance(make_env(home, f"sqlite:///{home / 'kyso.db'}"))
    try:
        checkpoints.make(ctx)
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with ctx.db.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "-1")  # the instance as the previous kyso left it
        backup = tmp_path / "old.kbk"
        made = archive.make(ctx.settings, backup, PASSPHRASE)
    finally:
        ctx.close()
    new = tmp_path / "new"
    done = archive.restore(backup, new, PASSPHRASE, env=make_env(new, f"sqlite:///{new}/kyso.db"))
    assert done.schema_from == made.manifest["schema_revision"]
    assert done.schema_to != done.schema_from
    assert done.audit_entries > 0
