"""A fifth of the Bot API's sendMessage/copyMessage calls fail (429 with retry_after, 500, a
dropped connection), with python-telegram-bot's rate limiter on and off: every
acknowledgement and every relay still arrives, exactly once.

Faults are injected *before* a call is carried out, so a retry can never duplicate a message
here: exactly once is the right expectation.
"""

from __future__ import annotations

import pytest

from tests.e2e.durability.harness import (
    TICKET_NUMBER,
    Desk,
    body,
    duplicates,
    eventually,
    inbound_rows,
    ticket_rows,
    tickets_of,
)
from tests.fakebotapi import FAULT_KINDS

DELIVERY_TIMEOUT = 60.0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("rate_limits", "count"),
    [
        ("off", 30),
        # Telegram allows about 20 messages a minute into one group, and with the limiter on
        # Kefu keeps to that (a burst of 20, then one every 3 s): 30 new tickets (a topic, a
        # card, 1-2 relays and card updates each) would need five minutes of the staff chat's
        # budget. Four fit in about its first burst.
        ("telegram", 4),
    ],
)
async def test_bot_api_faults(desk: Desk, rate_limits: str, count: int) -> None:
    api = desk.api
    desk.forum_staff_chat()
    customers = desk.customers(count)
    await desk.start(KEFU_TELEGRAM_RATE_LIMITS=rate_limits)
    api.inject_faults(0.2, seed=42)
    texts: dict[int, list[str]] = {}
    for i, customer in enumerate(customers):
        texts[customer["id"]] = [f"f{i:02d} a: my card was charged twice for order {i}"]
        if i % 2 == 0:
            texts[customer["id"]].append(f"f{i:02d} b: the amount is {10 + i} euros")
        for text in texts[customer["id"]]:
            api.user_sends_text(customer, text)
    expected = [text for own in texts.values() for text in own]

    def delivered() -> bool:
        acknowledged = {c["id"] for c in customers} <= desk.acknowledged()
        return acknowledged and all(desk.relays_of(text) for text in expected)

    # the faults last while the bot takes the messages in, and a little longer
    await eventually(lambda: api.pending_updates == 0, 30)
    await eventually(delivered, 3)
    api.clear_faults()
    assert all(api.fault_counts[kind] >= 1 for kind in FAULT_KINDS), api.fault_counts
    done = await eventually(delivered, DELIVERY_TIMEOUT)
    silent = [c["first_name"] for c in customers if not desk.acknowledgements(c)]
    lost = [text for text in expected if not desk.relays_of(text)]
    assert done, (
        f"after {api.fault_counts} faults: {len(silent)} of {count} customers never "
        f"acknowledged {silent}; {len(lost)} of {len(expected)} messages never reached the "
        f"agents {lost[:5]}"
    )
    await desk.quiet(1.5)

    for customer in customers:
        acks = [body(m) for m in desk.acknowledgements(customer)]
        assert len(acks) == 1, f"{customer['first_name']} acknowledged {len(acks)}x: {acks}"
        assert desk.error_texts(customer) == []
        shown = [desk.relays_of(text) for text in texts[customer["id"]]]
        assert [len(copies) for copies in shown] == [1] * len(shown), "a relay repeated"
        ids = [copies[0]["message_id"] for copies in shown]
        assert ids == sorted(ids), f"{customer['first_name']}'s messages out of order"

    await desk.stop_all()
    rows = [r for r in await inbound_rows(desk.database_url) if r.text in expected]
    assert sorted(r.text for r in rows) == sorted(expected)
    assert duplicates((r.customer_chat_id, r.customer_message_id) for r in rows) == {}
    tickets = await ticket_rows(desk.database_url)
    for customer in customers:
        own = tickets_of(tickets, customer)
        assert len(own) == 1, f"{customer['first_name']} has {len(own)} tickets"
        [ack] = desk.acknowledgements(customer)
        assert f"#{own[0].number}" in body(ack)
    assert api.internal_errors == []
    desk.assert_clean_logs()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_failed_card_opens_one_topic(desk: Desk) -> None:
    """The ticket's topic is created, then its card fails (500, then a dropped connection):
    the card goes into that same topic when Telegram is back; no second, empty topic appears
    for agents (a ticket's place is opened once)."""
    api = desk.api
    desk.forum_staff_chat()
    [customer] = desk.customers(1)
    await desk.start()
    api.inject_faults(1.0, methods=("sendMessage",), kinds=("500", "drop"), chats=[desk.staff_id])
    api.user_sends_text(customer, "t1 my subscription renewed twice")
    failed_twice = await eventually(lambda: api.fault_counts["drop"] >= 1, 30)
    api.clear_faults()
    assert failed_twice, f"the card was not tried twice: {api.faults}"
    arrived = await eventually(lambda: bool(desk.relays_of("t1 my subscription")), DELIVERY_TIMEOUT)
    assert arrived, f"the message never reached the agents: {desk.staff_messages()}"
    await desk.quiet(1.0)

    topics = api.topics(desk.staff_id)
    assert [t["name"] for t in topics] == [topics[0]["name"]], f"topics: {topics}"
    thread = topics[0]["message_thread_id"]
    [ack] = desk.acknowledgements(customer)
    found = TICKET_NUMBER.search(body(ack))
    assert found is not None
    cards = desk.cards(int(found[1]))
    assert [card.get("message_thread_id") for card in cards] == [thread]
    [relay] = desk.relays_of("t1 my subscription")
    assert relay.get("message_thread_id") == thread
    assert cards[0]["message_id"] < relay["message_id"]
    await desk.stop_all()
    assert api.internal_errors == []
    desk.assert_clean_logs()
