"""Web pages benchmark: time to first byte of the heaviest pages with 10,000 certificates.

Issue #5's target: the certificate list (10,000 certificates) and the dashboard answer their
first byte in under 300 ms at the median, on SQLite and on PostgreSQL. Beside each page the
same run measures the floors: `/healthz` (the server and HTTP alone) and the list's two SQL
statements run directly (the database alone), so the ratio means something on a noisy machine.

    python benchmarks/bench_web.py                       # SQLite, and PostgreSQL when
                                                          # KYSO_TEST_PG_URL is set
    python benchmarks/bench_web.py --certs 10000 --requests 40
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from kyso.context import Context
from kyso.demo import load_demo
from kyso.keys.base import KeyAlgorithm
from kyso.pki import bootstrap, issuance
from kyso.registry import sessions, users
from kyso.settings import Settings
from kyso.store.models import Certificate, Organization, Person, Profile


@dataclass
class Row:
    backend: str
    operation: str
    median_ms: float
    p95_ms: float
    floor: str = ""
    ratio: str = ""


ROWS: list[Row] = []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_instance(home: Path, database_url: str, certs: int) -> tuple[dict[str, str], Context]:
    env = {
        "KYSO_HOME": str(home),
        "KYSO_DATABASE_URL": database_url,
        "KYSO_KEYSTORE_PASSPHRASE": "bench-passphrase",
        "KYSO_LINT_ON_ISSUE": "0",  # setting up 10,000 certificates, not measuring issuance
    }
    ctx = Context(Settings.from_env(env))
    ctx.db.migrate()
    with ctx.db.session() as session:
        bootstrap.initialize(
            session,
            ctx.authority,
            ctx.keystore,
            names=bootstrap.CaNames.for_organization("UBND tỉnh Bắc Kạn", "Bắc Kạn"),
            algorithm=KeyAlgorithm.EC_P256,
            signer_algorithm=KeyAlgorithm.EC_P256,
        )
    load_demo(ctx, "cli:bench")
    with ctx.db.read() as session:
        people = session.execute(select(Person.id, Person.full_name, Person.organization_id)).all()
        units = dict(session.execute(select(Organization.id, Organization.name)).all())
    rng = random.Random(7)
    keys = [ec.generate_private_key(ec.SECP256R1()).public_key() for _ in range(50)]
    made = 0
    print(f"  issuing {certs:,} certificates …", file=sys.stderr, flush=True)
    while made < certs:
        specs = []
        for i in range(min(1000, certs - made)):
            person_id, name, org_id = rng.choice(people)
            specs.append(
                issuance.IssueSpec(
                    Profile.INDIVIDUAL,
                    x509.Name(
                        [
                            x509.NameAttribute(NameOID.COMMON_NAME, name),
                            x509.NameAttribute(NameOID.ORGANIZATION_NAME, units[org_id]),
                            x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
                        ]
                    ),
                    keys[(made + i) % len(keys)],
                    person_id=person_id,
                    organization_id=org_id,
                )
            )
        with ctx.db.session() as session:
            issuance.issue_many(session, ctx.authority, specs, "bench")
        made += len(specs)
    return env, ctx


def login_token(ctx: Context, username: str) -> str:
    with ctx.db.session() as session:
        user = users.by_username(session, username)
        assert user is not None
        return sessions.start(session, user)


def ttfb(port: int, path: str, token: str | None, n: int) -> list[float]:
    """Time from sending the request to the first byte of the body, one connection each."""
    times = []
    headers = {"accept": "text/html"}
    if token:
        headers["cookie"] = f"kyso_sid={token}"
    for _ in range(n):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.connect()
        start = time.perf_counter()
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        response.read(1)
        times.append((time.perf_counter() - start) * 1000)
        if response.status != 200:
            raise SystemExit(f"{path}: HTTP {response.status}")
        response.read()
        conn.close()
    return times


def sql_floor(ctx: Context, n: int) -> list[float]:
    """The list's page and count queries run directly (no ORM objects, no template)."""
    times = []
    for _ in range(n):
        start = time.perf_counter()
        with ctx.db.read() as session:
            session.scalar(select(func.count()).select_from(Certificate))
            session.execute(
                select(Certificate.serial, Certificate.subject, Certificate.not_after)
                .order_by(Certificate.id.desc())
                .limit(50)
            ).all()
        times.append((time.perf_counter() - start) * 1000)
    return times


def record(
    backend: str, operation: str, times: list[float], floor: list[float] | None, name: str
) -> None:
    median = statistics.median(times)
    p95 = sorted(times)[max(0, int(len(times) * 0.95) - 1)]
    floor_text, ratio = "", ""
    if floor:
        floor_median = statistics.median(floor)
        floor_text = f"{floor_median:.1f} ms {name}"
        ratio = f"{median / floor_median:.1f}×"
    ROWS.append(Row(backend, operation, median, p95, floor_text, ratio))
    print(f"  {backend} {operation}: median {median:.1f} ms, p95 {p95:.1f} ms", file=sys.stderr)


def run(backend: str, database_url: str, certs: int, n: int) -> None:
    with tempfile.TemporaryDirectory(prefix="kyso-bench-web-") as tmp:
        home = Path(tmp)
        env, ctx = make_instance(home, database_url, certs)
        admin = login_token(ctx, "admin")
        officer = login_token(ctx, "babe")
        port = free_port()
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "kyso.web.app:create_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            env={**os.environ, **env},
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    ttfb(port, "/healthz", None, 1)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            for path in ("/", "/certificates", "/certificates?offset=5000"):
                ttfb(port, path, admin, 3)  # warm the caches and the templates
            health = ttfb(port, "/healthz", None, n)
            record(backend, "GET /healthz (server floor)", health, None, "")
            floor = sql_floor(ctx, n)
            record(backend, "certificate list SQL alone (database floor)", floor, None, "")
            pages = [
                ("dashboard /, administrator (whole province)", "/", admin),
                ("dashboard /, unit officer (Ba Bể subtree)", "/", officer),
                ("certificate list, page 1, administrator", "/certificates", admin),
                ("certificate list, page 100 (offset 5,000)", "/certificates?offset=5000", admin),
                ("certificate list, search 'Nguyễn'", "/certificates?q=Nguy%E1%BB%85n", admin),
                ("certificate list, expiring in 30 days", "/certificates?expiring=30", admin),
                ("certificate list, unit officer", "/certificates", officer),
            ]
            for name, path, token in pages:
                times = ttfb(port, path, token, n)
                record(backend, name, times, health, "healthz")
        finally:
            server.terminate()
            server.wait(10)
            ctx.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--certs", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--pg-url", default=os.environ.get("KYSO_TEST_PG_URL"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run("sqlite", f"sqlite:///{tmp}/bench.db", args.certs, args.requests)
    if args.pg_url:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from support import postgres as pg

        url, drop = pg.fresh_database(args.pg_url)
        try:
            run("postgres", url, args.certs, args.requests)
        finally:
            drop()
    print(
        f"\nweb pages, {args.certs:,} certificates, {args.requests} requests each "
        "(target: median < 300 ms)"
    )
    print(f"{'backend':<9} {'page':<48} {'median':>9} {'p95':>9}  {'floor':<18} ratio")
    for r in ROWS:
        print(
            f"{r.backend:<9} {r.operation:<48} {r.median_ms:>7.1f}ms {r.p95_ms:>7.1f}ms  "
            f"{r.floor:<18} {r.ratio}"
        )


if __name__ == "__main__":
    main()
