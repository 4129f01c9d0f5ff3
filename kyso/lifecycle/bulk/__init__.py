"""Hundreds of certificates at once: a unit's list (the columns of form 01) as an XLSX file.

1. **Upload** (a unit officer): every row is checked — the form's field rules, the unit named
   in the row (found in the officer's part of the tree), the subject it makes (RFC 5280
   lengths), the CSR if the row has one, and duplicates in the file or among open requests.
   Any problem, and nothing is created: the answer lists each one by row and column. A clean
   file becomes one job (``batch_jobs``) and one submitted request per row.
2. **Approval** (province administrators, as many as a single request of the type needs)
   approves the whole batch.
3. **Issuance** runs as the job: certificates in chunks, progress readable while it runs.

Keys. Rows with a CSR use it. For the others the job makes ECDSA P-256 keys in kyso's key
store (HSM or software): RSA-2048 key generation runs at ~31 keys/s (PERFORMANCE.md), 42 s
for the plan's 1,300 leaders; P-256 keys take milliseconds. Such keys are the province's
centralized (HSM) signing keys the plan asks for in 2018. ``key_source=token`` instead leaves
every row approved and "awaiting token": each key is then made on its USB token, with its
PIN, through :func:`kyso.lifecycle.workflow.issue`.

All or nothing. A CA must not delete a certificate it has signed, so "compensating" a
half-done batch would leave revoked certificates behind; instead the whole issuance is **one
transaction**: a chunk that fails (a lint error, a key barred as compromised, a constraint)
rolls everything back, and the failing row is found by retrying its chunk row by row in
savepoints. Progress cannot live in that transaction (nobody else would see it before the
commit), so it goes through a side channel: a separate short transaction on PostgreSQL, a
small file beside the database on SQLite (one writer at a time: the batch holds it; a
SQLite deployment is one machine, so every process sees the file). The cost: while the batch
runs, other audited writes wait for it (the audit chain's head row is locked) — on this
2-core machine about 8 s for 1,300 certificates with pkilint off, 20–30 s with it on
(benchmarks/bench_bulk.py); on SQLite longer than its 30 s busy timeout would make other
writers fail, so split lists far beyond the plan's 1,300 rows.

The package's modules follow those steps: :mod:`.sheet` reads the file, :mod:`.submission`
checks its rows and makes the batch, :mod:`.approval` approves it, :mod:`.issuing` runs it,
and :mod:`.jobs` keeps the job's row, its progress and its views.
"""

from kyso.lifecycle.bulk.approval import BatchDecision, approve
from kyso.lifecycle.bulk.issuing import BatchFailed, run
from kyso.lifecycle.bulk.jobs import KIND, JobView, check_runnable, get, progress_file, search
from kyso.lifecycle.bulk.sheet import (
    COLUMNS,
    MAX_ROWS,
    XLSX_TYPE,
    BulkRejected,
    RowError,
    Sheet,
    read,
    template,
)
from kyso.lifecycle.bulk.submission import Row, check_rows, upload

__all__ = [
    "COLUMNS",
    "KIND",
    "MAX_ROWS",
    "XLSX_TYPE",
    "BatchDecision",
    "BatchFailed",
    "BulkRejected",
    "JobView",
    "Row",
    "RowError",
    "Sheet",
    "approve",
    "check_rows",
    "check_runnable",
    "get",
    "progress_file",
    "read",
    "run",
    "search",
    "template",
    "upload",
]
