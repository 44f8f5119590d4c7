"""The support flows as the bot runs them: each through the flow runner, in one transaction, its
effects stored in the outbox; the records read back afterwards from a fresh session."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from crm import tickets
from crm.db import SessionFactory, session_scope
from crm.messages import Media
from crm.models import Customer, Message, OutboxRow, Rating, Ticket
from crm.support import flows
from crm.support.flows import CustomerMessage, Desk, Person, StaffMember, StaffSpot, Tap
from crm.support.outcomes import Effect, Outcome, effect_from_payload
from crm.support.runner import FlowRunner
from crm.support.understanding import Understanding
from nlp.analysis import Analysis, Sentiment, Urgency
from nlp.entities import Entity
from nlp.knowledge import KnowledgeBase
from quality.stats import BusinessHours

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # a Monday
STAFF_CHAT = -100500
CATEGORIES = ("account_login", "billing", "complaint", "orders_delivery", "other")
RESET_ANSWER = "Use the reset link on the sign-in page."
KNOWLEDGE = KnowledgeBase(
    answers={"account_login": {"en": RESET_ANSWER, "zh": "请使用登录页上的重置链接。"}}
)
DESK = Desk(
    hours=BusinessHours.parse("", ZoneInfo("UTC")),
    knowledge=KNOWLEDGE,
    categories=CATEGORIES,
)
ALICE = StaffMember(900, "Alice", "alice", allowed=True)
BOB = StaffMember(901, "Bob", None, allowed=True)
STRANGER = StaffMember(902, "Mallory", None, allowed=False)


def person(user_id: int, *, username: str | None = None, language: str | None = None) -> Person:
    return Person(
        telegram_user_id=user_id,
        chat_id=user_id,
        first_name=f"User {user_id}",
        username=username,
        language_code=language,
    )


def understood(
    category: str,
    confidence: float,
    *,
    sentiment: str = "neutral",
    urgency: str = "normal",
    language: str = "en",
    entities: tuple[Entity, ...] = (),
    ticket_summary: str | None = None,
) -> Understanding:
    """What the analyzer would have made of a message (the flows only store it)."""
    analysis = Analysis(
        language=language,
        category=category,
        category_confidence=confidence,
        sentiment=Sentiment(sentiment),
        sentiment_confidence=0.9,
        urgency=Urgency(urgency),
        urgency_reasons=(),
        entities=entities,
        summary="summary",
        key_phrases=(),
    )
    return Understanding(analysis, ticket_summary)


def tap(chat_id: int, message_id: int | None = 555) -> Tap:
    return Tap(callback_query_id=f"q{chat_id}-{message_id}", chat_id=chat_id, message_id=message_id)


@dataclass
class Support:
    """One support desk on a real database; ``now`` is the time every flow is run at."""

    factory: SessionFactory
    desk: Desk = DESK
    now: datetime = T0
    runner: FlowRunner = field(init=False)
    _message_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        self.runner = FlowRunner(self.factory, clock=lambda: self.now)

    def tick(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now

    # ------------------------------------------------------------------ customers

    async def write(
        self,
        user_id: int,
        text: str = "",
        *,
        media: Media | None = None,
        reply_to: int | None = None,
        message_id: int | None = None,
        understanding: Understanding | None = None,
        username: str | None = None,
        desk: Desk | None = None,
    ) -> Outcome:
        """The customer sends a message (each with its own Telegram message id unless given)."""
        incoming = CustomerMessage(
            person=person(user_id, username=username),
            text=text,
            media=media,
            message_id=message_id if message_id is not None else next(self._message_ids),
            reply_to_message_id=reply_to,
        )
        now = self.now
        return await self.runner.run(
            lambda s: flows.customer_wrote(
                s, desk=desk or self.desk, incoming=incoming, understood=understanding, now=now
            )
        )

    async def new_ticket(self, user_id: int) -> Outcome:
        now = self.now
        return await self.runner.run(
            lambda s: flows.new_ticket_asked(s, desk=self.desk, person=person(user_id), now=now)
        )

    async def human(self, user_id: int) -> Outcome:
        now = self.now
        return await self.runner.run(
            lambda s: flows.human_asked(s, desk=self.desk, person=person(user_id), now=now)
        )

    async def rate(self, user_id: int, ticket_id: int, score: int) -> Outcome:
        now = self.now
        return await self.runner.run(
            lambda s: flows.rated(
                s,
                desk=self.desk,
                person=person(user_id),
                tap=tap(user_id),
                ticket_id=ticket_id,
                score=score,
                now=now,
            )
        )

    async def verdict(
        self, user_id: int, ticket_id: int, *, solved: bool, language: str | None = "en"
    ) -> Outcome:
        now = self.now
        return await self.runner.run(
            lambda s: flows.verdict(
                s,
                desk=self.desk,
                person=person(user_id),
                tap=tap(user_id),
                ticket_id=ticket_id,
                solved=solved,
                language=language,
                now=now,
            )
        )

    # ------------------------------------------------------------------ agents

    async def give_place(
        self, ticket_id: int, *, thread_id: int, card_message_id: int
    ) -> StaffSpot:
        """What delivery writes back once the ticket's topic and card exist; a spot in it."""
        async with session_scope(self.factory) as session:
            await tickets.set_staff_refs(
                session,
                ticket_id=ticket_id,
                chat_id=STAFF_CHAT,
                thread_id=thread_id,
                card_message_id=card_message_id,
            )
        return StaffSpot(chat_id=STAFF_CHAT, thread_id=thread_id, reply_to_message_id=None)

    async def agent_writes(
        self,
        text: str,
        *,
        spot: StaffSpot,
        message_id: int | None = None,
        member: StaffMember = ALICE,
    ) -> Outcome:
        now = self.now
        written = StaffSpot(
            chat_id=spot.chat_id,
            thread_id=spot.thread_id,
            reply_to_message_id=spot.reply_to_message_id,
            message_id=message_id,
            reply_to_bot=spot.reply_to_bot,
        )
        return await self.runner.run(
            lambda s: flows.agent_wrote(
                s, desk=self.desk, member=member, spot=written, text=text, media=None, now=now
            )
        )

    async def staff(
        self,
        command: str,
        *,
        spot: StaffSpot | None = None,
        ticket_id: int | None = None,
        argument: str = "",
        member: StaffMember = ALICE,
        button: Tap | None = None,
    ) -> Outcome:
        """A staff command written in ``spot`` or (like the console) for ``ticket_id``."""
        now = self.now
        where = spot or StaffSpot(chat_id=STAFF_CHAT, thread_id=None, reply_to_message_id=None)
        return await self.runner.run(
            lambda s: flows.staff_command(
                s,
                desk=self.desk,
                member=member,
                spot=where,
                command=command,
                argument=argument,
                tap=button,
                ticket_id=ticket_id,
                now=now,
            )
        )

    # ------------------------------------------------------------------ records

    async def read(self, query: Any) -> list[Any]:
        async with self.factory() as session:
            return list((await session.execute(query)).scalars())

    async def ticket(self, ticket_id: int) -> Ticket:
        async with self.factory() as session:
            return await session.get_one(Ticket, ticket_id)

    async def customer(self, user_id: int) -> Customer:
        async with self.factory() as session:
            result = await session.execute(
                select(Customer).where(Customer.telegram_user_id == user_id)
            )
            return result.scalar_one()

    async def messages(self, ticket_id: int) -> list[Message]:
        return await self.read(
            select(Message).where(Message.ticket_id == ticket_id).order_by(Message.id)
        )

    async def all_tickets(self) -> list[Ticket]:
        return await self.read(select(Ticket).order_by(Ticket.id))

    async def ratings(self) -> list[Rating]:
        return await self.read(select(Rating).order_by(Rating.id))

    async def count(self, model: Any) -> int:
        async with self.factory() as session:
            return int(await session.scalar(select(func.count()).select_from(model)) or 0)

    async def outbox(self) -> list[Effect]:
        """Every effect stored in the outbox, in the order delivery would carry them out."""
        rows: list[OutboxRow] = await self.read(select(OutboxRow).order_by(OutboxRow.id))
        return [effect_from_payload(row.kind, row.payload) for row in rows]

    async def destinations(self) -> list[tuple[str, str, str]]:
        rows: list[OutboxRow] = await self.read(select(OutboxRow).order_by(OutboxRow.id))
        return [(row.kind, row.destination, str(row.lane)) for row in rows]
