"""Time in one place: stored in UTC, shown in Asia/Ho_Chi_Minh.

Every part of kyso asks :func:`now` (never ``datetime.now``), so the clock can be replaced:
tests move a :class:`FakeClock` across a second, an hour or a year instead of sleeping, and
the code under test cannot tell.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")


def _system() -> datetime:
    return datetime.now(UTC)


_source: Callable[[], datetime] = _system


def precise() -> datetime:
    """The current time, UTC, with its fractions (for durations and expiry checks)."""
    return _source()


def now() -> datetime:
    """The current time, UTC, truncated to whole seconds (X.509 and CRLs carry no fractions)."""
    return _source().replace(microsecond=0)


def timestamp() -> float:
    """Seconds since the epoch, from the same clock (rate limits, cookie expiry)."""
    return _source().timestamp()


def local(moment: datetime) -> datetime:
    """A stored UTC time as Vietnamese users read it."""
    return moment.astimezone(VIETNAM)


class FakeClock:
    """A clock that only moves when told to. ``advance`` crosses seconds without sleeping."""

    def __init__(self, start: datetime | None = None) -> None:
        at = start or _system()
        if at.tzinfo is None:
            raise ValueError("a fake clock starts at an aware time")
        self.at = at.astimezone(UTC)

    def __call__(self) -> datetime:
        return self.at

    def advance(self, delta: timedelta | float) -> datetime:
        self.at += delta if isinstance(delta, timedelta) else timedelta(seconds=delta)
        return self.at


@contextmanager
def using(source: Callable[[], datetime]) -> Iterator[Callable[[], datetime]]:
    """Read the time from ``source`` inside the block (for every thread of the process)."""
    global _source
    previous, _source = _source, source
    try:
        yield source
    finally:
        _source = previous
