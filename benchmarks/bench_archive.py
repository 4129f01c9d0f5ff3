"""Archive integrity check of 10,000 documents: time and memory, beside the raw rate of
hashing the same files in the same run (issue #11, "Measured by a benchmark").

A temporary kyso home (SQLite) gets N archived documents (distinct random bytes of
``--kilobytes`` each, as kept by kyso.archive: blob store + record rows). Measured:

- ``kyso.archive.service.check``: every record read back from the database in batches, its
  file re-read in 1 MB chunks and hashed; time, files/s, MB/s, and the peak RSS it added
  (the process's VmHWM before and after, in a fresh child process so nothing else counts);
- the raw limit: the same files hashed with hashlib in a plain loop (no database), once the
  page cache is equally warm (both runs read the files just written).

    python benchmarks/bench_archive.py [--documents N] [--kilobytes K]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_signing import print_table  # noqa: E402


def _env(home: Path) -> dict[str, str]:
    return {
        "KYSO_HOME": str(home),
        "KYSO_DATABASE_URL": f"sqlite:///{home / 'kyso.db'}",
        "KYSO_KEYSTORE": "software",
        "KYSO_KEYSTORE_PASSPHRASE": "bench-passphrase",
        "KYSO_LINT_ON_ISSUE": "0",
    }


def _hwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def fill(home: Path, documents: int, kilobytes: int) -> None:
    from datetime import date

    from kyso.archive.blobs import BlobStore
    from kyso.context import Context
    from kyso.settings import Settings
    from kyso.store.models import ArchiveRecord, Organization, OrgKind, Sector

    os.environ.update(_env(home))
    ctx = Context(Settings.from_env())
    ctx.db.migrate()
    store = BlobStore(ctx.settings.archive_dir)
    from kyso import clock

    now = clock.now()
    with ctx.db.session() as session:
        unit = Organization(
            public_id=secrets.token_hex(8),
            name="UBND huyện Ba Bể",
            path="/",
            kind=OrgKind.DISTRICT,
            sector=Sector.GOVERNMENT,
            created_at=now,
            updated_at=now,
        )
        session.add(unit)
        session.flush()
        unit.path = f"/{unit.id}/"
        unit_id = unit.id
    batch: list[ArchiveRecord] = []
    for n in range(documents):
        data = os.urandom(kilobytes * 1024)
        digest = store.put(data)
        batch.append(
            ArchiveRecord(
                public_id=secrets.token_urlsafe(16),
                organization_id=unit_id,
                kind="issued",
                sha256=digest,
                size=len(data),
                media_type="application/pdf",
                filename=f"{n}.pdf",
                code=f"{n + 1}/QĐ-UBND",
                document_date=date(2026, 1, 1),
                issuer="UBND huyện Ba Bể",
                subject="Quyết định",
                type_name="Quyết định",
                pages=1,
                retention="vĩnh viễn",
                source=f"bench:{n}",
                created_at=now,
            )
        )
        if len(batch) == 1000:
            with ctx.db.session() as session:
                session.add_all(batch)
            batch = []
            print(f"  {n + 1}/{documents} archived", file=sys.stderr)
    if batch:
        with ctx.db.session() as session:
            session.add_all(batch)
    ctx.close()


def child(home: Path, what: str) -> None:
    """One measurement in this fresh process; prints JSON."""
    os.environ.update(_env(home))
    from kyso.archive import service
    from kyso.context import Context
    from kyso.settings import Settings

    ctx = Context(Settings.from_env())
    base = _rss_mb()
    start = time.perf_counter()
    if what == "kyso":
        found = service.check(ctx)
        assert found.intact, (found.missing[:3], found.changed[:3])
        count, size = found.checked, found.bytes
    else:  # the raw limit: hash every stored file, nothing else
        count = size = 0
        for path in ctx.settings.archive_dir.glob("??/??/*"):
            hasher = hashlib.sha256()
            with path.open("rb") as handle:
                for chunk in iter(lambda h=handle: h.read(1024 * 1024), b""):
                    hasher.update(chunk)
                    size += len(chunk)
            count += 1
    seconds = time.perf_counter() - start
    print(
        json.dumps(
            {"count": count, "bytes": size, "seconds": seconds, "base": base, "peak": _hwm_mb()}
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=10_000)
    parser.add_argument("--kilobytes", type=int, default=100)
    parser.add_argument("--child", nargs=2, metavar=("WHAT", "HOME"))
    args = parser.parse_args()
    if args.child:
        child(Path(args.child[1]), args.child[0])
        return
    with tempfile.TemporaryDirectory(prefix="kyso-bench-archive-") as tmp:
        home = Path(tmp)
        print(f"archiving {args.documents} documents of {args.kilobytes} KB …", file=sys.stderr)
        fill(home, args.documents, args.kilobytes)
        results = {}
        for what in ("raw", "kyso", "raw", "kyso"):  # the second round is the one reported
            proc = subprocess.run(
                [sys.executable, __file__, "--child", what, str(home)],
                capture_output=True,
                text=True,
                check=True,
            )
            results[what] = json.loads(proc.stdout.strip().splitlines()[-1])
        k, r = results["kyso"], results["raw"]
        rows = [
            ("archive check, whole archive: time", k["seconds"], "s", r["seconds"]),
            (
                "archive check: files per second",
                k["count"] / k["seconds"],
                "files/s",
                r["count"] / r["seconds"],
            ),
            (
                "archive check: MB per second",
                k["bytes"] / 1e6 / k["seconds"],
                "MB/s",
                r["bytes"] / 1e6 / r["seconds"],
            ),
            ("archive check: peak RSS", k["peak"], "MB", r["peak"]),
            (
                "archive check: peak - RSS before",
                k["peak"] - k["base"],
                "MB",
                r["peak"] - r["base"],
            ),
        ]
        print_table(rows, peer_title="hashlib alone (same run)")
        print(f"\n{k['count']} documents, {k['bytes'] / 1e6:,.0f} MB; {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
