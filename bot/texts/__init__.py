"""Every sentence a person reads, per language. Output is Telegram HTML; user data is escaped here.

Customer-facing texts exist in English (``en``) and Simplified Chinese (``zh``). Staff-facing texts
are in English. One module per audience: ``common`` (escaping, Telegram lengths and splitting,
durations, local times), ``customer``, ``staff``, ``records`` (customer records and need
predictions), ``digest`` (digests and alerts). Every public name of the first four is
re-exported here, so ``from bot import texts; texts.customer_text(...)`` works whichever module
holds it; the digest's texts are imported from ``bot.texts.digest`` (they load ``quality``).
"""

from bot.texts.common import (
    TELEGRAM_CAPTION_LIMIT,
    TELEGRAM_TEXT_LIMIT,
    escape,
    format_duration,
    format_local,
    format_seconds,
    split_escaped,
    split_lines,
    split_text,
    telegram_length,
)
from bot.texts.customer import (
    _CUSTOMER,
    LANGUAGES,
    ack_new_ticket,
    agent_signature,
    command_descriptions,
    customer_text,
    status_label,
    status_list,
)
from bot.texts.records import (
    FEATURE_LABELS,
    RECORD_TEXTS,
    STAFF_RECORD_TEXTS,
    at_risk_text,
    feature_label,
    reasons_plain,
    reasons_text,
    record_lines,
    record_text,
    staff_record_text,
)
from bot.texts.staff import (
    PRIORITY_LABELS,
    SENTIMENT_ICONS,
    category_label,
    customer_label,
    queue,
    relay_header,
    staff_card,
    staff_command_descriptions,
    staff_text,
    stars,
    topic_name,
)

__all__ = [
    "FEATURE_LABELS",
    "LANGUAGES",
    "PRIORITY_LABELS",
    "RECORD_TEXTS",
    "SENTIMENT_ICONS",
    "STAFF_RECORD_TEXTS",
    "TELEGRAM_CAPTION_LIMIT",
    "TELEGRAM_TEXT_LIMIT",
    "_CUSTOMER",
    "ack_new_ticket",
    "agent_signature",
    "at_risk_text",
    "category_label",
    "command_descriptions",
    "customer_label",
    "customer_text",
    "escape",
    "feature_label",
    "format_duration",
    "format_local",
    "format_seconds",
    "queue",
    "reasons_plain",
    "reasons_text",
    "record_lines",
    "record_text",
    "relay_header",
    "split_escaped",
    "split_lines",
    "split_text",
    "staff_card",
    "staff_command_descriptions",
    "staff_record_text",
    "staff_text",
    "stars",
    "status_label",
    "status_list",
    "telegram_length",
    "topic_name",
]
