"""SQL aggregates for the service-quality digest: small results, NumPy arrays, no ORM objects.

Every function takes an explicit session and aware UTC bounds ``[start, end)``; local days are
turned into UTC instants by :func:`day_edges` (a day in Europe/Berlin on a daylight-saving change
lasts 23 or 25 hours). Rows are bucketed into local days inside SQL with a ``CASE`` over those
edges, which works the same on SQLite and PostgreSQL. Results are plain dataclasses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import ColumnElement, Float, and_, case, func, literal_column, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement

from crm.models import Agent, Direction, Message, Rating, Resolution, Ticket

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

UNCATEGORISED = "uncategorised"
UNKNOWN_SENTIMENT = "unknown"
NEGATIVE = "negative"


# --------------------------------------------------------------------------------------
# Local days and portable SQL helpers
# --------------------------------------------------------------------------------------


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    """The UTC instant at which local ``day`` starts in ``tz``."""
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def day_edges(first: date, last: date, tz: ZoneInfo) -> list[datetime]:
    """UTC instants of the local midnights that start ``first`` .. ``last + 1`` (inclusive)."""
    if last < first:
        raise ValueError("last day before first day")
    n = (last - first).days + 1
    return [local_midnight(first + timedelta(days=i), tz) for i in range(n + 1)]


class epoch(FunctionElement[float]):
    """Seconds since 1970-01-01 UTC of a UTC timestamp column, as a float, on either backend."""

    type = Float()
    inherit_cache = True


@compiles(epoch, "sqlite")
def _epoch_sqlite(element: epoch, compiler: Any, **kw: Any) -> str:
    (arg,) = element.clauses
    return f"((julianday({compiler.process(arg, **kw)}) - 2440587.5) * 86400.0)"


@compiles(epoch)
def _epoch_default(element: epoch, compiler: Any, **kw: Any) -> str:
    (arg,) = element.clauses
    return f"CAST(EXTRACT(EPOCH FROM {compiler.process(arg, **kw)}) AS DOUBLE PRECISION)"


def day_index(column: Any, edges: Sequence[datetime]) -> ColumnElement[int]:
    """``CASE`` giving the index of the local day (between ``edges``) a timestamp falls in."""
    whens = [(column < edge, i) for i, edge in enumerate(edges[1:])]
    return case(*whens, else_=-1)


def _label(value: str | None, default: str) -> str:
    return value if value else default


def _floats(values: Sequence[Any]) -> FloatArray:
    return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)


# --------------------------------------------------------------------------------------
# One period: volume, ratings, response and resolution times
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TicketCounts:
    """New tickets in a period, by category, and how they went."""

    total: int = 0
    by_category: dict[str, int] = field(default_factory=dict)
    self_served: int = 0
    escalated: int = 0
    reopened: int = 0
    by_sentiment: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MessageCounts:
    """Messages in a period: customers' by category and sentiment, and support's replies."""

    customer: int = 0
    agent: int = 0
    bot: int = 0
    by_category: dict[str, int] = field(default_factory=dict)
    by_sentiment: dict[str, int] = field(default_factory=dict)
    #: (negative, analysed) customer messages per category, for the complaint-spike test.
    negative_by_category: dict[str, tuple[int, int]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, eq=False)
class TicketTimes:
    """Tickets created in a period that went to agents (self-served ones never wait for a person).

    Epoch seconds: ``created`` is when agents got the ticket (its escalation, else its creation);
    ``first_response`` the first agent reply and ``resolved`` the resolution (NaN: none yet).
    """

    created: FloatArray
    first_response: FloatArray
    assignee: IntArray  # -1 when nobody is assigned
    resolved: FloatArray | None = None


@dataclass(frozen=True, slots=True, eq=False)
class Resolutions:
    """Tickets resolved in a period: resolution time in seconds and who handled them."""

    seconds: FloatArray
    assignee: IntArray  # -1 when nobody is assigned
    resolution: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AgentRatings:
    count: int
    total: int


@dataclass(frozen=True, slots=True, eq=False)
class PeriodData:
    """Everything fetched for one period ``[start, end)``."""

    start: datetime
    end: datetime
    tickets: TicketCounts
    messages: MessageCounts
    rating_counts: tuple[int, int, int, int, int]
    agent_ratings: dict[int, AgentRatings]
    times: TicketTimes
    resolutions: Resolutions


def _between(column: Any, start: datetime, end: datetime) -> ColumnElement[bool]:
    return and_(column >= start, column < end)


async def ticket_counts(session: AsyncSession, *, start: datetime, end: datetime) -> TicketCounts:
    """New tickets by category and sentiment; self-served, escalated and reopened among them."""
    one: ColumnElement[int] = literal_column("1")
    rows = await session.execute(
        select(
            Ticket.category,
            Ticket.sentiment,
            func.count(),
            func.sum(case((Ticket.resolution == Resolution.SELF_SERVED.value, one), else_=0)),
            func.sum(case((Ticket.escalated_at.is_not(None), one), else_=0)),
            func.sum(case((Ticket.reopened_count > 0, one), else_=0)),
        )
        .where(_between(Ticket.created_at, start, end))
        .group_by(Ticket.category, Ticket.sentiment)
    )
    by_category: dict[str, int] = {}
    by_sentiment: dict[str, int] = {}
    total = self_served = escalated = reopened = 0
    for category, sentiment, count, served, esc, reo in rows:
        label = _label(category, UNCATEGORISED)
        by_category[label] = by_category.get(label, 0) + int(count)
        mood = _label(sentiment, UNKNOWN_SENTIMENT)
        by_sentiment[mood] = by_sentiment.get(mood, 0) + int(count)
        total += int(count)
        self_served += int(served or 0)
        escalated += int(esc or 0)
        reopened += int(reo or 0)
    return TicketCounts(total, by_category, self_served, escalated, reopened, by_sentiment)


async def message_counts(session: AsyncSession, *, start: datetime, end: datetime) -> MessageCounts:
    """Messages by direction, author, category and sentiment (one GROUP BY)."""
    rows = await session.execute(
        select(
            Message.direction,
            Message.author_kind,
            Message.category,
            Message.sentiment,
            func.count(),
        )
        .where(_between(Message.created_at, start, end))
        .group_by(Message.direction, Message.author_kind, Message.category, Message.sentiment)
    )
    customer = agent = bot = 0
    by_category: dict[str, int] = {}
    by_sentiment: dict[str, int] = {}
    negative: dict[str, tuple[int, int]] = {}
    for direction, author, category, sentiment, count in rows:
        count = int(count)
        if direction == Direction.INBOUND.value:
            customer += count
            cat = _label(category, UNCATEGORISED)
            by_category[cat] = by_category.get(cat, 0) + count
            sent = _label(sentiment, UNKNOWN_SENTIMENT)
            by_sentiment[sent] = by_sentiment.get(sent, 0) + count
            if sentiment:
                neg, n = negative.get(cat, (0, 0))
                negative[cat] = (neg + (count if sentiment == NEGATIVE else 0), n + count)
        elif direction == Direction.OUTBOUND.value:
            if author == "bot":
                bot += count
            else:
                agent += count
    return MessageCounts(customer, agent, bot, by_category, by_sentiment, negative)


async def rating_counts(
    session: AsyncSession, *, start: datetime, end: datetime
) -> tuple[tuple[int, int, int, int, int], dict[int, AgentRatings]]:
    """Ratings 1..5 counted, and (count, sum of scores) per agent."""
    rows = await session.execute(
        select(Rating.agent_id, Rating.score, func.count())
        .where(_between(Rating.created_at, start, end))
        .group_by(Rating.agent_id, Rating.score)
    )
    counts = [0, 0, 0, 0, 0]
    per_agent: dict[int, AgentRatings] = {}
    for agent_id, score, count in rows:
        score, count = int(score), int(count)
        if 1 <= score <= 5:
            counts[score - 1] += count
        if agent_id is not None:
            prev = per_agent.get(int(agent_id), AgentRatings(0, 0))
            per_agent[int(agent_id)] = AgentRatings(prev.count + count, prev.total + score * count)
    return (counts[0], counts[1], counts[2], counts[3], counts[4]), per_agent


async def ticket_times(session: AsyncSession, *, start: datetime, end: datetime) -> TicketTimes:
    """When agents got each ticket created in a period, answered it and resolved it.

    The clock starts at the escalation (a ticket the bot answered first reaches agents only when
    the customer says it did not help); self-served tickets never reached agents and are left out.
    """
    rows = (
        await session.execute(
            select(
                epoch(Ticket.created_at),
                epoch(Ticket.escalated_at),
                epoch(Ticket.first_response_at),
                Ticket.assignee_id,
                epoch(Ticket.resolved_at),
            )
            .where(
                _between(Ticket.created_at, start, end),
                or_(Ticket.escalated_at.is_not(None), Ticket.first_response_at.is_not(None)),
            )
            .order_by(Ticket.id)
        )
    ).all()
    return TicketTimes(
        created=_floats([r[1] if r[1] is not None else r[0] for r in rows]),
        first_response=_floats([r[2] for r in rows]),
        assignee=np.array([-1 if r[3] is None else int(r[3]) for r in rows], dtype=np.int64),
        resolved=_floats([r[4] for r in rows]),
    )


async def resolutions(session: AsyncSession, *, start: datetime, end: datetime) -> Resolutions:
    """Resolution time (seconds from creation) and assignee of tickets resolved in a period."""
    rows = (
        await session.execute(
            select(
                epoch(Ticket.resolved_at) - epoch(Ticket.created_at),
                Ticket.assignee_id,
                Ticket.resolution,
            )
            .where(_between(Ticket.resolved_at, start, end))
            .order_by(Ticket.id)
        )
    ).all()
    return Resolutions(
        seconds=np.maximum(_floats([r[0] for r in rows]), 0.0),
        assignee=np.array([-1 if r[1] is None else int(r[1]) for r in rows], dtype=np.int64),
        resolution=tuple(r[2] or "" for r in rows),
    )


async def period_data(session: AsyncSession, *, start: datetime, end: datetime) -> PeriodData:
    """All figures of one period, each from one aggregate query."""
    counts, per_agent = await rating_counts(session, start=start, end=end)
    return PeriodData(
        start=start,
        end=end,
        tickets=await ticket_counts(session, start=start, end=end),
        messages=await message_counts(session, start=start, end=end),
        rating_counts=counts,
        agent_ratings=per_agent,
        times=await ticket_times(session, start=start, end=end),
        resolutions=await resolutions(session, start=start, end=end),
    )


async def agent_names(session: AsyncSession, *, ids: Sequence[int]) -> dict[int, str]:
    """First names (or usernames) of the given agents."""
    wanted = sorted({i for i in ids if i >= 0})
    if not wanted:
        return {}
    rows = await session.execute(
        select(Agent.id, Agent.first_name, Agent.username).where(Agent.id.in_(wanted))
    )
    return {int(i): (name or username or f"agent {i}") for i, name, username in rows}


# --------------------------------------------------------------------------------------
# Daily series (chart, control limits, spike baseline)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class DailySeries:
    """Per local day between ``edges``: customer messages by category and sentiment, ratings.

    ``messages[(category, sentiment)]`` is an array with one count per day (``sentiment`` may be
    ``unknown``); ``ratings[d, s]`` counts ratings of score ``s + 1`` on day ``d``.
    """

    days: tuple[date, ...]
    messages: dict[tuple[str, str], IntArray]
    ratings: IntArray


async def daily_series(
    session: AsyncSession, *, first: date, last: date, tz: ZoneInfo, end: datetime | None = None
) -> DailySeries:
    """Daily aggregates over local days ``first .. last`` (the last one cut at ``end`` if given)."""
    edges = day_edges(first, last, tz)
    if end is not None:
        edges[-1] = min(edges[-1], max(end, edges[-2]))
    n_days = len(edges) - 1
    days = tuple(first + timedelta(days=i) for i in range(n_days))

    inner = (
        select(
            day_index(Message.created_at, edges).label("day"),
            Message.category.label("category"),
            Message.sentiment.label("sentiment"),
        )
        .where(
            _between(Message.created_at, edges[0], edges[-1]),
            Message.direction == Direction.INBOUND.value,
        )
        .subquery()
    )
    rows = await session.execute(
        select(inner.c.day, inner.c.category, inner.c.sentiment, func.count()).group_by(
            inner.c.day, inner.c.category, inner.c.sentiment
        )
    )
    messages: dict[tuple[str, str], IntArray] = {}
    for day, category, sentiment, count in rows:
        if day is None or not 0 <= int(day) < n_days:
            continue
        key = (_label(category, UNCATEGORISED), _label(sentiment, UNKNOWN_SENTIMENT))
        series = messages.setdefault(key, np.zeros(n_days, dtype=np.int64))
        series[int(day)] += int(count)

    rated = (
        select(day_index(Rating.created_at, edges).label("day"), Rating.score.label("score"))
        .where(_between(Rating.created_at, edges[0], edges[-1]))
        .subquery()
    )
    ratings = np.zeros((n_days, 5), dtype=np.int64)
    rows = await session.execute(
        select(rated.c.day, rated.c.score, func.count()).group_by(rated.c.day, rated.c.score)
    )
    for day, score, count in rows:
        if day is not None and 0 <= int(day) < n_days and 1 <= int(score) <= 5:
            ratings[int(day), int(score) - 1] += int(count)
    return DailySeries(days, messages, ratings)


# --------------------------------------------------------------------------------------
# Texts for the feedback themes
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CustomerText:
    """A customer's message (or rating comment) for the feedback themes."""

    category: str
    ticket_id: int | None
    text: str
    entities: list[Any] | None
    summary: str | None


async def customer_texts(
    session: AsyncSession, *, start: datetime, end: datetime, per_category: int = 200
) -> list[CustomerText]:
    """The latest customer texts of a period, at most ``per_category`` per category."""
    numbered = (
        select(
            Message.category.label("category"),
            Message.ticket_id.label("ticket_id"),
            Message.text.label("text"),
            Message.entities.label("entities"),
            Message.summary.label("summary"),
            func.row_number()
            .over(
                partition_by=Message.category,
                order_by=(Message.created_at.desc(), Message.id.desc()),
            )
            .label("rank"),
        )
        .where(
            _between(Message.created_at, start, end),
            Message.direction == Direction.INBOUND.value,
            Message.text != "",
        )
        .subquery()
    )
    rows = await session.execute(
        select(
            numbered.c.category,
            numbered.c.ticket_id,
            numbered.c.text,
            numbered.c.entities,
            numbered.c.summary,
        )
        .where(numbered.c.rank <= per_category)
        .order_by(numbered.c.category.is_(None), numbered.c.category, numbered.c.rank)
    )
    return [
        CustomerText(
            _label(category, UNCATEGORISED),
            ticket_id,
            text,
            entities if isinstance(entities, list) else None,
            summary,
        )
        for category, ticket_id, text, entities, summary in rows
    ]
