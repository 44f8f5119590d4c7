"""Updates handled once: a duplicate delivery, two processes routing the same new customer, and
service messages that must never open a ticket."""

from __future__ import annotations

import asyncio

import pytest

from tests.e2e.durability.harness import Desk, body, eventually, inbound_rows, ticket_rows

WAIT = 30.0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_duplicate_update(desk: Desk) -> None:
    """Telegram delivers the same update (same update_id) twice: one row, one relay, one
    acknowledgement."""
    api = desk.api
    desk.forum_staff_chat()
    [customer] = desk.customers(1)
    await desk.start()
    written = api.user_sends_text(customer, "u1 I never got my confirmation e-mail")
    arrived = await eventually(
        lambda: bool(desk.relays_of("u1 I never")) and bool(desk.acknowledgements(customer)),
        WAIT,
    )
    assert arrived, f"the message never reached the agents: {desk.staff_messages()}"
    await desk.quiet(0.5)

    api.redeliver(api.update_id_of(written))
    await desk.quiet(1.0)
    # and the bot goes on with the next update as usual
    api.user_sends_text(customer, "u2 I checked the spam folder too")
    arrived = await eventually(lambda: bool(desk.relays_of("u2 I checked")), WAIT)
    assert arrived, f"the next message never reached the agents: {desk.staff_messages()}"
    await desk.quiet(1.0)

    assert len(desk.relays_of("u1 I never")) == 1, "the duplicate was relayed again"
    assert len(desk.acknowledgements(customer)) == 1, "the duplicate was acknowledged again"
    assert desk.error_texts(customer) == []
    await desk.stop_all()
    rows = [r for r in await inbound_rows(desk.database_url) if r.text.startswith("u1 ")]
    assert [(r.customer_chat_id, r.customer_message_id) for r in rows] == [
        (customer["id"], written["message_id"])
    ]
    assert len(await ticket_rows(desk.database_url)) == 1
    assert api.internal_errors == []
    desk.assert_clean_logs()


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_two_processes_same_new_customer(database_url: str) -> None:
    """Two processes route the same new customer's first messages at the same moment: one
    customer, one ticket (the database's invariant, not an in-process lock).

    Two bot processes cannot poll one fake server at once (the second getUpdates ends the
    first with 409 Conflict), so this test drives the flow layer directly from two engines.
    """
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    from sqlalchemy import func, select

    from crm.db import create_engine, create_session_factory
    from crm.models import Customer, Direction, Message, OutboxRow, Ticket
    from crm.support import flows
    from crm.support.flows import CustomerMessage, Person
    from crm.support.flows import Desk as DeskRules
    from crm.support.runner import FlowRunner
    from quality.stats import BusinessHours

    rules = DeskRules(hours=BusinessHours.parse("", ZoneInfo("UTC")), auto_answer=False)
    person = Person(telegram_user_id=777, chat_id=777, first_name="Mei")
    engines = [create_engine(database_url) for _ in range(2)]
    try:
        runners = [
            FlowRunner(create_session_factory(engine), clock=lambda: datetime.now(UTC))
            for engine in engines
        ]

        async def write(runner: FlowRunner, message_id: int) -> flows.Outcome:
            incoming = CustomerMessage(
                person=person, text=f"hello {message_id}", message_id=message_id
            )
            return await runner.run(
                lambda s: flows.customer_wrote(
                    s, desk=rules, incoming=incoming, understood=None, now=datetime.now(UTC)
                )
            )

        outcomes = await asyncio.gather(write(runners[0], 1), write(runners[1], 2))
        factory = create_session_factory(engines[0])
        async with factory() as session:
            customers = await session.scalar(select(func.count(Customer.id)))
            tickets = (await session.execute(select(Ticket))).scalars().all()
            messages = (
                (
                    await session.execute(
                        select(Message).where(Message.direction == Direction.INBOUND)
                    )
                )
                .scalars()
                .all()
            )
            acks = await session.scalar(
                select(func.count(OutboxRow.id)).where(OutboxRow.kind == "to_customer")
            )
        assert customers == 1
        assert len(tickets) == 1 and tickets[0].is_current
        assert sorted(m.customer_message_id or 0 for m in messages) == [1, 2]
        assert {m.ticket_id for m in messages} == {tickets[0].id}
        assert acks == 1
        assert sorted(o.ticket_id or 0 for o in outcomes) == [tickets[0].id] * 2
    finally:
        for engine in engines:
            await engine.dispose()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_service_messages_open_no_ticket(desk: Desk) -> None:
    """Pinning a message, changing the auto-delete timer or throwing a dice in the private
    chat opens no ticket and reaches no agent."""
    api = desk.api
    desk.forum_staff_chat()
    customer, other = desk.customers(2)
    await desk.start()
    api.user_sends_text(customer, "/start")
    greeted = await eventually(lambda: bool(desk.to_customer(customer)), WAIT)
    assert greeted, "no answer to /start"
    [welcome] = desk.to_customer(customer)
    api.user_pins_message(customer, welcome)
    api.user_sets_auto_delete_timer(customer, 86400)
    api.user_sends_dice(customer, emoji="🎲", value=3)
    # another customer's ordinary message afterwards: when it is through, so are those
    api.user_sends_text(other, "s1 my package arrived damaged")
    arrived = await eventually(lambda: bool(desk.relays_of("s1 my package")), WAIT)
    assert arrived, f"the ordinary message never reached the agents: {desk.staff_messages()}"
    await desk.quiet(1.0)

    assert desk.acknowledgements(customer) == [], "a ticket was opened for a service message"
    assert [body(m) for m in desk.staff_messages() if customer["first_name"] in body(m)] == []
    await desk.stop_all()
    tickets = await ticket_rows(desk.database_url)
    assert [t.telegram_user_id for t in tickets] == [other["id"]]
    rows = await inbound_rows(desk.database_url)
    assert all(r.customer_chat_id != customer["id"] or r.text == "/start" for r in rows), rows
    assert api.internal_errors == []
    desk.assert_clean_logs()
