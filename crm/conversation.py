"""The conversation's record keeping: the steps the support flows (``crm/support/flows.py``) take.

Each function changes the records inside the caller's transaction (it only flushes); the flows
decide when to call them and what to tell whom. Nothing here knows about Telegram.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from crm import messages, ratings, tickets
from crm.errors import TicketNotFound
from crm.messages import Media
from crm.models import AuthorKind, Customer, Direction, Rating, TicketStatus
from crm.schemas import CustomerInfo, MessageAnalysis

__all__ = [
    "CORRECTED_CONFIDENCE",
    "REPEATED_CONTACT_WINDOW",
    "AgentMessage",
    "MessageAnalysis",
    "RatingGiven",
    "TicketContext",
    "add_note",
    "add_rating_comment",
    "agent_message",
    "apply_analysis",
    "auto_answer",
    "hand_to_agents",
    "rate",
    "rating_of",
    "ticket_context",
]

CORRECTED_CONFIDENCE = 1.0  # an agent's correction; automatic confidences stay below it
REPEATED_CONTACT_WINDOW = timedelta(days=7)
URGENCY_ORDER = {"low": 0, "normal": 1, "high": 2}


@dataclass(frozen=True, slots=True)
class TicketContext:
    texts: list[str]
    repeated_contact: int


@dataclass(frozen=True, slots=True)
class AgentMessage:
    """An agent's stored reply and the customer it goes to."""

    customer: CustomerInfo
    message_id: int


@dataclass(frozen=True, slots=True)
class RatingGiven:
    rating_id: int
    score: int


async def agent_message(
    session: AsyncSession,
    *,
    ticket_id: int,
    agent_id: int,
    text: str,
    now: datetime,
    media: Media | None = None,
    staff_chat_id: int | None = None,
    staff_message_id: int | None = None,
) -> AgentMessage:
    """An agent's reply to be relayed to the customer: stored first, first response recorded."""
    ticket = await tickets.get(session, ticket_id=ticket_id)
    tickets.record_agent_reply(ticket, agent_id=agent_id, now=now)
    message = await messages.create(
        session,
        customer_id=ticket.customer_id,
        ticket_id=ticket.id,
        direction=Direction.OUTBOUND,
        author_kind=AuthorKind.AGENT,
        agent_id=agent_id,
        text=text,
        media=media,
        staff_chat_id=staff_chat_id,
        staff_message_id=staff_message_id,
        now=now,
    )
    customer = await session.get_one(Customer, ticket.customer_id)
    return AgentMessage(customer=CustomerInfo.of(customer), message_id=message.id)


async def add_note(
    session: AsyncSession,
    *,
    ticket_id: int,
    agent_id: int,
    text: str,
    now: datetime,
    staff_chat_id: int | None = None,
    staff_message_id: int | None = None,
) -> None:
    """An internal note: stored on the ticket, never sent to the customer."""
    ticket = await tickets.get(session, ticket_id=ticket_id)
    await messages.create(
        session,
        customer_id=ticket.customer_id,
        ticket_id=ticket.id,
        direction=Direction.INTERNAL,
        author_kind=AuthorKind.AGENT,
        agent_id=agent_id,
        text=text,
        staff_chat_id=staff_chat_id,
        staff_message_id=staff_message_id,
        now=now,
    )


async def rate(
    session: AsyncSession, *, ticket_id: int, customer_id: int, score: int, now: datetime
) -> RatingGiven:
    rating = await ratings.create(
        session, ticket_id=ticket_id, customer_id=customer_id, score=score, now=now
    )
    return RatingGiven(rating_id=rating.id, score=rating.score)


async def add_rating_comment(session: AsyncSession, *, rating_id: int, text: str) -> None:
    rating = await session.get_one(Rating, rating_id)
    rating.comment = f"{rating.comment}\n{text}" if rating.comment else text
    await session.flush()


async def rating_of(session: AsyncSession, *, ticket_id: int) -> int | None:
    """The id of the ticket's rating, if it was rated."""
    rating = await ratings.get_for_ticket(session, ticket_id=ticket_id)
    return rating.id if rating is not None else None


async def apply_analysis(
    session: AsyncSession,
    *,
    message_id: int,
    analysis: MessageAnalysis,
    ticket_summary: str | None,
    now: datetime,
) -> None:
    """Store a message's analysis and fold it into its ticket (category, mood, urgency, priority).

    The ticket's category is the most confident one seen so far, unless an agent corrected it;
    its sentiment is the latest message's; its urgency the highest seen.
    """
    message = await messages.get(session, message_id=message_id)
    message.language = analysis.language
    message.category = analysis.category
    message.category_confidence = analysis.category_confidence
    message.sentiment = analysis.sentiment
    message.sentiment_confidence = analysis.sentiment_confidence
    message.urgency = analysis.urgency
    message.entities = analysis.entities
    message.summary = analysis.summary
    if message.ticket_id is None:
        raise TicketNotFound(message_id=message_id)
    ticket = await tickets.get(session, ticket_id=message.ticket_id)
    corrected = (ticket.category_confidence or 0.0) >= CORRECTED_CONFIDENCE
    if not corrected and analysis.category_confidence >= (ticket.category_confidence or -1.0):
        ticket.category = analysis.category
        ticket.category_confidence = analysis.category_confidence
    ticket.sentiment = analysis.sentiment
    if URGENCY_ORDER.get(analysis.urgency, 1) >= URGENCY_ORDER.get(ticket.urgency or "low", 0):
        ticket.urgency = analysis.urgency
    ticket.priority = tickets.priority_for(ticket.urgency, ticket.sentiment)
    if ticket_summary is not None:
        ticket.summary = ticket_summary
    ticket.updated_at = now
    await session.flush()


async def auto_answer(session: AsyncSession, *, ticket_id: int, text: str, now: datetime) -> None:
    """The bot answered from the knowledge base; the ticket waits for the customer's verdict."""
    ticket = await tickets.get(session, ticket_id=ticket_id)
    await messages.create(
        session,
        customer_id=ticket.customer_id,
        ticket_id=ticket.id,
        direction=Direction.OUTBOUND,
        author_kind=AuthorKind.BOT,
        text=text,
        now=now,
    )
    ticket.status = TicketStatus.PENDING
    ticket.updated_at = now
    await session.flush()


async def hand_to_agents(session: AsyncSession, *, ticket_id: int, now: datetime) -> None:
    """The ticket goes to the agents: counted as escalated (not self-served) from now on.

    A new ticket stays open; one that waited on the customer after an automatic answer is
    escalated.
    """
    ticket = await tickets.get(session, ticket_id=ticket_id)
    ticket.escalated_at = ticket.escalated_at or now
    if ticket.status == TicketStatus.PENDING and ticket.first_response_at is None:
        ticket.status = TicketStatus.ESCALATED
    ticket.updated_at = now
    await session.flush()


async def ticket_context(session: AsyncSession, *, ticket_id: int, now: datetime) -> TicketContext:
    """What understanding a ticket needs: its customer texts, and how many other recent tickets
    of the customer are still unsettled (still open, or reopened): contacting support again
    about something unresolved is what makes a contact "repeated"."""
    ticket = await tickets.get(session, ticket_id=ticket_id)
    texts = await messages.customer_texts(session, ticket_id=ticket_id)
    unresolved = await tickets.count_unresolved_recent(
        session,
        customer_id=ticket.customer_id,
        since=now - REPEATED_CONTACT_WINDOW,
        excluding=ticket.id,
    )
    return TicketContext(texts=texts, repeated_contact=unresolved)
