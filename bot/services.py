"""The typed state every handler and job shares, built once at start-up."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from telegram import Bot
from telegram.error import TelegramError
from telegram.ext import CallbackContext, ExtBot

from crm import needs, records
from crm.db import SessionFactory, create_engine, create_session_factory, session_scope
from crm.needs import NeedsModel
from crm.records import CustomerRecord
from crm.support.flows import Desk
from crm.support.outcomes import Outcome
from crm.support.runner import FlowRunner
from nlp.analysis import Analyzer
from nlp.knowledge import KnowledgeBase
from quality.stats import BusinessHours
from settings import Settings

AGENT_STATUSES = {"creator", "administrator", "member"}
T = TypeVar("T")
log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class StaffChat:
    """What Kefu knows about the staff chat: whether it has forum topics, and who may act in it."""

    chat_id: int | None
    agent_ids: frozenset[int]
    cache_seconds: float = 300.0
    former_ids: set[int] = field(default_factory=set)
    on_move: list[Callable[[int, int], None]] = field(default_factory=list)
    _is_forum: bool | None = None
    _members: dict[int, tuple[bool, float]] = field(default_factory=dict)
    _postings: int = 0
    _posted: asyncio.Condition = field(default_factory=asyncio.Condition)

    @asynccontextmanager
    async def posting(self) -> AsyncIterator[None]:
        """Mark a post into the staff chat whose message ids are not recorded yet."""
        self._postings += 1
        try:
            yield
        finally:
            self._postings -= 1
            async with self._posted:
                self._posted.notify_all()

    async def settle_postings(self) -> bool:
        """Wait (up to 10 s) until posts in flight are recorded: an agent may answer that fast.

        Returns False when nothing was in flight (so a second look would find nothing new).
        """
        if self._postings == 0:
            return False
        try:
            async with asyncio.timeout(10), self._posted:
                await self._posted.wait_for(lambda: self._postings == 0)
        except TimeoutError:
            return False
        return True

    async def is_forum(self, bot: Bot) -> bool:
        if self.chat_id is None:
            return False
        if self._is_forum is None:
            chat = await bot.get_chat(self.chat_id)
            self._is_forum = bool(chat.is_forum)
        return self._is_forum

    def moved_to(self, new_chat_id: int) -> None:
        """Telegram moved the staff chat (a group became a supergroup): follow it."""
        old = self.chat_id
        if old is None or old == new_chat_id:
            return
        self.former_ids.add(old)
        self.chat_id = new_chat_id
        self._is_forum = None
        self._members.clear()
        for callback in self.on_move:
            callback(old, new_chat_id)

    def forget_forum(self) -> None:
        """Topics were switched off (Telegram said the chat is not a forum)."""
        self._is_forum = False

    async def is_agent(self, bot: Bot, user_id: int) -> bool:
        """``KEFU_AGENT_IDS`` when set, else current members of the staff chat (cached briefly)."""
        if self.agent_ids:
            return user_id in self.agent_ids
        if self.chat_id is None:
            return False
        cached = self._members.get(user_id)
        now = time.monotonic()
        if cached is not None and now - cached[1] < self.cache_seconds:
            return cached[0]
        try:
            member = await bot.get_chat_member(self.chat_id, user_id)
            allowed = member.status in AGENT_STATUSES
        except TelegramError:
            allowed = False
        self._members[user_id] = (allowed, now)
        return allowed


@dataclass
class NeedsModelCache:
    """The need-prediction model in use, reloaded when ``needs train`` publishes a new one."""

    models_dir: Path
    _version: str | None = None
    _model: NeedsModel | None = None

    def get(self) -> NeedsModel | None:
        """Blocking (file I/O): call through ``asyncio.to_thread``."""
        version = needs.current_version(self.models_dir)
        if version != self._version:
            self._model = needs.load_current(self.models_dir) if version else None
            self._version = version
        return self._model


@dataclass
class AppServices:
    settings: Settings
    engine: AsyncEngine
    session_factory: SessionFactory
    hours: BusinessHours
    staff: StaffChat
    needs_models: NeedsModelCache
    analyzer: Analyzer | None = None
    knowledge: KnowledgeBase | None = None
    clock: Callable[[], datetime] = utcnow
    read_factory: SessionFactory | None = None  # SQLite: read-only connections beside the writer
    runner: FlowRunner = field(init=False)
    _listeners: list[Callable[[Outcome], None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.runner = FlowRunner(self.session_factory, clock=self.now, on_commit=self._committed)

    def _committed(self, outcome: Outcome) -> None:
        for listener in self._listeners:
            listener(outcome)

    def on_commit(self, listener: Callable[[Outcome], None]) -> None:
        """Be told when a flow committed effects (delivery wakes up)."""
        self._listeners.append(listener)

    @property
    def desk(self) -> Desk:
        """How the desk works, for the flows."""
        settings = self.settings
        return Desk(
            hours=self.hours,
            knowledge=self.knowledge,
            auto_answer=settings.auto_answer,
            auto_answer_min_confidence=settings.auto_answer_min_confidence,
            default_language=settings.default_language,
            agent_signature=settings.agent_signature,
            categories=self.analyzer.categories if self.analyzer is not None else (),
        )

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """One unit of work, committed by the wiring; services only flush."""
        async with session_scope(self.session_factory) as session:
            yield session

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A read-only unit of work (on SQLite, one of the reader connections: it never waits
        behind the writer)."""
        async with session_scope(self.read_factory or self.session_factory) as session:
            yield session

    def now(self) -> datetime:
        return self.clock()

    async def needs_model(self) -> NeedsModel | None:
        try:
            return await asyncio.to_thread(self.needs_models.get)
        except needs.NeedsError:
            log.warning("the need model could not be loaded", exc_info=True)
            return None

    async def customer_record(self, customer_id: int) -> CustomerRecord | None:
        """The CRM record shown on staff cards (orders, lifetime value, predicted need)."""
        model = await self.needs_model()
        async with self.read() as session:
            return await records.customer_record(
                session, customer_id=customer_id, model=model, now=self.now()
            )

    async def in_worker(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """Run database + CPU-heavy work (scoring every customer) in a worker thread with its
        own event loop and connection, so the bot keeps answering meanwhile."""

        async def run() -> T:
            engine = create_engine(self.settings.resolved_database_url)
            try:
                async with session_scope(create_session_factory(engine)) as session:
                    return await work(session)
            finally:
                await engine.dispose()

        return await asyncio.to_thread(asyncio.run, run())

    async def aclose(self) -> None:
        await self.engine.dispose()
        if self.read_factory is not None and self.read_factory.kw.get("bind") is not None:
            await self.read_factory.kw["bind"].dispose()


class BotData:
    """``context.bot_data``: PTB instantiates it without arguments; the app sets ``services``."""

    services: AppServices


class KefuContext(
    CallbackContext[ExtBot[None], dict[object, object], dict[object, object], BotData]
):
    @property
    def services(self) -> AppServices:
        return self.bot_data.services
