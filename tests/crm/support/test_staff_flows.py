"""What happens when agents write and use commands or the card's buttons, through the flows."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import select

from crm.errors import TicketNotActive, TicketNotFound
from crm.models import Agent, AuthorKind, Direction, Message, OutboxRow, TicketStatus
from crm.support.flows import StaffSpot
from crm.support.outcomes import (
    AnswerStaffButton,
    EditStaffKeyboard,
    Keyboard,
    NotifyThread,
    Outcome,
    RefreshCard,
    RelayToCustomer,
    Say,
    StaffQueue,
    ToCustomer,
    ToStaffChat,
)
from tests.crm.support.harness import ALICE, BOB, CATEGORIES, STAFF_CHAT, STRANGER, T0, Support, tap


async def open_ticket(
    support: Support, user_id: int = 1, text: str = "help"
) -> tuple[int, StaffSpot]:
    """A customer's ticket with its topic in the staff chat (as delivery leaves it)."""
    outcome = await support.write(user_id, text)
    ticket_id = outcome.ticket_id or 0
    spot = await support.give_place(
        ticket_id, thread_id=70 + user_id, card_message_id=700 + user_id
    )
    return ticket_id, spot


def in_topic(spot: StaffSpot, message_id: int) -> StaffSpot:
    return replace(spot, message_id=message_id)


# ------------------------------------------------------------------------------ agents' replies


async def test_agent_reply_is_relayed_and_sets_first_response_once(support: Support) -> None:
    ticket_id, spot = await open_ticket(support)
    support.tick(minutes=5)
    first = await support.agent_writes("hi", spot=spot, message_id=901)
    support.tick(minutes=4)
    second = await support.agent_writes("again", spot=spot, message_id=902)
    [alice] = await support.read(select(Agent))
    replies = [m for m in await support.messages(ticket_id) if m.direction == Direction.OUTBOUND]
    assert [(m.text, m.author_kind, m.agent_id, m.staff_message_id) for m in replies] == [
        ("hi", AuthorKind.AGENT, alice.id, 901),
        ("again", AuthorKind.AGENT, alice.id, 902),
    ]
    assert first.effects == [
        RelayToCustomer(message_id=replies[0].id, ticket_id=ticket_id, chat_id=1, signature=None)
    ]
    assert second.effects == [
        RelayToCustomer(message_id=replies[1].id, ticket_id=ticket_id, chat_id=1, signature=None)
    ]
    assert (first.ticket_number, second.ticket_number) == (1001, 1001)
    ticket = await support.ticket(ticket_id)
    assert (ticket.first_response_at, ticket.status, ticket.assignee_id) == (
        T0 + timedelta(minutes=5),
        TicketStatus.PENDING,
        alice.id,
    )
    assert (alice.telegram_user_id, alice.first_name) == (ALICE.telegram_user_id, "Alice")
    assert (await support.destinations())[-2:] == [
        ("relay_to_customer", "chat:1", "customer"),
        ("relay_to_customer", "chat:1", "customer"),
    ]

    support.tick(minutes=1)
    await support.write(1, "thanks, still broken")
    assert (await support.ticket(ticket_id)).status == TicketStatus.OPEN


async def test_agent_reply_found_by_card_or_relayed_message_and_signed(support: Support) -> None:
    ticket_id, _ = await open_ticket(support)
    [relayed] = await support.messages(ticket_id)
    async with support.factory.begin() as session:  # delivery's write-back of the staff copy
        row = await session.get_one(Message, relayed.id)
        row.staff_chat_id, row.staff_message_id = STAFF_CHAT, 800
    signed = replace(support.desk, agent_signature=True)
    support.desk = signed
    by_card = StaffSpot(chat_id=STAFF_CHAT, thread_id=None, reply_to_message_id=701)
    by_copy = StaffSpot(chat_id=STAFF_CHAT, thread_id=None, reply_to_message_id=800)
    one = await support.agent_writes("on it", spot=by_card, message_id=910, member=BOB)
    two = await support.agent_writes("done", spot=by_copy, message_id=911, member=BOB)
    signature = Say.customer("en", "signature", name="Bob")
    assert [(e.ticket_id, e.signature) for e in one.effects + two.effects] == [  # type: ignore[attr-defined]
        (ticket_id, signature),
        (ticket_id, signature),
    ]


async def test_agent_message_delivered_twice_is_stored_once(support: Support) -> None:
    ticket_id, spot = await open_ticket(support)
    await support.agent_writes("hi", spot=spot, message_id=901)
    rows = await support.count(OutboxRow)
    again = await support.agent_writes("hi", spot=spot, message_id=901)
    assert again == Outcome(duplicate=True)
    assert len(await support.messages(ticket_id)) == 2
    assert await support.count(OutboxRow) == rows


async def test_agent_messages_outside_tickets_and_from_strangers(support: Support) -> None:
    ticket_id, spot = await open_ticket(support)
    lobby = StaffSpot(chat_id=STAFF_CHAT, thread_id=None, reply_to_message_id=None, message_id=5)
    chatting = await support.agent_writes("coffee?", spot=lobby, message_id=5)
    assert chatting == Outcome()  # agents talking among themselves: nothing to do
    to_notice = replace(lobby, reply_to_message_id=4, reply_to_bot=True)
    lost = await support.agent_writes("thanks", spot=to_notice, message_id=6)
    assert lost.effects == [
        ToStaffChat(chat_id=STAFF_CHAT, say=Say.staff("not_in_ticket"), reply_to_message_id=6)
    ]
    refused = await support.agent_writes("let me", spot=spot, message_id=7, member=STRANGER)
    assert refused.effects == [
        ToStaffChat(
            chat_id=STAFF_CHAT, say=Say.staff("not_agent"), thread_id=71, reply_to_message_id=7
        )
    ]
    assert len(await support.messages(ticket_id)) == 1
    assert await support.count(Agent) == 0


# ------------------------------------------------------------------------------ commands


async def test_claim_resolve_reopen_in_the_topic(support: Support) -> None:
    ticket_id, spot = await open_ticket(support)
    customer = await support.customer(1)
    claimed = await support.staff("claim", spot=in_topic(spot, 20))
    [alice] = await support.read(select(Agent))
    assert claimed.effects == [
        NotifyThread(ticket_id=ticket_id, say=Say.staff("claimed", agent="Alice", number=1001)),
        RefreshCard(ticket_id=ticket_id),
    ]
    assert (await support.ticket(ticket_id)).assignee_id == alice.id
    support.tick(hours=1)
    resolved = await support.staff("resolve", spot=in_topic(spot, 21), member=BOB)
    assert resolved.effects == [
        ToCustomer(
            customer_id=customer.id,
            chat_id=1,
            say=Say.customer("en", "resolved", number=1001),
            keyboard=Keyboard("rating", (ticket_id,)),
        ),
        NotifyThread(ticket_id=ticket_id, say=Say.staff("resolved", agent="Bob", number=1001)),
        RefreshCard(ticket_id=ticket_id),
    ]
    done = await support.ticket(ticket_id)
    assert (done.status, done.assignee_id, done.resolved_at, done.resolution) == (
        TicketStatus.RESOLVED,
        alice.id,  # the claimer keeps it
        T0 + timedelta(hours=1),
        "agent",
    )
    with pytest.raises(TicketNotActive):
        await support.staff("claim", spot=in_topic(spot, 22))
    reopened = await support.staff("reopen", spot=in_topic(spot, 23))
    assert reopened.kinds() == ["notify_thread", "refresh_card"]
    back = await support.ticket(ticket_id)
    assert (back.status, back.is_current, back.resolved_at) == (TicketStatus.OPEN, True, None)


async def test_card_buttons_answer_the_tap(support: Support) -> None:
    ticket_id, _ = await open_ticket(support)
    button = tap(STAFF_CHAT, 701)
    claimed = await support.staff("claim", ticket_id=ticket_id, button=button)
    assert claimed.effects[-1] == AnswerStaffButton(callback_query_id=button.callback_query_id)
    chooser = await support.staff("categories", ticket_id=ticket_id, button=button)
    assert chooser.effects == [
        EditStaffKeyboard(
            ticket_id=ticket_id,
            chat_id=STAFF_CHAT,
            message_id=701,
            keyboard=Keyboard("categories", (ticket_id,)),
        ),
        AnswerStaffButton(callback_query_id=button.callback_query_id),
    ]
    back = await support.staff("card", ticket_id=ticket_id, button=button)
    assert back.effects[0] == EditStaffKeyboard(
        ticket_id=ticket_id,
        chat_id=STAFF_CHAT,
        message_id=701,
        keyboard=Keyboard("staff_card", (ticket_id, "open")),
    )
    with pytest.raises(TicketNotFound):  # a button for a ticket that does not exist
        await support.staff("claim", ticket_id=ticket_id + 100, button=button)


async def test_notes_are_internal(support: Support) -> None:
    ticket_id, spot = await open_ticket(support, text="x")
    noted = await support.staff("note", spot=in_topic(spot, 30), argument="VIP")
    assert noted.effects == [
        ToStaffChat(
            chat_id=STAFF_CHAT,
            say=Say.staff("note_saved", number=1001),
            thread_id=71,
            reply_to_message_id=30,
        )
    ]
    rows = await support.messages(ticket_id)
    assert [(m.direction, m.text, m.staff_message_id) for m in rows] == [
        (Direction.INBOUND, "x", None),
        (Direction.INTERNAL, "VIP", 30),
    ]
    empty = await support.staff("note", spot=in_topic(spot, 31))
    assert empty.effects == [
        ToStaffChat(
            chat_id=STAFF_CHAT, say=Say.staff("note_empty"), thread_id=71, reply_to_message_id=31
        )
    ]
    assert len(await support.messages(ticket_id)) == 2
    assert [d for d in await support.destinations() if d[2] == "customer"] == [
        ("to_customer", "chat:1", "customer")  # the acknowledgement only: notes never go out
    ]


async def test_staff_command_refusals(support: Support) -> None:
    ticket_id, spot = await open_ticket(support)
    rows = await support.count(OutboxRow)

    stranger = await support.staff("claim", spot=in_topic(spot, 40), member=STRANGER)
    assert stranger.effects == [
        ToStaffChat(
            chat_id=STAFF_CHAT, say=Say.staff("not_agent"), thread_id=71, reply_to_message_id=40
        )
    ]
    button = tap(STAFF_CHAT, 701)
    stranger_tap = await support.staff("claim", ticket_id=ticket_id, button=button, member=STRANGER)
    assert stranger_tap.effects == [
        AnswerStaffButton(
            callback_query_id=button.callback_query_id, say=Say.staff("not_agent"), alert=True
        )
    ]

    lobby = StaffSpot(chat_id=STAFF_CHAT, thread_id=None, reply_to_message_id=None, message_id=41)
    nowhere = await support.staff("resolve", spot=lobby)
    assert nowhere.effects == [
        ToStaffChat(chat_id=STAFF_CHAT, say=Say.staff("not_in_ticket"), reply_to_message_id=41)
    ]
    other_topic = await support.staff("claim", spot=replace(spot, thread_id=99, message_id=42))
    assert other_topic.kinds() == ["to_staff_chat"]

    categories = ", ".join(CATEGORIES)
    unknown = await support.staff("category", spot=in_topic(spot, 43), argument="Weather")
    assert unknown.effects == [
        ToStaffChat(
            chat_id=STAFF_CHAT,
            say=Say.staff("category_unknown", categories=categories),
            thread_id=71,
            reply_to_message_id=43,
        )
    ]
    usage = await support.staff("category", spot=in_topic(spot, 44))
    assert [e.say for e in usage.effects] == [  # type: ignore[attr-defined]
        Say.staff("category_usage", categories=categories)
    ]
    with pytest.raises(TicketNotFound):  # a stale category button
        await support.staff("category", ticket_id=ticket_id, argument="weather", button=button)
    with pytest.raises(TicketNotFound):  # a command the flows do not know
        await support.staff("launch", spot=in_topic(spot, 45))

    ticket = await support.ticket(ticket_id)
    assert (ticket.status, ticket.assignee_id, ticket.category) == (TicketStatus.OPEN, None, None)
    assert await support.count(Agent) == 1  # Alice, seen when she asked; never the stranger
    refusals = await support.count(OutboxRow) - rows
    assert refusals == 6  # one reply per refusal, stored like every other effect


async def test_queue_is_for_agents_only(support: Support) -> None:
    from crm.support import flows

    where = StaffSpot(chat_id=STAFF_CHAT, thread_id=3, reply_to_message_id=None, message_id=50)
    now = support.now
    asked = await support.runner.run(
        lambda s: flows.queue_asked(s, member=ALICE, spot=where, now=now)
    )
    refused = await support.runner.run(
        lambda s: flows.queue_asked(s, member=STRANGER, spot=where, now=now)
    )
    assert asked.effects == [StaffQueue(chat_id=STAFF_CHAT, thread_id=3)]
    assert refused.effects == [
        ToStaffChat(
            chat_id=STAFF_CHAT, say=Say.staff("not_agent"), thread_id=3, reply_to_message_id=50
        )
    ]
