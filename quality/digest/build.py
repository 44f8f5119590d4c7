"""Fetch, then aggregate: all the SQL of a digest (:mod:`quality.fetch`), then
:func:`quality.digest.aggregate.aggregate` in a worker thread."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from quality import fetch
from quality.digest.aggregate import BASELINE_DAYS, CHART_DAYS, DigestConfig, RawDigest, aggregate
from quality.digest.figures import Digest, NeedsOutlook
from quality.digest.period import Period, PeriodKind, make_period, previous_period
from quality.fetch import CustomerText


async def fetch_raw(
    session: AsyncSession, period: Period, config: DigestConfig, *, now: datetime
) -> RawDigest:
    """All the SQL of a digest: two periods, the daily series, agent names and texts."""
    prev = previous_period(period, config.tz)
    current = await fetch.period_data(session, start=period.start, end=period.end)
    previous = await fetch.period_data(session, start=prev.start, end=prev.end)
    first = min(
        period.first - timedelta(days=BASELINE_DAYS), period.last - timedelta(days=CHART_DAYS - 1)
    )
    daily = await fetch.daily_series(
        session, first=first, last=period.last, tz=config.tz, end=period.end
    )
    ids: list[int] = []
    for data in (current, previous):
        ids.extend(int(a) for a in data.resolutions.assignee)
        ids.extend(int(a) for a in data.times.assignee)
        ids.extend(data.agent_ratings)
    names = await fetch.agent_names(session, ids=ids)
    texts: list[CustomerText] = []
    if config.with_themes:
        texts = await fetch.customer_texts(session, start=period.start, end=period.end)
    return RawDigest(period, prev, current, previous, daily, names, tuple(texts), now)


async def build_digest(
    session: AsyncSession,
    *,
    kind: PeriodKind | str,
    day: date,
    config: DigestConfig,
    now: datetime,
    days: int = 1,
    needs: NeedsOutlook | None = None,
) -> Digest:
    """Fetch with SQL aggregates, then aggregate (off the event loop) into a Digest."""
    period = make_period(kind, day, config.tz, now=now, days=days)
    raw = await fetch_raw(session, period, config, now=now)
    return await asyncio.to_thread(
        aggregate,
        raw,
        config,
        at_risk=needs.at_risk if needs is not None else None,
        staffing=needs.staffing if needs is not None else None,
    )
