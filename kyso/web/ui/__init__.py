"""The web application's pages: Vietnamese first, server-rendered, no asset from elsewhere.

One module per area; each has its own ``router`` whose dependency
(:func:`kyso.web.ui.guard.ui_request`) marks requests as pages and checks CSRF on every
unsafe method. Services do every access check; pages only translate.
"""

from __future__ import annotations

from fastapi import APIRouter

from kyso.web.ui import (
    audit_log,
    auth,
    ca_info,
    certificates,
    devices,
    exchange,
    gazette,
    home,
    people,
    phone,
    register,
    requests,
    sign,
    sign_queue,
    units,
    verify,
)

# sign_queue before sign: /sign/requests/… must not be taken for /sign/{upload_id}; register
# before exchange: /exchange/register, /exchange/issue … must not be taken for a message id
AREAS = (
    auth,
    home,
    units,
    people,
    devices,
    requests,
    certificates,
    sign_queue,
    sign,
    register,
    exchange,
    verify,
    gazette,
    ca_info,
    audit_log,
    phone,
)
router = APIRouter(include_in_schema=False)
for area in AREAS:
    router.include_router(area.router)
router.include_router(phone.api)  # /m/api: the phone page's JSON (errors in JSON)
