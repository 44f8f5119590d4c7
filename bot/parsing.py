"""Turn Telegram messages into the plain inputs the services take."""

from __future__ import annotations

from telegram import Message, Update

from crm.messages import Media
from crm.support.flows import CustomerMessage, Person, StaffSpot, Tap


def media_of(message: Message) -> Media | None:
    """The file a message carries (the largest photo size), or None for plain text."""
    if message.photo:
        largest = message.photo[-1]
        return Media("photo", largest.file_id, largest.file_unique_id)
    candidates = (
        ("document", message.document),
        ("video", message.video),
        ("voice", message.voice),
        ("audio", message.audio),
        ("animation", message.animation),
        ("video_note", message.video_note),
        ("sticker", message.sticker),
    )
    for kind, attachment in candidates:
        if attachment is not None:
            name = getattr(attachment, "file_name", None)
            if kind == "sticker":
                name = getattr(attachment, "emoji", None)
            return Media(kind, attachment.file_id, attachment.file_unique_id, name)
    if message.contact is not None:
        return Media("contact", message.contact.phone_number, None, message.contact.first_name)
    if message.location is not None:
        loc = message.location
        return Media("location", f"{loc.latitude},{loc.longitude}")
    return None


def text_of(message: Message) -> str:
    return message.text or message.caption or ""


def command_argument(message: Message) -> str:
    """The text after ``/command`` (and after ``@botname``), keeping line breaks."""
    text = message.text or ""
    parts = text.split(maxsplit=1)
    return parts[1].strip() if len(parts) > 1 else ""


CAPTIONED_KINDS = frozenset({"photo", "document", "video", "voice", "audio", "animation"})


def person_of(update: Update) -> Person:
    """The customer behind a private-chat update."""
    user, chat = update.effective_user, update.effective_chat
    if user is None or chat is None:
        raise ValueError("an update without a user or chat")
    return Person(
        telegram_user_id=user.id,
        chat_id=chat.id,
        first_name=user.first_name,
        last_name=user.last_name,
        username=user.username,
        language_code=user.language_code,
    )


def customer_message(message: Message, person: Person) -> CustomerMessage:
    reply = message.reply_to_message
    return CustomerMessage(
        person=person,
        text=text_of(message),
        media=media_of(message),
        message_id=message.message_id,
        reply_to_message_id=reply.message_id if reply is not None else None,
    )


def tap_of(update: Update) -> Tap:
    query = update.callback_query
    if query is None:
        raise ValueError("not a button tap")
    message = query.message
    return Tap(
        callback_query_id=query.id,
        chat_id=message.chat.id if message is not None else 0,
        message_id=message.message_id if message is not None else None,
    )


def spot_of(message: Message) -> StaffSpot:
    """Where in the staff chat a message was written and what it points at."""
    reply = message.reply_to_message
    # In a forum, a message outside any topic "replies" to the topic's creation message.
    if reply is not None and reply.forum_topic_created is not None:
        reply = None
    return StaffSpot(
        chat_id=message.chat_id,
        thread_id=message.message_thread_id if message.is_topic_message else None,
        reply_to_message_id=reply.message_id if reply is not None else None,
        message_id=message.message_id,
        reply_to_bot=bool(reply is not None and reply.from_user and reply.from_user.is_bot),
    )
