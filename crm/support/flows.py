"""The support conversation: what happens when customers and agents act.

Each flow takes one plain input and a session, changes the records, and returns an
:class:`~crm.support.outcomes.Outcome`: the effects to carry out. The flow runner runs it in ONE
transaction together with the outbox rows and the inbox mark. Every front end (Telegram, the
console) calls these flows, so every front end obeys the same rules. Nothing here knows Telegram.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm import agents, conversation, corrections, customers, linking, messages, ratings, tickets
from crm.errors import AlreadyAnswered, TicketNotFound
from crm.messages import Media
from crm.models import (
    AuthorKind,
    Customer,
    Direction,
    Message,
    Resolution,
    Ticket,
    TicketStatus,
)
from crm.support.outcomes import (
    AnswerButton,
    AnswerStaffButton,
    CustomerStatus,
    EditKeyboard,
    EditStaffKeyboard,
    Keyboard,
    NotifyThread,
    OpenStaffPlace,
    Outcome,
    RefreshCard,
    RelayToCustomer,
    RelayToStaff,
    Say,
    StaffQueue,
    ToCustomer,
    ToStaffChat,
)
from crm.support.understanding import Understanding, automatic_answer, reply_language
from nlp.knowledge import KnowledgeBase
from quality.stats import BusinessHours

# ------------------------------------------------------------------------------ inputs


@dataclass(frozen=True, slots=True)
class Desk:
    """How this support desk works (from the settings): the flows' only configuration."""

    hours: BusinessHours
    knowledge: KnowledgeBase | None = None
    auto_answer: bool = True
    auto_answer_min_confidence: float = 0.6
    default_language: str = "en"
    agent_signature: bool = False
    categories: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Person:
    """The customer behind an input, as the chat tells us."""

    telegram_user_id: int
    chat_id: int
    first_name: str
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = None


@dataclass(frozen=True, slots=True)
class CustomerMessage:
    person: Person
    text: str = ""
    media: Media | None = None
    message_id: int | None = None  # the message's id in the customer's chat
    reply_to_message_id: int | None = None


@dataclass(frozen=True, slots=True)
class Tap:
    """A button tap: its id (to answer it) and the message it sits under."""

    callback_query_id: str
    chat_id: int
    message_id: int | None


@dataclass(frozen=True, slots=True)
class StaffMember:
    """Who acts in the staff chat; ``allowed`` says whether they may act as an agent."""

    telegram_user_id: int
    first_name: str
    username: str | None
    allowed: bool


@dataclass(frozen=True, slots=True)
class StaffSpot:
    """Where in the staff chat something was written, and what it points at."""

    chat_id: int
    thread_id: int | None
    reply_to_message_id: int | None
    message_id: int | None = None
    reply_to_bot: bool = False


# ------------------------------------------------------------------------------ helpers


async def _customer(session: AsyncSession, desk: Desk, person: Person, now: datetime) -> Customer:
    customer = await customers.upsert_from_telegram(
        session,
        telegram_user_id=person.telegram_user_id,
        chat_id=person.chat_id,
        first_name=person.first_name,
        last_name=person.last_name,
        username=person.username,
        language_code=person.language_code,
        now=now,
        default_language=desk.default_language,
    )
    customer.unreachable_at = None  # they wrote to us: the chat works
    return customer


def _with_agents(ticket: Ticket) -> bool:
    """The ticket was handed to the agents (it has, or is getting, a place in the staff chat)."""
    return ticket.escalated_at is not None


def _to(customer: Customer, say: Say, keyboard: Keyboard | None = None) -> ToCustomer:
    return ToCustomer(
        customer_id=customer.id,
        chat_id=customer.telegram_chat_id or 0,
        say=say,
        keyboard=keyboard,
    )


async def _hand_over(session: AsyncSession, ticket: Ticket, now: datetime) -> list[RelayToStaff]:
    """The ticket goes to the agents: its place, then every customer message so far."""
    await conversation.hand_to_agents(session, ticket_id=ticket.id, now=now)
    inbound = await session.execute(
        select(Message.id)
        .where(Message.ticket_id == ticket.id, Message.direction == Direction.INBOUND)
        .order_by(Message.created_at, Message.id)
    )
    return [RelayToStaff(ticket_id=ticket.id, message_id=m) for m in inbound.scalars()]


def _opening(desk: Desk, now: datetime) -> str | None:
    if desk.hours.is_open(now):
        return None
    return desk.hours.next_opening(now).isoformat()


# ------------------------------------------------------------------------------ customers


async def customer_wrote(
    session: AsyncSession,
    *,
    desk: Desk,
    incoming: CustomerMessage,
    understood: Understanding | None,
    now: datetime,
) -> Outcome:
    """Any customer message: stored once, then a rating comment, a follow-up or a new ticket.

    A new ticket is answered from the knowledge base when that is confident, otherwise
    acknowledged and handed to the agents. Writing again after an automatic answer means it did
    not solve the problem: the ticket goes to the agents with everything said so far.
    """
    person = incoming.person
    if incoming.message_id is not None:
        seen = await session.execute(
            select(Message.id).where(
                Message.customer_chat_id == person.chat_id,
                Message.customer_message_id == incoming.message_id,
                Message.direction == Direction.INBOUND,
            )
        )
        if seen.first() is not None:
            return Outcome(duplicate=True)
    customer = await _customer(session, desk, person, now)
    first_contact = customer.first_seen_at == now
    if first_contact and customer.external_id is None and customer.telegram_username:
        # The business's records may name this customer by @username: link at first contact.
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
        customer_chat_id=person.chat_id,
        customer_message_id=incoming.message_id,
        now=now,
    )

    if incoming.reply_to_message_id is not None and incoming.text.strip():
        rating = await ratings.get_by_comment_prompt(
            session, customer_id=customer.id, message_id=incoming.reply_to_message_id
        )
        if rating is not None:
            rating.comment = (
                f"{rating.comment}\n{incoming.text}" if rating.comment else incoming.text
            )
            message.ticket_id = rating.ticket_id
            rated = await tickets.get(session, ticket_id=rating.ticket_id)
            outcome = Outcome(ticket_id=rated.id, ticket_number=rated.number)
            outcome.add(_to(customer, Say.customer(customer.language, "comment_thanks")))
            if _with_agents(rated):
                say = Say.staff("rating_comment", number=rated.number, comment=incoming.text)
                outcome.add(NotifyThread(ticket_id=rated.id, say=say))
            await session.flush()
            return outcome

    ticket = await tickets.get_current_for_customer(session, customer_id=customer.id)
    is_new = ticket is None
    if ticket is None:
        subject_media = incoming.media
        ticket = await tickets.create(
            session,
            customer_id=customer.id,
            subject=_subject(incoming.text, subject_media),
            now=now,
        )
    else:
        tickets.record_customer_message(ticket, now=now)
    message.ticket_id = ticket.id
    await session.flush()

    before = (ticket.category, ticket.priority)
    if understood is not None:
        await conversation.apply_analysis(
            session,
            message_id=message.id,
            analysis=_analysis(understood),
            ticket_summary=understood.ticket_summary,
            now=now,
        )
    changed = understood is not None and (
        (ticket.category, ticket.priority) != before or bool(understood.analysis.entities)
    )
    language = reply_language(customer.language, understood)
    outcome = Outcome(ticket_id=ticket.id, ticket_number=ticket.number)
    number = ticket.number

    if is_new:
        answer = automatic_answer(
            desk.knowledge,
            understood,
            language,
            enabled=desk.auto_answer,
            min_confidence=desk.auto_answer_min_confidence,
        )
        if answer is not None:
            await conversation.auto_answer(session, ticket_id=ticket.id, text=answer, now=now)
            say = Say.customer(language, "auto_answer", number=number, answer=answer)
            return outcome.add(
                _to(customer, say, Keyboard("solved", (ticket.id, language))),
            )
        ack = Say.customer(language, "ack", number=number, opening=_opening(desk, now))
        outcome.add(_to(customer, ack), OpenStaffPlace(ticket_id=ticket.id))
        return outcome.add(*await _hand_over(session, ticket, now))

    if _with_agents(ticket):
        outcome.add(RelayToStaff(ticket_id=ticket.id, message_id=message.id))
        if changed:
            outcome.add(RefreshCard(ticket_id=ticket.id))
        return outcome
    # Answered automatically so far: writing again means "not solved".
    say = Say.customer(language, "escalated_after_answer", number=number)
    outcome.add(_to(customer, say), OpenStaffPlace(ticket_id=ticket.id))
    return outcome.add(*await _hand_over(session, ticket, now))


def _subject(text: str, media: Media | None) -> str:
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    if not line and media is not None:
        line = f"[{media.kind}]"
    return line[:120]


def _analysis(understood: Understanding) -> conversation.MessageAnalysis:
    from crm.support.understanding import message_analysis

    return message_analysis(understood.analysis)


async def greeted(
    session: AsyncSession, *, desk: Desk, person: Person, key: str, now: datetime
) -> Outcome:
    """``/start`` (key ``start``), ``/help`` and unknown commands (key ``help``)."""
    customer = await _customer(session, desk, person, now)
    return Outcome().add(
        _to(customer, Say.customer(customer.language, key, name=customer.first_name))
    )


async def status_asked(
    session: AsyncSession, *, desk: Desk, person: Person, now: datetime
) -> Outcome:
    customer = await _customer(session, desk, person, now)
    return Outcome().add(
        CustomerStatus(
            customer_id=customer.id,
            chat_id=customer.telegram_chat_id or 0,
            language=customer.language,
        )
    )


async def new_ticket_asked(
    session: AsyncSession, *, desk: Desk, person: Person, now: datetime
) -> Outcome:
    """``/new``: the next message opens a new ticket; the current one stays open for agents."""
    customer = await _customer(session, desk, person, now)
    await tickets.release_current(session, customer_id=customer.id)
    return Outcome().add(_to(customer, Say.customer(customer.language, "new_ticket")))


async def human_asked(
    session: AsyncSession, *, desk: Desk, person: Person, now: datetime
) -> Outcome:
    """``/human``: escalate the current ticket; the agents get it if they have not yet."""
    customer = await _customer(session, desk, person, now)
    ticket = await tickets.get_active_for_customer(session, customer_id=customer.id)
    if ticket is None:
        return Outcome().add(_to(customer, Say.customer(customer.language, "human_no_ticket")))
    had_agents = _with_agents(ticket)
    await tickets.escalate(session, ticket=ticket, now=now)
    outcome = Outcome(ticket_id=ticket.id, ticket_number=ticket.number)
    say = Say.customer(customer.language, "human_escalated", number=ticket.number)
    outcome.add(_to(customer, say))
    if had_agents:
        outcome.add(
            NotifyThread(ticket_id=ticket.id, say=Say.staff("escalated", number=ticket.number)),
            RefreshCard(ticket_id=ticket.id),
        )
        return outcome
    outcome.add(OpenStaffPlace(ticket_id=ticket.id))
    return outcome.add(*await _hand_over(session, ticket, now))


async def language_menu(
    session: AsyncSession, *, desk: Desk, person: Person, now: datetime
) -> Outcome:
    customer = await _customer(session, desk, person, now)
    say = Say.customer(customer.language, "language_choose")
    return Outcome().add(_to(customer, say, Keyboard("languages")))


async def language_chosen(
    session: AsyncSession,
    *,
    desk: Desk,
    person: Person,
    tap: Tap | None,
    code: str,
    now: datetime,
) -> Outcome:
    customer = await _customer(session, desk, person, now)
    row = await customers.set_language(session, customer_id=customer.id, language=code)
    outcome = Outcome()
    if tap is not None:
        outcome.add(AnswerButton(callback_query_id=tap.callback_query_id))
    return outcome.add(_to(customer, Say.customer(row.language, "language_set")))


async def rated(
    session: AsyncSession,
    *,
    desk: Desk,
    person: Person,
    tap: Tap | None,
    ticket_id: int,
    score: int,
    now: datetime,
) -> Outcome:
    """A tap on one of the five rating buttons: stored once, then a comment is invited."""
    customer = await _customer(session, desk, person, now)
    given = await conversation.rate(
        session, ticket_id=ticket_id, customer_id=customer.id, score=score, now=now
    )
    ticket = await tickets.get(session, ticket_id=ticket_id)
    thanks = Say.customer(customer.language, "rated", score=given.score)
    outcome = Outcome(ticket_id=ticket.id, ticket_number=ticket.number)
    if tap is not None:
        outcome.add(AnswerButton(callback_query_id=tap.callback_query_id, say=thanks))
    outcome.add(
        _to(customer, thanks),
        ToCustomer(
            customer_id=customer.id,
            chat_id=customer.telegram_chat_id or 0,
            say=Say.customer(customer.language, "comment_invite"),
            keyboard=Keyboard("force_reply"),
            remember="rating_prompt",
            remember_id=given.rating_id,
        ),
    )
    if _with_agents(ticket):
        say = Say.staff("rating", number=ticket.number, score=given.score)
        outcome.add(NotifyThread(ticket_id=ticket.id, say=say))
    return outcome


async def verdict(
    session: AsyncSession,
    *,
    desk: Desk,
    person: Person,
    tap: Tap | None,
    ticket_id: int,
    solved: bool,
    language: str | None,
    now: datetime,
) -> Outcome:
    """Yes / No under an automatic answer: resolved as self-served, or handed to the agents."""
    customer = await _customer(session, desk, person, now)
    language = language or customer.language
    ticket = await tickets.get(session, ticket_id=ticket_id)
    if ticket.customer_id != customer.id:
        raise TicketNotFound(ticket_id=ticket_id)
    outcome = Outcome(ticket_id=ticket.id, ticket_number=ticket.number)
    if tap is not None:
        outcome.add(AnswerButton(callback_query_id=tap.callback_query_id))
        if tap.message_id is not None:
            outcome.add(EditKeyboard(chat_id=tap.chat_id, message_id=tap.message_id))
    if solved:
        if ticket.status != TicketStatus.PENDING or ticket.escalated_at is not None:
            raise AlreadyAnswered(number=ticket.number)
        await tickets.resolve(session, ticket=ticket, now=now, resolution=Resolution.SELF_SERVED)
        return outcome.add(
            _to(customer, Say.customer(language, "self_served", number=ticket.number))
        )
    if ticket.escalated_at is not None:
        raise AlreadyAnswered(number=ticket.number)
    await tickets.escalate(session, ticket=ticket, now=now)
    say = Say.customer(language, "escalated_after_answer", number=ticket.number)
    outcome.add(_to(customer, say), OpenStaffPlace(ticket_id=ticket.id))
    return outcome.add(*await _hand_over(session, ticket, now))


async def latest_automatic_answer(session: AsyncSession, *, telegram_user_id: int) -> int | None:
    """The customer's latest ticket that was answered automatically: the ticket a Yes/No button
    would name (the console's ``/yes`` and ``/no``)."""
    customer = await customers.get_by_telegram_id(session, telegram_user_id=telegram_user_id)
    if customer is None:
        return None
    found = await session.scalar(
        select(Message.ticket_id)
        .where(
            Message.customer_id == customer.id,
            Message.direction == Direction.OUTBOUND,
            Message.author_kind == AuthorKind.BOT,
        )
        .order_by(Message.created_at.desc(), Message.id.desc())
        .limit(1)
    )
    return int(found) if found is not None else None


# ------------------------------------------------------------------------------ agents


async def _agent(session: AsyncSession, member: StaffMember, now: datetime) -> agents.Agent:
    return await agents.upsert(
        session,
        telegram_user_id=member.telegram_user_id,
        first_name=member.first_name,
        username=member.username,
        now=now,
    )


async def _ticket_at(session: AsyncSession, spot: StaffSpot) -> Ticket | None:
    return await tickets.find_by_staff_reference(
        session,
        chat_id=spot.chat_id,
        thread_id=spot.thread_id,
        reply_to_message_id=spot.reply_to_message_id,
    )


def _reply(spot: StaffSpot, say: Say) -> ToStaffChat:
    return ToStaffChat(
        chat_id=spot.chat_id,
        say=say,
        thread_id=spot.thread_id,
        reply_to_message_id=spot.message_id,
    )


async def agent_wrote(
    session: AsyncSession,
    *,
    desk: Desk,
    member: StaffMember,
    spot: StaffSpot,
    text: str,
    media: Media | None,
    now: datetime,
    ticket_id: int | None = None,
) -> Outcome:
    """An agent's message in a ticket's topic, or replying to its card or a customer message
    (or, from the console, to ``ticket_id``)."""
    ticket = (
        await session.get(Ticket, ticket_id) if ticket_id is not None else None
    ) or await _ticket_at(session, spot)
    if ticket is None:
        if spot.reply_to_bot:  # a reply to one of Kefu's notices would reach nobody: say so
            return Outcome().add(_reply(spot, Say.staff("not_in_ticket")))
        return Outcome()  # agents talking among themselves
    if not member.allowed:
        return Outcome().add(_reply(spot, Say.staff("not_agent")))
    if spot.message_id is not None:
        seen = await session.execute(
            select(Message.id).where(
                Message.staff_chat_id == spot.chat_id,
                Message.staff_message_id == spot.message_id,
            )
        )
        if seen.first() is not None:
            return Outcome(duplicate=True)
    agent = await _agent(session, member, now)
    reply = await conversation.agent_message(
        session,
        ticket_id=ticket.id,
        agent_id=agent.id,
        text=text,
        media=media,
        staff_chat_id=spot.chat_id,
        staff_message_id=spot.message_id,
        now=now,
    )
    signature = None
    if desk.agent_signature:
        signature = Say.customer(reply.customer.language, "signature", name=agent.first_name)
    outcome = Outcome(ticket_id=ticket.id, ticket_number=ticket.number)
    return outcome.add(
        RelayToCustomer(
            message_id=reply.message_id,
            ticket_id=ticket.id,
            chat_id=reply.customer.chat_id or 0,
            signature=signature,
        )
    )


async def staff_command(
    session: AsyncSession,
    *,
    desk: Desk,
    member: StaffMember,
    spot: StaffSpot,
    command: str,
    argument: str = "",
    tap: Tap | None = None,
    ticket_id: int | None = None,
    now: datetime,
) -> Outcome:
    """``/claim``, ``/resolve``, ``/reopen``, ``/note``, ``/category`` and the card's buttons.

    With ``tap`` (a button) the ticket is ``ticket_id``; otherwise it is the ticket of the topic
    or card the command was written in.
    """
    outcome = Outcome()

    def refuse(say: Say) -> Outcome:
        if tap is not None:
            return outcome.add(
                AnswerStaffButton(callback_query_id=tap.callback_query_id, say=say, alert=True)
            )
        return outcome.add(_reply(spot, say))

    if not member.allowed:
        return refuse(Say.staff("not_agent"))
    if tap is not None or ticket_id is not None:
        ticket = await session.get(Ticket, ticket_id or 0)
        if ticket is None:
            raise TicketNotFound(ticket_id=ticket_id)
    else:
        found = await _ticket_at(session, spot)
        if found is None:
            return refuse(Say.staff("not_in_ticket"))
        ticket = found
    agent = await _agent(session, member, now)
    outcome.ticket_id, outcome.ticket_number = ticket.id, ticket.number
    number = ticket.number
    if command == "claim":
        await tickets.claim(session, ticket=ticket, agent_id=agent.id, now=now)
        say = Say.staff("claimed", agent=agent.first_name, number=number)
        outcome.add(NotifyThread(ticket_id=ticket.id, say=say), RefreshCard(ticket_id=ticket.id))
    elif command == "resolve":
        await tickets.resolve(session, ticket=ticket, now=now, agent_id=agent.id)
        customer = await session.get_one(Customer, ticket.customer_id)
        say = Say.staff("resolved", agent=agent.first_name, number=number)
        outcome.add(
            _to(
                customer,
                Say.customer(customer.language, "resolved", number=number),
                Keyboard("rating", (ticket.id,)),
            ),
            NotifyThread(ticket_id=ticket.id, say=say),
            RefreshCard(ticket_id=ticket.id),
        )
    elif command == "reopen":
        await tickets.reopen(session, ticket=ticket, now=now)
        say = Say.staff("reopened", agent=agent.first_name, number=number)
        outcome.add(NotifyThread(ticket_id=ticket.id, say=say), RefreshCard(ticket_id=ticket.id))
    elif command == "note":
        if not argument:
            return outcome.add(_reply(spot, Say.staff("note_empty")))
        await conversation.add_note(
            session,
            ticket_id=ticket.id,
            agent_id=agent.id,
            text=argument,
            staff_chat_id=spot.chat_id,
            staff_message_id=spot.message_id,
            now=now,
        )
        outcome.add(_reply(spot, Say.staff("note_saved", number=number)))
    elif command == "category":
        name = argument.strip().lower().replace(" ", "_")
        if name not in desk.categories:
            if tap is not None:
                raise TicketNotFound(ticket_id=ticket.id)
            key = "category_unknown" if name else "category_usage"
            return outcome.add(_reply(spot, Say.staff(key, categories=", ".join(desk.categories))))
        await corrections.create(
            session, ticket_id=ticket.id, agent_id=agent.id, category=name, now=now
        )
        say = Say.staff("category_set", agent=agent.first_name, number=number, category=name)
        outcome.add(NotifyThread(ticket_id=ticket.id, say=say), RefreshCard(ticket_id=ticket.id))
    elif command in ("categories", "card") and tap is not None and tap.message_id is not None:
        keyboard = (
            Keyboard("categories", (ticket.id,))
            if command == "categories"
            else Keyboard("staff_card", (ticket.id, str(ticket.status)))
        )
        outcome.add(
            EditStaffKeyboard(
                ticket_id=ticket.id,
                chat_id=tap.chat_id,
                message_id=tap.message_id,
                keyboard=keyboard,
            )
        )
    else:
        raise TicketNotFound(ticket_id=ticket.id)
    if tap is not None:
        outcome.add(AnswerStaffButton(callback_query_id=tap.callback_query_id))
    return outcome


async def queue_asked(
    session: AsyncSession, *, member: StaffMember, spot: StaffSpot, now: datetime
) -> Outcome:
    if not member.allowed:
        return Outcome().add(_reply(spot, Say.staff("not_agent")))
    await _agent(session, member, now)
    return Outcome().add(StaffQueue(chat_id=spot.chat_id, thread_id=spot.thread_id))


# ------------------------------------------------------------------------------ delivery's news


async def customer_unreachable(
    session: AsyncSession, *, customer_id: int, ticket_id: int | None, reason: str, now: datetime
) -> Outcome:
    """Telegram refused to deliver to the customer (they blocked the bot): recorded; the agents
    of their ticket are told."""
    customer = await session.get(Customer, customer_id)
    if customer is None:
        return Outcome()
    first_time = customer.unreachable_at is None
    customer.unreachable_at = now
    if ticket_id is None:
        current = await tickets.get_active_for_customer(session, customer_id=customer_id)
        ticket_id = current.id if current is not None else None
    ticket = await session.get(Ticket, ticket_id) if ticket_id is not None else None
    outcome = Outcome()
    if ticket is not None and _with_agents(ticket) and first_time:
        say = Say.staff("customer_unreachable", number=ticket.number, reason=reason)
        outcome.add(NotifyThread(ticket_id=ticket.id, say=say))
    return outcome


async def relay_failed(
    session: AsyncSession, *, message_id: int, reason: str, now: datetime
) -> Outcome:
    """An agent's message could not reach the customer: if it was the ticket's first response,
    the ticket still waits for one; the agents are told why."""
    message = await session.get(Message, message_id)
    if message is None or message.ticket_id is None:
        return Outcome()
    ticket = await tickets.get(session, ticket_id=message.ticket_id)
    if ticket.first_response_at is not None and ticket.first_response_at == message.created_at:
        # The first response is the next agent message that did reach the customer, if any.
        later = await session.scalar(
            select(Message.created_at)
            .where(
                Message.ticket_id == ticket.id,
                Message.id != message.id,
                Message.direction == Direction.OUTBOUND,
                Message.author_kind == AuthorKind.AGENT,
                Message.created_at >= message.created_at,
                Message.customer_message_id.is_not(None),
            )
            .order_by(Message.created_at, Message.id)
            .limit(1)
        )
        ticket.first_response_at = later
        if later is None and ticket.status == TicketStatus.PENDING:
            ticket.status = TicketStatus.OPEN
    say = Say.staff("relay_failed", reason=reason)
    return Outcome(ticket_id=ticket.id).add(NotifyThread(ticket_id=ticket.id, say=say))


async def staff_chat_moved(
    session: AsyncSession, *, old_chat_id: int, new_chat_id: int, now: datetime
) -> Outcome:
    """The staff chat became a supergroup with a new id: recorded; every ticket in work gets
    its place again in the new chat (message ids do not carry over)."""
    from crm.models import StaffChatMove

    if await session.get(StaffChatMove, old_chat_id) is None:
        session.add(StaffChatMove(old_chat_id=old_chat_id, new_chat_id=new_chat_id, moved_at=now))
    moved = await session.execute(select(Ticket).where(Ticket.staff_chat_id == old_chat_id))
    outcome = Outcome()
    for ticket in moved.scalars():
        ticket.staff_chat_id = None
        ticket.staff_thread_id = None
        ticket.staff_card_message_id = None
        if ticket.status in (TicketStatus.OPEN, TicketStatus.PENDING, TicketStatus.ESCALATED):
            outcome.add(OpenStaffPlace(ticket_id=ticket.id))
    await session.flush()
    return outcome
