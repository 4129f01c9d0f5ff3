"""What operators and load balancers ask: ``/metrics``, ``/livez``, ``/readyz``; and the
outermost layer that gives every request an id and counts it.

- ``/metrics`` (Prometheus text format, kyso.observability.metrics) answers only clients in
  ``KYSO_METRICS_ALLOW`` (addresses or networks; default this machine), and 404 to anyone
  else, as if it were not there. The client is the address uvicorn gives: behind a trusted
  proxy (``--forwarded-allow-ips``) the one in ``X-Forwarded-For``, so a public client
  reaching /metrics through nginx is refused like any other.
- ``/livez``: the process answers. ``/readyz``: the database and the key store answer
  (kyso.observability.health); 503 with the failed checks named when they do not. ``/healthz``
  (kyso.web.app) stays as it was, for whatever already polls it.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections.abc import Iterable

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kyso.observability import health, metrics
from kyso.observability import logging as jsonlog

router = APIRouter(tags=["ops"])
access = logging.getLogger("kyso.access")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Answered by kyso.web.ocsp_front before the router, so no route is recorded for them.
_OCSP_GET = "/ocsp/{request}"
_UNMATCHED = "<unmatched>"


def allow_list(value: str) -> tuple[Network, ...]:
    """``"127.0.0.1,::1,10.0.0.0/8"`` → networks; a wrong entry stops the server at start
    (a typo must not open /metrics, nor close it silently)."""
    networks = []
    for item in value.split(","):
        if not item.strip():
            continue
        try:
            networks.append(ipaddress.ip_network(item.strip(), strict=False))
        except ValueError as exc:
            raise ValueError(
                f"KYSO_METRICS_ALLOW: '{item.strip()}' is not an address or a network"
            ) from exc
    return tuple(networks)


def allowed(client: str | None, networks: Iterable[Network]) -> bool:
    """Whether ``client`` (an address as uvicorn gives it) is in one of ``networks``."""
    if not client:
        return False
    try:
        address = ipaddress.ip_address(client.split("%", 1)[0])
    except ValueError:
        return False  # a Unix socket, a test client's name: not an address we can check
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


@router.get("/metrics", include_in_schema=False)
def prometheus_metrics(request: Request) -> Response:
    ops: Ops = request.app.state.ops
    client = request.client.host if request.client else None
    if not allowed(client, ops.metrics_allow):
        raise HTTPException(404, "Not Found")
    ops.sample()
    body, media_type = metrics.exposition(ops.multiprocess_dir, ops.scrape)
    return Response(body, media_type=media_type, headers={"cache-control": "no-store"})


@router.get("/livez")
def livez() -> dict[str, str]:
    """The process answers (and its event loop is free enough to say so)."""
    return {"status": "live"}


@router.get("/readyz", responses={503: {"description": "not ready; the failed checks named"}})
def readyz(request: Request) -> JSONResponse:
    """The database answers and the key store signs (cached a few seconds)."""
    ops: Ops = request.app.state.ops
    result = ops.health.readiness()
    return JSONResponse(
        result.to_dict(),
        status_code=200 if result.ok else 503,
        headers={"cache-control": "no-store"},
    )


class Ops:
    """What the routes above need of one application."""

    def __init__(self, app: FastAPI) -> None:
        ctx = app.state.context
        settings = ctx.settings
        self.metrics_allow = allow_list(settings.metrics_allow)
        self.multiprocess_dir = settings.prometheus_multiproc_dir
        self.health = health.Health(ctx)
        self.scrape = [metrics.waiting_approvals(ctx.db)]
        self._app = app

    def sample(self) -> None:
        """This process's live gauges (the validation pool), as they are now."""
        pool = getattr(self._app.state, "validation_pool", None)
        if pool is not None:
            metrics.validation_pool(pool.state())


def _sampler(ops: Ops, every: float) -> None:
    """Multiprocess mode: keep this process's live gauges current for scrapes answered by
    the others (a scrape refreshes only the process that answers it)."""
    while True:
        time.sleep(every)
        try:
            ops.sample()
        except Exception:  # a pool closing under us; the next round sees the new one
            logging.getLogger("kyso.web").debug("sampling the validation pool failed")


def route_template(scope: Scope) -> str:
    """The template of the route that answered (``/certificates/{serial}``), never the raw
    path; mounts as ``/static/{path}``; OCSP (answered before routing) by its own two."""
    route = scope.get("route")
    if isinstance(route, Mount):
        return f"{route.path}/{{path}}"
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    if "app_root_path" in scope:  # a mount, as FastAPI's router enters it (root_path grows)
        mount = str(scope.get("root_path", ""))[len(str(scope["app_root_path"])) :]
        if mount:
            return f"{mount}/{{path}}"
    raw: str = scope.get("path", "")
    if raw == "/ocsp":
        return raw
    if raw.startswith("/ocsp/"):
        return _OCSP_GET
    return _UNMATCHED


class RequestObserver:
    """Outermost layer: the request id (``X-Request-ID`` in and out, in every log line of the
    request), the request counted and timed under its route template, and, when INFO is on
    (JSON logs), one access line without query string, headers or body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        offered = None
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id":
                offered = value.decode("latin-1")
                break
        rid = jsonlog.new_request_id(offered)
        token = jsonlog.bind_request_id(rid)
        header = rid.encode("latin-1")
        status = 500  # unless an answer starts: an exception that escapes is a 500
        start = time.perf_counter()

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", header)]
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            seconds = time.perf_counter() - start
            route = route_template(scope)
            metrics.http_request(route, scope["method"], status, seconds)
            if access.isEnabledFor(logging.INFO):
                access.info(
                    "%s %s %d",
                    scope["method"],
                    scope.get("path", ""),
                    status,
                    extra={
                        "http": {
                            "method": scope["method"],
                            "route": route,
                            "path": scope.get("path", ""),
                            "status": status,
                            "seconds": round(seconds, 6),
                        }
                    },
                )
        # Only once answered: an exception goes on to the app's last handler (outside this
        # layer), whose log line must still carry the id. The request's task ends with it.
        jsonlog.reset_request_id(token)


def install(app: FastAPI) -> None:
    """The routes, the observer (call last: it must sit outside every other layer) and,
    in multiprocess mode, the sampler of this process's live gauges."""
    ops = Ops(app)
    app.state.ops = ops
    app.include_router(router)
    app.add_middleware(RequestObserver)
    if ops.multiprocess_dir is not None:
        import atexit
        import os

        threading.Thread(target=_sampler, args=(ops, 1.0), daemon=True, name="kyso-gauges").start()
        atexit.register(metrics.mark_process_dead, ops.multiprocess_dir, os.getpid())
