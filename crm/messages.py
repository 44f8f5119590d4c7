"""Messages: everything said on a ticket, stored before anything else happens to it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm.models import AuthorKind, Direction, Message


@dataclass(frozen=True, slots=True)
class Media:
    """A Telegram file reference; kind is photo, document, voice, video, audio or sticker."""

    kind: str
    file_id: str
    file_unique_id: str | None = None
    file_name: str | None = None


async def get(session: AsyncSession, *, message_id: int) -> Message:
    return await session.get_one(Message, message_id)


async def create(
    session: AsyncSession,
    *,
    customer_id: int,
    direction: Direction,
    author_kind: AuthorKind,
    text: str,
    now: datetime,
    ticket_id: int | None = None,
    agent_id: int | None = None,
    media: Media | None = None,
    customer_chat_id: int | None = None,
    customer_message_id: int | None = None,
    staff_chat_id: int | None = None,
    staff_message_id: int | None = None,
) -> Message:
    message = Message(
        customer_id=customer_id,
        ticket_id=ticket_id,
        direction=direction,
        author_kind=author_kind,
        agent_id=agent_id,
        text=text,
        media_kind=media.kind if media else None,
        media_file_id=media.file_id if media else None,
        media_file_unique_id=media.file_unique_id if media else None,
        media_file_name=media.file_name if media else None,
        customer_chat_id=customer_chat_id,
        customer_message_id=customer_message_id,
        staff_chat_id=staff_chat_id,
        staff_message_id=staff_message_id,
        created_at=now,
    )
    session.add(message)
    await session.flush()
    return message


async def set_staff_copy(
    session: AsyncSession, *, message_id: int, staff_chat_id: int, staff_message_id: int
) -> None:
    message = await get(session, message_id=message_id)
    message.staff_chat_id = staff_chat_id
    message.staff_message_id = staff_message_id
    await session.flush()


async def set_customer_copy(
    session: AsyncSession, *, message_id: int, customer_chat_id: int, customer_message_id: int
) -> None:
    message = await get(session, message_id=message_id)
    message.customer_chat_id = customer_chat_id
    message.customer_message_id = customer_message_id
    await session.flush()


async def customer_texts(session: AsyncSession, *, ticket_id: int) -> list[str]:
    result = await session.execute(
        select(Message.text)
        .where(Message.ticket_id == ticket_id, Message.direction == Direction.INBOUND)
        .order_by(Message.created_at, Message.id)
    )
    return [t for t in result.scalars() if t]
