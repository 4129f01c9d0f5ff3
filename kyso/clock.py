"""Time in one place: stored in UTC, shown in Asia/Ho_Chi_Minh."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")


def now() -> datetime:
    """The current time, UTC, truncated to whole seconds (X.509 and CRLs carry no fractions)."""
    return datetime.now(UTC).replace(microsecond=0)


def local(moment: datetime) -> datetime:
    """A stored UTC time as Vietnamese users read it."""
    return moment.astimezone(VIETNAM)
