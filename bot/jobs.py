"""Scheduled work through python-telegram-bot's JobQueue (APScheduler underneath).

* the daily digest (yesterday) at ``KEFU_DIGEST_SCHEDULE`` in ``KEFU_TIMEZONE``;
* the weekly digest (last Monday to Sunday) on Mondays at the same time;
* alerts every few minutes: complaint spikes to the managers, SLA breaches to the ticket's thread;
* once at start: the most recent due digest of each kind that was never sent (missed while the
  bot was down).

A digest is claimed in ``digest_runs`` (unique kind + period start) in its own transaction before
it is sent, so it goes out at most once even when the schedule and a restart race.
The managers' ``/digest`` and ``/stats`` commands are routed in ``bot/app.py``.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from typing import Any

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from telegram import Bot
from telegram.ext import Application

from bot import texts
from bot.digests import build, posts
from bot.services import AppServices, KefuContext
from bot.texts import digest as digest_texts
from crm.models import DigestRun
from crm.support.outcomes import Effect, Outcome, Post
from quality import alerts
from quality.digest import PeriodKind
from settings import Settings

log = logging.getLogger(__name__)

DAILY_JOB = "kefu-digest-daily"
WEEKLY_JOB = "kefu-digest-weekly"
ALERTS_JOB = "kefu-alerts"
CATCH_UP_JOB = "kefu-digest-catch-up"
ALERT_INTERVAL_SECONDS = 300
CATCH_UP_DELAY_SECONDS = 5
MISFIRE_GRACE_SECONDS = 3600


# --------------------------------------------------------------------------------------
# Schedule
# --------------------------------------------------------------------------------------


def daily_trigger(settings: Settings) -> CronTrigger:
    """``KEFU_DIGEST_SCHEDULE`` (crontab syntax) in ``KEFU_TIMEZONE``."""
    return CronTrigger.from_crontab(settings.digest_schedule, timezone=settings.tz)


def weekly_trigger(settings: Settings) -> CronTrigger:
    """Mondays at the minute and hour of ``KEFU_DIGEST_SCHEDULE``."""
    daily_trigger(settings)  # the whole expression must be valid
    minute, hour = settings.digest_schedule.split()[:2]
    return CronTrigger(minute=minute, hour=hour, day_of_week="mon", timezone=settings.tz)


def last_fire_time(
    trigger: CronTrigger, now: datetime, lookback: timedelta = timedelta(days=8)
) -> datetime | None:
    """The latest time at or before ``now`` the trigger fired (within ``lookback``)."""
    cursor = now - lookback
    last: datetime | None = None
    for _ in range(100_000):
        fire = trigger.get_next_fire_time(None, cursor)
        if fire is None or fire > now:
            break
        last = fire
        cursor = fire + timedelta(seconds=1)
    return last


def due_period(kind: PeriodKind, fired_at: datetime, settings: Settings) -> date:
    """First day of the period a digest fired at ``fired_at`` reports: yesterday, last week."""
    yesterday = fired_at.astimezone(settings.tz).date() - timedelta(days=1)
    if kind == PeriodKind.WEEK:
        return yesterday - timedelta(days=yesterday.weekday())
    return yesterday


# --------------------------------------------------------------------------------------
# Sending once
# --------------------------------------------------------------------------------------


async def send_scheduled(
    bot: Bot, services: AppServices, *, kind: PeriodKind, period_start: date
) -> bool:
    """Send the digest of ``kind`` for the period starting ``period_start`` once; False if sent.

    The digest run is recorded in the same transaction as the outbox rows that carry it, so it
    goes out exactly once and is retried by delivery until Telegram takes it.
    """
    chat_ids = services.settings.manager_chat_ids
    if not chat_ids:
        return False
    if await _was_sent(services, kind=kind, period_start=period_start):
        log.info("the %s digest for %s was sent before", kind.value, period_start)
        return False
    rendered = await build(services, kind=kind, day=period_start)

    async def record(session: AsyncSession) -> Outcome:
        claimed = await session.scalar(
            select(DigestRun.id).where(
                DigestRun.kind == kind.value, DigestRun.period_start == period_start
            )
        )
        if claimed is not None:
            return Outcome()
        session.add(
            DigestRun(
                kind=kind.value,
                period_start=period_start,
                sent_at=services.now(),
                recipients=len(chat_ids),
            )
        )
        return Outcome(list(posts(chat_ids, rendered)))

    outcome = await services.runner.run(record)
    if outcome.effects:
        log.info("the %s digest for %s goes to %d chats", kind.value, period_start, len(chat_ids))
    return bool(outcome.effects)


async def _was_sent(services: AppServices, *, kind: PeriodKind, period_start: date) -> bool:
    async with services.session() as session:
        found = await session.scalar(
            select(DigestRun.id).where(
                DigestRun.kind == kind.value, DigestRun.period_start == period_start
            )
        )
    return found is not None


# --------------------------------------------------------------------------------------
# Job callbacks
# --------------------------------------------------------------------------------------


async def daily_digest(context: KefuContext) -> None:
    services = context.services
    day = due_period(PeriodKind.DAY, services.now(), services.settings)
    await send_scheduled(context.bot, services, kind=PeriodKind.DAY, period_start=day)


async def weekly_digest(context: KefuContext) -> None:
    services = context.services
    monday = due_period(PeriodKind.WEEK, services.now(), services.settings)
    await send_scheduled(context.bot, services, kind=PeriodKind.WEEK, period_start=monday)


async def catch_up(context: KefuContext) -> None:
    """At start: send the most recent due digest of each kind if it was never sent."""
    services = context.services
    settings = services.settings
    now = services.now()
    for kind, trigger in (
        (PeriodKind.DAY, daily_trigger(settings)),
        (PeriodKind.WEEK, weekly_trigger(settings)),
    ):
        fired = last_fire_time(trigger, now)
        if fired is None:
            continue
        period_start = due_period(kind, fired, settings)
        await send_scheduled(context.bot, services, kind=kind, period_start=period_start)


async def check_alerts(context: KefuContext) -> None:
    """Complaint spikes to the managers; SLA breaches into the ticket's staff thread. Each alert
    is recorded in the same transaction as the outbox rows that announce it."""
    services = context.services
    settings = services.settings
    now = services.now()
    staff_chat = services.staff.chat_id

    async def announce(session: AsyncSession) -> Outcome:
        effects: list[Effect] = []
        if settings.manager_chat_ids:
            for spike in await alerts.new_spikes(session, now=now, tz=settings.tz):
                html = texts.split_lines(digest_texts.render_spike(spike))
                effects.extend(Post(chat_id=c, html=html) for c in settings.manager_chat_ids)
        if staff_chat is not None:
            breaches = await alerts.new_sla_breaches(
                session,
                now=now,
                hours=services.hours,
                target_minutes=float(settings.first_response_target_minutes),
            )
            for breach in breaches:
                text = digest_texts.render_sla_breach(
                    breach, business_hours=not services.hours.always_open
                )
                effects.append(
                    Post(
                        chat_id=breach.staff_chat_id or staff_chat,
                        html=texts.split_lines(text),
                        thread_id=breach.staff_thread_id,
                        reply_to_message_id=None
                        if breach.staff_thread_id is not None
                        else breach.staff_card_message_id,
                    )
                )
        return Outcome(effects)

    await services.runner.run(announce)


# --------------------------------------------------------------------------------------
# Wiring
# --------------------------------------------------------------------------------------


def register(application: Application[Any, Any, Any, Any, Any, Any]) -> None:
    """Schedule the digests and alerts (the managers' commands are in ``bot/app.py``)."""
    services: AppServices = application.bot_data.services
    settings = services.settings
    queue = application.job_queue
    if queue is None:
        raise RuntimeError(
            "the job queue is missing: install python-telegram-bot with the job-queue extra"
        )
    # A busy event loop must not make APScheduler skip a digest (its default grace is 1 s).
    late = {"misfire_grace_time": MISFIRE_GRACE_SECONDS, "coalesce": True}
    queue.run_custom(
        daily_digest, job_kwargs={"trigger": daily_trigger(settings), **late}, name=DAILY_JOB
    )
    queue.run_custom(
        weekly_digest, job_kwargs={"trigger": weekly_trigger(settings), **late}, name=WEEKLY_JOB
    )
    queue.run_repeating(check_alerts, interval=ALERT_INTERVAL_SECONDS, first=60, name=ALERTS_JOB)
    queue.run_once(catch_up, when=CATCH_UP_DELAY_SECONDS, name=CATCH_UP_JOB)


__all__ = [
    "build",
    "catch_up",
    "check_alerts",
    "daily_digest",
    "daily_trigger",
    "due_period",
    "last_fire_time",
    "register",
    "send_scheduled",
    "weekly_digest",
    "weekly_trigger",
]
