"""Service-quality digests: fetch (SQL aggregates) -> pure aggregation -> Digest -> text + chart.

* :func:`build_digest` fetches with :mod:`quality.fetch` and calls :func:`aggregate`, a pure
  function of the fetched data (testable without a database).
* :func:`render_text` gives one Telegram HTML message that reads well on a phone;
  :meth:`Digest.to_json` gives every figure; :func:`quality.chart.render_chart` the PNG.
* :func:`bot.digests.produce` does all of it, off the event loop where the work is CPU-bound.

Periods are local days in the configured time zone: ``day`` is one day, ``week`` the Monday to
Sunday week containing the given day, ``range`` the ``n`` days ending with it. A period that
contains "now" ends at now ("so far"), and the period before it is cut at the same local time.
"""

from __future__ import annotations

import asyncio
import html
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, is_dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray
from sqlalchemy.ext.asyncio import AsyncSession

from quality import fetch
from quality.fetch import NEGATIVE, UNCATEGORISED, UNKNOWN_SENTIMENT, CustomerText, PeriodData
from quality.stats import (
    BusinessHours,
    Change,
    CsatStats,
    DurationStats,
    SpikeResult,
    change,
    control_limits,
    csat,
    durations,
    is_outside,
    spike_tests_by_group,
)

FloatArray = NDArray[np.float64]

#: Days of history behind the control limits and the complaint-spike baseline.
BASELINE_DAYS = 28
#: Days shown in the chart.
CHART_DAYS = 28
#: Categories drawn separately in the chart (the rest become "other").
CHART_CATEGORIES = 7
OTHER = "other"
TELEGRAM_TEXT_LIMIT = 4096


class PeriodKind(StrEnum):
    DAY = "day"
    WEEK = "week"
    RANGE = "range"


# --------------------------------------------------------------------------------------
# Periods
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Period:
    """Local days ``first .. last`` in ``tz`` as UTC instants ``[start, end)``.

    ``partial`` is True when the period was cut at "now" (``end`` before the last midnight).
    """

    kind: PeriodKind
    first: date
    last: date
    start: datetime
    end: datetime
    partial: bool

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1


def make_period(
    kind: PeriodKind | str, day: date, tz: ZoneInfo, *, now: datetime, days: int = 1
) -> Period:
    """The period of ``kind`` containing (``day``/``week``) or ending with (``range``) ``day``."""
    kind = PeriodKind(kind)
    if kind == PeriodKind.DAY:
        first = last = day
    elif kind == PeriodKind.WEEK:
        first = day - timedelta(days=day.weekday())
        last = first + timedelta(days=6)
    else:
        if days < 1:
            raise ValueError("a range has at least one day")
        first, last = day - timedelta(days=days - 1), day
    start = fetch.local_midnight(first, tz)
    full_end = fetch.local_midnight(last + timedelta(days=1), tz)
    end = min(full_end, max(now.astimezone(UTC), start))
    return Period(kind, first, last, start, end, end < full_end)


def previous_period(period: Period, tz: ZoneInfo) -> Period:
    """The period just before, as long in local days, cut at the same local time when partial."""
    shift = timedelta(days=period.days)
    first, last = period.first - shift, period.last - shift
    start = fetch.local_midnight(first, tz)
    full_end = fetch.local_midnight(last + timedelta(days=1), tz)
    if not period.partial:
        return Period(period.kind, first, last, start, full_end, False)
    local_end = period.end.astimezone(tz)
    cut = datetime.combine(local_end.date() - shift, local_end.timetz().replace(tzinfo=None))
    end = min(full_end, max(cut.replace(tzinfo=tz).astimezone(UTC), start))
    return Period(period.kind, first, last, start, end, True)


# --------------------------------------------------------------------------------------
# Business time, vectorised
# --------------------------------------------------------------------------------------


def business_seconds(starts: FloatArray, ends: FloatArray, hours: BusinessHours) -> FloatArray:
    """Business seconds between epoch instants ``starts[i]`` and ``ends[i]`` (NaN stays NaN).

    The same as :func:`quality.stats.business_seconds_between` element-wise, but with one list
    of opening intervals and ``searchsorted`` instead of a Python loop per ticket.
    """
    starts = np.asarray(starts, dtype=np.float64)
    ends = np.asarray(ends, dtype=np.float64)
    out = np.full(starts.shape, np.nan)
    valid = ~(np.isnan(starts) | np.isnan(ends))
    if not valid.any():
        return out
    if hours.always_open:
        out[valid] = np.maximum(ends[valid] - starts[valid], 0.0)
        return out
    lo = datetime.fromtimestamp(float(starts[valid].min()), UTC).astimezone(hours.tz).date()
    hi = datetime.fromtimestamp(float(ends[valid].max()), UTC).astimezone(hours.tz).date()
    spans = hours.intervals(lo - timedelta(days=1), hi + timedelta(days=1))
    if not spans:
        out[valid] = 0.0
        return out
    opens = np.array([a.timestamp() for a, _ in spans])
    closes = np.array([b.timestamp() for _, b in spans])
    before = np.concatenate(([0.0], np.cumsum(closes - opens)))

    def cumulative(t: FloatArray) -> FloatArray:
        i = np.searchsorted(opens, t, side="right") - 1
        j = np.clip(i, 0, None)
        inside = np.clip(t - opens[j], 0.0, closes[j] - opens[j])
        return np.where(i < 0, 0.0, before[j] + inside)

    s, e = starts[valid], ends[valid]
    out[valid] = np.maximum(cumulative(e) - cumulative(s), 0.0)
    return out


# --------------------------------------------------------------------------------------
# Themes: key phrases and masked quotes per category
# --------------------------------------------------------------------------------------


class TicketSummaryLike(Protocol):
    @property
    def summary(self) -> str: ...

    @property
    def key_phrases(self) -> Sequence[str]: ...


Summariser = Callable[[Sequence[str]], TicketSummaryLike]
Masker = Callable[[str, Sequence[Any] | None], str]

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_CARD = re.compile(r"\b(?:\d[ -]?){12,18}\d\b")
_PHONE = re.compile(r"(?<![\w])\+?\d[\d ()./-]{6,}\d(?![\w])")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){3,7}(?: ?[A-Z0-9]{1,3})?\b")


def mask_personal_data(text: str, entities: Sequence[Any] | None = None) -> str:
    """Replace e-mail addresses, card and account numbers and phone numbers with placeholders."""
    text = _EMAIL.sub("[email]", text)
    text = _IBAN.sub("[account]", text)
    text = _CARD.sub("[card]", text)
    return _PHONE.sub("[phone]", text)


@dataclass(frozen=True, slots=True)
class Theme:
    """What customers wrote about in one category."""

    category: str
    messages: int
    key_phrases: tuple[str, ...]
    quotes: tuple[str, ...]


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0]
    return (cut or text[: limit - 1]) + "…"


def themes(
    texts: Sequence[CustomerText],
    *,
    summarise: Summariser | None = None,
    mask: Masker | None = None,
    max_categories: int = 3,
    max_phrases: int = 5,
    max_quotes: int = 3,
    quote_length: int = 140,
) -> list[Theme]:
    """Per category (most messages first): key phrases and two or three representative quotes.

    ``summarise`` (e.g. ``nlp.analysis.Analyzer.summarize_ticket``) gives the key phrases of a
    category's texts; a quote is a customer text that contains the most key phrases (one per
    ticket, of readable length). Without a summariser the quotes are the readable texts of
    distinct tickets, latest first. Every quote is masked by ``mask`` (given the message's
    entities) and then by :func:`mask_personal_data`.
    """
    by_category: dict[str, list[CustomerText]] = {}
    for item in texts:
        if item.text.strip():
            by_category.setdefault(item.category, []).append(item)
    ordered = sorted(by_category.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    result: list[Theme] = []
    for category, items in ordered[:max_categories]:
        phrases: tuple[str, ...] = ()
        if summarise is not None:
            summary = summarise([i.text for i in items])
            phrases = tuple(p for p in summary.key_phrases if p.strip())[:max_phrases]
        lowered = [p.lower() for p in phrases]

        def score(item: CustomerText, lowered: list[str] = lowered) -> tuple[int, int]:
            text = item.text.lower()
            hits = sum(1 for p in lowered if p in text)
            readable = 1 if 20 <= len(item.text) <= 300 else 0
            return hits, readable

        ranked = sorted(enumerate(items), key=lambda iv: (*(-s for s in score(iv[1])), iv[0]))
        quotes: list[str] = []
        seen_tickets: set[int | None] = set()
        for _, item in ranked:
            if len(quotes) >= max_quotes:
                break
            if item.ticket_id is not None and item.ticket_id in seen_tickets:
                continue
            # Full placeholders first (a digest needs no part of an address or number), then the
            # entity masking of nlp/ for what the patterns do not know.
            masked = mask_personal_data(item.text)
            masked = mask(masked, item.entities) if mask is not None else masked
            quote = _shorten(masked, quote_length)
            if len(quote) < 3 or quote in quotes:
                continue
            seen_tickets.add(item.ticket_id)
            quotes.append(quote)
        result.append(Theme(category, len(items), phrases, tuple(quotes)))
    return result


# --------------------------------------------------------------------------------------
# The digest
# --------------------------------------------------------------------------------------


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


async def fetch_raw(
    session: AsyncSession, period: Period, config: DigestConfig, *, now: datetime
) -> RawDigest:
    """All the SQL of a digest: two periods, the daily series, agent names and texts."""
    prev = previous_period(period, config.tz)
    current = await fetch.period_data(session, start=period.start, end=period.end)
    previous = await fetch.period_data(session, start=prev.start, end=prev.end)
    first = min(
        period.first - timedelta(days=BASELINE_DAYS), period.last - timedelta(days=CHART_DAYS - 1)
    )
    daily = await fetch.daily_series(
        session, first=first, last=period.last, tz=config.tz, end=period.end
    )
    ids: list[int] = []
    for data in (current, previous):
        ids.extend(int(a) for a in data.resolutions.assignee)
        ids.extend(int(a) for a in data.times.assignee)
        ids.extend(data.agent_ratings)
    names = await fetch.agent_names(session, ids=ids)
    texts: list[CustomerText] = []
    if config.with_themes:
        texts = await fetch.customer_texts(session, start=period.start, end=period.end)
    return RawDigest(period, prev, current, previous, daily, names, tuple(texts), now)


async def build_digest(
    session: AsyncSession,
    *,
    kind: PeriodKind | str,
    day: date,
    config: DigestConfig,
    now: datetime,
    days: int = 1,
    needs: NeedsOutlook | None = None,
) -> Digest:
    """Fetch with SQL aggregates, then aggregate (off the event loop) into a Digest."""
    period = make_period(kind, day, config.tz, now=now, days=days)
    raw = await fetch_raw(session, period, config, now=now)
    return await asyncio.to_thread(
        aggregate,
        raw,
        config,
        at_risk=needs.at_risk if needs is not None else None,
        staffing=needs.staffing if needs is not None else None,
    )


# --------------------------------------------------------------------------------------
# Text (Telegram HTML)
# --------------------------------------------------------------------------------------


def esc(value: object) -> str:
    return html.escape(str(value), quote=False)


def format_seconds(seconds: float | None) -> str:
    """Short human duration: 45s, 12m, 3h 05m, 2d 4h; a dash when unknown."""
    if seconds is None or math.isnan(seconds):
        return "–"
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    minutes = s // 60
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    d, hours = divmod(hours, 24)
    return f"{d}d {hours}h"


def _trend(c: Change, *, points: bool = False) -> str:
    """``▲ 12%`` / ``▼ 3 pts`` / ``= `` / empty when there is nothing to compare."""
    if c.delta is None:
        return ""
    if points:
        value = c.delta * 100
        if abs(value) < 0.5:
            return " (=)"
        return f" ({'▲' if value > 0 else '▼'} {abs(value):.0f} pts)"
    if c.relative is None:
        return f" (▲ from {c.previous:g})" if c.delta > 0 else ""
    value = c.relative * 100
    if abs(value) < 0.5:
        return " (=)"
    return f" ({'▲' if value > 0 else '▼'} {abs(value):.0f}%)"


def _mean_trend(c: Change) -> str:
    if c.delta is None:
        return ""
    if abs(c.delta) < 0.005:
        return " (=)"
    return f" ({'▲' if c.delta > 0 else '▼'} {abs(c.delta):.2f})"


def period_label(period: Period, tz: ZoneInfo) -> str:
    """``Tue 3 Mar 2026`` or ``2 Mar – 8 Mar 2026``, with ``until 14:05`` when cut at a time."""
    if period.first == period.last:
        label = f"{period.first:%a %-d %b %Y}"
    else:
        label = f"{period.first:%-d %b} – {period.last:%-d %b %Y}"
    if period.partial:
        label += f" until {period.end.astimezone(tz):%H:%M}"
    return label


def _title(digest: Digest) -> str:
    p = digest.period
    tz = ZoneInfo(digest.timezone)
    if p.kind == PeriodKind.DAY:
        name, span = "Daily digest", f"{p.first:%a %-d %b %Y}"
    elif p.kind == PeriodKind.WEEK:
        name, span = "Weekly digest", f"{p.first:%-d %b} – {p.last:%-d %b %Y}"
    else:
        name, span = f"Last {p.days} days", f"{p.first:%-d %b} – {p.last:%-d %b %Y}"
    so_far = f", so far (until {p.end.astimezone(tz):%H:%M})" if p.partial else ""
    return f"📊 <b>{name}</b> · {esc(span)}{esc(so_far)}\n<i>{esc(digest.timezone)}</i>"


def _share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "–"


def _top(counts: Mapping[str, int], limit: int = 5) -> str:
    items = list(counts.items())
    shown = [f"{esc(k)} {v}" for k, v in items[:limit]]
    if len(items) > limit:
        shown.append(f"+{len(items) - limit} more")
    return " · ".join(shown)


def _volume_lines(d: Digest) -> list[str]:
    v, ch = d.current.volume, d.changes
    lines = [
        "<b>Volume</b>",
        f"🎫 New tickets: <b>{v.tickets}</b>{_trend(ch['tickets'])}",
        f"💬 Customer messages: <b>{v.customer_messages}</b>{_trend(ch['customer_messages'])}",
        f"🤖 Self-served: {v.self_served} · 🙋 escalated: {v.escalated}"
        f" · 🔄 reopened: {v.reopened}",
    ]
    if v.messages_by_category:
        lines.append(f"🗂 {_top(v.messages_by_category)}")
    for label, counts in (("Mood", v.messages_by_sentiment), ("Tickets", v.tickets_by_sentiment)):
        analysed = {k: n for k, n in counts.items() if k != UNKNOWN_SENTIMENT}
        total = sum(analysed.values())
        if total:
            parts = [f"{esc(k)} {_share(n, total)}" for k, n in analysed.items()]
            lines.append(f"🌡 {label}: {' · '.join(parts)}")
    return lines


def _csat_lines(d: Digest) -> list[str]:
    c, ch = d.current.csat, d.changes
    lines = ["<b>Satisfaction</b>"]
    if c.count == 0 or c.mean is None:
        lines.append("⭐ No ratings in this period.")
        return lines
    ci = ""
    if c.ci_low is not None and c.ci_high is not None:
        ci = f" (95% CI {c.ci_low:.2f}–{c.ci_high:.2f})"
    sd = f" · sd {c.std:.2f}" if c.std is not None else ""
    lines.append(f"⭐ Mean <b>{c.mean:.2f}</b>{_mean_trend(ch['csat_mean'])}{ci}")
    lines.append(f"Median {c.median:g}{sd} · {c.count} ratings{_trend(ch['csat_count'])}")
    share = c.satisfied_share or 0.0
    lines.append(
        f"😊 Rated 4–5: <b>{share * 100:.0f}%</b>{_trend(ch['csat_satisfied_share'], points=True)}"
    )
    lines.append(" · ".join(f"{i + 1}★ {n}" for i, n in enumerate(c.distribution)))
    return lines


def _response_lines(d: Digest) -> list[str]:
    cur, ch = d.current, d.changes
    fr, rs = cur.first_response, cur.resolution
    lines = ["<b>Response</b>"]
    if fr.count:
        lines.append(
            f"⏱ First response: median <b>{format_seconds(fr.median)}</b>"
            f"{_trend(ch['first_response_median'])} · mean {format_seconds(fr.mean)}"
            f" · p90 {format_seconds(fr.p90)}"
        )
    else:
        lines.append("⏱ First response: no answered tickets yet.")
    hours = "business hours" if d.business_hours else "round the clock"
    target = f"{d.first_response_target_minutes:g} min"
    total = cur.answered + cur.unanswered
    lines.append(
        f"🎯 Over the {target} target ({hours}): <b>{cur.breaches}</b> of {total}"
        f"{_trend(ch['breaches'])}"
    )
    if cur.unanswered:
        lines.append(f"⏳ Still waiting for a first answer: {cur.unanswered}")
    if rs.count:
        lines.append(
            f"✅ Resolved: {rs.count} · median {format_seconds(rs.median)}"
            f"{_trend(ch['resolution_median'])} · p90 {format_seconds(rs.p90)}"
        )
    return lines


def _agent_lines(d: Digest, limit: int = 8) -> list[str]:
    agents = d.current.agents
    if not agents:
        return []
    lines = ["<b>Agents</b>"]
    for a in agents[:limit]:
        rating = f" · ⭐ {a.mean_rating:.1f} ({a.ratings})" if a.mean_rating is not None else ""
        lines.append(
            f"• {esc(a.name)}: {a.handled} resolved · first reply "
            f"{format_seconds(a.median_first_response)}{rating}"
        )
    if len(agents) > limit:
        lines.append(f"… and {len(agents) - limit} more")
    return lines


def _alert_lines(d: Digest) -> list[str]:
    lines: list[str] = []
    cc = d.control
    for day in cc.flagged:
        if day.mean is None or day.lower is None or day.upper is None:
            continue
        direction = "below" if day.mean < day.lower else "above"
        lines.append(
            f"⚠️ {day.day:%a %-d %b}: mean rating {day.mean:.2f} is {direction} the usual range "
            f"({day.lower:.2f}–{day.upper:.2f}, {day.count} ratings)"
        )
    flagged = list(d.spikes.flagged)
    for category, r in flagged[:MAX_SPIKE_LINES]:
        where = f"in <b>{esc(category)}</b>" if category else "overall"
        lines.append(
            f"🚨 Complaint spike {where}: {r.k} of {r.n} messages negative "
            f"(usually {r.p0 * 100:.0f}%, p = {r.p_value:.1g})"
        )
    if len(flagged) > MAX_SPIKE_LINES:
        lines.append(f"🚨 … and {len(flagged) - MAX_SPIKE_LINES} more categories with a spike")
    return ["<b>Alerts</b>", *lines] if lines else []


MAX_SPIKE_LINES = 5


def _theme_lines(d: Digest, quotes: bool = True) -> list[str]:
    if not d.themes:
        return []
    lines = ["<b>What customers say</b>"]
    for t in d.themes:
        phrases = f" — {esc(', '.join(t.key_phrases))}" if t.key_phrases else ""
        lines.append(f"🏷 <b>{esc(t.category)}</b> ({t.messages}){phrases}")
        if quotes:
            lines.extend(f"  “<i>{esc(q)}</i>”" for q in t.quotes)
    return lines


def _at_risk_lines(d: Digest, limit: int = 5) -> list[str]:
    lines: list[str] = []
    if d.staffing is not None:
        f = d.staffing
        lines += [
            "<b>Expected demand</b>",
            f"🔮 Tomorrow: <b>{f.day_expected:.0f}</b> customers "
            f"({f.day_low}–{f.day_high}, {f.level:.0%} interval)",
            f"🔮 Next 7 days: <b>{f.week_expected:.0f}</b> customers ({f.week_low}–{f.week_high})",
        ]
    if d.at_risk:
        if lines:
            lines.append("")
        lines.append("<b>Customers likely to need help</b>")
        for c in d.at_risk[:limit]:
            chance = f" ({c.score:.0%})" if c.score is not None else ""
            lines.append(f"• {esc(c.name)}{chance}: {esc(c.reason)}")
    return lines


def telegram_length(text: str) -> int:
    """Telegram counts UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def render_text(digest: Digest, limit: int = TELEGRAM_TEXT_LIMIT) -> str:
    """One Telegram HTML message; optional sections are shortened until it fits ``limit``."""
    prev = digest.previous_period
    compared = f"<i>Compared with {esc(period_label(prev, ZoneInfo(digest.timezone)))}</i>"
    core = [_title(digest), compared]
    variants = (
        (True, 8, True),
        (False, 8, True),
        (False, 3, True),
        (False, 3, False),
    )
    text = ""
    for quotes, agents, risk in variants:
        sections = [
            core,
            _alert_lines(digest),
            _volume_lines(digest),
            _csat_lines(digest),
            _response_lines(digest),
            _agent_lines(digest, agents),
            _theme_lines(digest, quotes),
            _at_risk_lines(digest) if risk else [],
        ]
        text = "\n\n".join("\n".join(s) for s in sections if s)
        if telegram_length(text) <= limit:
            return text
    return text[: limit - 1] + "…"  # not reached with the section limits above


def render_stats_text(digest: Digest) -> str:
    """The short answer to ``/stats``: headline figures of the last N days against the N before."""
    sections = [
        [
            _title(digest),
            "<i>Compared with "
            f"{esc(period_label(digest.previous_period, ZoneInfo(digest.timezone)))}</i>",
        ],
        _volume_lines(digest),
        _csat_lines(digest),
        _response_lines(digest),
        _agent_lines(digest, 5),
    ]
    return "\n\n".join("\n".join(s) for s in sections if s)
