"""Analysis folded into tickets, automatic answers and category corrections (database services)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crm import conversation, corrections, tickets
from crm.conversation import Incoming
from crm.db import SessionFactory, session_scope
from crm.errors import TicketNotFound
from crm.models import Message, Resolution, TicketStatus
from crm.schemas import MessageAnalysis

T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)


def analysis(
    category: str, confidence: float, sentiment: str = "neutral", urgency: str = "normal"
) -> MessageAnalysis:
    return MessageAnalysis(
        language="en",
        category=category,
        category_confidence=confidence,
        sentiment=sentiment,
        sentiment_confidence=0.9,
        urgency=urgency,
        entities=[{"label": "ORDER", "text": "AB-123456", "start": 0, "end": 9}],
        summary="summary",
    )


async def say(
    factory: SessionFactory, user_id: int, text: str, now: datetime = T0
) -> conversation.Routed:
    data = Incoming(telegram_user_id=user_id, chat_id=user_id, first_name="C", text=text)
    async with session_scope(factory) as session:
        _, message_id = await conversation.store_incoming(session, incoming=data, now=now)
    async with session_scope(factory) as session:
        return await conversation.route_incoming(
            session, message_id=message_id, reply_to_message_id=None, now=now
        )


async def test_analysis_sets_category_priority_and_keeps_corrections(
    session_factory: SessionFactory,
) -> None:
    first = await say(session_factory, 1, "where is my parcel")
    async with session_scope(session_factory) as session:
        info = await conversation.apply_analysis(
            session,
            message_id=first.message.id,
            analysis=analysis("orders_delivery", 0.7),
            ticket_summary="Parcel late.",
            now=T0,
        )
        row = await session.get_one(Message, first.message.id)
        assert (row.category, row.sentiment, (row.entities or [{}])[0].get("text")) == (
            "orders_delivery",
            "neutral",
            "AB-123456",
        )
    assert (info.category, info.priority, info.summary) == ("orders_delivery", 3, "Parcel late.")
    second = await say(
        session_factory, 1, "THIS IS A DISGRACE, I WILL SUE", T0 + timedelta(minutes=1)
    )
    async with session_scope(session_factory) as session:
        info = await conversation.apply_analysis(
            session,
            message_id=second.message.id,
            analysis=analysis("complaint", 0.6, "negative", "high"),
            ticket_summary=None,
            now=T0,
        )
    # less confident category does not replace the ticket's; urgency and sentiment do
    assert (info.category, info.sentiment, info.urgency, info.priority) == (
        "orders_delivery",
        "negative",
        "high",
        1,
    )
    async with session_scope(session_factory) as session:
        fix = await corrections.create(
            session, ticket_id=first.ticket.id, agent_id=None, category="complaint", now=T0
        )
        assert fix.previous_category == "orders_delivery"
        assert fix.text == "where is my parcel\nTHIS IS A DISGRACE, I WILL SUE"
    third = await say(session_factory, 1, "hello?", T0 + timedelta(minutes=2))
    async with session_scope(session_factory) as session:
        info = await conversation.apply_analysis(
            session,
            message_id=third.message.id,
            analysis=analysis("account_login", 0.99),
            ticket_summary=None,
            now=T0,
        )
        assert info.category == "complaint"  # the agent's correction stays
        assert await corrections.examples(session) == [
            ("where is my parcel\nTHIS IS A DISGRACE, I WILL SUE", "complaint")
        ]


async def test_queue_orders_by_priority_then_waiting(session_factory: SessionFactory) -> None:
    calm = await say(session_factory, 1, "question", T0)
    angry = await say(session_factory, 2, "angry", T0 + timedelta(minutes=5))
    async with session_scope(session_factory) as session:
        await conversation.apply_analysis(
            session,
            message_id=angry.message.id,
            analysis=analysis("complaint", 0.9, "negative", "high"),
            ticket_summary=None,
            now=T0,
        )
        queue = await tickets.queue(session)
    assert [q.ticket.id for q in queue] == [angry.ticket.id, calm.ticket.id]


async def test_auto_answer_then_self_served_or_escalated(session_factory: SessionFactory) -> None:
    helped = await say(session_factory, 1, "how do I reset my password")
    unhelped = await say(session_factory, 2, "how do I reset my password")
    async with session_scope(session_factory) as session:
        await conversation.auto_answer(
            session, ticket_id=helped.ticket.id, text="Use the link.", now=T0
        )
        await conversation.auto_answer(
            session, ticket_id=unhelped.ticket.id, text="Use the link.", now=T0
        )
    with pytest.raises(TicketNotFound):  # one customer cannot close another's ticket
        async with session_scope(session_factory) as session:
            await conversation.self_served(
                session, ticket_id=helped.ticket.id, customer_id=unhelped.customer.id, now=T0
            )
    async with session_scope(session_factory) as session:
        done = await conversation.self_served(
            session, ticket_id=helped.ticket.id, customer_id=helped.customer.id, now=T0
        )
        action = await conversation.escalate(
            session, ticket_id=unhelped.ticket.id, customer_id=unhelped.customer.id, now=T0
        )
    assert (done.status, done.resolution) == (TicketStatus.RESOLVED, Resolution.SELF_SERVED)
    assert (action.ticket.status, action.ticket.first_response_at) == (TicketStatus.ESCALATED, None)


async def test_ticket_context_counts_repeated_contact(session_factory: SessionFactory) -> None:
    first = await say(session_factory, 1, "one", T0)
    async with session_scope(session_factory) as session:
        await conversation.resolve(session, ticket_id=first.ticket.id, now=T0)
    second = await say(session_factory, 1, "two", T0 + timedelta(days=1))
    await say(session_factory, 1, "more", T0 + timedelta(days=1, minutes=1))
    async with session_scope(session_factory) as session:
        context = await conversation.ticket_context(
            session, ticket_id=second.ticket.id, now=T0 + timedelta(days=1)
        )
    assert context.texts == ["two", "more"]
    assert context.repeated_contact == 0  # the earlier ticket was settled: not a repeat
    async with session_scope(session_factory) as session:
        await conversation.reopen(session, ticket_id=first.ticket.id, now=T0 + timedelta(days=1))
        context = await conversation.ticket_context(
            session, ticket_id=second.ticket.id, now=T0 + timedelta(days=1)
        )
    assert context.repeated_contact == 1  # reopened: the customer is back about it
