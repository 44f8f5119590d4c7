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

import asyncio
import logging
from collections.abc import Sequence
from typing import Any
from zoneinfo import ZoneInfo

from telegram import KeyboardButton, ReplyKeyboardMarkup, ReplyKeyboardRemove, Update
from telegram.ext import (
    Application,
    ApplicationHandlerStop,
    CommandHandler,
    MessageHandler,
    filters,
)

from bot import texts
from bot.parsing import command_argument
from bot.services import KefuContext
from crm import customers, linking, needs, records
from crm.linking import LinkStatus
from crm.needs import AtRisk, NeedsModel, Reason
from crm.records import CustomerRecord

log = logging.getLogger(__name__)

GROUP = -1
AT_RISK_TOP = 10

# --- Sentences people read (to be moved into bot/texts.py by the lead) ----------------------
RECORD_TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "share_prompt": (
            "To connect this chat with your customer account, tap the button below to share your "
            "phone number — or send /link followed by the code we gave you."
        ),
        "share_button": "📱 Share my phone number",
        "linked": "Thank you — this chat is now connected to your customer account.",
        "already_linked": "This chat is already connected to your customer account.",
        "not_found_phone": (
            "Thanks! We couldn't find an account with this phone number yet; "
            "we've noted it, and our team can still help you here."
        ),
        "not_found_code": "That code doesn't match any account. Please check it and try again.",
        "ambiguous": (
            "Several accounts use this phone number, so we couldn't connect one automatically. "
            "Please send /link with the code we gave you."
        ),
        "taken": "That account is already connected to another Telegram account.",
        "invalid_phone": "That doesn't look like a phone number.",
        "invalid_code": "Please send the code after the command, like this: /link ABC123",
        "not_your_contact": "Please share your own phone number using the button.",
    },
    "zh": {
        "share_prompt": (
            "要把此对话与您的客户账户关联，请点击下方按钮分享您的手机号——"
            "或者发送 /link 加上我们提供给您的代码。"
        ),
        "share_button": "📱 分享我的手机号",
        "linked": "谢谢——此对话已与您的客户账户关联。",
        "already_linked": "此对话已经与您的客户账户关联。",
        "not_found_phone": (
            "谢谢！我们暂时没有找到使用这个手机号的账户；已记录下来，客服仍可在这里帮助您。"
        ),
        "not_found_code": "这个代码没有对应的账户，请检查后重试。",
        "ambiguous": (
            "有多个账户使用这个手机号，无法自动关联。请发送 /link 加上我们提供给您的代码。"
        ),
        "taken": "该账户已经与另一个 Telegram 账户关联。",
        "invalid_phone": "这似乎不是一个手机号。",
        "invalid_code": "请在命令后加上代码，例如：/link ABC123",
        "not_your_contact": "请使用按钮分享您自己的手机号。",
    },
}
STAFF_RECORD_TEXTS: dict[str, str] = {
    "customer_usage": (
        "Use /customer ID — a ticket number (#1042), Telegram id, @username or external id."
    ),
    "customer_not_found": "I couldn't find a customer for {query}.",
    "record_header": "👤 <b>{name}</b>{ids}",
    "record_value": "💰 Lifetime value: {value} · {orders} order(s)",
    "record_no_orders": "💰 No orders on record",
    "record_last_order": "🛒 Last order: {date} · {amount}{product}",
    "record_open": "🎫 Open tickets: {numbers} ({total} in all)",
    "record_no_open": "🎫 No open tickets ({total} in all)",
    "record_ratings": "⭐ Ratings: {recent} · mean {mean} of {count}",
    "record_no_ratings": "⭐ No ratings yet",
    "record_need": "🔮 {chance} chance: {label}",
    "record_need_reasons": "   because {reasons}",
    "reason": "{feature} {value} (typical {typical})",
    "atrisk_header": "<b>Most likely: {label}</b> (model {version})",
    "atrisk_line": "{rank}. {name}{external} — {chance}",
    "atrisk_empty": "No customers to list.",
    "no_model": "No need model yet: run <code>python main.py needs train</code>.",
    "needs_error": "Need prediction is not available: {reason}",
}
FEATURE_LABELS: dict[str, str] = {
    "tenure_days": "days as a customer",
    "recency_days": "days since the last order",
    "orders_total": "orders",
    "orders_90d": "orders in 90 days",
    "monetary_total": "total spent",
    "monetary_90d": "spent in 90 days",
    "mean_order_value": "mean order value",
    "tickets_30d": "tickets in 30 days",
    "tickets_90d": "tickets in 90 days",
    "tickets_total": "tickets",
    "open_tickets": "open tickets",
    "negative_share": "negative messages",
    "mean_rating": "mean rating",
    "days_since_contact": "days since last contact",
}
# ---------------------------------------------------------------------------------------------


def record_text(language: str, key: str, **values: object) -> str:
    table = RECORD_TEXTS.get(language) or RECORD_TEXTS["en"]
    template = table.get(key) or RECORD_TEXTS["en"][key]
    return template.format(**{k: texts.escape(v) for k, v in values.items()})


def staff_record_text(key: str, **values: object) -> str:
    return STAFF_RECORD_TEXTS[key].format(**{k: texts.escape(v) for k, v in values.items()})


def feature_label(name: str) -> str:
    if name.startswith("category_share:"):
        return f"share of {name.split(':', 1)[1]} orders"
    return FEATURE_LABELS.get(name, name)


def reasons_text(reasons: Sequence[Reason]) -> str:
    return "; ".join(
        staff_record_text(
            "reason", feature=feature_label(r.feature), value=r.value, typical=r.typical
        )
        for r in reasons
    )


def _money(value: Any, currency: str) -> str:
    return f"{value:,.2f} {currency}".strip()


def record_lines(record: CustomerRecord, tz: ZoneInfo) -> list[str]:
    """The record as lines of Telegram HTML (for ``/customer`` and the staff card)."""
    ids = []
    if record.external_id:
        ids.append(f"external id <code>{texts.escape(record.external_id)}</code>")
    if record.telegram_username:
        ids.append(f"@{texts.escape(record.telegram_username)}")
    if record.telegram_user_id is not None:
        ids.append(f"id <code>{record.telegram_user_id}</code>")
    lines = [
        STAFF_RECORD_TEXTS["record_header"].format(
            name=texts.escape(record.name), ids=f" ({', '.join(ids)})" if ids else ""
        )
    ]
    if record.lifetime_value:
        value = " + ".join(_money(v, c) for c, v in record.lifetime_value.items())
        lines.append(staff_record_text("record_value", value=value, orders=record.orders))
    else:
        lines.append(staff_record_text("record_no_orders"))
    if record.last_order is not None:
        order = record.last_order
        product = order.product or order.category
        lines.append(
            staff_record_text(
                "record_last_order",
                date=order.occurred_at.astimezone(tz).strftime("%Y-%m-%d"),
                amount=_money(order.amount, order.currency),
                product=f" · {product}" if product else "",
            )
        )
    if record.open_tickets:
        numbers = ", ".join(f"#{n}" for n in record.open_tickets)
        lines.append(staff_record_text("record_open", numbers=numbers, total=record.tickets_total))
    else:
        lines.append(staff_record_text("record_no_open", total=record.tickets_total))
    if record.ratings and record.mean_rating is not None:
        lines.append(
            staff_record_text(
                "record_ratings",
                recent=", ".join(str(s) for s in record.ratings),
                mean=f"{record.mean_rating:.1f}",
                count=record.rating_count,
            )
        )
    else:
        lines.append(staff_record_text("record_no_ratings"))
    if record.need is not None:
        lines.append(
            staff_record_text(
                "record_need", chance=f"{record.need.probability:.0%}", label=record.need.label
            )
        )
        if record.need.reasons:
            lines.append(
                STAFF_RECORD_TEXTS["record_need_reasons"].format(
                    reasons=reasons_text(record.need.reasons)
                )
            )
    return lines


def at_risk_text(items: Sequence[AtRisk], model: NeedsModel) -> str:
    if not items:
        return staff_record_text("atrisk_empty")
    lines = [staff_record_text("atrisk_header", label=model.label, version=model.version)]
    for rank, item in enumerate(items, start=1):
        lines.append(
            staff_record_text(
                "atrisk_line",
                rank=rank,
                name=item.name,
                external=f" ({item.external_id})" if item.external_id else "",
                chance=f"{item.probability:.0%}",
            )
        )
        if item.reasons:
            lines.append("   " + reasons_text(item.reasons))
    return "\n".join(lines)


# --- Customers -------------------------------------------------------------------------------


async def _customer_row(update: Update, context: KefuContext) -> tuple[int, str]:
    user, chat = update.effective_user, update.effective_chat
    assert user is not None and chat is not None  # noqa: S101 - private-chat filter
    services = context.services
    async with services.session() as session:
        row = await customers.upsert_from_telegram(
            session,
            telegram_user_id=user.id,
            chat_id=chat.id,
            first_name=user.first_name,
            last_name=user.last_name,
            username=user.username,
            language_code=user.language_code,
            now=services.now(),
            default_language=services.settings.default_language,
        )
        return row.id, row.language


def _share_keyboard(language: str) -> ReplyKeyboardMarkup:
    button = KeyboardButton(record_text(language, "share_button"), request_contact=True)
    return ReplyKeyboardMarkup([[button]], resize_keyboard=True, one_time_keyboard=True)


_LINK_REPLIES = {
    LinkStatus.LINKED: "linked",
    LinkStatus.ALREADY_LINKED: "already_linked",
    LinkStatus.AMBIGUOUS: "ambiguous",
    LinkStatus.TAKEN: "taken",
}


async def link(update: Update, context: KefuContext) -> None:
    """``/link CODE``; without a code, offer the phone-sharing button."""
    message = update.effective_message
    assert message is not None  # noqa: S101
    customer_id, language = await _customer_row(update, context)
    code = command_argument(message)
    if not code:
        await message.reply_html(
            record_text(language, "share_prompt"), reply_markup=_share_keyboard(language)
        )
        raise ApplicationHandlerStop
    async with context.services.session() as session:
        result = await linking.link_by_code(session, customer_id=customer_id, code=code)
    key = _LINK_REPLIES.get(result.status)
    if key is None:
        key = "invalid_code" if result.status == LinkStatus.INVALID else "not_found_code"
    await message.reply_html(record_text(language, key))
    raise ApplicationHandlerStop


async def share(update: Update, context: KefuContext) -> None:
    """``/share``: the phone-sharing button."""
    message = update.effective_message
    assert message is not None  # noqa: S101
    _, language = await _customer_row(update, context)
    await message.reply_html(
        record_text(language, "share_prompt"), reply_markup=_share_keyboard(language)
    )
    raise ApplicationHandlerStop


async def contact(update: Update, context: KefuContext) -> None:
    """A shared contact: link by phone, but only the sender's own number."""
    message, user = update.effective_message, update.effective_user
    assert message is not None and message.contact is not None and user is not None  # noqa: S101
    customer_id, language = await _customer_row(update, context)
    if message.contact.user_id != user.id:
        await message.reply_html(record_text(language, "not_your_contact"))
        raise ApplicationHandlerStop
    async with context.services.session() as session:
        result = await linking.link_by_phone(
            session, customer_id=customer_id, phone=message.contact.phone_number
        )
    key = _LINK_REPLIES.get(result.status)
    if key is None:
        key = "invalid_phone" if result.status == LinkStatus.INVALID else "not_found_phone"
    await message.reply_html(record_text(language, key), reply_markup=ReplyKeyboardRemove())
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
    if update.effective_message is not None:
        await update.effective_message.reply_html(texts.staff_text("not_staff"))
    return False


async def _model(context: KefuContext) -> NeedsModel | None:
    return await asyncio.to_thread(needs.load_current, context.services.settings.models_dir)


async def customer_command(update: Update, context: KefuContext) -> None:
    """``/customer ID``: the customer's record with the predicted need."""
    message = update.effective_message
    assert message is not None  # noqa: S101
    if not await _staff_only(update, context):
        raise ApplicationHandlerStop
    query = command_argument(message)
    if not query:
        await message.reply_html(staff_record_text("customer_usage"))
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
        await message.reply_html(staff_record_text("customer_not_found", query=query))
    else:
        await message.reply_html("\n".join(record_lines(record, services.settings.tz)))
    raise ApplicationHandlerStop


async def atrisk(update: Update, context: KefuContext) -> None:
    """``/atrisk``: the customers most likely to need help, with their main reasons."""
    message = update.effective_message
    assert message is not None  # noqa: S101
    if not await _staff_only(update, context):
        raise ApplicationHandlerStop
    model = await _model(context)
    if model is None:
        await message.reply_html(staff_record_text("no_model"))
        raise ApplicationHandlerStop
    services = context.services
    try:
        async with services.session() as session:
            items = await needs.at_risk(session, model=model, now=services.now(), top=AT_RISK_TOP)
    except needs.NeedsError as exc:
        await message.reply_html(staff_record_text("needs_error", reason=str(exc)))
        raise ApplicationHandlerStop from None
    for chunk in texts.split_text(at_risk_text(items, model)):
        await message.reply_html(chunk)
    raise ApplicationHandlerStop


def register(application: Application[Any, Any, Any, Any, Any, Any]) -> None:
    """Add the record handlers (group -1: they run before, and instead of, the generic ones)."""
    private = filters.ChatType.PRIVATE
    application.add_handler(CommandHandler("link", link, filters=private), group=GROUP)
    application.add_handler(CommandHandler("share", share, filters=private), group=GROUP)
    application.add_handler(
        MessageHandler(private & filters.CONTACT & filters.UpdateType.MESSAGE, contact),
        group=GROUP,
    )
    application.add_handler(CommandHandler("customer", customer_command), group=GROUP)
    application.add_handler(CommandHandler("atrisk", atrisk), group=GROUP)
