"""What anonymous validation may cost is bounded.

A 640 KB PDF with 100 incremental signatures took more than eight minutes and 7.7 GB to
validate: pyHanko's change analysis compares every signed revision with every later one. Now
each revision is compared once, a PDF over the signature or revision limit is refused before
anything is verified, the report keeps nothing of the parsed file, and public validation runs
in a pool of worker processes with a CPU, memory and wall-clock budget and a bounded queue
(``kyso.validation.pool``); what goes over is refused in plain words, never with a 500.
"""

from __future__ import annotations

import dataclasses
import gc
import os
import re
import threading
import time
import types
from datetime import timedelta

import pytest
from conftest import Instance
from fastapi.testclient import TestClient
from fixtures.pdf import pki, samples
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.diff_analysis import StandardDiffPolicy

from kyso.settings import Settings
from kyso.signing.cades import sign_cms
from kyso.signing.pades import sign_pdf
from kyso.trust import trust_context
from kyso.validation import pdf as pdf_validation
from kyso.validation.pdf import PdfLimits, TooComplexPdf, validate_pdf
from kyso.validation.pool import TooComplex, ValidationBusy, ValidationPool
from kyso.validation.report import Indication
from kyso.web.app import create_app

SIGNATURES = 60


@pytest.fixture(scope="module")
def env(sqlite_instance: Instance):
    ctx = sqlite_instance.ctx
    return ctx, trust_context(ctx)


@pytest.fixture(scope="module")
def person(env):
    return pki.server_signer(env[0])[0]


@pytest.fixture(scope="module")
def one(env, person) -> bytes:
    return sign_pdf(samples.official_document(), person, trust=env[1])


@pytest.fixture(scope="module")
def many(env, person) -> bytes:
    """A decision signed 60 times, each signature an incremental update."""
    data = samples.official_document()
    for _ in range(SIGNATURES):
        data = sign_pdf(data, person, trust=env[1])
    return data


@pytest.fixture(scope="module")
def settings(sqlite_instance: Instance) -> Settings:
    return Settings.from_env(sqlite_instance.env)


def _pool(settings: Settings, **changes) -> ValidationPool:
    pool = ValidationPool(dataclasses.replace(settings, **changes))
    pool.start(wait=True)
    return pool


# -- the validator ------------------------------------------------------------------------------


def test_each_revision_is_compared_once(env, many, monkeypatch):
    compared: list[tuple[int, int]] = []
    apply = StandardDiffPolicy.apply

    def counted(self, old, new, *args, **kwargs):
        compared.append((old.revision, new.revision))
        return apply(self, old, new, *args, **kwargs)

    monkeypatch.setattr(StandardDiffPolicy, "apply", counted)
    report = validate_pdf(many, env[1])
    assert report.passed and len(report.signatures) == SIGNATURES
    # one comparison per revision after the first signature, not one per pair (1,770)
    assert len(compared) == SIGNATURES - 1
    assert len(set(compared)) == len(compared)
    assert all(new == old + 1 for old, new in compared)


def test_a_pdf_over_the_limits_is_refused_before_any_signature_is_checked(env, many, monkeypatch):
    checked: list[object] = []
    real = pdf_validation.async_validate_pdf_signature

    async def counted(emb, *args, **kwargs):
        checked.append(emb)
        return await real(emb, *args, **kwargs)

    monkeypatch.setattr(pdf_validation, "async_validate_pdf_signature", counted)
    with pytest.raises(TooComplexPdf) as refused:
        validate_pdf(many, env[1], limits=PdfLimits(signatures=50))
    assert refused.value.http_status == 422 and refused.value.code == "pdf_too_complex"
    assert "more than 50 signatures" in refused.value.message("en")
    assert "hơn 50 chữ ký" in refused.value.message("vi")
    with pytest.raises(TooComplexPdf) as refused:
        validate_pdf(many, env[1], limits=PdfLimits(revisions=20))
    assert f"{SIGNATURES + 1} revisions; at most 20" in refused.value.message("en")
    assert checked == []
    within = PdfLimits(signatures=SIGNATURES, revisions=SIGNATURES + 1)
    assert validate_pdf(many, env[1], limits=within).passed


def test_public_limits_are_settings(tmp_path):
    defaults = Settings.from_env({"KYSO_HOME": str(tmp_path)})
    assert (defaults.verify_max_signatures, defaults.verify_max_revisions) == (50, 100)
    assert PdfLimits.from_settings(defaults) == PdfLimits(50, 100)
    chosen = Settings.from_env(
        {
            "KYSO_HOME": str(tmp_path),
            "KYSO_VERIFY_MAX_SIGNATURES": "5",
            "KYSO_VERIFY_MAX_REVISIONS": "7",
            "KYSO_VERIFY_WORKERS": "3",
            "KYSO_VERIFY_QUEUE": "2",
            "KYSO_VERIFY_CPU_SECONDS": "4",
            "KYSO_VERIFY_DEADLINE_SECONDS": "6.5",
            "KYSO_VERIFY_MEMORY_MB": "256",
        }
    )
    assert PdfLimits.from_settings(chosen) == PdfLimits(5, 7)
    unbounded = {"KYSO_VERIFY_MAX_SIGNATURES": "0", "KYSO_VERIFY_MAX_REVISIONS": "0"}
    assert PdfLimits.from_settings(
        Settings.from_env({"KYSO_HOME": str(tmp_path), **unbounded})
    ) == PdfLimits(None, None)  # 0: no bound
    assert (
        chosen.verify_workers,
        chosen.verify_queue,
        chosen.verify_cpu_seconds,
        chosen.verify_deadline_seconds,
        chosen.verify_memory_mb,
    ) == (3, 2, 4, 6.5, 256)


def _reachable_library_objects(root: object) -> list[str]:
    """pyHanko, asn1crypto or cryptography objects reachable from ``root``."""
    found, seen, todo = [], {id(root)}, [root]
    while todo:
        item = todo.pop()
        module = type(item).__module__ or ""
        if module.startswith(("pyhanko", "asn1crypto", "cryptography")):
            found.append(f"{module}.{type(item).__name__}")
            continue
        for child in gc.get_referents(item):
            if isinstance(child, type | types.ModuleType | types.FunctionType):
                continue
            if id(child) not in seen:
                seen.add(id(child))
                todo.append(child)
    return found


def test_the_report_holds_no_reference_to_the_parsed_document(env, many):
    gc.collect()
    before = {id(o) for o in gc.get_objects() if isinstance(o, PdfFileReader)}
    report = validate_pdf(many, env[1])
    gc.collect()
    kept = [o for o in gc.get_objects() if isinstance(o, PdfFileReader) and id(o) not in before]
    assert _reachable_library_objects(report) == []
    assert kept == []  # the parsed file (every revision of it) is gone with the call
    assert all(type(s.field_name) is str for s in report.signatures)


# -- the pool -----------------------------------------------------------------------------------


def test_a_small_pdf_is_answered_by_a_worker_already_running(settings, env, one):
    pool = _pool(settings, verify_workers=1)
    try:
        workers = pool.pids()
        assert len(workers) == 1 and os.getpid() not in workers
        report = pool.validate(one, name="quyet-dinh.pdf")
        again = pool.validate(one, name="quyet-dinh.pdf")
        assert pool.pids() == workers  # the same process answered: no start per request
        in_process = validate_pdf(one, env[1], name="quyet-dinh.pdf")
        assert report.passed and again.passed
        assert report.signatures[0].message_en == in_process.signatures[0].message_en
        assert report.document == "quyet-dinh.pdf"
    finally:
        pool.close()


def test_a_validation_past_its_deadline_is_stopped_and_refused_clearly(settings, many, one):
    pool = _pool(settings, verify_workers=1, verify_deadline_seconds=0.2, verify_max_signatures=100)
    try:
        first = pool.pids()
        started = time.monotonic()
        with pytest.raises(TooComplex) as refused:
            pool.validate(many, name="nhieu-chu-ky.pdf")
        assert time.monotonic() - started < 5
        assert refused.value.http_status == 422 and refused.value.code == "too_complex"
        assert "not done within 0.2 s" in refused.value.message("en")
        assert "quá phức tạp" in refused.value.message("vi")
        assert pool.validate(one).passed  # a new worker took the killed one's place
        assert pool.pids() != first
    finally:
        pool.close()


def test_a_validation_over_its_cpu_budget_is_refused(settings, many, one):
    pool = _pool(settings, verify_workers=1, verify_cpu_seconds=1, verify_max_signatures=100)
    try:
        with pytest.raises(TooComplex) as refused:
            pool.validate(many)
        assert "over 1 s of processor time" in refused.value.message("en")
        assert "quá 1 giây xử lý" in refused.value.message("vi")
        assert pool.validate(one).passed
    finally:
        pool.close()


def test_a_validation_over_its_memory_budget_is_refused(settings, person, one):
    """An attached CMS of 8 MB, with 2 MB to spare: reading its content alone is too much."""
    big = sign_cms(os.urandom(8 * 1024 * 1024), person, detached=False)
    pool = _pool(settings, verify_workers=1, verify_memory_mb=2)
    try:
        with pytest.raises(TooComplex) as refused:
            pool.validate(big, name="lon.p7s")
        assert "over 2 MB of memory" in refused.value.message("en")
        assert pool.validate(one).passed
    finally:
        pool.close()


def test_requests_beyond_the_queue_are_refused_at_once(settings, many, one):
    pool = _pool(settings, verify_workers=1, verify_queue=0, verify_max_signatures=100)
    try:
        busy = threading.Thread(target=pool.validate, args=(many,))
        busy.start()
        deadline = time.monotonic() + 10
        while pool.state()["idle"] and time.monotonic() < deadline:
            time.sleep(0.01)
        started = time.monotonic()
        with pytest.raises(ValidationBusy) as refused:
            pool.validate(one)
        assert time.monotonic() - started < 1
        assert refused.value.http_status == 503
        assert "busy" in refused.value.message("en") and "bận" in refused.value.message("vi")
        busy.join()
        assert pool.validate(one).passed
    finally:
        pool.close()


def test_workers_validate_as_of_the_callers_clock(settings, one, fake_clock):
    """The fake clock of the tests (or kyso's clock in production) is the worker's too."""
    pool = _pool(settings, verify_workers=1)
    try:
        fake_clock.advance(3600)
        report = pool.validate(one)
        # the caller's time (an hour ahead of the system's), moved on by the real time the
        # validation took: on a loaded machine that may cross a second or two
        start = fake_clock.at.replace(microsecond=0)
        assert start <= report.validated_at <= start + timedelta(seconds=60)
    finally:
        pool.close()


# -- over HTTP ----------------------------------------------------------------------------------

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def test_public_verify_refuses_what_is_over_its_bounds_in_words_never_a_500(settings, many, one):
    app = create_app(
        dataclasses.replace(settings, verify_max_signatures=10, verify_workers=1),
        scheduler=False,
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        files = {"file": ("nhieu-chu-ky.pdf", many, "application/pdf")}
        answer = client.post("/verify", files=files, headers={"accept-language": "en"})
        assert answer.status_code == 422, answer.text
        assert answer.json()["code"] == "pdf_too_complex"
        assert "more than 10 signatures" in answer.json()["message"]
        answer = client.post("/verify", files=files)
        assert "hơn 10 chữ ký" in answer.json()["message"]
        ok = client.post("/verify", files={"file": ("mot.pdf", one, "application/pdf")})
        assert ok.status_code == 200 and ok.json()["indication"] == Indication.TOTAL_PASSED

        page = client.get("/verify", headers={"accept": "text/html"})
        token = CSRF.search(page.text)
        assert token is not None
        shown = client.post(
            "/verify/report",
            data={"csrf_token": token.group(1)},
            files=files,
            headers={"accept": "text/html"},
            follow_redirects=False,
        )
        assert shown.status_code == 422
        assert "hơn 10 chữ ký" in shown.text


def test_public_verify_past_its_deadline_is_422(settings, many):
    app = create_app(
        dataclasses.replace(
            settings, verify_deadline_seconds=0.2, verify_workers=1, verify_max_signatures=100
        ),
        scheduler=False,
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        answer = client.post(
            "/verify",
            files={"file": ("nhieu-chu-ky.pdf", many, "application/pdf")},
            headers={"accept-language": "en"},
        )
        assert answer.status_code == 422, answer.text
        assert answer.json()["code"] == "too_complex"
