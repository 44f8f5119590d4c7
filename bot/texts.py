"""Every sentence a person reads, per language. Output is Telegram HTML; user data is escaped here.

Customer-facing texts exist in English (``en``) and Simplified Chinese (``zh``). Staff-facing texts
are in English.
"""

from __future__ import annotations

import html
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from crm.schemas import CustomerInfo, QueueItem, TicketCard, TicketInfo
from quality.digest import format_seconds

if TYPE_CHECKING:
    from crm.needs import AtRisk, NeedsModel, Reason
    from crm.records import CustomerRecord

LANGUAGES = {"en": "English", "zh": "简体中文"}
TELEGRAM_TEXT_LIMIT = 4096
TELEGRAM_CAPTION_LIMIT = 1024

_CUSTOMER: dict[str, dict[str, str]] = {
    "en": {
        "start": (
            "Hello, {name}! 👋\n\n"
            "This is customer support. Write your question here — text, photos, files and "
            "voice messages are all fine — and we'll open a ticket and get back to you right here."
            "\n\nSend /help to see what else I can do."
        ),
        "help": (
            "<b>How this works</b>\n"
            "Just write to me: each problem gets a ticket number and our team answers here.\n\n"
            "/status — your open tickets\n"
            "/new — start a new ticket for a different problem\n"
            "/human — ask for a person\n"
            "/language — change the language\n"
            "/help — this message"
        ),
        "ack_new": (
            "Thanks! We've opened ticket <b>#{number}</b> for you. "
            "A member of our team will reply here; you can keep adding details in the meantime."
        ),
        "ack_new_closed": (
            "Thanks! We've opened ticket <b>#{number}</b> for you. "
            "Our team is away right now and will reply from <b>{opening}</b>. "
            "You can keep adding details in the meantime."
        ),
        "status_none": "You have no open tickets. Write your question and we'll open one.",
        "status_header": "<b>Your open tickets</b>",
        "status_line": "#{number} — {status} — opened {opened}{subject}",
        "new_ticket": "OK — your next message starts a new ticket. What can we help you with?",
        "human_escalated": (
            "Understood — ticket <b>#{number}</b> is now with a person from our team. "
            "We'll reply here as soon as we can."
        ),
        "human_no_ticket": (
            "Tell us what you need in a message and a person from our team will pick it up."
        ),
        "language_choose": "Choose your language:",
        "language_set": "Done — I'll write to you in English from now on.",
        "resolved": (
            "Your ticket <b>#{number}</b> has been resolved. Thank you for contacting us!\n\n"
            "How would you rate our service? (1 = very poor, 5 = excellent)"
        ),
        "rated": "Thank you for your rating ({score}/5)!",
        "comment_invite": (
            "Would you like to tell us more? Reply to this message with a comment (optional)."
        ),
        "comment_thanks": "Thank you — we've passed your comment to the team.",
        "agent_reply_signature": "— {name}",
        "status_open": "waiting for our team",
        "status_pending": "waiting for your reply",
        "status_escalated": "with a person from our team",
        "status_resolved": "resolved",
        "status_closed": "closed",
        "error": "Sorry, something went wrong on our side (reference {ref}). Please try again.",
        "already_rated": "You have already rated this ticket — thank you!",
        "not_ratable": "This ticket can't be rated.",
        "invalid_rating": "Please choose a rating from 1 to 5.",
        "ticket_not_found": "I couldn't find that ticket.",
        "ticket_not_active": "That ticket is already closed.",
        "ticket_already_active": "That ticket is still open.",
        "unsupported": "Sorry, I can't handle this kind of message. Please send text or a file.",
        "auto_answer": "🎫 <b>#{number}</b>\n{answer}\n\n<b>Did this solve it?</b>",
        "button_yes": "✅ Yes, thanks",
        "button_no": "❌ No, I need a person",
        "self_served": "Great — glad that helped! Ticket <b>#{number}</b> is closed.",
        "escalated_after_answer": (
            "Sorry about that — ticket <b>#{number}</b> is now with our team; "
            "a person will reply here."
        ),
        "already_answered": "Thanks, we already have your answer for this ticket.",
    },
    "zh": {
        "start": (
            "{name}，您好！👋\n\n"
            "这里是客服中心。请直接在这里写下您的问题——文字、图片、文件和语音都可以——"
            "我们会为您创建工单，并在这里回复您。\n\n发送 /help 查看更多功能。"
        ),
        "help": (
            "<b>使用说明</b>\n"
            "直接给我发消息即可：每个问题都会有一个工单号，我们的客服会在这里回复您。\n\n"
            "/status — 查看您未解决的工单\n"
            "/new — 为另一个问题新建工单\n"
            "/human — 转人工客服\n"
            "/language — 切换语言\n"
            "/help — 显示本帮助"
        ),
        "ack_new": (
            "感谢您的留言！我们已为您创建工单 <b>#{number}</b>。"
            "客服人员会在这里回复您，您也可以继续补充细节。"
        ),
        "ack_new_closed": (
            "感谢您的留言！我们已为您创建工单 <b>#{number}</b>。"
            "现在是非工作时间，我们将于 <b>{opening}</b> 起回复您。您可以继续补充细节。"
        ),
        "status_none": "您目前没有未解决的工单。请直接写下您的问题，我们会为您创建工单。",
        "status_header": "<b>您未解决的工单</b>",
        "status_line": "#{number} — {status} — 创建于 {opened}{subject}",
        "new_ticket": "好的——您的下一条消息将创建一个新工单。请问有什么可以帮您？",
        "human_escalated": "明白——工单 <b>#{number}</b> 已转给人工客服，我们会尽快在这里回复您。",
        "human_no_ticket": "请发消息告诉我们您需要什么帮助，人工客服会为您处理。",
        "language_choose": "请选择语言：",
        "language_set": "好的——之后我会用简体中文和您交流。",
        "resolved": (
            "您的工单 <b>#{number}</b> 已解决，感谢您联系我们！\n\n"
            "请为我们的服务评分（1 = 非常差，5 = 非常好）"
        ),
        "rated": "感谢您的评分（{score}/5）！",
        "comment_invite": "还想告诉我们更多吗？可以直接回复这条消息留下评论（可选）。",
        "comment_thanks": "谢谢！我们已把您的评论转达给团队。",
        "agent_reply_signature": "— {name}",
        "status_open": "等待客服处理",
        "status_pending": "等待您的回复",
        "status_escalated": "人工客服处理中",
        "status_resolved": "已解决",
        "status_closed": "已关闭",
        "error": "抱歉，我们这边出了点问题（编号 {ref}），请稍后再试。",
        "already_rated": "您已经为这个工单评过分了——谢谢！",
        "not_ratable": "这个工单无法评分。",
        "invalid_rating": "请选择 1 到 5 分。",
        "ticket_not_found": "找不到这个工单。",
        "ticket_not_active": "这个工单已经关闭。",
        "ticket_already_active": "这个工单仍在处理中。",
        "unsupported": "抱歉，我无法处理这种消息，请发送文字或文件。",
        "auto_answer": "🎫 <b>#{number}</b>\n{answer}\n\n<b>这解决您的问题了吗？</b>",
        "button_yes": "✅ 解决了，谢谢",
        "button_no": "❌ 没有，我需要人工",
        "self_served": "太好了，很高兴能帮到您！工单 <b>#{number}</b> 已关闭，有需要随时联系我们。",
        "escalated_after_answer": "抱歉——工单 <b>#{number}</b> 已转给我们的客服，会在这里回复您。",
        "already_answered": "谢谢，我们已经收到您对这个工单的反馈。",
    },
}

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


class _Values(dict[str, str]):
    """Template values; a placeholder without a value renders as "?" instead of raising."""

    def __missing__(self, key: str) -> str:
        return "?"


def customer_text(language: str, key: str, **values: object) -> str:
    """A customer-facing sentence; every value is HTML-escaped."""
    table = _CUSTOMER.get(language) or _CUSTOMER["en"]
    template = table.get(key) or _CUSTOMER["en"][key]
    return template.format_map(_Values({k: escape(v) for k, v in values.items()}))


def staff_text(key: str, **values: object) -> str:
    """A staff-chat sentence; every value is HTML-escaped."""
    return _STAFF[key].format_map(_Values({k: escape(v) for k, v in values.items()}))


def escape(value: object) -> str:
    return html.escape(str(value), quote=False)


def status_label(language: str, status: str) -> str:
    return customer_text(language, f"status_{status}")


def format_duration(delta: timedelta) -> str:
    """Short human duration: 45s, 12m, 3h 05m, 2d 4h (the digest's wording, one implementation)."""
    return format_seconds(delta.total_seconds())


def format_local(moment: datetime, tz: ZoneInfo) -> str:
    local = moment.astimezone(tz)
    return f"{local:%a %d %b %H:%M} ({tz.key})"


def ack_new_ticket(language: str, number: int, opening: str | None) -> str:
    if opening is None:
        return customer_text(language, "ack_new", number=number)
    return customer_text(language, "ack_new_closed", number=number, opening=opening)


def status_list(language: str, tickets: Sequence[TicketInfo], tz: ZoneInfo) -> str:
    if not tickets:
        return customer_text(language, "status_none")
    lines = [customer_text(language, "status_header")]
    for t in tickets:
        lines.append(
            customer_text(
                language,
                "status_line",
                number=t.number,
                status=status_label(language, t.status),
                opened=t.created_at.astimezone(tz).strftime("%Y-%m-%d %H:%M"),
                subject="",
            )
        )
    return "\n".join(lines)


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


def agent_signature(language: str, agent_name: str) -> str:
    """Plain text (agent replies are relayed without a parse mode)."""
    table = _CUSTOMER.get(language) or _CUSTOMER["en"]
    return table["agent_reply_signature"].format(name=agent_name)


def split_lines(html_text: str, limit: int = TELEGRAM_TEXT_LIMIT) -> list[str]:
    """Split HTML made of self-contained lines (tags never span lines) at line breaks."""
    chunks: list[str] = []
    current = ""
    for line in html_text.split("\n"):
        candidate = f"{current}\n{line}" if current else line
        if current and telegram_length(candidate) > limit:
            chunks.append(current)
            candidate = line
        current = candidate
    if current:
        chunks.append(current)
    return chunks


def telegram_length(text: str) -> int:
    """Telegram measures text in UTF-16 code units (an emoji can count as two)."""
    return len(text.encode("utf-16-le")) // 2


def _fitting_prefix(text: str, limit: int) -> int:
    """The largest index i such that text[:i] is at most ``limit`` UTF-16 units."""
    if telegram_length(text) <= limit:
        return len(text)
    units = 0
    for i, ch in enumerate(text):
        units += 2 if ord(ch) > 0xFFFF else 1
        if units > limit:
            return i
    return len(text)


def split_text(text: str, limit: int = TELEGRAM_TEXT_LIMIT) -> list[str]:
    """Split text into Telegram-sized chunks, preferring paragraph, line and word breaks."""
    chunks: list[str] = []
    rest = text
    while telegram_length(rest) > limit:
        end = _fitting_prefix(rest, limit)
        window = rest[:end]
        cut = max(window.rfind("\n\n"), window.rfind("\n"), window.rfind(" "))
        if cut < end // 2:
            cut = end
        chunks.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip("\n ")
    if rest:
        chunks.append(rest)
    return [c for c in chunks if c] or [text]


def split_escaped(header: str, text: str, limit: int = TELEGRAM_TEXT_LIMIT) -> list[str]:
    """HTML messages of ``header`` + escaped ``text``, each within Telegram's limit.

    Telegram counts the text after parsing entities, so the raw text is split (escaping never
    cuts an entity in two) with room left for the header.
    """
    if not text:
        return [header]
    room = limit - telegram_length(header) - 1
    pieces = split_text(text, room)
    return [f"{header}\n{escape(p)}" if i == 0 else escape(p) for i, p in enumerate(pieces)]


_COMMANDS = {
    "en": {
        "start": "Start talking to support",
        "help": "What I can do",
        "status": "Your open tickets",
        "new": "Start a new ticket",
        "human": "Ask for a person",
        "language": "Change the language",
        "link": "Connect your customer account (code)",
        "share": "Share your phone number",
    },
    "zh": {
        "start": "开始联系客服",
        "help": "使用说明",
        "status": "查看未解决的工单",
        "new": "新建工单",
        "human": "转人工客服",
        "language": "切换语言",
        "link": "关联客户账户（代码）",
        "share": "分享手机号",
    },
}

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


def command_descriptions(language: str) -> dict[str, str]:
    return _COMMANDS.get(language, _COMMANDS["en"])


def staff_command_descriptions() -> dict[str, str]:
    return dict(_STAFF_COMMANDS)


# --- Customer records (/link, /share, /customer, /atrisk, the staff card) -----------------
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
        "too_many": (
            "Too many codes that didn't match. Please try again in an hour — "
            "or just write your question here."
        ),
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
        "too_many": "错误的代码次数过多，请一小时后再试，或直接在这里留言。",
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
    return template.format(**{k: escape(v) for k, v in values.items()})


def staff_record_text(key: str, **values: object) -> str:
    return STAFF_RECORD_TEXTS[key].format(**{k: escape(v) for k, v in values.items()})


def feature_label(name: str) -> str:
    if name.startswith("category_share:"):
        return f"share of {name.split(':', 1)[1]} orders"
    return FEATURE_LABELS.get(name, name)


def reasons_plain(reasons: Sequence[Reason]) -> str:
    """Reasons as plain text (for the digest, which escapes it itself)."""
    return "; ".join(
        STAFF_RECORD_TEXTS["reason"].format(
            feature=feature_label(r.feature), value=r.value, typical=r.typical
        )
        for r in reasons
    )


def reasons_text(reasons: Sequence[Reason]) -> str:
    return "; ".join(
        staff_record_text(
            "reason", feature=feature_label(r.feature), value=r.value, typical=r.typical
        )
        for r in reasons
    )


def _money(value: Any, currency: str) -> str:
    return f"{value:,.2f} {currency}".strip()


def record_lines(record: CustomerRecord, tz: ZoneInfo, *, for_card: bool = False) -> list[str]:
    """The record as lines of Telegram HTML (for ``/customer`` and the staff card).

    On the card the customer, their tickets and ratings are already shown: only the external
    id, the orders and the predicted need are added.
    """
    if for_card:
        if record.external_id is None and not record.orders and record.need is None:
            return []  # nothing known beyond Telegram: the card already says it all
        full = record_lines(record, tz)
        keep = [line for line in full[1:] if not line.startswith(("🎫", "⭐"))]
        if record.external_id:
            keep.insert(0, f"🪪 External id <code>{escape(record.external_id)}</code>")
        return keep
    ids = []
    if record.external_id:
        ids.append(f"external id <code>{escape(record.external_id)}</code>")
    if record.telegram_username:
        ids.append(f"@{escape(record.telegram_username)}")
    if record.telegram_user_id is not None:
        ids.append(f"id <code>{record.telegram_user_id}</code>")
    lines = [
        STAFF_RECORD_TEXTS["record_header"].format(
            name=escape(record.name), ids=f" ({', '.join(ids)})" if ids else ""
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
