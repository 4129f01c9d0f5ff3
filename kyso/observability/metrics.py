"""Prometheus metrics (prometheus-client): what kyso did, how fast, and what waits.

The services record with one call each (``certificates_issued``, ``signature_made`` …);
``/metrics`` (kyso.web.ops_routes) renders them in Prometheus' text exposition format.

Labels are bounded sets only: an HTTP request is counted under its *route template*
(``/api/v1/certificates/{serial}``), never its raw path, so a client walking through serials
cannot grow the series without end; methods outside the usual few are "other".

Several worker processes (``kyso serve --workers N``, or one systemd unit per port) each
count their own. With ``PROMETHEUS_MULTIPROC_DIR`` set in their environment (an empty
directory, writable, cleared at service start) prometheus-client keeps every process's
values in memory-mapped files there and ``/metrics`` answers with the sum over them, whichever
process is asked; without it each process answers with its own. Gauges of live things (the
validation pool, the lead of the scheduled loop) count only processes that are alive
(``livesum``).

Counters of rows written in a transaction (certificates issued, status changes) are added
when that transaction commits, so a batch that rolled back is not counted.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

HTTP_REQUESTS = Counter(
    "kyso_http_requests",
    "HTTP requests answered, by route template, method and status class.",
    ["route", "method", "status"],
)
HTTP_SECONDS = Histogram(
    "kyso_http_request_duration_seconds",
    "Time from a request's arrival to the end of its answer, by route template and method.",
    ["route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
CERTIFICATES_ISSUED = Counter(
    "kyso_certificates_issued", "Certificates issued, by profile.", ["profile"]
)
STATUS_CHANGES = Counter(
    "kyso_certificate_status_changes",
    "Certificate revocations, suspensions (certificateHold) and restorations.",
    ["change"],
)
SIGNATURES = Counter(
    "kyso_signatures",
    "Signatures made, by kind (pades, cades, xades, smime, digest …) and entry point.",
    ["kind", "entry"],
)
OCSP_RESPONSES = Counter(
    "kyso_ocsp_responses",
    "OCSP answers: presigned (stored), signed (on the spot), or an unsigned error status.",
    ["source"],
)
VALIDATIONS = Counter(
    "kyso_validations",
    "Public validations by the worker pool: report, refused (unreadable input), too_complex.",
    ["outcome"],
)
KEYSTORE_ERRORS = Counter(
    "kyso_keystore_errors",
    "Key store (HSM, token, software store) errors, by error code.",
    ["code"],
)
VALIDATION_WORKERS = Gauge(
    "kyso_validation_workers",
    "Validation worker processes, by state (busy, idle, starting).",
    ["state"],
    multiprocess_mode="livesum",
)
VALIDATION_WAITING = Gauge(
    "kyso_validation_queue",
    "Validations waiting for a free worker.",
    multiprocess_mode="livesum",
)
SCHEDULED_RUNS = Counter(
    "kyso_scheduled_runs",
    "Runs of the server's scheduled work (OCSP refresh, sweeps, approvals, audit checkpoints)"
    " made by this process; one process of the cluster runs it per period (kyso.cluster).",
)
SCHEDULED_LEADER = Gauge(
    "kyso_scheduled_leader",
    "1 in the process that leads the scheduled work; the sum over a cluster should be 1.",
    multiprocess_mode="livesum",
)

_PENDING = "kyso.metrics.pending"
# The text format every Prometheus reads (what generate_latest writes).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


# -- recording ---------------------------------------------------------------------------------
def http_request(route: str, method: str, status: int, seconds: float) -> None:
    method = method if method in METHODS else "other"
    HTTP_REQUESTS.labels(route, method, f"{status // 100}xx").inc()
    HTTP_SECONDS.labels(route, method).observe(seconds)


def on_commit(session: Session, count: Callable[[], None]) -> None:
    """Run ``count`` when ``session``'s transaction commits; forget it if it rolls back."""
    session.info.setdefault(_PENDING, []).append(count)


@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    for count in session.info.pop(_PENDING, ()):
        count()


@event.listens_for(Session, "after_rollback")
def _rolled_back(session: Session) -> None:
    session.info.pop(_PENDING, None)


def certificates_issued(session: Session, profiles: Iterable[str]) -> None:
    """Certificates of these profiles, once ``session`` commits."""
    names = list(profiles)

    def count() -> None:
        for profile in names:
            CERTIFICATES_ISSUED.labels(profile).inc()

    on_commit(session, count)


def status_changed(session: Session, change: str) -> None:
    """A revocation, suspension or restoration, once ``session`` commits."""
    on_commit(session, STATUS_CHANGES.labels(change).inc)


def signature_made(kind: str, entry: str, count: int = 1) -> None:
    SIGNATURES.labels(kind, entry).inc(count)


def ocsp_answered(source: str) -> None:
    OCSP_RESPONSES.labels(source).inc()


def validation_finished(kind: str) -> None:
    """``kind`` is the worker's answer: ok, error, cpu, memory."""
    outcome = {"ok": "report", "error": "refused", "cpu": "too_complex", "memory": "too_complex"}
    VALIDATIONS.labels(outcome.get(kind, "failed")).inc()


def keystore_error(code: str) -> None:
    KEYSTORE_ERRORS.labels(code).inc()


def validation_pool(state: dict[str, int]) -> None:
    """The pool's state as :meth:`kyso.validation.pool.ValidationPool.state` gives it."""
    VALIDATION_WORKERS.labels("busy").set(max(0, state["workers"] - state["idle"]))
    VALIDATION_WORKERS.labels("idle").set(state["idle"])
    VALIDATION_WORKERS.labels("starting").set(state["starting"])
    VALIDATION_WAITING.set(state["waiting"])


def scheduled_run() -> None:
    SCHEDULED_RUNS.inc()


def set_leader(leading: bool) -> None:
    SCHEDULED_LEADER.set(1 if leading else 0)


# -- read at scrape time -------------------------------------------------------------------------
class ScrapeGauge(Collector):
    """A gauge computed when ``/metrics`` is read (a cheap count in the database): asked of
    the process that answers the scrape only, so it is counted once, not once per process.
    A read that fails leaves the gauge out of that scrape rather than failing it."""

    def __init__(self, name: str, documentation: str, read: Callable[[], float]) -> None:
        self.name = name
        self.documentation = documentation
        self.read = read

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            value = self.read()
        except Exception as exc:
            log.warning("metric %s not read: %s", self.name, type(exc).__name__)
            return
        yield GaugeMetricFamily(self.name, self.documentation, value=value)

    def describe(self) -> Iterator[Any]:
        return iter(())


def waiting_approvals(db: Any) -> ScrapeGauge:
    """Signature approvals waiting on signers' phones (kyso.remote.approvals), not expired."""
    from kyso import clock
    from kyso.store.models import ApprovalState, SignApproval

    def read() -> float:
        with db.single() as conn:
            query = (
                select(func.count())
                .select_from(SignApproval)
                .where(
                    SignApproval.state == ApprovalState.WAITING,
                    SignApproval.expires_at > clock.now(),
                )
            )
            return float(conn.execute(query).scalar_one())

    return ScrapeGauge(
        "kyso_signature_approvals_waiting",
        "Signature approvals waiting for the signer's consent on the phone.",
        read,
    )


# -- exposition --------------------------------------------------------------------------------
def exposition(
    multiprocess_dir: Path | None, scrape: Iterable[Collector] = ()
) -> tuple[bytes, str]:
    """The text exposition format: every process's values summed (multiprocess mode) or
    this process's, then the scrape-time gauges."""
    if multiprocess_dir is not None:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(multiprocess_dir))
        body = generate_latest(registry)
    else:
        body = generate_latest(REGISTRY)
    extra = CollectorRegistry(auto_describe=False)
    for collector in scrape:
        extra.register(collector)
    return body + generate_latest(extra), CONTENT_TYPE


def mark_process_dead(multiprocess_dir: Path, pid: int) -> None:
    """Drop a stopped process's live gauges (prometheus-client's multiprocess mode)."""
    from prometheus_client import multiprocess

    with contextlib.suppress(OSError):
        multiprocess.mark_process_dead(pid, path=str(multiprocess_dir))
