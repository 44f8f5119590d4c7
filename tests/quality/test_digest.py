"""The digest's pure parts against values worked out by hand: periods, business time, figures,
control limits, spikes, themes, text, JSON and chart."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from scipy import stats as sps

from bot.digests import render_chart
from bot.texts import format_seconds, telegram_length
from bot.texts.digest import render_stats_text, render_text
from quality import fetch
from quality.digest import (
    CHART_DAYS,
    AtRiskCustomer,
    Digest,
    DigestConfig,
    PeriodKind,
    RawDigest,
    StaffingOutlook,
    aggregate,
    make_period,
    mask_personal_data,
    period_figures,
    previous_period,
    themes,
)
from quality.fetch import (
    AgentRatings,
    CustomerText,
    DailySeries,
    MessageCounts,
    PeriodData,
    Resolutions,
    TicketCounts,
    TicketTimes,
)
from quality.stats import BusinessHours, business_seconds, business_seconds_between

BERLIN = ZoneInfo("Europe/Berlin")
ZUTC = ZoneInfo("UTC")
ALWAYS = BusinessHours.parse("", ZUTC)
T0 = datetime(2026, 3, 4, 0, 0, tzinfo=UTC)  # a Wednesday


# --------------------------------------------------------------------------------------
# Periods
# --------------------------------------------------------------------------------------


def test_day_period_in_berlin_is_local_midnight_to_midnight() -> None:
    p = make_period("day", date(2026, 3, 4), BERLIN, now=datetime(2026, 3, 6, tzinfo=UTC))
    assert p.start == datetime(2026, 3, 3, 23, 0, tzinfo=UTC)
    assert p.end == datetime(2026, 3, 4, 23, 0, tzinfo=UTC)
    assert p.partial is False
    assert p.days == 1


@pytest.mark.parametrize(
    ("day", "hours"),
    [(date(2026, 3, 29), 23), (date(2026, 10, 25), 25), (date(2026, 3, 30), 24)],
)
def test_daylight_saving_days_last_23_or_25_hours(day: date, hours: int) -> None:
    p = make_period("day", day, BERLIN, now=datetime(2027, 1, 1, tzinfo=UTC))
    assert (p.end - p.start) == timedelta(hours=hours)


def test_week_is_monday_to_sunday_and_previous_week_before_it() -> None:
    p = make_period("week", date(2026, 3, 26), BERLIN, now=datetime(2026, 4, 10, tzinfo=UTC))
    assert (p.first, p.last) == (date(2026, 3, 23), date(2026, 3, 29))
    # the week contains the spring-forward Sunday: 7 * 24 - 1 hours
    assert p.end - p.start == timedelta(hours=167)
    prev = previous_period(p, BERLIN)
    assert (prev.first, prev.last) == (date(2026, 3, 16), date(2026, 3, 22))
    assert prev.end == p.start


def test_today_so_far_and_the_same_time_yesterday() -> None:
    now = datetime(2026, 3, 4, 13, 30, tzinfo=UTC)  # 14:30 in Berlin
    p = make_period("day", date(2026, 3, 4), BERLIN, now=now)
    assert p.partial is True
    assert p.end == now
    prev = previous_period(p, BERLIN)
    assert prev.start == datetime(2026, 3, 2, 23, 0, tzinfo=UTC)
    assert prev.end == datetime(2026, 3, 3, 13, 30, tzinfo=UTC)
    assert prev.partial is True


def test_so_far_across_the_clock_change_keeps_local_time() -> None:
    now = datetime(2026, 3, 30, 8, 0, tzinfo=UTC)  # 10:00 CEST on Monday
    prev = previous_period(make_period("day", date(2026, 3, 30), BERLIN, now=now), BERLIN)
    assert prev.end == datetime(2026, 3, 29, 8, 0, tzinfo=UTC)  # 10:00 CEST on Sunday


def test_range_of_seven_days_ends_with_the_day() -> None:
    p = make_period(
        PeriodKind.RANGE, date(2026, 3, 4), ZUTC, now=datetime(2026, 3, 4, 12, tzinfo=UTC), days=7
    )
    assert (p.first, p.last, p.days) == (date(2026, 2, 26), date(2026, 3, 4), 7)
    assert p.end == datetime(2026, 3, 4, 12, tzinfo=UTC)


# --------------------------------------------------------------------------------------
# Business time
# --------------------------------------------------------------------------------------


def test_business_seconds_match_the_scalar_function_across_dst() -> None:
    hours = BusinessHours.parse("mon-fri 09:00-18:00, sat 10:00-14:00", BERLIN)
    rng = np.random.default_rng(7)
    base = datetime(2026, 3, 20, tzinfo=UTC).timestamp()
    starts = base + rng.uniform(0, 20 * 86400, 300)
    ends = starts + rng.exponential(2 * 86400, 300)
    ends[:5] = np.nan
    got = business_seconds(starts, ends, hours)
    expected = [
        math.nan
        if math.isnan(e)
        else business_seconds_between(
            datetime.fromtimestamp(s, UTC), datetime.fromtimestamp(e, UTC), hours
        )
        for s, e in zip(starts, ends, strict=True)
    ]
    np.testing.assert_allclose(got, expected, atol=1e-3)


def test_business_seconds_by_hand() -> None:
    hours = BusinessHours.parse("mon-fri 09:00-17:00", ZUTC)
    friday_16 = datetime(2026, 3, 6, 16, tzinfo=UTC).timestamp()
    monday_10 = datetime(2026, 3, 9, 10, tzinfo=UTC).timestamp()
    got = business_seconds(np.array([friday_16]), np.array([monday_10]), hours)
    assert got.tolist() == [7200.0]  # 16-17 Friday + 9-10 Monday
    always = business_seconds(np.array([friday_16]), np.array([monday_10]), ALWAYS)
    assert always.tolist() == [monday_10 - friday_16]


# --------------------------------------------------------------------------------------
# Figures of one period
# --------------------------------------------------------------------------------------


def _data(
    *,
    created: list[float] | None = None,
    first_response: list[float] | None = None,
    assignee: list[int] | None = None,
    resolved: list[float] | None = None,
    resolved_by: list[int] | None = None,
    ratings: tuple[int, int, int, int, int] = (0, 0, 0, 0, 0),
    agent_ratings: dict[int, AgentRatings] | None = None,
    tickets: TicketCounts | None = None,
    messages: MessageCounts | None = None,
    start: datetime = T0,
    end: datetime = T0 + timedelta(days=1),
) -> PeriodData:
    created = created or []
    return PeriodData(
        start=start,
        end=end,
        tickets=tickets or TicketCounts(total=len(created)),
        messages=messages or MessageCounts(),
        rating_counts=ratings,
        agent_ratings=agent_ratings or {},
        times=TicketTimes(
            created=np.array(created, dtype=np.float64),
            first_response=np.array(
                first_response if first_response is not None else [], dtype=np.float64
            ),
            assignee=np.array(assignee if assignee is not None else [], dtype=np.int64),
        ),
        resolutions=Resolutions(
            seconds=np.array(resolved or [], dtype=np.float64),
            assignee=np.array(resolved_by or [], dtype=np.int64),
            resolution=tuple("agent" for _ in resolved or []),
        ),
    )


def test_empty_period_has_counts_of_zero_and_no_averages() -> None:
    f = period_figures(_data(), hours=ALWAYS, target_minutes=60, as_of=T0, names={})
    assert f.volume.tickets == 0
    assert f.csat.count == 0
    assert f.csat.mean is None
    assert f.first_response.count == 0
    assert f.first_response.median is None
    assert f.resolution.p90 is None
    assert (f.answered, f.unanswered, f.breaches) == (0, 0, 0)
    assert f.agents == ()


def test_figures_by_hand() -> None:
    t = T0.timestamp()
    data = _data(
        created=[t, t + 600, t + 1200, t + 3000],
        first_response=[t + 60, t + 600 + 300, t + 1200 + 3 * 3600, math.nan],
        assignee=[1, 1, 2, -1],
        resolved=[3600.0, 7200.0, 10800.0],
        resolved_by=[1, 2, 2],
        ratings=(0, 0, 1, 1, 2),
        agent_ratings={1: AgentRatings(3, 14), 2: AgentRatings(1, 3)},
    )
    as_of = T0 + timedelta(hours=2)
    f = period_figures(
        data, hours=ALWAYS, target_minutes=60, as_of=as_of, names={1: "Alice", 2: "Bob"}
    )
    # ratings 3, 4, 5, 5
    assert f.csat.count == 4
    assert f.csat.mean == 4.25
    assert f.csat.median == 4.5
    assert f.csat.std == pytest.approx(math.sqrt(2.75 / 3))
    half = sps.t.ppf(0.975, 3) * math.sqrt(2.75 / 3) / 2
    assert f.csat.ci_low == pytest.approx(4.25 - half)
    assert f.csat.ci_high == pytest.approx(4.25 + half)
    assert f.csat.satisfied_share == 0.75
    assert f.csat.distribution == (0, 0, 1, 1, 2)
    # first responses 60 s, 300 s, 10800 s; the fourth still waits (since t+3000, 4200 s by as_of)
    assert f.first_response.count == 3
    assert f.first_response.median == 300.0
    assert f.first_response.mean == pytest.approx((60 + 300 + 10800) / 3)
    assert f.first_response.p90 == pytest.approx(300 + 0.8 * (10800 - 300))
    assert (f.answered, f.unanswered) == (3, 1)
    assert f.breaches == 2  # 3 h answer and the 70-minute wait
    assert f.resolution.median == 7200.0
    bob, alice = f.agents  # most tickets resolved first
    assert (bob.name, bob.handled, bob.median_first_response, bob.mean_rating) == (
        "Bob",
        2,
        10800.0,
        3.0,
    )
    assert (alice.name, alice.handled, alice.median_first_response, alice.ratings) == (
        "Alice",
        1,
        180.0,
        3,
    )
    assert alice.mean_rating == pytest.approx(14 / 3)


def test_breaches_count_business_time_only() -> None:
    hours = BusinessHours.parse("mon-fri 09:00-17:00", ZUTC)
    friday_1650 = datetime(2026, 3, 6, 16, 50, tzinfo=UTC).timestamp()
    monday_0905 = datetime(2026, 3, 9, 9, 5, tzinfo=UTC).timestamp()
    data = _data(created=[friday_1650], first_response=[monday_0905], assignee=[1])
    f = period_figures(
        data, hours=hours, target_minutes=15, as_of=T0 + timedelta(days=10), names={}
    )
    assert f.breaches == 0  # 10 + 5 business minutes
    f = period_figures(data, hours=hours, target_minutes=14, as_of=T0, names={})
    assert f.breaches == 1


def test_one_rating_and_all_equal_ratings() -> None:
    one = period_figures(
        _data(ratings=(0, 0, 0, 1, 0)), hours=ALWAYS, target_minutes=60, as_of=T0, names={}
    )
    assert (one.csat.count, one.csat.mean, one.csat.std, one.csat.ci_low) == (1, 4.0, None, None)
    same = period_figures(
        _data(ratings=(0, 0, 0, 0, 6)), hours=ALWAYS, target_minutes=60, as_of=T0, names={}
    )
    assert (same.csat.mean, same.csat.std, same.csat.ci_low, same.csat.ci_high) == (
        5.0,
        0.0,
        5.0,
        5.0,
    )


# --------------------------------------------------------------------------------------
# Whole digest from raw data
# --------------------------------------------------------------------------------------


def _raw(
    *,
    day: date = date(2026, 3, 4),
    current: PeriodData | None = None,
    previous: PeriodData | None = None,
    ratings: np.ndarray | None = None,
    messages: dict[tuple[str, str], np.ndarray] | None = None,
    texts: tuple[CustomerText, ...] = (),
) -> RawDigest:
    now = datetime.combine(day + timedelta(days=1), datetime.min.time(), UTC) + timedelta(hours=9)
    period = make_period("day", day, ZUTC, now=now)
    prev = previous_period(period, ZUTC)
    first = day - timedelta(days=28)
    n = 29
    daily = DailySeries(
        days=tuple(first + timedelta(days=i) for i in range(n)),
        messages=messages or {},
        ratings=ratings if ratings is not None else np.zeros((n, 5), dtype=np.int64),
    )
    return RawDigest(
        period=period,
        previous_period=prev,
        current=current or _data(start=period.start, end=period.end),
        previous=previous or _data(start=prev.start, end=prev.end),
        daily=daily,
        agent_names={},
        texts=texts,
        now=now,
    )


CONFIG = DigestConfig(tz=ZUTC, hours=ALWAYS, first_response_target_minutes=60)


def test_changes_against_the_previous_period() -> None:
    raw = _raw(
        current=_data(tickets=TicketCounts(total=10, reopened=1), ratings=(0, 0, 0, 2, 2)),
        previous=_data(tickets=TicketCounts(total=8, reopened=0), ratings=(0, 0, 2, 2, 0)),
    )
    d = aggregate(raw, CONFIG)
    assert (d.changes["tickets"].delta, d.changes["tickets"].relative) == (2.0, 0.25)
    assert d.changes["csat_mean"].delta == pytest.approx(1.0)
    assert d.changes["csat_satisfied_share"].delta == pytest.approx(0.5)
    assert d.changes["reopened"].relative is None  # from zero
    assert d.changes["first_response_median"].delta is None  # nothing answered


def test_control_limits_flag_a_bad_day() -> None:
    ratings = np.zeros((29, 5), dtype=np.int64)
    ratings[:28, 3] = 1  # one 4 and one 5 on each of the 28 days before
    ratings[:28, 4] = 1
    ratings[28, 0] = 10  # ten ratings of 1 on the day
    d = aggregate(_raw(ratings=ratings), CONFIG)
    sigma = math.sqrt(56 * 0.25 / 55)
    assert d.control.centre == pytest.approx(4.5)
    assert d.control.sigma == pytest.approx(sigma)
    assert d.control.baseline_ratings == 56
    [bad] = d.control.flagged
    assert bad.day == date(2026, 3, 4)
    assert (bad.count, bad.mean) == (10, 1.0)
    assert bad.lower == pytest.approx(4.5 - 3 * sigma / math.sqrt(10))
    assert len(d.control.days) == CHART_DAYS
    assert [x.outside for x in d.control.days].count(True) == 1
    assert "below the usual range" in render_text(d)


def test_no_flag_without_history() -> None:
    ratings = np.zeros((29, 5), dtype=np.int64)
    ratings[28, 0] = 3
    d = aggregate(_raw(ratings=ratings), CONFIG)
    assert (d.control.centre, d.control.sigma, d.control.flagged) == (None, None, ())


def test_complaint_spike_against_scipy_binom() -> None:
    baseline = np.zeros(29, dtype=np.int64)
    baseline[:28] = 9
    negatives = np.zeros(29, dtype=np.int64)
    negatives[:28] = 1
    messages = {
        ("billing", "neutral"): baseline.copy(),
        ("billing", "negative"): negatives.copy(),
        ("delivery", "neutral"): baseline.copy(),
        ("delivery", "negative"): negatives.copy(),
    }
    today = MessageCounts(
        customer=40,
        negative_by_category={"billing": (12, 20), "delivery": (2, 20)},
    )
    d = aggregate(_raw(messages=messages, current=_data(messages=today)), CONFIG)
    billing = d.spikes.by_category["billing"]
    p0 = 28 / 280  # the baseline share: 28 negatives out of 280
    assert billing.p0 == pytest.approx(p0)
    assert billing.p_value == pytest.approx(sps.binom.sf(11, 20, p0))
    assert billing.is_spike is True
    delivery = d.spikes.by_category["delivery"]
    assert delivery.p_value == pytest.approx(sps.binom.sf(1, 20, p0))
    assert delivery.is_spike is False
    overall_p0 = 56 / 560
    assert d.spikes.overall.p_value == pytest.approx(sps.binom.sf(13, 40, overall_p0))
    assert [c for c, _ in d.spikes.flagged] == [None, "billing"]
    text = render_text(d)
    assert "Complaint spike in <b>billing</b>: 12 of 20" in text


def test_four_negatives_are_never_a_spike() -> None:
    history = {
        ("billing", "neutral"): np.full(29, 9, dtype=np.int64),
        ("billing", "negative"): np.full(29, 1, dtype=np.int64),
    }
    today = MessageCounts(customer=4, negative_by_category={"billing": (4, 4)})
    d = aggregate(_raw(messages=history, current=_data(messages=today)), CONFIG)
    assert d.spikes.by_category["billing"].p_value < 0.01
    assert d.spikes.by_category["billing"].is_spike is False


def test_chart_data_groups_small_categories() -> None:
    messages = {(f"c{i}", "neutral"): np.full(29, 10 - i, dtype=np.int64) for i in range(9)} | {
        ("uncategorised", "unknown"): np.full(29, 20, dtype=np.int64)
    }
    d = aggregate(_raw(messages=messages), CONFIG)
    assert d.chart.categories == ("c0", "c1", "c2", "c3", "c4", "c5", "c6", "other")
    assert d.chart.volume.shape == (CHART_DAYS, 8)
    assert d.chart.volume[0].tolist() == [10, 9, 8, 7, 6, 5, 4, 3 + 2 + 20]


# --------------------------------------------------------------------------------------
# Themes and masking
# --------------------------------------------------------------------------------------


class StubSummary:
    def __init__(self, phrases: list[str]) -> None:
        self.summary = "stub"
        self.key_phrases = phrases


def stub_summariser(texts: Sequence[str]) -> StubSummary:
    return StubSummary(["refund", "charged twice", ""])


def test_mask_personal_data() -> None:
    text = "Mail me at jane.doe+x@example.co.uk or +49 170 1234567, card 4111 1111 1111 1111."
    assert mask_personal_data(text) == "Mail me at [email] or [phone], card [card]."
    assert mask_personal_data("IBAN DE89 3704 0044 0532 0130 00 please") == "IBAN [account] please"
    assert mask_personal_data("order #12345 arrived") == "order #12345 arrived"


def test_themes_with_a_stub_summariser() -> None:
    texts = [
        CustomerText("billing", 1, "I was charged twice, refund to a@b.com please", None, None),
        CustomerText("billing", 1, "refund? charged twice! same ticket", None, None),
        CustomerText("billing", 2, "Where is my refund for the order", None, None),
        CustomerText("billing", 3, "Hello there, a question about invoices", None, None),
        CustomerText("billing", 4, "charged twice again, call +1 555 123 4567", None, None),
        CustomerText("delivery", 5, "late parcel", None, None),
    ]
    found = themes(texts, summarise=stub_summariser)
    billing, delivery = found
    assert billing.category == "billing"
    assert billing.messages == 5
    assert billing.key_phrases == ("refund", "charged twice")
    assert billing.quotes == (
        "I was charged twice, refund to [email] please",
        "Where is my refund for the order",
        "charged twice again, call [phone]",
    )
    assert delivery.quotes == ("late parcel",)
    assert delivery.key_phrases == ("refund", "charged twice")


def test_themes_without_summariser_use_the_mask_hook() -> None:
    texts = [CustomerText("other", 1, "My name is Jane Roe and I need help", ["Jane Roe"], None)]

    def mask(text: str, entities: object) -> str:
        assert entities == ["Jane Roe"]
        return text.replace("Jane Roe", "[name]")

    [theme] = themes(texts, mask=mask)
    assert theme.key_phrases == ()
    assert theme.quotes == ("My name is [name] and I need help",)


# --------------------------------------------------------------------------------------
# Text, JSON, chart
# --------------------------------------------------------------------------------------


def _busy_digest() -> Digest:
    t = T0.timestamp() + 86400
    current = _data(
        created=[t, t + 60],
        first_response=[t + 120, math.nan],
        assignee=[1, -1],
        resolved=[600.0],
        resolved_by=[1],
        ratings=(1, 0, 0, 0, 3),
        agent_ratings={1: AgentRatings(4, 16)},
        tickets=TicketCounts(total=2, by_category={"<b>&": 2}, self_served=1, escalated=1),
        messages=MessageCounts(
            customer=5,
            agent=2,
            by_category={"<b>&": 5},
            by_sentiment={"negative": 1, "neutral": 3, "unknown": 1},
        ),
    )
    texts = tuple(
        CustomerText(f"cat<{i}>", i, f"Quote number {i} <script> & long " + "x" * 300, None, None)
        for i in range(40)
    )
    raw = _raw(current=current, texts=texts)
    raw = RawDigest(
        raw.period,
        raw.previous_period,
        raw.current,
        raw.previous,
        raw.daily,
        {1: "<Alice & co>"},
        raw.texts,
        raw.now,
    )
    return aggregate(
        raw,
        CONFIG,
        at_risk=[AtRiskCustomer("Zoë <VIP>", "3 complaints this month", 0.8)],
    )


def test_text_escapes_user_data_and_fits_one_message() -> None:
    d = _busy_digest()
    text = render_text(d)
    assert telegram_length(text) <= 4096
    assert "&lt;Alice &amp; co&gt;" in text
    assert "&lt;b&gt;&amp; 5" in text
    assert "<script>" not in text
    assert "Zoë &lt;VIP&gt; (80%): 3 complaints this month" in text
    assert "🎫 New tickets: <b>2</b> (▲ from 0)" in text
    assert "Over the 60 min target (round the clock): <b>1</b> of 2" in text
    assert "⏳ Still waiting for a first answer: 1" in text
    assert "Mood: neutral 75% · negative 25%" in text
    small = render_text(d, limit=1500)
    assert telegram_length(small) <= 1500
    assert "What customers say" in small  # quotes dropped first, categories stay


def test_empty_digest_text() -> None:
    d = aggregate(_raw(), CONFIG)
    text = render_text(d)
    assert text.startswith("📊 <b>Daily digest</b> · Wed 4 Mar 2026")
    assert "⭐ No ratings in this period." in text
    assert "⏱ First response: no answered tickets yet." in text
    assert "Alerts" not in text
    assert d.at_risk is None
    stats_text = render_stats_text(d)
    assert "No ratings" in stats_text


def test_json_has_every_figure_and_no_nan() -> None:
    d = _busy_digest()
    data = json.loads(json.dumps(d.to_json(), allow_nan=False))
    assert data["kind"] == "day"
    assert data["period"]["first"] == "2026-03-04"
    assert data["current"]["csat"]["distribution"] == [1, 0, 0, 0, 3]
    assert data["current"]["csat"]["mean"] == 4.0
    assert data["current"]["breaches"] == 1
    assert data["changes"]["tickets"] == {
        "current": 2.0,
        "previous": 0.0,
        "delta": 2.0,
        "relative": None,
    }
    assert data["current"]["agents"][0]["name"] == "<Alice & co>"
    assert data["spikes"]["flagged"] == []
    assert len(data["chart"]["days"]) == CHART_DAYS
    assert data["at_risk"][0]["reason"] == "3 complaints this month"
    assert data["control"]["centre"] is None


def test_format_seconds() -> None:
    assert [
        format_seconds(x) for x in (None, math.nan, 45, 720, 3 * 3600 + 300, 2 * 86400 + 4 * 3600)
    ] == [
        "–",
        "–",
        "45s",
        "12m",
        "3h 05m",
        "2d 4h",
    ]


@pytest.mark.parametrize("busy", [True, False])
def test_chart_is_a_png(busy: bool) -> None:
    d = _busy_digest() if busy else aggregate(_raw(), CONFIG)
    png = render_chart(d)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(png) > 10_000


def test_local_midnight_helpers() -> None:
    edges = fetch.day_edges(date(2026, 3, 28), date(2026, 3, 30), BERLIN)
    assert [e.isoformat() for e in edges] == [
        "2026-03-27T23:00:00+00:00",
        "2026-03-28T23:00:00+00:00",
        "2026-03-29T22:00:00+00:00",
        "2026-03-30T22:00:00+00:00",
    ]


def test_staffing_forecast_and_at_risk_are_rendered() -> None:
    staffing = StaffingOutlook(
        customers=1200,
        level=0.9,
        day_expected=11.6,
        day_low=6,
        day_high=17,
        week_expected=79.2,
        week_low=65,
        week_high=94,
    )
    d = aggregate(
        _raw(),
        CONFIG,
        at_risk=[AtRiskCustomer("Ann", "tickets in 30 days 3 (typical 0)", 0.62)],
        staffing=staffing,
    )
    text = render_text(d)
    assert "🔮 Tomorrow: <b>12</b> customers (6–17, 90% interval)" in text
    assert "🔮 Next 7 days: <b>79</b> customers (65–94)" in text
    assert "• Ann (62%): tickets in 30 days 3 (typical 0)" in text
    assert d.to_json()["staffing"]["week_high"] == 94


def test_a_ticket_resolved_without_a_reply_stops_waiting_at_its_resolution() -> None:
    t = T0.timestamp()
    data = _data(created=[t, t], first_response=[np.nan, np.nan])
    data = PeriodData(
        start=data.start,
        end=data.end,
        tickets=data.tickets,
        messages=data.messages,
        rating_counts=data.rating_counts,
        agent_ratings=data.agent_ratings,
        times=TicketTimes(
            created=data.times.created,
            first_response=data.times.first_response,
            assignee=np.array([-1, -1], dtype=np.int64),
            # the first was resolved after 30 minutes without a reply; the second still waits
            resolved=np.array([t + 1800, np.nan]),
        ),
        resolutions=data.resolutions,
    )
    f = period_figures(
        data, hours=ALWAYS, target_minutes=60, as_of=T0 + timedelta(hours=3), names={}
    )
    # hand count: waits are 30 min (no breach) and 3 h (a breach); one ticket is still unanswered
    assert (f.answered, f.unanswered, f.breaches) == (0, 1, 1)
