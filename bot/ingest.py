"""Updates in: polling or a webhook stores each update in the inbox before Telegram is told it
arrived; the dispatcher hands stored updates to the handlers in order.

* Polling: the next ``getUpdates`` offset (which confirms a batch to Telegram) is only sent after
  the batch is committed. python-telegram-bot's ``Updater`` confirms before handlers run, so it
  is not used.
* Webhook: ``200 OK`` only after the commit; requests without the right
  ``X-Telegram-Bot-Api-Secret-Token`` are refused.
* Dispatcher: at start, every unfinished update first, in order; then new ones as they are
  stored. Updates of one chat are handled strictly in order (``PerChatUpdateProcessor``); an update
  is marked done in its flow's transaction, or after its handlers ran when no flow did.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from aiohttp import web
from telegram import Update
from telegram.error import Conflict, InvalidToken, RetryAfter, TelegramError

from bot.services import AppServices
from crm.db import retry_transient
from crm.support import inbox

log = logging.getLogger(__name__)

ALLOWED_UPDATES = ["message", "callback_query"]
POLL_TIMEOUT = 10
MARK_DONE_EVERY = 0.05


class Dispatcher:
    """Feeds stored updates to the Application in update order; marks them done afterwards."""

    def __init__(self, services: AppServices, application: Any) -> None:
        self.services = services
        self.application = application
        self.queue: asyncio.Queue[tuple[int, dict[str, Any]]] = asyncio.Queue()
        self._seen: set[int] = set()
        self._done: list[int] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[None] | None = None
        self._marker: asyncio.Task[None] | None = None
        self._running = False

    async def start(self) -> None:
        """Replay unfinished updates (in order) before anything new."""

        async def load() -> list[tuple[int, dict[str, Any]]]:
            async with self.services.session() as session:
                return await inbox.pending(session, limit=100_000)

        unfinished = await retry_transient(load, what="reading the inbox")
        if unfinished:
            log.info("processing %d updates left unfinished by the last run", len(unfinished))
        self.feed(unfinished)
        self._running = True
        self._runner = asyncio.create_task(self._run(), name="kefu-dispatcher")
        self._marker = asyncio.create_task(self._mark_loop(), name="kefu-inbox-marker")

    def feed(self, updates: Sequence[tuple[int, dict[str, Any]]]) -> None:
        for update_id, payload in updates:
            if update_id not in self._seen:
                self._seen.add(update_id)
                self.queue.put_nowait((update_id, payload))

    async def _run(self) -> None:
        processor = self.application.update_processor
        while self._running:
            update_id, payload = await self.queue.get()
            try:
                update = Update.de_json(payload, self.application.bot)
            except Exception:
                log.exception("update %s could not be read; skipped", update_id)
                self._done.append(update_id)
                continue
            task = asyncio.create_task(
                self._process(processor, update_id, update), name=f"update-{update_id}"
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _process(self, processor: Any, update_id: int, update: Update) -> None:
        try:
            await processor.process_update(update, self.application.process_update(update))
        except Exception:  # PTB hands handler errors to the error handler; this is a last guard
            log.exception("update %s failed outside its handlers", update_id)
        self._done.append(update_id)

    async def _mark_loop(self) -> None:
        while self._running or self._done:
            await asyncio.sleep(MARK_DONE_EVERY)
            await self._flush()

    async def _flush(self) -> None:
        if not self._done:
            return
        done, self._done = self._done, []

        async def mark() -> None:
            async with self.services.session() as session:
                await inbox.mark_done(session, update_ids=done, now=self.services.now())

        await retry_transient(mark, what="marking updates done")
        for update_id in done:
            self._seen.discard(update_id)

    async def stop(self, *, drain: float = 10.0) -> None:
        """Stop taking updates; let those being handled finish (up to ``drain`` seconds).

        Updates not finished stay unfinished in the inbox: the next start handles them.
        """
        self._running = False
        if self._runner is not None:
            self._runner.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=drain)
        for task in list(self._tasks):
            task.cancel()
        if self._marker is not None:
            await asyncio.wait([self._marker], timeout=5)
        await self._flush()

    @property
    def busy(self) -> bool:
        return bool(self._tasks) or not self.queue.empty()


async def store(services: AppServices, updates: list[dict[str, Any]]) -> list[int]:
    """Commit a batch of raw updates to the inbox (waiting for the database if it is away)."""

    async def commit() -> list[int]:
        async with services.session() as session:
            return await inbox.store(session, updates=updates, now=services.now())

    return await retry_transient(commit, what="storing updates")


class Poller:
    """Long polling that confirms a batch to Telegram only after it is committed."""

    def __init__(self, services: AppServices, bot: Any, dispatcher: Dispatcher) -> None:
        self.services = services
        self.bot = bot
        self.dispatcher = dispatcher
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self.fatal: str | None = None

    async def start(self) -> None:
        await self.bot.delete_webhook(drop_pending_updates=False)
        self._task = asyncio.create_task(self._run(), name="kefu-poller")

    async def _run(self) -> None:
        offset: int | None = None
        failures = 0
        while not self._stopping.is_set():
            try:
                result = await self.bot.get_updates(
                    offset=offset,
                    timeout=POLL_TIMEOUT,
                    limit=100,
                    allowed_updates=ALLOWED_UPDATES,
                    read_timeout=POLL_TIMEOUT + 10,
                )
            except InvalidToken:
                self.fatal = "Telegram rejected the bot token: check KEFU_TELEGRAM_TOKEN."
                log.error(self.fatal)
                self._stopping.set()
                return
            except Conflict:
                log.warning("another process is polling with this bot token; retrying in 5 s")
                await self._pause(5)
                continue
            except RetryAfter as exc:
                after = exc.retry_after
                wait = after.total_seconds() if isinstance(after, timedelta) else float(after)
                await self._pause(wait)
                continue
            except TelegramError as exc:
                failures += 1
                delay = min(2.0 ** min(failures, 5), 30.0)
                log.warning("could not reach the Bot API (%s); retrying in %.0f s", exc, delay)
                await self._pause(delay)
                continue
            failures = 0
            updates = [u.to_dict() for u in result or ()]
            if not updates:
                continue
            try:
                fresh = set(await store(self.services, updates))
            except Exception:  # not stored: not confirmed either; Telegram sends them again
                log.exception("could not store %d updates; asking Telegram again", len(updates))
                await self._pause(5)
                continue
            offset = max(int(u["update_id"]) for u in updates) + 1  # confirmed by the next call
            self.dispatcher.feed(
                [(int(u["update_id"]), u) for u in updates if u["update_id"] in fresh]
            )

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


class WebhookServer:
    """Receives updates over HTTPS (behind the operator's proxy) and stores them before 200."""

    def __init__(
        self,
        services: AppServices,
        bot: Any,
        dispatcher: Dispatcher,
        *,
        url: str,
        listen: str,
        port: int,
        secret: str,
    ) -> None:
        self.services = services
        self.bot = bot
        self.dispatcher = dispatcher
        self.url = url
        self.listen = listen
        self.port = port
        self.secret = secret
        self._runner: web.AppRunner | None = None

    @property
    def path(self) -> str:
        from urllib.parse import urlparse

        return urlparse(self.url).path or "/"

    async def start(self) -> None:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_post(self.path, self._receive)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.listen, self.port).start()
        await self.bot.set_webhook(
            self.url,
            secret_token=self.secret,
            allowed_updates=ALLOWED_UPDATES,
            max_connections=40,
        )
        log.info("webhook registered; listening on %s:%s%s", self.listen, self.port, self.path)

    async def _receive(self, request: web.Request) -> web.Response:
        given = request.headers.get("X-Telegram-Bot-Api-Secret-Token", "")
        if not hmac.compare_digest(given.encode(), self.secret.encode()):
            log.warning("refused a webhook request without the right secret token")
            return web.Response(status=403, text="forbidden")
        try:
            payload = json.loads(await request.text())
        except ValueError:
            return web.Response(status=400, text="not JSON")
        if not isinstance(payload, dict) or not isinstance(payload.get("update_id"), int):
            return web.Response(status=400, text="not an update")
        fresh = await store(self.services, [payload])  # committed before Telegram hears 200
        if fresh:  # a redelivered update is handled (or being handled) already
            self.dispatcher.feed([(payload["update_id"], payload)])
        return web.Response(status=200)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
