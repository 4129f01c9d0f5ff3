"""AdES baseline levels, kept apart so that commands can name them without importing pyHanko."""

from __future__ import annotations

import enum


class Level(enum.StrEnum):
    """AdES baseline levels (ETSI EN 319 142-1 / 122-1 / 132-1)."""

    B_B = "B-B"
    B_T = "B-T"
    B_LT = "B-LT"
    B_LTA = "B-LTA"

    @property
    def needs_timestamp(self) -> bool:
        return self is not Level.B_B
