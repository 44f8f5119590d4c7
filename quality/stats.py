"""Pure statistics for the service-quality feature.

Everything here is a pure function over NumPy arrays (SciPy where it helps) or over
aware datetimes: no database, no Telegram, no I/O. Results are frozen dataclasses.

Contents
--------
* CSAT ratings: :func:`csat` (mean, median, std, distribution, t-interval).
* Durations (e.g. first-response time): :func:`durations`, :func:`breaches`.
* Business hours: :class:`BusinessHours`, :func:`business_seconds_between` and its vectorised
  form :func:`business_seconds`.
* Period-over-period comparison: :func:`change`.
* Control chart of the daily mean rating: :func:`rating_control_limits`,
  :func:`control_limits`, :func:`is_outside`.
* Complaint spikes: :func:`binomial_tail`, :func:`spike_test`, :func:`spike_tests_by_group`.
* Counting for charts: :func:`counts_by`, :func:`daily_matrix`.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats as sps

__all__ = [
    "CONTROL_SIGMAS",
    "BusinessHours",
    "Change",
    "ControlLimits",
    "CsatStats",
    "DurationStats",
    "OpeningWindow",
    "SpikeResult",
    "binomial_tail",
    "breaches",
    "business_seconds",
    "business_seconds_between",
    "change",
    "control_limits",
    "counts_by",
    "csat",
    "daily_matrix",
    "durations",
    "is_outside",
    "rating_control_limits",
    "spike_test",
    "spike_tests_by_group",
]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

#: Width of the control-chart limits, in standard errors.
CONTROL_SIGMAS = 3.0

_MINUTES_PER_DAY = 24 * 60


# --------------------------------------------------------------------------------------
# CSAT
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CsatStats:
    """Summary of CSAT ratings (integers 1..5).

    ``distribution[i]`` is the number of ratings equal to ``i + 1``. ``std`` is the
    sample standard deviation (ddof=1); ``ci_low``/``ci_high`` bound the 95 % Student-t
    confidence interval of the mean (not clipped to [1, 5]).
    """

    count: int
    mean: float | None
    median: float | None
    std: float | None
    distribution: tuple[int, int, int, int, int]
    satisfied_share: float | None
    ci_low: float | None
    ci_high: float | None


def _ratings(scores: ArrayLike) -> IntArray:
    """Validate ``scores`` as a 1-D array of integers 1..5 and return it as int64.

    Integral floats (``4.0``) are accepted; booleans, strings, NaN, fractions and values
    outside 1..5 raise :class:`ValueError`.
    """
    arr = np.asarray(scores)
    if arr.ndim != 1:
        raise ValueError(f"ratings must be a 1-D sequence, got {arr.ndim}-D")
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.dtype.kind not in "iuf":
        raise ValueError(f"ratings must be numbers, got dtype {arr.dtype}")
    values = arr.astype(np.float64)
    if not np.all(np.isfinite(values)) or not np.all(values == np.round(values)):
        raise ValueError("ratings must be whole numbers")
    if values.min() < 1 or values.max() > 5:
        raise ValueError("ratings must be between 1 and 5")
    return values.astype(np.int64)


def _t_interval(mean: float, std: float, n: int, level: float) -> tuple[float, float]:
    """Student-t interval ``mean ± t_{(1+level)/2, n-1} · std / sqrt(n)`` (needs n >= 2)."""
    if std == 0.0:
        return mean, mean
    half = float(sps.t.ppf((1.0 + level) / 2.0, n - 1)) * std / math.sqrt(n)
    return mean - half, mean + half


def csat(scores: ArrayLike, *, level: float = 0.95) -> CsatStats:
    """Summarise CSAT ratings (integers 1..5).

    * ``std``: sample standard deviation (ddof=1), ``None`` when fewer than 2 ratings.
    * ``satisfied_share``: share of ratings 4 or 5, ``None`` when there are none.
    * ``ci_low``/``ci_high``: ``mean ± t_{0.975, n-1} · std / sqrt(n)`` (for the default
      ``level=0.95``), ``None`` when fewer than 2 ratings; collapses to the mean when all
      ratings are equal.

    Empty input gives ``count=0``, all-zero distribution and ``None`` elsewhere.
    Raises :class:`ValueError` for anything that is not a whole number in 1..5.
    """
    r = _ratings(scores)
    n = int(r.size)
    counts = np.bincount(r, minlength=6)[1:6]
    distribution = (
        int(counts[0]),
        int(counts[1]),
        int(counts[2]),
        int(counts[3]),
        int(counts[4]),
    )
    if n == 0:
        return CsatStats(0, None, None, None, distribution, None, None, None)
    mean = float(r.mean())
    median = float(np.median(r))
    satisfied = float(counts[3] + counts[4]) / n
    if n < 2:
        return CsatStats(n, mean, median, None, distribution, satisfied, None, None)
    std = float(r.std(ddof=1))
    ci_low, ci_high = _t_interval(mean, std, n, level)
    return CsatStats(n, mean, median, std, distribution, satisfied, ci_low, ci_high)


# --------------------------------------------------------------------------------------
# Durations
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DurationStats:
    """Summary of durations in seconds; all ``None`` when there is no value."""

    count: int
    mean: float | None
    median: float | None
    p90: float | None


def _durations_array(seconds: ArrayLike) -> FloatArray:
    """1-D float array of durations; NaN kept, negative or infinite values rejected."""
    arr = np.asarray(seconds, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"durations must be a 1-D sequence, got {arr.ndim}-D")
    if np.any(np.isinf(arr)):
        raise ValueError("durations must be finite (use NaN for 'not answered yet')")
    if np.any(arr < 0):
        raise ValueError("durations must not be negative")
    return arr


def durations(seconds: ArrayLike) -> DurationStats:
    """Count, mean, median and 90th percentile of durations in seconds.

    NaN entries (e.g. tickets not answered yet) are ignored. The percentile uses
    ``numpy.percentile(..., method="linear")``. Negative or infinite values raise
    :class:`ValueError`.
    """
    arr = _durations_array(seconds)
    values = arr[~np.isnan(arr)]
    if values.size == 0:
        return DurationStats(0, None, None, None)
    return DurationStats(
        count=int(values.size),
        mean=float(values.mean()),
        median=float(np.median(values)),
        p90=float(np.percentile(values, 90, method="linear")),
    )


def breaches(first_response_seconds_business: ArrayLike, target_minutes: float) -> int:
    """Number of first responses that took strictly longer than ``target_minutes``.

    Durations are business seconds (see :func:`business_seconds_between`); a response
    exactly at the target is not a breach. NaN entries (not answered yet) are ignored.
    """
    if not math.isfinite(target_minutes) or target_minutes < 0:
        raise ValueError("target_minutes must be a non-negative number")
    arr = _durations_array(first_response_seconds_business)
    return int(np.count_nonzero(arr > target_minutes * 60.0))


# --------------------------------------------------------------------------------------
# Business hours
# --------------------------------------------------------------------------------------

_DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_SEGMENT_RE = re.compile(r"^(?P<days>[a-z]+(?:-[a-z]+)?)\s+(?P<ranges>.+)$")
_RANGE_RE = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")


@dataclass(frozen=True, slots=True)
class OpeningWindow:
    """Opening hours on one weekday, as local wall-clock minutes since midnight.

    ``weekday`` follows :meth:`datetime.weekday` (Monday = 0). ``end_minute`` may be
    1440 (24:00, i.e. the following midnight). Windows never cross midnight: write
    ``"mon 22:00-24:00, tue 00:00-02:00"`` for a night shift.
    """

    weekday: int
    start_minute: int
    end_minute: int

    def __post_init__(self) -> None:
        if not 0 <= self.weekday <= 6:
            raise ValueError(f"weekday must be 0..6, got {self.weekday}")
        if not 0 <= self.start_minute < self.end_minute <= _MINUTES_PER_DAY:
            raise ValueError(
                f"need 0 <= start < end <= 1440 minutes, got {self.start_minute}-{self.end_minute}"
            )


def _parse_day(token: str) -> int:
    """Weekday number (Monday = 0) of a day name such as ``mon`` or ``monday``."""
    for names in (_DAY_NAMES, _FULL_DAY_NAMES):
        if token in names:
            return names.index(token)
    raise ValueError(f"unknown day name {token!r}")


def _parse_days(spec: str) -> list[int]:
    """Weekdays of ``mon`` or a range ``mon-fri`` (ranges may wrap: ``fri-mon``)."""
    first, _, last = spec.partition("-")
    start = _parse_day(first)
    stop = _parse_day(last) if last else start
    return [(start + i) % 7 for i in range((stop - start) % 7 + 1)]


def _parse_range(spec: str) -> tuple[int, int]:
    """Minutes since midnight of ``HH:MM-HH:MM`` (end may be ``24:00``)."""
    m = _RANGE_RE.match(spec)
    if m is None:
        raise ValueError(f"expected a time range like 09:00-18:00, got {spec!r}")
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2 != 0):
        raise ValueError(f"invalid time in {spec!r}")
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if start >= end:
        raise ValueError(f"range {spec!r} must end after it starts (no overnight ranges)")
    return start, end


def _local_instant(day: date, minute: int, tz: ZoneInfo) -> datetime:
    """UTC instant of wall-clock ``minute`` (0..1440) on local ``day`` in ``tz``.

    Non-existent wall times (spring-forward gap) resolve like :pep:`495` ``fold=0``,
    i.e. with the offset before the change; ambiguous ones to their first occurrence.
    """
    day += timedelta(days=minute // _MINUTES_PER_DAY)
    minute %= _MINUTES_PER_DAY
    local = datetime.combine(day, time(minute // 60, minute % 60), tzinfo=tz)
    return local.astimezone(UTC)


def _as_utc(moment: datetime) -> datetime:
    """``moment`` converted to UTC; naive datetimes raise :class:`ValueError`."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("datetimes must be timezone-aware")
    return moment.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class BusinessHours:
    """Weekly opening hours in a time zone; no windows means always open.

    Build it with :meth:`parse`. Windows are wall-clock times in ``tz``, so a 09:00-18:00
    day lasts 9 real hours on either side of a daylight-saving change, and a
    00:00-24:00 day lasts 23 or 25 hours on the change days.
    """

    tz: ZoneInfo
    windows: tuple[OpeningWindow, ...] = ()

    @classmethod
    def parse(cls, spec: str, tz: ZoneInfo) -> BusinessHours:
        """Parse ``"mon-fri 09:00-18:00, sat 10:00-14:00"``; empty string = always open.

        Segments are separated by commas or semicolons. Each segment is a day (``mon``
        or ``monday``) or a day range (``mon-fri``, may wrap like ``fri-mon``) followed
        by one or more ``HH:MM-HH:MM`` ranges separated by spaces
        (``mon-fri 09:00-13:00 14:00-18:00``). ``24:00`` is allowed as an end time.
        Case-insensitive. Raises :class:`ValueError` on malformed input.
        """
        windows: list[OpeningWindow] = []
        for raw in re.split(r"[,;]", spec.strip().lower()):
            segment = raw.strip()
            if not segment:
                if spec.strip():
                    raise ValueError(f"empty segment in {spec!r}")
                continue
            m = _SEGMENT_RE.match(segment)
            if m is None:
                raise ValueError(f"expected '<days> HH:MM-HH:MM', got {segment!r}")
            ranges = [_parse_range(r) for r in m.group("ranges").split()]
            for weekday in _parse_days(m.group("days")):
                windows.extend(OpeningWindow(weekday, s, e) for s, e in ranges)
        windows.sort(key=lambda w: (w.weekday, w.start_minute, w.end_minute))
        return cls(tz, tuple(windows))

    @property
    def always_open(self) -> bool:
        """True when no opening windows are defined."""
        return not self.windows

    def intervals(self, first_day: date, last_day: date) -> list[tuple[datetime, datetime]]:
        """Sorted, merged UTC ``[open, close)`` intervals of local days ``first..last``."""
        spans: list[tuple[datetime, datetime]] = []
        day = first_day
        while day <= last_day:
            for w in self.windows:
                if w.weekday == day.weekday():
                    start = _local_instant(day, w.start_minute, self.tz)
                    end = _local_instant(day, w.end_minute, self.tz)
                    if end > start:
                        spans.append((start, end))
            day += timedelta(days=1)
        spans.sort()
        merged: list[tuple[datetime, datetime]] = []
        for start, end in spans:
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            else:
                merged.append((start, end))
        return merged

    def _local_day(self, moment_utc: datetime) -> date:
        return moment_utc.astimezone(self.tz).date()

    def is_open(self, at: datetime) -> bool:
        """Whether ``at`` (aware, any zone) falls inside an opening window (start inclusive)."""
        moment = _as_utc(at)
        if self.always_open:
            return True
        day = self._local_day(moment)
        one = timedelta(days=1)
        return any(a <= moment < b for a, b in self.intervals(day - one, day + one))

    def next_opening(self, after: datetime) -> datetime:
        """First instant at or after ``after`` when the business is open, in ``tz``.

        Returns ``after`` itself (converted to ``tz``) when already open.
        """
        moment = _as_utc(after)
        if self.is_open(moment):
            return moment.astimezone(self.tz)
        day = self._local_day(moment)
        for start, _ in self.intervals(day - timedelta(days=1), day + timedelta(days=8)):
            if start > moment:
                return start.astimezone(self.tz)
        raise ValueError("business hours never open")  # only if every window is empty


def business_seconds_between(start: datetime, end: datetime, hours: BusinessHours) -> float:
    """Seconds between ``start`` and ``end`` that fall inside ``hours``.

    Both datetimes must be aware (any zone). Opening windows are turned into real UTC
    intervals day by day, so daylight-saving changes are handled by ``zoneinfo``.
    Returns 0.0 when ``end <= start``.
    """
    lo, hi = _as_utc(start), _as_utc(end)
    if hi <= lo:
        return 0.0
    if hours.always_open:
        return (hi - lo).total_seconds()
    one = timedelta(days=1)
    first, last = hours._local_day(lo) - one, hours._local_day(hi) + one
    total = 0.0
    for a, b in hours.intervals(first, last):
        overlap_start, overlap_end = max(a, lo), min(b, hi)
        if overlap_end > overlap_start:
            total += (overlap_end - overlap_start).total_seconds()
    return total


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
# Period-over-period change
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Change:
    """Change from ``previous`` to ``current``.

    ``delta = current - previous``; ``relative = delta / |previous|`` (so 0.1 = +10 %).
    """

    current: float | None
    previous: float | None
    delta: float | None
    relative: float | None


def change(current: float | None, previous: float | None) -> Change:
    """Absolute and relative change; ``None`` where undefined.

    ``delta`` is ``None`` when either value is missing (``None`` or NaN); ``relative``
    is also ``None`` when ``previous`` is 0. Relative change divides by ``|previous|``
    so its sign always follows the direction of the change.
    """
    if current is None or previous is None or math.isnan(current) or math.isnan(previous):
        return Change(current, previous, None, None)
    delta = float(current) - float(previous)
    relative = None if previous == 0 else delta / abs(float(previous))
    return Change(float(current), float(previous), delta, relative)


# --------------------------------------------------------------------------------------
# Control chart of the daily mean rating
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class ControlLimits:
    """X-bar control chart of daily mean ratings (see :func:`control_limits`).

    Per-day arrays (read-only) have one entry per day; ``mean``, ``lower`` and ``upper``
    are NaN for days without ratings (and limits are NaN everywhere when ``sigma`` is
    ``None``). ``out_of_control`` lists the indices of days whose mean lies strictly
    outside its limits.
    """

    centre: float | None
    sigma: float | None
    counts: IntArray
    mean: FloatArray
    lower: FloatArray
    upper: FloatArray
    out_of_control: tuple[int, ...]


def _readonly(arr: NDArray[np.generic]) -> None:
    arr.flags.writeable = False


def control_limits(
    daily_means: ArrayLike, daily_counts: ArrayLike, daily_stds: ArrayLike
) -> ControlLimits:
    """Control limits from per-day aggregates (mean, count, sample std with ddof=1).

    With ``n_i`` ratings of mean ``m_i`` and sample std ``s_i`` on day ``i`` and
    ``N = Σ n_i``::

        centre = Σ n_i m_i / N                                  (count-weighted mean)
        sigma² = (Σ (n_i - 1) s_i² + Σ n_i (m_i - centre)²) / (N - 1)
        lower_i, upper_i = centre ∓ 3 · sigma / sqrt(n_i)

    ``sigma`` is the sample standard deviation (ddof=1) of all ratings of the window
    pooled into one sample; it is exactly what ``np.std(all_ratings, ddof=1)`` gives.
    (It also contains the between-day variation, which makes the limits a little wider
    than a within-day estimate would, but it stays defined when most days have a
    single rating.) Days with ``n_i = 0`` get NaN; ``s_i`` is ignored when ``n_i < 2``.
    ``centre`` is ``None`` when ``N = 0`` and ``sigma`` is ``None`` when ``N < 2``.
    """
    counts = np.array(daily_counts, dtype=np.int64)  # a copy: it is made read-only below
    means = np.asarray(daily_means, dtype=np.float64)
    stds = np.asarray(daily_stds, dtype=np.float64)
    if not counts.ndim == means.ndim == stds.ndim == 1 or not (
        counts.shape == means.shape == stds.shape
    ):
        raise ValueError("daily_means, daily_counts and daily_stds must be 1-D, same length")
    if np.any(counts < 0):
        raise ValueError("daily_counts must not be negative")
    has = counts > 0
    mean = np.where(has, means, np.nan)
    total = int(counts.sum())
    centre: float | None = None
    sigma: float | None = None
    lower = np.full(counts.shape, np.nan)
    upper = np.full(counts.shape, np.nan)
    if total > 0:
        centre = float(np.sum(counts[has] * means[has]) / total)
    if centre is not None and total >= 2:
        within = np.where(counts >= 2, (counts - 1) * np.square(np.nan_to_num(stds)), 0.0)
        between = counts[has] * np.square(means[has] - centre)
        sigma = float(math.sqrt((within.sum() + between.sum()) / (total - 1)))
        se = sigma / np.sqrt(counts[has])
        lower[has] = centre - CONTROL_SIGMAS * se
        upper[has] = centre + CONTROL_SIGMAS * se
    with np.errstate(invalid="ignore"):
        outside = has & ((mean < lower) | (mean > upper))
    for arr in (counts, mean, lower, upper):
        _readonly(arr)
    out = tuple(int(i) for i in np.flatnonzero(outside))
    return ControlLimits(centre, sigma, counts, mean, lower, upper, out)


def rating_control_limits(ratings_by_day: Sequence[ArrayLike]) -> ControlLimits:
    """Control chart of the daily mean rating over a window (e.g. the last 28 days).

    ``ratings_by_day[i]`` holds the ratings (1..5) given on day ``i``. Formula: see
    :func:`control_limits` — centre = mean of all ratings in the window (= daily means
    weighted by counts), sigma = sample std (ddof=1) of all ratings in the window,
    limits for day ``i`` = centre ± 3 · sigma / sqrt(n_i).
    """
    days = [_ratings(r).astype(np.float64) for r in ratings_by_day]
    counts = np.array([d.size for d in days], dtype=np.int64)
    means = np.array([d.mean() if d.size else np.nan for d in days], dtype=np.float64)
    stds = np.array([d.std(ddof=1) if d.size >= 2 else np.nan for d in days], dtype=np.float64)
    return control_limits(means, counts, stds)


def is_outside(mean: float, n: int, centre: float, sigma: float) -> bool:
    """Whether a day's mean of ``n`` ratings lies strictly outside ``centre ± 3·sigma/√n``.

    Use it to judge today against ``centre``/``sigma`` of the previous 28 days
    (:func:`rating_control_limits`). False when ``n <= 0`` or any input is NaN.
    """
    if n <= 0 or math.isnan(mean) or math.isnan(centre) or math.isnan(sigma):
        return False
    return abs(mean - centre) > CONTROL_SIGMAS * sigma / math.sqrt(n)


# --------------------------------------------------------------------------------------
# Complaint spikes
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SpikeResult:
    """One-sided binomial test of ``k`` negative messages out of ``n`` against ``p0``."""

    k: int
    n: int
    p0: float
    p_value: float
    is_spike: bool


def binomial_tail(k: int, n: int, p0: float) -> float:
    """``P(X >= k)`` for ``X ~ Binomial(n, p0)``, i.e. ``scipy.stats.binom.sf(k - 1, n, p0)``.

    Edge cases: ``k <= 0`` gives 1.0; ``k > n`` gives 0.0; otherwise ``p0 == 0`` gives
    0.0 and ``p0 == 1`` gives 1.0.
    """
    if n < 0:
        raise ValueError("n must not be negative")
    if not 0.0 <= p0 <= 1.0:
        raise ValueError("p0 must be within [0, 1]")
    if k <= 0:
        return 1.0
    if k > n or p0 == 0.0:
        return 0.0
    if p0 == 1.0:
        return 1.0
    return float(sps.binom.sf(k - 1, n, p0))


def spike_test(
    k: int, n: int, p0: float, *, alpha: float = 0.01, min_count: int = 5
) -> SpikeResult:
    """Test whether ``k`` negatives out of ``n`` exceed the baseline share ``p0``.

    ``p_value = P(X >= k)`` with ``X ~ Binomial(n, p0)``; it is a spike when
    ``p_value < alpha`` and ``k >= min_count`` (a handful of complaints is never a spike).
    """
    if not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    p_value = binomial_tail(k, n, p0)
    return SpikeResult(k, n, p0, p_value, p_value < alpha and k >= min_count)


def spike_tests_by_group(
    today_counts: Mapping[str, tuple[int, int]],
    baseline: Mapping[str, tuple[int, int]],
    *,
    alpha: float = 0.01,
    min_count: int = 5,
) -> dict[str, SpikeResult]:
    """Run :func:`spike_test` for every group of ``today_counts``.

    Values are ``(negative, total)`` message counts. ``p0`` of a group is the share of
    negative messages in its baseline, ``neg / total``. A share of 0 makes any complaint
    maximally surprising, which ``min_count`` (at least 5 negative messages) keeps from
    becoming an alarm over one or two. A group without baseline messages falls back to the
    overall baseline share; with no baseline at all there is nothing to compare with, and
    no spike (``p0 = 1``).
    """
    overall_neg = sum(neg for neg, _ in baseline.values())
    overall_total = sum(total for _, total in baseline.values())
    fallback = overall_neg / overall_total if overall_total > 0 else 1.0
    results: dict[str, SpikeResult] = {}
    for group, (k, n) in today_counts.items():
        neg_b, total_b = baseline.get(group, (0, 0))
        p0 = neg_b / total_b if total_b > 0 else fallback
        results[group] = spike_test(k, n, p0, alpha=alpha, min_count=min_count)
    return results


# --------------------------------------------------------------------------------------
# Counting for charts
# --------------------------------------------------------------------------------------


def counts_by(labels: Sequence[str]) -> dict[str, int]:
    """Occurrences of each label, most frequent first (ties in alphabetical order)."""
    counted = Counter(labels)
    return dict(sorted(counted.items(), key=lambda item: (-item[1], item[0])))


def daily_matrix(
    day_index: ArrayLike, labels: Sequence[str], n_days: int, categories: Sequence[str]
) -> IntArray:
    """Day x category count matrix for stacked charts.

    ``result[d, c]`` is the number of items with ``day_index == d`` and label
    ``categories[c]``; shape ``(n_days, len(categories))``. Raises :class:`ValueError`
    for a day index outside ``0..n_days-1``, a label not in ``categories`` (map rare
    labels to an "other" category first), duplicate categories or mismatched lengths.
    """
    days = np.asarray(day_index)
    if days.size == 0:
        days = days.astype(np.int64)
    if days.ndim != 1 or days.dtype.kind not in "iu":
        raise ValueError("day_index must be a 1-D array of integers")
    if days.size != len(labels):
        raise ValueError("day_index and labels must have the same length")
    if np.any(days < 0) or np.any(days >= n_days):
        raise ValueError(f"day_index must be within 0..{n_days - 1}")
    column = {c: i for i, c in enumerate(categories)}
    if len(column) != len(categories):
        raise ValueError("categories must be unique")
    unknown = sorted(set(labels) - column.keys())
    if unknown:
        raise ValueError(f"labels not in categories: {unknown}")
    cols = np.fromiter((column[label] for label in labels), dtype=np.int64, count=len(labels))
    matrix = np.zeros((n_days, len(categories)), dtype=np.int64)
    np.add.at(matrix, (days.astype(np.int64), cols), 1)
    return matrix
