"""Ratings: the customer's 1-5 verdict on a resolved ticket, given once."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from crm.errors import AlreadyRated, InvalidRating, NotRatable
from crm.models import Rating, Ticket, TicketStatus

MIN_SCORE, MAX_SCORE = 1, 5


async def get_for_ticket(session: AsyncSession, *, ticket_id: int) -> Rating | None:
    result = await session.execute(select(Rating).where(Rating.ticket_id == ticket_id))
    return result.scalar_one_or_none()


async def create(
    session: AsyncSession, *, ticket_id: int, customer_id: int, score: int, now: datetime
) -> Rating:
    """Store a rating once. Only the ticket's own customer may rate, and only a resolved ticket."""
    if not MIN_SCORE <= score <= MAX_SCORE:
        raise InvalidRating(score=score)
    ticket = await session.get(Ticket, ticket_id)
    if ticket is None or ticket.customer_id != customer_id:
        raise NotRatable(ticket_id=ticket_id)
    if await get_for_ticket(session, ticket_id=ticket_id) is not None:
        raise AlreadyRated(number=ticket.number)
    if ticket.status not in (TicketStatus.RESOLVED, TicketStatus.CLOSED):
        raise NotRatable(number=ticket.number)
    rating = Rating(
        ticket_id=ticket_id,
        customer_id=customer_id,
        agent_id=ticket.assignee_id,
        score=score,
        created_at=now,
    )
    try:
        async with session.begin_nested():
            session.add(rating)
    except IntegrityError as exc:  # a concurrent tap won the race
        raise AlreadyRated(number=ticket.number) from exc
    return rating


async def set_comment_prompt(session: AsyncSession, *, rating_id: int, message_id: int) -> None:
    rating = await session.get_one(Rating, rating_id)
    rating.comment_prompt_message_id = message_id
    await session.flush()


async def get_by_comment_prompt(
    session: AsyncSession, *, customer_id: int, message_id: int
) -> Rating | None:
    result = await session.execute(
        select(Rating).where(
            Rating.customer_id == customer_id, Rating.comment_prompt_message_id == message_id
        )
    )
    return result.scalar_one_or_none()
