"""Scheduled work through python-telegram-bot's JobQueue (APScheduler underneath).

* the daily digest (yesterday) at ``KEFU_DIGEST_SCHEDULE`` in ``KEFU_TIMEZONE``;
* the weekly digest (last Monday to Sunday) on Mondays at the same time;
* alerts every few minutes: complaint spikes to the managers, SLA breaches to the ticket's thread;
* once at start: the most recent due digest of each kind that was never sent (missed while the
  bot was down).

A digest is claimed in ``digest_runs`` (unique kind + period start) in its own transaction before
it is sent, so it goes out at most once even when the schedule and a restart race.
:func:`register` also adds the managers' ``/digest`` and ``/stats`` commands.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from typing import Any

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError
from telegram import Bot, ReplyParameters
from telegram.constants import ParseMode
from telegram.error import TelegramError
from telegram.ext import Application, CommandHandler

from bot.digests import build, send_to_managers
from bot.services import AppServices, KefuContext
from bot.texts import digest as digest_texts
from crm.models import DigestRun
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
#: Handler group of the manager commands: before the customers' catch-all command handler.
MANAGER_GROUP = -1


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


async def claim_run(services: AppServices, *, kind: PeriodKind, period_start: date) -> int | None:
    """Record the digest before sending it; None when it was recorded before (never twice)."""
    try:
        async with services.session() as session:
            row = DigestRun(
                kind=kind.value, period_start=period_start, sent_at=services.now(), recipients=0
            )
            session.add(row)
            await session.flush()
            return row.id
    except IntegrityError:
        return None


async def send_scheduled(
    bot: Bot, services: AppServices, *, kind: PeriodKind, period_start: date
) -> bool:
    """Send the digest of ``kind`` for the period starting ``period_start`` once; False if sent."""
    chat_ids = services.settings.manager_chat_ids
    if not chat_ids:
        return False
    run_id = await claim_run(services, kind=kind, period_start=period_start)
    if run_id is None:
        log.info("the %s digest for %s was sent before", kind.value, period_start)
        return False
    try:
        rendered = await build(services, kind=kind, day=period_start)
    except Exception:
        # Nothing was sent: release the claim so that the next start can try again.
        async with services.session() as session:
            await session.execute(delete(DigestRun).where(DigestRun.id == run_id))
        raise
    sent = await send_to_managers(bot, chat_ids, rendered)
    async with services.session() as session:
        if sent == 0:  # no manager got it (Telegram down?): the next start tries again
            await session.execute(delete(DigestRun).where(DigestRun.id == run_id))
        else:
            await session.execute(
                update(DigestRun).where(DigestRun.id == run_id).values(recipients=sent)
            )
    log.info("sent the %s digest for %s to %d chats", kind.value, period_start, sent)
    return sent > 0


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
    """Complaint spikes to the managers; SLA breaches into the ticket's staff thread."""
    services = context.services
    settings = services.settings
    bot = context.bot
    now = services.now()
    if settings.manager_chat_ids:
        async with services.session() as session:
            spikes = await alerts.new_spikes(session, now=now, tz=settings.tz)
        for spike in spikes:
            for chat_id in settings.manager_chat_ids:
                try:
                    await bot.send_message(
                        chat_id, digest_texts.render_spike(spike), parse_mode=ParseMode.HTML
                    )
                except TelegramError as exc:
                    log.warning("could not send a spike alert to chat %s: %s", chat_id, exc)
    if settings.staff_chat_id is None:
        return
    async with services.session() as session:
        breaches = await alerts.new_sla_breaches(
            session,
            now=now,
            hours=services.hours,
            target_minutes=float(settings.first_response_target_minutes),
        )
    for breach in breaches:
        await _announce_breach(bot, services, breach)


async def _announce_breach(bot: Bot, services: AppServices, breach: alerts.SlaBreach) -> None:
    chat_id = breach.staff_chat_id or services.settings.staff_chat_id
    if chat_id is None:
        return
    text = digest_texts.render_sla_breach(breach, business_hours=not services.hours.always_open)
    kwargs: dict[str, Any] = {}
    if breach.staff_thread_id is not None:
        kwargs["message_thread_id"] = breach.staff_thread_id
    elif breach.staff_card_message_id is not None:
        kwargs["reply_parameters"] = ReplyParameters(
            breach.staff_card_message_id, allow_sending_without_reply=True
        )
    try:
        await bot.send_message(chat_id, text, parse_mode=ParseMode.HTML, **kwargs)
    except TelegramError as exc:
        log.warning("could not announce the SLA breach of #%s: %s", breach.number, exc)


# --------------------------------------------------------------------------------------
# Wiring
# --------------------------------------------------------------------------------------


def register(application: Application[Any, Any, Any, Any, Any, Any]) -> None:
    """Schedule the digests and alerts and add the managers' commands."""
    from bot.handlers import manager

    services: AppServices = application.bot_data.services
    settings = services.settings
    application.add_handler(CommandHandler("digest", manager.digest), group=MANAGER_GROUP)
    application.add_handler(CommandHandler("stats", manager.stats), group=MANAGER_GROUP)
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
