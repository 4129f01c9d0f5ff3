"""Pages: requests (to be written)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from kyso.web.ui import guard

router = APIRouter(dependencies=[Depends(guard.ui_request)])
