"""The inbox: every incoming update committed before Telegram is told it arrived.

An update is marked done in the same transaction as its flow's state change, so a crash either
leaves it unfinished (processed again at start, in order) or done (never processed twice).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from crm.models import InboxUpdate


async def store(
    session: AsyncSession, *, updates: Sequence[dict[str, Any]], now: datetime
) -> list[int]:
    """Store raw updates (Bot API JSON); an update stored before is left as it is.

    Returns the ids of the updates that were new.
    """
    if not updates:
        return []
    rows = [
        {"update_id": int(u["update_id"]), "payload": u, "received_at": now, "attempts": 0}
        for u in updates
    ]
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    ids = [r["update_id"] for r in rows]
    existing = set(
        (await session.execute(select(InboxUpdate.update_id).where(InboxUpdate.update_id.in_(ids))))
        .scalars()
        .all()
    )
    fresh = [r for r in rows if r["update_id"] not in existing]
    if fresh:
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        statement = insert(InboxUpdate).values(fresh).on_conflict_do_nothing()
        await session.execute(statement)
    return [int(str(r["update_id"])) for r in fresh]


async def pending(session: AsyncSession, *, limit: int = 500) -> list[tuple[int, dict[str, Any]]]:
    """Unfinished updates, oldest first."""
    result = await session.execute(
        select(InboxUpdate.update_id, InboxUpdate.payload)
        .where(InboxUpdate.done_at.is_(None))
        .order_by(InboxUpdate.update_id)
        .limit(limit)
    )
    return [(int(update_id), payload) for update_id, payload in result]


async def claim(session: AsyncSession, *, update_id: int) -> bool:
    """Inside a flow's transaction: True when the update still needs its flow.

    On PostgreSQL the row stays locked until the transaction ends, so two processes handed the
    same update cannot both run its flow.
    """
    query = select(InboxUpdate.done_at).where(InboxUpdate.update_id == update_id)
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        query = query.with_for_update()
    row = (await session.execute(query)).first()
    return row is None or row[0] is None


async def mark_done(session: AsyncSession, *, update_ids: Sequence[int], now: datetime) -> None:
    if not update_ids:
        return
    await session.execute(
        update(InboxUpdate)
        .where(InboxUpdate.update_id.in_(list(update_ids)), InboxUpdate.done_at.is_(None))
        .values(done_at=now)
    )


async def record_failure(
    session: AsyncSession, *, update_id: int, error: str, now: datetime, give_up: bool
) -> None:
    """An attempt failed: count it; after too many, give up (done, with the error kept)."""
    values: dict[str, Any] = {"attempts": InboxUpdate.attempts + 1, "error": error[:2000]}
    if give_up:
        values["done_at"] = now
    await session.execute(
        update(InboxUpdate).where(InboxUpdate.update_id == update_id).values(**values)
    )


async def last_update_id(session: AsyncSession) -> int | None:
    """The newest update stored: polling resumes after it."""
    from sqlalchemy import func

    return (await session.execute(select(func.max(InboxUpdate.update_id)))).scalar_one_or_none()
