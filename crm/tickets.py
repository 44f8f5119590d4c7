"""Tickets: one customer problem from first message to resolution."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from crm.errors import TicketAlreadyActive, TicketNotActive, TicketNotFound
from crm.models import (
    ACTIVE_STATUSES,
    Agent,
    Customer,
    Message,
    Rating,
    Resolution,
    Ticket,
    TicketStatus,
)
from crm.schemas import CustomerInfo, PastTicket, QueueItem, TicketCard, TicketInfo

NUMBER_OFFSET = 1000  # ticket #1001 is the first one people see
PRIORITY_URGENT, PRIORITY_HIGH, PRIORITY_NORMAL, PRIORITY_LOW = 1, 2, 3, 4


def priority_for(urgency: str | None, sentiment: str | None) -> int:
    """Queue priority (1 first) from urgency and sentiment."""
    if urgency == "high":
        return PRIORITY_URGENT
    if sentiment == "negative":
        return PRIORITY_HIGH
    if urgency == "low" and sentiment == "positive":
        return PRIORITY_LOW
    return PRIORITY_NORMAL


async def get(session: AsyncSession, *, ticket_id: int) -> Ticket:
    ticket = await session.get(Ticket, ticket_id)
    if ticket is None:
        raise TicketNotFound(ticket_id=ticket_id)
    return ticket


async def get_by_number(session: AsyncSession, *, number: int) -> Ticket:
    result = await session.execute(select(Ticket).where(Ticket.number == number))
    ticket = result.scalar_one_or_none()
    if ticket is None:
        raise TicketNotFound(number=number)
    return ticket


async def info(session: AsyncSession, *, ticket: Ticket) -> TicketInfo:
    name = None
    if ticket.assignee_id is not None:
        agent = await session.get(Agent, ticket.assignee_id)
        name = agent.first_name if agent else None
    return TicketInfo.of(ticket, assignee_name=name)


async def get_current_for_customer(session: AsyncSession, *, customer_id: int) -> Ticket | None:
    """The ticket that takes the customer's messages (at most one: a partial unique index)."""
    result = await session.execute(
        select(Ticket).where(Ticket.customer_id == customer_id, Ticket.is_current.is_(True))
    )
    return result.scalar_one_or_none()


async def get_active_for_customer(session: AsyncSession, *, customer_id: int) -> Ticket | None:
    """The customer's current ticket, else their most recent one still being worked on."""
    current = await get_current_for_customer(session, customer_id=customer_id)
    if current is not None:
        return current
    result = await session.execute(
        select(Ticket)
        .where(Ticket.customer_id == customer_id, Ticket.status.in_(ACTIVE_STATUSES))
        .order_by(Ticket.created_at.desc(), Ticket.id.desc())
        .limit(1)
    )
    return result.scalar_one_or_none()


async def release_current(session: AsyncSession, *, customer_id: int) -> Ticket | None:
    """`/new`: the current ticket stays open for agents but no longer takes new messages."""
    ticket = await get_current_for_customer(session, customer_id=customer_id)
    if ticket is not None:
        ticket.is_current = False
        await session.flush()
    return ticket


async def list_active_for_customer(session: AsyncSession, *, customer_id: int) -> list[TicketInfo]:
    result = await session.execute(
        select(Ticket)
        .where(Ticket.customer_id == customer_id, Ticket.status.in_(ACTIVE_STATUSES))
        .order_by(Ticket.created_at, Ticket.id)
    )
    return [await info(session, ticket=t) for t in result.scalars()]


async def create(session: AsyncSession, *, customer_id: int, subject: str, now: datetime) -> Ticket:
    ticket = Ticket(
        customer_id=customer_id,
        status=TicketStatus.OPEN,
        subject=subject[:256],
        created_at=now,
        updated_at=now,
        last_customer_message_at=now,
        is_current=True,
    )
    session.add(ticket)
    await session.flush()
    ticket.number = NUMBER_OFFSET + ticket.id
    await session.flush()
    return ticket


async def set_staff_refs(
    session: AsyncSession,
    *,
    ticket_id: int,
    chat_id: int | None,
    thread_id: int | None,
    card_message_id: int | None,
) -> None:
    ticket = await get(session, ticket_id=ticket_id)
    ticket.staff_chat_id = chat_id
    ticket.staff_thread_id = thread_id
    ticket.staff_card_message_id = card_message_id
    await session.flush()


async def find_by_staff_reference(
    session: AsyncSession,
    *,
    chat_id: int,
    thread_id: int | None,
    reply_to_message_id: int | None,
) -> Ticket | None:
    """The ticket a staff-chat message belongs to: by forum topic, card or relayed message."""
    if thread_id is not None:
        result = await session.execute(
            select(Ticket).where(
                Ticket.staff_chat_id == chat_id, Ticket.staff_thread_id == thread_id
            )
        )
        ticket = result.scalar_one_or_none()
        if ticket is not None:
            return ticket
    if reply_to_message_id is None:
        return None
    result = await session.execute(
        select(Ticket).where(
            Ticket.staff_chat_id == chat_id, Ticket.staff_card_message_id == reply_to_message_id
        )
    )
    ticket = result.scalar_one_or_none()
    if ticket is not None:
        return ticket
    result = await session.execute(
        select(Ticket)
        .join(Message, Message.ticket_id == Ticket.id)
        .where(Message.staff_chat_id == chat_id, Message.staff_message_id == reply_to_message_id)
        .limit(1)
    )
    return result.scalar_one_or_none()


async def claim(session: AsyncSession, *, ticket: Ticket, agent_id: int, now: datetime) -> Ticket:
    if ticket.status not in ACTIVE_STATUSES:
        raise TicketNotActive(number=ticket.number)
    ticket.assignee_id = agent_id
    ticket.updated_at = now
    await session.flush()
    return ticket


async def resolve(
    session: AsyncSession,
    *,
    ticket: Ticket,
    now: datetime,
    agent_id: int | None = None,
    resolution: Resolution = Resolution.AGENT,
) -> Ticket:
    if ticket.status not in ACTIVE_STATUSES:
        raise TicketNotActive(number=ticket.number)
    ticket.status = TicketStatus.RESOLVED
    ticket.is_current = False
    ticket.resolved_at = now
    ticket.resolution = resolution
    if ticket.assignee_id is None and agent_id is not None:
        ticket.assignee_id = agent_id
    ticket.updated_at = now
    await session.flush()
    return ticket


async def reopen(session: AsyncSession, *, ticket: Ticket, now: datetime) -> Ticket:
    if ticket.status in ACTIVE_STATUSES:
        raise TicketAlreadyActive(number=ticket.number)
    ticket.status = TicketStatus.OPEN
    ticket.resolved_at = None
    ticket.resolution = None
    ticket.reopened_count += 1
    # It takes the customer's messages again unless another ticket does by now.
    ticket.is_current = (
        await get_current_for_customer(session, customer_id=ticket.customer_id) is None
    )
    ticket.updated_at = now
    await session.flush()
    return ticket


async def escalate(session: AsyncSession, *, ticket: Ticket, now: datetime) -> Ticket:
    if ticket.status not in ACTIVE_STATUSES:
        raise TicketNotActive(number=ticket.number)
    ticket.status = TicketStatus.ESCALATED
    ticket.escalated_at = ticket.escalated_at or now
    ticket.updated_at = now
    await session.flush()
    return ticket


def record_customer_message(ticket: Ticket, *, now: datetime) -> None:
    ticket.last_customer_message_at = now
    ticket.updated_at = now
    if ticket.status == TicketStatus.PENDING:
        ticket.status = TicketStatus.OPEN


def record_agent_reply(ticket: Ticket, *, agent_id: int, now: datetime) -> None:
    """The first agent reply sets the first-response time; the ticket now waits on the customer."""
    if ticket.first_response_at is None:
        ticket.first_response_at = now
    if ticket.assignee_id is None:
        ticket.assignee_id = agent_id
    if ticket.status in (TicketStatus.OPEN, TicketStatus.ESCALATED):
        ticket.status = TicketStatus.PENDING
    ticket.updated_at = now


async def card(session: AsyncSession, *, ticket_id: int, earlier_limit: int = 5) -> TicketCard:
    """The ticket, its customer and the customer's earlier tickets with their ratings."""
    result = await session.execute(
        select(Ticket).options(joinedload(Ticket.customer)).where(Ticket.id == ticket_id)
    )
    ticket = result.scalar_one_or_none()
    if ticket is None:
        raise TicketNotFound(ticket_id=ticket_id)
    earlier_rows = await session.execute(
        select(Ticket.number, Ticket.status, Ticket.created_at, Rating.score)
        .outerjoin(Rating, Rating.ticket_id == Ticket.id)
        .where(Ticket.customer_id == ticket.customer_id, Ticket.id != ticket.id)
        .order_by(Ticket.created_at.desc(), Ticket.id.desc())
        .limit(earlier_limit)
    )
    earlier = [
        PastTicket(number=n or 0, status=TicketStatus(s), created_at=c, rating=r)
        for n, s, c, r in earlier_rows
    ]
    return TicketCard(
        ticket=await info(session, ticket=ticket),
        customer=CustomerInfo.of(ticket.customer),
        earlier=earlier,
        entities=await _ticket_entities(session, ticket_id=ticket.id),
    )


async def _ticket_entities(session: AsyncSession, *, ticket_id: int) -> list[tuple[str, str]]:
    """Distinct (label, text) entities of the ticket's customer messages, first seen first.

    Entity texts are stored already masked where they are sensitive (card numbers).
    """
    result = await session.execute(
        select(Message.entities)
        .where(Message.ticket_id == ticket_id, Message.direction == "in")
        .order_by(Message.created_at, Message.id)
    )
    seen: dict[tuple[str, str], None] = {}
    for entities in result.scalars():
        for entity in entities or []:
            if isinstance(entity, dict) and entity.get("label") and entity.get("text"):
                seen.setdefault((str(entity["label"]), str(entity["text"])), None)
    return list(seen)


async def count_for_customer(
    session: AsyncSession, *, customer_id: int, since: datetime | None = None
) -> int:
    query = select(func.count(Ticket.id)).where(Ticket.customer_id == customer_id)
    if since is not None:
        query = query.where(Ticket.created_at >= since)
    return int((await session.execute(query)).scalar_one())


async def queue(
    session: AsyncSession, *, statuses: Sequence[TicketStatus] = ACTIVE_STATUSES, limit: int = 50
) -> list[QueueItem]:
    """Tickets waiting on support, oldest first (pending ones wait on the customer: excluded)."""
    waiting = [s for s in statuses if s != TicketStatus.PENDING]
    result = await session.execute(
        select(Ticket, Customer, Agent.first_name)
        .join(Customer, Customer.id == Ticket.customer_id)
        .outerjoin(Agent, Agent.id == Ticket.assignee_id)
        .where(Ticket.status.in_(waiting))
        .order_by(Ticket.priority, Ticket.created_at, Ticket.id)
        .limit(limit)
    )
    return [
        QueueItem(
            ticket=TicketInfo.of(ticket, assignee_name=assignee),
            customer_name=customer.display_name,
            waiting_since=ticket.created_at,
        )
        for ticket, customer, assignee in result
    ]


async def get_latest_for_customer(session: AsyncSession, *, customer_id: int) -> Ticket:
    result = await session.execute(
        select(Ticket)
        .where(Ticket.customer_id == customer_id)
        .order_by(Ticket.created_at.desc(), Ticket.id.desc())
        .limit(1)
    )
    ticket = result.scalar_one_or_none()
    if ticket is None:
        raise TicketNotFound(customer_id=customer_id)
    return ticket


async def count_unresolved_recent(
    session: AsyncSession, *, customer_id: int, since: datetime, excluding: int
) -> int:
    """The customer's other tickets since ``since`` that are still open or were reopened."""
    query = select(func.count(Ticket.id)).where(
        Ticket.customer_id == customer_id,
        Ticket.id != excluding,
        Ticket.created_at >= since,
        or_(Ticket.status.in_(ACTIVE_STATUSES), Ticket.reopened_count > 0),
    )
    return int((await session.execute(query)).scalar_one())
