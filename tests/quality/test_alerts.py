"""Complaint spikes and SLA breaches against a real database: detected once, never twice."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from scipy import stats as sps
from sqlalchemy import select

from bot.texts.digest import render_sla_breach, render_spike
from crm.db import SessionFactory, session_scope
from crm.models import Alert, Customer, Message, Ticket
from quality import alerts
from quality.stats import BusinessHours

ZUTC = ZoneInfo("UTC")
NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)  # a Wednesday
ALWAYS = BusinessHours.parse("", ZUTC)


async def customer(factory: SessionFactory) -> int:
    async with session_scope(factory) as session:
        row = Customer(first_name="Jane", telegram_user_id=1, telegram_chat_id=1)
        session.add(row)
        await session.flush()
        return row.id


async def messages(
    factory: SessionFactory, customer_id: int, rows: Sequence[tuple[datetime, str | None, str]]
) -> None:
    async with session_scope(factory) as session:
        session.add_all(
            Message(
                customer_id=customer_id,
                direction="in",
                author_kind="customer",
                text="x",
                category=category,
                sentiment=sentiment,
                created_at=at,
            )
            for at, category, sentiment in rows
        )


def history(start: datetime) -> list[tuple[datetime, str | None, str]]:
    """28 days before ``start``: 10 billing messages a day, one of them negative."""
    rows: list[tuple[datetime, str | None, str]] = []
    for day in range(1, 29):
        for i in range(10):
            at = start - timedelta(days=day) + timedelta(hours=8, minutes=i)
            rows.append((at, "billing", "negative" if i == 0 else "neutral"))
    return rows


async def test_complaint_spike_announced_once_per_day_and_category(
    session_factory: SessionFactory,
) -> None:
    cid = await customer(session_factory)
    midnight = datetime(2026, 3, 4, tzinfo=UTC)
    today = [
        (midnight + timedelta(hours=9, minutes=i), "billing", "negative" if i < 8 else "neutral")
        for i in range(12)
    ]
    today.append((midnight + timedelta(hours=9), "delivery", "negative"))
    today.append((NOW + timedelta(minutes=5), "billing", "negative"))  # after "now": not counted
    await messages(session_factory, cid, [*history(midnight), *today])

    async with session_scope(session_factory) as session:
        found = await alerts.new_spikes(session, now=NOW, tz=ZUTC)
    p0 = 28 / 280  # the share of negative messages over the previous 28 days
    assert [(a.category, a.result.k, a.result.n) for a in found] == [
        (None, 9, 13),
        ("billing", 8, 12),
    ]
    billing = found[1].result
    assert billing.p0 == pytest.approx(p0)
    assert billing.p_value == pytest.approx(sps.binom.sf(7, 12, p0))
    assert "Complaint spike</b> in <b>billing</b>" in render_spike(found[1])
    assert "8 of 12 customer messages are negative" in render_spike(found[1])

    async with session_scope(session_factory) as session:
        again = await alerts.new_spikes(session, now=NOW + timedelta(minutes=5), tz=ZUTC)
    assert again == []
    async with session_factory() as session:
        keys = sorted((await session.execute(select(Alert.kind, Alert.key))).all())
    assert keys == [("spike", "2026-03-04:*"), ("spike", "2026-03-04:billing")]

    # the next day the same pattern is news again
    tomorrow = [
        (midnight + timedelta(days=1, hours=9, minutes=i), "billing", "negative") for i in range(8)
    ]
    await messages(session_factory, cid, tomorrow)
    async with session_scope(session_factory) as session:
        next_day = await alerts.new_spikes(session, now=NOW + timedelta(days=1), tz=ZUTC)
    assert [a.category for a in next_day] == [None, "billing"]


async def test_a_handful_of_complaints_is_no_spike(session_factory: SessionFactory) -> None:
    cid = await customer(session_factory)
    midnight = datetime(2026, 3, 4, tzinfo=UTC)
    today = [(midnight + timedelta(hours=9, minutes=i), "billing", "negative") for i in range(4)]
    await messages(session_factory, cid, [*history(midnight), *today])
    async with session_scope(session_factory) as session:
        assert await alerts.new_spikes(session, now=NOW, tz=ZUTC) == []


async def ticket(
    factory: SessionFactory,
    customer_id: int,
    created: datetime,
    *,
    status: str = "open",
    first_response: datetime | None = None,
    thread: int | None = None,
) -> int:
    async with session_scope(factory) as session:
        row = Ticket(
            customer_id=customer_id,
            created_at=created,
            updated_at=created,
            status=status,
            escalated_at=created,  # handed to the agents when it was opened
            first_response_at=first_response,
            staff_chat_id=-100 if thread else None,
            staff_thread_id=thread,
        )
        session.add(row)
        await session.flush()
        row.number = 1000 + row.id
        return row.id


async def test_sla_breaches_once_per_ticket(session_factory: SessionFactory) -> None:
    cid = await customer(session_factory)
    late = await ticket(session_factory, cid, NOW - timedelta(hours=2), thread=77)
    escalated = await ticket(session_factory, cid, NOW - timedelta(hours=3), status="escalated")
    await ticket(
        session_factory,
        cid,
        NOW - timedelta(hours=2),
        status="pending",
        first_response=NOW - timedelta(hours=1),
    )
    await ticket(session_factory, cid, NOW - timedelta(minutes=30))
    await ticket(session_factory, cid, NOW - timedelta(hours=2), status="resolved")
    await ticket(session_factory, cid, NOW - timedelta(days=20))  # too old to announce

    async with session_scope(session_factory) as session:
        found = await alerts.new_sla_breaches(session, now=NOW, hours=ALWAYS, target_minutes=60)
    assert [(b.ticket_id, b.waited_seconds, b.staff_thread_id) for b in found] == [
        (escalated, pytest.approx(3 * 3600.0, abs=1e-2), None),
        (late, pytest.approx(2 * 3600.0, abs=1e-2), 77),
    ]
    assert found[1].number == 1000 + late
    text = render_sla_breach(found[1], business_hours=False)
    assert text == (
        f"⏰ <b>#{1000 + late}</b> has waited 2h 00m (so far) for a first answer; "
        "the target is 60 min."
    )
    async with session_scope(session_factory) as session:
        again = await alerts.new_sla_breaches(
            session, now=NOW + timedelta(minutes=5), hours=ALWAYS, target_minutes=60
        )
    assert again == []


async def test_sla_counts_business_hours_only(session_factory: SessionFactory) -> None:
    cid = await customer(session_factory)
    saturday_noon = datetime(2026, 3, 7, 12, tzinfo=UTC)
    await ticket(session_factory, cid, saturday_noon - timedelta(hours=3))
    hours = BusinessHours.parse("mon-fri 09:00-17:00", ZUTC)
    async with session_scope(session_factory) as session:
        assert (
            await alerts.new_sla_breaches(
                session, now=saturday_noon, hours=hours, target_minutes=60
            )
            == []
        )
    monday = datetime(2026, 3, 9, 10, 1, tzinfo=UTC)  # 61 business minutes later
    async with session_scope(session_factory) as session:
        [breach] = await alerts.new_sla_breaches(
            session, now=monday, hours=hours, target_minutes=60
        )
    assert breach.waited_seconds == pytest.approx(61 * 60.0, abs=1e-2)
    assert "(business time)" in render_sla_breach(breach, business_hours=True)


async def test_claim_is_idempotent(session_factory: SessionFactory) -> None:
    async with session_scope(session_factory) as session:
        assert await alerts.claim(session, kind="spike", key="k", now=NOW) is True
        assert await alerts.claim(session, kind="spike", key="k", now=NOW) is False
        assert await alerts.claim(session, kind="sla", key="k", now=NOW) is True
    async with session_factory() as session:
        count = len((await session.execute(select(Alert.id))).all())
    assert count == 2


async def test_sla_clock_starts_when_agents_get_the_ticket(session_factory: SessionFactory) -> None:
    """A ticket the bot answered first reaches agents only when the customer says No."""
    cid = await customer(session_factory)
    opened = NOW - timedelta(hours=3)
    tid = await ticket(session_factory, cid, opened)
    async with session_scope(session_factory) as session:
        row = await session.get_one(Ticket, tid)
        row.escalated_at = NOW - timedelta(minutes=10)  # "No, I need a person" 10 minutes ago
    async with session_scope(session_factory) as session:
        found = await alerts.new_sla_breaches(session, now=NOW, hours=ALWAYS, target_minutes=60)
    assert found == []
    async with session_scope(session_factory) as session:
        row = await session.get_one(Ticket, tid)
        row.escalated_at = None  # still waiting for the customer's verdict: no agent clock yet
    async with session_scope(session_factory) as session:
        found = await alerts.new_sla_breaches(session, now=NOW, hours=ALWAYS, target_minutes=60)
    assert found == []
