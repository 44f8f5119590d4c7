"""Delivery: carries out outbox rows with python-telegram-bot and writes message ids back.

Two lanes with their own budgets (customers never wait behind staff-chat traffic); in each lane
the first pending row of every destination is carried out, so one destination's rows go in
order while different destinations go concurrently. Telegram's answers decide what happens next:

* sent: confirmed (never sent again), message ids written back in the same transaction;
* 429: tried again after ``retry_after``; 5xx and network errors: again with backoff;
* 403 from a customer: they blocked the bot: recorded, the agents are told, the row fails;
* a ticket's topic deleted or closed: the ticket's place is recreated, then the row goes there;
* the staff chat migrated to a supergroup: followed, recorded, places recreated there;
* any other 400: recorded as failed (with the reason) and never retried.

Delivery decides nothing about what to say: it renders the effect's sentence (``bot/render``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from telegram import Bot, InputFile, LinkPreviewOptions, Message, ReplyParameters
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
)

from bot import render, texts
from bot.parsing import CAPTIONED_KINDS
from bot.services import AppServices
from crm import messages, ratings, tickets
from crm.db import retry_transient, session_scope
from crm.models import Customer, Lane, Ticket
from crm.schemas import CustomerInfo, MessageInfo
from crm.support import flows, outbox
from crm.support.outbox import Due
from crm.support.outcomes import (
    AnswerButton,
    AnswerStaffButton,
    CustomerStatus,
    EditKeyboard,
    EditStaffKeyboard,
    Effect,
    Keyboard,
    NotifyThread,
    OpenStaffPlace,
    Post,
    RefreshCard,
    RelayToCustomer,
    RelayToStaff,
    StaffQueue,
    ToCustomer,
    ToStaffChat,
)

log = logging.getLogger(__name__)

WriteBack = Callable[[AsyncSession], Awaitable[None]]
LANE_BUDGET = {Lane.CUSTOMER: 64, Lane.STAFF: 16}
MAX_BACKOFF_SECONDS = 60.0
CLAIM_PAUSE = 0.01
THREAD_GONE = ("message thread not found", "topic_deleted", "topic_closed", "thread not found")
HARMLESS = ("message is not modified", "query is too old", "query id is invalid")


class PlaceGone(Exception):
    """Telegram says the ticket's topic is gone or closed."""


@dataclass(frozen=True, slots=True)
class Place:
    """Where a ticket lives in the staff chat: its forum topic, or replies to its card."""

    chat_id: int
    thread_id: int | None
    card_message_id: int | None

    @classmethod
    def of(cls, ticket: Ticket) -> Place | None:
        if ticket.staff_chat_id is None:
            return None
        return cls(ticket.staff_chat_id, ticket.staff_thread_id, ticket.staff_card_message_id)

    def reply_parameters(self) -> ReplyParameters | None:
        if self.thread_id is not None or self.card_message_id is None:
            return None
        return ReplyParameters(self.card_message_id, allow_sending_without_reply=True)


def _thread_gone(error: TelegramError) -> bool:
    text = str(error).lower()
    return any(marker in text for marker in THREAD_GONE)


def backoff(attempts: int) -> float:
    """Seconds before the next try after ``attempts`` failures: 0.5, 1, 2, … 60, with jitter."""
    base = min(0.5 * 2 ** max(attempts, 0), MAX_BACKOFF_SECONDS)
    return base * random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not security


class GroupCommit:
    """Results of sends written together: whoever finds no commit running starts one with every
    result waiting, so under load one transaction records many sends (fewer round trips on the
    one SQLite connection). Each caller returns only once its result is committed."""

    def __init__(self, services: AppServices) -> None:
        self.services = services
        self._waiting: list[tuple[WriteBack, asyncio.Future[None]]] = []
        self._lock = asyncio.Lock()

    async def record(self, work: WriteBack) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((work, done))
        async with self._lock:
            if not done.done():
                batch, self._waiting = self._waiting, []
                await self._commit(batch)
        await done

    async def _commit(self, batch: list[tuple[WriteBack, asyncio.Future[None]]]) -> None:
        async def together() -> None:
            async with session_scope(self.services.session_factory) as session:
                for work, _ in batch:
                    await work(session)

        try:
            await retry_transient(together, what="recording deliveries")
        except Exception:
            # One result the database refuses must not lose the others: record them one by one.
            for work, done in batch:
                try:
                    await retry_transient(
                        lambda w=work: self._one(w),  # type: ignore[misc]
                        what="recording a delivery",
                    )
                except Exception as exc:
                    done.set_exception(exc)
                else:
                    done.set_result(None)
            return
        for _, done in batch:
            done.set_result(None)

    async def _one(self, work: WriteBack) -> None:
        async with session_scope(self.services.session_factory) as session:
            await work(session)


@dataclass
class _Lane:
    lane: Lane
    budget: int
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    in_flight: set[int] = field(default_factory=set)
    task: asyncio.Task[None] | None = None


class Delivery:
    """The outbox worker of one process. ``notify()`` after a flow committed new rows."""

    def __init__(self, services: AppServices, bot: Bot) -> None:
        self.services = services
        self.bot = bot
        self.lanes = {lane: _Lane(lane, budget) for lane, budget in LANE_BUDGET.items()}
        self._tasks: set[asyncio.Task[None]] = set()
        self._running = False
        self._warned_no_staff = False
        self._results = GroupCommit(services)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        async def release() -> int:
            async with self.services.session() as session:
                return await outbox.release_claims(session)

        released = await retry_transient(release, what="starting delivery")
        if released:
            log.info("delivery resumes %d effects claimed before a restart", released)
        self._running = True
        for state in self.lanes.values():
            state.task = asyncio.create_task(self._run_lane(state), name=f"delivery-{state.lane}")

    async def stop(self, *, drain: float = 5.0) -> None:
        """Stop claiming; let sends in flight finish (up to ``drain`` seconds)."""
        self._running = False
        for state in self.lanes.values():
            state.wake.set()
        lane_tasks = [s.task for s in self.lanes.values() if s.task is not None]
        await asyncio.gather(*lane_tasks, return_exceptions=True)
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=drain)
        for task in self._tasks:
            task.cancel()

    def notify(self, lanes: set[Lane] | None = None) -> None:
        for lane, state in self.lanes.items():
            if lanes is None or lane in lanes:
                state.wake.set()

    async def idle(self) -> bool:
        """True when nothing is in flight and nothing is due (tests and benchmarks)."""
        if any(state.in_flight for state in self.lanes.values()):
            return False
        async with self.services.session() as session:
            counts = await outbox.counts(session)
        return counts.get("pending", 0) == 0

    # ------------------------------------------------------------------ the loop

    async def _run_lane(self, state: _Lane) -> None:
        while self._running:
            state.wake.clear()
            room = state.budget - len(state.in_flight)
            due: list[Due] = []
            if room > 0:
                try:
                    due = await self._claim(state, room)
                except Exception as exc:
                    log.warning("delivery could not read the outbox (%s); retrying", exc)
                    await asyncio.sleep(1.0)
                    continue
            for row in due:
                state.in_flight.add(row.id)
                task = asyncio.create_task(self._deliver(state, row), name=f"deliver-{row.id}")
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            if len(due) == room and room > 0:
                continue  # more may be due right now
            # Rows blocked behind a send in flight wait for its completion (which wakes us).
            timeout = 1.0 if state.in_flight else await self._sleep_for(state)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(state.wake.wait(), timeout)
            if state.in_flight:
                # Let a few more sends finish before the next claim: one query then finds
                # several newly free destinations instead of one each.
                await asyncio.sleep(CLAIM_PAUSE)

    async def _claim(self, state: _Lane, room: int) -> list[Due]:
        # SQLite serves one process: the rows in flight are known here, a lease would only cost
        # a write on the one writer connection. PostgreSQL takes leases (SKIP LOCKED).
        single = self.services.read_factory is not None
        scope = self.services.read() if single else self.services.session()
        async with scope as session:
            return await outbox.claim_due(
                session,
                lane=state.lane,
                now=self.services.now(),
                limit=room,
                exclude=sorted(state.in_flight),
                lease=not single,
            )

    async def _sleep_for(self, state: _Lane) -> float:
        try:
            async with self.services.read() as session:
                due_at = await outbox.next_due_at(session, lane=state.lane)
        except Exception:
            return 1.0
        if due_at is None:
            return 5.0
        return min(max((due_at - self.services.now()).total_seconds(), 0.02), 5.0)

    async def _deliver(self, state: _Lane, row: Due) -> None:
        try:
            await self._attempt(row)
        except Exception:  # a bug must not stop the lane: the row is retried after a pause
            log.exception("delivery of outbox row %s failed unexpectedly", row.id)
            await self._finish(row, retry_in=MAX_BACKOFF_SECONDS, error="internal error")
        finally:
            state.in_flight.discard(row.id)
            state.wake.set()

    async def _attempt(self, row: Due) -> None:
        effect = row.effect
        try:
            write_back = await self.carry_out(effect)
        except RetryAfter as exc:
            wait = exc.retry_after
            seconds = wait.total_seconds() if isinstance(wait, timedelta) else float(wait)
            await self._finish(row, retry_in=seconds + 0.05, error=f"flood wait {seconds:g}s")
            return
        except ChatMigrated as exc:
            await self._chat_migrated(row, exc.new_chat_id)
            await self._finish(row, retry_in=0.0, error="staff chat migrated", count=False)
            return
        except Forbidden as exc:
            await self._forbidden(row, exc)
            return
        except BadRequest as exc:
            if any(marker in str(exc).lower() for marker in HARMLESS):
                await self._finish(row)
                return
            log.warning("Telegram refused %s (row %s): %s", effect.kind, row.id, exc)
            await self._finish(row, failed=str(exc))
            await self._refused(effect, str(exc))
            return
        except InvalidToken:
            log.error("Telegram rejected the bot token; delivery paused")
            await self._finish(row, retry_in=MAX_BACKOFF_SECONDS, error="token rejected")
            return
        except (NetworkError, TelegramError) as exc:  # 5xx, dropped connections, timeouts
            delay = backoff(row.attempts)
            log.info(
                "%s (row %s) not delivered (%s); retry in %.1fs", effect.kind, row.id, exc, delay
            )
            await self._finish(row, retry_in=delay, error=str(exc))
            return
        await self._finish(row, write_back=write_back)

    async def _finish(
        self,
        row: Due,
        *,
        write_back: WriteBack | None = None,
        retry_in: float | None = None,
        failed: str | None = None,
        error: str = "",
        count: bool = True,
    ) -> None:
        """Record the result; a confirmation waits for the database rather than be lost."""

        async def record(session: AsyncSession) -> None:
            now = self.services.now()
            if failed is not None:
                await outbox.fail(session, row_id=row.id, error=failed, now=now)
            elif retry_in is not None:
                at = now + timedelta(seconds=retry_in)
                await outbox.retry_later(session, row_id=row.id, at=at, error=error, count=count)
            else:
                if write_back is not None:
                    await write_back(session)
                await outbox.confirm(session, row_id=row.id, now=now)

        await self._results.record(record)

    # ------------------------------------------------------------------ reactions

    async def _forbidden(self, row: Due, exc: Forbidden) -> None:
        effect = row.effect
        await self._finish(row, failed=str(exc))
        customer_id, ticket_id = _customer_of(effect)
        if customer_id is None and isinstance(effect, RelayToCustomer):
            async with self.services.session() as session:
                message = await messages.get(session, message_id=effect.message_id)
                customer_id = message.customer_id
        if customer_id is not None:
            reason = str(exc)
            cid, tid = customer_id, ticket_id
            await self.services.runner.run(
                lambda s: flows.customer_unreachable(
                    s, customer_id=cid, ticket_id=tid, reason=reason, now=self.services.now()
                )
            )
        if isinstance(effect, RelayToCustomer):
            await self._refused(effect, str(exc))
        elif customer_id is None:
            log.error("Telegram forbids %s (row %s): %s", effect.kind, row.id, exc)

    async def _refused(self, effect: Effect, reason: str) -> None:
        """An agent's message never reached the customer: the agents are told."""
        if isinstance(effect, RelayToCustomer):
            message_id = effect.message_id
            await self.services.runner.run(
                lambda s: flows.relay_failed(
                    s, message_id=message_id, reason=reason, now=self.services.now()
                )
            )

    async def _chat_migrated(self, row: Due, new_chat_id: int) -> None:
        staff = self.services.staff
        old = staff.chat_id
        if old is None or old == new_chat_id:
            return
        log.warning(
            "the staff chat %s became supergroup %s; following it (set KEFU_STAFF_CHAT_ID=%s)",
            old,
            new_chat_id,
            new_chat_id,
        )
        staff.moved_to(new_chat_id)
        await self.services.runner.run(
            lambda s: flows.staff_chat_moved(
                s, old_chat_id=old, new_chat_id=new_chat_id, now=self.services.now()
            )
        )

    # ------------------------------------------------------------------ carrying out

    async def carry_out(self, effect: Effect) -> WriteBack | None:
        """Send what ``effect`` says; returns the write-back for the message ids, if any."""
        handler = getattr(self, f"_do_{effect.kind}")
        result: WriteBack | None = await handler(effect)
        return result

    @property
    def _tz(self) -> Any:
        return self.services.settings.tz

    async def _send_html(
        self,
        chat_id: int,
        chunks: list[str] | str,
        *,
        thread_id: int | None = None,
        reply_parameters: ReplyParameters | None = None,
        reply_markup: Any = None,
    ) -> list[Message]:
        parts = [chunks] if isinstance(chunks, str) else chunks
        sent = []
        for i, part in enumerate(parts):
            sent.append(
                await self.bot.send_message(
                    chat_id,
                    part,
                    parse_mode=ParseMode.HTML,
                    message_thread_id=thread_id,
                    reply_parameters=reply_parameters if i == 0 else None,
                    reply_markup=reply_markup if i == len(parts) - 1 else None,
                    link_preview_options=LinkPreviewOptions(is_disabled=True),
                )
            )
        return sent

    # customers

    async def _do_to_customer(self, effect: ToCustomer) -> WriteBack | None:
        html = render.say(effect.say, self._tz)
        markup = render.keyboard(effect.keyboard, self._categories())
        sent = await self._send_html(effect.chat_id, texts.split_lines(html), reply_markup=markup)
        if effect.remember == "rating_prompt" and effect.remember_id is not None:
            rating_id, message_id = effect.remember_id, sent[-1].message_id

            async def remember(session: AsyncSession) -> None:
                await ratings.set_comment_prompt(
                    session, rating_id=rating_id, message_id=message_id
                )

            return remember
        return None

    async def _do_customer_status(self, effect: CustomerStatus) -> None:
        async with self.services.read() as session:
            active = await tickets.list_active_for_customer(session, customer_id=effect.customer_id)
        html = texts.status_list(effect.language, active, self._tz)
        await self._send_html(effect.chat_id, texts.split_lines(html))

    async def _do_relay_to_customer(self, effect: RelayToCustomer) -> WriteBack | None:
        async with self.services.read() as session:
            message = await messages.get(session, message_id=effect.message_id)
            info = MessageInfo.of(message)
            copied = message.customer_message_id
            staff_chat_id, staff_message_id = message.staff_chat_id, message.staff_message_id
        if copied is not None:
            return None  # carried out before a restart
        signature = render.say(effect.signature, self._tz) if effect.signature else None
        chat_id = effect.chat_id
        if info.media_kind is None or staff_message_id is None:
            body = f"{info.text}\n\n{signature}" if signature else info.text
            sent = [await self.bot.send_message(chat_id, part) for part in texts.split_text(body)]
            customer_message_id = sent[0].message_id
        else:
            caption: str | None = None
            if signature and info.media_kind in CAPTIONED_KINDS:
                text = f"{info.text}\n\n{signature}" if info.text else signature
                caption = texts.split_text(text, texts.TELEGRAM_CAPTION_LIMIT)[0]
            result = await self.bot.copy_message(
                chat_id,
                from_chat_id=staff_chat_id or 0,
                message_id=staff_message_id,
                caption=caption,
            )
            customer_message_id = result.message_id
        message_id = effect.message_id

        async def remember(session: AsyncSession) -> None:
            await messages.set_customer_copy(
                session,
                message_id=message_id,
                customer_chat_id=chat_id,
                customer_message_id=customer_message_id,
            )

        return remember

    async def _do_edit_keyboard(self, effect: EditKeyboard) -> None:
        markup = render.keyboard(effect.keyboard, self._categories())
        await self.bot.edit_message_reply_markup(
            chat_id=effect.chat_id,
            message_id=effect.message_id,
            reply_markup=markup,  # type: ignore[arg-type]
        )

    async def _do_answer_button(self, effect: AnswerButton | AnswerStaffButton) -> None:
        text = render.plain(effect.say, self._tz) if effect.say else None
        await self.bot.answer_callback_query(
            effect.callback_query_id, text=text, show_alert=effect.alert
        )

    _do_answer_staff_button = _do_answer_button

    # the staff chat

    def _categories(self) -> tuple[str, ...]:
        analyzer = self.services.analyzer
        return analyzer.categories if analyzer is not None else ()

    def _staff_chat(self) -> int | None:
        chat_id = self.services.staff.chat_id
        if chat_id is None and not self._warned_no_staff:
            log.warning("KEFU_STAFF_CHAT_ID is not set: tickets are not shown to agents")
            self._warned_no_staff = True
        return chat_id

    async def _ticket(self, ticket_id: int) -> Ticket:
        async with self.services.read() as session:
            return await tickets.get(session, ticket_id=ticket_id)

    async def _place(self, ticket_id: int, *, open_if_missing: bool = True) -> Place | None:
        """The ticket's place; opened (or finished: a topic without its card) when needed."""
        staff_chat = self._staff_chat()
        if staff_chat is None:
            return None
        place = Place.of(await self._ticket(ticket_id))
        if place is not None and place.chat_id != staff_chat:
            place = None  # the staff chat moved: the old place is unreachable
        if (place is not None and place.card_message_id is not None) or not open_if_missing:
            return place
        return await self._open_place(ticket_id, existing=place)

    async def _remember_place(self, ticket_id: int, place: Place | None) -> None:
        async def remember() -> None:
            async with session_scope(self.services.session_factory) as session:
                await tickets.set_staff_refs(
                    session,
                    ticket_id=ticket_id,
                    chat_id=place.chat_id if place else None,
                    thread_id=place.thread_id if place else None,
                    card_message_id=place.card_message_id if place else None,
                )

        await retry_transient(remember, what="recording a ticket's place")

    async def _open_place(
        self, ticket_id: int, *, existing: Place | None = None, recreated: bool = False
    ) -> Place | None:
        """A forum topic with the card (or the card alone). Each step is recorded as soon as
        Telegram confirms it, so a retry after a failure continues instead of starting over."""
        chat_id = self._staff_chat()
        if chat_id is None:
            return None
        async with self.services.read() as session:
            card = await tickets.card(session, ticket_id=ticket_id)
        record = await self.services.customer_record(card.customer.id)
        staff = self.services.staff
        thread_id = existing.thread_id if existing is not None else None
        if thread_id is None and await staff.is_forum(self.bot):
            try:
                topic = await self.bot.create_forum_topic(
                    chat_id, texts.topic_name(card.ticket, card.customer)
                )
                thread_id = topic.message_thread_id
            except (BadRequest, Forbidden) as exc:
                if "not a forum" in str(exc).lower():
                    staff.forget_forum()
                else:  # e.g. no "Manage topics" right: a card still reaches the agents
                    log.warning(
                        "could not create a topic for #%s (%s); posting a card",
                        card.ticket.number,
                        exc,
                    )
            if thread_id is not None:
                await self._remember_place(ticket_id, Place(chat_id, thread_id, None))
        async with staff.posting():
            sent = await self._send_html(
                chat_id,
                texts.staff_card(card, self._tz, record),
                thread_id=thread_id,
                reply_markup=render.keyboard(
                    render_card_keyboard(card.ticket.id, str(card.ticket.status))
                ),
            )
            place = Place(chat_id, thread_id, sent[0].message_id)
            await self._remember_place(ticket_id, place)
        if recreated:
            await self._send_html(
                chat_id,
                texts.staff_text("place_recreated", number=card.ticket.number),
                thread_id=thread_id,
                reply_parameters=place.reply_parameters(),
            )
        return place

    async def _recreate(self, ticket_id: int, error: TelegramError) -> Place | None:
        log.warning("the staff topic of ticket %s is gone (%s); recreating it", ticket_id, error)
        await self._remember_place(ticket_id, None)
        return await self._open_place(ticket_id, recreated=True)

    async def _in_place(
        self,
        ticket_id: int,
        send: Callable[[Place], Awaitable[int]],
        known: Place | None = None,
    ) -> tuple[int, int] | None:
        """Send into the ticket's place; when Telegram says the topic is gone or closed, give the
        ticket a new place and send there. ``known``: the place as just read (saves a read)."""
        try:
            staff_chat = self.services.staff.chat_id
            usable = known is not None and known.card_message_id is not None
            if usable and known is not None and known.chat_id == staff_chat:
                place: Place | None = known
            else:
                place = await self._place(ticket_id)
            if place is None:
                return None
            return place.chat_id, await send(place)
        except BadRequest as exc:
            if not _thread_gone(exc):
                raise
            place = await self._recreate(ticket_id, exc)
        if place is None:
            return None
        return place.chat_id, await send(place)

    async def _do_open_staff_place(self, effect: OpenStaffPlace) -> None:
        try:
            await self._place(effect.ticket_id)
        except BadRequest as exc:
            if not _thread_gone(exc):
                raise
            await self._recreate(effect.ticket_id, exc)

    async def _do_relay_to_staff(self, effect: RelayToStaff) -> WriteBack | None:
        async with self.services.read() as session:
            message = await messages.get(session, message_id=effect.message_id)
            info = MessageInfo.of(message)
            customer = CustomerInfo.of(await session.get_one(Customer, message.customer_id))
            ticket = await tickets.get(session, ticket_id=effect.ticket_id)
            number = ticket.number or 0
            known = Place.of(ticket)
            already = message.staff_message_id is not None and known is not None
            relayed_in = message.staff_chat_id
        if already and relayed_in == self.services.staff.chat_id:
            return None  # carried out before a restart
        if self._staff_chat() is None:
            return None

        async def send(place: Place) -> int:
            async with self.services.staff.posting():
                return await self._relay(place, customer, number, info)

        sent = await self._in_place(effect.ticket_id, send, known)
        if sent is None:
            return None
        message_id, (chat_id, staff_message_id) = effect.message_id, sent

        async def remember(session: AsyncSession) -> None:
            await messages.set_staff_copy(
                session,
                message_id=message_id,
                staff_chat_id=chat_id,
                staff_message_id=staff_message_id,
            )

        return remember

    async def _relay(
        self, place: Place, customer: CustomerInfo, number: int, message: MessageInfo
    ) -> int:
        """Relay a customer's message into the ticket's place; returns the staff message id."""
        header = texts.relay_header(customer, number)
        if message.media_kind is None or message.customer_message_id is None:
            sent = await self._send_html(
                place.chat_id,
                texts.split_escaped(header, message.text),
                thread_id=place.thread_id,
                reply_parameters=place.reply_parameters(),
            )
            return sent[0].message_id
        caption: str | None = None
        overflow: list[str] = []
        if message.media_kind in CAPTIONED_KINDS:
            parts = texts.split_escaped(header, message.text, texts.TELEGRAM_CAPTION_LIMIT)
            caption = parts[0]
            if len(parts) > 1:  # a long caption (Telegram Premium): the full text follows
                caption = header
                overflow = texts.split_escaped(header, message.text)
        copied = await self.bot.copy_message(
            place.chat_id,
            from_chat_id=message.customer_chat_id or customer.chat_id or 0,
            message_id=message.customer_message_id,
            caption=caption,
            parse_mode=ParseMode.HTML if caption else None,
            message_thread_id=place.thread_id,
            reply_parameters=place.reply_parameters(),
        )
        if overflow:
            await self._send_html(
                place.chat_id,
                overflow,
                thread_id=place.thread_id,
                reply_parameters=ReplyParameters(
                    copied.message_id, allow_sending_without_reply=True
                ),
            )
        return copied.message_id

    async def _do_refresh_card(self, effect: RefreshCard) -> None:
        async with self.services.read() as session:
            later = await outbox.pending_after(
                session, destination=effect.destination, kind=effect.kind
            )
        if later:
            return  # a later refresh shows the same card as it will be then: one edit is enough
        place = await self._place(effect.ticket_id, open_if_missing=False)
        if place is None or place.card_message_id is None:
            return
        async with self.services.read() as session:
            card = await tickets.card(session, ticket_id=effect.ticket_id)
        record = await self.services.customer_record(card.customer.id)
        try:
            await self.bot.edit_message_text(
                texts.staff_card(card, self._tz, record),
                chat_id=place.chat_id,
                message_id=place.card_message_id,
                parse_mode=ParseMode.HTML,
                reply_markup=render.keyboard(
                    render_card_keyboard(card.ticket.id, str(card.ticket.status))
                ),  # type: ignore[arg-type]
            )
        except BadRequest as exc:
            if "not modified" not in str(exc).lower():
                log.warning("could not update the card of #%s: %s", card.ticket.number, exc)

    async def _do_notify_thread(self, effect: NotifyThread) -> None:
        html = render.say(effect.say, self._tz)

        async def send(place: Place) -> int:
            sent = await self._send_html(
                place.chat_id,
                texts.split_lines(html),
                thread_id=place.thread_id,
                reply_parameters=place.reply_parameters(),
            )
            return sent[0].message_id

        await self._in_place(effect.ticket_id, send)

    async def _do_to_staff_chat(self, effect: ToStaffChat) -> None:
        reply = (
            ReplyParameters(effect.reply_to_message_id, allow_sending_without_reply=True)
            if effect.reply_to_message_id is not None
            else None
        )
        await self._send_html(
            self._current(effect.chat_id),
            texts.split_lines(render.say(effect.say, self._tz)),
            thread_id=effect.thread_id,
            reply_parameters=reply,
        )

    async def _do_staff_queue(self, effect: StaffQueue) -> None:
        async with self.services.read() as session:
            items = await tickets.queue(session)
        await self._send_html(
            self._current(effect.chat_id),
            texts.split_lines(texts.queue(items, self.services.now())),
            thread_id=effect.thread_id,
        )

    async def _do_edit_staff_keyboard(self, effect: EditStaffKeyboard) -> None:
        markup = render.keyboard(effect.keyboard, self._categories())
        await self.bot.edit_message_reply_markup(
            chat_id=effect.chat_id,
            message_id=effect.message_id,
            reply_markup=markup,  # type: ignore[arg-type]
        )

    async def _do_post(self, effect: Post) -> None:
        markup = render.keyboard(effect.keyboard, self._categories())
        reply = (
            ReplyParameters(effect.reply_to_message_id, allow_sending_without_reply=True)
            if effect.reply_to_message_id is not None
            else None
        )
        if effect.html:
            await self._send_html(
                effect.chat_id,
                effect.html,
                thread_id=effect.thread_id,
                reply_parameters=reply,
                reply_markup=markup,
            )
        if effect.photo_png_base64:
            await self.bot.send_photo(
                effect.chat_id,
                photo=InputFile(base64.b64decode(effect.photo_png_base64), filename="chart.png"),
                caption=effect.photo_caption,
                message_thread_id=effect.thread_id,
            )

    def _current(self, chat_id: int) -> int:
        """A reply meant for the staff chat goes to where the staff chat is now."""
        staff = self.services.staff
        if staff.chat_id is not None and chat_id in staff.former_ids:
            return staff.chat_id
        return chat_id


def render_card_keyboard(ticket_id: int, status: str) -> Keyboard:
    return Keyboard("staff_card", (ticket_id, status))


def _customer_of(effect: Effect) -> tuple[int | None, int | None]:
    if isinstance(effect, ToCustomer):
        return effect.customer_id, None
    if isinstance(effect, CustomerStatus):
        return effect.customer_id, None
    if isinstance(effect, RelayToCustomer):
        return None, effect.ticket_id
    return None, None
