"""A message's analysis folded into its ticket by the customer's flow, and agents' corrections."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from crm import corrections, tickets
from crm.models import CategoryCorrection, Direction
from crm.support.outcomes import NotifyThread, RefreshCard, RelayToStaff, Say
from nlp.entities import Entity
from tests.crm.support.harness import T0, Support, understood

DISGRACE = "THIS IS A DISGRACE, I WILL SUE"


async def test_analysis_sets_category_priority_and_keeps_corrections(support: Support) -> None:
    order = Entity("ORDER", "AB-123456", 0, 9)
    card = Entity("CARD", "4111 1111 1111 1234", 10, 29)
    first = await support.write(
        1,
        "where is my parcel",
        understanding=understood(
            "orders_delivery", 0.7, entities=(order, card), ticket_summary="Parcel late."
        ),
    )
    ticket_id = first.ticket_id or 0
    [row] = await support.messages(ticket_id)
    assert (row.language, row.category, row.category_confidence, row.sentiment, row.urgency) == (
        "en",
        "orders_delivery",
        0.7,
        "neutral",
        "normal",
    )
    assert row.entities == [
        {"label": "ORDER", "text": "AB-123456", "start": 0, "end": 9},
        {"label": "CARD", "text": "•••• 1234", "start": 10, "end": 29},  # never the full number
    ]
    ticket = await support.ticket(ticket_id)
    assert (ticket.category, ticket.priority, ticket.summary) == (
        "orders_delivery",
        3,
        "Parcel late.",
    )
    assert first.kinds() == ["to_customer", "open_staff_place", "relay_to_staff"]

    support.tick(minutes=1)
    second = await support.write(
        1,
        DISGRACE,
        understanding=understood("complaint", 0.6, sentiment="negative", urgency="high"),
    )
    m2 = (await support.messages(ticket_id))[1].id
    # the card shows the new priority
    assert second.effects == [
        RelayToStaff(ticket_id=ticket_id, message_id=m2),
        RefreshCard(ticket_id=ticket_id),
    ]
    ticket = await support.ticket(ticket_id)
    # a less confident category does not replace the ticket's; urgency and sentiment do
    assert (ticket.category, ticket.sentiment, ticket.urgency, ticket.priority, ticket.summary) == (
        "orders_delivery",
        "negative",
        "high",
        1,
        "Parcel late.",  # no new summary: the last one stays
    )

    spot = await support.give_place(ticket_id, thread_id=71, card_message_id=701)
    fixed = await support.staff("category", spot=spot, argument="Complaint")
    assert fixed.effects == [
        NotifyThread(
            ticket_id=ticket_id,
            say=Say.staff("category_set", agent="Alice", number=1001, category="complaint"),
        ),
        RefreshCard(ticket_id=ticket_id),
    ]
    [fix] = await support.read(select(CategoryCorrection))
    assert (fix.ticket_id, fix.previous_category, fix.category, fix.text) == (
        ticket_id,
        "orders_delivery",
        "complaint",
        f"where is my parcel\n{DISGRACE}",
    )
    assert (await support.ticket(ticket_id)).category_confidence == 1.0

    support.tick(minutes=2)
    third = await support.write(1, "hello?", understanding=understood("account_login", 0.99))
    ticket = await support.ticket(ticket_id)
    assert (ticket.category, ticket.sentiment, ticket.urgency, ticket.priority) == (
        "complaint",  # the agent's correction stays
        "neutral",
        "high",  # the highest urgency seen
        1,
    )
    assert third.kinds() == ["relay_to_staff"]  # nothing the card shows changed
    async with support.factory() as session:
        assert await corrections.examples(session) == [
            (f"where is my parcel\n{DISGRACE}", "complaint")
        ]


async def test_new_entities_refresh_the_card_even_without_a_new_category(support: Support) -> None:
    first = await support.write(1, "parcel?", understanding=understood("orders_delivery", 0.8))
    ticket_id = first.ticket_id or 0
    plain = await support.write(1, "any news?", understanding=understood("orders_delivery", 0.5))
    with_order = await support.write(
        1,
        "it is AB-123456",
        understanding=understood(
            "orders_delivery", 0.5, entities=(Entity("ORDER", "AB-123456", 6, 15),)
        ),
    )
    unread = await support.write(1, "")  # a sticker: nothing to understand
    assert plain.kinds() == ["relay_to_staff"]
    assert with_order.kinds() == ["relay_to_staff", "refresh_card"]
    assert unread.kinds() == ["relay_to_staff"]
    async with support.factory() as session:
        shown = await tickets.card(session, ticket_id=ticket_id)
    assert shown.entities == [("ORDER", "AB-123456")]
    rows = await support.messages(ticket_id)
    assert [(m.direction, m.category) for m in rows] == [
        (Direction.INBOUND, "orders_delivery"),
        (Direction.INBOUND, "orders_delivery"),
        (Direction.INBOUND, "orders_delivery"),
        (Direction.INBOUND, None),
    ]


async def test_queue_orders_by_priority_then_waiting(support: Support) -> None:
    calm = await support.write(1, "question")
    support.tick(minutes=5)
    angry = await support.write(
        2, "angry", understanding=understood("complaint", 0.9, sentiment="negative", urgency="high")
    )
    support.tick(minutes=5)
    upset = await support.write(
        3, "meh", understanding=understood("complaint", 0.9, sentiment="negative")
    )
    async with support.factory() as session:
        queue = await tickets.queue(session)
    assert [(q.ticket.id, q.ticket.priority) for q in queue] == [
        (angry.ticket_id, 1),
        (upset.ticket_id, 2),
        (calm.ticket_id, 3),
    ]
    assert [q.waiting_since for q in queue] == [
        T0 + timedelta(minutes=5),
        T0 + timedelta(minutes=10),
        T0,
    ]
