"""Effects' sentences and buttons as Telegram HTML and markup (used by delivery and the console)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from telegram import (
    ForceReply,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
)

from bot import keyboards, texts
from crm.models import TicketStatus
from crm.support.outcomes import Keyboard, Say

Markup = InlineKeyboardMarkup | ForceReply | ReplyKeyboardRemove | ReplyKeyboardMarkup


def say(what: Say, tz: ZoneInfo) -> str:
    """The sentence ``what`` names, with its values, as Telegram HTML."""
    values = dict(what.values)
    if what.audience == "customer":
        if what.key == "ack":
            opening = values.get("opening")
            local = (
                texts.format_local(datetime.fromisoformat(str(opening)), tz) if opening else None
            )
            return texts.ack_new_ticket(what.language, _int(values.get("number")), local)
        if what.key == "signature":
            return texts.agent_signature(what.language, str(values.get("name") or ""))
        return texts.customer_text(what.language, what.key, **values)
    if what.key == "rating":
        values["stars"] = texts.stars(_int(values.get("score")))
    if what.key == "category_set":
        values["category"] = texts.category_label(str(values.get("category") or ""))
    return texts.staff_text(what.key, **values)


def plain(what: Say, tz: ZoneInfo) -> str:
    """For button notices (no markup, at most 200 characters)."""
    return say(what, tz).replace("<b>", "").replace("</b>", "")[:190]


def keyboard(kb: Keyboard | None, categories: tuple[str, ...] = ()) -> Markup | None:
    if kb is None:
        return None
    args = kb.args
    if kb.kind == "rating":
        return keyboards.rating(_int(args[0]))
    if kb.kind == "solved":
        return keyboards.solved(_int(args[0]), str(args[1]))
    if kb.kind == "languages":
        return keyboards.languages()
    if kb.kind == "categories":
        return keyboards.categories(_int(args[0]), categories)
    if kb.kind == "staff_card":
        return keyboards.card_buttons(_int(args[0]), TicketStatus(str(args[1])))
    if kb.kind == "force_reply":
        return ForceReply(selective=True)
    if kb.kind == "share_contact":
        button = KeyboardButton(str(args[0]), request_contact=True)
        return ReplyKeyboardMarkup([[button]], resize_keyboard=True, one_time_keyboard=True)
    if kb.kind == "remove":
        return ReplyKeyboardRemove()
    raise ValueError(f"unknown keyboard {kb.kind!r}")


def _int(value: object) -> int:
    return int(value) if isinstance(value, int | float | str) and str(value).strip() else 0
