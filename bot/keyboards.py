"""Inline keyboards and their callback data (at most 64 bytes each)."""

from __future__ import annotations

from dataclasses import dataclass

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.texts import LANGUAGES, category_label, customer_text, staff_text
from crm.models import TicketStatus
from crm.schemas import TicketInfo

RATE, LANG, CLAIM, RESOLVE, REOPEN = "rate", "lang", "claim", "resolve", "reopen"
SOLVED, CATEGORIES, CATEGORY, CARD = "solved", "cats", "cat", "card"
YES, NO = "yes", "no"
RATING_LABELS = ("1 😞", "2 🙁", "3 😐", "4 🙂", "5 😍")


@dataclass(frozen=True, slots=True)
class Callback:
    action: str
    args: tuple[str, ...]

    @classmethod
    def parse(cls, data: str | None) -> Callback | None:
        if not data:
            return None
        action, *args = data.split(":")
        return cls(action, tuple(args))

    def int_arg(self, index: int) -> int | None:
        try:
            return int(self.args[index])
        except (IndexError, ValueError):
            return None


def rating(ticket_id: int) -> InlineKeyboardMarkup:
    """Exactly five buttons, 1 (worst) to 5 (best), in that order."""
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(label, callback_data=f"{RATE}:{ticket_id}:{score}")
                for score, label in enumerate(RATING_LABELS, start=1)
            ]
        ]
    )


def languages() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [
            [InlineKeyboardButton(name, callback_data=f"{LANG}:{code}")]
            for code, name in LANGUAGES.items()
        ]
    )


def staff_card(ticket: TicketInfo) -> InlineKeyboardMarkup:
    return card_buttons(ticket.id, ticket.status)


def card_buttons(ticket_id: int, status: TicketStatus) -> InlineKeyboardMarkup:
    category = InlineKeyboardButton(
        staff_text("button_category"), callback_data=f"{CATEGORIES}:{ticket_id}"
    )
    if status in (TicketStatus.RESOLVED, TicketStatus.CLOSED):
        reopen = InlineKeyboardButton(
            staff_text("button_reopen"), callback_data=f"{REOPEN}:{ticket_id}"
        )
        return InlineKeyboardMarkup([[reopen, category]])
    claim = InlineKeyboardButton(staff_text("button_claim"), callback_data=f"{CLAIM}:{ticket_id}")
    resolve = InlineKeyboardButton(
        staff_text("button_resolve"), callback_data=f"{RESOLVE}:{ticket_id}"
    )
    return InlineKeyboardMarkup([[claim, resolve], [category]])


def categories(ticket_id: int, names: tuple[str, ...]) -> InlineKeyboardMarkup:
    """The category chooser on a card: two per row, then a way back."""
    buttons = [
        InlineKeyboardButton(category_label(n), callback_data=f"{CATEGORY}:{ticket_id}:{n}")
        for n in names
    ]
    rows = [buttons[i : i + 2] for i in range(0, len(buttons), 2)]
    rows.append([InlineKeyboardButton("↩", callback_data=f"{CARD}:{ticket_id}")])
    return InlineKeyboardMarkup(rows)


def solved(ticket_id: int, language: str) -> InlineKeyboardMarkup:
    """Yes / No under an automatic answer (the reply comes in the answer's language)."""
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(
                    customer_text(language, "button_yes"),
                    callback_data=f"{SOLVED}:{ticket_id}:{YES}:{language}",
                ),
                InlineKeyboardButton(
                    customer_text(language, "button_no"),
                    callback_data=f"{SOLVED}:{ticket_id}:{NO}:{language}",
                ),
            ]
        ]
    )
