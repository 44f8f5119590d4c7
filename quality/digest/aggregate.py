"""Pure aggregation: the fetched data of two periods and the daily series -> a Digest.

CPU only, no database and no I/O (call :func:`aggregate` off the event loop); testable with
hand-made :class:`RawDigest` values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

from quality import fetch
from quality.digest.figures import (
    AgentFigures,
    AtRiskCustomer,
    ChartData,
    ControlChart,
    DayRating,
    Digest,
    PeriodFigures,
    Spikes,
    StaffingOutlook,
    Volume,
)
from quality.digest.period import Period
from quality.digest.themes import Masker, Summariser, themes
from quality.fetch import NEGATIVE, UNCATEGORISED, UNKNOWN_SENTIMENT, CustomerText, PeriodData
from quality.stats import (
    BusinessHours,
    business_seconds,
    change,
    control_limits,
    csat,
    durations,
    is_outside,
    spike_tests_by_group,
)

#: Days of history behind the control limits and the complaint-spike baseline.
BASELINE_DAYS = 28
#: Days shown in the chart.
CHART_DAYS = 28
#: Categories drawn separately in the chart (the rest become "other").
CHART_CATEGORIES = 7
OTHER = "other"


@dataclass(frozen=True, slots=True)
class DigestConfig:
    """What the digest needs from the settings."""

    tz: ZoneInfo
    hours: BusinessHours
    first_response_target_minutes: float = 60.0
    summarise: Summariser | None = None
    mask: Masker | None = None
    with_themes: bool = True

    @classmethod
    def from_settings(
        cls,
        settings: Any,
        *,
        summarise: Summariser | None = None,
        mask: Masker | None = None,
    ) -> DigestConfig:
        """From a :class:`settings.Settings` (``tz``, ``business_hours``, target minutes)."""
        tz: ZoneInfo = settings.tz
        return cls(
            tz=tz,
            hours=BusinessHours.parse(settings.business_hours, tz),
            first_response_target_minutes=float(settings.first_response_target_minutes),
            summarise=summarise,
            mask=mask,
        )


@dataclass(frozen=True, slots=True, eq=False)
class RawDigest:
    """Everything :func:`build_digest` fetched; :func:`aggregate` turns it into a Digest."""

    period: Period
    previous_period: Period
    current: PeriodData
    previous: PeriodData
    daily: fetch.DailySeries
    agent_names: dict[int, str]
    texts: tuple[CustomerText, ...]
    now: datetime


HEADLINES = (
    "tickets",
    "customer_messages",
    "self_served",
    "escalated",
    "reopened",
    "csat_count",
    "csat_mean",
    "csat_satisfied_share",
    "first_response_median",
    "first_response_p90",
    "resolution_median",
    "breaches",
)


def _headline(figures: PeriodFigures) -> dict[str, float | None]:
    return {
        "tickets": figures.volume.tickets,
        "customer_messages": figures.volume.customer_messages,
        "self_served": figures.volume.self_served,
        "escalated": figures.volume.escalated,
        "reopened": figures.volume.reopened,
        "csat_count": figures.csat.count,
        "csat_mean": figures.csat.mean,
        "csat_satisfied_share": figures.csat.satisfied_share,
        "first_response_median": figures.first_response.median,
        "first_response_p90": figures.first_response.p90,
        "resolution_median": figures.resolution.median,
        "breaches": figures.breaches,
    }


def _sorted_counts(counts: Mapping[str, int]) -> dict[str, int]:
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def period_figures(
    data: PeriodData,
    *,
    hours: BusinessHours,
    target_minutes: float,
    as_of: datetime,
    names: Mapping[int, str],
) -> PeriodFigures:
    """Pure: the figures of one period from its fetched aggregates."""
    times = data.times
    scores = np.repeat(np.arange(1, 6), np.asarray(data.rating_counts, dtype=np.int64))
    first_response = np.where(
        np.isnan(times.first_response),
        np.nan,
        np.maximum(times.first_response - times.created, 0.0),
    )
    # Business-time waits: answered tickets up to the answer; tickets resolved without a reply
    # up to the resolution; the others up to now.
    resolved = times.resolved if times.resolved is not None else np.full_like(times.created, np.nan)
    stopped = np.where(
        np.isnan(resolved), as_of.timestamp(), np.minimum(resolved, as_of.timestamp())
    )
    waited_until = np.where(np.isnan(times.first_response), stopped, times.first_response)
    waits = business_seconds(times.created, waited_until, hours)
    with np.errstate(invalid="ignore"):
        breach_count = int(np.count_nonzero(waits > target_minutes * 60.0))
    answered = int(np.count_nonzero(~np.isnan(times.first_response)))
    closed_unanswered = int(np.count_nonzero(np.isnan(times.first_response) & ~np.isnan(resolved)))

    res = data.resolutions
    volume = Volume(
        tickets=data.tickets.total,
        customer_messages=data.messages.customer,
        agent_messages=data.messages.agent,
        bot_messages=data.messages.bot,
        tickets_by_category=_sorted_counts(data.tickets.by_category),
        messages_by_category=_sorted_counts(data.messages.by_category),
        messages_by_sentiment=_sorted_counts(data.messages.by_sentiment),
        tickets_by_sentiment=_sorted_counts(data.tickets.by_sentiment),
        self_served=data.tickets.self_served,
        escalated=data.tickets.escalated,
        reopened=data.tickets.reopened,
        resolved=int(res.seconds.size),
        resolved_self_served=sum(1 for r in res.resolution if r == "self_served"),
    )

    agent_ids = (
        set(int(a) for a in res.assignee if a >= 0)
        | set(int(a) for a in times.assignee if a >= 0)
        | set(data.agent_ratings)
    )
    agents: list[AgentFigures] = []
    for agent_id in agent_ids:
        mine = (times.assignee == agent_id) & ~np.isnan(first_response)
        ratings = data.agent_ratings.get(agent_id)
        agents.append(
            AgentFigures(
                agent_id=agent_id,
                name=names.get(agent_id, f"agent {agent_id}"),
                handled=int(np.count_nonzero(res.assignee == agent_id)),
                median_first_response=(
                    float(np.median(first_response[mine])) if mine.any() else None
                ),
                ratings=ratings.count if ratings else 0,
                mean_rating=ratings.total / ratings.count if ratings and ratings.count else None,
            )
        )
    agents.sort(key=lambda a: (-a.handled, -a.ratings, a.name, a.agent_id))
    return PeriodFigures(
        volume=volume,
        csat=csat(scores),
        first_response=durations(first_response),
        resolution=durations(res.seconds),
        answered=answered,
        unanswered=int(times.created.size) - answered - closed_unanswered,
        breaches=breach_count,
        agents=tuple(agents),
    )


def _control(raw: RawDigest) -> ControlChart:
    """Centre and sigma from the 28 days before the period; each chart day judged against them."""
    daily = raw.daily
    ratings = daily.ratings.astype(np.float64)
    counts = daily.ratings.sum(axis=1)
    scores = np.arange(1, 6, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = (ratings @ scores) / counts
        sq = (ratings @ (scores**2) - counts * means**2) / (counts - 1)
    stds = np.sqrt(np.clip(np.nan_to_num(sq), 0.0, None))
    base = [i for i, d in enumerate(daily.days) if d < raw.period.first][-BASELINE_DAYS:]
    limits = control_limits(means[base], counts[base], stds[base])
    centre, sigma = limits.centre, limits.sigma
    days: list[DayRating] = []
    for i, day in enumerate(daily.days[-CHART_DAYS:], start=len(daily.days) - CHART_DAYS):
        if i < 0:
            continue
        n = int(counts[i])
        mean = float(means[i]) if n else None
        lower = upper = None
        outside = False
        if centre is not None and sigma is not None and n:
            half = 3.0 * sigma / math.sqrt(n)
            lower, upper = centre - half, centre + half
            outside = is_outside(float(means[i]), n, centre, sigma)
        days.append(DayRating(day, n, mean, lower, upper, outside))
    flagged = tuple(d for d in days if d.outside and raw.period.first <= d.day <= raw.period.last)
    return ControlChart(centre, sigma, int(counts[base].sum()), tuple(days), flagged)


def _spikes(raw: RawDigest) -> Spikes:
    """This period's negative customer messages against the 28 days before it."""
    today = raw.current.messages.negative_by_category
    baseline: dict[str, tuple[int, int]] = {}
    base_idx = [i for i, d in enumerate(raw.daily.days) if d < raw.period.first][-BASELINE_DAYS:]
    for (category, sentiment), series in raw.daily.messages.items():
        if sentiment == UNKNOWN_SENTIMENT:
            continue
        n = int(series[base_idx].sum())
        neg, total = baseline.get(category, (0, 0))
        baseline[category] = (neg + (n if sentiment == NEGATIVE else 0), total + n)
    overall_today = (sum(k for k, _ in today.values()), sum(n for _, n in today.values()))
    overall_base = (sum(k for k, _ in baseline.values()), sum(n for _, n in baseline.values()))
    overall = spike_tests_by_group({"all": overall_today}, {"all": overall_base})["all"]
    by_category = spike_tests_by_group(today, baseline)
    return Spikes(overall, dict(sorted(by_category.items())))


def _chart(raw: RawDigest) -> ChartData:
    daily = raw.daily
    days = daily.days[-CHART_DAYS:]
    offset = len(daily.days) - len(days)
    per_category: dict[str, NDArray[np.int64]] = {}
    for (category, _), series in daily.messages.items():
        acc = per_category.setdefault(category, np.zeros(len(days), dtype=np.int64))
        acc += series[offset:]
    ranked = sorted(per_category, key=lambda c: (-int(per_category[c].sum()), c))
    shown = [c for c in ranked if c not in (OTHER, UNCATEGORISED)][:CHART_CATEGORIES]
    rest = [c for c in ranked if c not in shown]
    columns = [per_category[c] for c in shown]
    labels = list(shown)
    if rest:
        columns.append(np.sum([per_category[c] for c in rest], axis=0))
        labels.append(rest[0] if len(rest) == 1 else OTHER)
    matrix = np.stack(columns, axis=1) if columns else np.zeros((len(days), 0), dtype=np.int64)
    return ChartData(tuple(days), tuple(labels), matrix.astype(np.int64))


def aggregate(
    raw: RawDigest,
    config: DigestConfig,
    *,
    at_risk: Sequence[AtRiskCustomer] | None = None,
    staffing: StaffingOutlook | None = None,
) -> Digest:
    """Pure: the Digest from fetched data (CPU only; call it off the event loop)."""
    target = config.first_response_target_minutes
    current = period_figures(
        raw.current,
        hours=config.hours,
        target_minutes=target,
        as_of=raw.now,
        names=raw.agent_names,
    )
    previous = period_figures(
        raw.previous,
        hours=config.hours,
        target_minutes=target,
        as_of=raw.now,
        names=raw.agent_names,
    )
    now_h, prev_h = _headline(current), _headline(previous)
    changes = {k: change(now_h[k], prev_h[k]) for k in HEADLINES}
    found = (
        themes(raw.texts, summarise=config.summarise, mask=config.mask)
        if config.with_themes
        else []
    )
    return Digest(
        kind=raw.period.kind,
        timezone=config.tz.key,
        generated_at=raw.now,
        period=raw.period,
        previous_period=raw.previous_period,
        current=current,
        previous=previous,
        changes=changes,
        control=_control(raw),
        spikes=_spikes(raw),
        chart=_chart(raw),
        first_response_target_minutes=target,
        business_hours=not config.hours.always_open,
        themes=tuple(found),
        at_risk=tuple(at_risk) if at_risk is not None else None,
        staffing=staffing,
    )
