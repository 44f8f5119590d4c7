"""A fifth of the Bot API's sendMessage/copyMessage calls fail (429 with retry_after, 500, a
dropped connection), with python-telegram-bot's rate limiter on and off: every
acknowledgement and every relay still arrives, exactly once.

Faults are injected *before* a call is carried out, so a retry can never duplicate a message
here: exactly once is the right expectation.
"""

from __future__ import annotations

import pytest

from tests.e2e.durability.harness import (
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
        # Kefu keeps to that: 30 new tickets (a topic, a card and 1-2 relays each) would need
        # five minutes of the staff chat's budget. Six fit in its first burst.
        ("telegram", 6),
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
        acknowledged = all(desk.acknowledgements(c) for c in customers)
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
