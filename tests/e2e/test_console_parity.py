"""The console and Telegram give the same outcome for the same sequence of inputs (issue 8).

Each row of :data:`SCENARIOS` is a list of steps in a small neutral vocabulary. A row is carried
out twice, each time on a fresh database: once through :class:`bot.console.ConsoleSession`, once
through the real python-telegram-bot Application against the fake Bot API (the customer writes
and taps the buttons the bot actually sent; the agent writes in the ticket's topic, or replies to
its card in a group without topics). Compared is the outcome, not the rendering: the records at
the end, and the plain text of what the customer was told after each step (with the kind of
buttons under it). Each row also states the sentences and ticket states it expects, so two front
ends that went wrong the same way do not pass either.

Steps::

    ("customer", TEXT)      the customer writes TEXT
    ("agent", TEXT)         an agent answers on the customer's ticket in work
    ("claim",) ("resolve",) ("note", TEXT) ("category", NAME)    agent commands on that ticket
    ("reopen",)             an agent reopens the customer's latest ticket
    ("rate", N)             the customer rates their latest ticket N (a tap on the button)
    ("rate", N, TEXT)       ... and adds TEXT as a comment
    ("yes",) ("no",)        the customer's answer under an automatic answer
    ("new",) ("human",) ("status",) ("start",) ("language",)    the customer's commands
"""

from __future__ import annotations

import asyncio
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from bot.app import build_services
from bot.console import KEYBOARD_HINTS, ConsoleSession
from crm import customers, tickets
from crm.db import create_engine
from crm.models import (
    Base,
    CategoryCorrection,
    Customer,
    InboxUpdate,
    Message,
    OutboxRow,
    OutboxStatus,
    Rating,
    Ticket,
)
from nlp.analysis import Analyzer
from settings import Settings
from tests.e2e.conftest import Kefu, make_settings, running_kefu
from tests.fakebotapi import JSON, FakeBotAPI, Where

Step = tuple[str] | tuple[str, str] | tuple[str, int] | tuple[str, int, str]
CUSTOMER_COMMANDS = ("new", "human", "status", "start", "language")
Told = tuple[str, str | None]  # the plain text the customer read, the buttons under it
TicketEnd = tuple[int, str, str | None]  # number, status, resolution

MONDAY_MORNING = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # inside any business hours
CUSTOMER_NAME = "Bob"
AGENT_NAME = "Alice"

ORDER = "My order has not arrived"
CHARGED = "I was charged twice for my subscription"
PASSWORD = "How do I reset my password?"  # the knowledge base answers it (category account)


@dataclass(frozen=True)
class Scenario:
    steps: tuple[Step, ...]
    told: tuple[str, ...]  # what the customer reads, as labels (see ``label``)
    end: tuple[TicketEnd, ...]  # the tickets at the end
    auto_answer: bool = False
    forum: bool = True  # a staff chat with topics; else the agent replies to the card


SCENARIOS = [
    pytest.param(
        Scenario(
            steps=(
                ("customer", ORDER),
                ("agent", "Sorry Bob, checking it now"),
                ("customer", "It is order AB-123456"),
                ("claim",),
                ("note", "Carrier says Tuesday"),
                ("resolve",),
                ("rate", 5),
            ),
            told=(
                "ack #1001",
                '"Sorry Bob, checking it now"',
                "resolved #1001 [rating]",
                "rated 5/5",
                "comment_invite",
            ),
            end=((1001, "resolved", "agent"),),
        ),
        id="ack-agent-resolve-rate",
    ),
    pytest.param(
        Scenario(
            steps=(
                ("customer", CHARGED),
                ("category", "billing"),
                ("agent", "Refunded the second charge"),
                ("resolve",),
                ("rate", 3),
            ),
            told=(
                "ack #1001",
                '"Refunded the second charge"',
                "resolved #1001 [rating]",
                "rated 3/5",
                "comment_invite",
            ),
            end=((1001, "resolved", "agent"),),
            forum=False,
        ),
        id="group-without-topics-reply-to-card",
    ),
    pytest.param(
        Scenario(
            steps=(("customer", PASSWORD), ("yes",), ("customer", ORDER), ("status",)),
            told=(
                "auto_answer #1001 [solved]",
                "self_served #1001",
                "auto_answer #1002 [solved]",
                "status #1002",
            ),
            end=((1001, "resolved", "self_served"), (1002, "pending", None)),
            auto_answer=True,
        ),
        id="auto-answer-yes-self-served",
    ),
    pytest.param(
        Scenario(
            steps=(
                ("customer", PASSWORD),
                ("no",),
                ("agent", "I have sent you a new link"),
                ("resolve",),
                ("rate", 4),
            ),
            told=(
                "auto_answer #1001 [solved]",
                "escalated_after_answer #1001",
                '"I have sent you a new link"',
                "resolved #1001 [rating]",
                "rated 4/5",
                "comment_invite",
            ),
            end=((1001, "resolved", "agent"),),
            auto_answer=True,
        ),
        id="auto-answer-no-to-agents",
    ),
    pytest.param(
        Scenario(
            steps=(
                ("customer", PASSWORD),
                ("customer", "That did not work, the link has expired"),
                ("agent", "I have sent you a new link"),
                ("status",),
            ),
            told=(
                "auto_answer #1001 [solved]",
                "escalated_after_answer #1001",
                '"I have sent you a new link"',
                "status #1001",
            ),
            end=((1001, "pending", None),),
            auto_answer=True,
        ),
        id="auto-answer-then-writing-again-to-agents",
    ),
    pytest.param(
        Scenario(
            steps=(
                ("customer", ORDER),
                ("new",),
                ("customer", CHARGED),
                ("status",),
                ("agent", "Refunded the second charge"),
                ("resolve",),
                ("status",),
            ),
            told=(
                "ack #1001",
                "new_ticket",
                "ack #1002",
                "status #1001 #1002",
                '"Refunded the second charge"',
                "resolved #1002 [rating]",
                "status #1001",
            ),
            end=((1001, "open", None), (1002, "resolved", "agent")),
        ),
        id="new-then-second-ticket",
    ),
    pytest.param(
        Scenario(
            steps=(("customer", ORDER), ("human",), ("agent", "Hello, I am here"), ("status",)),
            told=(
                "ack #1001",
                "human_escalated #1001",
                '"Hello, I am here"',
                "status #1001",
            ),
            end=((1001, "pending", None),),
        ),
        id="human-after-ack",
    ),
    pytest.param(
        Scenario(
            steps=(("customer", PASSWORD), ("human",), ("agent", "Hello, I am here")),
            told=("auto_answer #1001 [solved]", "human_escalated #1001", '"Hello, I am here"'),
            end=((1001, "pending", None),),
            auto_answer=True,
        ),
        id="human-after-auto-answer",
    ),
    pytest.param(
        Scenario(
            steps=(("human",), ("status",), ("customer", ORDER), ("human",)),
            told=("human_no_ticket", "status_none", "ack #1001", "human_escalated #1001"),
            end=((1001, "escalated", None),),
        ),
        id="human-without-ticket",
    ),
    pytest.param(
        Scenario(
            steps=(
                ("customer", ORDER),
                ("resolve",),
                ("reopen",),
                ("agent", "One more thing: it ships today"),
                ("resolve",),
                ("rate", 2),
            ),
            told=(
                "ack #1001",
                "resolved #1001 [rating]",
                '"One more thing: it ships today"',
                "resolved #1001 [rating]",
                "rated 2/5",
                "comment_invite",
            ),
            end=((1001, "resolved", "agent"),),
        ),
        id="resolve-reopen-resolve",
    ),
    pytest.param(
        Scenario(
            steps=(("customer", ORDER), ("resolve",), ("rate", 5), ("rate", 1)),
            told=(
                "ack #1001",
                "resolved #1001 [rating]",
                "rated 5/5",
                "comment_invite",
                "[refused] already_rated",
            ),
            end=((1001, "resolved", "agent"),),
        ),
        id="rated-twice",
    ),
    pytest.param(
        Scenario(
            steps=(("start",), ("customer", ORDER), ("status",)),
            told=("start", "ack #1001", "status #1001"),
            end=((1001, "open", None),),
        ),
        id="start",
    ),
    # Rows that found differences (fixed in the console: it now runs the same flows for /yes,
    # /no, /rate N COMMENT and /language).
    pytest.param(
        Scenario(
            steps=(
                ("customer", PASSWORD),
                ("customer", "That did not work, the link has expired"),
                ("yes",),
            ),
            told=(
                "auto_answer #1001 [solved]",
                "escalated_after_answer #1001",
                "[refused] already_answered",
            ),
            end=((1001, "open", None),),
            auto_answer=True,
        ),
        id="late-yes-after-writing-again",
    ),
    pytest.param(
        Scenario(
            steps=(("customer", PASSWORD), ("new",), ("yes",)),
            told=("auto_answer #1001 [solved]", "new_ticket", "self_served #1001"),
            end=((1001, "resolved", "self_served"),),
            auto_answer=True,
        ),
        id="yes-after-new",
    ),
    pytest.param(
        Scenario(
            steps=(("customer", ORDER), ("resolve",), ("rate", 4, "Quick and friendly")),
            told=(
                "ack #1001",
                "resolved #1001 [rating]",
                "rated 4/5",
                "comment_invite",
                "comment_thanks",
            ),
            end=((1001, "resolved", "agent"),),
        ),
        id="rating-with-comment",
    ),
    pytest.param(
        Scenario(
            steps=(("language",),),
            told=("language_choose [languages]",),
            end=(),
        ),
        id="language",
    ),
]


class ScenarioError(Exception):
    """The row could not be carried out through Telegram, or Telegram did not do what the row
    says: never the difference a row's ``xfail(raises=AssertionError)`` expects."""


# ------------------------------------------------------------------------------ what was told

SENTENCES = (  # a fragment of each English sentence -> its label
    ("We've opened ticket", "ack"),
    ("Did this solve it?", "auto_answer"),
    ("glad that helped", "self_served"),
    ("is now with our team", "escalated_after_answer"),
    ("is now with a person", "human_escalated"),
    ("a person from our team will pick it up", "human_no_ticket"),
    ("has been resolved", "resolved"),
    ("Thank you for your rating", "rated"),
    ("Reply to this message with a comment", "comment_invite"),
    ("passed your comment", "comment_thanks"),
    ("next message starts a new ticket", "new_ticket"),
    ("Your open tickets", "status"),
    ("You have no open tickets", "status_none"),
    ("already rated", "already_rated"),
    ("already have your answer", "already_answered"),
    ("This is customer support", "start"),
    ("Choose your language", "language_choose"),
    ("something went wrong", "error"),
)


def label(told: Told) -> str:
    """Which sentence the customer read (with its ticket numbers, score and buttons); anything
    else (an agent's words) quoted."""
    words, keyboard = told
    tag = ""
    if words.startswith("[refused] "):
        tag, words = "[refused] ", words.removeprefix("[refused] ")
    name = next((n for fragment, n in SENTENCES if fragment in words), None)
    found = [name, *re.findall(r"#\d+|\d/5", words)] if name else [f'"{words}"']
    result = tag + " ".join(found)
    return f"{result} [{keyboard}]" if keyboard else result


# ------------------------------------------------------------------------------ records


@dataclass(frozen=True)
class Records:
    customers: int
    tickets: list[tuple[object, ...]]
    messages: list[tuple[object, ...]]
    ratings: list[tuple[object, ...]]
    corrections: list[tuple[object, ...]]


async def records(session: AsyncSession) -> Records:
    """The final state, without ids, times, Telegram message ids or who the agent was."""
    numbered = aliased(Ticket)
    ticket_rows = await session.execute(
        select(
            Ticket.number,
            Ticket.status,
            Ticket.resolution,
            Ticket.is_current,
            Ticket.escalated_at.is_not(None),
            Ticket.first_response_at.is_not(None),
            Ticket.resolved_at.is_not(None),
            Ticket.assignee_id.is_not(None),
            Ticket.reopened_count,
            Ticket.subject,
            Ticket.category,
            Ticket.priority,
            Ticket.sentiment,
            Ticket.urgency,
            Ticket.summary,
        ).order_by(Ticket.number)
    )
    message_rows = await session.execute(
        select(numbered.number, Message.direction, Message.author_kind, Message.text)
        .outerjoin(numbered, numbered.id == Message.ticket_id)
        .order_by(Message.id)
    )
    rating_rows = await session.execute(
        select(Ticket.number, Rating.score, Rating.comment)
        .join(Ticket, Ticket.id == Rating.ticket_id)
        .order_by(Rating.id)
    )
    correction_rows = await session.execute(
        select(Ticket.number, CategoryCorrection.previous_category, CategoryCorrection.category)
        .join(Ticket, Ticket.id == CategoryCorrection.ticket_id)
        .order_by(CategoryCorrection.id)
    )
    return Records(
        customers=len((await session.scalars(select(Customer.id))).all()),
        tickets=[tuple(r) for r in ticket_rows],
        messages=[tuple(r) for r in message_rows],
        ratings=[tuple(r) for r in rating_rows],
        corrections=[tuple(r) for r in correction_rows],
    )


@dataclass
class Run:
    """One front end's outcome: what the customer was told after each step, and the records."""

    told: list[list[Told]]
    records: Records


def clock() -> Callable[[], datetime]:
    """Both runs start on the same Monday morning (``/status`` shows opening times)."""
    began = time.monotonic()
    return lambda: MONDAY_MORNING + timedelta(seconds=time.monotonic() - began)


# ------------------------------------------------------------------------------ the console


def console_line(step: Step) -> str:
    match step:
        case ("customer", str(words)):
            assert not words.startswith("/"), "a customer text step is not a command"
            return words
        case ("agent", str(words)):
            return f"/agent {words}"
        case ("note" | "category" as command, str(argument)):
            return f"/{command} {argument}"
        case ("rate", int(score)):
            return f"/rate {score}"
        case ("rate", int(score), str(comment)):
            return f"/rate {score} {comment}"
        case ("claim" | "resolve" | "reopen" | "yes" | "no",):
            return f"/{step[0]}"
        case (command,) if command in CUSTOMER_COMMANDS:
            return f"/{command}"
    raise AssertionError(f"unknown step {step!r}")


HINTS = {hint: kind for kind, hint in KEYBOARD_HINTS.items()}


async def through_console(
    scenario: Scenario, settings: Settings, analyzer: Analyzer, user_id: int
) -> Run:
    services = build_services(settings, analyzer=analyzer)
    services.clock = clock()
    told: list[list[Told]] = []

    def out(who: str, words: str) -> None:
        if who == "staff chat":
            return
        if who == "bot → customer" and words in HINTS:  # the buttons under the last message
            last_words, _ = told[-1][-1]
            told[-1][-1] = (last_words, HINTS[words])
            return
        refused = {"bot → customer": "", "error": "[refused] "}.get(who, f"[{who}] ")
        told[-1].append((refused + words, None))

    console = ConsoleSession(
        services,
        user_id=user_id,
        name=CUSTOMER_NAME,
        language="en",
        agent_name=AGENT_NAME,
        out=out,
    )
    try:
        for step in scenario.steps:
            told.append([])
            assert await console.handle(console_line(step)) is True
        async with services.session() as session:
            return Run(told, await records(session))
    finally:
        await services.aclose()


# ------------------------------------------------------------------------------ Telegram

KEYBOARD_OF_BUTTON = {"solved": "solved", "rate": "rating", "lang": "languages"}


def buttons(message: JSON) -> list[str]:
    rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
    return [str(b.get("callback_data")) for row in rows for b in row]


class Telegram:
    """One customer and one agent acting through the fake Bot API on a running Kefu."""

    def __init__(
        self, kefu: Kefu, *, customer: JSON, agent: JSON, staff: JSON, forum: bool
    ) -> None:
        self.kefu, self.api = kefu, kefu.api
        self.customer, self.agent, self.staff, self.forum = customer, agent, staff, forum
        self.seen = 0  # the last customer-chat message already reported
        self.taps: list[str] = []  # the customer's button taps in this step

    async def do(self, step: Step) -> list[Told]:
        api, customer = self.api, self.customer
        match step:
            case ("customer", str(words)):
                api.user_sends_text(customer, words)
            case (command,) if command in CUSTOMER_COMMANDS:
                api.user_sends_text(customer, f"/{command}")
            case ("yes" | "no",):
                message, data = self.button(lambda d: re.fullmatch(rf"solved:\d+:{step[0]}:\w+", d))
                self.taps.append(api.user_taps_button(customer, message, data))
            case ("rate", int(score)):
                await self.rate(score)
            case ("rate", int(score), str(comment)):
                await self.rate(score)
                invite = self.latest_saying("Reply to this message with a comment")
                api.user_sends_text(customer, comment, reply_to_message_id=invite["message_id"])
            case ("agent", str(words)):
                api.user_sends_text(self.agent, words, **await self.in_ticket())
            case ("note" | "category" as command, str(argument)):
                api.user_sends_text(self.agent, f"/{command} {argument}", **await self.in_ticket())
            case ("claim" | "resolve",):
                api.user_sends_text(self.agent, f"/{step[0]}", **await self.in_ticket())
            case ("reopen",):
                api.user_sends_text(self.agent, "/reopen", **await self.in_ticket(latest=True))
            case _:
                raise AssertionError(f"unknown step {step!r}")
        await self.settled()
        return self.new_to_customer()

    async def rate(self, score: int) -> None:
        message, data = self.button(lambda d: re.fullmatch(rf"rate:\d+:{score}", d))
        self.taps.append(self.api.user_taps_button(self.customer, message, data))
        await self.settled()

    def button(self, wanted: Callable[[str], object]) -> tuple[JSON, str]:
        """The newest message in the customer's chat with a matching button, and its data."""
        for message in reversed(self.api.messages_in(self.customer["id"])):
            for data in buttons(message):
                if wanted(data):
                    return message, data
        raise AssertionError("the customer has no such button")

    def latest_saying(self, fragment: str) -> JSON:
        for message in reversed(self.api.messages_in(self.customer["id"])):
            if fragment in (message.get("text") or ""):
                return message
        raise AssertionError(f"the customer was never told {fragment!r}")

    async def in_ticket(self, *, latest: bool = False) -> Where:
        """Where an agent writes about the customer's ticket in work (for /reopen: their latest
        ticket), the ticket the console's agent commands act on: its topic, or a reply to its
        card."""
        async with self.kefu.services.session() as session:
            found = await customers.get_by_telegram_id(
                session, telegram_user_id=self.customer["id"]
            )
            assert found is not None, "no customer yet"
            ticket = (
                await tickets.get_latest_for_customer(session, customer_id=found.id)
                if latest
                else await tickets.get_active_for_customer(session, customer_id=found.id)
            )
            assert ticket is not None, "the customer has no ticket in work"
            thread, card = ticket.staff_thread_id, ticket.staff_card_message_id
        if self.forum:
            assert thread is not None, f"ticket #{ticket.number} has no topic"
            return Where(chat_id=self.staff["id"], message_thread_id=thread)
        assert card is not None, f"ticket #{ticket.number} has no card"
        return Where(chat_id=self.staff["id"], reply_to_message_id=card)

    async def settled(self) -> None:
        """Every update taken in and handled, and every outbox row carried out."""
        api = self.api
        await api.wait_for(lambda: api.pending_updates == 0)
        deadline = time.monotonic() + 10
        while True:
            async with self.kefu.services.session() as session:
                unhandled = await session.scalar(
                    select(InboxUpdate.update_id).where(InboxUpdate.done_at.is_(None)).limit(1)
                )
                undelivered = await session.scalar(
                    select(OutboxRow.id).where(OutboxRow.status == OutboxStatus.PENDING).limit(1)
                )
            if unhandled is None and undelivered is None:
                break
            assert time.monotonic() < deadline, "Kefu did not settle within 10 s"
            await asyncio.sleep(0.02)
        await api.wait_idle(quiet=0.02)

    def new_to_customer(self) -> list[Told]:
        """The messages the customer got in this step, then the alerts their taps raised (the
        console prints a refusal where Telegram shows an alert)."""
        told: list[Told] = []
        for message in self.api.messages_in(self.customer["id"]):
            if message["message_id"] <= self.seen:
                continue
            self.seen = message["message_id"]
            kinds = [KEYBOARD_OF_BUTTON.get(d.split(":", 1)[0], d) for d in buttons(message)]
            words = message.get("text") or message.get("caption") or ""
            told.append((words, next(iter(kinds), None)))
        for query in self.taps:
            answer = self.api.callback_answers[query]
            if answer.get("show_alert") in (True, "true"):
                told.append((f"[refused] {answer.get('text')}", None))
        self.taps.clear()
        return told


async def through_telegram(
    scenario: Scenario, api: FakeBotAPI, settings: Settings, analyzer: Analyzer, people: JSON
) -> Run:
    async with running_kefu(settings, api, analyzer) as kefu:
        kefu.services.clock = clock()
        telegram = Telegram(
            kefu,
            customer=people["customer"],
            agent=people["agent"],
            staff=people["staff"],
            forum=scenario.forum,
        )
        try:
            told = [await telegram.do(step) for step in scenario.steps]
        except AssertionError as exc:
            raise ScenarioError(f"could not carry the row out in Telegram: {exc}") from exc
        async with kefu.services.session() as session:
            run = Run(told, await records(session))
    labels = [label(t) for step in run.told for t in step]
    ends = [r[:3] for r in run.records.tickets]
    if labels != list(scenario.told) or ends != list(scenario.end):
        raise ScenarioError(f"Telegram told {labels} and ended {ends}; the row says otherwise")
    return run


# ------------------------------------------------------------------------------ the test


async def another_database(url: str, tmp_path: Path, template: Path) -> str:
    """An empty, migrated database like ``url`` (a new SQLite copy; PostgreSQL emptied)."""
    if make_url(url).get_backend_name() == "sqlite":
        path = tmp_path / "telegram.db"
        shutil.copy(template, path)
        return f"sqlite+aiosqlite:///{path}"
    engine = create_engine(url)
    names = ", ".join(t.name for t in Base.metadata.sorted_tables)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    finally:
        await engine.dispose()
    return url


@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_console_and_telegram_give_the_same_outcome(
    scenario: Scenario,
    api: FakeBotAPI,
    database_url: str,
    sqlite_template: Path,
    analyzer: Analyzer,
    tmp_path: Path,
) -> None:
    agent = api.add_user(AGENT_NAME)
    customer = api.add_user(CUSTOMER_NAME, language_code="en")
    staff = api.add_supergroup("Support", is_forum=scenario.forum, members=[agent])
    people = {"customer": customer, "agent": agent, "staff": staff}

    def settings(url: str) -> Settings:
        return make_settings(
            api,
            url,
            tmp_path / "data",
            staff_chat_id=staff["id"],
            agent_ids=[agent["id"]],
            auto_answer=scenario.auto_answer,
        )

    console = await through_console(scenario, settings(database_url), analyzer, customer["id"])
    url = await another_database(database_url, tmp_path, sqlite_template)
    telegram = await through_telegram(scenario, api, settings(url), analyzer, people)

    # Telegram did what the row says (checked in through_telegram); so did the console ...
    assert [label(t) for step in console.told for t in step] == list(scenario.told)
    assert [r[:3] for r in console.records.tickets] == list(scenario.end)
    # ... and the same, step by step, word for word, record for record.
    assert telegram.told == console.told
    assert telegram.records == console.records
