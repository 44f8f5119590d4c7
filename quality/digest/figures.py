"""The Digest: every figure of a period as plain data (frozen dataclasses), what the renderers
read — the text and the chart in ``bot`` and :meth:`Digest.to_json` here. No wording."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, is_dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

from quality.digest.period import Period, PeriodKind
from quality.digest.themes import Theme
from quality.stats import Change, CsatStats, DurationStats, SpikeResult


@dataclass(frozen=True, slots=True)
class AgentFigures:
    agent_id: int
    name: str
    handled: int
    median_first_response: float | None
    ratings: int
    mean_rating: float | None


@dataclass(frozen=True, slots=True)
class Volume:
    tickets: int
    customer_messages: int
    agent_messages: int
    bot_messages: int
    tickets_by_category: dict[str, int]
    messages_by_category: dict[str, int]
    messages_by_sentiment: dict[str, int]
    tickets_by_sentiment: dict[str, int]
    self_served: int
    escalated: int
    reopened: int
    resolved: int
    resolved_self_served: int


@dataclass(frozen=True, slots=True)
class PeriodFigures:
    """Every figure of one period."""

    volume: Volume
    csat: CsatStats
    first_response: DurationStats
    resolution: DurationStats
    answered: int
    unanswered: int
    breaches: int
    agents: tuple[AgentFigures, ...]


@dataclass(frozen=True, slots=True)
class DayRating:
    day: date
    count: int
    mean: float | None
    lower: float | None
    upper: float | None
    outside: bool


@dataclass(frozen=True, slots=True)
class ControlChart:
    """Daily mean rating against centre ± 3 standard errors of the previous 28 days."""

    centre: float | None
    sigma: float | None
    baseline_ratings: int
    days: tuple[DayRating, ...]  # the chart window
    flagged: tuple[DayRating, ...]  # days of the period outside the limits


@dataclass(frozen=True, slots=True)
class Spikes:
    overall: SpikeResult
    by_category: dict[str, SpikeResult]

    @property
    def flagged(self) -> list[tuple[str | None, SpikeResult]]:
        out: list[tuple[str | None, SpikeResult]] = []
        if self.overall.is_spike:
            out.append((None, self.overall))
        out.extend((c, r) for c, r in self.by_category.items() if r.is_spike)
        return out


@dataclass(frozen=True, slots=True, eq=False)
class ChartData:
    days: tuple[date, ...]
    categories: tuple[str, ...]
    volume: NDArray[np.int64]  # days x categories, customer messages


@dataclass(frozen=True, slots=True)
class AtRiskCustomer:
    """Hook for the need-prediction issue: a customer likely to need help or to leave."""

    name: str
    reason: str
    score: float | None = None


@dataclass(frozen=True, slots=True)
class StaffingOutlook:
    """Expected customers needing help tomorrow and in the next 7 days, with an interval."""

    customers: int
    level: float
    day_expected: float
    day_low: int
    day_high: int
    week_expected: float
    week_low: int
    week_high: int


@dataclass(frozen=True, slots=True)
class NeedsOutlook:
    """From the need-prediction model: who is likely to need help, and how many will."""

    at_risk: tuple[AtRiskCustomer, ...] = ()
    staffing: StaffingOutlook | None = None


@dataclass(frozen=True, slots=True, eq=False)
class Digest:
    kind: PeriodKind
    timezone: str
    generated_at: datetime
    period: Period
    previous_period: Period
    current: PeriodFigures
    previous: PeriodFigures
    changes: dict[str, Change]
    control: ControlChart
    spikes: Spikes
    chart: ChartData
    first_response_target_minutes: float
    business_hours: bool
    themes: tuple[Theme, ...] = ()
    at_risk: tuple[AtRiskCustomer, ...] | None = None
    staffing: StaffingOutlook | None = None

    def to_json(self) -> dict[str, Any]:
        """Every figure as JSON-ready data (dates ISO, NaN as null)."""
        result: dict[str, Any] = _jsonable(self)
        return result


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, ZoneInfo):
        return value.key
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if is_dataclass(value) and not isinstance(value, type):
        out = {f.name: _jsonable(getattr(value, f.name)) for f in fields(value)}
        if isinstance(value, Spikes):
            out["flagged"] = [c or "all" for c, _ in value.flagged]
        return out
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value
