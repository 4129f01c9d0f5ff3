"""PAdES benchmark: kyso's sign_pdf / validate_pdf beside pyHanko alone, in the same run.

Prints one table: operation, kyso's figure, unit, pyHanko alone's figure measured in the same
run (alternating rounds, median of each), and the ratio kyso / pyHanko. "pyHanko alone" is
pyHanko's PdfSigner with a SimpleSigner whose key is loaded once (PERFORMANCE.md: the stock
SimpleSigner reloads it for every signature), the same certificate chain, the same 1-page
PDF and, for B-T, the same in-process TSA. Validation: kyso's validate_pdf (report, kyso's
own revocation evidence made per call) beside pyHanko's validate_pdf_signature with a
validation context built once.

Then a 50 MB PDF is signed in a fresh process each, by kyso and by pyHanko alone, for the
time and the peak memory (VmHWM; "peak - RSS before reading" = the peak minus the RSS before
the file was read, in multiples of the file size, input included; target < 3x).

    python benchmarks/bench_signing.py [--seconds S] [--rounds N] [--big-mb M]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import resource
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

from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import padding  # noqa: E402
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter  # noqa: E402
from pyhanko.pdf_utils.reader import PdfFileReader  # noqa: E402
from pyhanko.sign import fields, signers  # noqa: E402
from pyhanko.sign.validation import async_validate_pdf_signature  # noqa: E402
from pyhanko_certvalidator.registry import SimpleCertificateStore  # noqa: E402

from kyso.context import Context  # noqa: E402
from kyso.keys.base import KeyAlgorithm  # noqa: E402
from kyso.pki import bootstrap, issuance  # noqa: E402
from kyso.settings import Settings  # noqa: E402
from kyso.signing import identity as identity_mod  # noqa: E402
from kyso.signing.pades import sign_pdf  # noqa: E402
from kyso.signing.timestamps import InProcessTimeStamper, Level  # noqa: E402
from kyso.store.models import Profile  # noqa: E402
from kyso.trust import trust_context  # noqa: E402
from kyso.validation.pdf import validate_pdf, validation_context  # noqa: E402

ROWS: list[tuple[str, float, str, float | None]] = []


class LoadedOnceSigner(signers.SimpleSigner):
    """pyHanko's SimpleSigner with the private key parsed once (as a fair baseline)."""

    def __init__(self, key, **kwargs) -> None:
        super().__init__(**kwargs)
        self._crypto_key = key

    async def async_sign_raw(self, data: bytes, digest_algorithm: str, dry_run=False) -> bytes:
        return self.sign_raw(data, digest_algorithm)

    def sign_raw(self, data: bytes, digest_algorithm: str) -> bytes:
        return self._crypto_key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def env_for(home: Path) -> dict[str, str]:
    return {
        "KYSO_HOME": str(home),
        "KYSO_KEYSTORE_PASSPHRASE": "bench-passphrase",
        "KYSO_LINT_ON_ISSUE": "0",
        "KYSO_BASE_URL": "http://127.0.0.1:8000",
    }


def setup(home: Path) -> tuple[Context, str]:
    ctx = Context(Settings.from_env(env_for(home)))
    ctx.db.migrate()
    with ctx.db.session() as session:
        bootstrap.initialize(session, ctx.authority, ctx.keystore, algorithm=KeyAlgorithm.RSA_2048)
    with ctx.db.session() as session:
        issued = issuance.issue_with_server_key(
            session,
            ctx.authority,
            profile=Profile.INDIVIDUAL,
            subject="CN=Nguyễn Văn An,O=UBND tỉnh Bắc Kạn,L=Bắc Kạn,C=VN",
            algorithm=KeyAlgorithm.RSA_2048,
            actor="bench",
        )
    return ctx, issued.row.key_location.split(":", 1)[1]


def open_ctx(home: Path) -> Context:
    return Context(Settings.from_env(env_for(home)))


def pyhanko_alone(ctx: Context, key_id: str):
    signer_identity = identity_mod.from_keystore(ctx, key_id)
    key = ctx.keystore.get(key_id).cryptography_key()
    return LoadedOnceSigner(
        key,
        signing_cert=signer_identity.asn1_certificate(),
        signing_key=None,
        cert_registry=SimpleCertificateStore.from_certs(signer_identity.asn1_chain()),
    ), signer_identity


def pyhanko_sign(signer, data: bytes, timestamper=None) -> bytes:
    writer = IncrementalPdfFileWriter(io.BytesIO(data))
    meta = signers.PdfSignatureMetadata(
        field_name="Sig1", md_algorithm="sha256", subfilter=fields.SigSeedSubFilter.PADES
    )
    out = signers.PdfSigner(meta, signer, timestamper=timestamper).sign_pdf(writer)
    return out.getvalue()


def rate(fn: Callable[[], object], seconds: float) -> float:
    fn()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        count += 1
    return count / (time.perf_counter() - start)


def compare(name: str, unit: str, kyso_fn, peer_fn, seconds: float, rounds: int) -> None:
    mine, peer = [], []
    for _ in range(rounds):
        mine.append(rate(kyso_fn, seconds))
        peer.append(rate(peer_fn, seconds))
    ROWS.append((name, statistics.median(mine), unit, statistics.median(peer)))
    print(f"  {name}: kyso {mine} pyHanko {peer}", file=sys.stderr)


# -- the 50 MB child ---------------------------------------------------------------------------


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    return 0.0


def rss_mb() -> float:
    return _status_mb("VmRSS:")


def peak_rss_mb() -> float:
    """This process's own high-water mark (VmHWM; ru_maxrss would include the parent's, which
    Linux carries into a child across fork and exec)."""
    return _status_mb("VmHWM:") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_big(home: Path, key_id: str, path: Path, who: str, level: str) -> None:
    ctx = open_ctx(home)
    trust = trust_context(ctx)
    small = (path.parent / "small.pdf").read_bytes()
    if who == "kyso":
        signer = identity_mod.from_keystore(ctx, key_id)
        sign_pdf(small, signer, level=Level(level), trust=trust)  # warm up
    else:
        peer, _ = pyhanko_alone(ctx, key_id)
        stamper = InProcessTimeStamper(ctx.tsa) if level == "B-T" else None
        pyhanko_sign(peer, small, stamper)
    base = rss_mb()
    data = path.read_bytes()
    start = time.perf_counter()
    if who == "kyso":
        out = sign_pdf(data, signer, level=Level(level), trust=trust)
    else:
        out = pyhanko_sign(peer, data, stamper)
    elapsed = time.perf_counter() - start
    peak = peak_rss_mb()
    print(
        json.dumps(
            {
                "seconds": elapsed,
                "base": base,
                "peak": peak,
                "size": len(data) / 2**20,
                "out": len(out) / 2**20,
            }
        )
    )


def big(home: Path, key_id: str, tmp: Path, megabytes: int) -> None:
    from fixtures.pdf import samples

    path = tmp / "big.pdf"
    path.write_bytes(samples.official_document(padding_bytes=megabytes * 1024 * 1024))
    (tmp / "small.pdf").write_bytes(samples.official_document())
    for level in ("B-B", "B-T"):
        results = {}
        for who in ("kyso", "pyhanko"):
            proc = subprocess.run(
                [sys.executable, __file__, "--child", who, level, str(home), key_id, str(path)],
                capture_output=True,
                text=True,
                check=True,
            )
            results[who] = json.loads(proc.stdout.strip().splitlines()[-1])
        k, p = results["kyso"], results["pyhanko"]
        ROWS.append(
            (f"sign {k['size']:.0f} MB PDF, PAdES {level}: time", k["seconds"], "s", p["seconds"])
        )
        ROWS.append(
            (f"sign {k['size']:.0f} MB PDF, PAdES {level}: peak RSS", k["peak"], "MB", p["peak"])
        )
        ROWS.append(
            (
                f"sign {k['size']:.0f} MB PDF, PAdES {level}: peak - RSS before reading",
                (k["peak"] - k["base"]) / k["size"],
                "x file",
                (p["peak"] - p["base"]) / p["size"],
            )
        )


def print_table(
    rows: list[tuple[str, float, str, float | None]] | None = None,
    peer_title: str = "pyHanko alone (same run)",
) -> None:
    """The table: operation, figure, unit, the limit measured in the same run, the ratio."""
    rows = ROWS if rows is None else rows
    head = ("operation", "figure", "unit", peer_title, "ratio")
    widths = [max(len(r[0]) for r in rows), 10, 8, len(peer_title), 7]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for name, figure, unit, peer in rows:
        ratio = f"{figure / peer:.0%}" if peer else ""
        cells = (name, f"{figure:,.2f}", unit, f"{peer:,.2f}" if peer is not None else "", ratio)
        print("| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _, _, who, level, home, key_id, path = sys.argv
        child_big(Path(home), key_id, Path(path), who, level)
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--big-mb", type=int, default=50)
    args = parser.parse_args()

    from fixtures.pdf import samples

    tmp = Path(tempfile.mkdtemp(prefix="kyso-bench-signing-"))
    home = tmp / "home"
    print("setting up a CA …", file=sys.stderr)
    ctx, key_id = setup(home)
    trust = trust_context(ctx)
    doc = samples.official_document()
    kyso_signer = identity_mod.from_keystore(ctx, key_id)
    peer, _ = pyhanko_alone(ctx, key_id)
    peer_stamper = InProcessTimeStamper(ctx.tsa)

    print("signing …", file=sys.stderr)
    compare(
        "PAdES B-B sign, 1-page PDF",
        "signs/s",
        lambda: sign_pdf(doc, kyso_signer, level=Level.B_B, trust=trust),
        lambda: pyhanko_sign(peer, doc),
        args.seconds,
        args.rounds,
    )
    compare(
        "PAdES B-T sign (in-process TSA)",
        "signs/s",
        lambda: sign_pdf(doc, kyso_signer, level=Level.B_T, trust=trust),
        lambda: pyhanko_sign(peer, doc, peer_stamper),
        args.seconds,
        args.rounds,
    )

    print("validating …", file=sys.stderr)
    for level in (Level.B_B, Level.B_T):
        signed = sign_pdf(doc, kyso_signer, level=level, trust=trust)
        vc = validation_context(trust, certs=[kyso_signer.certificate])

        def peer_validate(signed: bytes = signed, vc=vc) -> None:
            emb = PdfFileReader(io.BytesIO(signed)).embedded_signatures[0]
            status = asyncio.run(async_validate_pdf_signature(emb, vc))
            assert status.bottom_line

        def kyso_validate(signed: bytes = signed) -> None:
            assert validate_pdf(signed, trust).passed

        compare(
            f"validate PAdES {level.value} (full report)",
            "validations/s",
            kyso_validate,
            peer_validate,
            args.seconds,
            args.rounds,
        )

    print(f"signing a {args.big_mb} MB PDF in fresh processes …", file=sys.stderr)
    big(home, key_id, tmp, args.big_mb)
    ctx.close()
    print_table()
    print(f"\n(cpu: {os.cpu_count()} cores; temp dir {tmp})")


if __name__ == "__main__":
    main()
