"""Customer records in Telegram: ``/link CODE``, sharing a phone, ``/customer ID``, ``/atrisk``.

Customers (private chat): ``/link CODE`` links them to the business's record with that code;
``/link`` without a code and ``/share`` offer a button that shares their own phone number; a shared
contact is accepted only when it is the sender's own.

Staff: ``/customer ID`` (ticket number ``1042``/``#1042``, Telegram id, ``@username`` or
external id) shows the record; ``/atrisk`` lists the customers most likely to need help. Both
work for agents in the staff chat and in manager chats (``KEFU_MANAGER_CHAT_IDS``); everyone
else is refused.

The handlers run in group -1 and stop there (``ApplicationHandlerStop``), so the generic customer
handlers of group 0 never see these commands or a shared contact.
"""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession
from telegram import Update
from telegram.ext import (
    ApplicationHandlerStop,
)

from bot import texts
from bot.handlers.replies import reply
from bot.parsing import command_argument, person_of
from bot.services import KefuContext
from bot.texts import at_risk_text, record_lines, record_text, staff_record_text
from crm import customers, linking, needs, records
from crm.linking import LinkStatus
from crm.needs import NeedsModel
from crm.support.outcomes import Keyboard

log = logging.getLogger(__name__)

AT_RISK_TOP = 10

# --- Customers -------------------------------------------------------------------------------


async def _customer_row(update: Update, context: KefuContext) -> tuple[int, str]:
    """The customer behind this update (created on first contact): id and language."""
    person, services = person_of(update), context.services
    async with services.session() as session:
        row = await customers.upsert_from_telegram(
            session,
            telegram_user_id=person.telegram_user_id,
            chat_id=person.chat_id,
            first_name=person.first_name,
            last_name=person.last_name,
            username=person.username,
            language_code=person.language_code,
            now=services.now(),
            default_language=services.settings.default_language,
        )
        return row.id, row.language


def _share_keyboard(language: str) -> Keyboard:
    return Keyboard("share_contact", (record_text(language, "share_button"),))


_LINK_REPLIES = {
    LinkStatus.LINKED: "linked",
    LinkStatus.ALREADY_LINKED: "already_linked",
    LinkStatus.AMBIGUOUS: "ambiguous",
    LinkStatus.TAKEN: "taken",
    LinkStatus.TOO_MANY: "too_many",
}


async def link(update: Update, context: KefuContext) -> None:
    """``/link CODE``; without a code, offer the phone-sharing button."""
    message = update.effective_message
    assert message is not None  # noqa: S101
    customer_id, language = await _customer_row(update, context)
    code = command_argument(message)
    if not code:
        await reply(
            update,
            context,
            record_text(language, "share_prompt"),
            keyboard=_share_keyboard(language),
        )
        raise ApplicationHandlerStop
    async with context.services.session() as session:
        result = await linking.link_by_code(
            session, customer_id=customer_id, code=code, now=context.services.now()
        )
    key = _LINK_REPLIES.get(result.status)
    if key is None:
        key = "invalid_code" if result.status == LinkStatus.INVALID else "not_found_code"
    await reply(update, context, record_text(language, key))
    raise ApplicationHandlerStop


async def share(update: Update, context: KefuContext) -> None:
    """``/share``: the phone-sharing button."""
    message = update.effective_message
    assert message is not None  # noqa: S101
    _, language = await _customer_row(update, context)
    await reply(
        update, context, record_text(language, "share_prompt"), keyboard=_share_keyboard(language)
    )
    raise ApplicationHandlerStop


async def contact(update: Update, context: KefuContext) -> None:
    """A shared contact: link by phone, but only the sender's own number."""
    message, user = update.effective_message, update.effective_user
    assert message is not None and message.contact is not None and user is not None  # noqa: S101
    customer_id, language = await _customer_row(update, context)
    if message.contact.user_id != user.id:
        await reply(update, context, record_text(language, "not_your_contact"))
        raise ApplicationHandlerStop
    async with context.services.session() as session:
        result = await linking.link_by_phone(
            session, customer_id=customer_id, phone=message.contact.phone_number
        )
    key = _LINK_REPLIES.get(result.status)
    if key is None:
        key = "invalid_phone" if result.status == LinkStatus.INVALID else "not_found_phone"
    await reply(update, context, record_text(language, key), keyboard=Keyboard("remove"))
    raise ApplicationHandlerStop


# --- Staff -----------------------------------------------------------------------------------


async def _is_staff(update: Update, context: KefuContext) -> bool:
    """Agents in the staff chat, and anyone in a manager chat."""
    chat, user = update.effective_chat, update.effective_user
    if chat is None or user is None:
        return False
    settings = context.services.settings
    if chat.id in settings.manager_chat_ids:
        return True
    return (
        settings.staff_chat_id is not None
        and chat.id == settings.staff_chat_id
        and await context.services.staff.is_agent(context.bot, user.id)
    )


async def _staff_only(update: Update, context: KefuContext) -> bool:
    if await _is_staff(update, context):
        return True
    await reply(update, context, texts.staff_text("not_staff"))
    return False


async def _model(context: KefuContext) -> NeedsModel | None:
    return await context.services.needs_model()


async def customer_command(update: Update, context: KefuContext) -> None:
    """``/customer ID``: the customer's record with the predicted need."""
    message = update.effective_message
    assert message is not None  # noqa: S101
    if not await _staff_only(update, context):
        raise ApplicationHandlerStop
    query = command_argument(message)
    if not query:
        await reply(update, context, staff_record_text("customer_usage"))
        raise ApplicationHandlerStop
    services = context.services
    model = await _model(context)
    async with services.session() as session:
        customer_id = await records.find_customer(session, query=query)
        record = (
            await records.customer_record(
                session, customer_id=customer_id, model=model, now=services.now()
            )
            if customer_id is not None
            else None
        )
    if record is None:
        await reply(update, context, staff_record_text("customer_not_found", query=query))
    else:
        await reply(update, context, "\n".join(record_lines(record, services.settings.tz)))
    raise ApplicationHandlerStop


async def atrisk(update: Update, context: KefuContext) -> None:
    """``/atrisk``: the customers most likely to need help, with their main reasons."""
    message = update.effective_message
    assert message is not None  # noqa: S101
    if not await _staff_only(update, context):
        raise ApplicationHandlerStop
    model = await _model(context)
    if model is None:
        await reply(update, context, staff_record_text("no_model"))
        raise ApplicationHandlerStop
    services = context.services
    try:
        now = services.now()

        async def top(session: AsyncSession) -> list[needs.AtRisk]:
            return await needs.at_risk(session, model=model, now=now, top=AT_RISK_TOP)

        items = await services.in_worker(top)  # scoring every customer is CPU work
    except needs.NeedsError as exc:
        await reply(update, context, staff_record_text("needs_error", reason=str(exc)))
        raise ApplicationHandlerStop from None
    await reply(update, context, texts.split_text(at_risk_text(items, model)))
    raise ApplicationHandlerStop
