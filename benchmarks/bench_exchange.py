"""Exchange between two installations: documents per second end to end, beside kyso's own
validation of the same documents, in one run (issue #11, "Measured by a benchmark").

Two kyso homes in a temporary directory, each with its own CA (Bắc Kạn's and Thái Nguyên's)
and SQLite database, each trusting the other's root. Thái Nguyên's kyso is served by uvicorn
in a subprocess; Bắc Kạn's sends from this process through the service, as its pages and
API do. Every document is the same 1 MB PDF, signed beforehand by Bắc Kạn's unit (PAdES
B-B); each send makes a new package (its signing time differs), so nothing is deduplicated.

Rows, measured in alternating rounds (median of each):

- "exchange end to end": ``kyso.exchange.service.send`` of one document to Thái Nguyên's
  unit: the edXML package written and signed at XAdES B-LT (time-stamp, OCSP evidence),
  POSTed over HTTP, parsed and judged there (the package's signature and the PDF's), stored,
  the 01 answer recorded here. Compared with
- "validation of the same package": what the receiving side must do in any case, in this
  process: the package's XAdES signature and the PDF's PAdES signature validated by kyso
  (``kyso.exchange.service._judge``). Target: exchange costs at most 2x validation (ratio
  >= 50 %).
- Beside them, to say where the time goes: signing the package at B-LT alone, and
  ``receive`` in process (parse, judge, store) on Thái Nguyên's database.

    python benchmarks/bench_exchange.py [--seconds S] [--rounds N] [--megabytes M]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import httpx  # noqa: E402
from bench_signing import print_table  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from sqlalchemy import select, update  # noqa: E402

from kyso.context import Context  # noqa: E402
from kyso.keys.base import KeyAlgorithm  # noqa: E402
from kyso.pki import bootstrap, issuance  # noqa: E402
from kyso.settings import Settings  # noqa: E402
from kyso.store.models import (  # noqa: E402
    Certificate,
    ExchangeMessage,
    IdentityRole,
    Organization,
    Profile,
)

ROWS: list[tuple[str, float, str, float | None]] = []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(home: Path, port: int) -> dict[str, str]:
    return {
        "KYSO_HOME": str(home),
        "KYSO_DATABASE_URL": f"sqlite:///{home / 'kyso.db'}",
        "KYSO_KEYSTORE": "software",
        "KYSO_KEYSTORE_PASSPHRASE": "bench-passphrase",
        "KYSO_LINT_ON_ISSUE": "0",
        "KYSO_BASE_URL": f"http://127.0.0.1:{port}",
        "KYSO_EXCHANGE_PER_MINUTE": "0",  # no budget: this is the only client
        "KYSO_MAX_UPLOAD_BYTES": str(50 * 1024 * 1024),
    }


def _installation(home: Path, port: int, province: str) -> Context:
    ctx = Context(Settings.from_env(_env(home, port)))
    ctx.db.migrate()
    with ctx.db.session() as session:
        bootstrap.initialize(
            session,
            ctx.authority,
            ctx.keystore,
            names=bootstrap.CaNames.for_organization(f"UBND tỉnh {province}", province),
            algorithm=KeyAlgorithm.RSA_2048,
        )
    return ctx


def _unit_with_seal(ctx: Context, code: str, name: str):  # type: ignore[no-untyped-def]
    """A unit with an identifier code, its records clerk (a principal) and its seal key."""
    from support.world import make_world

    world = make_world(ctx, "sqlite")
    unit = world.unit("babe")
    with ctx.db.session() as session:
        session.execute(update(Organization).where(Organization.id == unit.id).values(code=code))
        issued = issuance.issue_with_server_key(
            session,
            ctx.authority,
            profile=Profile.ORGANIZATION,
            subject=f"CN={name},O={name},C=VN",
            algorithm=KeyAlgorithm.RSA_2048,
            actor="bench",
        )
        session.execute(
            update(Certificate)
            .where(Certificate.serial == issued.serial)
            .values(organization_id=unit.id)
        )
    return world, unit, issued.row.key_location.split(":", 1)[1]


def _trust(ctx: Context, other: Context) -> None:
    from kyso import trust

    pem = other.authority.identity(IdentityRole.ROOT).certificate.public_bytes(
        serialization.Encoding.PEM
    )
    with ctx.db.session() as session:
        trust.add_anchor(session, pem, "bench", "the other installation")


def _serve(home: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "uvicorn", "kyso.web.app:create_app", "--factory"),
            *("--host", "127.0.0.1", "--port", str(port), "--no-access-log"),
        ],
        env={**os.environ, **_env(home, port)},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.2)
        if process.poll() is not None:
            raise RuntimeError(f"server exited; see {log}")
    raise RuntimeError("server did not start")


def rate(fn: Callable[[], object], seconds: float) -> float:
    fn()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        count += 1
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--megabytes", type=float, default=1.0)
    args = parser.parse_args()
    # as the server does (kyso.observability.logging): pyHanko's tracebacks for each signature
    # it cannot judge are not written, here either, or the baseline would pay for them
    import logging

    logging.getLogger("pyhanko.sign.validation").setLevel(logging.ERROR)

    from fixtures.pdf import samples

    from kyso.exchange import edxml, service
    from kyso.signing.identity import from_keystore
    from kyso.signing.pades import sign_pdf

    with tempfile.TemporaryDirectory(prefix="kyso-bench-exchange-") as tmp:
        here_home, there_home = Path(tmp) / "backan", Path(tmp) / "thainguyen"
        here_port, there_port = _free_port(), _free_port()
        print("setting up two installations …", file=sys.stderr)
        here = _installation(here_home, here_port, "Bắc Kạn")
        there = _installation(there_home, there_port, "Thái Nguyên")
        here_world, here_unit, here_seal = _unit_with_seal(
            here, "000.00.31.H03", "UBND huyện Ba Bể"
        )
        _there_world, _there_unit, _ = _unit_with_seal(there, "000.99.31.H55", "UBND xã Phú Lương")
        _trust(here, there)
        _trust(there, here)
        sender = Context(
            dataclasses.replace(
                here.settings, exchange_peers={"000.99.": f"http://127.0.0.1:{there_port}"}
            )
        )
        server = _serve(there_home, there_port, Path(tmp) / "there.log")
        try:
            size = int(args.megabytes * 1024 * 1024)
            base = samples.official_document()
            pdf = sign_pdf(
                samples.official_document(padding_bytes=max(0, size - len(base))),
                from_keystore(here, here_seal),
            )
            print(f"document: {len(pdf) / 1e6:.2f} MB signed PDF", file=sys.stderr)
            officer = here_world.who("officer")

            def send() -> None:
                (public_id,) = service.send(
                    sender,
                    officer,
                    service.Outgoing(
                        unit=here_unit.public_id,
                        recipients=["000.99.31.H55"],
                        code_number="15",
                        code_notation="QĐ-UBND",
                        type_name="Quyết định",
                        subject="Quyết định phối hợp liên tỉnh",
                        files=[service.OutgoingFile("quyet-dinh.pdf", pdf)],
                        key_id=here_seal,
                    ),
                )
                with sender.db.read() as session:
                    state = service.get(officer, session, public_id).state.value
                if state != "delivered":
                    raise RuntimeError(f"not delivered: {state}")

            send()
            with here.db.read() as session:
                package = bytes(
                    session.scalars(
                        select(ExchangeMessage.package).order_by(ExchangeMessage.id.desc())
                    ).first()
                    or b""
                )
            parsed = edxml.parse(package)
            print(f"package: {len(package) / 1e6:.2f} MB edXML", file=sys.stderr)

            def validate() -> None:
                problem = service._judge(there, package, parsed)
                if problem:
                    raise RuntimeError(problem)

            identity = from_keystore(here, here_seal)
            unsigned = edxml.build(parsed)

            def sign_only() -> None:
                service._sign_package(here, unsigned, identity)

            def receive_in_process() -> None:
                # a new package each time (a stored one would be a duplicate): resign
                outcome = service.receive(
                    there, service._sign_package(here, unsigned, identity), via="bench"
                )
                if outcome.code.value != "01":
                    raise RuntimeError(outcome.description)

            exchange, validation, signing, receiving = [], [], [], []
            for n in range(args.rounds):
                print(f"round {n + 1}/{args.rounds} …", file=sys.stderr)
                exchange.append(rate(send, args.seconds))
                validation.append(rate(validate, args.seconds))
                signing.append(rate(sign_only, args.seconds))
                receiving.append(rate(receive_in_process, args.seconds))
            print(f"  exchange {exchange} validation {validation}", file=sys.stderr)
            e, v = statistics.median(exchange), statistics.median(validation)
            ROWS.append(("exchange end to end, 1 MB PDF (HTTP, two installations)", e, "doc/s", v))
            ROWS.append(("validation of the same package (XAdES + PAdES)", v, "doc/s", v))
            ROWS.append(
                ("signing the package, XAdES B-LT (sender)", statistics.median(signing), "doc/s", v)
            )
            ROWS.append(
                (
                    "sign B-LT + receive in process (parse, judge, store)",
                    statistics.median(receiving),
                    "doc/s",
                    v,
                )
            )
            print_table(ROWS, peer_title="validation (same run)")
            print(f"\nexchange costs {v / e:.2f}x validation (target <= 2x); {os.cpu_count()} CPUs")
        finally:
            server.terminate()
            server.wait(10)
            for ctx in (sender, here, there):
                ctx.close()


if __name__ == "__main__":
    main()
