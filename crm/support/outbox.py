"""The outbox: effects stored in the same transaction as the state change that caused them.

Delivery claims the rows that are due, carries them out and confirms them. Rows of one
destination go strictly in id order: a row is due only when no earlier row of its destination
is still pending. Claims are leases (``claimed_until``) taken with ``FOR UPDATE SKIP LOCKED`` on
PostgreSQL, so several processes could later share the work; a row once confirmed is never
carried out again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from crm.models import Lane, OutboxRow, OutboxStatus
from crm.support.outcomes import Effect, effect_from_payload, lane_of

LEASE = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class Due:
    """A claimed row: carry out ``effect`` then confirm, retry or fail row ``id``."""

    id: int
    lane: Lane
    destination: str
    effect: Effect
    attempts: int


async def add(session: AsyncSession, *, effects: Sequence[Effect], now: datetime) -> list[int]:
    """Store effects to carry out (flushes; the flow runner commits)."""
    rows = [
        OutboxRow(
            lane=lane_of(effect),
            destination=effect.destination,
            kind=effect.kind,
            payload=effect.payload(),
            status=OutboxStatus.PENDING,
            attempts=0,
            not_before=now,
            created_at=now,
        )
        for effect in effects
    ]
    session.add_all(rows)
    if rows:
        await session.flush()
    return [row.id for row in rows]


async def claim_due(
    session: AsyncSession,
    *,
    lane: Lane,
    now: datetime,
    limit: int,
    exclude: Sequence[int] = (),
    lease: bool = True,
) -> list[Due]:
    """The first pending row of each destination in ``lane`` that is due, claimed for a lease.

    ``lease=False`` only reads (one process that tracks its rows in flight itself, as on
    SQLite): the claim then costs no write.
    """
    earlier = aliased(OutboxRow)
    blocked = exists().where(
        earlier.destination == OutboxRow.destination,
        earlier.status == OutboxStatus.PENDING,
        earlier.id < OutboxRow.id,
    )
    query = (
        select(OutboxRow)
        .where(
            OutboxRow.status == OutboxStatus.PENDING,
            OutboxRow.lane == lane,
            OutboxRow.not_before <= now,
            or_(OutboxRow.claimed_until.is_(None), OutboxRow.claimed_until < now),
            ~blocked,
        )
        .order_by(OutboxRow.id)
        .limit(limit)
    )
    if exclude:
        query = query.where(OutboxRow.id.not_in(list(exclude)))
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=OutboxRow)
    rows = list((await session.execute(query)).scalars())
    if not rows:
        return []
    if lease:
        await session.execute(
            update(OutboxRow)
            .where(OutboxRow.id.in_([r.id for r in rows]))
            .values(claimed_until=now + LEASE)
        )
    return [
        Due(
            id=row.id,
            lane=Lane(row.lane),
            destination=row.destination,
            effect=effect_from_payload(row.kind, row.payload),
            attempts=row.attempts,
        )
        for row in rows
    ]


async def pending_after(session: AsyncSession, *, destination: str, kind: str) -> bool:
    """Whether more than one row of ``kind`` for ``destination`` is pending (the first is the
    one being carried out): a card refresh can leave the work to the later one."""
    from sqlalchemy import func

    count = await session.scalar(
        select(func.count(OutboxRow.id)).where(
            OutboxRow.destination == destination,
            OutboxRow.kind == kind,
            OutboxRow.status == OutboxStatus.PENDING,
        )
    )
    return int(count or 0) > 1


async def confirm(session: AsyncSession, *, row_id: int, now: datetime) -> None:
    """Carried out: never again."""
    await session.execute(
        update(OutboxRow)
        .where(OutboxRow.id == row_id)
        .values(status=OutboxStatus.SENT, sent_at=now, claimed_until=None, last_error=None)
    )


async def retry_later(
    session: AsyncSession, *, row_id: int, at: datetime, error: str, count: bool = True
) -> None:
    """Not carried out this time (flood wait, server error, network): try again at ``at``."""
    values: dict[str, Any] = {"not_before": at, "claimed_until": None, "last_error": error[:2000]}
    if count:
        values["attempts"] = OutboxRow.attempts + 1
    await session.execute(update(OutboxRow).where(OutboxRow.id == row_id).values(**values))


async def fail(session: AsyncSession, *, row_id: int, error: str, now: datetime) -> None:
    """Telegram refused it for good: recorded, never retried; later rows may go."""
    await session.execute(
        update(OutboxRow)
        .where(OutboxRow.id == row_id)
        .values(
            status=OutboxStatus.FAILED,
            attempts=OutboxRow.attempts + 1,
            claimed_until=None,
            last_error=error[:2000],
            sent_at=now,
        )
    )


async def release_claims(session: AsyncSession) -> int:
    """At start of the only instance: claims of a process that died are free again."""
    result = await session.execute(
        update(OutboxRow)
        .where(OutboxRow.status == OutboxStatus.PENDING, OutboxRow.claimed_until.is_not(None))
        .values(claimed_until=None)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def next_due_at(session: AsyncSession, *, lane: Lane) -> datetime | None:
    """When the earliest pending row of ``lane`` becomes due (for the delivery's sleep)."""
    from sqlalchemy import func

    return (
        await session.execute(
            select(func.min(OutboxRow.not_before)).where(
                OutboxRow.status == OutboxStatus.PENDING, OutboxRow.lane == lane
            )
        )
    ).scalar_one_or_none()


async def counts(session: AsyncSession) -> dict[str, int]:
    """Rows per status (for the start-up summary and tests)."""
    from sqlalchemy import func

    result = await session.execute(
        select(OutboxRow.status, func.count(OutboxRow.id)).group_by(OutboxRow.status)
    )
    return {str(status): int(n) for status, n in result}


async def purge_sent(session: AsyncSession, *, before: datetime) -> int:
    """Forget rows carried out long ago (the state they caused lives in the records)."""
    result = await session.execute(
        delete(OutboxRow).where(
            and_(OutboxRow.status != OutboxStatus.PENDING, OutboxRow.sent_at < before)
        )
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
