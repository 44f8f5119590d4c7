"""What delivery tells the flows: a customer unreachable, a relay refused, the staff chat moved."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from crm.models import Direction, StaffChatMove, TicketStatus
from crm.support import flows
from crm.support.outcomes import NotifyThread, OpenStaffPlace, Outcome, Say
from tests.crm.support.harness import STAFF_CHAT, T0, Support, understood


async def unreachable(support: Support, customer_id: int, ticket_id: int | None) -> Outcome:
    now = support.now
    return await support.runner.run(
        lambda s: flows.customer_unreachable(
            s, customer_id=customer_id, ticket_id=ticket_id, reason="blocked", now=now
        )
    )


async def relay_failed(support: Support, message_id: int) -> Outcome:
    now = support.now
    return await support.runner.run(
        lambda s: flows.relay_failed(s, message_id=message_id, reason="Forbidden", now=now)
    )


async def chat_moved(support: Support, new_chat_id: int) -> Outcome:
    now = support.now
    return await support.runner.run(
        lambda s: flows.staff_chat_moved(
            s, old_chat_id=STAFF_CHAT, new_chat_id=new_chat_id, now=now
        )
    )


async def test_customer_unreachable_tells_the_tickets_place_once(support: Support) -> None:
    written = await support.write(1, "help")
    ticket_id = written.ticket_id or 0
    customer = await support.customer(1)
    support.tick(minutes=1)
    first = await unreachable(support, customer.id, ticket_id)
    notice = NotifyThread(
        ticket_id=ticket_id,
        say=Say.staff("customer_unreachable", number=1001, reason="blocked"),
    )
    assert first.effects == [notice]
    assert (await support.customer(1)).unreachable_at == T0 + timedelta(minutes=1)
    support.tick(minutes=1)
    again = await unreachable(support, customer.id, None)  # the next refused send
    assert again.effects == []
    assert (await support.customer(1)).unreachable_at == T0 + timedelta(minutes=2)
    assert (await support.destinations())[-1] == ("notify_thread", f"ticket:{ticket_id}", "staff")

    # Writing again shows the chat works; a later block is news again (found by the ticket).
    await support.write(1, "sorry, back")
    assert (await support.customer(1)).unreachable_at is None
    later = await unreachable(support, customer.id, None)
    assert later.effects == [notice]


async def test_customer_unreachable_without_agents_or_customer_is_quiet(support: Support) -> None:
    answered = await support.write(1, "reset?", understanding=understood("account_login", 0.9))
    customer = await support.customer(1)
    outcome = await unreachable(support, customer.id, answered.ticket_id)
    assert outcome.effects == []  # the ticket has no place in the staff chat to tell
    assert (await support.customer(1)).unreachable_at == T0
    assert await unreachable(support, customer.id + 100, None) == Outcome()


async def test_relay_failed_undoes_the_first_response(support: Support) -> None:
    written = await support.write(1, "help")
    ticket_id = written.ticket_id or 0
    spot = await support.give_place(ticket_id, thread_id=71, card_message_id=701)
    support.tick(minutes=5)
    await support.agent_writes("first answer", spot=spot, message_id=901)
    support.tick(minutes=1)
    await support.agent_writes("second answer", spot=spot, message_id=902)
    first, second = [
        m.id for m in await support.messages(ticket_id) if m.direction == Direction.OUTBOUND
    ]

    later = await relay_failed(support, second)  # not the first response: it stands
    assert later.effects == [
        NotifyThread(ticket_id=ticket_id, say=Say.staff("relay_failed", reason="Forbidden"))
    ]
    ticket = await support.ticket(ticket_id)
    assert (ticket.first_response_at, ticket.status) == (
        T0 + timedelta(minutes=5),
        TicketStatus.PENDING,
    )

    failed = await relay_failed(support, first)
    assert (failed.ticket_id, failed.effects) == (
        ticket_id,
        [NotifyThread(ticket_id=ticket_id, say=Say.staff("relay_failed", reason="Forbidden"))],
    )
    ticket = await support.ticket(ticket_id)
    assert (ticket.first_response_at, ticket.status) == (None, TicketStatus.OPEN)
    assert await relay_failed(support, first + 100) == Outcome()


async def test_staff_chat_moved_clears_places_and_asks_for_new_ones(support: Support) -> None:
    working = await support.write(1, "help")
    done = await support.write(2, "thanks")
    answered = await support.write(3, "reset?", understanding=understood("account_login", 0.9))
    working_id, done_id = working.ticket_id or 0, done.ticket_id or 0
    await support.give_place(working_id, thread_id=71, card_message_id=701)
    await support.give_place(done_id, thread_id=72, card_message_id=702)
    await support.staff("resolve", ticket_id=done_id)

    support.tick(minutes=1)
    moved = await chat_moved(support, -100999)
    assert moved.effects == [OpenStaffPlace(ticket_id=working_id)]
    for ticket_id in (working_id, done_id, answered.ticket_id or 0):
        ticket = await support.ticket(ticket_id)
        assert (ticket.staff_chat_id, ticket.staff_thread_id, ticket.staff_card_message_id) == (
            None,
            None,
            None,
        )
    [move] = await support.read(select(StaffChatMove))
    assert (move.old_chat_id, move.new_chat_id, move.moved_at) == (
        STAFF_CHAT,
        -100999,
        T0 + timedelta(minutes=1),
    )
    assert (await support.destinations())[-1] == (
        "open_staff_place",
        f"ticket:{working_id}",
        "staff",
    )

    again = await chat_moved(support, -100999)  # told twice: nothing more to do
    assert again.effects == []
    assert len(await support.read(select(StaffChatMove))) == 1
