"""Charts as inline SVG drawn on the server: no script, no library to download, readable
without colour (each chart has a title, and the page shows the same numbers as a table)."""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

PALETTE = ("#b3261e", "#0b57d0", "#146c2e", "#8a5a00", "#6750a4", "#00696f", "#5f5a66")


def stacked_columns(
    title: str,
    categories: Sequence[str],
    series: Sequence[tuple[str, Sequence[int]]],
    *,
    width: int = 720,
    height: int = 260,
) -> Markup:
    """One column per category (a month), stacked by series (a sector)."""
    left, bottom, top = 36, 28, 10
    plot_w, plot_h = width - left - 8, height - bottom - top
    totals = [sum(values[i] for _, values in series) for i in range(len(categories))]
    peak = max([*totals, 1])
    step = _nice_step(peak)
    ceiling = step * -(-peak // step)
    slot = plot_w / max(len(categories), 1)
    bar = slot * 0.64
    parts = [
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
    ]
    for tick in range(0, ceiling + 1, step):
        y = top + plot_h - plot_h * tick / ceiling
        parts.append(
            f'<line x1="{left}" x2="{width - 8}" y1="{y:.1f}" y2="{y:.1f}" stroke="#d9d4dc"/>'
            f'<text x="{left - 4}" y="{y + 4:.1f}" font-size="11" text-anchor="end" '
            f'fill="#5f5a66">{tick}</text>'
        )
    for i, category in enumerate(categories):
        x = left + slot * i + (slot - bar) / 2
        y = top + plot_h
        for k, (name, values) in enumerate(series):
            value = values[i]
            if not value:
                continue
            h = plot_h * value / ceiling
            y -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{PALETTE[k % len(PALETTE)]}"><title>{escape(category)} · '
                f"{escape(name)}: {value}</title></rect>"
            )
        parts.append(
            f'<text x="{x + bar / 2:.1f}" y="{height - 10}" font-size="11" text-anchor="middle" '
            f'fill="#5f5a66">{escape(category)}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 (every text part went through escape())


def legend(names: Sequence[str]) -> Markup:
    items = "".join(
        f'<li><i style="background:{PALETTE[k % len(PALETTE)]}"></i>{escape(name)}</li>'
        for k, name in enumerate(names)
    )
    return Markup(f'<ul class="legend">{items}</ul>')  # noqa: S704 (names escaped)


def horizontal_bars(
    title: str, rows: Sequence[tuple[str, int, str]], *, width: int = 420
) -> Markup:
    """One bar per row (label, value, colour): a status breakdown."""
    row_h, label_w = 26, 130
    height = row_h * len(rows) + 8
    peak = max([value for _, value, _ in rows] + [1])
    parts = [
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
    ]
    for i, (label, value, colour) in enumerate(rows):
        y = 4 + i * row_h
        w = (width - label_w - 60) * value / peak
        parts.append(
            f'<text x="0" y="{y + 16}" font-size="12" fill="#1d1b20">{escape(label)}</text>'
            f'<rect x="{label_w}" y="{y + 4}" width="{max(w, 1):.1f}" height="16" '
            f'fill="{colour}"/><text x="{label_w + w + 6:.1f}" y="{y + 16}" font-size="12" '
            f'fill="#1d1b20">{value}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 (every text part went through escape())


def _nice_step(peak: int) -> int:
    for step in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000):
        if peak / step <= 5:
            return step
    return 10 ** len(str(peak))
