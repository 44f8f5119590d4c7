"""All Telegram wiring in one place: handlers, error handler, update processing, rate limits."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from aiolimiter import AsyncLimiter
from telegram import BotCommand, BotCommandScopeAllPrivateChats, BotCommandScopeChat, Update
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
from bot.handlers import customer, staff
from bot.handlers import records as record_handlers
from bot.services import AppServices, BotData, KefuContext, NeedsModelCache, StaffChat
from crm.db import create_engine, create_session_factory
from crm.errors import KefuError
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
    return AppServices(
        settings=settings,
        engine=engine,
        session_factory=create_session_factory(engine),
        hours=BusinessHours.parse(settings.business_hours, settings.tz),
        staff=StaffChat(settings.staff_chat_id, frozenset(settings.agent_ids)),
        needs_models=NeedsModelCache(settings.models_dir),
        analyzer=analyzer,
        knowledge=knowledge,
    )


async def on_error(update: object, context: KefuContext) -> None:
    """Expected errors become friendly replies; anything else is logged with a reference."""
    error = context.error
    is_staff = (
        isinstance(update, Update)
        and update.effective_chat is not None
        and update.effective_chat.id == context.services.settings.staff_chat_id
    )
    if isinstance(error, KefuError):
        details = {k: v for k, v in error.details.items() if k == "number"}
        if is_staff:
            reply = texts.staff_text(error.code, **details)
        else:
            reply = texts.customer_text(await _language(update, context), error.code)
    else:
        ref = uuid.uuid4().hex[:8]
        log.error("unhandled error %s while handling an update", ref, exc_info=error)
        reply = (
            texts.staff_text("error", ref=ref)
            if is_staff
            else texts.customer_text(await _language(update, context), "error", ref=ref)
        )
    if not isinstance(update, Update):
        return
    try:
        if update.callback_query is not None:
            plain = reply.replace("<b>", "").replace("</b>", "")
            await update.callback_query.answer(plain[:190], show_alert=True)
        elif update.effective_message is not None:
            await update.effective_message.reply_html(reply)
    except Exception:  # the error handler must never raise
        log.exception("could not tell the user about an error")


async def _language(update: object, context: KefuContext) -> str:
    from crm import customers

    if isinstance(update, Update) and update.effective_user is not None:
        try:
            async with context.services.session() as session:
                row = await customers.get_by_telegram_id(
                    session, telegram_user_id=update.effective_user.id
                )
                if row is not None:
                    return row.language
        except Exception:
            log.exception("could not look up the customer's language")
        return customers.normalize_language(update.effective_user.language_code)
    return "en"


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
    settings: Settings, services: AppServices | None = None, *, max_concurrent_updates: int = 64
) -> KefuApplication:
    """The python-telegram-bot Application with every handler, job and limit of Kefu.

    ``max_concurrent_updates=1`` processes updates one at a time (benchmarks compare the two).
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
        .context_types(ContextTypes(context=KefuContext, bot_data=BotData))
        .concurrent_updates(PerChatUpdateProcessor(max_concurrent_updates))
        .post_init(_set_commands)
    )
    if settings.telegram_rate_limits == RateLimits.TELEGRAM:
        builder = builder.rate_limiter(TelegramRateLimiter())  # type: ignore[arg-type]
    application: KefuApplication = builder.build()
    application.bot_data.services = services

    private = filters.ChatType.PRIVATE
    new_messages = filters.UpdateType.MESSAGE
    for name, callback in CUSTOMER_COMMANDS:
        if callback is not None:  # None: registered by their own module
            application.add_handler(CommandHandler(name, callback, filters=private))
    application.add_handler(MessageHandler(private & filters.COMMAND, customer.help_command))
    application.add_handler(
        MessageHandler(private & new_messages & ~filters.COMMAND, customer.message)
    )
    application.add_handler(CallbackQueryHandler(customer.rate, pattern=f"^{keyboards.RATE}:"))
    application.add_handler(
        CallbackQueryHandler(customer.language_chosen, pattern=f"^{keyboards.LANG}:")
    )
    application.add_handler(CallbackQueryHandler(customer.solved, pattern=f"^{keyboards.SOLVED}:"))

    if settings.staff_chat_id is not None:
        staff_chat = filters.Chat(chat_id=settings.staff_chat_id)
        for name, callback in STAFF_COMMANDS:
            if callback is not None:
                application.add_handler(CommandHandler(name, callback, filters=staff_chat))
        application.add_handler(
            MessageHandler(
                staff_chat & new_messages & ~filters.COMMAND & ~filters.StatusUpdate.ALL,
                staff.message,
            )
        )
        actions = (
            keyboards.CLAIM,
            keyboards.RESOLVE,
            keyboards.REOPEN,
            keyboards.CATEGORIES,
            keyboards.CATEGORY,
            keyboards.CARD,
        )
        pattern = f"^({'|'.join(actions)}):"
        application.add_handler(CallbackQueryHandler(staff.button, pattern=pattern))
    # Messages in any other group match no handler and are ignored.
    record_handlers.register(application)
    jobs.register(application)
    if application.job_queue is not None:
        application.job_queue.run_repeating(
            _reload_models, interval=MODEL_RELOAD_SECONDS, first=MODEL_RELOAD_SECONDS
        )
    application.add_error_handler(on_error)
    return application
