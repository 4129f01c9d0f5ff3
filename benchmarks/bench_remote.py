"""Remote signing benchmark: the CSC API over HTTP beside the HSM's raw rate, in one run.

Issue #10, "Measured by a benchmark". Everything runs on a SoftHSM2 token made for this run
in a temporary directory (its own ``softhsm2.conf``; the user's conf is never read or
written), a CA and database in a temporary home (SQLite, or a fresh PostgreSQL database
when ``KYSO_TEST_PG_URL`` answers), and kyso served by uvicorn in subprocesses, as a CSC
client reaches it.

Measured in alternating rounds (median of each):

1. The raw rate of the central token through python-pkcs11: ``sign_digest`` of kyso's
   ``Pkcs11KeyStore`` keys (RSA-2048 PKCS#1 v1.5 and ECDSA P-256 over SHA-256 digests), one
   process, one thread, measured again right before each signHash measurement: the limit
   that row is compared with. A bare python-pkcs11 ``sign`` row shows what kyso's wrapper
   (lock, DigestInfo, DER of the ECDSA value) costs.
2. ``/csc/v2/signatures/signHash`` over HTTP with batches of 1, 10 and 100 hashes
   (``KYSO_APPROVAL_BATCH_MAX=100``), each request carrying a SAD authorized beforehand
   (CSC "pre-authorized"): the SADs are issued outside the timed part through the service
   layer (``kyso.remote.activation.issue``, the row ``credentials/authorize`` writes after
   PIN + OTP), because a TOTP code is good once per 30 s step per person. One real
   ``credentials/authorize`` with PIN + OTP per key is made over HTTP first, and its SAD
   spent, to show the whole path works. The timed part is signHash only, from
   ``--clients`` concurrent keep-alive connections: hashes signed per second. Beside it,
   the same service called in process (no HTTP), batch 1. Target: batched signHash
   >= 70 % of the raw rate.
   Then one and two kyso processes (the client spreads its connections over both) beside
   the raw rate of two processes signing at once: is one process's single PKCS#11 session,
   on which kyso serialises calls with a lock, the ceiling?
3. ``/csc/v2/signatures/signDoc`` (server-side PAdES B-B with the central RSA key, the same
   1-page PDF; 1 and 10 documents per request) beside pyHanko alone signing that PDF in
   this process with the same HSM key (``PdfSigner`` over a bare pyHanko ``Signer`` whose
   raw signature is the token's, with a tight ``bytes_reserved``), and kyso's ``sign_pdf``
   in process. Target: signDoc >= 85 % of pyHanko alone.

Two ratios per row. "ratio" divides wall-clock rates. "CPU ratio" divides the CPU each
item cost the process doing the work (the kyso server's, read from /proc, for HTTP rows;
this thread's for in-process rows): on a machine shared with other work, a busy loop (the
raw rate) gets only its share of a core while a server that sleeps between requests gets
more, so the wall-clock ratio can pass 100 %; the CPU ratio does not depend on the load and
says what the ratio would be with a core to spare.

    python benchmarks/bench_remote.py [--quick] [--seconds S] [--rounds N] [--clients C]
                                      [--database sqlite|postgres]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import httpx  # noqa: E402

CENTRAL_TOKEN, CENTRAL_PIN = "kyso-hsm", "975310"
SHA256_OID = "2.16.840.1.101.3.4.2.1"
RSA_ENCRYPTION = "1.2.840.113549.1.1.1"
EC_PUBLIC_KEY = "1.2.840.10045.2.1"
BATCHES = (1, 10, 100)
SIGN_DOC_BATCHES = (1, 10)


@dataclass
class Row:
    operation: str
    figure: float | None  # None: not measured (see the unit column)
    unit: str
    limit: str = ""
    ratio: str = ""
    target: str = ""
    cpu: float | None = None  # CPU milliseconds per item of the process doing the work
    cpu_ratio: str = ""  # the limit's CPU per item / this row's: load-independent


@dataclass(frozen=True)
class Sample:
    """A rate (items per wall-clock second) and the CPU the working process spent per item
    (ms). On a machine shared with other work the wall-clock rate of a busy loop is its CPU
    share; the CPU per item is not, so the CPU ratio says what an idle machine would show."""

    rate: float
    cpu_ms: float


def medians(samples: list[Sample]) -> Sample:
    return Sample(
        statistics.median(s.rate for s in samples), statistics.median(s.cpu_ms for s in samples)
    )


ROWS: list[Row] = []


_BEGAN = time.perf_counter()


def log(message: str) -> None:
    print(f"[{time.perf_counter() - _BEGAN:5.0f} s] {message}", file=sys.stderr, flush=True)


# -- the HSM's raw rate ------------------------------------------------------------------------


def rate(fn: Callable[[], object], seconds: float) -> Sample:
    """Calls of ``fn`` per second over ``seconds`` (after one warm-up call), in this thread,
    and this thread's CPU per call."""
    fn()
    count, start, cpu = 0, time.perf_counter(), time.thread_time()
    while time.perf_counter() - start < seconds:
        fn()
        count += 1
    elapsed, used = time.perf_counter() - start, time.thread_time() - cpu
    return Sample(count / elapsed, 1000 * used / count)


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far (/proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def raw_signer(key: Any) -> Callable[[], object]:
    """kyso's Pkcs11Key.sign_digest over a fresh-looking SHA-256 digest."""
    from cryptography.hazmat.primitives import hashes

    digest, algorithm = os.urandom(32), hashes.SHA256()
    return lambda: key.sign_digest(digest, algorithm)


def bare_signer(key: Any) -> Callable[[], object]:
    """python-pkcs11 alone on the same private-key object (no kyso lock, no DigestInfo
    encoding: the RSA input is a ready DigestInfo, the ECDSA input the digest)."""
    from asn1crypto.algos import DigestInfo
    from pkcs11 import Mechanism

    digest = os.urandom(32)
    private = key._private  # the python-pkcs11 object under kyso's wrapper
    if key.algorithm.is_rsa:
        info = DigestInfo({"digest_algorithm": {"algorithm": "sha256"}, "digest": digest}).dump()
        return lambda: private.sign(info, mechanism=Mechanism.RSA_PKCS)
    return lambda: private.sign(digest, mechanism=Mechanism.ECDSA)


def child_raw(conf: str, module: str, key_id: str) -> None:
    """One of the processes signing at once (``--child-raw``): logs in, says "ready", then
    for each "go SECONDS" line on stdin measures its raw rate and answers it as JSON."""
    os.environ["SOFTHSM2_CONF"] = conf
    import pkcs11

    from kyso.errors import KeyStoreError
    from kyso.keys.pkcs11 import Pkcs11KeyStore

    for attempt in range(5):  # SoftHSM2 can fail a C_GetTokenInfo while another starts
        try:
            store = Pkcs11KeyStore(module, CENTRAL_TOKEN, CENTRAL_PIN)
            break
        except KeyStoreError:
            if attempt == 4:
                raise
            time.sleep(0.3)
            pkcs11.lib(module).reinitialize()
    fn = raw_signer(store.get(key_id))
    fn()
    print("ready", flush=True)
    for line in sys.stdin:
        if not line.startswith("go "):
            break
        found = rate(fn, float(line.split()[1]))
        print(json.dumps({"rate": found.rate, "cpu_ms": found.cpu_ms}), flush=True)
    store.close()


class RawProcesses:
    """``count`` processes, each logged in to the token, that sign at the same moment when
    asked: the HSM's rate with several PKCS#11 sessions in several processes."""

    def __init__(self, conf: str, module: str, key_id: str, count: int) -> None:
        self.procs = []
        for _ in range(count):
            proc = subprocess.Popen(
                [sys.executable, __file__, "--child-raw", conf, module, key_id],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "ready":  # one at a time into C_Initialize
                raise RuntimeError("a raw-rate child process failed (its error is above)")
            self.procs.append(proc)

    def measure(self, seconds: float) -> Sample:
        """Their summed rate (and mean CPU per signature), all signing at once."""
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.write(f"go {seconds}\n")
            proc.stdin.flush()
        found = []
        for proc in self.procs:
            assert proc.stdout is not None
            found.append(json.loads(proc.stdout.readline()))
        return Sample(sum(f["rate"] for f in found), statistics.mean(f["cpu_ms"] for f in found))

    def close(self) -> None:
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.close()
            proc.wait(30)


# -- the kyso instance -------------------------------------------------------------------------


def instance_env(home: Path, database_url: str, conf: Path, module: str) -> dict[str, str]:
    return {
        "KYSO_HOME": str(home),
        "KYSO_DATABASE_URL": database_url,
        "KYSO_KEYSTORE": "software",
        "KYSO_KEYSTORE_PASSPHRASE": "bench-passphrase-not-secret",
        "KYSO_BASE_URL": "http://127.0.0.1:8000",
        "KYSO_LINT_ON_ISSUE": "0",
        "KYSO_HSM_MODULE": module,
        "KYSO_HSM_TOKEN": CENTRAL_TOKEN,
        "KYSO_HSM_PIN": CENTRAL_PIN,
        "SOFTHSM2_CONF": str(conf),
        # a batch of 100 hashes is one request (CSC multisign; the default is 50)
        "KYSO_APPROVAL_BATCH_MAX": "100",
        "KYSO_SAD_SECONDS": "900",
        # the scheduled work (OCSP answers, CRL) runs once at start-up, before the first
        # measurement (see settle), and not again inside a measured window
        "KYSO_LOOP_SECONDS": "3600",
        "KYSO_LOGIN_PER_MINUTE": "60000",
        "KYSO_LOGIN_FAILURES_PER_HOUR": "3600000",
        "KYSO_TSA_PER_MINUTE": "60000",
        "KYSO_VERIFY_WORKERS": "1",
    }


@contextmanager
def database(kind: str, home: Path) -> Iterator[tuple[str, str]]:
    """(SQLAlchemy URL, backend name) of a database for this run, dropped afterwards."""
    from support import postgres as pg

    if kind == "auto":
        kind = "postgres" if pg.server_url() else "sqlite"
    if kind == "sqlite":
        yield f"sqlite:///{home / 'kyso.db'}", "sqlite"
        return
    base = pg.server_url()
    if base is None:
        raise SystemExit(
            'PostgreSQL does not answer: export "$(bash scripts/test-setup.sh)" first, '
            "or use --database sqlite"
        )
    url, drop = pg.fresh_database(base)
    try:
        yield url, "postgres"
    finally:
        drop()


@dataclass
class Signer:
    """A person with a key in the central HSM, their API token and what a SAD binds."""

    name: str  # RSA-2048 / ECDSA P-256
    key_id: str
    serial: str
    user_id: int
    client_id: int | None
    headers: dict[str, str]
    sign_algo: str
    pin: str
    totp_secret: str
    certificate_der: bytes


def make_signer(ctx: Any, world: Any, *, rsa: bool) -> Signer:
    from sqlalchemy import select
    from support.remote import central_signer

    from kyso.api import clients
    from kyso.remote import csc_tokens
    from kyso.store.models import Certificate

    found = central_signer(world, full_name="Hoàng Văn Thụ" if rsa else "Nông Thị Thu", rsa=rsa)
    with ctx.db.session() as session:
        token = clients.create(
            session,
            f"{found.user.username}-bench-{secrets.token_hex(3)}",
            ["documents:sign"],
            "cli:bench",
            user_id=found.user.id,
        )
        der = session.scalars(select(Certificate.der).where(Certificate.serial == found.serial))
        certificate_der = der.one()
    headers = {"authorization": f"Bearer {token}"}
    caller = csc_tokens.authenticate(ctx, headers["authorization"])
    return Signer(
        "RSA-2048" if rsa else "ECDSA P-256",
        found.key_id,
        found.serial,
        found.user.id,
        caller.principal.client_id,
        headers,
        RSA_ENCRYPTION if rsa else EC_PUBLIC_KEY,
        found.pin,
        found.totp_secret,
        certificate_der,
    )


def issue_sads(ctx: Any, signer: Signer, batches: list[list[str]]) -> list[str]:
    """Pre-authorized SADs, one per batch of base64 hashes (the rows credentials/authorize
    writes once the person consented), made outside the timed part."""
    from kyso.remote import activation
    from kyso.remote.central import PREFIX

    sads = []
    with ctx.db.session() as session:
        for hashes in batches:
            binding = activation.Binding(
                key_location=PREFIX + signer.key_id,
                hash_algorithm=SHA256_OID,
                hashes=tuple(hashes),
                user_id=signer.user_id,
                client_id=signer.client_id,
            )
            sads.append(activation.issue(session, binding, seconds=900)[0])
    return sads


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(env: dict[str, str], log_dir: Path) -> Server:
    """kyso under uvicorn in a subprocess (as tests/conftest.py _serve), ready on /healthz."""
    port = free_port()
    full = {**os.environ, **env, "KYSO_BASE_URL": f"http://127.0.0.1:{port}"}
    log_path = log_dir / f"server-{port}.log"
    with log_path.open("wb") as out:
        process = subprocess.Popen(
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
            ],
            env=full,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    with httpx.Client(timeout=2) as client:
        while time.monotonic() < deadline:
            try:
                if client.get(f"{url}/healthz").status_code == 200:
                    settle(process.pid)
                    return Server(url, process, log_path)
            except httpx.TransportError:
                time.sleep(0.2)
            if process.poll() is not None:
                raise RuntimeError(f"kyso exited while starting; see {log_path}")
    process.kill()
    raise RuntimeError(f"kyso did not start in 120 s; see {log_path}")


def settle(pid: int, limit: float = 20.0) -> None:
    """Wait until the new server's start-up work (its first scheduled round: OCSP answers,
    CRL) is over, so that its CPU is not counted in the first measurement."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        before = process_cpu(pid)
        time.sleep(0.5)
        if process_cpu(pid) - before < 0.05:  # under a tenth of a core
            return
    log(f"  note: kyso (pid {pid}) still busy {limit:.0f} s after it started")


def stop_server(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


def csc_available(url: str) -> bool:
    """The v2 info lists signHash and signDoc (the CSC routes are in this kyso)."""
    try:
        answer = httpx.post(f"{url}/csc/v2/info", json={}, timeout=10)
        methods = answer.json().get("methods", []) if answer.status_code == 200 else []
    except (httpx.HTTPError, ValueError):
        return False
    return "signatures/signHash" in methods and "signatures/signDoc" in methods


# -- HTTP load ---------------------------------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def load(
    urls: list[str],
    path: str,
    headers: dict[str, str],
    bodies: list[dict[str, Any]],
    per_request: int,
    seconds: float,
    clients: int,
    check: Callable[[dict[str, Any], dict[str, Any]], int],
    pids: list[int],
) -> Sample:
    """POST the bodies (each usable once) from ``clients`` keep-alive connections, spread
    over ``urls``, until ``seconds`` pass or the bodies run out: items per second, and the
    CPU the servers (``pids``) spent per item. ``check(body, answer)`` validates an answer
    and returns how many items it carries."""
    work = deque(bodies)
    done: list[int] = []
    errors: list[str] = []
    start_line = threading.Barrier(clients + 1)
    stop_at = [0.0]

    def client(index: int) -> None:
        items = 0
        with httpx.Client(base_url=urls[index % len(urls)], headers=headers, timeout=120) as http:
            # One request before the clock starts: the connection is open, and the server's
            # first-use work (imports, caches) is not counted.
            warm_up = http.post(path, json=work.popleft())
            if warm_up.status_code != 200:
                errors.append(f"{warm_up.status_code} {warm_up.text[:300]}")
            start_line.wait()
            while time.perf_counter() < stop_at[0]:
                try:
                    body = work.popleft()
                except IndexError:
                    break
                answer = http.post(path, json=body)
                if answer.status_code != 200:
                    errors.append(f"{answer.status_code} {answer.text[:300]}")
                    break
                got = check(body, answer.json())
                if got != per_request:
                    errors.append(f"answer carried {got} items, not {per_request}")
                    break
                items += got
        done.append(items)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    stop_at[0] = time.perf_counter() + 3600
    cpu = sum(process_cpu(pid) for pid in pids)
    start_line.wait()
    start = time.perf_counter()
    stop_at[0] = start + seconds
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    used = sum(process_cpu(pid) for pid in pids) - cpu
    if errors:
        raise RuntimeError(f"{path}: {errors[0]}")
    if not work:
        log(f"    note: all {len(bodies)} pre-authorized requests used before {seconds} s")
    total = sum(done)
    return Sample(total / elapsed, 1000 * used / max(total, 1))


def sign_hash_rate(
    ctx: Any,
    signer: Signer,
    servers: list[Server],
    batch: int,
    seconds: float,
    clients: int,
    ceiling: float,
) -> Sample:
    """signHash over HTTP with pre-authorized batches: hashes signed per second."""
    # enough SADs for three times the raw rate (the server may get more CPU than a busy
    # loop does on a shared machine, and two processes more), at most 250 requests/s (one
    # process answers about 100 a second)
    requests = int(min(3 * len(servers) * ceiling * seconds / batch, 250 * seconds))
    requests += 3 * clients
    batches = [[b64(os.urandom(32)) for _ in range(batch)] for _ in range(requests)]
    sads = issue_sads(ctx, signer, batches)
    bodies = [
        {
            "credentialID": signer.key_id,
            "SAD": sad,
            "hashes": hashes,
            "hashAlgorithmOID": SHA256_OID,
            "signAlgo": signer.sign_algo,
        }
        for sad, hashes in zip(sads, batches, strict=True)
    ]
    checked: list[bool] = []

    def check(body: dict[str, Any], answer: dict[str, Any]) -> int:
        if not checked:  # one signature of the run verifies under the certificate
            verify_hash_signature(
                signer, body["hashes"][0], base64.b64decode(answer["signatures"][0])
            )
            checked.append(True)
        return len(answer["signatures"])

    return load(
        [s.url for s in servers],
        "/csc/v2/signatures/signHash",
        signer.headers,
        bodies,
        batch,
        seconds,
        clients,
        check,
        [s.process.pid for s in servers],
    )


def verify_hash_signature(signer: Signer, hash_b64: str, signature: bytes) -> None:
    """A signature from the run verifies under the signer's certificate (sanity, untimed)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

    key = x509.load_der_x509_certificate(signer.certificate_der).public_key()
    digest = base64.b64decode(hash_b64)
    if isinstance(key, rsa.RSAPublicKey):
        key.verify(signature, digest, padding.PKCS1v15(), Prehashed(hashes.SHA256()))
    else:
        assert isinstance(key, ec.EllipticCurvePublicKey)
        key.verify(signature, digest, ec.ECDSA(Prehashed(hashes.SHA256())))


def authorize_over_http(url: str, signer: Signer) -> float:
    """One real credentials/authorize (PIN + TOTP) and its signHash over HTTP; seconds."""
    from kyso import clock
    from kyso.registry import totp

    hashes = [b64(os.urandom(32)) for _ in range(10)]
    start = time.perf_counter()
    with httpx.Client(base_url=url, headers=signer.headers, timeout=60) as http:
        authorized = http.post(
            "/csc/v2/credentials/authorize",
            json={
                "credentialID": signer.key_id,
                "numSignatures": len(hashes),
                "hashes": hashes,
                "hashAlgorithmOID": SHA256_OID,
                "authData": [
                    {"id": "PIN", "value": signer.pin},
                    {"id": "OTP", "value": totp.code_at(signer.totp_secret, clock.timestamp())},
                ],
            },
        )
        if authorized.status_code != 200:
            raise RuntimeError(f"credentials/authorize: {authorized.status_code} {authorized.text}")
        signed = http.post(
            "/csc/v2/signatures/signHash",
            json={
                "credentialID": signer.key_id,
                "SAD": authorized.json()["SAD"],
                "hashes": hashes,
                "hashAlgorithmOID": SHA256_OID,
                "signAlgo": signer.sign_algo,
            },
        )
        if signed.status_code != 200:
            raise RuntimeError(f"signatures/signHash: {signed.status_code} {signed.text}")
    elapsed = time.perf_counter() - start
    signatures = signed.json()["signatures"]
    for hash_b64, signature in zip(hashes, signatures, strict=True):
        verify_hash_signature(signer, hash_b64, base64.b64decode(signature))
    return elapsed


def sign_doc_rate(
    ctx: Any,
    signer: Signer,
    server: Server,
    pdf: bytes,
    per_request: int,
    seconds: float,
    clients: int,
) -> Sample:
    """signDoc (PAdES B-B) over HTTP with pre-authorized SADs: documents signed per second."""
    consented = b64(hashlib.sha256(pdf).digest())
    requests = int(200 * seconds / per_request) + 3 * clients
    sads = issue_sads(ctx, signer, [[consented] * per_request] * requests)
    document = {
        "document": b64(pdf),
        "signature_format": "P",
        "conformance_level": "Ades-B-B",
        "signAlgo": signer.sign_algo,
    }
    bodies = [
        {"credentialID": signer.key_id, "SAD": sad, "documents": [document] * per_request}
        for sad in sads
    ]
    signed: list[str] = []

    def check(body: dict[str, Any], answer: dict[str, Any]) -> int:
        documents = answer["DocumentWithSignature"]
        if not signed:
            signed.append(documents[0])
        return len(documents)

    found = load(
        [server.url],
        "/csc/v2/signatures/signDoc",
        signer.headers,
        bodies,
        per_request,
        seconds,
        clients,
        check,
        [server.process.pid],
    )
    check_signed_pdf(base64.b64decode(signed[0]))
    return found


def check_signed_pdf(data: bytes) -> None:
    from pyhanko.pdf_utils.reader import PdfFileReader

    (embedded,) = PdfFileReader(io.BytesIO(data)).embedded_signatures
    assert embedded.field_name


# -- pyHanko in process ------------------------------------------------------------------------


def pyhanko_alone(identity: Any, pdf: bytes) -> Callable[[], bytes]:
    """pyHanko's PdfSigner signing ``pdf`` (PAdES B-B) with the token key, no kyso around it:
    kyso's ``KeyStoreSigner`` is a bare pyHanko ``Signer`` whose raw signature comes from the
    token (CKM_SHA256_RSA_PKCS); none of kyso's PAdES caches (kyso.signing.pades)."""
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign import fields, signers

    signer = identity.pyhanko_signer()
    meta = signers.PdfSignatureMetadata(
        field_name="Sig1", md_algorithm="sha256", subfilter=fields.SigSeedSubFilter.PADES
    )

    def sign(reserved: int | None) -> bytes:
        writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
        pdf_signer = signers.PdfSigner(meta, signer)
        return pdf_signer.sign_pdf(writer, bytes_reserved=reserved).getvalue()

    # Without ``bytes_reserved`` pyHanko makes a dry-run signature first to size the space
    # for the CMS (PERFORMANCE.md), which cost it two thirds of its rate here (8 against 22
    # PDFs/s). The baseline gets a tight reservation, as kyso gives itself one: the size of
    # a first signature's CMS, in hex digits, plus a margin.
    first = PdfFileReader(io.BytesIO(sign(None))).embedded_signatures[0]
    reserved = 2 * len(bytes(first.sig_object["/Contents"]).rstrip(b"\0")) + 512
    return lambda: sign(reserved)


# -- the table ---------------------------------------------------------------------------------


def print_table() -> None:
    head = (
        "operation",
        "figure",
        "unit",
        "limit (same run)",
        "ratio",
        "target",
        "CPU ms/item",
        "CPU ratio",
    )
    cells = [
        (
            r.operation,
            f"{r.figure:,.1f}" if r.figure is not None else "-",
            r.unit,
            r.limit,
            r.ratio,
            r.target,
            f"{r.cpu:.3f}" if r.cpu is not None else "",
            r.cpu_ratio,
        )
        for r in ROWS
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(head)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for line in cells:
        print(
            "| "
            + " | ".join(
                c.rjust(w) if i in (1, 6) else c.ljust(w)
                for i, (c, w) in enumerate(zip(line, widths, strict=True))
            )
            + " |"
        )


# -- the run -----------------------------------------------------------------------------------


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child-raw":
        child_raw(*sys.argv[2:5])
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=1.25, help="per measurement (1.25)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (3)")
    parser.add_argument("--clients", type=int, default=4, help="HTTP connections (4)")
    parser.add_argument(
        "--database",
        choices=("auto", "sqlite", "postgres"),
        default="auto",
        help="auto: PostgreSQL if KYSO_TEST_PG_URL answers, else SQLite",
    )
    parser.add_argument("--quick", action="store_true", help="0.75 s, 1 round")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.rounds = 0.75, 1

    from support import softhsm

    if not softhsm.available():
        raise SystemExit("SoftHSM2 is not installed (apt-get install softhsm2)")
    tmp = Path(tempfile.mkdtemp(prefix="kyso-bench-remote-"))
    began = time.perf_counter()
    # The token first, before python-pkcs11 loads (tests/support/softhsm.py): this sets
    # SOFTHSM2_CONF for this process only, to the conf in the temporary directory.
    token = softhsm.make_token(tmp / "softhsm", label=CENTRAL_TOKEN, pin=CENTRAL_PIN)
    servers: list[Server] = []
    try:
        with database(args.database, tmp / "home") as (url, backend):
            (tmp / "home").mkdir(exist_ok=True)
            env = instance_env(tmp / "home", url, token.conf_path, token.module)
            run(args, tmp, env, backend, token, servers)
    finally:
        for server in servers:
            stop_server(server)
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    print_table()
    print(
        f"\n({os.cpu_count()} cores; load average before the run "
        f"{LOAD_BEFORE}; {args.clients} HTTP connections; {args.seconds:g} s x "
        f"{args.rounds} rounds; database {BACKEND[0]}; "
        f"whole run {time.perf_counter() - began:.0f} s)"
    )
    if args.keep:
        print(f"(kept: {tmp}; the servers' logs are there)")


LOAD_BEFORE = " ".join(f"{x:.1f}" for x in os.getloadavg())
BACKEND = ["?"]


def run(
    args: argparse.Namespace,
    tmp: Path,
    env: dict[str, str],
    backend: str,
    token: Any,
    servers: list[Server],
) -> None:
    from support.world import make_world

    from kyso.context import Context
    from kyso.pki import bootstrap
    from kyso.settings import Settings

    BACKEND[0] = backend
    log(f"setting up a CA, the central token and two signers ({backend}) …")
    ctx = Context(Settings.from_env(env))
    ctx.db.migrate()
    with ctx.db.session() as session:
        bootstrap.initialize(
            session,
            ctx.authority,
            ctx.keystore,
            names=bootstrap.CaNames.for_organization("UBND tỉnh Bắc Kạn", "Bắc Kạn"),
        )
    world = make_world(ctx, backend)
    signers = [make_signer(ctx, world, rsa=True), make_signer(ctx, world, rsa=False)]
    log("starting kyso (uvicorn) …")
    servers.append(start_server(env, tmp))
    available = csc_available(servers[0].url)
    if not available:
        log("  the CSC API (signHash, signDoc) is not in this kyso: those rows say so")
    measure_sign_hash(args, ctx, signers, servers[0], available)
    measure_two_processes(args, ctx, env, tmp, token, signers[0], servers, available)
    measure_pades(args, ctx, signers[0], servers[0], available)
    ctx.close()


def pct(figure: float, limit: float) -> str:
    return f"{figure / limit:.0%}" if limit else ""


def cpu_pct(limit: Sample, found: Sample) -> str:
    """The limit's CPU per item over this row's: the share of the row's CPU that is the
    limit's own work (what the ratio would be on a machine with a core to spare)."""
    return f"{limit.cpu_ms / found.cpu_ms:.0%}" if found.cpu_ms else ""


def measure_sign_hash(
    args: argparse.Namespace, ctx: Any, signers: list[Signer], server: Server, available: bool
) -> None:
    """Parts 1 and 2: the raw rate measured right before each signHash measurement."""
    keys = {s.name: ctx.central.get(s.key_id) for s in signers}
    half = args.seconds / 2
    raw: dict[tuple[str, int], list[Sample]] = {}  # (key, batch): the raw samples beside it
    bare: dict[str, list[Sample]] = {}
    service: dict[str, list[Sample]] = {}
    http: dict[tuple[str, int], list[Sample]] = {}
    if available:
        for signer in signers:
            seconds = authorize_over_http(server.url, signer)
            ROWS.append(
                Row(
                    f"authorize (PIN+OTP) + signHash of 10 over HTTP, {signer.name}",
                    seconds * 1000,
                    "ms",
                    "one real consent each (untimed below)",
                )
            )
    for round_ in range(args.rounds):
        log(f"round {round_ + 1}/{args.rounds}: raw HSM and signHash …")
        for signer in signers:
            key = keys[signer.name]
            bare.setdefault(signer.name, []).append(rate(bare_signer(key), half))
            for batch in BATCHES:
                limit = rate(raw_signer(key), half)
                raw.setdefault((signer.name, batch), []).append(limit)
                if not available:
                    continue
                found = sign_hash_rate(
                    ctx, signer, [server], batch, args.seconds, args.clients, limit.rate
                )
                http.setdefault((signer.name, batch), []).append(found)
                log(
                    f"  {signer.name}: raw {limit.rate:,.0f}/s ({limit.cpu_ms:.3f} ms CPU), "
                    f"signHash batch {batch}: {found.rate:,.0f}/s ({found.cpu_ms:.3f} ms CPU)"
                )
            if available:
                service.setdefault(signer.name, []).append(
                    service_rate(ctx, signer, half, raw[(signer.name, 1)][-1].rate)
                )

    for signer in signers:
        every = [x for (name, _), xs in raw.items() if name == signer.name for x in xs]
        limit = medians(every)
        spread = f"{min(x.rate for x in every):,.0f}-{max(x.rate for x in every):,.0f}"
        ROWS.append(
            Row(
                f"raw HSM sign_digest (Pkcs11KeyStore), {signer.name}",
                limit.rate,
                "signs/s",
                f"1 process, 1 thread; {spread}",
                cpu=limit.cpu_ms,
            )
        )
        found = medians(bare[signer.name])
        ROWS.append(
            Row(
                f"bare python-pkcs11 sign, {signer.name}",
                found.rate,
                "signs/s",
                f"kyso sign_digest {limit.rate:,.0f}/s",
                pct(limit.rate, found.rate) + " kyso/bare",
                cpu=found.cpu_ms,
                cpu_ratio=cpu_pct(found, limit) + " bare/kyso",
            )
        )
        if not available:
            for batch in BATCHES:
                ROWS.append(
                    Row(f"signHash over HTTP, {signer.name}, batch {batch}", None, "not available")
                )
            continue
        found = medians(service[signer.name])
        ROWS.append(
            Row(
                f"signHash service in process (no HTTP), {signer.name}, batch 1",
                found.rate,
                "hashes/s",
                f"raw {limit.rate:,.0f}/s",
                pct(found.rate, limit.rate),
                cpu=found.cpu_ms,
                cpu_ratio=cpu_pct(limit, found),
            )
        )
        for batch in BATCHES:
            beside = medians(raw[(signer.name, batch)])
            found = medians(http[(signer.name, batch)])
            ROWS.append(
                Row(
                    f"signHash over HTTP, {signer.name}, batch {batch}",
                    found.rate,
                    "hashes/s",
                    f"raw {beside.rate:,.0f}/s",
                    pct(found.rate, beside.rate),
                    ">= 70 %" if batch > 1 else "",
                    cpu=found.cpu_ms,
                    cpu_ratio=cpu_pct(beside, found),
                )
            )


def service_rate(ctx: Any, signer: Signer, seconds: float, ceiling: float) -> Sample:
    """signHash of one hash through the service as the route calls it (token, then
    kyso.remote.csc.sign_hash), one thread, no HTTP: what each request costs kyso."""
    from kyso.remote import csc, csc_tokens

    count = int(min(ceiling, 400) * seconds) + 5
    batches = [[b64(os.urandom(32))] for _ in range(count)]
    bodies = deque(
        {
            "credentialID": signer.key_id,
            "SAD": sad,
            "hashes": hashes,
            "hashAlgorithmOID": SHA256_OID,
            "signAlgo": signer.sign_algo,
        }
        for sad, hashes in zip(issue_sads(ctx, signer, batches), batches, strict=True)
    )

    def one() -> None:
        caller = csc_tokens.authenticate(ctx, signer.headers["authorization"])
        csc.sign_hash(ctx, caller, "v2", bodies.popleft())

    one()  # warm-up, untimed
    done, start, cpu = 0, time.perf_counter(), time.thread_time()
    while bodies and time.perf_counter() - start < seconds:
        one()
        done += 1
    elapsed, used = time.perf_counter() - start, time.thread_time() - cpu
    return Sample(done / elapsed, 1000 * used / max(done, 1))


def measure_two_processes(
    args: argparse.Namespace,
    ctx: Any,
    env: dict[str, str],
    tmp: Path,
    token: Any,
    rsa: Signer,
    servers: list[Server],
    available: bool,
) -> None:
    """Two kyso processes (each its own PKCS#11 session) beside one: is one process's
    session, which kyso serialises with a lock, the ceiling?"""
    if not available:
        for batch in (1, 100):
            ROWS.append(
                Row(
                    f"signHash over HTTP, {rsa.name}, batch {batch}, 2 processes",
                    None,
                    "not available",
                )
            )
        return
    log("starting a second kyso process …")
    servers.append(start_server(env, tmp))
    key = ctx.central.get(rsa.key_id)
    children = RawProcesses(str(token.conf_path), token.module, rsa.key_id, 2)
    raw1: list[Sample] = []
    raw2: list[Sample] = []
    one: dict[int, list[Sample]] = {}
    two: dict[int, list[Sample]] = {}
    for round_ in range(args.rounds):
        log(f"round {round_ + 1}/{args.rounds}: one and two kyso processes …")
        raw1.append(rate(raw_signer(key), args.seconds / 2))
        raw2.append(children.measure(args.seconds / 2))
        for batch in (1, 100):
            for serving, into in ((servers[:1], one), (servers, two)):
                sample = sign_hash_rate(
                    ctx, rsa, serving, batch, args.seconds, args.clients, raw2[-1].rate
                )
                into.setdefault(batch, []).append(sample)
            log(
                f"  raw {raw1[-1].rate:,.0f}/s, x2 {raw2[-1].rate:,.0f}/s; signHash batch "
                f"{batch}: 1 process {one[batch][-1].rate:,.0f}/s, "
                f"2 processes {two[batch][-1].rate:,.0f}/s"
            )
    children.close()
    stop_server(servers.pop())
    limit1, limit2 = medians(raw1), medians(raw2)
    ROWS.append(
        Row(
            f"raw HSM sign_digest, {rsa.name}, 2 processes at once",
            limit2.rate,
            "signs/s",
            f"1 process {limit1.rate:,.0f}/s",
            pct(limit2.rate, limit1.rate),
            cpu=limit2.cpu_ms,
        )
    )
    for batch in (1, 100):
        found, single = medians(two[batch]), medians(one[batch])
        ROWS.append(
            Row(
                f"signHash over HTTP, {rsa.name}, batch {batch}, 1 process (again)",
                single.rate,
                "hashes/s",
                f"raw {limit1.rate:,.0f}/s",
                pct(single.rate, limit1.rate),
                cpu=single.cpu_ms,
                cpu_ratio=cpu_pct(limit1, single),
            )
        )
        ROWS.append(
            Row(
                f"signHash over HTTP, {rsa.name}, batch {batch}, 2 processes",
                found.rate,
                "hashes/s",
                f"1 process {single.rate:,.0f}/s; raw x2 {limit2.rate:,.0f}/s",
                f"{pct(found.rate, single.rate)}; {pct(found.rate, limit2.rate)}",
                cpu=found.cpu_ms,
                cpu_ratio=cpu_pct(limit2, found),
            )
        )


def measure_pades(
    args: argparse.Namespace, ctx: Any, rsa: Signer, server: Server, available: bool
) -> None:
    """Part 3: signDoc (PAdES B-B) beside pyHanko alone and kyso's sign_pdf, in process."""
    from fixtures.pdf import samples

    from kyso.signing.identity import from_key
    from kyso.signing.levels import Level
    from kyso.signing.pades import sign_pdf
    from kyso.signing.service import level_support

    pdf = samples.official_document()
    identity = from_key(ctx, rsa.key_id, rsa.certificate_der, store=ctx.central)
    peer = pyhanko_alone(identity, pdf)
    check_signed_pdf(peer())
    stamper, trust = level_support(ctx, Level.B_B, trust_from=Level.B_T)

    def kyso_in_process() -> bytes:
        return sign_pdf(pdf, identity, level=Level.B_B, timestamper=stamper, trust=trust)

    check_signed_pdf(kyso_in_process())
    alone: list[Sample] = []
    mine: list[Sample] = []
    docs: dict[int, list[Sample]] = {}
    for round_ in range(args.rounds):
        log(f"round {round_ + 1}/{args.rounds}: PAdES …")
        alone.append(rate(peer, args.seconds))
        mine.append(rate(kyso_in_process, args.seconds))
        if available:
            for per_request in SIGN_DOC_BATCHES:
                found = sign_doc_rate(
                    ctx, rsa, server, pdf, per_request, args.seconds, args.clients
                )
                docs.setdefault(per_request, []).append(found)
        log(
            f"  pyHanko alone {alone[-1].rate:,.1f}/s, kyso sign_pdf {mine[-1].rate:,.1f}/s"
            + "".join(f", signDoc {k}/request {v[-1].rate:,.1f}/s" for k, v in docs.items())
        )
    peer_rate, kyso_rate = medians(alone), medians(mine)
    ROWS.append(
        Row(
            f"pyHanko alone, PAdES B-B, 1-page PDF, HSM {rsa.name}",
            peer_rate.rate,
            "PDFs/s",
            "in process, 1 thread",
            cpu=peer_rate.cpu_ms,
        )
    )
    ROWS.append(
        Row(
            "kyso sign_pdf in process, same PDF and key",
            kyso_rate.rate,
            "PDFs/s",
            f"pyHanko alone {peer_rate.rate:,.1f}/s",
            pct(kyso_rate.rate, peer_rate.rate),
            cpu=kyso_rate.cpu_ms,
            cpu_ratio=cpu_pct(peer_rate, kyso_rate),
        )
    )
    for per_request in SIGN_DOC_BATCHES:
        name = f"signDoc over HTTP, PAdES B-B, {per_request} PDF/request"
        if not available:
            ROWS.append(Row(name, None, "not available"))
            continue
        found = medians(docs[per_request])
        ROWS.append(
            Row(
                name,
                found.rate,
                "PDFs/s",
                f"pyHanko alone {peer_rate.rate:,.1f}/s; kyso in process {kyso_rate.rate:,.1f}/s",
                f"{pct(found.rate, peer_rate.rate)}; {pct(found.rate, kyso_rate.rate)}",
                ">= 85 % of pyHanko",
                cpu=found.cpu_ms,
                cpu_ratio=f"{cpu_pct(peer_rate, found)}; {cpu_pct(kyso_rate, found)}",
            )
        )


if __name__ == "__main__":
    main()
