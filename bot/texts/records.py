"""Customer records: /link, /share, /customer, /atrisk and the record lines on the staff card."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from bot.texts.common import escape

if TYPE_CHECKING:
    from crm.needs import AtRisk, NeedsModel, Reason
    from crm.records import CustomerRecord


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
