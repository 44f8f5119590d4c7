"""Who a record is: imported names stay, external ids win, history starts at the first order."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from crm import customers, importer, records
from crm.db import SessionFactory, session_scope
from crm.models import Customer, Ticket

NOW = datetime(2026, 6, 1, tzinfo=UTC)


async def test_imported_identity(session_factory: SessionFactory, tmp_path: Path) -> None:
    people = tmp_path / "customers.csv"
    people.write_text(
        "external_id,name,telegram_id\n1042,Cy Dee,555\n7,Other Person,\n", encoding="utf-8"
    )
    orders = tmp_path / "transactions.csv"
    orders.write_text(
        "customer_external_id,date,amount,currency,product\n"
        "1042,2024-01-15,10.00,EUR,Tea\n1042,2025-03-01,12.00,EUR,Tea\n",
        encoding="utf-8",
    )
    async with session_scope(session_factory) as session:
        await importer.import_customers(session, path=people, now=NOW)
        await importer.import_transactions(session, path=orders)
    async with session_scope(session_factory) as session:
        cy = (
            await session.execute(select(Customer).where(Customer.external_id == "1042"))
        ).scalar_one()
        # No created date in the file: the record's history starts at its first order.
        assert cy.created_at == datetime(2024, 1, 15, tzinfo=UTC)
        # Writing from Telegram does not rename the business's record.
        row = await customers.upsert_from_telegram(
            session,
            telegram_user_id=555,
            chat_id=555,
            first_name="xX_gamer",
            last_name=None,
            username="gamer",
            language_code="en",
            now=NOW,
        )
        assert (row.id, row.first_name, row.telegram_username) == (cy.id, "Cy Dee", "gamer")
        other = (
            await session.execute(select(Customer).where(Customer.external_id == "7"))
        ).scalar_one()
        session.add(Ticket(customer_id=other.id, number=1042, created_at=NOW, updated_at=NOW))
    async with session_scope(session_factory) as session:
        # "1042" is an exact external id: it wins over ticket #1042 of another customer.
        assert await records.find_customer(session, query="1042") == cy.id
        assert await records.find_customer(session, query="#1042") == other.id
