"""Running Kefu: the Application, delivery, the dispatcher, and polling or a webhook.

Start order: the Application (handlers, jobs) and delivery first, then the dispatcher (which
replays unfinished updates), then polling or the webhook. Stop in reverse, letting work in flight
finish; what does not finish stays in the inbox or outbox for the next start.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import signal
from dataclasses import dataclass

from sqlalchemy import select

from bot.app import KefuApplication, build_application, build_services
from bot.delivery import Delivery
from bot.ingest import Dispatcher, Poller, WebhookServer
from bot.services import AppServices
from crm.db import retry_transient
from crm.models import StaffChatMove
from nlp.analysis import Analyzer
from settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Kefu:
    """A running bot."""

    settings: Settings
    services: AppServices
    app: KefuApplication
    delivery: Delivery
    dispatcher: Dispatcher
    source: Poller | WebhookServer

    @property
    def fatal(self) -> str | None:
        return self.source.fatal if isinstance(self.source, Poller) else None

    async def idle(self) -> bool:
        """Nothing being handled, nothing left to deliver (tests and benchmarks)."""
        return not self.dispatcher.busy and await self.delivery.idle()


async def _follow_moves(services: AppServices) -> None:
    """A staff chat that Telegram moved before (recorded) is used at its new id."""
    staff = services.staff
    for _ in range(10):
        if staff.chat_id is None:
            return
        current = staff.chat_id
        async with services.session() as session:
            move = (
                await session.execute(
                    select(StaffChatMove).where(StaffChatMove.old_chat_id == current)
                )
            ).scalar_one_or_none()
        if move is None:
            return
        log.warning(
            "the staff chat %s moved to %s; using the new id (update KEFU_STAFF_CHAT_ID)",
            current,
            move.new_chat_id,
        )
        staff.moved_to(move.new_chat_id)


async def start(
    settings: Settings,
    services: AppServices | None = None,
    *,
    analyzer: Analyzer | None = None,
    webhook: bool = False,
) -> Kefu:
    services = services or build_services(settings, analyzer=analyzer)
    app = build_application(settings, services)
    await app.initialize()
    await retry_transient(lambda: _follow_moves(services), what="reading the staff chat")
    if app.post_init is not None:
        await app.post_init(app)
    await app.start()
    delivery = Delivery(services, app.bot)
    services.on_commit(lambda outcome: delivery.notify())
    await delivery.start()
    dispatcher = Dispatcher(services, app)
    await dispatcher.start()
    source: Poller | WebhookServer
    if webhook:
        if not settings.webhook_url:
            raise ValueError("KEFU_WEBHOOK_URL is required for webhook mode")
        secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else ""
        if not secret:
            secret = secrets.token_urlsafe(32)
        source = WebhookServer(
            services,
            app.bot,
            dispatcher,
            url=settings.webhook_url,
            listen=settings.webhook_listen,
            port=settings.webhook_port,
            secret=secret,
        )
    else:
        source = Poller(services, app.bot, dispatcher)
    await source.start()
    return Kefu(settings, services, app, delivery, dispatcher, source)


async def stop(kefu: Kefu) -> None:
    await kefu.source.stop()
    await kefu.dispatcher.stop()
    await kefu.delivery.stop()
    if kefu.app.running:
        await kefu.app.stop()
    await kefu.app.shutdown()
    await kefu.services.aclose()


async def serve(settings: Settings, *, webhook: bool = False) -> int:
    """Run until SIGINT/SIGTERM (or a fatal problem); returns the exit status."""
    kefu = await start(settings, webhook=webhook)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    me = kefu.app.bot.username if kefu.app.bot else "?"
    log.info(
        "Kefu is running as @%s (%s); staff chat %s",
        me,
        "webhook" if webhook else "polling",
        kefu.services.staff.chat_id,
    )
    while not stopping.is_set():
        try:
            await asyncio.wait_for(stopping.wait(), 1.0)
        except TimeoutError:
            if kefu.fatal:
                break
    log.info("stopping")
    await stop(kefu)
    return 1 if kefu.fatal else 0
