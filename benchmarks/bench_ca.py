"""CA benchmark: issuance (batch and HTTP), OCSP over HTTP beside `openssl ocsp`, big CRLs.

Prints one table; every figure stands beside the raw limit measured in the same run, because
these 2-core machines are noisy and only the ratio means something.

    python benchmarks/bench_ca.py            # as root it runs inside `unshare -n` so that
                                              # the `openssl ocsp` peer (which binds every
                                              # interface) only ever sees loopback

Options: --certs N (batch size, 1000), --ocsp-index N (10000), --crl-entries N (100000),
--seconds S (each HTTP load, 8), --database-url URL (default: a SQLite file in a temp dir).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kyso import clock
from kyso.api import clients
from kyso.context import Context
from kyso.keys.base import KeyAlgorithm
from kyso.pki import bootstrap, crl, issuance
from kyso.settings import Settings
from kyso.store.models import (
    CertEventKind,
    Certificate,
    CertificateEvent,
    CertStatus,
    IdentityRole,
    Profile,
    RevocationReason,
)


@dataclass
class Row:
    operation: str
    figure: float
    unit: str
    limit: str = ""
    ratio: str = ""


ROWS: list[Row] = []


def add(
    operation: str, figure: float, unit: str, limit: float | None = None, limit_name: str = ""
) -> None:
    ratio = f"{figure / limit:.0%}" if limit else ""
    ROWS.append(
        Row(operation, figure, unit, f"{limit:,.0f} {limit_name}".strip() if limit else "", ratio)
    )
    print(f"  {operation}: {figure:,.2f} {unit}", file=sys.stderr, flush=True)


def raw_rsa_rate(bits: int = 2048, seconds: float = 1.5) -> float:
    key = rsa.generate_private_key(65537, bits)
    data = b"x" * 512
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        n += 1
    return n / (time.perf_counter() - start)


def raw_rsa_rate_all_cores(seconds: float = 1.5) -> float:
    """The same signatures from one thread per core (cryptography releases the GIL while it
    signs, and batch issuance uses that): the machine's whole signing capacity."""
    import threading

    key = rsa.generate_private_key(65537, 2048)
    counts: list[int] = []
    deadline = time.perf_counter() + seconds

    def work() -> None:
        n = 0
        while time.perf_counter() < deadline:
            key.sign(b"x" * 512, padding.PKCS1v15(), hashes.SHA256())
            n += 1
        counts.append(n)

    start = time.perf_counter()
    threads = [threading.Thread(target=work) for _ in range(os.cpu_count() or 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.perf_counter() - start)


def make_csrs(count: int) -> list[bytes]:
    """`count` CSRs over 20 keys (RSA keygen is ~31/s; the CA does not care about reuse)."""
    keys = [rsa.generate_private_key(65537, 2048) for _ in range(20)]
    csrs = []
    for i in range(count):
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, f"Người ký {i}"),
                x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
            ]
        )
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(name)
            .sign(keys[i % 20], hashes.SHA256())
        )
        csrs.append(csr.public_bytes(serialization.Encoding.PEM))
    return csrs


def open_ctx(home: Path, database_url: str | None, lint: bool, base_url: str) -> Context:
    env = {
        "KYSO_HOME": str(home),
        "KYSO_KEYSTORE_PASSPHRASE": "bench-passphrase",
        "KYSO_LINT_ON_ISSUE": "1" if lint else "0",
        "KYSO_BASE_URL": base_url,
    }
    if database_url:
        env["KYSO_DATABASE_URL"] = database_url
    return Context(Settings.from_env(env))


def bench_batch(ctx: Context, csrs: list[bytes], raw: float, lint: bool) -> None:
    start = time.perf_counter()
    specs = [
        issuance.spec_from_csr(
            c, Profile.INDIVIDUAL, subject=f"CN=Nguyễn Văn {i},O=UBND tỉnh Bắc Kạn,C=VN"
        )
        for i, c in enumerate(csrs)
    ]
    with ctx.db.session() as session:
        issuance.issue_many(session, ctx.authority, specs, "bench")
    rate = len(csrs) / (time.perf_counter() - start)
    add(
        f"batch issuance from CSRs, {len(csrs)} in one transaction, lint {'on' if lint else 'off'}",
        rate,
        "certs/s",
        raw,
        "RSA-2048 signs/s",
    )


def start_server(
    home: Path, env_extra: dict[str, str], port: int, workers: int
) -> subprocess.Popen[bytes]:
    env = {**os.environ, **env_extra}
    proc = subprocess.Popen(
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
            "--workers",
            str(workers),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        env=env,
        cwd=str(Path(__file__).resolve().parents[1]),
    )
    import urllib.request

    for _ in range(300):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def ab(url: str, body_file: Path, content_type: str, seconds: int) -> tuple[float, int, int]:
    """(requests/s, total, failed) from ApacheBench, one connection per request.

    ``openssl ocsp`` answers one request per connection and never keeps it alive, which
    stalls wrk; ab (HTTP/1.0, a new connection each time) drives both responders alike, so
    the two OCSP figures are measured the same way.
    """
    result = subprocess.run(
        [
            "ab",
            "-q",
            "-t",
            str(seconds),
            "-n",
            "10000000",
            "-c",
            "8",
            "-p",
            str(body_file),
            "-T",
            content_type,
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    )
    rate = float(re.search(r"Requests per second:\s+([\d.]+)", result.stdout).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"Complete requests:\s+(\d+)", result.stdout).group(1))  # type: ignore[union-attr]
    failed = re.search(r"Non-2xx responses:\s+(\d+)", result.stdout)
    return rate, total, int(failed.group(1)) if failed else 0


def wrk(
    url: str,
    body_file: Path,
    content_type: str,
    seconds: int,
    headers: dict[str, str] | None = None,
    connections: int = 16,
) -> tuple[float, int, int]:
    """(requests/s, total requests, non-2xx) from wrk POSTing the file's bytes."""
    script = body_file.with_suffix(".lua")
    extra = "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in (headers or {}).items())
    script.write_text(
        f'local f = io.open("{body_file}", "rb")\nwrk.method = "POST"\n'
        f'wrk.body = f:read("*a")\nf:close()\n'
        f'wrk.headers["Content-Type"] = "{content_type}"\n{extra}'
    )
    result = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    )
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", result.stdout).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", result.stdout).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", result.stdout)
    return rate, total, int(bad.group(1)) if bad else 0


def env_for(home: Path, database_url: str | None, lint: bool, port: int) -> dict[str, str]:
    env = {
        "KYSO_HOME": str(home),
        "KYSO_KEYSTORE_PASSPHRASE": "bench-passphrase",
        "KYSO_LINT_ON_ISSUE": "1" if lint else "0",
        "KYSO_BASE_URL": f"http://127.0.0.1:{port}",
    }
    if database_url:
        env["KYSO_DATABASE_URL"] = database_url
    return env


def bench_http_issuance(
    home: Path,
    ctx: Context,
    database_url: str | None,
    csr: bytes,
    seconds: int,
    raw: float,
    tmp: Path,
) -> None:
    with ctx.db.session() as session:
        token = clients.create(session, f"bench-{time.time_ns()}", ["certificates:issue"], "bench")
    body = tmp / "issue.json"
    body.write_text(
        json.dumps(
            {
                "profile": "individual",
                "csr": csr.decode(),
                "subject": "CN=Trần Thị Bình,O=UBND huyện Ba Bể,L=Bắc Kạn,C=VN",
            }
        )
    )
    for workers, lint in ((1, False), (2, False), (2, True)):
        port = 18200 + workers + (10 if lint else 0)
        proc = start_server(home, env_for(home, database_url, lint, port), port, workers)
        try:
            rate, total, bad = wrk(
                f"http://127.0.0.1:{port}/api/v1/certificates",
                body,
                "application/json",
                seconds,
                {"Authorization": f"Bearer {token}"},
            )
        finally:
            stop(proc)
        if bad:
            print(f"  warning: {bad} of {total} issuance requests failed", file=sys.stderr)
        add(
            f"HTTP issuance, 1 CSR per POST, {workers} worker(s), lint {'on' if lint else 'off'}",
            rate * (total - bad) / max(total, 1),
            "certs/s",
            raw,
            "RSA-2048 signs/s",
        )


def ocsp_request(issuer_pem: Path, serial: int, out: Path) -> None:
    subprocess.run(
        [
            "openssl",
            "ocsp",
            "-issuer",
            str(issuer_pem),
            "-serial",
            hex(serial),
            "-no_nonce",
            "-reqout",
            str(out),
        ],
        check=True,
        capture_output=True,
    )


def bench_ocsp(
    home: Path, ctx: Context, database_url: str | None, index_size: int, seconds: int, tmp: Path
) -> None:
    issuing = ctx.authority.identity(IdentityRole.ISSUING)
    ocsp_id = ctx.authority.identity(IdentityRole.OCSP)
    # Fill the database to the index size (lint off: this is set-up, not the measured part).
    with ctx.db.read() as session:
        from sqlalchemy import func, select

        have = session.execute(select(func.count()).select_from(Certificate)).scalar_one()
    csrs = make_csrs(50)
    missing = max(0, index_size - have)
    while missing:
        step = min(missing, 2000)
        specs = [
            issuance.spec_from_csr(
                csrs[i % 50], Profile.INDIVIDUAL, subject=f"CN=Thuê bao {i},C=VN"
            )
            for i in range(step)
        ]
        with ctx.db.session() as session:
            issuance.issue_many(session, ctx.authority, specs, "bench")
        missing -= step
    signed = ctx.responder.refresh(limit=index_size * 2)
    with ctx.db.read() as session:
        from sqlalchemy import select

        rows = session.execute(
            select(
                Certificate.serial,
                Certificate.not_after,
                Certificate.status,
                Certificate.revoked_at,
            ).where(Certificate.issuer_id == issuing.id)
        ).all()
    serial = int(rows[len(rows) // 2].serial, 16)
    (tmp / "issuing.pem").write_text(issuing.pem())
    (tmp / "ocsp.pem").write_text(ocsp_id.pem())
    key = ocsp_id.key.cryptography_key()
    assert key is not None
    (tmp / "ocsp.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    os.chmod(tmp / "ocsp.key", 0o600)
    (tmp / "index.txt.attr").write_text("unique_subject = no\n")
    with (tmp / "index.txt").open("w") as index:
        for r in rows:
            expiry = r.not_after.strftime("%y%m%d%H%M%SZ")
            if r.status is CertStatus.GOOD:
                index.write(f"V\t{expiry}\t\t{r.serial.upper()}\tunknown\t/CN=x\n")
            else:
                index.write(
                    f"R\t{expiry}\t{r.revoked_at.strftime('%y%m%d%H%M%SZ')}\t{r.serial.upper()}\tunknown\t/CN=x\n"
                )
    request = tmp / "ocsp.req"
    ocsp_request(tmp / "issuing.pem", serial, request)
    print(f"  OCSP set-up: {len(rows)} certificates, {signed} answers pre-signed", file=sys.stderr)

    results = {}
    for workers in (1, 2):
        port = 18300 + workers
        proc = start_server(home, env_for(home, database_url, False, port), port, workers)
        try:
            results[workers] = ab(
                f"http://127.0.0.1:{port}/ocsp", request, "application/ocsp-request", seconds
            )
        finally:
            stop(proc)

    peer_rate = None
    if shutil.which("openssl") and os.environ.get("KYSO_BENCH_NETNS") == "1":
        peer = subprocess.Popen(
            [
                "openssl",
                "ocsp",
                "-index",
                str(tmp / "index.txt"),
                "-port",
                "18399",
                "-rsigner",
                str(tmp / "ocsp.pem"),
                "-rkey",
                str(tmp / "ocsp.key"),
                "-CA",
                str(tmp / "issuing.pem"),
                "-nmin",
                "60",
            ],
            stdout=subprocess.DEVNULL,
            stderr=(tmp / "openssl-ocsp.log").open("wb"),
        )
        time.sleep(1.5)  # no probe connection: the peer would wait on it
        if peer.poll() is not None:
            raise RuntimeError(f"openssl ocsp exited with {peer.returncode}; see openssl-ocsp.log")
        try:
            peer_rate, _, _ = ab(
                "http://127.0.0.1:18399/", request, "application/ocsp-request", seconds
            )
        finally:
            stop(peer)
    for workers, (rate, _total, bad) in results.items():
        add(
            f"OCSP POST, pre-signed, {len(rows):,}-cert database, kyso {workers} worker(s)"
            + (f" ({bad} errors)" if bad else ""),
            rate,
            "responses/s",
            peer_rate,
            "openssl ocsp responses/s",
        )
    if peer_rate is None:
        ROWS.append(Row("openssl ocsp peer", float("nan"), "not run (needs root for unshare -n)"))


def bench_crl(ctx: Context, entries: int) -> None:
    issuing = ctx.authority.identity(IdentityRole.ISSUING)
    now = clock.now()
    big = [
        crl.Entry(format((1 << 100) + i, "x"), now, RevocationReason.SUPERSEDED if i % 3 else None)
        for i in range(entries)
    ]
    start = time.perf_counter()
    der = crl.build_crl_der(
        issuing, big, number=999_999, this_update=now, next_update=now + timedelta(days=1)
    )
    build = time.perf_counter() - start
    parsed = x509.load_der_x509_crl(der)
    assert len(parsed) == entries and parsed.is_signature_valid(issuing.certificate.public_key())  # type: ignore[arg-type]
    add(f"CRL build + sign, {entries:,} entries (encode only)", build, "s", 2.0, "s target")

    # The same through the database: rows inserted in bulk, then crl.generate() end to end.
    from sqlalchemy import insert, select

    rows = [
        {
            "serial": format((1 << 110) + i, "x"),
            "issuer_id": issuing.id,
            "profile": Profile.INDIVIDUAL,
            "subject": f"CN=R{i}",
            "spki_sha256": "0" * 64,
            "key_location": "bench",
            "not_before": now,
            "not_after": now + timedelta(days=365),
            "status": CertStatus.REVOKED,
            "status_changed_at": now,
            "revoked_at": now,
            "reason": RevocationReason.SUPERSEDED,
            "der": b"\x00",
            "created_at": now,
        }
        for i in range(entries)
    ]
    with ctx.db.session() as session:
        session.execute(insert(Certificate), rows)
        # each certificate's history: issued, then revoked (what a stored CRL's reuse counts)
        ids = session.execute(
            select(Certificate.id).where(Certificate.key_location == "bench")
        ).scalars()
        session.execute(
            insert(CertificateEvent),
            [
                {"certificate_id": cid, "at": now, "kind": kind, "actor": "bench"}
                for cid in ids
                for kind in (CertEventKind.ISSUED, CertEventKind.REVOKED)
            ],
        )
    start = time.perf_counter()
    with ctx.db.session() as session:
        made = crl.generate(session, ctx.authority, issuing, actor="bench")
        count, size = made.entries, len(made.der)
    add(
        f"CRL generate from the database, {count:,} entries ({size / 1e6:.1f} MB)",
        time.perf_counter() - start,
        "s",
        2.0,
        "s target",
    )
    crl.current(ctx.authority, issuing)  # warm
    start = time.perf_counter()
    for _ in range(10):
        crl.current(ctx.authority, issuing)
    add(
        f"GET /crl reuse check (status-change counter), {count:,} revoked",
        (time.perf_counter() - start) / 10 * 1000,
        "ms",
        None,
        "",
    )


def print_table() -> None:
    widths = [max(len(r.operation) for r in ROWS), 12, 14, 30, 6]
    head = ("operation", "figure", "unit", "raw limit / peer (same run)", "ratio")
    print("| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in ROWS:
        figure = f"{r.figure:,.2f}" if r.figure == r.figure else "-"
        print(
            "| "
            + " | ".join(
                v.ljust(w)
                for v, w in zip(
                    (r.operation, figure, r.unit, r.limit, r.ratio), widths, strict=True
                )
            )
            + " |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--certs", type=int, default=1000)
    parser.add_argument("--ocsp-index", type=int, default=10000)
    parser.add_argument("--crl-entries", type=int, default=100_000)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--database-url")
    parser.add_argument("--skip", default="", help="comma list of: batch,http,ocsp,crl")
    args = parser.parse_args()

    if os.geteuid() == 0 and os.environ.get("KYSO_BENCH_NETNS") != "1" and shutil.which("unshare"):
        # Re-run inside a network namespace that has only loopback (PERFORMANCE.md).
        os.execvp(
            "unshare",
            [
                "unshare",
                "-n",
                "sh",
                "-c",
                'ip link set lo up && KYSO_BENCH_NETNS=1 exec "$0" "$@"',
                sys.executable,
                *sys.argv,
            ],
        )
    skip = set(args.skip.split(","))
    tmp = Path(tempfile.mkdtemp(prefix="kyso-bench-"))
    home = tmp / "home"
    ctx = open_ctx(home, args.database_url, lint=False, base_url="http://127.0.0.1:8000")
    ctx.db.migrate()
    with ctx.db.session() as session:
        bootstrap.initialize(session, ctx.authority, ctx.keystore, algorithm=KeyAlgorithm.RSA_2048)

    print("measuring the raw limit …", file=sys.stderr)
    raw = raw_rsa_rate()
    add("raw RSA-2048 PKCS#1 v1.5 sign (cryptography, 1 core)", raw, "signs/s")
    add("raw RSA-3072 sign (kyso's default CA key size)", raw_rsa_rate(3072), "signs/s")
    add(
        f"raw RSA-2048 sign, {os.cpu_count()} threads (all cores)",
        raw_rsa_rate_all_cores(),
        "signs/s",
    )
    csrs = make_csrs(args.certs)
    if "batch" not in skip:
        bench_batch(ctx, csrs, raw, lint=False)
        lint_ctx = open_ctx(home, args.database_url, lint=True, base_url="http://127.0.0.1:8000")
        bench_batch(lint_ctx, csrs[: max(100, args.certs // 5)], raw, lint=True)
        lint_ctx.close()
    if "http" not in skip:
        bench_http_issuance(home, ctx, args.database_url, csrs[0], args.seconds, raw, tmp)
    if "ocsp" not in skip:
        bench_ocsp(home, ctx, args.database_url, args.ocsp_index, args.seconds, tmp)
    if "crl" not in skip:
        bench_crl(ctx, args.crl_entries)
    ctx.close()
    print()
    print_table()
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
