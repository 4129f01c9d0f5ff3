"""Logs as one JSON object per line, each carrying the id of the request it belongs to.

``KYSO_LOG_FORMAT=json`` turns it on (journald, Loki, Elasticsearch and the like read one
object per line); the default leaves Python's and uvicorn's text logs as they are.

A line has ``time`` (UTC, ISO 8601 with milliseconds), ``level``, ``logger``, ``message`` and,
inside a request, ``request_id`` (the client's ``X-Request-ID`` when it sent a sane one,
else one made here; the answer carries it back, so a clerk's "request id" finds the line).
An error with an exception adds its ``exception`` type and the ``traceback``: tracebacks go
to the log only, never into an answer (kyso.web.errors answers with a code and a sentence).

What is logged is what the code writes into messages: kyso never logs request bodies,
headers or query strings, so passwords, PINs, one-time codes and ``Authorization`` tokens
stay out (tests/observability/test_logs.py sends all of them and reads the log).
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

_request_id: ContextVar[str | None] = ContextVar("kyso_request_id", default=None)
_SANE_ID = re.compile(r"[A-Za-z0-9._:@-]{1,128}")
_HANDLER_NAME = "kyso-json"

# Fields a caller may add with ``extra={"http": {...}}`` (the access line) and that are kept.
_EXTRA_FIELDS = ("http",)


def request_id() -> str | None:
    """The id of the request this code runs for, if any."""
    return _request_id.get()


def new_request_id(offered: str | None) -> str:
    """The client's id if it is short and plain (it is echoed in headers and logs), else a
    fresh random one."""
    if offered and _SANE_ID.fullmatch(offered):
        return offered
    return secrets.token_hex(16)


def bind_request_id(value: str | None) -> Any:
    """Set the current request id; returns the token :func:`reset_request_id` takes."""
    return _request_id.set(value)


def reset_request_id(token: Any) -> None:
    _request_id.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per record (see the module's description for the fields)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = getattr(record, "request_id", None) or _request_id.get()
        if rid:
            entry["request_id"] = rid
        for name in _EXTRA_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception"] = record.exc_info[0].__name__
            entry["traceback"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["traceback"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure(log_format: str) -> None:
    """Install the JSON formatter on the root logger and route uvicorn's loggers to it
    (``log_format`` "json"); "text" changes nothing. Safe to call again (one handler).

    pyHanko's validator logs every signature it cannot validate as a warning with the whole
    traceback; kyso's report already says why, so those repeat nothing but cost time and
    flood the log with each document from another CA: only its errors are kept."""
    logging.getLogger("pyhanko.sign.validation").setLevel(logging.ERROR)
    if log_format != "json":
        if log_format != "text":
            raise ValueError(f"KYSO_LOG_FORMAT: '{log_format}' is neither 'json' nor 'text'")
        return
    root = logging.getLogger()
    if not any(h.get_name() == _HANDLER_NAME for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.set_name(_HANDLER_NAME)
        handler.setFormatter(JsonFormatter())
        root.addHandler(handler)
    root.setLevel(logging.INFO)
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers.clear()  # uvicorn's text handlers: its records reach the root's
        logger.propagate = True
    # uvicorn's access log stays off unless asked for (--access-log; it writes query
    # strings); when on, it is written as JSON too. kyso's own access line is "kyso.access".
    uvicorn_access = logging.getLogger("uvicorn.access")
    if uvicorn_access.handlers:
        uvicorn_access.handlers = [h for h in root.handlers if h.get_name() == _HANDLER_NAME]
