"""The conversation services the flows build on, against a real database (SQLite and PostgreSQL).

The conversation itself (customers writing, agents answering, ratings...) is tested through its
flows in ``tests/crm/support/``; here, what understanding reads before a flow runs.
"""

from __future__ import annotations

from datetime import timedelta

from crm import conversation
from crm.db import SessionFactory
from tests.crm.support.harness import T0, Support


async def test_ticket_context_counts_repeated_contact(session_factory: SessionFactory) -> None:
    support = Support(session_factory)
    first = await support.write(1, "one")
    await support.staff("resolve", ticket_id=first.ticket_id)
    support.tick(days=1)
    second = await support.write(1, "two")
    support.tick(minutes=1)
    await support.write(1, "more")
    await support.staff("note", ticket_id=second.ticket_id, argument="internal, not the customer's")
    now = T0 + timedelta(days=1)
    async with support.factory() as session:
        context = await conversation.ticket_context(
            session, ticket_id=second.ticket_id or 0, now=now
        )
    assert context.texts == ["two", "more"]
    assert context.repeated_contact == 0  # the earlier ticket was settled: not a repeat
    await support.staff("reopen", ticket_id=first.ticket_id)
    async with support.factory() as session:
        context = await conversation.ticket_context(
            session, ticket_id=second.ticket_id or 0, now=now
        )
        long_after = await conversation.ticket_context(
            session,
            ticket_id=second.ticket_id or 0,
            now=T0 + conversation.REPEATED_CONTACT_WINDOW + timedelta(minutes=1),
        )
    assert context.repeated_contact == 1  # reopened: the customer is back about it
    assert long_after.repeated_contact == 0  # outside the window it no longer counts


async def test_sqlite_runs_in_wal_mode(tmp_path: object) -> None:
    from pathlib import Path

    from crm.db import create_engine

    engine = create_engine(f"sqlite+aiosqlite:///{Path(str(tmp_path)) / 'x' / 'wal.db'}")
    try:
        async with engine.connect() as conn:
            mode = (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar_one()
            keys = (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar_one()
    finally:
        await engine.dispose()
    assert (mode, keys) == ("wal", 1)
