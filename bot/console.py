"""`python main.py console`: the support conversation in a terminal, without Telegram.

Each line typed is a customer message; the bot's replies and what the staff chat would show are
printed. ``/agent TEXT`` answers as an agent, ``/resolve`` resolves, ``/rate N`` rates. The same
services and the same database as the bot.
"""

from __future__ import annotations

import html
import re
from collections.abc import Awaitable, Callable

from rich.console import Console
from rich.markup import escape

from bot import texts, understanding
from bot.services import AppServices
from crm import agents, conversation, customers, tickets
from crm.conversation import Incoming, RouteKind
from crm.errors import KefuError, TicketNotFound
from crm.schemas import CustomerInfo, TicketInfo

_TAG = re.compile(r"<[^>]+>")

HELP = (
    "Type a message as the customer. Commands: /agent TEXT (reply as an agent), /note TEXT, "
    "/resolve, /reopen, /rate N [comment], /yes, /no (after an automatic answer), /status, /new, "
    "/human, /queue, /quit"
)


def plain(html_text: str) -> str:
    return html.unescape(_TAG.sub("", html_text))


class ConsoleSession:
    """One customer and one agent talking through Kefu's services."""

    def __init__(
        self,
        services: AppServices,
        *,
        user_id: int = 1,
        name: str = "Console customer",
        language: str = "en",
        agent_name: str = "Agent",
        out: Callable[[str, str], None] | None = None,
    ) -> None:
        self.services = services
        self.user_id = user_id
        self.name = name
        self.language = language
        self.agent_name = agent_name
        self.out = out or (lambda who, text: print(f"[{who}] {text}"))
        self._customer: CustomerInfo | None = None
        self._message_id = 0
        self._awaiting_verdict: tuple[int, str] | None = None  # (ticket id, answer language)

    def bot(self, html_text: str) -> None:
        self.out("bot → customer", plain(html_text))

    def staff(self, html_text: str) -> None:
        self.out("staff chat", plain(html_text))

    async def handle(self, line: str) -> bool:
        """Process one input line; False when the user wants to quit."""
        line = line.strip()
        if not line:
            return True
        command, _, rest = line.partition(" ")
        try:
            if command in ("/quit", "/exit"):
                return False
            await self._load_customer()
            handler = self._commands().get(command)
            if handler is not None:
                await handler(rest.strip())
            elif command.startswith("/"):
                await self._help()  # like the bot: an unknown command is answered with help
            else:
                await self.customer_says(line)
        except KefuError as exc:
            self.out("error", plain(texts.customer_text(self.language, exc.code)))
        return True

    def _commands(self) -> dict[str, Callable[[str], Awaitable[None]]]:
        return {
            "/agent": self.agent_says,
            "/note": self.note,
            "/resolve": lambda _: self.resolve(),
            "/reopen": lambda _: self.reopen(),
            "/rate": self.rate,
            "/status": lambda _: self.status(),
            "/new": lambda _: self.new(),
            "/human": lambda _: self.human(),
            "/queue": lambda _: self.queue(),
            "/help": lambda _: self._help(),
            "/start": lambda _: self._start(),
            "/yes": lambda _: self.verdict(True),
            "/no": lambda _: self.verdict(False),
        }

    async def _load_customer(self) -> None:
        """Pick up where an earlier console session left off (same database, same customer)."""
        if self._customer is not None:
            return
        async with self.services.session() as session:
            row = await customers.get_by_telegram_id(session, telegram_user_id=self.user_id)
            if row is not None:
                self._customer = CustomerInfo.of(row)

    async def _start(self) -> None:
        self.bot(texts.customer_text(self.language, "start", name=self.name))

    async def _help(self) -> None:
        self.out("console", HELP)

    async def customer_says(self, text: str) -> None:
        services = self.services
        self._message_id += 1
        incoming = Incoming(
            telegram_user_id=self.user_id,
            chat_id=self.user_id,
            first_name=self.name,
            language_code=self.language,
            text=text,
            message_id=None,
        )
        async with services.session() as session:
            customer, message_id = await conversation.store_incoming(
                session, incoming=incoming, now=services.now()
            )
            self._customer = customer
        async with services.session() as session:
            routed = await conversation.route_incoming(
                session, message_id=message_id, reply_to_message_id=None, now=services.now()
            )
        understood = await understanding.understand(services, routed)
        language = understanding.reply_language(customer.language, understood)
        number = routed.ticket.number
        if routed.kind == RouteKind.NEW_TICKET:
            answer = understanding.automatic_answer(services, understood, language)
            if answer is not None:
                async with services.session() as session:
                    await conversation.auto_answer(
                        session, ticket_id=routed.ticket.id, text=answer, now=services.now()
                    )
                self._awaiting_verdict = (routed.ticket.id, language)
                self.bot(texts.customer_text(language, "auto_answer", number=number, answer=answer))
                self.out("bot → customer", "[ Yes ] [ No ]   (answer with /yes or /no)")
                return
            now = services.now()
            opening = None
            if not services.hours.is_open(now):
                opening = texts.format_local(services.hours.next_opening(now), services.settings.tz)
            self.bot(texts.ack_new_ticket(language, number, opening))
            await self._hand_to_agents(routed.ticket.id)
            return
        if self._awaiting_verdict is not None and self._awaiting_verdict[0] == routed.ticket.id:
            self.bot(texts.customer_text(language, "escalated_after_answer", number=number))
            await self._hand_to_agents(routed.ticket.id)
            return
        self.staff(texts.relay_header(customer, number) + "\n" + texts.escape(text))

    async def _hand_to_agents(self, ticket_id: int) -> None:
        """What the staff chat would show: the card with the analysis, then the messages."""
        services = self.services
        self._awaiting_verdict = None
        async with services.session() as session:
            action = await conversation.hand_to_agents(
                session, ticket_id=ticket_id, now=services.now()
            )
            unseen = await conversation.unseen_by_agents(session, ticket_id=ticket_id)
        card = await understanding.fresh_card(services, ticket_id)
        record = await services.customer_record(action.customer.id)
        self.staff(texts.staff_card(card, services.settings.tz, record))
        for message in unseen:
            header = texts.relay_header(action.customer, action.ticket.number)
            self.staff(header + "\n" + texts.escape(message.text))

    async def verdict(self, solved: bool) -> None:
        """/yes or /no after an automatic answer."""
        if self._awaiting_verdict is None or self._customer is None:
            self.out("console", "There is no automatic answer waiting for /yes or /no.")
            return
        ticket_id, language = self._awaiting_verdict
        services = self.services
        async with services.session() as session:
            if solved:
                ticket = await conversation.self_served(
                    session, ticket_id=ticket_id, customer_id=self._customer.id, now=services.now()
                )
            else:
                ticket = (
                    await conversation.escalate(
                        session,
                        ticket_id=ticket_id,
                        customer_id=self._customer.id,
                        now=services.now(),
                    )
                ).ticket
        if solved:
            self._awaiting_verdict = None
            self.bot(texts.customer_text(language, "self_served", number=ticket.number))
            return
        self.bot(texts.customer_text(language, "escalated_after_answer", number=ticket.number))
        await self._hand_to_agents(ticket_id)

    async def _active(self) -> TicketInfo:
        if self._customer is None:
            raise TicketNotFound()
        async with self.services.session() as session:
            active = await tickets.list_active_for_customer(session, customer_id=self._customer.id)
        if not active:
            raise TicketNotFound()
        return active[-1]

    async def _agent_id(self) -> int:
        async with self.services.session() as session:
            agent = await agents.upsert(
                session,
                telegram_user_id=-1,
                first_name=self.agent_name,
                username=None,
                now=self.services.now(),
            )
            return agent.id

    async def agent_says(self, text: str) -> None:
        ticket = await self._active()
        agent_id = await self._agent_id()
        async with self.services.session() as session:
            reply = await conversation.agent_message(
                session, ticket_id=ticket.id, agent_id=agent_id, text=text, now=self.services.now()
            )
        body = text
        if self.services.settings.agent_signature:
            body += "\n\n" + texts.agent_signature(reply.customer.language, self.agent_name)
        self.out("bot → customer", body)

    async def note(self, text: str) -> None:
        ticket = await self._active()
        agent_id = await self._agent_id()
        async with self.services.session() as session:
            await conversation.add_note(
                session, ticket_id=ticket.id, agent_id=agent_id, text=text, now=self.services.now()
            )
        self.staff(texts.staff_text("note_saved", number=ticket.number))

    async def resolve(self) -> None:
        ticket = await self._active()
        agent_id = await self._agent_id()
        async with self.services.session() as session:
            action = await conversation.resolve(
                session, ticket_id=ticket.id, agent_id=agent_id, now=self.services.now()
            )
        self.bot(texts.customer_text(action.customer.language, "resolved", number=ticket.number))
        self.out("bot → customer", "[ 1 ] [ 2 ] [ 3 ] [ 4 ] [ 5 ]   (answer with /rate N)")
        self.staff(texts.staff_text("resolved", agent=self.agent_name, number=ticket.number))

    async def reopen(self) -> None:
        number = await self._last_ticket_number()
        async with self.services.session() as session:
            ticket = await tickets.get_by_number(session, number=number)
            await conversation.reopen(session, ticket_id=ticket.id, now=self.services.now())
        self.staff(texts.staff_text("reopened", agent=self.agent_name, number=number))

    async def _last_ticket_number(self) -> int:
        if self._customer is None:
            raise TicketNotFound()
        async with self.services.session() as session:
            ticket = await tickets.get_latest_for_customer(session, customer_id=self._customer.id)
        return ticket.number or 0

    async def rate(self, argument: str) -> None:
        score_text, _, comment = argument.partition(" ")
        if not score_text.isdigit():
            self.out("console", "Usage: /rate N [comment], with N from 1 to 5")
            return
        number = await self._last_ticket_number()
        assert self._customer is not None  # noqa: S101 - set by _last_ticket_number
        async with self.services.session() as session:
            ticket = await tickets.get_by_number(session, number=number)
            given = await conversation.rate(
                session,
                ticket_id=ticket.id,
                customer_id=self._customer.id,
                score=int(score_text),
                now=self.services.now(),
            )
            if comment.strip():
                await conversation.add_rating_comment(
                    session, rating_id=given.rating_id, text=comment.strip()
                )
        self.bot(texts.customer_text(self.language, "rated", score=given.score))
        self.staff(
            texts.staff_text(
                "rating", number=number, stars=texts.stars(given.score), score=given.score
            )
        )

    async def status(self) -> None:
        if self._customer is None:
            self.bot(texts.customer_text(self.language, "status_none"))
            return
        async with self.services.session() as session:
            active = await tickets.list_active_for_customer(session, customer_id=self._customer.id)
        self.bot(texts.status_list(self.language, active, self.services.settings.tz))

    async def new(self) -> None:
        if self._customer is not None:
            async with self.services.session() as session:
                await conversation.request_new_ticket(session, customer_id=self._customer.id)
        self.bot(texts.customer_text(self.language, "new_ticket"))

    async def human(self) -> None:
        ticket = None
        if self._customer is not None:
            async with self.services.session() as session:
                ticket = await conversation.request_human(
                    session, customer_id=self._customer.id, now=self.services.now()
                )
        if ticket is None:
            self.bot(texts.customer_text(self.language, "human_no_ticket"))
            return
        self.bot(texts.customer_text(self.language, "human_escalated", number=ticket.number))
        self.staff(texts.staff_text("escalated", number=ticket.number))

    async def queue(self) -> None:
        async with self.services.session() as session:
            items = await tickets.queue(session)
        self.staff(texts.queue(items, self.services.now()))


async def run_console(services: AppServices, session: ConsoleSession, console: Console) -> None:
    import asyncio

    console.print(f"[bold]Kefu console[/bold] — {escape(HELP)}")
    while True:
        try:
            line = await asyncio.to_thread(input, "customer> ")
        except EOFError:
            break
        if not await session.handle(line):
            break
