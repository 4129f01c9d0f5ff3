"""PAdES validation cost: kyso's validate_pdf beside pyHanko's default path, in the same run.

A 640 KB PDF with 100 incremental signatures took more than eight minutes and 7.7 GB to
validate through the public page (issue 9). This prints one table: for PDFs with 1, 10, 40
and 100 incremental signatures (made here by kyso's own sign_pdf, invisible, PAdES B-B), the
time and the peak memory of one validation

- by kyso (``kyso.validation.pdf.validate_pdf``: each revision compared once, revocation
  evidence made once per signer, the report keeping nothing of the parsed file), and
- by "pyHanko's default path", what kyso did before: ``async_validate_pdf_signature`` for each
  embedded signature with ``DEFAULT_DIFF_POLICY`` (every signed revision compared with every
  later one) and a validation context built once,

each in a fresh process (peak = VmHWM; "peak - RSS before" is what the validation added),
the slow path with a time limit (``--limit``). Then the public path: a 1-signature PDF through
the pool of pre-started worker processes (``kyso.validation.pool``) beside the same
validation in process, and how fast a file over the public limits is refused.

    python benchmarks/bench_validation.py [--counts 1,10,40,100] [--limit SECONDS] [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_signing import open_ctx, peak_rss_mb, print_table, rss_mb, setup  # noqa: E402

from kyso.errors import KysoError  # noqa: E402
from kyso.settings import Settings  # noqa: E402

ROWS: list[tuple[str, float, str, float | None]] = []


# -- one measurement in a fresh process ---------------------------------------------------------


def pyhanko_default(data: bytes, trust) -> int:
    """What kyso did before: pyHanko's validator per signature, its default diff policy."""
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.diff_analysis import DEFAULT_DIFF_POLICY
    from pyhanko.sign.validation import async_validate_pdf_signature

    from kyso.validation.pdf import validation_context

    reader = PdfFileReader(io.BytesIO(data))
    signatures = reader.embedded_signatures
    context = validation_context(trust, certs=[])

    async def run() -> int:
        passed = 0
        for emb in signatures:
            status = await async_validate_pdf_signature(
                emb, context, diff_policy=DEFAULT_DIFF_POLICY
            )
            passed += bool(status.intact and status.valid)
        return passed

    return asyncio.run(run())


def child(home: Path, who: str, path: Path, small: Path) -> None:
    from kyso.trust import trust_context
    from kyso.validation.pdf import validate_pdf

    ctx = open_ctx(home)
    trust = trust_context(ctx)
    validate_pdf(small.read_bytes(), trust)  # warm up: imports, kyso's CRLs
    pyhanko_default(small.read_bytes(), trust)
    data = path.read_bytes()
    base = rss_mb()
    start = time.perf_counter()
    if who == "kyso":
        report = validate_pdf(data, trust)
        ok = sum(s.integrity for s in report.signatures)
    else:
        ok = pyhanko_default(data, trust)
    elapsed = time.perf_counter() - start
    print(json.dumps({"seconds": elapsed, "base": base, "peak": peak_rss_mb(), "intact": ok}))


def measure(home: Path, who: str, path: Path, small: Path, limit: float) -> dict | None:
    try:
        proc = subprocess.run(
            [sys.executable, __file__, "--child", who, str(home), str(path), str(small)],
            capture_output=True,
            text=True,
            check=True,
            timeout=limit,
        )
    except subprocess.TimeoutExpired:
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- the document series --------------------------------------------------------------------------


def make_pdfs(ctx, key_id: str, counts: list[int], tmp: Path) -> dict[int, Path]:
    from fixtures.pdf import samples

    from kyso.signing import identity
    from kyso.signing.pades import sign_pdf
    from kyso.trust import trust_context

    signer = identity.from_keystore(ctx, key_id)
    trust = trust_context(ctx)
    data = samples.official_document()
    paths: dict[int, Path] = {}
    for number in range(1, max(counts) + 1):
        data = sign_pdf(data, signer, trust=trust)
        if number in counts:
            paths[number] = tmp / f"signed-{number}.pdf"
            paths[number].write_bytes(data)
    return paths


def series(home: Path, paths: dict[int, Path], limit: float) -> None:
    small = paths[min(paths)]
    for count, path in sorted(paths.items()):
        size = path.stat().st_size / 1024
        mine = measure(home, "kyso", path, small, limit)
        peer = measure(home, "pyhanko", path, small, limit)
        assert mine is not None, f"kyso took more than {limit} s for {count} signatures"
        label = (
            f"validate {count} signature{'s' if count > 1 else ''} ({size:,.0f} KB), "
            "kyso vs pyHanko default path"
        )
        ROWS.append((f"{label}: time", mine["seconds"], "s", peer["seconds"] if peer else None))
        ROWS.append((f"{label}: peak RSS", mine["peak"], "MB", peer["peak"] if peer else None))
        ROWS.append(
            (
                f"{label}: peak - RSS before",
                mine["peak"] - mine["base"],
                "MB",
                (peer["peak"] - peer["base"]) if peer else None,
            )
        )
        if peer is None:
            print(f"  pyHanko's default path: over {limit:g} s for {count}", file=sys.stderr)
        print(f"  {count}: kyso {mine} pyHanko {peer}", file=sys.stderr)


# -- the public path --------------------------------------------------------------------------


def public(home: Path, paths: dict[int, Path], rounds: int) -> None:
    from kyso.trust import trust_context
    from kyso.validation.pdf import validate_pdf
    from kyso.validation.pool import ValidationPool

    ctx = open_ctx(home)
    trust = trust_context(ctx)
    one = paths[min(paths)].read_bytes()
    settings = dataclasses.replace(ctx.settings, verify_workers=1)
    started = time.perf_counter()
    pool = ValidationPool(settings)
    pool.start(wait=True)
    start_seconds = time.perf_counter() - started
    try:
        pool.validate(one)
        validate_pdf(one, trust)
        through_pool, in_process = [], []
        for _ in range(rounds):
            t = time.perf_counter()
            assert pool.validate(one).passed
            through_pool.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            assert validate_pdf(one, trust).passed
            in_process.append((time.perf_counter() - t) * 1000)
        ROWS.append(
            (
                "public verify, 1 signature: pool worker vs in process",
                statistics.median(through_pool),
                "ms",
                statistics.median(in_process),
            )
        )
        ROWS.append(("starting the pool (forkserver and one worker)", start_seconds, "s", None))
        over = paths[max(paths)].read_bytes()
        t = time.perf_counter()
        try:
            pool.validate(over)
            refused = False
        except KysoError:
            refused = True
        limit = settings.verify_max_signatures
        label = f"refuse {max(paths)} signatures over the public limit ({limit})"
        if refused:
            ROWS.append((label, (time.perf_counter() - t) * 1000, "ms", None))
    finally:
        pool.close()
        ctx.close()


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _, _, who, home, path, small = sys.argv
        child(Path(home), who, Path(path), Path(small))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--counts", default="1,10,40,100")
    parser.add_argument("--limit", type=float, default=900.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    counts = sorted({int(c) for c in args.counts.split(",")})

    tmp = Path(tempfile.mkdtemp(prefix="kyso-bench-validation-"))
    home = tmp / "home"
    print("setting up a CA …", file=sys.stderr)
    ctx, key_id = setup(home)
    print(f"signing {max(counts)} times …", file=sys.stderr)
    paths = make_pdfs(ctx, key_id, counts, tmp)
    ctx.close()
    print("validating in fresh processes …", file=sys.stderr)
    series(home, paths, args.limit)
    print("the public path …", file=sys.stderr)
    public(home, paths, args.rounds)
    print_table(ROWS, "baseline, same run")
    print(f"\n(cpu: {os.cpu_count()} cores; temp dir {tmp}; Settings defaults: ", end="")
    defaults = Settings.from_env({"KYSO_HOME": str(home)})
    print(
        f"{defaults.verify_max_signatures} signatures, {defaults.verify_max_revisions} "
        f"revisions, {defaults.verify_cpu_seconds} s CPU, {defaults.verify_deadline_seconds:g} s"
        f" deadline, {defaults.verify_memory_mb} MB)"
    )


if __name__ == "__main__":
    main()
