"""The conversation services against a real database session (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from crm import conversation, tickets
from crm.conversation import Incoming, RouteKind
from crm.db import SessionFactory, session_scope
from crm.errors import AlreadyRated, InvalidRating, NotRatable, TicketNotActive
from crm.messages import Media
from crm.models import Message, Rating, Ticket, TicketStatus

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def incoming(
    user_id: int, text: str, *, media: Media | None = None, reply_to_message_id: int | None = None
) -> Incoming:
    return Incoming(
        telegram_user_id=user_id,
        chat_id=user_id,
        first_name=f"User {user_id}",
        text=text,
        media=media,
        reply_to_message_id=reply_to_message_id,
    )


async def say(factory: SessionFactory, data: Incoming, now: datetime = T0) -> conversation.Routed:
    async with session_scope(factory) as session:
        _, message_id = await conversation.store_incoming(session, incoming=data, now=now)
    async with session_scope(factory) as session:
        return await conversation.route_incoming(
            session, message_id=message_id, reply_to_message_id=data.reply_to_message_id, now=now
        )


async def agent(factory: SessionFactory) -> int:
    from crm import agents

    async with session_scope(factory) as session:
        row = await agents.upsert(
            session, telegram_user_id=900, first_name="Alice", username=None, now=T0
        )
        return row.id


async def test_first_message_opens_ticket_and_follow_up_joins_it(
    session_factory: SessionFactory,
) -> None:
    first = await say(session_factory, incoming(1, "My parcel is late"))
    assert first.kind == RouteKind.NEW_TICKET
    assert first.ticket.number == 1001
    assert first.ticket.status == TicketStatus.OPEN
    assert first.card is not None and first.card.earlier == []
    second = await say(session_factory, incoming(1, "Order 12345"), T0 + timedelta(minutes=1))
    assert second.kind == RouteKind.FOLLOW_UP
    assert second.ticket.id == first.ticket.id
    async with session_scope(session_factory) as session:
        texts = [
            m.text
            for m in await conversation.messages.list_for_ticket(session, ticket_id=first.ticket.id)
        ]
        assert texts == ["My parcel is late", "Order 12345"]
        assert (await session.get_one(Ticket, first.ticket.id)).subject == "My parcel is late"


async def test_message_is_stored_even_if_routing_never_happens(
    session_factory: SessionFactory,
) -> None:
    async with session_scope(session_factory) as session:
        _, message_id = await conversation.store_incoming(
            session, incoming=incoming(5, "hello", media=Media("photo", "F1", "U1")), now=T0
        )
    async with session_scope(session_factory) as session:
        row = await session.get_one(Message, message_id)
        assert (row.text, row.media_kind, row.media_file_id, row.ticket_id) == (
            "hello",
            "photo",
            "F1",
            None,
        )


async def test_customers_each_get_their_own_ticket(session_factory: SessionFactory) -> None:
    a = await say(session_factory, incoming(1, "a"))
    b = await say(session_factory, incoming(2, "b"))
    assert a.ticket.id != b.ticket.id
    assert a.customer.id != b.customer.id


async def test_agent_reply_sets_first_response_once(session_factory: SessionFactory) -> None:
    routed = await say(session_factory, incoming(1, "help"))
    agent_id = await agent(session_factory)
    async with session_scope(session_factory) as session:
        first = await conversation.agent_message(
            session,
            ticket_id=routed.ticket.id,
            agent_id=agent_id,
            text="hi",
            now=T0 + timedelta(minutes=5),
        )
    async with session_scope(session_factory) as session:
        second = await conversation.agent_message(
            session,
            ticket_id=routed.ticket.id,
            agent_id=agent_id,
            text="again",
            now=T0 + timedelta(minutes=9),
        )
    assert first.is_first_response is True
    assert second.is_first_response is False
    assert second.ticket.first_response_at == T0 + timedelta(minutes=5)
    assert second.ticket.status == TicketStatus.PENDING
    assert second.ticket.assignee_id == agent_id
    follow = await say(
        session_factory, incoming(1, "thanks, still broken"), T0 + timedelta(minutes=10)
    )
    assert follow.ticket.status == TicketStatus.OPEN


async def test_after_resolution_next_message_opens_new_ticket_and_rating_once(
    session_factory: SessionFactory,
) -> None:
    routed = await say(session_factory, incoming(1, "help"))
    agent_id = await agent(session_factory)
    async with session_scope(session_factory) as session:
        done = await conversation.resolve(
            session, ticket_id=routed.ticket.id, agent_id=agent_id, now=T0 + timedelta(hours=1)
        )
    assert done.ticket.status == TicketStatus.RESOLVED
    assert done.ticket.resolved_at == T0 + timedelta(hours=1)
    async with session_scope(session_factory) as session:
        given = await conversation.rate(
            session, ticket_id=routed.ticket.id, customer_id=routed.customer.id, score=4, now=T0
        )
    assert given.score == 4
    with pytest.raises(AlreadyRated):
        async with session_scope(session_factory) as session:
            await conversation.rate(
                session, ticket_id=routed.ticket.id, customer_id=routed.customer.id, score=1, now=T0
            )
    async with session_scope(session_factory) as session:
        assert await session.scalar(select(func.count(Rating.id))) == 1
    again = await say(session_factory, incoming(1, "new problem"), T0 + timedelta(hours=2))
    assert again.kind == RouteKind.NEW_TICKET
    assert again.ticket.number == 1002
    assert again.card is not None
    assert [(p.number, p.rating) for p in again.card.earlier] == [(1001, 4)]


async def test_rating_rules(session_factory: SessionFactory) -> None:
    mine = await say(session_factory, incoming(1, "mine"))
    other = await say(session_factory, incoming(2, "other"))
    async with session_scope(session_factory) as session:
        await conversation.resolve(session, ticket_id=mine.ticket.id, now=T0)
    with pytest.raises(InvalidRating):
        async with session_scope(session_factory) as session:
            await conversation.rate(
                session, ticket_id=mine.ticket.id, customer_id=mine.customer.id, score=6, now=T0
            )
    with pytest.raises(NotRatable):  # one customer never rates another's ticket
        async with session_scope(session_factory) as session:
            await conversation.rate(
                session, ticket_id=mine.ticket.id, customer_id=other.customer.id, score=5, now=T0
            )
    with pytest.raises(NotRatable):  # not resolved yet
        async with session_scope(session_factory) as session:
            await conversation.rate(
                session, ticket_id=other.ticket.id, customer_id=other.customer.id, score=5, now=T0
            )


async def test_rating_comment_by_reply(session_factory: SessionFactory) -> None:
    routed = await say(session_factory, incoming(1, "x"))
    async with session_scope(session_factory) as session:
        await conversation.resolve(session, ticket_id=routed.ticket.id, now=T0)
        given = await conversation.rate(
            session, ticket_id=routed.ticket.id, customer_id=routed.customer.id, score=2, now=T0
        )
        await conversation.set_comment_prompt(session, rating_id=given.rating_id, message_id=77)
    comment = await say(session_factory, incoming(1, "too slow", reply_to_message_id=77))
    assert comment.kind == RouteKind.RATING_COMMENT
    assert comment.rating_score == 2
    async with session_scope(session_factory) as session:
        rating = await session.get_one(Rating, given.rating_id)
        assert rating.comment == "too slow"
        assert await session.scalar(select(func.count(Ticket.id))) == 1


async def test_new_command_and_reopen_and_queue(session_factory: SessionFactory) -> None:
    first = await say(session_factory, incoming(1, "first"))
    async with session_scope(session_factory) as session:
        await conversation.request_new_ticket(session, customer_id=first.customer.id)
    second = await say(session_factory, incoming(1, "second"), T0 + timedelta(minutes=1))
    third = await say(session_factory, incoming(1, "more on second"), T0 + timedelta(minutes=2))
    assert second.kind == RouteKind.NEW_TICKET and second.ticket.id != first.ticket.id
    assert third.ticket.id == second.ticket.id
    async with session_scope(session_factory) as session:
        queue = await tickets.queue(session)
        assert [q.ticket.number for q in queue] == [1001, 1002]
        await conversation.resolve(session, ticket_id=first.ticket.id, now=T0)
    with pytest.raises(TicketNotActive):
        async with session_scope(session_factory) as session:
            await conversation.resolve(session, ticket_id=first.ticket.id, now=T0)
    async with session_scope(session_factory) as session:
        reopened = await conversation.reopen(session, ticket_id=first.ticket.id, now=T0)
    assert reopened.ticket.status == TicketStatus.OPEN
    async with session_scope(session_factory) as session:
        human = await conversation.request_human(session, customer_id=first.customer.id, now=T0)
    assert human is not None and human.status == TicketStatus.ESCALATED


async def test_notes_are_internal(session_factory: SessionFactory) -> None:
    routed = await say(session_factory, incoming(1, "x"))
    agent_id = await agent(session_factory)
    async with session_scope(session_factory) as session:
        await conversation.add_note(
            session, ticket_id=routed.ticket.id, agent_id=agent_id, text="VIP", now=T0
        )
        rows = await conversation.messages.list_for_ticket(session, ticket_id=routed.ticket.id)
    assert [(m.direction, m.text) for m in rows] == [("in", "x"), ("internal", "VIP")]


async def test_sqlite_runs_in_wal_mode(tmp_path: object) -> None:
    from pathlib import Path

    from crm.db import create_engine

    engine = create_engine(f"sqlite+aiosqlite:///{Path(str(tmp_path)) / 'x' / 'wal.db'}")
    try:
        async with engine.connect() as conn:
            mode = (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar_one()
            keys = (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar_one()
    finally:
        await engine.dispose()
    assert (mode, keys) == ("wal", 1)
