"""The support conversation as a service: what happens when customers and agents speak.

Front ends (the Telegram handlers, the terminal console) turn their input into these calls and
render the plain results; nothing here knows about Telegram.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession

from crm import customers, linking, messages, ratings, tickets
from crm.errors import AlreadyAnswered, TicketNotFound
from crm.messages import Media
from crm.models import AuthorKind, Customer, Direction, Rating, Resolution, Ticket, TicketStatus
from crm.schemas import CustomerInfo, MessageAnalysis, MessageInfo, TicketCard, TicketInfo

CORRECTED_CONFIDENCE = 1.0  # an agent's correction; automatic confidences stay below it
REPEATED_CONTACT_WINDOW = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class TicketContext:
    texts: list[str]
    repeated_contact: int


@dataclass(frozen=True, slots=True)
class Incoming:
    """A customer's message as any front end receives it."""

    telegram_user_id: int
    chat_id: int
    first_name: str
    text: str = ""
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = None
    media: Media | None = None
    message_id: int | None = None
    reply_to_message_id: int | None = None


class RouteKind(StrEnum):
    NEW_TICKET = "new_ticket"
    FOLLOW_UP = "follow_up"
    RATING_COMMENT = "rating_comment"


@dataclass(frozen=True, slots=True)
class Routed:
    kind: RouteKind
    customer: CustomerInfo
    message: MessageInfo
    ticket: TicketInfo
    card: TicketCard | None = None
    rating_score: int | None = None


@dataclass(frozen=True, slots=True)
class TicketAction:
    """The result of an agent's action on a ticket: what to tell whom."""

    ticket: TicketInfo
    customer: CustomerInfo


@dataclass(frozen=True, slots=True)
class AgentMessage:
    ticket: TicketInfo
    customer: CustomerInfo
    message_id: int
    is_first_response: bool


@dataclass(frozen=True, slots=True)
class RatingGiven:
    rating_id: int
    score: int
    ticket: TicketInfo
    customer: CustomerInfo


def _subject(text: str, media: Media | None) -> str:
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    if not line and media is not None:
        line = f"[{media.kind}]"
    return line[:120]


async def store_incoming(
    session: AsyncSession, *, incoming: Incoming, now: datetime, default_language: str = "en"
) -> tuple[CustomerInfo, int]:
    """Step one for every customer message: make sure the customer exists and store the message."""
    customer = await customers.upsert_from_telegram(
        session,
        telegram_user_id=incoming.telegram_user_id,
        chat_id=incoming.chat_id,
        first_name=incoming.first_name,
        last_name=incoming.last_name,
        username=incoming.username,
        language_code=incoming.language_code,
        now=now,
        default_language=default_language,
    )
    if customer.external_id is None and customer.telegram_username:
        # The business's records may name this customer by @username: link them at first contact.
        linked = await linking.link_by_telegram(session, customer_id=customer.id)
        if linked.status == linking.LinkStatus.LINKED:
            customer = await session.get_one(Customer, linked.customer_id)
    message = await messages.create(
        session,
        customer_id=customer.id,
        direction=Direction.INBOUND,
        author_kind=AuthorKind.CUSTOMER,
        text=incoming.text,
        media=incoming.media,
        customer_chat_id=incoming.chat_id,
        customer_message_id=incoming.message_id,
        now=now,
    )
    return CustomerInfo.of(customer), message.id


async def route_incoming(
    session: AsyncSession, *, message_id: int, reply_to_message_id: int | None, now: datetime
) -> Routed:
    """Step two: a stored message becomes a rating comment, a follow-up, or a new ticket."""
    message = await messages.get(session, message_id=message_id)
    customer = await session.get_one(Customer, message.customer_id)
    if reply_to_message_id is not None:
        rating = await ratings.get_by_comment_prompt(
            session, customer_id=customer.id, message_id=reply_to_message_id
        )
        if rating is not None and message.text.strip():
            rating.comment = f"{rating.comment}\n{message.text}" if rating.comment else message.text
            message.ticket_id = rating.ticket_id
            await session.flush()
            ticket = await tickets.get(session, ticket_id=rating.ticket_id)
            return Routed(
                kind=RouteKind.RATING_COMMENT,
                customer=CustomerInfo.of(customer),
                message=MessageInfo.of(message),
                ticket=await tickets.info(session, ticket=ticket),
                rating_score=rating.score,
            )

    active = await tickets.get_current_for_customer(session, customer_id=customer.id)
    kind = RouteKind.FOLLOW_UP
    if active is None:
        media = (
            Media(message.media_kind, message.media_file_id or "") if message.media_kind else None
        )
        ticket = await tickets.create(
            session, customer_id=customer.id, subject=_subject(message.text, media), now=now
        )
        kind = RouteKind.NEW_TICKET
    else:
        ticket = active
        tickets.record_customer_message(ticket, now=now)
    message.ticket_id = ticket.id
    await session.flush()
    card = (
        await tickets.card(session, ticket_id=ticket.id) if kind == RouteKind.NEW_TICKET else None
    )
    return Routed(
        kind=kind,
        customer=CustomerInfo.of(customer),
        message=MessageInfo.of(message),
        ticket=await tickets.info(session, ticket=ticket),
        card=card,
    )


async def request_new_ticket(session: AsyncSession, *, customer_id: int) -> None:
    """`/new`: the customer's next message opens a new ticket even if another is still open."""
    await tickets.release_current(session, customer_id=customer_id)


async def request_human(
    session: AsyncSession, *, customer_id: int, now: datetime
) -> TicketInfo | None:
    """`/human`: escalate the customer's open ticket; None when there is no open ticket."""
    ticket = await tickets.get_active_for_customer(session, customer_id=customer_id)
    if ticket is None:
        return None
    await tickets.escalate(session, ticket=ticket, now=now)
    return await tickets.info(session, ticket=ticket)


async def _action(session: AsyncSession, ticket: Ticket) -> TicketAction:
    customer = await session.get_one(Customer, ticket.customer_id)
    return TicketAction(
        ticket=await tickets.info(session, ticket=ticket), customer=CustomerInfo.of(customer)
    )


async def ticket_action(session: AsyncSession, *, ticket_id: int) -> TicketAction:
    """The ticket and its customer as they are now."""
    return await _action(session, await tickets.get(session, ticket_id=ticket_id))


async def claim(
    session: AsyncSession, *, ticket_id: int, agent_id: int, now: datetime
) -> TicketAction:
    ticket = await tickets.get(session, ticket_id=ticket_id)
    await tickets.claim(session, ticket=ticket, agent_id=agent_id, now=now)
    return await _action(session, ticket)


async def resolve(
    session: AsyncSession,
    *,
    ticket_id: int,
    now: datetime,
    agent_id: int | None = None,
    resolution: Resolution = Resolution.AGENT,
) -> TicketAction:
    ticket = await tickets.get(session, ticket_id=ticket_id)
    await tickets.resolve(session, ticket=ticket, now=now, agent_id=agent_id, resolution=resolution)
    return await _action(session, ticket)


async def reopen(session: AsyncSession, *, ticket_id: int, now: datetime) -> TicketAction:
    ticket = await tickets.get(session, ticket_id=ticket_id)
    await tickets.reopen(session, ticket=ticket, now=now)
    return await _action(session, ticket)


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
    first = ticket.first_response_at is None
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
    action = await _action(session, ticket)
    return AgentMessage(
        ticket=action.ticket,
        customer=action.customer,
        message_id=message.id,
        is_first_response=first,
    )


async def undo_first_response(session: AsyncSession, *, ticket_id: int) -> None:
    """The first agent reply never reached the customer: the ticket still waits for one."""
    ticket = await tickets.get(session, ticket_id=ticket_id)
    ticket.first_response_at = None
    if ticket.status == TicketStatus.PENDING:
        ticket.status = TicketStatus.OPEN
    await session.flush()


async def add_note(
    session: AsyncSession,
    *,
    ticket_id: int,
    agent_id: int,
    text: str,
    now: datetime,
    staff_chat_id: int | None = None,
    staff_message_id: int | None = None,
) -> TicketInfo:
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
    return await tickets.info(session, ticket=ticket)


async def rate(
    session: AsyncSession, *, ticket_id: int, customer_id: int, score: int, now: datetime
) -> RatingGiven:
    rating = await ratings.create(
        session, ticket_id=ticket_id, customer_id=customer_id, score=score, now=now
    )
    action = await _action(session, await tickets.get(session, ticket_id=ticket_id))
    return RatingGiven(
        rating_id=rating.id, score=rating.score, ticket=action.ticket, customer=action.customer
    )


async def record_staff_copy(
    session: AsyncSession, *, message_id: int, staff_chat_id: int, staff_message_id: int
) -> None:
    """Remember where a customer's message appears in the staff chat (replies to it relay back)."""
    await messages.set_staff_copy(
        session,
        message_id=message_id,
        staff_chat_id=staff_chat_id,
        staff_message_id=staff_message_id,
    )


async def record_customer_copy(
    session: AsyncSession, *, message_id: int, customer_chat_id: int, customer_message_id: int
) -> None:
    await messages.set_customer_copy(
        session,
        message_id=message_id,
        customer_chat_id=customer_chat_id,
        customer_message_id=customer_message_id,
    )


async def set_comment_prompt(session: AsyncSession, *, rating_id: int, message_id: int) -> None:
    """The message inviting a rating comment: a reply to it is the comment."""
    await ratings.set_comment_prompt(session, rating_id=rating_id, message_id=message_id)


async def find_staff_ticket(
    session: AsyncSession, *, chat_id: int, thread_id: int | None, reply_to_message_id: int | None
) -> TicketInfo | None:
    ticket = await tickets.find_by_staff_reference(
        session, chat_id=chat_id, thread_id=thread_id, reply_to_message_id=reply_to_message_id
    )
    return None if ticket is None else await tickets.info(session, ticket=ticket)


async def add_rating_comment(session: AsyncSession, *, rating_id: int, text: str) -> None:
    rating = await session.get_one(Rating, rating_id)
    rating.comment = f"{rating.comment}\n{text}" if rating.comment else text
    await session.flush()


URGENCY_ORDER = {"low": 0, "normal": 1, "high": 2}


async def apply_analysis(
    session: AsyncSession,
    *,
    message_id: int,
    analysis: MessageAnalysis,
    ticket_summary: str | None,
    now: datetime,
) -> TicketInfo:
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
    return await tickets.info(session, ticket=ticket)


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


async def self_served(
    session: AsyncSession, *, ticket_id: int, customer_id: int, now: datetime
) -> TicketInfo:
    """The customer said the automatic answer solved it: resolved without an agent."""
    ticket = await tickets.get(session, ticket_id=ticket_id)
    if ticket.customer_id != customer_id:
        raise TicketNotFound(ticket_id=ticket_id)
    if ticket.status != TicketStatus.PENDING or ticket.escalated_at is not None:
        raise AlreadyAnswered(number=ticket.number)
    await tickets.resolve(session, ticket=ticket, now=now, resolution=Resolution.SELF_SERVED)
    return await tickets.info(session, ticket=ticket)


async def escalate(
    session: AsyncSession, *, ticket_id: int, now: datetime, customer_id: int | None = None
) -> TicketAction:
    """Hand the ticket to the agents (automation could not help, or the customer said No)."""
    ticket = await tickets.get(session, ticket_id=ticket_id)
    if customer_id is not None and ticket.customer_id != customer_id:
        raise TicketNotFound(ticket_id=ticket_id)
    if customer_id is not None and ticket.escalated_at is not None:
        raise AlreadyAnswered(number=ticket.number)
    await tickets.escalate(session, ticket=ticket, now=now)
    return await _action(session, ticket)


async def hand_to_agents(session: AsyncSession, *, ticket_id: int, now: datetime) -> TicketAction:
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
    return await _action(session, ticket)


async def unseen_by_agents(session: AsyncSession, *, ticket_id: int) -> list[MessageInfo]:
    """Customer messages of the ticket not yet relayed to the staff chat, oldest first."""
    rows = await messages.not_in_staff_chat(session, ticket_id=ticket_id)
    return [MessageInfo.of(m) for m in rows]


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


async def rating_of(session: AsyncSession, *, ticket_id: int) -> int | None:
    """The id of the ticket's rating, if it was rated."""
    rating = await ratings.get_for_ticket(session, ticket_id=ticket_id)
    return rating.id if rating is not None else None
