"""Linking Telegram customers to imported records: by phone, code, Telegram id and username."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from crm import customers, importer, linking, tickets
from crm.db import SessionFactory, session_scope
from crm.linking import LinkStatus
from crm.models import Customer, Message, Rating, Ticket, Transaction

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)

RECORDS = """\
external_id,name,phone,link_code,telegram
R1,Ann Lee,07700 900123,ANN-1,
R2,Bob Stone,+1 (555) 123-4567,BOB-2,
R3,Twin One,+49 30 1111111,,
R4,Twin Two,0049 30 1111111,,
R5,Uma,,,@uma_shop
"""


@pytest.mark.parametrize(
    ("raw", "international", "expected"),
    [
        ("+44 7700 900123", False, "+447700900123"),
        ("0044 7700 900123", False, "+447700900123"),
        ("07700 900123", False, "7700900123"),
        ("(555) 123-4567", False, "5551234567"),
        ("447700900123", True, "+447700900123"),
        ("12", False, None),
        ("call me", False, None),
        ("", False, None),
    ],
)
def test_normalize_phone(raw: str, international: bool, expected: str | None) -> None:
    assert linking.normalize_phone(raw, international=international) == expected


def test_phones_match() -> None:
    assert linking.phones_match("+447700900123", "7700900123") is True
    assert linking.phones_match("7700900123", "+447700900123") is True
    assert linking.phones_match("+447700900123", "+447700900124") is False
    assert linking.phones_match("+447700900123", "900123") is False  # too short to trust
    assert linking.phones_match("7700900123", "7700900123") is True


async def setup_records(factory: SessionFactory, tmp_path: Path) -> None:
    path = tmp_path / "records.csv"
    path.write_text(RECORDS, encoding="utf-8")
    async with session_scope(factory) as session:
        report = await importer.import_customers(session, path=path, now=NOW)
    assert (report.imported, report.error_count) == (5, 0)
    async with session_scope(factory) as session:
        r1 = (
            await session.execute(select(Customer).where(Customer.external_id == "R1"))
        ).scalar_one()
        session.add(
            Transaction(
                customer_id=r1.id,
                external_id="T1",
                occurred_at=NOW - timedelta(days=3),
                amount=Decimal("20.00"),
                currency="EUR",
            )
        )


async def telegram_customer(
    factory: SessionFactory, user_id: int, username: str | None = None, *, with_ticket: bool = True
) -> int:
    """A customer who wrote to the bot: a Telegram row with a ticket, a message and a rating."""
    async with session_scope(factory) as session:
        row = await customers.upsert_from_telegram(
            session,
            telegram_user_id=user_id,
            chat_id=user_id,
            first_name="Tg",
            last_name=None,
            username=username,
            language_code="zh",
            now=NOW,
        )
        if with_ticket:
            ticket = await tickets.create(session, customer_id=row.id, subject="help", now=NOW)
            session.add(
                Message(
                    customer_id=row.id,
                    ticket_id=ticket.id,
                    direction="in",
                    author_kind="customer",
                    text="help",
                    created_at=NOW,
                )
            )
            ticket.status = "resolved"
            await session.flush()
            session.add(Rating(ticket_id=ticket.id, customer_id=row.id, score=4, created_at=NOW))
        return row.id


async def by_external(factory: SessionFactory, external_id: str) -> Customer:
    async with factory() as session:
        return (
            await session.execute(select(Customer).where(Customer.external_id == external_id))
        ).scalar_one()


async def owners(factory: SessionFactory, model: type) -> set[int]:
    async with factory() as session:
        return {int(i) for i in (await session.execute(select(model.customer_id))).scalars()}  # type: ignore[attr-defined]


async def test_link_by_phone_merges_the_telegram_row_into_the_record(
    session_factory: SessionFactory, tmp_path: Path
) -> None:
    await setup_records(session_factory, tmp_path)
    tg_id = await telegram_customer(session_factory, 700)
    async with session_scope(session_factory) as session:
        result = await linking.link_by_phone(session, customer_id=tg_id, phone="447700900123")
    record = await by_external(session_factory, "R1")
    assert result == linking.LinkResult(LinkStatus.LINKED, record.id, "R1")
    assert (record.telegram_user_id, record.telegram_chat_id, record.language) == (700, 700, "zh")
    assert (record.first_name, record.phone) == ("Ann Lee", "7700900123")
    assert await owners(session_factory, Ticket) == {record.id}
    assert await owners(session_factory, Message) == {record.id}
    assert await owners(session_factory, Rating) == {record.id}
    assert await owners(session_factory, Transaction) == {record.id}
    async with session_factory() as session:
        assert await session.get(Customer, tg_id) is None
        assert await session.scalar(select(func.count(Customer.id))) == 5
        found = await customers.get_by_telegram_id(session, telegram_user_id=700)
        assert found is not None and found.id == record.id
    # Sharing again is harmless.
    async with session_scope(session_factory) as session:
        again = await linking.link_by_phone(session, customer_id=record.id, phone="+447700900123")
    assert again.status == LinkStatus.ALREADY_LINKED


async def test_link_by_phone_not_found_ambiguous_and_taken(
    session_factory: SessionFactory, tmp_path: Path
) -> None:
    await setup_records(session_factory, tmp_path)
    stranger = await telegram_customer(session_factory, 701, with_ticket=False)
    async with session_scope(session_factory) as session:
        result = await linking.link_by_phone(
            session, customer_id=stranger, phone="+33 6 12 34 56 78"
        )
        assert result == linking.LinkResult(LinkStatus.NOT_FOUND, stranger)
        assert (await session.get_one(Customer, stranger)).phone == "+33612345678"
        twin = await linking.link_by_phone(session, customer_id=stranger, phone="49301111111")
        assert twin.status == LinkStatus.AMBIGUOUS
        invalid = await linking.link_by_phone(session, customer_id=stranger, phone="x")
        assert invalid.status == LinkStatus.INVALID
    first = await telegram_customer(session_factory, 702, with_ticket=False)
    async with session_scope(session_factory) as session:
        linked = await linking.link_by_phone(session, customer_id=first, phone="15551234567")
    assert (linked.status, linked.external_id) == (LinkStatus.LINKED, "R2")
    second = await telegram_customer(session_factory, 703, with_ticket=False)
    async with session_scope(session_factory) as session:
        # R2 belongs to user 702 now: another Telegram account cannot take it by phone or code.
        by_phone = await linking.link_by_phone(session, customer_id=second, phone="15551234567")
        by_code = await linking.link_by_code(session, customer_id=second, code="bob-2")
    assert (by_phone.status, by_code.status) == (LinkStatus.NOT_FOUND, LinkStatus.TAKEN)


async def test_link_by_code(session_factory: SessionFactory, tmp_path: Path) -> None:
    await setup_records(session_factory, tmp_path)
    tg_id = await telegram_customer(session_factory, 710)
    async with session_scope(session_factory) as session:
        unknown = await linking.link_by_code(session, customer_id=tg_id, code="NOPE")
        empty = await linking.link_by_code(session, customer_id=tg_id, code="  ")
        linked = await linking.link_by_code(session, customer_id=tg_id, code=" ann-1 ")
    record = await by_external(session_factory, "R1")
    assert (unknown.status, empty.status) == (LinkStatus.NOT_FOUND, LinkStatus.INVALID)
    assert linked == linking.LinkResult(LinkStatus.LINKED, record.id, "R1")
    assert record.telegram_user_id == 710
    assert await owners(session_factory, Ticket) == {record.id}
    async with session_scope(session_factory) as session:
        again = await linking.link_by_code(session, customer_id=record.id, code="ANN-1")
        other = await linking.link_by_code(session, customer_id=record.id, code="BOB-2")
    assert (again.status, other.status) == (LinkStatus.ALREADY_LINKED, LinkStatus.TAKEN)


async def test_link_by_telegram_username_at_first_contact(
    session_factory: SessionFactory, tmp_path: Path
) -> None:
    await setup_records(session_factory, tmp_path)
    tg_id = await telegram_customer(session_factory, 720, username="Uma_Shop")
    nobody = await telegram_customer(session_factory, 721, username="someone_else")
    async with session_scope(session_factory) as session:
        result = await linking.link_by_telegram(session, customer_id=tg_id)
        missing = await linking.link_by_telegram(session, customer_id=nobody)
    record = await by_external(session_factory, "R5")
    assert result == linking.LinkResult(LinkStatus.LINKED, record.id, "R5")
    assert (record.telegram_user_id, record.telegram_username) == (720, "Uma_Shop")
    assert missing.status == LinkStatus.NOT_FOUND


async def test_import_links_existing_telegram_customers(
    session_factory: SessionFactory, tmp_path: Path
) -> None:
    by_id = await telegram_customer(session_factory, 730)
    by_username = await telegram_customer(session_factory, 731, username="Vic_V")
    shared = await telegram_customer(session_factory, 732, with_ticket=False)
    async with session_scope(session_factory) as session:
        await linking.link_by_phone(session, customer_id=shared, phone="+44 7700 900999")
    path = tmp_path / "late.csv"
    path.write_text(
        "external_id,name,telegram_id,telegram_username,phone\n"
        "L1,Lou,730,,\n"
        "L2,Vic,,vic_v,\n"
        "L3,Wes,,,07700 900999\n"
        "L4,Xan,731,,\n",
        encoding="utf-8",
    )
    async with session_scope(session_factory) as session:
        report = await importer.import_customers(session, path=path, now=NOW)
    assert (report.imported, report.error_count) == (3, 1)
    assert report.errors[0].line == 5
    assert report.errors[0].reason == "Telegram id 731 already belongs to customer L2"
    lou, vic, wes = [await by_external(session_factory, e) for e in ("L1", "L2", "L3")]
    assert (lou.telegram_user_id, vic.telegram_user_id, wes.telegram_user_id) == (730, 731, 732)
    assert (lou.first_name, vic.first_name) == ("Lou", "Vic")
    assert await owners(session_factory, Ticket) == {lou.id, vic.id}
    async with session_factory() as session:
        ids = {by_id, by_username, shared}
        assert (
            await session.scalar(select(func.count(Customer.id)).where(Customer.id.in_(ids))) == 0
        )
        assert await session.scalar(select(func.count(Customer.id))) == 3


async def test_link_codes_cannot_be_guessed(session_factory: SessionFactory) -> None:
    from datetime import UTC, datetime, timedelta

    from crm.linking import MAX_CODE_FAILURES, LinkStatus

    start = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    async with session_scope(session_factory) as session:
        guesser = Customer(telegram_user_id=77, first_name="G", tags=[], attributes={})
        target = Customer(
            external_id="R1", link_code="SECRET-1", first_name="T", tags=[], attributes={}
        )
        session.add_all([guesser, target])
        await session.flush()
        statuses = [
            (
                await linking.link_by_code(session, customer_id=guesser.id, code=f"X{i}", now=start)
            ).status
            for i in range(MAX_CODE_FAILURES)
        ]
        blocked = await linking.link_by_code(
            session, customer_id=guesser.id, code="SECRET-1", now=start
        )
        later = await linking.link_by_code(
            session,
            customer_id=guesser.id,
            code="SECRET-1",
            now=start + timedelta(hours=1, minutes=1),
        )
    assert statuses == [LinkStatus.NOT_FOUND] * MAX_CODE_FAILURES
    assert blocked.status == LinkStatus.TOO_MANY
    assert later.status == LinkStatus.LINKED
