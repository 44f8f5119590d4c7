"""Sentences agents read in the staff chat (English): the ticket card, the queue, notices."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from bot.texts.common import _Values, escape, format_duration, format_local
from bot.texts.customer import LANGUAGES
from bot.texts.records import record_lines
from crm.schemas import CustomerInfo, QueueItem, TicketCard, TicketInfo

if TYPE_CHECKING:
    from crm.records import CustomerRecord


_STAFF: dict[str, str] = {
    "not_agent": "Only agents can do this.",
    "not_in_ticket": (
        "Use this inside a ticket's topic, or as a reply to a ticket card or a customer message."
    ),
    "claimed": "🙋 {agent} claimed ticket #{number}.",
    "resolved": "✅ Ticket #{number} resolved by {agent}. The customer was asked for a rating.",
    "reopened": "🔄 Ticket #{number} reopened by {agent}.",
    "note_saved": "📝 Note saved on #{number} (not sent to the customer).",
    "note_empty": "Write the note after the command: /note TEXT",
    "escalated": "🙋‍♀️ The customer asked for a person on #{number}.",
    "rating": "⭐ Rating for #{number}: {stars} ({score}/5)",
    "rating_comment": "💬 Rating comment on #{number}: {comment}",
    "queue_empty": "🎉 No tickets are waiting.",
    "queue_header": "<b>Waiting tickets</b> (by priority, then waiting time)",
    "queue_line": "#{number} · {name} · {status} · waiting {waited}{assignee}",
    "first_response": "⏱ First response on #{number} after {waited}.",
    "ticket_not_found": "I couldn't find that ticket.",
    "ticket_not_active": "Ticket #{number} is not open.",
    "ticket_already_active": "Ticket #{number} is already open.",
    "error": "Something went wrong (reference {ref}); it has been logged.",
    "relay_failed": "⚠️ Couldn't deliver this to the customer: {reason}",
    "customer_unreachable": (
        "🚫 Telegram won't deliver to the customer of #{number} any more ({reason}): they may"
        " have blocked the bot. Their messages will still arrive here if they write again."
    ),
    "place_recreated": (
        "♻️ The topic of #{number} was deleted or closed, so it continues here. Messages from"
        " now on arrive in this topic."
    ),
    "button_claim": "🙋 Claim",
    "button_resolve": "✅ Resolve",
    "button_reopen": "🔄 Reopen",
    "not_manager": "Only managers can do this.",
    "stats_usage": "Use /stats 7d or /stats 30d.",
    "digest_usage": "Use /digest for today so far, or /digest week for this week so far.",
    "category_set": "🏷 {agent} set the category of #{number} to {category}; Kefu learns from it.",
    "category_unknown": "Unknown category. Choose one of: {categories}",
    "category_usage": "Usage: /category NAME — one of: {categories}",
    "category_choose": "Choose the category of #{number}:",
    "button_category": "🏷 Category",
    "self_served_note": "🤖 Answered automatically; the customer said it solved the problem.",
    "escalated_after_answer": "🤖 The automatic answer did not help; the customer needs a person.",
    "not_staff": "Only agents and managers can do this.",
}


def staff_text(key: str, **values: object) -> str:
    """A staff-chat sentence; every value is HTML-escaped."""
    return _STAFF[key].format_map(_Values({k: escape(v) for k, v in values.items()}))


def customer_label(customer: CustomerInfo) -> str:
    """``Name (@username, id 123)``, escaped."""
    parts = [f"<b>{escape(customer.display_name)}</b>"]
    details = []
    if customer.username:
        details.append(f"@{escape(customer.username)}")
    if customer.telegram_user_id is not None:
        details.append(f"id <code>{customer.telegram_user_id}</code>")
    if details:
        parts.append(f"({', '.join(details)})")
    return " ".join(parts)


PRIORITY_LABELS = defaultdict(str, {1: "🔴 urgent", 2: "🟠 high", 3: "🟢 normal", 4: "⚪ low"})

SENTIMENT_ICONS = {"negative": "☹️", "neutral": "😐", "positive": "🙂"}


def category_label(category: str) -> str:
    """``orders_delivery`` -> ``Orders delivery`` (category names are identifiers)."""
    return category.replace("_", " ").capitalize()


def stars(score: int) -> str:
    return "★" * score + "☆" * (5 - score)


def staff_card(card: TicketCard, tz: ZoneInfo, record: CustomerRecord | None = None) -> str:
    """The ticket card agents see in the staff chat (with the CRM record when there is one)."""
    t = card.ticket
    lines = [
        f"🎫 <b>Ticket #{t.number}</b> · {escape(t.status)} · {PRIORITY_LABELS[t.priority]}",
        f"👤 {customer_label(card.customer)}",
        f"🗣 Language: {escape(LANGUAGES.get(card.customer.language, card.customer.language))}",
        f"🕒 Opened {escape(format_local(t.created_at, tz))}",
    ]
    if t.category:
        confidence = f" ({t.category_confidence:.0%})" if t.category_confidence is not None else ""
        lines.append(f"🏷 {escape(category_label(t.category))}{confidence}")
    if t.sentiment or t.urgency:
        mood = SENTIMENT_ICONS.get(t.sentiment or "", "")
        lines.append(
            f"{mood} Sentiment {escape(t.sentiment or '?')} · urgency {escape(t.urgency or '?')}"
        )
    if t.summary:
        lines.append(f"📝 <i>{escape(t.summary)}</i>")
    if card.entities:
        shown = ", ".join(f"{escape(label)} {escape(value)}" for label, value in card.entities[:8])
        lines.append(f"🔎 {shown}")
    if t.assignee_name:
        lines.append(f"🙋 Assigned to {escape(t.assignee_name)}")
    if card.earlier:
        ratings = card.earlier_ratings
        history = ", ".join(
            f"#{p.number}" + (f" ({stars(p.rating)})" if p.rating is not None else "")
            for p in card.earlier
        )
        avg = f" · mean rating {sum(ratings) / len(ratings):.1f}" if ratings else ""
        lines.append(f"📚 Earlier tickets: {history}{avg}")
    else:
        lines.append("📚 First ticket from this customer")
    if record is not None:
        lines.extend(record_lines(record, tz, for_card=True))
    return "\n".join(lines)


def topic_name(ticket: TicketInfo, customer: CustomerInfo) -> str:
    """Forum topic names are plain text, at most 128 characters."""
    return f"#{ticket.number} · {customer.display_name}"[:128]


def relay_header(customer: CustomerInfo, number: int) -> str:
    return f"💬 <b>{escape(customer.display_name)}</b> · #{number}"


def queue(items: Sequence[QueueItem], now: datetime) -> str:
    if not items:
        return staff_text("queue_empty")
    lines = [staff_text("queue_header")]
    for item in items:
        assignee = f" · {item.ticket.assignee_name}" if item.ticket.assignee_name else ""
        lines.append(
            staff_text(
                "queue_line",
                number=item.ticket.number,
                name=item.customer_name,
                status=item.ticket.status,
                waited=format_duration(now - item.waiting_since),
                assignee=assignee,
            )
        )
    return "\n".join(lines)


_STAFF_COMMANDS = {
    "claim": "Take the ticket",
    "resolve": "Resolve the ticket and ask for a rating",
    "reopen": "Reopen the ticket",
    "note": "Internal note (never sent to the customer)",
    "category": "Correct the ticket's category: /category NAME",
    "queue": "Tickets waiting, by priority and age",
    "customer": "A customer's record: /customer ID",
    "atrisk": "Customers most likely to need help",
}


def staff_command_descriptions() -> dict[str, str]:
    return dict(_STAFF_COMMANDS)
