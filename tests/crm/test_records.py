"""The customer record (service) and the record commands end to end through the fake Bot API."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from bot import texts
from crm import importer, needs, records
from crm.db import SessionFactory, session_scope
from crm.models import Customer, Rating, Ticket, Transaction
from nlp.analysis import Analyzer
from tests.e2e.conftest import TOKEN, Kefu, make_settings, running_kefu, settle, wait_text
from tests.fakebotapi import FakeBotAPI

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
RECORDS = """\
external_id,name,email,phone,link_code,plan
R1,Ann Lee,ann@example.com,07700 900123,ANN-1,gold
R2,Bob Stone,bob@example.com,+1 555 123 4567,BOB-2,silver
"""


async def import_records(session_factory: SessionFactory, tmp_path: Path) -> dict[str, int]:
    path = tmp_path / "records.csv"
    path.write_text(RECORDS, encoding="utf-8")
    async with session_scope(session_factory) as session:
        await importer.import_customers(session, path=path, now=NOW - timedelta(days=300))
        result = await session.execute(select(Customer.external_id, Customer.id))
        return {str(e): int(i) for e, i in result}


async def add_history(session_factory: SessionFactory, customer_id: int) -> None:
    async with session_scope(session_factory) as session:
        for days, amount, currency, status in (
            (40, "10.00", "EUR", "paid"),
            (20, "15.50", "EUR", "paid"),
            (10, "99.00", "EUR", "refunded"),
            (5, "7.00", "USD", None),
        ):
            session.add(
                Transaction(
                    customer_id=customer_id,
                    external_id=f"T{days}",
                    occurred_at=NOW - timedelta(days=days),
                    amount=Decimal(amount),
                    currency=currency,
                    product=f"P{days}",
                    status=status,
                )
            )
        for number, status, score in (
            (1001, "resolved", 2),
            (1002, "closed", 5),
            (1003, "open", None),
        ):
            ticket = Ticket(
                number=number,
                customer_id=customer_id,
                status=status,
                created_at=NOW - timedelta(days=1050 - number),
                updated_at=NOW,
            )
            session.add(ticket)
            await session.flush()
            if score is not None:
                session.add(
                    Rating(
                        ticket_id=ticket.id,
                        customer_id=customer_id,
                        score=score,
                        created_at=NOW - timedelta(days=1040 - number),
                    )
                )


async def test_customer_record(session_factory: SessionFactory, tmp_path: Path) -> None:
    ids = await import_records(session_factory, tmp_path)
    await add_history(session_factory, ids["R1"])
    async with session_factory() as session:
        record = await records.customer_record(session, customer_id=ids["R1"])
        empty = await records.customer_record(session, customer_id=ids["R2"])
        missing = await records.customer_record(session, customer_id=999_999)
    assert record is not None and empty is not None and missing is None
    assert record.lifetime_value == {"EUR": Decimal("25.50"), "USD": Decimal("7.00")}
    assert record.orders == 3
    assert record.last_order is not None
    assert (record.last_order.amount, record.last_order.currency, record.last_order.product) == (
        Decimal("7.00"),
        "USD",
        "P5",
    )
    assert record.last_order.occurred_at == NOW - timedelta(days=5)
    assert (record.open_tickets, record.tickets_total) == ([1003], 3)
    assert (record.ratings, record.mean_rating, record.rating_count) == ([5, 2], 3.5, 2)
    assert (record.external_id, record.email, record.phone, record.need) == (
        "R1",
        "ann@example.com",
        "7700900123",
        None,
    )
    assert record.attributes == {"plan": "gold"}
    assert (empty.lifetime_value, empty.orders, empty.last_order, empty.ratings) == (
        {},
        0,
        None,
        [],
    )


async def test_find_customer(session_factory: SessionFactory, tmp_path: Path) -> None:
    ids = await import_records(session_factory, tmp_path)
    await add_history(session_factory, ids["R1"])
    async with session_scope(session_factory) as session:
        bob = await session.get_one(Customer, ids["R2"])
        bob.telegram_user_id, bob.telegram_username = 555000, "BobTg"
    async with session_factory() as session:
        found = {
            q: await records.find_customer(session, query=q)
            for q in ("#1002", "1003", "555000", "@bobtg", "R2", " R1 ", "#77", "nobody", "")
        }
    assert found == {
        "#1002": ids["R1"],
        "1003": ids["R1"],
        "555000": ids["R2"],
        "@bobtg": ids["R2"],
        "R2": ids["R2"],
        " R1 ": ids["R1"],
        "#77": None,
        "nobody": None,
        "": None,
    }


def test_record_lines_escape_and_show_the_need() -> None:
    record = records.CustomerRecord(
        customer_id=1,
        name="<Ann & Co>",
        external_id="R<1>",
        email=None,
        phone=None,
        telegram_user_id=42,
        telegram_username="ann",
        created_at=NOW,
        lifetime_value={"EUR": Decimal("1234.5")},
        orders=2,
        last_order=records.LastOrder(NOW, Decimal("4.50"), "EUR", "Tea <green>", None, "paid"),
        open_tickets=[1042],
        tickets_total=3,
        ratings=[4],
        mean_rating=4.0,
        rating_count=1,
        need=needs.Need(
            0.72,
            [
                needs.Reason("tickets_30d", "3", "0", 0.2),
                needs.Reason("category_share:a&b", "50%", "0%", 0.1),
            ],
            "ticket within 30 days",
            "v1",
        ),
    )
    lines = texts.record_lines(record, UTC)  # type: ignore[arg-type]
    assert lines == [
        "👤 <b>&lt;Ann &amp; Co&gt;</b>"
        " (external id <code>R&lt;1&gt;</code>, @ann, id <code>42</code>)",
        "💰 Lifetime value: 1,234.50 EUR · 2 order(s)",
        "🛒 Last order: 2026-03-02 · 4.50 EUR · Tea &lt;green&gt;",
        "🎫 Open tickets: #1042 (3 in all)",
        "⭐ Ratings: 4 · mean 4.0 of 1",
        "🔮 72% chance: ticket within 30 days",
        "   because tickets in 30 days 3 (typical 0); share of a&amp;b orders 50% (typical 0%)",
    ]


# --- End to end --------------------------------------------------------------------------------


Runner = Callable[..., AbstractAsyncContextManager[Kefu]]


@pytest.fixture
def running(
    api: FakeBotAPI, database_url: str, analyzer: Analyzer
) -> Callable[..., AbstractAsyncContextManager[Kefu]]:
    def start(data_dir: Path, **overrides: object) -> AbstractAsyncContextManager[Kefu]:
        settings = make_settings(api, database_url, data_dir, **overrides)
        return running_kefu(settings, api, analyzer)

    return start


@pytest.fixture
async def api() -> AsyncIterator[FakeBotAPI]:
    async with FakeBotAPI(token=TOKEN) as server:
        yield server


def last_text(api: FakeBotAPI, chat_id: int) -> str:
    messages = api.messages_in(chat_id)
    return str(messages[-1].get("text", "")) if messages else ""


async def test_staff_commands_are_refused_for_customers(
    api: FakeBotAPI, running: Runner, tmp_path: Path
) -> None:
    agent = api.add_user("Alice", username="alice_agent")
    customer = api.add_user("Bob", username="bob")
    staff = api.add_supergroup("Support", is_forum=False, members=[agent, customer])
    async with running(tmp_path / "data", staff_chat_id=staff["id"], agent_ids=[agent["id"]]):
        api.user_sends_text(customer, "/atrisk")
        refusal = await wait_text(api, customer["id"], "Only agents and managers")
        assert refusal["text"] == "Only agents and managers can do this."
        api.user_sends_text(customer, "/customer 1001")
        await api.wait_for_messages(customer["id"], 2)
        assert last_text(api, customer["id"]) == "Only agents and managers can do this."
        # A customer who is in the staff chat but is not an agent is refused there too.
        api.user_sends_text(customer, "/atrisk", chat_id=staff["id"])
        in_staff = await wait_text(api, staff["id"], "Only agents and managers")
        assert in_staff["text"] == "Only agents and managers can do this."
        # An agent gets an answer (no model trained yet).
        api.user_sends_text(agent, "/atrisk", chat_id=staff["id"])
        await wait_text(api, staff["id"], "No need model yet")
        await settle(api)
        assert [m["text"] for m in api.messages_in(customer["id"])] == [
            "Only agents and managers can do this.",
            "Only agents and managers can do this.",
        ]


async def test_customer_record_and_atrisk_for_staff(
    api: FakeBotAPI, running: Runner, tmp_path: Path
) -> None:
    agent = api.add_user("Alice", username="alice_agent")
    manager = api.add_user("Meg", username="meg")
    staff = api.add_supergroup("Support", is_forum=False, members=[agent])
    data_dir = tmp_path / "data"
    async with running(
        data_dir,
        staff_chat_id=staff["id"],
        agent_ids=[agent["id"]],
        manager_chat_ids=[manager["id"]],
    ) as bot:
        ids = await import_records(bot.services.session_factory, tmp_path)
        await add_history(bot.services.session_factory, ids["R1"])
        api.user_sends_text(agent, "/customer #1003", chat_id=staff["id"])
        card = await wait_text(api, staff["id"], "Lifetime value")
        assert card["text"].splitlines() == [
            "👤 Ann Lee (external id R1)",
            "💰 Lifetime value: 25.50 EUR + 7.00 USD · 3 order(s)",
            "🛒 Last order: 2026-02-25 · 7.00 USD · P5",
            "🎫 Open tickets: #1003 (3 in all)",
            "⭐ Ratings: 5, 2 · mean 3.5 of 2",
        ]
        api.user_sends_text(agent, "/customer nobody", chat_id=staff["id"])
        await wait_text(api, staff["id"], "I couldn't find a customer for nobody.")

        # A table model scored from imported attributes: the manager asks for /atrisk.
        rng = np.random.default_rng(1)
        table = tmp_path / "table.csv"
        rows = ["id,plan,churn"] + [
            f"X{i},{plan},{'yes' if rng.random() < (0.8 if plan == 'silver' else 0.1) else 'no'}"
            for i, plan in enumerate(["silver", "gold"] * 60)
        ]
        table.write_text("\n".join(rows) + "\n", encoding="utf-8")
        needs.train_table(
            table,
            label_column="churn",
            id_column="id",
            models_dir=bot.settings.models_dir,
            now=NOW,
            grid=[needs.Candidate("logistic", {"C": 1.0})],
        )
        api.user_sends_text(manager, "/atrisk")
        listing = await wait_text(api, manager["id"], "Most likely")
        lines = listing["text"].splitlines()
        assert lines[0] == "Most likely: churn (model 20260302T100000Z)"
        assert lines[1].startswith("1. Bob Stone (R2) — ")
        assert lines[2] == "   plan silver (typical gold)"
        assert len(lines) == 3  # Ann has a ticket in progress: she is already talking to us


async def test_link_by_code_and_shared_contact(
    api: FakeBotAPI, running: Runner, tmp_path: Path
) -> None:
    ann = api.add_user("Ann", username="ann_tg")
    bob = api.add_user("Bob", username="bob_tg")
    async with running(tmp_path / "data") as bot:
        factory = bot.services.session_factory
        ids = await import_records(factory, tmp_path)
        api.user_sends_text(ann, "/link")
        prompt = await wait_text(api, ann["id"], "share your phone number")
        markup = api.reply_markups[(ann["id"], prompt["message_id"])]
        assert markup["keyboard"] == [
            [{"text": "📱 Share my phone number", "request_contact": True}]
        ]
        # Someone else's contact is not accepted.
        api.user_sends_contact(ann, "+1 555 123 4567", first_name="Bob", contact_user_id=bob["id"])
        await wait_text(api, ann["id"], "Please share your own phone number")
        api.user_sends_contact(ann, "447700900123")
        await wait_text(api, ann["id"], "this chat is now connected")
        api.user_sends_text(bob, "/link WRONG")
        await wait_text(api, bob["id"], "doesn't match any account")
        api.user_sends_text(bob, "/link bob-2")
        await wait_text(api, bob["id"], "this chat is now connected")
        await settle(api)
        async with factory() as session:
            rows = (
                await session.execute(
                    select(Customer.external_id, Customer.telegram_user_id).order_by(Customer.id)
                )
            ).all()
            tickets = (await session.execute(select(Ticket.id))).all()
        assert [tuple(r) for r in rows] == [("R1", ann["id"]), ("R2", bob["id"])]
        assert ids == {"R1": ids["R1"], "R2": ids["R2"]}
        assert tickets == []  # linking never opens a ticket


async def test_imported_customer_is_linked_by_username_and_card_shows_the_record(
    api: FakeBotAPI, running: Runner, tmp_path: Path
) -> None:
    agent = api.add_user("Alice")
    carol = api.add_user("Carol", username="Carol_TG")
    staff = api.add_supergroup("Support", is_forum=False, members=[agent])
    path = tmp_path / "with_usernames.csv"
    path.write_text(
        "external_id,name,telegram_username\nR9,Carol King,@carol_tg\n", encoding="utf-8"
    )
    async with running(
        tmp_path / "data", staff_chat_id=staff["id"], agent_ids=[agent["id"]]
    ) as bot:
        async with session_scope(bot.services.session_factory) as session:
            report = await importer.import_customers(session, path=path, now=NOW)
            assert report.imported == 1
            row = (
                await session.execute(select(Customer).where(Customer.external_id == "R9"))
            ).scalar_one()
            session.add(
                Transaction(
                    customer_id=row.id,
                    external_id="T1",
                    occurred_at=NOW,
                    amount=Decimal("42.00"),
                    currency="EUR",
                    product="Kettle",
                )
            )
        api.user_sends_text(carol, "My kettle leaks")
        card = await wait_text(api, staff["id"], "Ticket #1001")
        assert "🪪 External id R9" in card["text"]
        assert "💰 Lifetime value: 42.00 EUR · 1 order(s)" in card["text"]
        await settle(api)
        async with session_scope(bot.services.session_factory) as session:
            rows = (
                await session.execute(select(Customer.external_id, Customer.telegram_user_id))
            ).all()
        assert [tuple(r) for r in rows] == [("R9", carol["id"])]  # one row: linked, not duplicated
