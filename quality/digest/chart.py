"""The digest chart: daily customer messages stacked by category, and the daily mean rating
with its control limits. PNG bytes drawn with matplotlib's Agg canvas (no pyplot, no display,
safe in a worker thread). CPU work: call it through ``asyncio.to_thread`` from async code.

The words on it (titles, axis and legend labels, the date format) come from the caller as
:class:`ChartLabels` (``bot.texts.digest.CHART_LABELS``).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any

from quality.digest.figures import Digest

PALETTE = (
    "#4C78A8",
    "#F58518",
    "#54A24B",
    "#B279A2",
    "#E45756",
    "#72B7B2",
    "#EECA3B",
    "#9D755D",
    "#BAB0AC",
)


@dataclass(frozen=True, slots=True)
class ChartLabels:
    """The words on the chart. ``centre`` is formatted with ``centre`` (a float), ``day`` with
    ``day`` (a date)."""

    volume_title: str
    volume_axis: str
    no_messages: str
    rating_title: str
    rating_axis: str
    centre: str
    control_limits: str
    mean_rating: str
    outside: str
    day: str


def draw_chart(digest: Digest, labels: ChartLabels, *, dpi: int = 110) -> bytes:
    """Two panels (volume by category, mean rating with limits) as PNG bytes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.collections import PolyCollection
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    chart = digest.chart
    days = list(chart.days)
    x = list(range(len(days)))
    ticks = [
        labels.day.format(day=d) if i % 7 == 0 or i == len(days) - 1 else ""
        for i, d in enumerate(days)
    ]
    in_period = [digest.period.first <= d <= digest.period.last for d in days]

    fig = Figure(figsize=(8.0, 6.4))
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    fig.subplots_adjust(left=0.08, right=0.98, top=0.95, bottom=0.07, hspace=0.22)

    # Stacked bars as one PolyCollection per category (far cheaper than a patch per bar).
    bottoms = [0] * len(days)
    handles = []
    for j, category in enumerate(chart.categories):
        values = [int(v) for v in chart.volume[:, j]]
        colour = PALETTE[j % len(PALETTE)]
        verts = [
            [(i - 0.4, b), (i - 0.4, b + v), (i + 0.4, b + v), (i + 0.4, b)]
            for i, (b, v) in enumerate(zip(bottoms, values, strict=True))
            if v
        ]
        top.add_collection(PolyCollection(verts, facecolors=colour, linewidths=0))
        handles.append(Patch(facecolor=colour, label=category))
        bottoms = [b + v for b, v in zip(bottoms, values, strict=True)]
    _shade(top, in_period)
    top.set_title(labels.volume_title, fontsize=11, loc="left")
    top.set_ylabel(labels.volume_axis)
    top.grid(axis="y", alpha=0.3)
    if handles:
        top.legend(
            handles=handles, fontsize=8, ncols=min(4, len(handles)), loc="upper left", frameon=False
        )
    if not any(bottoms):
        top.text(
            0.5, 0.5, labels.no_messages, transform=top.transAxes, ha="center", color="#888888"
        )
    top.set_ylim(0, max(1, max(bottoms, default=0)) * 1.25)

    ratings = digest.control.days
    by_day = {r.day: r for r in ratings}
    means = [_nan(by_day[d].mean) if d in by_day else math.nan for d in days]
    lower = [_nan(by_day[d].lower) if d in by_day else math.nan for d in days]
    upper = [_nan(by_day[d].upper) if d in by_day else math.nan for d in days]
    outside = [i for i, d in enumerate(days) if d in by_day and by_day[d].outside]
    if digest.control.centre is not None:
        bottom.axhline(
            digest.control.centre,
            color="#555555",
            linewidth=1,
            linestyle="--",
            label=labels.centre.format(centre=digest.control.centre),
        )
    bottom.fill_between(
        x, lower, upper, step="mid", color="#4C78A8", alpha=0.15, label=labels.control_limits
    )
    bottom.plot(
        x,
        means,
        marker="o",
        markersize=3.5,
        color="#4C78A8",
        linewidth=1.2,
        label=labels.mean_rating,
    )
    if outside:
        bottom.scatter(
            outside,
            [means[i] for i in outside],
            color="#E45756",
            zorder=3,
            s=36,
            label=labels.outside,
        )
    _shade(bottom, in_period)
    shown = [v for v in (*means, *lower) if not math.isnan(v)]
    low = max(0.8, min(shown, default=1.0) - 0.3)
    bottom.set_ylim(low, 5.15)
    bottom.set_ylabel(labels.rating_axis)
    bottom.set_title(labels.rating_title, fontsize=11, loc="left")
    bottom.grid(axis="y", alpha=0.3)
    bottom.legend(fontsize=8, loc="lower left", ncols=2, frameon=False)
    shown_ticks = [i for i, tick in enumerate(ticks) if tick]
    bottom.set_xticks(shown_ticks, [ticks[i] for i in shown_ticks], fontsize=8)
    bottom.set_xlim(-0.6, max(len(days) - 0.4, 0.4))

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def _shade(axes: Any, in_period: list[bool]) -> None:
    """Grey background behind the days of the digest's period."""
    inside = [i for i, flag in enumerate(in_period) if flag]
    if inside:
        axes.axvspan(inside[0] - 0.5, inside[-1] + 0.5, color="#000000", alpha=0.06, linewidth=0)


def _nan(value: float | None) -> float:
    return math.nan if value is None else value
