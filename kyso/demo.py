"""Demo data for `kyso init --demo` (the registry issue adds the province's units and people)."""

from __future__ import annotations

from kyso.context import Context


def load_demo(ctx: Context, actor: str) -> None:
    """Nothing beyond the Vietnamese CA names yet: organizations and people come with the
    registration authority."""
    del ctx, actor
