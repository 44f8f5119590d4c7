"""The managers' commands: ``/digest [week]`` and ``/stats 7d|30d``.

Only chats listed in ``KEFU_MANAGER_CHAT_IDS`` may use them; anyone else is refused. The
handlers run in their own group before the customers' handlers and stop the update there.
"""

from __future__ import annotations

from telegram import Update
from telegram.ext import ApplicationHandlerStop

from bot import digests, texts
from bot.handlers.replies import reply
from bot.parsing import command_argument
from bot.services import KefuContext
from bot.texts import digest as digest_texts
from bot.texts.digest import render_stats_text
from quality.digest import PeriodKind

STATS_DAYS = {"7d": 7, "7": 7, "30d": 30, "30": 30}


async def _manager_chat(update: Update, context: KefuContext) -> bool:
    """True in a manager chat; elsewhere the sender is told no (and nothing else answers)."""
    chat, message = update.effective_chat, update.effective_message
    if chat is not None and chat.id in context.services.settings.manager_chat_ids:
        return True
    if message is not None:
        await reply(update, context, texts.staff_text("not_manager"))
    raise ApplicationHandlerStop


async def digest(update: Update, context: KefuContext) -> None:
    """``/digest``: today so far; ``/digest week``: this week so far (text and chart)."""
    await _manager_chat(update, context)
    message = update.effective_message
    assert message is not None  # noqa: S101 - CommandHandler only passes messages
    argument = command_argument(message).lower()
    if argument not in ("", "day", "today", "week"):
        await reply(update, context, texts.staff_text("digest_usage"))
        raise ApplicationHandlerStop
    services = context.services
    kind = PeriodKind.WEEK if argument == "week" else PeriodKind.DAY
    today = services.now().astimezone(services.settings.tz).date()
    rendered = await digests.build(services, kind=kind, day=today)
    caption = digest_texts.photo_caption(rendered.digest) if rendered.png else None
    await reply(
        update, context, rendered.text, photo_png=rendered.png or None, photo_caption=caption
    )
    raise ApplicationHandlerStop


async def stats(update: Update, context: KefuContext) -> None:
    """``/stats 7d|30d``: headline figures of the last 7 or 30 days against the ones before."""
    await _manager_chat(update, context)
    message = update.effective_message
    assert message is not None  # noqa: S101 - CommandHandler only passes messages
    days = STATS_DAYS.get(command_argument(message).lower() or "7d")
    if days is None:
        await reply(update, context, texts.staff_text("stats_usage"))
        raise ApplicationHandlerStop
    services = context.services
    today = services.now().astimezone(services.settings.tz).date()
    rendered = await digests.build(
        services, kind=PeriodKind.RANGE, day=today, days=days, chart=False, outlook=False
    )
    await reply(update, context, render_stats_text(rendered.digest))
    raise ApplicationHandlerStop
