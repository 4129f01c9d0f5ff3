"""A CA whose keys are in an HSM: the backup leaves them there and says so, and a restore
writes nothing unless the HSM it is pointed at still holds every CA key."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Instance

from kyso.audit import checkpoints
from kyso.backup import archive
from kyso.backup.archive import RestoreCheckFailed

pytestmark = pytest.mark.softhsm

PASSPHRASE = b"backup passphrase, not a secret"


@pytest.fixture(scope="module")
def hsm_backup(hsm_instance: Instance, tmp_path_factory: pytest.TempPathFactory) -> Path:
    checkpoints.make(hsm_instance.ctx)
    path = tmp_path_factory.mktemp("hsm-archive") / "hsm.kbk"
    archive.make(hsm_instance.ctx.settings, path, PASSPHRASE)
    return path


def _env(instance: Instance, home: Path, **changes: str) -> dict[str, str]:
    return {
        **instance.env,
        "KYSO_HOME": str(home),
        "KYSO_DATABASE_URL": f"sqlite:///{home / 'kyso.db'}",
        **changes,
    }


def test_the_backup_leaves_pkcs11_keys_in_the_hsm_and_restores_against_it(
    hsm_instance: Instance, hsm_backup: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    done = archive.restore(hsm_backup, home, PASSPHRASE, env=_env(hsm_instance, home))
    keystore = done.manifest["keystore"]
    assert keystore["kind"] == "pkcs11" and keystore["in_backup"] is False
    assert "stay in the HSM" in keystore["note"]
    assert done.keys_checked >= 4
    assert not any(m["name"].startswith("home/keys/") for m in done.manifest["members"])
    assert done.audit_entries > 0 and "anchored" in done.audit_message


@pytest.mark.parametrize("where", ["another token", "a software key store"])
def test_a_restore_without_the_ca_keys_in_its_hsm_writes_nothing(
    hsm_instance: Instance, hsm_backup: Path, tmp_path: Path, where: str
) -> None:
    home = tmp_path / "home"
    changes = (
        {"KYSO_PKCS11_TOKEN": "subscriber-1", "KYSO_PKCS11_PIN": "135790"}
        if where == "another token"
        else {"KYSO_KEYSTORE": "software"}
    )
    with pytest.raises(RestoreCheckFailed):
        archive.restore(hsm_backup, home, PASSPHRASE, env=_env(hsm_instance, home, **changes))
    assert list(tmp_path.iterdir()) == []
