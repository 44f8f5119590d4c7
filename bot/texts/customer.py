"""Sentences the customer reads, in English (``en``) and Simplified Chinese (``zh``)."""

from __future__ import annotations

from collections.abc import Sequence
from zoneinfo import ZoneInfo

from bot.texts.common import _Values, escape
from crm.schemas import TicketInfo

LANGUAGES = {"en": "English", "zh": "简体中文"}


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


def customer_text(language: str, key: str, **values: object) -> str:
    """A customer-facing sentence; every value is HTML-escaped."""
    table = _CUSTOMER.get(language) or _CUSTOMER["en"]
    template = table.get(key) or _CUSTOMER["en"][key]
    return template.format_map(_Values({k: escape(v) for k, v in values.items()}))


def status_label(language: str, status: str) -> str:
    return customer_text(language, f"status_{status}")


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


def agent_signature(language: str, agent_name: str) -> str:
    """Plain text (agent replies are relayed without a parse mode)."""
    table = _CUSTOMER.get(language) or _CUSTOMER["en"]
    return table["agent_reply_signature"].format(name=agent_name)


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


def command_descriptions(language: str) -> dict[str, str]:
    return _COMMANDS.get(language, _COMMANDS["en"])
