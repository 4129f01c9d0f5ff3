"""Group commit for issuance requests that arrive one by one (the REST API).

Each issuance alone pays a transaction, an audit-head lock and a commit, which cost several
times the signature; a batch pays them once (benchmarks/bench_ca.py: ~6 ms alone against
~1.7 ms per certificate in a batch). Requests that arrive while a batch is being written
wait for the next one, so under load batches form by themselves and an idle server still
answers one request at once. The queue is per process and holds only work in flight.

A batch is all or nothing; if it fails, its requests are issued one by one so that one bad
request (a key revoked for compromise, a lint finding) fails alone.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from concurrent.futures import Future
from queue import Empty, SimpleQueue

from kyso.errors import KysoError
from kyso.pki import issuance
from kyso.pki.authority import Authority


class IssuanceBatcher:
    def __init__(self, authority: Authority, max_batch: int = 64) -> None:
        self.authority = authority
        self.max_batch = max_batch
        self._queue: SimpleQueue[tuple[issuance.IssueSpec, str, Future[issuance.Issued]]] = (
            SimpleQueue()
        )
        self._worker: threading.Thread | None = None
        self._start = threading.Lock()

    def issue(self, spec: issuance.IssueSpec, actor: str) -> issuance.Issued:
        """Issue one certificate (blocking), together with whatever else is waiting."""
        issuance.check_spec(spec)  # bad input fails here, alone, before it joins a batch
        future: Future[issuance.Issued] = Future()
        self._queue.put((spec, actor, future))
        self._ensure_worker()
        return future.result()

    def _ensure_worker(self) -> None:
        with self._start:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(
                    target=self._run, name="issuance-batcher", daemon=True
                )
                self._worker.start()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except Empty:
                    break
            self._write(batch)

    def _write(self, batch: list[tuple[issuance.IssueSpec, str, Future[issuance.Issued]]]) -> None:
        by_actor: dict[str, list[tuple[issuance.IssueSpec, Future[issuance.Issued]]]] = defaultdict(
            list
        )
        for spec, actor, future in batch:
            by_actor[actor].append((spec, future))
        try:
            with self.authority.db.session() as session:
                results = {
                    actor: issuance.issue_many(
                        session, self.authority, [s for s, _ in items], actor
                    )
                    for actor, items in by_actor.items()
                }
        except Exception:
            for spec, actor, future in batch:
                self._write_one(spec, actor, future)
            return
        for actor, items in by_actor.items():
            for (_, future), issued in zip(items, results[actor], strict=True):
                future.set_result(issued)

    def _write_one(
        self, spec: issuance.IssueSpec, actor: str, future: Future[issuance.Issued]
    ) -> None:
        try:
            with self.authority.db.session() as session:
                future.set_result(issuance.issue(session, self.authority, spec, actor))
        except KysoError as exc:
            future.set_exception(exc)
        except Exception as exc:
            future.set_exception(exc)
