"""Inline keyboards and their callback data (at most 64 bytes each)."""

from __future__ import annotations

from dataclasses import dataclass

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.texts import LANGUAGES, staff_text
from crm.models import TicketStatus
from crm.schemas import TicketInfo

RATE, LANG, CLAIM, RESOLVE, REOPEN = "rate", "lang", "claim", "resolve", "reopen"
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
    if ticket.status in (TicketStatus.RESOLVED, TicketStatus.CLOSED):
        return InlineKeyboardMarkup(
            [
                [
                    InlineKeyboardButton(
                        staff_text("button_reopen"), callback_data=f"{REOPEN}:{ticket.id}"
                    )
                ]
            ]
        )
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(
                    staff_text("button_claim"), callback_data=f"{CLAIM}:{ticket.id}"
                ),
                InlineKeyboardButton(
                    staff_text("button_resolve"), callback_data=f"{RESOLVE}:{ticket.id}"
                ),
            ]
        ]
    )
