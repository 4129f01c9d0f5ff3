"""The test infrastructure itself: the private PostgreSQL server and SoftHSM2 tokens."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from support import postgres, require_or_skip, softhsm


@pytest.mark.postgres
def test_fresh_database_is_usable_and_dropped() -> None:
    base = postgres.server_url()
    require_or_skip(base, "PostgreSQL (run scripts/test-setup.sh and export KYSO_TEST_PG_URL)")
    assert base is not None

    url, drop = postgres.fresh_database(base)
    assert url.startswith("postgresql+psycopg://")
    name = url.rsplit("/", 1)[1]
    assert name.startswith("kyso_t_")
    try:
        with psycopg.connect(postgres.to_libpq(url)) as conn:
            conn.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
            conn.execute("INSERT INTO t VALUES (1, 'x')")
            conn.commit()
            assert conn.execute("SELECT v FROM t").fetchone() == ("x",)
        # An open connection must not stop the drop.
        lingering = psycopg.connect(postgres.to_libpq(url))
    finally:
        drop()
    lingering.close()
    drop()  # idempotent

    with psycopg.connect(postgres.to_libpq(base)) as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    assert row is None


@pytest.mark.postgres
def test_fresh_database_url_works_with_sqlalchemy() -> None:
    sqlalchemy = pytest.importorskip("sqlalchemy")
    base = postgres.server_url()
    require_or_skip(base, "PostgreSQL (run scripts/test-setup.sh and export KYSO_TEST_PG_URL)")
    assert base is not None
    url, drop = postgres.fresh_database(base)
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as conn:
            assert (
                conn.execute(sqlalchemy.text("SELECT current_database()")).scalar()
                == (url.rsplit("/", 1)[1])
            )
    finally:
        engine.dispose()
        drop()


@pytest.mark.softhsm
def test_softhsm_token_generates_and_signs(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Runs in its own process: adding a token after the PKCS#11 library is loaded needs
    ``lib.reinitialize()``, which would invalidate the sessions of the session-wide CA
    (``hsm_instance``) if it ran in the test process."""
    require_or_skip(softhsm.available(), "SoftHSM2 (apt-get install softhsm2)")
    directory: Path = tmp_path_factory.mktemp("softhsm")
    script = f"""
import sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
import pkcs11
from pkcs11 import KeyType, Mechanism, ObjectClass
from support import softhsm

ca = softhsm.make_token(__import__("pathlib").Path({str(directory)!r}))
assert ca.conf_path.is_file()
sub = ca.add_token("kyso-subscriber", pin="4321")
data = b"kyso test payload"
for tok in (ca, sub):
    token = tok.get_token()
    assert token.label == tok.label
    with token.open(user_pin=tok.pin, rw=True) as session:
        pub, priv = session.generate_keypair(KeyType.RSA, 2048, label="k", store=True)
        sig = priv.sign(data, mechanism=Mechanism.SHA256_RSA_PKCS)
        assert len(sig) == 256
        assert pub.verify(data, sig, mechanism=Mechanism.SHA256_RSA_PKCS)
        found = list(session.get_objects({{pkcs11.Attribute.CLASS: ObjectClass.PRIVATE_KEY}}))
        assert len(found) == 1
try:
    ca.get_token().open(user_pin="0000")
    raise SystemExit("a wrong PIN was accepted")
except pkcs11.PinIncorrect:
    pass
late = ca.add_token("kyso-late")  # added after the library loaded: needs reinitialize
with late.get_token().open(user_pin=late.pin, rw=True) as session:
    _, priv = session.generate_keypair(KeyType.RSA, 2048, store=False)
    assert len(priv.sign(data, mechanism=Mechanism.SHA256_RSA_PKCS)) == 256
print("ok")
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith("ok")
