"""Replies that bot-side handlers render themselves (records, digests) go through the outbox too."""

from __future__ import annotations

import base64

from telegram import Update
from telegram.constants import ChatType

from bot import texts
from bot.services import KefuContext
from crm.support.outcomes import Keyboard, Outcome, Post


async def reply(
    update: Update,
    context: KefuContext,
    html: str | list[str],
    *,
    keyboard: Keyboard | None = None,
    photo_png: bytes | None = None,
    photo_caption: str | None = None,
) -> None:
    """Send ``html`` (split to Telegram's limits) to the update's chat, through the outbox."""
    chat, message = update.effective_chat, update.effective_message
    if chat is None:
        return
    chunks = texts.split_lines(html) if isinstance(html, str) else html
    post = Post(
        chat_id=chat.id,
        html=chunks,
        for_customer=chat.type == ChatType.PRIVATE,
        thread_id=(
            message.message_thread_id if message is not None and message.is_topic_message else None
        ),
        keyboard=keyboard,
        photo_png_base64=base64.b64encode(photo_png).decode() if photo_png else None,
        photo_caption=photo_caption,
    )
    await context.services.runner.effects_only(Outcome([post]))
