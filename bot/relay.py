"""Carrying messages between customers and the staff chat (Telegram side only)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from telegram import Bot, InlineKeyboardMarkup, Message, ReplyParameters
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden

from bot import keyboards, texts
from bot.parsing import CAPTIONED_KINDS
from bot.services import AppServices
from crm.messages import Media
from crm.records import CustomerRecord
from crm.schemas import CustomerInfo, MessageInfo, TicketCard, TicketInfo

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StaffPlace:
    """Where a ticket lives in the staff chat: its forum topic, or replies to its card."""

    chat_id: int
    thread_id: int | None
    card_message_id: int | None

    @classmethod
    def of(cls, ticket: TicketInfo) -> StaffPlace | None:
        if ticket.staff_chat_id is None:
            return None
        return cls(ticket.staff_chat_id, ticket.staff_thread_id, ticket.staff_card_message_id)

    def reply_parameters(self) -> ReplyParameters | None:
        if self.thread_id is not None or self.card_message_id is None:
            return None
        return ReplyParameters(self.card_message_id, allow_sending_without_reply=True)


async def send_html(
    bot: Bot,
    chat_id: int,
    chunks: list[str] | str,
    *,
    thread_id: int | None = None,
    reply_parameters: ReplyParameters | None = None,
    reply_markup: InlineKeyboardMarkup | None = None,
) -> list[Message]:
    """Send one or more HTML messages; the keyboard goes on the last one."""
    parts = [chunks] if isinstance(chunks, str) else chunks
    sent = []
    for i, part in enumerate(parts):
        sent.append(
            await bot.send_message(
                chat_id,
                part,
                parse_mode=ParseMode.HTML,
                message_thread_id=thread_id,
                reply_parameters=reply_parameters if i == 0 else None,
                reply_markup=reply_markup if i == len(parts) - 1 else None,
            )
        )
    return sent


async def post_to_place(bot: Bot, place: StaffPlace, html_text: str) -> Message:
    sent = await send_html(
        bot,
        place.chat_id,
        html_text,
        thread_id=place.thread_id,
        reply_parameters=place.reply_parameters(),
    )
    return sent[0]


async def open_in_staff_chat(
    services: AppServices, bot: Bot, card: TicketCard, record: CustomerRecord | None = None
) -> StaffPlace | None:
    """Create the ticket's forum topic (or plain card) in the staff chat."""
    chat_id = services.settings.staff_chat_id
    if chat_id is None:
        log.warning(
            "KEFU_STAFF_CHAT_ID is not set: ticket #%s is not shown to agents", card.ticket.number
        )
        return None
    thread_id: int | None = None
    if await services.staff.is_forum(bot):
        try:
            topic = await bot.create_forum_topic(
                chat_id, texts.topic_name(card.ticket, card.customer)
            )
            thread_id = topic.message_thread_id
        except BadRequest as exc:
            if "not a forum" in str(exc).lower():
                services.staff.forget_forum()
            else:  # e.g. the bot lacks the "Manage topics" right: a card still reaches agents
                log.warning(
                    "could not create a topic for #%s (%s); posting a card", card.ticket.number, exc
                )
        except Forbidden as exc:
            log.warning(
                "could not create a topic for #%s (%s); posting a card", card.ticket.number, exc
            )
    message = (
        await send_html(
            bot,
            chat_id,
            texts.staff_card(card, services.settings.tz, record),
            thread_id=thread_id,
            reply_markup=keyboards.staff_card(card.ticket),
        )
    )[0]
    return StaffPlace(chat_id, thread_id, message.message_id)


async def refresh_card(
    services: AppServices, bot: Bot, card: TicketCard, record: CustomerRecord | None = None
) -> None:
    """Show the ticket's new state (status, assignee, analysis, buttons) on its card."""
    ticket = card.ticket
    if ticket.staff_chat_id is None or ticket.staff_card_message_id is None:
        return
    try:
        await bot.edit_message_text(
            texts.staff_card(card, services.settings.tz, record),
            chat_id=ticket.staff_chat_id,
            message_id=ticket.staff_card_message_id,
            parse_mode=ParseMode.HTML,
            reply_markup=keyboards.staff_card(ticket),
        )
    except BadRequest as exc:
        if "not modified" not in str(exc).lower():
            log.warning("could not update the card of #%s: %s", ticket.number, exc)


async def customer_to_staff(
    bot: Bot, place: StaffPlace, customer: CustomerInfo, ticket_number: int, message: MessageInfo
) -> int:
    """Relay a customer's message into the ticket's place; returns the staff message id."""
    header = texts.relay_header(customer, ticket_number)
    if message.media_kind is None or message.customer_message_id is None:
        sent = await send_html(
            bot,
            place.chat_id,
            texts.split_escaped(header, message.text),
            thread_id=place.thread_id,
            reply_parameters=place.reply_parameters(),
        )
        return sent[0].message_id
    caption: str | None = None
    overflow: list[str] = []
    if message.media_kind in CAPTIONED_KINDS:
        parts = texts.split_escaped(header, message.text, texts.TELEGRAM_CAPTION_LIMIT)
        caption = parts[0]
        if len(parts) > 1:  # a long caption (Telegram Premium): the full text follows the file
            caption = header
            overflow = texts.split_escaped(header, message.text)
    copied = await bot.copy_message(
        place.chat_id,
        from_chat_id=message.customer_chat_id or customer.chat_id or 0,
        message_id=message.customer_message_id,
        caption=caption,
        parse_mode=ParseMode.HTML if caption else None,
        message_thread_id=place.thread_id,
        reply_parameters=place.reply_parameters(),
    )
    if overflow:
        await send_html(
            bot,
            place.chat_id,
            overflow,
            thread_id=place.thread_id,
            reply_parameters=ReplyParameters(copied.message_id, allow_sending_without_reply=True),
        )
    return copied.message_id


async def staff_to_customer(
    bot: Bot,
    *,
    customer: CustomerInfo,
    text: str,
    media: Media | None,
    from_chat_id: int,
    message_id: int,
    signature: str | None,
) -> int:
    """Relay an agent's message to the customer as the bot; returns the customer's message id."""
    if customer.chat_id is None:
        raise BadRequest("Chat not found")
    if media is None:
        body = f"{text}\n\n{signature}" if signature else text
        sent = [await bot.send_message(customer.chat_id, chunk) for chunk in texts.split_text(body)]
        return sent[0].message_id
    caption: str | None = None
    if signature and media.kind in CAPTIONED_KINDS:
        caption = texts.split_text(f"{text}\n\n{signature}" if text else signature, 1024)[0]
    copied = await bot.copy_message(
        customer.chat_id, from_chat_id=from_chat_id, message_id=message_id, caption=caption
    )
    return copied.message_id
