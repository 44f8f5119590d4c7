"""Agents' category corrections: they fix the ticket and become labelled training examples."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm import messages, tickets
from crm.models import CategoryCorrection


async def create(
    session: AsyncSession, *, ticket_id: int, agent_id: int | None, category: str, now: datetime
) -> CategoryCorrection:
    """Set the ticket's category and keep its customer text as an example of that category."""
    ticket = await tickets.get(session, ticket_id=ticket_id)
    text = "\n".join(await messages.customer_texts(session, ticket_id=ticket_id))
    correction = CategoryCorrection(
        ticket_id=ticket_id,
        agent_id=agent_id,
        text=text,
        previous_category=ticket.category,
        category=category,
        created_at=now,
    )
    session.add(correction)
    ticket.category = category
    ticket.category_confidence = 1.0
    ticket.updated_at = now
    await session.flush()
    return correction


async def examples(session: AsyncSession) -> list[tuple[str, str]]:
    """(text, category) pairs from every correction with text, the newest per ticket."""
    result = await session.execute(
        select(
            CategoryCorrection.ticket_id, CategoryCorrection.text, CategoryCorrection.category
        ).order_by(CategoryCorrection.ticket_id, CategoryCorrection.created_at.desc())
    )
    latest: dict[int, tuple[str, str]] = {}
    for ticket_id, text, category in result:
        if text.strip() and ticket_id not in latest:
            latest[ticket_id] = (text, category)
    return list(latest.values())


def load_examples(database_url: str) -> list[tuple[str, str]]:
    """:func:`examples` for synchronous callers (the ``train --from-corrections`` command)."""
    import asyncio

    from crm.db import create_engine, create_session_factory, session_scope

    async def load() -> list[tuple[str, str]]:
        engine = create_engine(database_url)
        try:
            async with session_scope(create_session_factory(engine)) as session:
                return await examples(session)
        finally:
            await engine.dispose()

    return asyncio.run(load())
