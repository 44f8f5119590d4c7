"""Service-quality digests: fetch (SQL aggregates) -> pure aggregation -> Digest (plain data).

* :mod:`~quality.digest.period`: the period of a digest (day, week, range) and the one before it.
* :mod:`~quality.digest.build`: :func:`build_digest` fetches with :mod:`quality.fetch`, then
  calls :func:`aggregate` off the event loop.
* :mod:`~quality.digest.aggregate`: :func:`aggregate`, a pure function of the fetched data
  (testable without a database).
* :mod:`~quality.digest.themes`: key phrases and masked quotes per category.
* :mod:`~quality.digest.figures`: the :class:`Digest` every renderer reads;
  :meth:`Digest.to_json` gives every figure.
* :mod:`~quality.digest.chart`: the PNG chart, with the words given by the caller.

The words people read (the Telegram text, the chart's labels) live in :mod:`bot.texts.digest`;
:func:`bot.digests.produce` builds, renders and draws, off the event loop where the work is
CPU-bound.
"""

from quality.digest.aggregate import (
    BASELINE_DAYS,
    CHART_CATEGORIES,
    CHART_DAYS,
    HEADLINES,
    OTHER,
    DigestConfig,
    RawDigest,
    aggregate,
    period_figures,
)
from quality.digest.build import build_digest, fetch_raw
from quality.digest.figures import (
    AgentFigures,
    AtRiskCustomer,
    ChartData,
    ControlChart,
    DayRating,
    Digest,
    NeedsOutlook,
    PeriodFigures,
    Spikes,
    StaffingOutlook,
    Volume,
)
from quality.digest.period import Period, PeriodKind, make_period, previous_period
from quality.digest.themes import (
    Masker,
    Summariser,
    Theme,
    TicketSummaryLike,
    mask_personal_data,
    themes,
)

__all__ = [
    "BASELINE_DAYS",
    "CHART_CATEGORIES",
    "CHART_DAYS",
    "HEADLINES",
    "OTHER",
    "AgentFigures",
    "AtRiskCustomer",
    "ChartData",
    "ControlChart",
    "DayRating",
    "Digest",
    "DigestConfig",
    "Masker",
    "NeedsOutlook",
    "Period",
    "PeriodFigures",
    "PeriodKind",
    "RawDigest",
    "Spikes",
    "StaffingOutlook",
    "Summariser",
    "Theme",
    "TicketSummaryLike",
    "Volume",
    "aggregate",
    "build_digest",
    "fetch_raw",
    "make_period",
    "mask_personal_data",
    "period_figures",
    "previous_period",
    "themes",
]
