"""Alerts between digests: complaint spikes (today so far) and first-response SLA breaches.

Each alert is claimed in the ``alerts`` table (``kind`` + ``key`` unique) before anyone is told,
so it is announced at most once even when two workers look at the same moment: a spike at most
once per local day and category, an SLA breach once per ticket.

Alerts are plain data; their wording is in :mod:`bot.texts.digest` (``render_spike``,
``render_sla_breach``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import String, cast, exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from crm.models import Alert, Ticket, TicketStatus
from quality import fetch
from quality.digest.aggregate import BASELINE_DAYS
from quality.stats import BusinessHours, SpikeResult, business_seconds, spike_tests_by_group

SPIKE = "spike"
SLA = "sla"
ALL = "*"


@dataclass(frozen=True, slots=True)
class SpikeAlert:
    """Today's share of negative customer messages is far above the last 28 days'."""

    day: date
    category: str | None  # None: all messages
    result: SpikeResult


@dataclass(frozen=True, slots=True)
class SlaBreach:
    """A ticket waiting for its first answer longer than the target (in business time)."""

    ticket_id: int
    number: int
    created_at: datetime
    waited_seconds: float
    target_minutes: float
    staff_chat_id: int | None
    staff_thread_id: int | None
    staff_card_message_id: int | None


async def claim(session: AsyncSession, *, kind: str, key: str, now: datetime) -> bool:
    """Record an alert; False when it was recorded before (by us or a concurrent worker)."""
    try:
        async with session.begin_nested():
            session.add(Alert(kind=kind, key=key, created_at=now))
    except IntegrityError:
        return False
    return True


async def spike_results(
    session: AsyncSession, *, now: datetime, tz: ZoneInfo
) -> tuple[date, SpikeResult, dict[str, SpikeResult]]:
    """Today so far against the 28 days before: overall and per category."""
    today = now.astimezone(tz).date()
    start = fetch.local_midnight(today, tz)
    base_start = fetch.local_midnight(today - timedelta(days=BASELINE_DAYS), tz)
    current = await fetch.message_counts(session, start=start, end=now)
    baseline = await fetch.message_counts(session, start=base_start, end=start)
    now_counts = current.negative_by_category
    base_counts = baseline.negative_by_category

    def total(counts: dict[str, tuple[int, int]]) -> tuple[int, int]:
        return sum(k for k, _ in counts.values()), sum(n for _, n in counts.values())

    overall = spike_tests_by_group({ALL: total(now_counts)}, {ALL: total(base_counts)})[ALL]
    return today, overall, spike_tests_by_group(now_counts, base_counts)


async def new_spikes(session: AsyncSession, *, now: datetime, tz: ZoneInfo) -> list[SpikeAlert]:
    """Spikes detected now that were not announced yet today (claimed here; flush only)."""
    today, overall, by_category = await spike_results(session, now=now, tz=tz)
    found: list[SpikeAlert] = []
    candidates: list[tuple[str | None, SpikeResult]] = [(None, overall)]
    candidates.extend(sorted(by_category.items()))
    for category, result in candidates:
        if not result.is_spike:
            continue
        key = f"{today.isoformat()}:{category if category is not None else ALL}"
        if await claim(session, kind=SPIKE, key=key[:128], now=now):
            found.append(SpikeAlert(today, category, result))
    return found


async def new_sla_breaches(
    session: AsyncSession,
    *,
    now: datetime,
    hours: BusinessHours,
    target_minutes: float,
    lookback_days: int = 14,
) -> list[SlaBreach]:
    """Tickets still without a first answer past the business-time target, not announced yet.

    Claims each breach it returns (flush only; the caller commits, then announces).
    """
    waiting = (TicketStatus.OPEN.value, TicketStatus.ESCALATED.value)
    announced = exists().where(Alert.kind == SLA, Alert.key == cast(Ticket.id, String))
    rows = (
        await session.execute(
            select(
                Ticket.id,
                Ticket.number,
                Ticket.created_at,
                fetch.epoch(Ticket.escalated_at),
                Ticket.staff_chat_id,
                Ticket.staff_thread_id,
                Ticket.staff_card_message_id,
            )
            .where(
                Ticket.first_response_at.is_(None),
                Ticket.status.in_(waiting),
                # the clock runs from when agents got the ticket (after an automatic answer
                # that did not help, that is later than its creation)
                Ticket.escalated_at.is_not(None),
                Ticket.created_at >= now - timedelta(days=lookback_days),
                # business time never exceeds wall-clock time: a cheap first filter
                Ticket.escalated_at < now - timedelta(minutes=target_minutes),
                ~announced,
            )
            .order_by(Ticket.created_at, Ticket.id)
        )
    ).all()
    if not rows:
        return []
    created = np.array([float(r[3]) for r in rows])
    waited = business_seconds(created, np.full(created.shape, now.timestamp()), hours)
    found: list[SlaBreach] = []
    for row, seconds in zip(rows, waited, strict=True):
        if not seconds > target_minutes * 60.0:
            continue
        if await claim(session, kind=SLA, key=str(row[0]), now=now):
            found.append(
                SlaBreach(
                    ticket_id=int(row[0]),
                    number=int(row[1] or 0),
                    created_at=row[2],
                    waited_seconds=float(seconds),
                    target_minutes=target_minutes,
                    staff_chat_id=row[4],
                    staff_thread_id=row[5],
                    staff_card_message_id=row[6],
                )
            )
    return found
