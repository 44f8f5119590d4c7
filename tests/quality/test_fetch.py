"""SQL aggregates against a real database (SQLite, and PostgreSQL where configured), with
hand-made rows around the daylight-saving changes in Europe/Berlin."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import typer
from typer.testing import CliRunner

from bot import digest_cli as cli
from bot.texts.digest import render_text
from crm.db import SessionFactory, session_scope
from crm.models import Agent, Customer, Message, Rating, Ticket
from quality import fetch
from quality.digest import DigestConfig, PeriodKind, build_digest
from quality.stats import BusinessHours
from settings import load_settings

BERLIN = ZoneInfo("Europe/Berlin")


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


async def base(factory: SessionFactory) -> tuple[int, int, int]:
    """A customer and two agents."""
    async with session_scope(factory) as session:
        customer = Customer(first_name="Jane", telegram_user_id=1, telegram_chat_id=1)
        alice = Agent(telegram_user_id=901, first_name="Alice")
        bob = Agent(telegram_user_id=902, first_name="Bob")
        session.add_all([customer, alice, bob])
        await session.flush()
        return customer.id, alice.id, bob.id


async def add_ticket(
    factory: SessionFactory,
    customer_id: int,
    created: datetime,
    *,
    first_response: datetime | None = None,
    resolved: datetime | None = None,
    assignee: int | None = None,
    category: str | None = None,
    resolution: str | None = None,
    escalated: datetime | None = None,
    reopened: int = 0,
    status: str = "open",
) -> int:
    async with session_scope(factory) as session:
        ticket = Ticket(
            customer_id=customer_id,
            created_at=created,
            updated_at=created,
            first_response_at=first_response,
            resolved_at=resolved,
            assignee_id=assignee,
            category=category,
            resolution=resolution,
            escalated_at=escalated,
            reopened_count=reopened,
            status=status,
        )
        session.add(ticket)
        await session.flush()
        ticket.number = 1000 + ticket.id
        return ticket.id


async def add_message(
    factory: SessionFactory,
    customer_id: int,
    ticket_id: int | None,
    at: datetime,
    *,
    direction: str = "in",
    author: str = "customer",
    text: str = "hello",
    category: str | None = None,
    sentiment: str | None = None,
) -> None:
    async with session_scope(factory) as session:
        session.add(
            Message(
                customer_id=customer_id,
                ticket_id=ticket_id,
                direction=direction,
                author_kind=author,
                text=text,
                category=category,
                sentiment=sentiment,
                created_at=at,
            )
        )


async def add_rating(
    factory: SessionFactory,
    customer_id: int,
    ticket_id: int,
    score: int,
    at: datetime,
    agent_id: int | None = None,
) -> None:
    async with session_scope(factory) as session:
        session.add(
            Rating(
                ticket_id=ticket_id,
                customer_id=customer_id,
                agent_id=agent_id,
                score=score,
                created_at=at,
            )
        )


# Local-day boundaries around the spring change (Sunday 29 March 2026 has 23 hours).
BEFORE_SPRING = utc(2026, 3, 28, 22, 59, 59)  # Sat 23:59:59 CET
SPRING_START = utc(2026, 3, 28, 23, 0, 0)  # Sun 00:00 CET
SPRING_LAST = utc(2026, 3, 29, 21, 59, 0)  # Sun 23:59 CEST
AFTER_SPRING = utc(2026, 3, 29, 22, 0, 0)  # Mon 00:00 CEST
# Autumn: Sunday 25 October 2026 has 25 hours.
AUTUMN_START = utc(2026, 10, 24, 22, 0, 0)  # Sun 00:00 CEST
AUTUMN_LAST = utc(2026, 10, 25, 22, 59, 0)  # Sun 23:59 CET
AFTER_AUTUMN = utc(2026, 10, 25, 23, 0, 0)  # Mon 00:00 CET


async def test_daily_series_buckets_local_days_across_dst(
    session_factory: SessionFactory,
) -> None:
    customer, alice, _ = await base(session_factory)
    ticket = await add_ticket(session_factory, customer, BEFORE_SPRING)
    for at, category, sentiment in [
        (BEFORE_SPRING, "billing", "negative"),
        (SPRING_START, "billing", "neutral"),
        (SPRING_LAST, "billing", "negative"),
        (SPRING_LAST, None, None),
        (AFTER_SPRING, "delivery", "positive"),
    ]:
        await add_message(
            session_factory, customer, ticket, at, category=category, sentiment=sentiment
        )
    await add_message(
        session_factory, customer, ticket, SPRING_START, direction="out", author="agent"
    )  # agents' messages are not counted
    await add_rating(session_factory, customer, ticket, 4, SPRING_LAST, alice)

    async with session_factory() as session:
        series = await fetch.daily_series(
            session, first=date(2026, 3, 28), last=date(2026, 3, 30), tz=BERLIN
        )
    assert series.days == (date(2026, 3, 28), date(2026, 3, 29), date(2026, 3, 30))
    got = {k: v.tolist() for k, v in series.messages.items()}
    assert got == {
        ("billing", "negative"): [1, 1, 0],
        ("billing", "neutral"): [0, 1, 0],
        ("uncategorised", "unknown"): [0, 1, 0],
        ("delivery", "positive"): [0, 0, 1],
    }
    assert series.ratings.tolist() == [[0, 0, 0, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 0]]


async def test_daily_series_on_the_25_hour_day(session_factory: SessionFactory) -> None:
    customer, _, _ = await base(session_factory)
    for at in (AUTUMN_START - timedelta(seconds=1), AUTUMN_START, AUTUMN_LAST, AFTER_AUTUMN):
        await add_message(session_factory, customer, None, at, category="billing")
    async with session_factory() as session:
        series = await fetch.daily_series(
            session, first=date(2026, 10, 24), last=date(2026, 10, 26), tz=BERLIN
        )
    assert series.messages[("billing", "unknown")].tolist() == [1, 2, 1]


async def test_daily_series_cut_at_now(session_factory: SessionFactory) -> None:
    customer, _, _ = await base(session_factory)
    for hour in (1, 5, 9):
        await add_message(session_factory, customer, None, utc(2026, 3, 4, hour))
    async with session_factory() as session:
        series = await fetch.daily_series(
            session,
            first=date(2026, 3, 4),
            last=date(2026, 3, 4),
            tz=ZoneInfo("UTC"),
            end=utc(2026, 3, 4, 6),
        )
    assert series.messages[("uncategorised", "unknown")].tolist() == [2]


async def test_period_aggregates_on_the_23_hour_day(session_factory: SessionFactory) -> None:
    customer, alice, bob = await base(session_factory)
    start, end = SPRING_START, AFTER_SPRING
    t1 = await add_ticket(
        session_factory,
        customer,
        SPRING_START,
        first_response=SPRING_START + timedelta(minutes=10),
        resolved=SPRING_START + timedelta(hours=2),
        assignee=alice,
        category="billing",
        resolution="agent",
        status="resolved",
    )
    t2 = await add_ticket(
        session_factory,
        customer,
        SPRING_START + timedelta(hours=3),
        first_response=SPRING_START + timedelta(hours=3, minutes=30),
        assignee=bob,
        category="billing",
        escalated=SPRING_START + timedelta(hours=3),
        reopened=1,
    )
    t3 = await add_ticket(
        session_factory,
        customer,
        SPRING_LAST,
        resolved=SPRING_LAST + timedelta(seconds=30),
        resolution="self_served",
        status="resolved",
    )
    # outside the day: created before it, resolved inside it
    t0 = await add_ticket(
        session_factory,
        customer,
        BEFORE_SPRING - timedelta(hours=1),
        first_response=BEFORE_SPRING,
        resolved=SPRING_START + timedelta(hours=1),
        assignee=bob,
        resolution="agent",
        status="resolved",
    )
    await add_ticket(session_factory, customer, AFTER_SPRING, category="delivery")
    for at, category, sentiment in [
        (SPRING_START, "billing", "negative"),
        (SPRING_START + timedelta(hours=1), "billing", "negative"),
        (SPRING_START + timedelta(hours=2), "billing", "neutral"),
        (SPRING_LAST, None, None),
        (BEFORE_SPRING, "billing", "negative"),
    ]:
        await add_message(
            session_factory,
            customer,
            t1,
            at,
            category=category,
            sentiment=sentiment,
            text=f"text at {at:%H:%M}",
        )
    await add_message(session_factory, customer, t1, SPRING_START, direction="out", author="agent")
    await add_message(session_factory, customer, t3, SPRING_LAST, direction="out", author="bot")
    await add_message(
        session_factory, customer, t1, SPRING_START, direction="internal", author="agent"
    )
    await add_rating(session_factory, customer, t1, 5, SPRING_START + timedelta(hours=3), alice)
    await add_rating(session_factory, customer, t0, 2, SPRING_START + timedelta(hours=4), bob)
    await add_rating(session_factory, customer, t3, 4, SPRING_LAST, None)
    await add_rating(session_factory, customer, t2, 1, AFTER_SPRING, bob)  # the next day

    async with session_factory() as session:
        data = await fetch.period_data(session, start=start, end=end)
        names = await fetch.agent_names(session, ids=[alice, bob, -1])
        texts = await fetch.customer_texts(session, start=start, end=end, per_category=2)

    assert data.tickets.total == 3
    assert data.tickets.by_category == {"billing": 2, "uncategorised": 1}
    assert data.tickets.by_sentiment == {"unknown": 3}  # these hand-made tickets were not analysed
    assert (data.tickets.self_served, data.tickets.escalated, data.tickets.reopened) == (1, 1, 1)
    m = data.messages
    assert (m.customer, m.agent, m.bot) == (4, 1, 1)
    assert m.by_category == {"billing": 3, "uncategorised": 1}
    assert m.by_sentiment == {"negative": 2, "neutral": 1, "unknown": 1}
    assert m.negative_by_category == {"billing": (2, 3)}
    assert data.rating_counts == (0, 1, 0, 1, 1)
    assert {k: (v.count, v.total) for k, v in data.agent_ratings.items()} == {
        alice: (1, 5),
        bob: (1, 2),
    }
    s0 = SPRING_START.timestamp()
    # The self-served ticket (t3) never waited for a person: it has no first-response time.
    assert data.times.created.tolist() == pytest.approx([s0, s0 + 3 * 3600], abs=1e-3)
    assert data.times.first_response.tolist() == pytest.approx(
        [s0 + 600, s0 + 3.5 * 3600], abs=1e-3
    )
    assert data.times.assignee.tolist() == [alice, bob]
    assert data.times.resolved is not None
    assert data.times.resolved[0] == pytest.approx(s0 + 7200, abs=1e-3)
    assert data.resolutions.seconds.tolist() == pytest.approx([7200.0, 30.0, 7201.0], abs=1e-3)
    assert data.resolutions.assignee.tolist() == [alice, -1, bob]
    assert data.resolutions.resolution == ("agent", "self_served", "agent")
    assert names == {alice: "Alice", bob: "Bob"}
    assert [(t.category, t.text) for t in texts] == [
        ("billing", "text at 01:00"),  # latest first, times in UTC
        ("billing", "text at 00:00"),
        ("uncategorised", "text at 21:59"),
    ]


async def test_build_digest_end_to_end_in_berlin(session_factory: SessionFactory) -> None:
    customer, alice, _ = await base(session_factory)
    ticket = await add_ticket(
        session_factory,
        customer,
        SPRING_START + timedelta(hours=8),
        first_response=SPRING_START + timedelta(hours=8, minutes=20),
        assignee=alice,
        category="billing",
        resolved=SPRING_START + timedelta(hours=9),
        resolution="agent",
        status="resolved",
    )
    await add_message(
        session_factory,
        customer,
        ticket,
        SPRING_START + timedelta(hours=8),
        category="billing",
        sentiment="negative",
        text="I was charged twice, write to jane@example.com",
    )
    await add_rating(
        session_factory, customer, ticket, 5, SPRING_START + timedelta(hours=10), alice
    )
    # the day before: one ticket, rated 3
    before = await add_ticket(session_factory, customer, BEFORE_SPRING - timedelta(hours=5))
    await add_rating(session_factory, customer, before, 3, BEFORE_SPRING, None)

    config = DigestConfig(tz=BERLIN, hours=BusinessHours.parse("", BERLIN))
    async with session_factory() as session:
        digest = await build_digest(
            session, kind="day", day=date(2026, 3, 29), config=config, now=utc(2026, 3, 30, 8)
        )
    assert digest.period.end - digest.period.start == timedelta(hours=23)
    assert digest.current.volume.tickets == 1
    assert digest.previous.volume.tickets == 1
    assert digest.current.csat.mean == 5.0
    assert digest.changes["csat_mean"].delta == 2.0
    assert digest.current.first_response.median == pytest.approx(1200.0, abs=1e-3)
    assert digest.current.resolution.median == pytest.approx(3600.0, abs=1e-3)
    assert [(a.name, a.handled, a.mean_rating) for a in digest.current.agents] == [
        ("Alice", 1, 5.0)
    ]
    [theme] = digest.themes
    assert theme.quotes == ("I was charged twice, write to [email]",)
    assert digest.control.days[-1].day == date(2026, 3, 29)
    assert digest.control.days[-1].count == 1
    assert digest.control.days[-2].count == 1  # the rating on Saturday
    text = render_text(digest)
    assert "📊 <b>Daily digest</b> · Sun 29 Mar 2026" in text
    assert "🎫 New tickets: <b>1</b> (=)" in text
    assert "⭐ Mean <b>5.00</b> (▲ 2.00)" in text


def test_cli_digest_json_chart_and_send_without_token(
    tmp_path: Path, sqlite_template: Path
) -> None:
    """``digest --json`` prints exactly one JSON object; ``--send`` without a token exits 2."""
    db = tmp_path / "kefu.db"
    shutil.copy(sqlite_template, db)
    settings = load_settings(
        _env_file=None,
        database_url=f"sqlite+aiosqlite:///{db}",
        data_dir=tmp_path,
        timezone="Europe/Berlin",
    )
    app = typer.Typer()

    @app.callback()
    def root() -> None:
        """Kefu."""

    cli.register(app, lambda: settings)
    runner = CliRunner()
    chart = tmp_path / "out" / "digest.png"
    result = runner.invoke(
        app, ["digest", "--period", "week", "--date", "2026-03-29", "--json", "--chart", str(chart)]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["kind"] == "week"
    assert (data["period"]["first"], data["period"]["last"]) == ("2026-03-23", "2026-03-29")
    assert data["current"]["volume"]["tickets"] == 0
    assert data["chart_file"] == str(chart)
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    text = runner.invoke(app, ["digest", "--date", "2026-03-29"])
    assert text.exit_code == 0
    assert text.stdout.startswith("📊 Daily digest · Sun 29 Mar 2026\nEurope/Berlin")
    assert "<b>" not in text.stdout

    refused = runner.invoke(app, ["digest", "--send"])
    assert refused.exit_code == 2
    assert "Cannot send: KEFU_TELEGRAM_TOKEN is not set." in refused.stderr
    bad = runner.invoke(app, ["digest", "--date", "29.03.2026"])
    assert bad.exit_code == 2
    assert "--date must look like 2026-03-01, not '29.03.2026'." in bad.stderr


def test_default_cli_days() -> None:
    settings = load_settings(_env_file=None, timezone="Europe/Berlin")
    wednesday = datetime(2026, 3, 4, 8, 0, tzinfo=BERLIN)
    assert cli.default_day(PeriodKind.DAY, wednesday, settings) == date(2026, 3, 3)
    assert cli.default_day(PeriodKind.WEEK, wednesday, settings) == date(2026, 2, 23)
    monday = datetime(2026, 3, 2, 0, 30, tzinfo=BERLIN)
    assert cli.default_day(PeriodKind.WEEK, monday, settings) == date(2026, 2, 23)
