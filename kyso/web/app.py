"""The FastAPI application: PKI endpoints, REST API, and the web pages."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

from fastapi import FastAPI

from kyso import cluster, ratelimit, upgrade
from kyso.api import idempotency
from kyso.archive import service as archive
from kyso.audit import checkpoints
from kyso.context import Context
from kyso.exchange import service as exchange
from kyso.exchange import webhooks as exchange_webhooks
from kyso.observability import logging as jsonlog
from kyso.observability import metrics
from kyso.registry import login_challenges, sessions
from kyso.remote import approvals, documents, webauthn, webhooks
from kyso.settings import Settings
from kyso.signing import deferred
from kyso.validation.pool import ValidationPool
from kyso.web import (
    api_agent,
    api_certificates,
    api_delegates,
    api_docs,
    api_documents,
    api_exchange,
    api_registry,
    api_requests,
    csc_api,
    errors,
    ops_routes,
    pki_routes,
    ui,
)
from kyso.web.assets import CachedStatic
from kyso.web.limits import BodyLimit
from kyso.web.ocsp_front import OcspFront
from kyso.web.ratelimit import SigningPool
from kyso.web.ui import uploads

log = logging.getLogger("kyso.web")
STATIC = Path(__file__).resolve().parent / "static"


def _refresh_loop(
    ctx: Context,
    stop: threading.Event,
    every_seconds: float,
    leader: cluster.Leadership | None = None,
) -> None:
    """Keep pre-signed OCSP answers fresh (RFC 5019): sign what is missing or half-expired;
    and forget browser sessions, login challenges, rate-limit buckets and uploads that have
    run out.

    The database's share runs once across the cluster per period: only the process that
    leads (kyso.cluster) does it. The upload area is this machine's disk, so every process
    sweeps its own (a sweep is idempotent). Without ``leader`` it always runs."""
    leader = leader or cluster.AlwaysLeader()
    while not stop.wait(every_seconds):
        try:  # the pages' hour-long uploads and reports (reads check the hour themselves)
            uploads.sweep(ctx)
            deferred.sweep(ctx)  # signatures prepared for a USB token (ten minutes)
        except Exception:
            log.exception("sweeping the upload area failed")
        if not leader.lead():  # another process does this period's work
            continue
        metrics.scheduled_run()
        try:
            ctx.responder.refresh()
        except Exception:  # keep the loop alive; the failure is logged, not hidden
            log.exception("OCSP refresh failed")
        try:
            with ctx.db.session() as session:
                sessions.sweep(session)
        except Exception:
            log.exception("sweeping expired web sessions failed")
        try:
            with ctx.db.session() as session:
                ratelimit.sweep(session)
                login_challenges.sweep(session)
                webauthn.sweep(session)  # phone enrolment challenges past their five minutes
        except Exception:
            log.exception("sweeping rate-limit buckets and login challenges failed")
        try:  # consent requests past their time expire (reads check it themselves too)
            with ctx.db.session() as session:
                approvals.expire_overdue(session)
            documents.fail_interrupted(ctx)  # approved, but the signing process stopped
        except Exception:
            log.exception("expiring overdue signature approvals failed")
        try:  # documents for other installations, delivered again while they were down
            exchange.retry_due(ctx)
            exchange_webhooks.deliver_due(ctx)  # …and the systems subscribed, told
            idempotency.forget_old(ctx)  # answers kept for Idempotency-Keys, a day
        except Exception:
            log.exception("delivering the queued exchange messages failed")
        try:  # what could not be archived at once (a full disk) is archived now, and
            archive.catch_up(ctx)  # archived PDFs get their archival time-stamp (B-LTA)
            archive.timestamp_due(ctx)
        except Exception:
            log.exception("archiving failed")
        try:  # the outcome of central-key signatures, to the systems that gave a callback URL
            webhooks.retry_due(ctx)
        except Exception:
            log.exception("sending the signature webhooks failed")
        if ctx.settings.audit_checkpoint_minutes > 0:
            try:  # anchor the audit log: a signed, time-stamped checkpoint when entries were added
                every = timedelta(minutes=ctx.settings.audit_checkpoint_minutes)
                checkpoints.make_if_due(ctx, every)
            except checkpoints.AuditLogTampered as exc:  # an alarm, not a crash: no traceback
                log.error("audit log not anchored: %s", exc.detail)
            except Exception:
                log.exception("the audit log checkpoint failed")
    leader.release()


def create_app(settings: Settings | None = None, *, scheduler: bool = True) -> FastAPI:
    settings = settings or Settings.from_env()
    jsonlog.configure(settings.log_format)
    ctx = Context(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:  # seal clear TOTP secrets, add the audit signer an older CA lacks
            upgrade.bring_up_to_date(ctx, "system:serve")
        except Exception:
            log.exception("bringing this instance up to date failed")
        validation_pool.start()  # pre-started: a small file pays no process start
        stop = threading.Event()
        if scheduler:
            leader = cluster.leadership(ctx.db)  # scheduled work: once across the cluster
            threading.Thread(
                target=_refresh_loop,
                args=(ctx, stop, settings.loop_seconds, leader),
                daemon=True,
                name="ocsp-refresh",
            ).start()
        yield
        stop.set()
        pool.close()
        validation_pool.close()
        ctx.close()

    app = FastAPI(
        title="kyso",
        version="0.1.0",
        description="Chữ ký số chuyên dùng — CA, OCSP, CRL, TSA and the certificate API",
        lifespan=lifespan,
        docs_url=None,  # served from kyso's own files by kyso.web.api_docs
        redoc_url=None,
    )
    app.state.context = ctx
    app.state.limiter = ratelimit.Limiter.for_settings(ctx.db, settings)
    app.state.signing_pool = pool = SigningPool()
    # anonymous validation runs in worker processes, bounded (kyso.validation.pool)
    app.state.validation_pool = validation_pool = ValidationPool(settings)
    errors.install(app)
    app.include_router(pki_routes.router)
    app.include_router(api_requests.router)  # before /certificates/{serial}: /expiring
    app.include_router(api_certificates.router)
    app.include_router(api_delegates.router)
    app.include_router(api_documents.router)
    app.include_router(api_agent.router)  # signing with a USB token (kyso.agent)
    app.include_router(api_registry.router)
    app.include_router(csc_api.router)  # the CSC API v1 and v2 (kyso.remote.csc)
    app.include_router(api_exchange.router)  # edXML between agencies (kyso.exchange)
    app.include_router(ui.router)
    api_docs.install(app)
    app.mount("/static", CachedStatic(directory=STATIC), name="static")

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.add_middleware(BodyLimit, max_bytes=settings.max_upload_bytes)
    # OCSP skips the framework
    app.add_middleware(OcspFront, context=ctx, limiter=app.state.limiter, pool=pool)
    # outermost: /metrics, /livez, /readyz; request ids and request metrics (OCSP's too)
    ops_routes.install(app)
    return app
