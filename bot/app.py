"""All Telegram wiring in one place: handlers, error handler, update processing, rate limits."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from aiolimiter import AsyncLimiter
from sqlalchemy.ext.asyncio import AsyncSession
from telegram import BotCommand, BotCommandScopeAllPrivateChats, BotCommandScopeChat, Update
from telegram.constants import ChatType
from telegram.ext import (
    AIORateLimiter,
    Application,
    BaseUpdateProcessor,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot import jobs, keyboards, texts
from bot.handlers import customer, manager, records, staff
from bot.services import AppServices, BotData, KefuContext, NeedsModelCache, StaffChat
from crm import customers
from crm.db import create_engine, create_session_factory, is_sqlite
from crm.errors import KefuError
from crm.support import flows, inbox
from crm.support.outcomes import (
    AnswerButton,
    AnswerStaffButton,
    Effect,
    Outcome,
    Say,
    ToCustomer,
    ToStaffChat,
)
from nlp.analysis import Analyzer
from nlp.knowledge import KnowledgeBase
from quality.stats import BusinessHours
from settings import RateLimits, Settings

log = logging.getLogger(__name__)

KefuApplication = Application[Any, KefuContext, Any, Any, BotData, Any]
Callback = Callable[[Update, KefuContext], Coroutine[Any, Any, None]]


class PerChatUpdateProcessor(BaseUpdateProcessor):
    """Different chats concurrently, each chat strictly in order (a FIFO lock per chat).

    The chat's lock is taken *before* a concurrency slot, so a burst from one chat waits in its
    own queue instead of filling every slot and stalling the other chats.
    """

    def __init__(self, max_concurrent_updates: int = 64, max_tracked_chats: int = 10_000) -> None:
        super().__init__(max_concurrent_updates)
        self._locks: OrderedDict[int, asyncio.Lock] = OrderedDict()
        self._max_tracked = max_tracked_chats

    def _lock_for(self, key: int) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
            while len(self._locks) > self._max_tracked:
                oldest, old_lock = next(iter(self._locks.items()))
                if old_lock.locked():
                    break
                del self._locks[oldest]
        else:
            self._locks.move_to_end(key)
        return lock

    async def process_update(  # type: ignore[misc]  # PTB marks it final; the order matters here
        self, update: object, coroutine: Awaitable[Any]
    ) -> None:
        chat = update.effective_chat if isinstance(update, Update) else None
        if chat is None:
            await super().process_update(update, coroutine)
            return
        async with self._lock_for(chat.id):
            await super().process_update(update, coroutine)

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        await coroutine

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        self._locks.clear()


class TelegramRateLimiter(AIORateLimiter):
    """PTB's limiter (30/s overall, 20/min per group, retries on 429) plus 1/s per private chat."""

    def __init__(self) -> None:
        super().__init__(
            overall_max_rate=30, group_max_rate=20, group_time_period=60, max_retries=5
        )
        self._private: OrderedDict[int, AsyncLimiter] = OrderedDict()

    def _private_limiter(self, chat_id: int) -> AsyncLimiter:
        limiter = self._private.get(chat_id)
        if limiter is None:
            limiter = self._private[chat_id] = AsyncLimiter(1, 1)
            if len(self._private) > 10_000:
                self._private.popitem(last=False)
        return limiter

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, Any]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> Any:
        chat_id = data.get("chat_id")
        try:
            private_id = int(chat_id) if chat_id is not None else 0
        except (TypeError, ValueError):
            private_id = 0
        if private_id > 0 and endpoint.startswith(("send", "copy", "forward")):
            async with self._private_limiter(private_id):
                return await super().process_request(
                    callback, args, kwargs, endpoint, data, rate_limit_args
                )
        return await super().process_request(
            callback, args, kwargs, endpoint, data, rate_limit_args
        )


MODEL_RELOAD_SECONDS = 30


async def _reload_models(context: KefuContext) -> None:
    """Pick up text models trained since (``python main.py train``) without a restart."""
    analyzer = context.services.analyzer
    if analyzer is not None and await asyncio.to_thread(analyzer.reload_if_changed):
        log.info("new text models loaded")


def build_services(settings: Settings, *, analyzer: Analyzer | None = None) -> AppServices:
    """Everything handlers and jobs share. Loads (or, on first start, trains) the text models."""
    engine = create_engine(settings.resolved_database_url)
    if analyzer is None:
        analyzer = Analyzer(
            models_dir=settings.models_dir,
            pipeline_name=settings.nlp_pipeline,
            order_pattern=settings.order_number_pattern,
        )
    knowledge = (
        KnowledgeBase.load(settings.knowledge_base)
        if settings.knowledge_base
        else KnowledgeBase.default()
    )
    readers = (
        create_session_factory(create_engine(settings.resolved_database_url, readers=4))
        if is_sqlite(settings.resolved_database_url)
        else None
    )
    return AppServices(
        settings=settings,
        engine=engine,
        session_factory=create_session_factory(engine),
        read_factory=readers,
        hours=BusinessHours.parse(settings.business_hours, settings.tz),
        staff=StaffChat(settings.staff_chat_id, frozenset(settings.agent_ids)),
        needs_models=NeedsModelCache(settings.models_dir),
        analyzer=analyzer,
        knowledge=knowledge,
    )


async def on_error(update: object, context: KefuContext) -> None:
    """Expected errors become friendly replies; anything else is logged with a reference and the
    person gets a short apology. Replies go through the outbox like everything else."""
    error = context.error
    if not isinstance(update, Update):
        log.error("error outside any update", exc_info=error)
        return
    services = context.services
    chat = update.effective_chat
    is_staff = chat is not None and (
        chat.id == services.staff.chat_id or chat.id in services.staff.former_ids
    )
    if isinstance(error, KefuError):
        details: dict[str, Any] = {k: v for k, v in error.details.items() if k == "number"}
        key = error.code
    else:
        ref = uuid.uuid4().hex[:8]
        log.error(
            "unhandled error %s while handling update %s", ref, update.update_id, exc_info=error
        )
        details, key = {"ref": ref}, "error"
    language = await _language(update, context)
    say = Say.staff(key, **details) if is_staff else Say.customer(language, key, **details)
    effects: list[Effect] = []
    query = update.callback_query
    if query is not None:
        answer = AnswerStaffButton if is_staff else AnswerButton
        effects.append(answer(callback_query_id=query.id, say=say, alert=True))
    elif chat is not None and is_staff:
        message = update.effective_message
        effects.append(
            ToStaffChat(
                chat_id=chat.id,
                say=say,
                thread_id=message.message_thread_id
                if message is not None and message.is_topic_message
                else None,
                reply_to_message_id=message.message_id if message is not None else None,
            )
        )
    elif chat is not None and chat.type == ChatType.PRIVATE:
        effects.append(ToCustomer(customer_id=0, chat_id=chat.id, say=say))
    failure = None if isinstance(error, KefuError) else f"{details.get('ref')} {error!r}"

    async def reply(session: AsyncSession) -> Outcome:
        if failure is not None:  # the update stays in the inbox with what went wrong
            await inbox.record_failure(
                session, update_id=update.update_id, error=failure, now=services.now(), give_up=True
            )
        return Outcome(effects)

    try:
        await services.runner.run(reply, update_id=update.update_id)
    except Exception:  # the error handler must never raise
        log.exception("could not tell the user about an error")


async def _language(update: Update, context: KefuContext) -> str:
    if update.effective_user is None:
        return "en"
    try:
        async with context.services.session() as session:
            row = await customers.get_by_telegram_id(
                session, telegram_user_id=update.effective_user.id
            )
            if row is not None:
                return row.language
    except Exception:
        log.warning("could not look up the customer's language", exc_info=True)
    return customers.normalize_language(update.effective_user.language_code)


async def unknown_button(update: Update, context: KefuContext) -> None:
    """A button whose data matches nothing (old or forged): stop the spinner, say nothing."""
    query = update.callback_query
    if query is not None:
        outcome = Outcome([AnswerButton(callback_query_id=query.id)])
        await context.services.runner.effects_only(outcome, update_id=update.update_id)


async def staff_chat_moved(update: Update, context: KefuContext) -> None:
    """Telegram's service message: the staff group became a supergroup with a new id."""
    message = update.effective_message
    if message is None:
        return
    services = context.services
    old, new = message.chat_id, message.migrate_to_chat_id
    if message.migrate_from_chat_id is not None:
        old, new = message.migrate_from_chat_id, message.chat_id
    if new is None or old != services.staff.chat_id:
        return
    services.staff.moved_to(new)
    await services.runner.run(
        lambda s: flows.staff_chat_moved(s, old_chat_id=old, new_chat_id=new, now=services.now()),
        update_id=update.update_id,
    )


CUSTOMER_COMMANDS = (
    ("start", customer.start),
    ("help", customer.help_command),
    ("status", customer.status),
    ("new", customer.new_ticket),
    ("human", customer.human),
    ("language", customer.language),
    ("link", None),
    ("share", None),
)
STAFF_COMMANDS = (
    ("claim", staff.claim),
    ("resolve", staff.resolve),
    ("reopen", staff.reopen),
    ("note", staff.note),
    ("category", staff.category),
    ("queue", staff.queue),
    ("customer", None),
    ("atrisk", None),
)


async def _set_commands(application: KefuApplication) -> None:
    bot = application.bot
    settings = application.bot_data.services.settings
    try:
        for language in ("en", "zh"):
            descriptions = texts.command_descriptions(language)
            await bot.set_my_commands(
                [BotCommand(name, descriptions[name]) for name, _ in CUSTOMER_COMMANDS],
                scope=BotCommandScopeAllPrivateChats(),
                language_code=None if language == "en" else language,
            )
        if settings.staff_chat_id is not None:
            staff_descriptions = texts.staff_command_descriptions()
            await bot.set_my_commands(
                [BotCommand(name, staff_descriptions[name]) for name, _ in STAFF_COMMANDS],
                scope=BotCommandScopeChat(settings.staff_chat_id),
            )
    except Exception:
        log.warning("could not register the command menu", exc_info=True)


def build_application(
    settings: Settings, services: AppServices | None = None, *, max_concurrent_updates: int = 16
) -> KefuApplication:
    """The python-telegram-bot Application with every handler and job of Kefu: THE routing table.

    Updates come from Kefu's own inbox (``bot/ingest.py``), so the Application has no Updater.
    """
    if settings.telegram_token is None:
        raise ValueError("KEFU_TELEGRAM_TOKEN is required to build the application")
    services = services or build_services(settings)
    api = settings.telegram_api_url.rstrip("/")
    builder = (
        Application.builder()
        .token(settings.telegram_token.get_secret_value())
        .base_url(f"{api}/bot")
        .base_file_url(f"{api}/file/bot")
        .updater(None)
        .context_types(ContextTypes(context=KefuContext, bot_data=BotData))
        .concurrent_updates(PerChatUpdateProcessor(max_concurrent_updates))
        .post_init(_set_commands)
    )
    if settings.telegram_rate_limits == RateLimits.TELEGRAM:
        builder = builder.rate_limiter(TelegramRateLimiter())  # type: ignore[arg-type]
    application: KefuApplication = builder.build()
    application.bot_data.services = services
    add = application.add_handler

    private = filters.ChatType.PRIVATE
    staff_ids = [settings.staff_chat_id] if settings.staff_chat_id is not None else []
    staff_chat = filters.Chat(chat_id=staff_ids)
    services.staff.on_move.append(lambda old, new: staff_chat.add_chat_ids(new))

    # --- group -1: records and managers' commands; they answer and stop the update there -------
    first = -1
    add(CommandHandler("link", records.link, filters=private), group=first)
    add(CommandHandler("share", records.share, filters=private), group=first)
    contact = private & filters.CONTACT & filters.UpdateType.MESSAGE
    add(MessageHandler(contact, records.contact), group=first)
    # Staff commands: the staff chat and manager chats (private chats are told no; other
    # groups are ignored like every message there).
    staff_or_managers = filters.Chat(chat_id=[*staff_ids, *settings.manager_chat_ids])
    services.staff.on_move.append(lambda old, new: staff_or_managers.add_chat_ids(new))
    where = private | staff_or_managers
    add(CommandHandler("customer", records.customer_command, filters=where), group=first)
    add(CommandHandler("atrisk", records.atrisk, filters=where), group=first)
    add(CommandHandler("digest", manager.digest), group=first)
    add(CommandHandler("stats", manager.stats), group=first)

    # --- group 0: customers (private chats) ------------------------------------------------------
    for name, callback in CUSTOMER_COMMANDS:
        if callback is not None:  # None: registered by the records module
            add(CommandHandler(name, callback, filters=private))
    add(MessageHandler(private & filters.COMMAND, customer.help_command))
    # Service messages (pinned message, auto-delete timer...) and dice never open tickets.
    add(
        MessageHandler(
            private
            & filters.UpdateType.MESSAGE
            & ~filters.COMMAND
            & ~filters.StatusUpdate.ALL
            & ~filters.Dice.ALL,
            customer.message,
        )
    )
    add(CallbackQueryHandler(customer.rate, pattern=f"^{keyboards.RATE}:"))
    add(CallbackQueryHandler(customer.language_chosen, pattern=f"^{keyboards.LANG}:"))
    add(CallbackQueryHandler(customer.solved, pattern=f"^{keyboards.SOLVED}:"))

    # --- group 0: agents (the staff chat) --------------------------------------------------------
    add(MessageHandler(filters.StatusUpdate.MIGRATE, staff_chat_moved))
    if settings.staff_chat_id is not None:
        for name, callback in STAFF_COMMANDS:
            if callback is not None:
                add(CommandHandler(name, callback, filters=staff_chat))
        add(
            MessageHandler(
                staff_chat
                & filters.UpdateType.MESSAGE
                & ~filters.COMMAND
                & ~filters.StatusUpdate.ALL,
                staff.message,
            )
        )
        actions = "|".join(staff.BUTTONS)
        add(CallbackQueryHandler(staff.button, pattern=f"^({actions}):"))
    add(CallbackQueryHandler(unknown_button))  # anything else: the spinner stops
    # Messages in any other group match no handler and are ignored.

    jobs.register(application)
    if application.job_queue is not None:
        application.job_queue.run_repeating(
            _reload_models, interval=MODEL_RELOAD_SECONDS, first=MODEL_RELOAD_SECONDS
        )
    application.add_error_handler(on_error)
    return application
