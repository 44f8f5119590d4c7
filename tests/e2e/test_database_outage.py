"""PostgreSQL drops every connection under load (what a restart looks like to Kefu): processing
pauses and resumes by itself; nothing is lost or duplicated."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import func, select, text

from crm.db import create_engine
from crm.models import Direction, Message, Ticket
from tests.e2e.conftest import settle
from tests.fakebotapi import FakeBotAPI

CUSTOMERS = 8
MESSAGES = 5


async def drop_connections(url: str) -> int:
    """Terminate every other connection to the test database, as a server restart would."""
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            result = await conn.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
            return int(result.scalar_one())
    finally:
        await engine.dispose()


@pytest.mark.skip(
    reason=(
        "known issue (docs/RELIABILITY.md): after every connection is terminated mid-burst, some "
        "runs leave an asyncpg connection mid-operation ('another operation is in progress') and "
        "flows waiting on it stall; passes about half the time, so it cannot gate CI yet"
    )
)
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_connections_dropped_under_load(
    api: FakeBotAPI, start_kefu: Any, database_url: str
) -> None:
    agent = api.add_user("Alice")
    staff = api.add_supergroup("Support", is_forum=True, members=[agent])
    customers = [api.add_user(f"C{i}") for i in range(CUSTOMERS)]
    async with start_kefu(staff_chat_id=staff["id"], agent_ids=[agent["id"]]) as kefu:
        dropped = 0
        for m in range(MESSAGES):
            for c, customer in enumerate(customers):
                api.user_sends_text(customer, f"c{c} m{m} my parcel is late")
            await asyncio.sleep(0.05)
            dropped += await drop_connections(database_url)
        assert dropped > 0, "no connection was dropped: nothing was tested"

        def relayed() -> list[str]:
            return [
                str(m.get("text", "")).split("\n", 1)[-1]
                for m in api.messages_in(staff["id"])
                if " m" in str(m.get("text", "")) and "my parcel" in str(m.get("text", ""))
            ]

        await api.wait_for(lambda: len(set(relayed())) == CUSTOMERS * MESSAGES, timeout=90)
        await settle(api)
        copies = Counter(relayed())
        assert {k: n for k, n in copies.items() if n > 1} == {}
        async with kefu.services.session() as session:
            stored = await session.scalar(
                select(func.count(Message.id)).where(Message.direction == Direction.INBOUND)
            )
            tickets = await session.scalar(select(func.count(Ticket.id)))
        assert stored == CUSTOMERS * MESSAGES
        assert tickets == CUSTOMERS
        for c, customer in enumerate(customers):
            acks = [m for m in api.messages_in(customer["id"]) if "opened ticket" in m["text"]]
            assert len(acks) == 1, f"customer {c} acknowledged {len(acks)} times"
            order = [int(t.split()[1][1:]) for t in relayed() if t.startswith(f"c{c} ")]
            assert order == list(range(MESSAGES)), f"customer {c} out of order: {order}"
