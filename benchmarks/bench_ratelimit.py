"""Cost of one rate-limit take (kyso.ratelimit: one UPSERT in its own transaction) beside the
work it guards: an OCSP answer signed on the spot (nonce request: parse, statuses, signature).

    python benchmarks/bench_ratelimit.py [--database-url postgresql+psycopg://…] [--rounds N]

The CA and its OCSP answers live in a SQLite file in a temp dir; takes are measured there and,
with --database-url, on that database as well (migrated first).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kyso.context import Context
from kyso.pki import bootstrap, issuance
from kyso.pki.names import parse_subject
from kyso.ratelimit import Budget, Limiter, Purpose
from kyso.settings import Settings
from kyso.store.db import Database
from kyso.store.models import IdentityRole, Profile


def per_call(work, rounds: int) -> float:  # type: ignore[no-untyped-def]
    work()
    start = time.perf_counter()
    for _ in range(rounds):
        work()
    return (time.perf_counter() - start) / rounds


def take_cost(db: Database, rounds: int) -> float:
    limiter = Limiter(db, {Purpose.OCSP_SIGNING: Budget(1e-6, 10**9)})
    return per_call(lambda: limiter.take(Purpose.OCSP_SIGNING, "192.0.2.1"), rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url")
    parser.add_argument("--rounds", type=int, default=500)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="kyso-bench-rl-"))
    try:
        home = tmp / "home"
        ctx = Context(
            Settings.from_env(
                {"KYSO_HOME": str(home), "KYSO_KEYSTORE_PASSPHRASE": "bench-passphrase"}
            )
        )
        ctx.db.migrate()
        with ctx.db.session() as session:
            bootstrap.initialize(session, ctx.authority, ctx.keystore)
        key = ec.generate_private_key(ec.SECP256R1())
        spec = issuance.IssueSpec(
            Profile.INDIVIDUAL, parse_subject("CN=Thuê bao,C=VN"), key.public_key()
        )
        with ctx.db.session() as session:
            issued = issuance.issue(session, ctx.authority, spec, "bench")
        issuer = x509.load_der_x509_certificate(ctx.authority.identity(IdentityRole.ISSUING).der)
        leaf = x509.load_pem_x509_certificate(issued.pem().encode())
        request = (
            ocsp.OCSPRequestBuilder()
            .add_certificate(leaf, issuer, hashes.SHA1())
            .add_extension(x509.OCSPNonce(b"0123456789abcdef"), critical=False)
            .build()
            .public_bytes(serialization.Encoding.DER)
        )
        signed = per_call(lambda: ctx.responder.respond(request), max(50, args.rounds // 5))
        print(f"OCSP answer signed on the spot (in process): {signed * 1e3:.2f} ms")
        sqlite = take_cost(ctx.db, args.rounds)
        print(f"rate-limit take, SQLite (WAL):               {sqlite * 1e3:.2f} ms")
        if args.database_url:
            other = Database(args.database_url)
            other.migrate()
            remote = take_cost(other, args.rounds)
            other.dispose()
            print(f"rate-limit take, PostgreSQL:                 {remote * 1e3:.2f} ms")
        ctx.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
