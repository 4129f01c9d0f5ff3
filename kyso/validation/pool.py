"""Public validation in a bounded pool of worker processes, off the web server's event loop.

Anyone may upload a file to ``/verify``, and a file decides what validating it costs: a PDF
with 100 incremental signatures took minutes and gigabytes before its change analysis was
made linear. The web process therefore never validates an anonymous upload itself. It hands
the bytes to one of a few worker processes and waits, in a thread, for the report:

- the pool has ``KYSO_VERIFY_WORKERS`` workers (0: one per core), started with the server
  (pre-started: a one-signature PDF pays a pipe round trip, not a process start). Workers
  come from a *forkserver*, never from a fork of the web process: each opens its own database
  and key-store handles, and inherits no connection, HSM session or thread of the server;
- at most ``KYSO_VERIFY_QUEUE`` requests wait for a worker; any more are refused at once
  (503, "busy"), so waiting requests cannot pile up threads;
- each validation may use ``KYSO_VERIFY_CPU_SECONDS`` of CPU (RLIMIT_CPU: SIGXCPU ends it) and
  ``KYSO_VERIFY_MEMORY_MB`` of memory above the worker's own (RLIMIT_AS); past
  ``KYSO_VERIFY_DEADLINE_SECONDS`` of wall-clock time its worker is killed and replaced. The
  client gets "too complex to validate here" (422), never a 500;
- a PDF over ``KYSO_VERIFY_MAX_SIGNATURES`` signatures or ``KYSO_VERIFY_MAX_REVISIONS``
  revisions is refused before anything is verified (:class:`kyso.validation.pdf.PdfLimits`).

A worker validates as of the caller's time (``kyso.clock`` in the web process), so a report
says the same thing whether it was made here or in process. ``kyso verify`` (the CLI)
validates in its own process, without these bounds.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from multiprocessing.connection import Connection
from typing import Any

from kyso import clock
from kyso.errors import KysoError
from kyso.observability import metrics
from kyso.settings import Settings
from kyso.validation.report import ValidationReport

log = logging.getLogger(__name__)

__all__ = ["TooComplex", "ValidationBusy", "ValidationFailed", "ValidationPool"]

# Imported once by the forkserver, so that a new worker starts in milliseconds.
_PRELOAD = [
    "kyso.context",
    "kyso.validation.pool",
    "kyso.validation.verify",
    "kyso.validation.pdf",
    "kyso.validation.cms",
    "kyso.validation.xml",
    "kyso.validation.email",
    "kyso.trust",
]
_READY_SECONDS = 120.0  # a worker that has not opened its context by then is given up
_START_SECONDS = 30.0  # how long a request waits for a worker being started


class TooComplex(KysoError):
    code = "too_complex"
    http_status = 422
    message_vi = (
        "Tệp quá phức tạp để kiểm tra tại đây: việc kiểm tra cần nhiều thời gian hoặc bộ nhớ "
        "hơn mức cho phép. Hãy dùng phần mềm kiểm tra trên máy của cơ quan."
    )
    message_en = (
        "The file is too complex to validate here: it needs more time or memory than public "
        "validation allows. Validate it with your organization's own software."
    )


class ValidationBusy(KysoError):
    code = "validation_busy"
    http_status = 503
    message_vi = "Máy chủ đang bận kiểm tra các tệp khác; vui lòng thử lại sau ít phút."
    message_en = "The server is busy validating other files; please try again in a minute."


class ValidationFailed(KysoError):
    code = "validation_failed"
    http_status = 422
    message_vi = "Không kiểm tra được tệp này; lỗi đã được ghi nhật ký."
    message_en = "This file could not be validated; the error has been logged."


@dataclass(frozen=True)
class _Budget:
    cpu_seconds: int
    memory_mb: int


@dataclass(frozen=True)
class _Job:
    data: bytes
    name: str
    detached: bytes | None
    now: datetime  # the caller's time: the worker validates as of it


# -- the worker process ---------------------------------------------------------------------


class _Closed(Exception):
    """The pool closed while a worker was being started."""


class _OutOfCpu(BaseException):
    """SIGXCPU: the validation used its CPU seconds. A BaseException, as KeyboardInterrupt is,
    so that no ``except Exception`` in a validator turns it into a verdict."""


def _on_sigxcpu(signum: int, frame: Any) -> None:
    raise _OutOfCpu


def _address_space() -> int:
    """This process's virtual size in bytes (Linux ``/proc``; 0 where unknown)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _soft_limit(which: int, value: int | None) -> tuple[int, int]:
    """Set the soft limit (None: back to the hard one); return the previous pair."""
    import resource

    before = resource.getrlimit(which)
    hard = before[1]
    soft = hard if value is None else value
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(which, (soft, hard))
    return before


def _run(ctx: Any, job: _Job, budget: _Budget) -> tuple[str, Any]:
    import resource

    from kyso.trust import trust_context
    from kyso.validation.pdf import PdfLimits
    from kyso.validation.verify import verify

    started = time.monotonic()

    def now() -> datetime:
        return job.now + timedelta(seconds=time.monotonic() - started)

    usage = resource.getrusage(resource.RUSAGE_SELF)
    spent = int(usage.ru_utime + usage.ru_stime)
    size = _address_space()
    limits: list[tuple[int, tuple[int, int]]] = []
    try:
        limits.append(
            (resource.RLIMIT_CPU, _soft_limit(resource.RLIMIT_CPU, spent + budget.cpu_seconds))
        )
        if size:
            room = size + budget.memory_mb * 1024 * 1024
            limits.append((resource.RLIMIT_AS, _soft_limit(resource.RLIMIT_AS, room)))
        with clock.using(now):
            report = verify(
                job.data,
                trust_context(ctx),
                name=job.name,
                detached_data=job.detached,
                pdf_limits=PdfLimits.from_settings(ctx.settings),
            )
            return "ok", report.to_dict()
    except _OutOfCpu:
        return "cpu", None
    except MemoryError:
        return "memory", None
    except KysoError as exc:
        return "error", (type(exc).__module__, type(exc).__qualname__, exc.detail, exc.detail_vi)
    except Exception:
        log.exception("validation of %r failed in a worker", job.name)
        return "failed", None
    finally:
        # past the soft limit the kernel sends SIGXCPU every second: not while restoring it
        signal.signal(signal.SIGXCPU, signal.SIG_IGN)
        for which, (soft, _hard) in reversed(limits):
            try:
                _soft_limit(which, soft)
            except (ValueError, OSError):
                log.warning("could not restore a resource limit", exc_info=True)
        signal.signal(signal.SIGXCPU, _on_sigxcpu)


def _serve(conn: Connection, settings: Settings, budget: _Budget) -> None:
    """A worker: open kyso's context, say ready, then validate job after job."""
    from kyso.context import Context
    from kyso.trust import trust_context

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the server's; it stops us
    signal.signal(signal.SIGXCPU, _on_sigxcpu)
    ctx = Context(settings)
    try:
        trust_context(ctx)  # open the database and read the anchors before the first file
    except Exception:
        log.warning("validation worker: the trust anchors cannot be read yet", exc_info=True)
    try:
        conn.send(("ready", os.getpid()))
        while True:
            try:
                job = conn.recv()
            except (EOFError, OSError):
                break  # the server is gone
            if job is None:
                break
            answer = _run(ctx, job, budget)
            try:
                conn.send(answer)
            except (OSError, ValueError):
                break
            if answer[0] in ("memory", "cpu"):
                break  # stopped half-way: start afresh rather than trust what is left
    finally:
        ctx.close()


# -- the pool -------------------------------------------------------------------------------


@dataclass
class _Worker:
    process: Any  # multiprocessing.Process
    conn: Connection
    alive: bool = True

    @property
    def pid(self) -> int | None:
        return self.process.pid


def _start_method() -> Any:
    try:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(_PRELOAD)
        return context
    except ValueError:  # no forkserver on this platform
        return multiprocessing.get_context("spawn")


def _rebuild(module: str, qualname: str, detail: str | None, detail_vi: str | None) -> KysoError:
    """The worker's domain error, as the same class with the same words."""
    cls: type[KysoError] = KysoError
    try:
        found: Any = importlib.import_module(module)
        for part in qualname.split("."):
            found = getattr(found, part)
        if isinstance(found, type) and issubclass(found, KysoError):
            cls = found
    except (ImportError, AttributeError):
        pass
    error = cls.__new__(cls)
    KysoError.__init__(error, detail, vi=detail_vi)
    return error


class ValidationPool:
    """Validate uploads in worker processes; see the module's description for the bounds."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.size = max(1, settings.verify_workers or os.cpu_count() or 1)
        self._queue = max(0, settings.verify_queue)
        self._deadline = max(0.1, float(settings.verify_deadline_seconds))
        self._budget = _Budget(
            cpu_seconds=max(1, settings.verify_cpu_seconds),
            memory_mb=max(1, settings.verify_memory_mb),
        )
        self._cond = threading.Condition()
        self._idle: list[_Worker] = []
        self._workers: list[_Worker] = []
        self._starting = 0
        self._pending: list[Any] = []  # processes started, not yet ready
        self._waiting = 0
        self._started = False
        self._closed = False

    # -- life ------------------------------------------------------------------------------

    def start(self, *, wait: bool = False) -> None:
        """Start the workers (in the background unless ``wait``)."""
        with self._cond:
            if self._closed:
                return
            self._started = True
            missing = self.size - len(self._workers) - self._starting
            self._starting += max(0, missing)
        threads = [
            threading.Thread(target=self._spawn, name="kyso-verify-start", daemon=True)
            for _ in range(max(0, missing))
        ]
        for thread in threads:
            thread.start()
        if wait:
            for thread in threads:
                thread.join()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            workers, self._workers, self._idle = self._workers, [], []
            pending, self._pending = self._pending, []
            self._cond.notify_all()
        for process in pending:
            process.kill()
        for worker in workers:
            with contextlib.suppress(OSError, ValueError):
                worker.conn.send(None)
        for worker in workers:
            worker.process.join(2)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(2)
            worker.conn.close()

    def state(self) -> dict[str, int]:
        """Workers running, idle and starting, and requests waiting (ops and tests)."""
        with self._cond:
            return {
                "workers": len(self._workers),
                "idle": len(self._idle),
                "starting": self._starting,
                "waiting": self._waiting,
            }

    def pids(self) -> list[int]:
        """The workers' process ids (ops and tests)."""
        with self._cond:
            return [w.pid for w in self._workers if w.pid is not None]

    def _spawn(self) -> None:
        """Start one worker and wait until it has opened its context."""
        worker: _Worker | None = None
        process: Any = None
        try:
            parent, child = multiprocessing.Pipe(duplex=True)
            with self._cond:
                if self._closed:
                    raise _Closed
                process = _start_method().Process(
                    target=_serve,
                    args=(child, self._settings, self._budget),
                    name="kyso-verify",
                    daemon=True,
                )
                process.start()
                self._pending.append(process)
            child.close()
            if not parent.poll(_READY_SECONDS):
                raise RuntimeError("the validation worker did not start")
            kind, _pid = parent.recv()
            if kind != "ready":
                raise RuntimeError(f"the validation worker said {kind!r}")
            worker = _Worker(process, parent)
        except _Closed:
            pass
        except Exception:
            if not self._closed:
                log.exception("a validation worker could not be started")
        with self._cond:
            self._starting -= 1
            if process is not None and process in self._pending:
                self._pending.remove(process)
            if worker is not None and not self._closed:
                self._workers.append(worker)
                self._idle.append(worker)
            elif process is not None and process.is_alive():
                process.kill()
            self._cond.notify_all()

    def _retire(self, worker: _Worker) -> None:
        """Stop ``worker`` (killed if need be) and start another in its place."""
        worker.alive = False
        if worker.process.is_alive():
            worker.process.kill()
        worker.process.join(5)
        worker.conn.close()
        with self._cond:
            if worker in self._workers:
                self._workers.remove(worker)
            if worker in self._idle:
                self._idle.remove(worker)
            if self._closed:
                return
            self._starting += 1
        threading.Thread(target=self._spawn, name="kyso-verify-start", daemon=True).start()

    # -- work ------------------------------------------------------------------------------

    def _acquire(self) -> _Worker:
        if not self._started:
            self.start()
        with self._cond:
            if self._closed:
                raise ValidationBusy("the server is stopping", vi="máy chủ đang dừng")
            if not self._idle:
                if self._waiting >= self._queue:
                    raise ValidationBusy(
                        f"{self.size} validations running and {self._waiting} waiting",
                        vi=f"{self.size} tệp đang được kiểm tra và {self._waiting} tệp đang chờ",
                    )
                self._waiting += 1
                # a queued request waits at most as long as one validation may run, and for
                # as long as a worker takes to start when one is starting (at server start,
                # or in place of one that was stopped)
                timeout = self._deadline + (_START_SECONDS if self._starting else 0.0)
                try:
                    self._cond.wait_for(lambda: bool(self._idle) or self._closed, timeout=timeout)
                finally:
                    self._waiting -= 1
            if not self._idle or self._closed:
                raise ValidationBusy(
                    "no validation worker became free in time",
                    vi="không có tiến trình kiểm tra nào rảnh kịp",
                )
            return self._idle.pop()

    def _release(self, worker: _Worker) -> None:
        if not worker.alive:
            return
        with self._cond:
            if worker in self._workers:
                self._idle.append(worker)
                self._cond.notify()

    def validate(
        self, data: bytes, *, name: str = "document", detached: bytes | None = None
    ) -> ValidationReport:
        """The report for ``data`` (and a detached original), made by a worker.

        Raises the validator's own domain errors (``InvalidPdf``, ``TooComplexPdf``, …),
        ``TooComplex`` past the time or memory budget, ``ValidationBusy`` when the pool and its
        queue are full. Blocks: call it from a worker thread, never on the event loop."""
        job = _Job(bytes(data), name, detached, clock.precise())
        worker = self._acquire()
        try:
            kind, payload = self._ask(worker, job)
        except BaseException:
            self._release(worker)  # nothing if the worker was stopped
            raise
        metrics.validation_finished(kind)
        if kind in ("cpu", "memory"):
            self._retire(worker)  # it leaves by itself after such a job
        else:
            self._release(worker)
        if kind == "ok":
            return ValidationReport.from_dict(payload)
        if kind == "error":
            raise _rebuild(*payload)
        if kind == "cpu":
            raise TooComplex(
                f"over {self._budget.cpu_seconds} s of processor time",
                vi=f"quá {self._budget.cpu_seconds} giây xử lý",
            )
        if kind == "memory":
            raise TooComplex(
                f"over {self._budget.memory_mb} MB of memory",
                vi=f"quá {self._budget.memory_mb} MB bộ nhớ",
            )
        raise ValidationFailed()

    def _ask(self, worker: _Worker, job: _Job) -> tuple[str, Any]:
        try:
            worker.conn.send(job)
            if not worker.conn.poll(self._deadline):
                log.warning(
                    "validation of %r passed its %g s deadline; worker %s stopped",
                    job.name,
                    self._deadline,
                    worker.pid,
                )
                self._retire(worker)
                raise TooComplex(
                    f"not done within {self._deadline:g} s",
                    vi=f"không xong trong {self._deadline:g} giây",
                )
            answer = worker.conn.recv()
        except (EOFError, OSError) as exc:
            # the worker died: the kernel's OOM killer, or a crash in a C library
            log.warning("validation worker %s died on %r", worker.pid, job.name, exc_info=True)
            self._retire(worker)
            raise TooComplex(
                "the validation stopped (out of memory?)",
                vi="việc kiểm tra bị dừng (hết bộ nhớ?)",
            ) from exc
        kind, payload = answer
        return str(kind), payload
