"""A ticket's place in the staff chat disappears under Kefu's feet: a topic deleted or closed by
a human admin, the staff group upgraded to a supergroup (``migrate_to_chat_id``). The
customer's next message still reaches the agents, in the ticket's new place (a new topic with
the card, then the message), the customer is told nothing alarming, and an agent's answer
written in the new place reaches the customer.
"""

from __future__ import annotations

import pytest

from tests.e2e.durability.harness import (
    CARD,
    TICKET_NUMBER,
    Desk,
    TicketRow,
    body,
    eventually,
    ticket_rows,
    tickets_of,
)
from tests.fakebotapi import JSON

WAIT = 30.0


async def first_contact(
    desk: Desk, customer: JSON, text: str, chat_id: int | None = None
) -> tuple[int, JSON]:
    """A new customer writes; returns the ticket number and the relay agents got."""
    desk.api.user_sends_text(customer, text)
    arrived = await eventually(
        lambda: bool(desk.relays_of(text, chat_id)) and bool(desk.acknowledgements(customer)),
        WAIT,
    )
    shown = [(m["chat"]["id"], body(m)[:60]) for m in desk.api.sent]
    assert arrived, f"the first message never reached the agents; the bot sent {shown}"
    [ack] = desk.acknowledgements(customer)
    found = TICKET_NUMBER.search(body(ack))
    assert found is not None
    [relay] = desk.relays_of(text, chat_id)
    await desk.quiet(0.5)
    return int(found[1]), relay


async def reaches_new_topic(desk: Desk, number: int, text: str, old_thread: int) -> int:
    """The message arrives in a new topic whose card comes first; returns its thread id."""
    arrived = await eventually(lambda: bool(desk.relays_of(text)), WAIT)
    shown = [(m.get("message_thread_id"), body(m)[:60]) for m in desk.staff_messages()]
    assert arrived, f"the message never reached the agents; the staff chat has {shown}"
    [relay] = desk.relays_of(text)
    thread = relay.get("message_thread_id")
    assert thread is not None and thread != old_thread, f"relayed into {thread}: {shown}"
    assert thread in [t["message_thread_id"] for t in desk.api.topics(desk.staff_id)]
    assert thread in desk.topics_created()
    cards = [m for m in desk.api.sent_to(desk.staff_id, thread_id=thread) if CARD.search(body(m))]
    assert [f"Ticket #{number}" in body(card) for card in cards[:1]] == [True], (
        f"no card of #{number} in the new topic"
    )
    assert cards[0]["message_id"] < relay["message_id"], "the card must come first"
    return int(thread)


async def agent_answer_reaches(
    desk: Desk,
    customer: JSON,
    text: str,
    *,
    chat_id: int,
    thread_id: int | None = None,
    reply_to: int | None = None,
) -> None:
    """An agent writes in the ticket's place; the customer must receive it."""
    desk.api.user_sends_text(
        desk.agents[0],
        text,
        chat_id=chat_id,
        message_thread_id=thread_id,
        reply_to_message_id=reply_to,
    )
    arrived = await eventually(
        lambda: any(text in body(m) for m in desk.to_customer(customer)), WAIT
    )
    assert arrived, f"the agent's answer never reached the customer: {desk.staff_messages()}"


async def only_ticket(desk: Desk, customer: JSON) -> TicketRow:
    own = tickets_of(await ticket_rows(desk.database_url), customer)
    assert len(own) == 1, f"{len(own)} tickets: {own}"
    return own[0]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_topic_deleted_by_hand(desk: Desk) -> None:
    api = desk.api
    desk.forum_staff_chat()
    [customer] = desk.customers(1)
    await desk.start()
    number, relay = await first_contact(desk, customer, "d1 my order 5501 never arrived")
    old_thread = int(relay["message_thread_id"])

    api.admin_deletes_topic(desk.staff_id, old_thread)
    api.user_sends_text(customer, "d2 it has been a week now")
    thread = await reaches_new_topic(desk, number, "d2 it has been a week now", old_thread)
    await agent_answer_reaches(
        desk,
        customer,
        "d3 we found your parcel, it ships today",
        chat_id=desk.staff_id,
        thread_id=thread,
    )
    await desk.quiet(0.5)
    assert desk.error_texts(customer) == []
    assert len(desk.acknowledgements(customer)) == 1

    await desk.stop_all()
    ticket = await only_ticket(desk, customer)
    assert (ticket.staff_chat_id, ticket.staff_thread_id) == (desk.staff_id, thread)
    assert api.internal_errors == []
    desk.assert_clean_logs()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_topic_closed_by_hand(desk: Desk) -> None:
    api = desk.api
    desk.forum_staff_chat()
    [customer] = desk.customers(1)
    await desk.start()
    number, relay = await first_contact(desk, customer, "k1 the app logs me out all the time")
    old_thread = int(relay["message_thread_id"])

    api.admin_closes_topic(desk.staff_id, old_thread, by=desk.agents[0])
    await desk.quiet(0.5)
    api.user_sends_text(customer, "k2 it happened again just now")
    thread = await reaches_new_topic(desk, number, "k2 it happened again just now", old_thread)
    await agent_answer_reaches(
        desk, customer, "k3 please update to version 4.2", chat_id=desk.staff_id, thread_id=thread
    )
    await desk.quiet(0.5)
    assert desk.error_texts(customer) == []
    assert len(desk.acknowledgements(customer)) == 1

    await desk.stop_all()
    ticket = await only_ticket(desk, customer)
    assert (ticket.staff_chat_id, ticket.staff_thread_id) == (desk.staff_id, thread)
    assert api.internal_errors == []
    desk.assert_clean_logs()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_staff_chat_migrated(desk: Desk) -> None:
    """A basic group (cards, no topics) upgraded to a supergroup: Kefu follows it to the new
    chat id, and keeps using it after a restart with the old id still in its settings."""
    api = desk.api
    old_id = desk.basic_group_staff_chat()["id"]
    first, later, after_restart = desk.customers(3)
    await desk.start()
    number, _ = await first_contact(desk, first, "g1 I was charged for a cancelled order")
    assert desk.cards(number), "the ticket's card is in the staff group"

    new_id = api.migrate_chat(old_id)
    api.user_sends_text(first, "g2 the refund has not arrived")
    arrived = await eventually(lambda: bool(desk.relays_of("g2 the refund", new_id)), WAIT)
    shown = [(m["chat"]["id"], body(m)[:60]) for m in api.sent]
    assert arrived, f"the message never reached the agents in the new chat: {shown}"
    [relay] = desk.relays_of("g2 the refund", new_id)
    cards = desk.cards(number, new_id)
    assert cards, f"no card of #{number} in the new chat"
    assert cards[0]["message_id"] < relay["message_id"], "the card must come first"
    await agent_answer_reaches(
        desk,
        first,
        "g3 your refund was sent yesterday",
        chat_id=new_id,
        reply_to=relay["message_id"],
    )
    await desk.quiet(0.5)
    # the desk keeps working in the new chat: a new customer's ticket goes there
    second_number, _ = await first_contact(desk, later, "g4 where can I change my address?", new_id)
    assert desk.cards(second_number, new_id), "a new ticket's card belongs in the new chat"

    # ... also after a restart with the old id still in KEFU_STAFF_CHAT_ID
    await desk.stop_all()
    await desk.start()
    third_number, relay = await first_contact(
        desk, after_restart, "g5 my voucher is invalid", new_id
    )
    assert relay["chat"]["id"] == new_id
    assert desk.cards(third_number, new_id)
    await agent_answer_reaches(
        desk,
        after_restart,
        "g6 here is a new voucher",
        chat_id=new_id,
        reply_to=relay["message_id"],
    )
    await desk.quiet(0.5)
    for customer in (first, later, after_restart):
        assert desk.error_texts(customer) == []
        assert len(desk.acknowledgements(customer)) == 1

    await desk.stop_all()
    for customer in (first, later, after_restart):
        ticket = await only_ticket(desk, customer)
        assert ticket.staff_chat_id == new_id
    assert api.internal_errors == []
    desk.assert_clean_logs()
