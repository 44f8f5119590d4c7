"""Plain data that leaves a database session."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from crm.models import Customer, Message, Ticket, TicketStatus


@dataclass(frozen=True, slots=True)
class CustomerInfo:
    id: int
    telegram_user_id: int | None
    chat_id: int | None
    first_name: str
    display_name: str
    username: str | None
    language: str

    @classmethod
    def of(cls, row: Customer) -> CustomerInfo:
        return cls(
            id=row.id,
            telegram_user_id=row.telegram_user_id,
            chat_id=row.telegram_chat_id,
            first_name=row.first_name,
            display_name=row.display_name,
            username=row.telegram_username,
            language=row.language,
        )


@dataclass(frozen=True, slots=True)
class TicketInfo:
    id: int
    number: int
    status: TicketStatus
    customer_id: int
    created_at: datetime
    priority: int
    category: str | None = None
    category_confidence: float | None = None
    sentiment: str | None = None
    urgency: str | None = None
    summary: str | None = None
    assignee_id: int | None = None
    assignee_name: str | None = None
    staff_chat_id: int | None = None
    staff_thread_id: int | None = None
    staff_card_message_id: int | None = None
    first_response_at: datetime | None = None
    resolved_at: datetime | None = None
    last_customer_message_at: datetime | None = None
    resolution: str | None = None

    @classmethod
    def of(cls, row: Ticket, *, assignee_name: str | None = None) -> TicketInfo:
        if row.number is None:
            raise ValueError("ticket has no number yet (not flushed)")
        return cls(
            id=row.id,
            number=row.number,
            status=TicketStatus(row.status),
            customer_id=row.customer_id,
            created_at=row.created_at,
            priority=row.priority,
            category=row.category,
            category_confidence=row.category_confidence,
            sentiment=row.sentiment,
            urgency=row.urgency,
            summary=row.summary,
            assignee_id=row.assignee_id,
            assignee_name=assignee_name,
            staff_chat_id=row.staff_chat_id,
            staff_thread_id=row.staff_thread_id,
            staff_card_message_id=row.staff_card_message_id,
            first_response_at=row.first_response_at,
            resolved_at=row.resolved_at,
            last_customer_message_at=row.last_customer_message_at,
            resolution=row.resolution,
        )

    @property
    def is_active(self) -> bool:
        return self.status in (TicketStatus.OPEN, TicketStatus.PENDING, TicketStatus.ESCALATED)


@dataclass(frozen=True, slots=True)
class MessageInfo:
    id: int
    ticket_id: int | None
    customer_id: int
    direction: str
    text: str
    media_kind: str | None
    media_file_id: str | None
    customer_chat_id: int | None
    customer_message_id: int | None
    staff_message_id: int | None
    created_at: datetime

    @classmethod
    def of(cls, row: Message) -> MessageInfo:
        return cls(
            id=row.id,
            ticket_id=row.ticket_id,
            customer_id=row.customer_id,
            direction=row.direction,
            text=row.text,
            media_kind=row.media_kind,
            media_file_id=row.media_file_id,
            customer_chat_id=row.customer_chat_id,
            customer_message_id=row.customer_message_id,
            staff_message_id=row.staff_message_id,
            created_at=row.created_at,
        )


@dataclass(frozen=True, slots=True)
class PastTicket:
    number: int
    status: TicketStatus
    created_at: datetime
    rating: int | None


@dataclass(frozen=True, slots=True)
class TicketCard:
    """Everything the staff card shows about a ticket and its customer."""

    ticket: TicketInfo
    customer: CustomerInfo
    earlier: list[PastTicket] = field(default_factory=list)
    entities: list[tuple[str, str]] = field(default_factory=list)  # (label, masked text)

    @property
    def earlier_ratings(self) -> list[int]:
        return [p.rating for p in self.earlier if p.rating is not None]


@dataclass(frozen=True, slots=True)
class QueueItem:
    ticket: TicketInfo
    customer_name: str
    waiting_since: datetime


@dataclass(frozen=True, slots=True)
class MessageAnalysis:
    """What the understanding of a message produced, as plain values the CRM stores."""

    language: str
    category: str
    category_confidence: float
    sentiment: str
    sentiment_confidence: float
    urgency: str
    entities: list[dict[str, object]]
    summary: str = ""
