"""Tests for quality.stats: hand-worked values, SciPy cross-checks and properties."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from quality.stats import (
    BusinessHours,
    Change,
    DurationStats,
    OpeningWindow,
    binomial_tail,
    breaches,
    business_seconds_between,
    change,
    control_limits,
    counts_by,
    csat,
    daily_matrix,
    durations,
    is_outside,
    rating_control_limits,
    spike_test,
    spike_tests_by_group,
)

BERLIN = ZoneInfo("Europe/Berlin")
HOUR = 3600.0


def berlin(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=BERLIN)


# ---------------------------------------------------------------------------------------
# csat
# ---------------------------------------------------------------------------------------


def test_csat_hand_computed() -> None:
    # scores 5, 4, 4, 3, 5: n = 5, sum = 21, mean = 4.2, sorted 3 4 4 5 5 -> median 4
    # deviations 0.8 -0.2 -0.2 -1.2 0.8 -> squares .64 .04 .04 1.44 .64 = 2.8
    # var = 2.8 / 4 = 0.7, std = sqrt(0.7) = 0.836660
    # distribution: one 3, two 4, two 5; satisfied = 4 / 5 = 0.8
    # t_{0.975, 4} = 2.776445; se = sqrt(0.7 / 5) = 0.374166; half = 1.038851
    # CI = [3.161149, 5.238851]
    s = csat([5, 4, 4, 3, 5])
    assert s.count == 5
    assert s.mean == pytest.approx(4.2)
    assert s.median == 4.0
    assert s.std == pytest.approx(math.sqrt(0.7))
    assert s.distribution == (0, 0, 1, 2, 2)
    assert s.satisfied_share == pytest.approx(0.8)
    assert s.ci_low == pytest.approx(3.161149, abs=1e-6)
    assert s.ci_high == pytest.approx(5.238851, abs=1e-6)


def test_csat_interval_matches_scipy_t() -> None:
    scores = [1, 2, 2, 3, 5, 5, 4, 4, 4, 1, 3]
    s = csat(scores)
    arr = np.array(scores, dtype=float)
    low, high = sps.t.interval(
        0.95, len(arr) - 1, loc=arr.mean(), scale=arr.std(ddof=1) / math.sqrt(len(arr))
    )
    assert s.ci_low == pytest.approx(low, rel=1e-12)
    assert s.ci_high == pytest.approx(high, rel=1e-12)
    # A different level goes through the same formula.
    s90 = csat(scores, level=0.90)
    low90, high90 = sps.t.interval(
        0.90, len(arr) - 1, loc=arr.mean(), scale=arr.std(ddof=1) / math.sqrt(len(arr))
    )
    assert (s90.ci_low, s90.ci_high) == (pytest.approx(low90), pytest.approx(high90))


def test_csat_empty() -> None:
    s = csat([])
    assert s.count == 0
    assert s.distribution == (0, 0, 0, 0, 0)
    assert (s.mean, s.median, s.std, s.satisfied_share, s.ci_low, s.ci_high) == (None,) * 6


def test_csat_single_rating() -> None:
    # one rating of 3: mean = median = 3, no spread -> std and CI undefined, satisfied 0/1
    s = csat([3])
    assert (s.count, s.mean, s.median) == (1, 3.0, 3.0)
    assert s.std is None
    assert (s.ci_low, s.ci_high) == (None, None)
    assert s.distribution == (0, 0, 1, 0, 0)
    assert s.satisfied_share == 0.0


def test_csat_all_equal_collapses_interval() -> None:
    # 4, 4, 4: std = 0 -> CI = [4, 4]; satisfied = 3/3
    s = csat(np.array([4, 4, 4]))
    assert s.std == 0.0
    assert (s.ci_low, s.ci_high) == (4.0, 4.0)
    assert s.satisfied_share == 1.0
    assert s.distribution == (0, 0, 0, 3, 0)


def test_csat_accepts_integral_floats() -> None:
    assert csat([4.0, 5.0]).mean == 4.5


@pytest.mark.parametrize(
    "bad",
    [[0], [6], [4.5], [float("nan")], ["4"], [True, False], [[4, 5]], 4],
)
def test_csat_rejects_invalid(bad: object) -> None:
    with pytest.raises(ValueError):
        csat(bad)  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=5), min_size=1, max_size=200))
def test_csat_properties(scores: list[int]) -> None:
    s = csat(scores)
    assert s.mean is not None
    assert 1.0 <= s.mean <= 5.0
    assert sum(s.distribution) == s.count == len(scores)
    if s.count >= 2:
        assert s.ci_low is not None and s.ci_high is not None
        assert s.ci_low <= s.mean + 1e-12
        assert s.mean - 1e-12 <= s.ci_high


# ---------------------------------------------------------------------------------------
# durations and breaches
# ---------------------------------------------------------------------------------------


def test_durations_hand_computed() -> None:
    # NaN dropped -> 30 60 90 120: mean = 300/4 = 75, median = (60+90)/2 = 75
    # p90 linear: position 0.9 * (4 - 1) = 2.7 -> 90 + 0.7 * (120 - 90) = 111
    assert durations([30, 60, float("nan"), 90, 120]) == DurationStats(4, 75.0, 75.0, 111.0)


def test_durations_single_value() -> None:
    assert durations([42]) == DurationStats(1, 42.0, 42.0, 42.0)


@pytest.mark.parametrize("values", [[], [float("nan"), float("nan")]])
def test_durations_empty(values: list[float]) -> None:
    assert durations(values) == DurationStats(0, None, None, None)


@pytest.mark.parametrize("values", [[-1.0], [float("inf")], [[1.0]]])
def test_durations_rejects_invalid(values: list[float]) -> None:
    with pytest.raises(ValueError):
        durations(values)


def test_breaches() -> None:
    # 600 s = 10 min, 1800 s = 30 min, NaN ignored, 3600 s = 60 min, 3601 s
    values = [600, 1800, float("nan"), 3600, 3601]
    assert breaches(values, 60) == 1  # only 3601 > 3600 (exactly at target is fine)
    assert breaches(values, 10) == 3  # 1800, 3600, 3601 > 600
    assert breaches(values, 0) == 4
    assert breaches([], 5) == 0
    with pytest.raises(ValueError):
        breaches(values, -1)


# ---------------------------------------------------------------------------------------
# business hours
# ---------------------------------------------------------------------------------------

WEEKDAYS = BusinessHours.parse("mon-fri 09:00-18:00", BERLIN)


def test_parse_windows() -> None:
    h = BusinessHours.parse("Mon-Fri 09:00-18:00, sat 10:00-14:00", BERLIN)
    weekdays = [OpeningWindow(d, 9 * 60, 18 * 60) for d in range(5)]
    expected = (*weekdays, OpeningWindow(5, 10 * 60, 14 * 60))
    assert h.windows == expected
    assert h.tz == BERLIN
    assert h.always_open is False


def test_parse_variants() -> None:
    # wrapping range fri-mon = fri, sat, sun, mon; two ranges in one segment; 24:00 end
    h = BusinessHours.parse("fri-mon 09:00-12:00 13:00-24:00; wednesday 8:30-9:00", BERLIN)
    assert sorted({w.weekday for w in h.windows}) == [0, 2, 4, 5, 6]
    assert OpeningWindow(4, 13 * 60, 1440) in h.windows
    assert OpeningWindow(2, 8 * 60 + 30, 9 * 60) in h.windows


@pytest.mark.parametrize("spec", ["", "   "])
def test_parse_empty_is_always_open(spec: str) -> None:
    h = BusinessHours.parse(spec, BERLIN)
    assert h.always_open is True
    assert h.is_open(berlin(2026, 3, 29, 3, 0)) is True
    assert h.next_opening(berlin(2026, 3, 29, 3, 0)) == berlin(2026, 3, 29, 3, 0)


@pytest.mark.parametrize(
    "spec",
    [
        "xyz 09:00-18:00",
        "mon-fri",
        "mon-fri 9-18",
        "mon-fri 18:00-09:00",
        "mon-fri 09:00-09:00",
        "mon-fri 25:00-26:00",
        "mon-fri 09:60-18:00",
        "mon-fri 09:00-24:30",
        "mon-fri 09:00-18:00,",
        "mon-fri-sat 09:00-18:00",
    ],
)
def test_parse_rejects(spec: str) -> None:
    with pytest.raises(ValueError):
        BusinessHours.parse(spec, BERLIN)


def test_friday_evening_to_monday_morning_across_spring_dst() -> None:
    # Fri 2026-03-27 17:30 CET -> Mon 2026-03-30 09:15 CEST (clocks go forward on Sun 29th)
    # Friday 17:30-18:00 = 30 min, weekend closed, Monday 09:00-09:15 = 15 min -> 45 min
    start, end = berlin(2026, 3, 27, 17, 30), berlin(2026, 3, 30, 9, 15)
    assert business_seconds_between(start, end, WEEKDAYS) == 45 * 60


def test_same_result_for_utc_inputs() -> None:
    # Fri 17:30 CET = 16:30 UTC; Mon 09:15 CEST = 07:15 UTC
    start = datetime(2026, 3, 27, 16, 30, tzinfo=UTC)
    end = datetime(2026, 3, 30, 7, 15, tzinfo=UTC)
    assert business_seconds_between(start, end, WEEKDAYS) == 45 * 60


def test_day_boundary_and_closed_stretches() -> None:
    # Mon 17:00 -> Tue 10:00: 1 h Monday + 1 h Tuesday
    assert business_seconds_between(berlin(2026, 3, 23, 17), berlin(2026, 3, 24, 10), WEEKDAYS) == (
        2 * HOUR
    )
    # Mon 07:00 -> 08:00, entirely before opening
    assert business_seconds_between(berlin(2026, 3, 23, 7), berlin(2026, 3, 23, 8), WEEKDAYS) == 0
    # Sat -> Sun, closed all weekend
    assert business_seconds_between(berlin(2026, 3, 28, 9), berlin(2026, 3, 29, 23), WEEKDAYS) == 0
    # end before start
    assert business_seconds_between(berlin(2026, 3, 24), berlin(2026, 3, 23), WEEKDAYS) == 0.0
    # two full weeks Mon 00:00 -> Mon 00:00 spanning the October change: 10 days x 9 h
    assert business_seconds_between(
        berlin(2026, 10, 19), berlin(2026, 11, 2), WEEKDAYS
    ) == pytest.approx(90 * HOUR)


def test_with_saturday_window() -> None:
    # Fri 17:00 -> Mon 10:00: Fri 1 h + Sat 10-14 = 4 h + Mon 1 h = 6 h
    h = BusinessHours.parse("mon-fri 09:00-18:00, sat 10:00-14:00", BERLIN)
    assert business_seconds_between(berlin(2026, 3, 27, 17), berlin(2026, 3, 30, 10), h) == (
        6 * HOUR
    )


@pytest.mark.parametrize(
    ("day", "hours"),
    [
        (date(2026, 3, 29), 23),  # spring forward: 02:00 -> 03:00
        (date(2026, 10, 25), 25),  # fall back: 03:00 -> 02:00
        (date(2026, 3, 22), 24),  # ordinary Sunday
    ],
)
def test_dst_day_lengths(day: date, hours: int) -> None:
    start = datetime.combine(day, datetime.min.time(), tzinfo=BERLIN)
    end = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=BERLIN)
    full_day = BusinessHours.parse("mon-sun 00:00-24:00", BERLIN)
    always = BusinessHours.parse("", BERLIN)
    assert business_seconds_between(start, end, full_day) == hours * HOUR
    assert business_seconds_between(start, end, always) == hours * HOUR


def test_window_spanning_the_dst_jump() -> None:
    # "sun 01:00-04:00": on 2026-03-29, 01:00 CET = 00:00 UTC, 04:00 CEST = 02:00 UTC -> 2 h
    # on 2026-10-25, 01:00 CEST = 23:00 UTC (Sat), 04:00 CET = 03:00 UTC -> 4 h
    h = BusinessHours.parse("sun 01:00-04:00", BERLIN)
    assert business_seconds_between(berlin(2026, 3, 28), berlin(2026, 3, 30), h) == 2 * HOUR
    assert business_seconds_between(berlin(2026, 10, 24), berlin(2026, 10, 26), h) == 4 * HOUR


def test_nine_hour_day_is_nine_hours_on_both_sides_of_dst() -> None:
    # Fri before spring change (CET) and Mon after (CEST): each 09:00-18:00 = 9 h real time
    for day in (date(2026, 3, 27), date(2026, 3, 30), date(2026, 10, 23), date(2026, 10, 26)):
        start = datetime.combine(day, datetime.min.time(), tzinfo=BERLIN)
        end = start + timedelta(days=1)
        assert business_seconds_between(start, end, WEEKDAYS) == 9 * HOUR


def test_overlapping_windows_not_double_counted() -> None:
    # mon 09-12 and mon 11-13 overlap -> union 09-13 = 4 h
    h = BusinessHours.parse("mon 09:00-12:00, mon 11:00-13:00", BERLIN)
    assert business_seconds_between(berlin(2026, 3, 23), berlin(2026, 3, 24), h) == 4 * HOUR


def test_is_open() -> None:
    assert WEEKDAYS.is_open(berlin(2026, 3, 23, 9, 0)) is True  # opening instant included
    assert WEEKDAYS.is_open(berlin(2026, 3, 23, 17, 59, 59)) is True
    assert WEEKDAYS.is_open(berlin(2026, 3, 23, 18, 0)) is False  # closing instant excluded
    assert WEEKDAYS.is_open(berlin(2026, 3, 28, 12, 0)) is False  # Saturday
    # 09:00 Berlin is 08:00 UTC in winter (CET) and 07:00 UTC in summer (CEST)
    assert WEEKDAYS.is_open(datetime(2026, 3, 27, 8, 0, tzinfo=UTC)) is True
    assert WEEKDAYS.is_open(datetime(2026, 3, 27, 7, 30, tzinfo=UTC)) is False
    assert WEEKDAYS.is_open(datetime(2026, 3, 30, 7, 0, tzinfo=UTC)) is True
    assert WEEKDAYS.is_open(datetime(2026, 3, 30, 6, 59, tzinfo=UTC)) is False


def test_naive_datetimes_rejected() -> None:
    naive = datetime(2026, 3, 23, 10)  # noqa: DTZ001
    with pytest.raises(ValueError):
        WEEKDAYS.is_open(naive)
    with pytest.raises(ValueError):
        business_seconds_between(naive, berlin(2026, 3, 24), WEEKDAYS)


def test_next_opening() -> None:
    # Fri 18:00 CET -> Mon 09:00 CEST, i.e. 07:00 UTC
    nxt = WEEKDAYS.next_opening(berlin(2026, 3, 27, 18, 0))
    assert nxt == datetime(2026, 3, 30, 7, 0, tzinfo=UTC)
    assert nxt.tzinfo == BERLIN
    assert nxt.utcoffset() == timedelta(hours=2)
    # Fri 19:00 CEST before the October change -> Mon 09:00 CET (+01:00)
    nxt = WEEKDAYS.next_opening(berlin(2026, 10, 23, 19, 0))
    assert nxt == datetime(2026, 10, 26, 8, 0, tzinfo=UTC)
    assert nxt.utcoffset() == timedelta(hours=1)
    # early morning -> same day 09:00; already open -> unchanged
    assert WEEKDAYS.next_opening(berlin(2026, 3, 24, 6, 0)) == berlin(2026, 3, 24, 9, 0)
    at = datetime(2026, 3, 24, 10, 0, tzinfo=UTC)
    assert WEEKDAYS.next_opening(at) == at
    assert WEEKDAYS.next_opening(at).tzinfo == BERLIN


_instants = st.integers(min_value=0, max_value=60 * 24 * 400).map(
    lambda m: datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=m)
)


@settings(max_examples=100, deadline=None)
@given(_instants, _instants, _instants)
def test_business_seconds_additive(a: datetime, b: datetime, c: datetime) -> None:
    a, b, c = sorted((a, b, c))
    h = BusinessHours.parse("mon-fri 09:00-18:00, sat 10:00-14:00", BERLIN)
    ab = business_seconds_between(a, b, h)
    bc = business_seconds_between(b, c, h)
    assert ab + bc == pytest.approx(business_seconds_between(a, c, h))
    assert 0.0 <= ab <= (b - a).total_seconds()


# ---------------------------------------------------------------------------------------
# change
# ---------------------------------------------------------------------------------------


def test_change() -> None:
    # 4.0 -> 4.5: delta 0.5, relative 0.5 / 4 = 0.125
    assert change(4.5, 4.0) == Change(4.5, 4.0, 0.5, 0.125)
    # 3 -> 0... previous 0: relative undefined
    assert change(3.0, 0.0) == Change(3.0, 0.0, 3.0, None)
    assert change(None, 4.0) == Change(None, 4.0, None, None)
    assert change(4.0, None) == Change(4.0, None, None, None)
    # -2 -> -1: delta +1, relative 1 / |-2| = +0.5 (an increase)
    assert change(-1.0, -2.0) == Change(-1.0, -2.0, 1.0, 0.5)
    c = change(float("nan"), 1.0)
    assert (c.delta, c.relative) == (None, None)


# ---------------------------------------------------------------------------------------
# control chart
# ---------------------------------------------------------------------------------------


def test_rating_control_limits_hand_example() -> None:
    # days: [4,4,4,4] x3, [2,2,2,2], [] (no ratings)
    # N = 16, sum = 48 + 8 = 56, centre = 3.5
    # deviations: twelve +0.5, four -1.5 -> SS = 12 * 0.25 + 4 * 2.25 = 12
    # sigma = sqrt(12 / 15) = sqrt(0.8) = 0.894427
    # per day n = 4: 3 * sigma / 2 = 1.341641 -> limits [2.158359, 4.841641]
    # day 3 (mean 2) is below 2.158 -> out of control; days 0-2 (mean 4) are inside
    cl = rating_control_limits([[4, 4, 4, 4]] * 3 + [[2, 2, 2, 2], []])
    assert cl.centre == pytest.approx(3.5)
    assert cl.sigma == pytest.approx(math.sqrt(0.8))
    assert cl.counts.tolist() == [4, 4, 4, 4, 0]
    np.testing.assert_allclose(cl.mean, [4, 4, 4, 2, np.nan])
    np.testing.assert_allclose(cl.lower, [2.158359] * 4 + [np.nan], atol=1e-6)
    np.testing.assert_allclose(cl.upper, [4.841641] * 4 + [np.nan], atol=1e-6)
    assert cl.out_of_control == (3,)
    assert cl.mean.flags.writeable is False


def test_control_limits_from_aggregates_matches_raw() -> None:
    days: list[list[int]] = [[5, 4, 3], [5], [], [1, 2, 2, 5], [4, 4]]
    raw = rating_control_limits(days)
    flat = np.concatenate([np.array(d, dtype=float) for d in days])
    assert raw.centre == pytest.approx(flat.mean())
    assert raw.sigma == pytest.approx(flat.std(ddof=1))
    agg = control_limits(
        [float(np.mean(d)) if d else math.nan for d in days],
        [len(d) for d in days],
        [float(np.std(d, ddof=1)) if len(d) > 1 else math.nan for d in days],
    )
    assert agg.centre == pytest.approx(raw.centre)
    assert agg.sigma == pytest.approx(raw.sigma)
    np.testing.assert_allclose(agg.lower, raw.lower)
    np.testing.assert_allclose(agg.upper, raw.upper)
    assert agg.out_of_control == raw.out_of_control


def test_control_limits_degenerate_windows() -> None:
    empty = rating_control_limits([[], []])
    assert (empty.centre, empty.sigma, empty.out_of_control) == (None, None, ())
    assert np.isnan(empty.lower).all()
    one = rating_control_limits([[], [5]])
    assert (one.centre, one.sigma, one.out_of_control) == (5.0, None, ())
    # all ratings equal: sigma 0, limits collapse onto the centre, nothing flagged
    flat = rating_control_limits([[3, 3], [3]])
    assert (flat.centre, flat.sigma, flat.out_of_control) == (3.0, 0.0, ())
    assert flat.lower.tolist() == [3.0, 3.0]
    with pytest.raises(ValueError):
        rating_control_limits([[0]])
    with pytest.raises(ValueError):
        control_limits([4.0], [1, 2], [0.0])


def test_is_outside() -> None:
    sigma = math.sqrt(0.8)  # hand example above: limits for n = 4 are 3.5 ± 1.341641
    assert is_outside(2.0, 4, 3.5, sigma) is True
    assert is_outside(4.0, 4, 3.5, sigma) is False
    assert is_outside(4.9, 4, 3.5, sigma) is True
    # one rating: limit = 3.5 + 3 * 0.5 / 1 = 5.0 exactly; strictly outside required
    assert is_outside(5.0, 1, 3.5, 0.5) is False
    assert is_outside(1.9, 1, 3.5, 0.5) is True  # below 3.5 - 1.5 = 2.0
    assert is_outside(1.0, 0, 3.5, 0.5) is False  # no ratings today
    assert is_outside(float("nan"), 3, 3.5, 0.5) is False


# ---------------------------------------------------------------------------------------
# complaint spikes
# ---------------------------------------------------------------------------------------


def _tail_by_hand(k: int, n: int, p: float) -> float:
    return sum(math.comb(n, j) * p**j * (1 - p) ** (n - j) for j in range(max(k, 0), n + 1))


def test_binomial_tail_hand_values() -> None:
    # Binomial(3, 1/2): P(X >= 2) = (C(3,2) + C(3,3)) / 8 = 4/8; P(X >= 3) = 1/8
    assert binomial_tail(2, 3, 0.5) == pytest.approx(0.5)
    assert binomial_tail(3, 3, 0.5) == pytest.approx(0.125)
    # P(X >= 1) = 1 - 0.9^10
    assert binomial_tail(1, 10, 0.1) == pytest.approx(1 - 0.9**10)


def test_binomial_tail_edge_cases() -> None:
    assert binomial_tail(0, 10, 0.3) == 1.0
    assert binomial_tail(-2, 10, 0.3) == 1.0
    assert binomial_tail(1, 10, 0.0) == 0.0
    assert binomial_tail(0, 10, 0.0) == 1.0
    assert binomial_tail(10, 10, 1.0) == 1.0
    assert binomial_tail(11, 10, 1.0) == 0.0  # more successes than trials is impossible
    assert binomial_tail(0, 0, 0.5) == 1.0
    with pytest.raises(ValueError):
        binomial_tail(1, 10, 1.5)
    with pytest.raises(ValueError):
        binomial_tail(1, -1, 0.5)


@pytest.mark.parametrize("n", [0, 1, 5, 20, 100])
@pytest.mark.parametrize("p0", [0.0, 0.01, 0.3, 0.5, 0.99, 1.0])
def test_binomial_tail_against_scipy(n: int, p0: float) -> None:
    for k in range(-1, n + 2):
        expected = float(np.sum(sps.binom.pmf(np.arange(max(k, 0), n + 1), n, p0)))
        assert binomial_tail(k, n, p0) == pytest.approx(expected, rel=1e-9, abs=1e-300)
        assert binomial_tail(k, n, p0) == pytest.approx(_tail_by_hand(k, n, p0), rel=1e-9)


def test_spike_test() -> None:
    # k=8 of 20 at p0=0.1: P(X >= 8) = 0.000416 < 0.01 and 8 >= 5 -> spike
    r = spike_test(8, 20, 0.1)
    assert r.p_value == pytest.approx(_tail_by_hand(8, 20, 0.1))
    assert r.p_value == pytest.approx(0.000415635, rel=1e-5)
    assert (r.k, r.n, r.p0, r.is_spike) == (8, 20, 0.1, True)
    # k=6 of 20: P(X >= 6) = 0.011253 >= 0.01 -> no spike at alpha 0.01, spike at 0.05
    assert spike_test(6, 20, 0.1).p_value == pytest.approx(0.0112531, rel=1e-4)
    assert spike_test(6, 20, 0.1).is_spike is False
    assert spike_test(6, 20, 0.1, alpha=0.05).is_spike is True
    # 4 of 4 at p0 = 0.1: p = 1e-4 but fewer than min_count complaints -> no spike
    r = spike_test(4, 4, 0.1)
    assert r.p_value == pytest.approx(1e-4)
    assert r.is_spike is False
    assert spike_test(4, 4, 0.1, min_count=4).is_spike is True
    with pytest.raises(ValueError):
        spike_test(5, 4, 0.1)


def test_spike_tests_by_group_baseline_share_and_fallback() -> None:
    today = {"billing": (8, 20), "delivery": (1, 30), "new": (3, 3), "quiet": (0, 0)}
    baseline = {"billing": (10, 198), "delivery": (5, 100), "empty": (0, 0)}
    res = spike_tests_by_group(today, baseline)
    assert set(res) == set(today)
    # billing: p0 = 10 / 198 = 0.0505
    assert res["billing"].p0 == pytest.approx(10 / 198)
    assert res["billing"].p_value == pytest.approx(_tail_by_hand(8, 20, 10 / 198))
    assert res["billing"].is_spike is True
    # delivery: p0 = 5 / 100; P(X >= 1) = 1 - 0.95^30 = 0.78536
    assert res["delivery"].p0 == pytest.approx(0.05)
    assert res["delivery"].p_value == pytest.approx(1 - 0.95**30)
    assert res["delivery"].is_spike is False
    # new: no baseline -> the overall share 15 / 298; P(X >= 3 of 3) = (15/298)^3
    assert res["new"].p0 == pytest.approx(15 / 298)
    assert res["new"].p_value == pytest.approx((15 / 298) ** 3)
    assert res["new"].is_spike is False  # only 3 complaints < min_count 5
    assert (res["quiet"].p_value, res["quiet"].is_spike) == (1.0, False)


def test_spike_tests_by_group_zero_share_needs_five_complaints() -> None:
    # baseline 0 of 50 -> p0 = 0: any complaint is "impossible", P(X >= k) = 0 ...
    res = spike_tests_by_group({"a": (1, 10), "b": (5, 10)}, {"a": (0, 50), "b": (0, 50)})
    assert (res["a"].p0, res["a"].p_value) == (0.0, 0.0)
    assert res["a"].is_spike is False  # ... but one complaint is no alarm (k < 5)
    assert res["b"].is_spike is True
    # no baseline anywhere: nothing to compare with, no spike
    empty = spike_tests_by_group({"a": (9, 10)}, {})
    assert (empty["a"].p0, empty["a"].p_value, empty["a"].is_spike) == (1.0, 1.0, False)


def test_counts_by() -> None:
    # a x3, b x2, c x1 (most frequent first, ties alphabetical)
    assert list(counts_by(["b", "a", "c", "a", "b", "a"]).items()) == [
        ("a", 3),
        ("b", 2),
        ("c", 1),
    ]
    assert list(counts_by(["z", "y"]).items()) == [("y", 1), ("z", 1)]
    assert counts_by([]) == {}


def test_daily_matrix() -> None:
    # day 0: x, y; day 1: x; day 2: x, x, y; category z unused
    m = daily_matrix([0, 0, 1, 2, 2, 2], ["x", "y", "x", "x", "x", "y"], 4, ["x", "y", "z"])
    assert m.dtype == np.int64
    assert m.tolist() == [[1, 1, 0], [1, 0, 0], [2, 1, 0], [0, 0, 0]]
    assert daily_matrix([], [], 2, ["x"]).tolist() == [[0], [0]]


@pytest.mark.parametrize(
    ("days", "labels", "categories"),
    [
        ([0, 3], ["x", "x"], ["x"]),  # day out of range
        ([-1], ["x"], ["x"]),
        ([0], ["q"], ["x"]),  # unknown label
        ([0, 1], ["x"], ["x"]),  # length mismatch
        ([0], ["x"], ["x", "x"]),  # duplicate category
        ([0.5], ["x"], ["x"]),  # non-integer day
    ],
)
def test_daily_matrix_rejects(days: list[float], labels: list[str], categories: list[str]) -> None:
    with pytest.raises(ValueError):
        daily_matrix(days, labels, 3, categories)
