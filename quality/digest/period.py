"""Digest periods: local days in the configured time zone, as UTC instants.

``day`` is one day, ``week`` the Monday to Sunday week containing the given day, ``range`` the
``n`` days ending with it. A period that contains "now" ends at now ("so far"), and the period
before it is cut at the same local time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from quality import fetch


class PeriodKind(StrEnum):
    DAY = "day"
    WEEK = "week"
    RANGE = "range"


@dataclass(frozen=True, slots=True)
class Period:
    """Local days ``first .. last`` in ``tz`` as UTC instants ``[start, end)``.

    ``partial`` is True when the period was cut at "now" (``end`` before the last midnight).
    """

    kind: PeriodKind
    first: date
    last: date
    start: datetime
    end: datetime
    partial: bool

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1


def make_period(
    kind: PeriodKind | str, day: date, tz: ZoneInfo, *, now: datetime, days: int = 1
) -> Period:
    """The period of ``kind`` containing (``day``/``week``) or ending with (``range``) ``day``."""
    kind = PeriodKind(kind)
    if kind == PeriodKind.DAY:
        first = last = day
    elif kind == PeriodKind.WEEK:
        first = day - timedelta(days=day.weekday())
        last = first + timedelta(days=6)
    else:
        if days < 1:
            raise ValueError("a range has at least one day")
        first, last = day - timedelta(days=days - 1), day
    start = fetch.local_midnight(first, tz)
    full_end = fetch.local_midnight(last + timedelta(days=1), tz)
    end = min(full_end, max(now.astimezone(UTC), start))
    return Period(kind, first, last, start, end, end < full_end)


def previous_period(period: Period, tz: ZoneInfo) -> Period:
    """The period just before, as long in local days, cut at the same local time when partial."""
    shift = timedelta(days=period.days)
    first, last = period.first - shift, period.last - shift
    start = fetch.local_midnight(first, tz)
    full_end = fetch.local_midnight(last + timedelta(days=1), tz)
    if not period.partial:
        return Period(period.kind, first, last, start, full_end, False)
    local_end = period.end.astimezone(tz)
    cut = datetime.combine(local_end.date() - shift, local_end.timetz().replace(tzinfo=None))
    end = min(full_end, max(cut.replace(tzinfo=tz).astimezone(UTC), start))
    return Period(period.kind, first, last, start, end, True)
