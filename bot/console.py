"""`python main.py console`: the support conversation in a terminal, without Telegram.

Each line typed is a customer message; the bot's replies and what the staff chat would show are
printed. ``/agent TEXT`` answers as an agent, ``/resolve`` resolves, ``/rate N`` rates. The same
flows as the bot (``crm/support/flows.py``), so the same rules, and the same database; the
outcomes are carried out as text instead of through Telegram.
"""

from __future__ import annotations

import html
import re
from collections.abc import Awaitable, Callable

from rich.console import Console
from rich.markup import escape
from sqlalchemy.ext.asyncio import AsyncSession

from bot import render, texts
from bot.services import AppServices
from crm import customers, messages, ratings, tickets
from crm.errors import KefuError, TicketNotFound
from crm.models import Customer
from crm.schemas import CustomerInfo, MessageInfo
from crm.support import flows
from crm.support.flows import CustomerMessage, Person, StaffMember, StaffSpot
from crm.support.outcomes import (
    AnswerButton,
    AnswerStaffButton,
    CustomerStatus,
    EditKeyboard,
    EditStaffKeyboard,
    Effect,
    NotifyThread,
    OpenStaffPlace,
    Outcome,
    Post,
    RefreshCard,
    RelayToCustomer,
    RelayToStaff,
    StaffQueue,
    ToCustomer,
    ToStaffChat,
)
from crm.support.understanding import prepare

_TAG = re.compile(r"<[^>]+>")
CONSOLE_AGENT_ID = -1
CONSOLE_STAFF_CHAT = 0

HELP = (
    "Type a message as the customer. Commands: /agent TEXT (reply as an agent), /note TEXT, "
    "/claim, /category NAME, /resolve, /reopen, /rate N [comment], /yes, /no (after an automatic "
    "answer), /status, /new, /human, /language [en|zh], /queue, /quit"
)
KEYBOARD_HINTS = {
    "solved": "[ Yes ] [ No ]   (answer with /yes or /no)",
    "rating": "[ 1 ] [ 2 ] [ 3 ] [ 4 ] [ 5 ]   (answer with /rate N)",
    "languages": "[ English ] [ 简体中文 ]   (answer with /language en or /language zh)",
}


def plain(html_text: str) -> str:
    return html.unescape(_TAG.sub("", html_text))


Flow = Callable[[AsyncSession], Awaitable[Outcome]]


class ConsoleSession:
    """One customer and one agent talking through Kefu's flows."""

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
        self.person = Person(
            telegram_user_id=user_id, chat_id=user_id, first_name=name, language_code=language
        )
        self.language = language
        self.member = StaffMember(CONSOLE_AGENT_ID, agent_name, None, allowed=True)
        self.out = out or (lambda who, text: print(f"[{who}] {text}"))

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
            handler = self._commands().get(command)
            if handler is not None:
                await handler(rest.strip())
            elif command.startswith("/"):
                await self._run(self._greet("help"))  # like the bot: unknown commands get help
            else:
                await self.customer_says(line)
        except KefuError as exc:
            self.out("error", plain(texts.customer_text(self.language, exc.code)))
        return True

    def _commands(self) -> dict[str, Callable[[str], Awaitable[object]]]:
        return {
            "/agent": self.agent_says,
            "/note": lambda text: self._staff_command("note", text),
            "/claim": lambda _: self._staff_command("claim"),
            "/category": lambda name: self._staff_command("category", name),
            "/resolve": lambda _: self._staff_command("resolve"),
            "/reopen": lambda _: self._staff_command("reopen", latest=True),
            "/rate": self.rate,
            "/status": lambda _: self._run(self._simple(flows.status_asked)),
            "/new": lambda _: self._run(self._simple(flows.new_ticket_asked)),
            "/human": lambda _: self._run(self._simple(flows.human_asked)),
            "/queue": lambda _: self._run(self._queue()),
            "/help": lambda _: self._help(),
            "/start": lambda _: self._run(self._greet("start")),
            "/language": self.language_command,
            "/yes": lambda _: self.verdict(True),
            "/no": lambda _: self.verdict(False),
        }

    async def _help(self) -> None:
        self.out("console", HELP)

    # ------------------------------------------------------------------ running flows

    async def _run(self, flow: Flow) -> Outcome:
        outcome = await self.services.runner.run(flow, store_effects=False)
        for effect in outcome.effects:
            await self.show(effect)
        return outcome

    def _greet(self, key: str) -> Flow:
        services = self.services
        return lambda s: flows.greeted(
            s, desk=services.desk, person=self.person, key=key, now=services.now()
        )

    def _simple(self, flow: Callable[..., Awaitable[Outcome]]) -> Flow:
        services = self.services
        return lambda s: flow(s, desk=services.desk, person=self.person, now=services.now())

    def _queue(self) -> Flow:
        spot = StaffSpot(CONSOLE_STAFF_CHAT, None, None)
        return lambda s: flows.queue_asked(
            s, member=self.member, spot=spot, now=self.services.now()
        )

    async def customer_says(self, text: str, *, reply_to: int | None = None) -> None:
        services = self.services
        now = services.now()
        understood = await prepare(
            services.session_factory,
            services.analyzer,
            telegram_user_id=self.person.telegram_user_id,
            text=text,
            now=now,
        )
        incoming = CustomerMessage(person=self.person, text=text, reply_to_message_id=reply_to)
        await self._run(
            lambda s: flows.customer_wrote(
                s, desk=services.desk, incoming=incoming, understood=understood, now=now
            )
        )

    async def verdict(self, solved: bool) -> None:
        """/yes or /no: the buttons under the latest automatic answer (found in the database,
        so it survives a restart); the flow refuses when it was answered already."""
        async with self.services.session() as session:
            ticket_id = await flows.latest_automatic_answer(
                session, telegram_user_id=self.person.telegram_user_id
            )
        if ticket_id is None:
            self.out("console", "There is no automatic answer waiting for /yes or /no.")
            return
        services = self.services
        await self._run(
            lambda s: flows.verdict(
                s,
                desk=services.desk,
                person=self.person,
                tap=None,
                ticket_id=ticket_id,
                solved=solved,
                language=None,
                now=services.now(),
            )
        )

    async def language_command(self, code: str) -> None:
        """/language shows the choice; /language en|zh makes it (the buttons' stand-in)."""
        services = self.services
        if not code:
            await self._run(self._simple(flows.language_menu))
            return
        await self._run(
            lambda s: flows.language_chosen(
                s, desk=services.desk, person=self.person, tap=None, code=code, now=services.now()
            )
        )

    async def _ticket_id(self, *, latest: bool = False) -> int:
        """The customer's ticket in work (or, for /reopen, their latest one)."""
        async with self.services.session() as session:
            customer = await customers.get_by_telegram_id(
                session, telegram_user_id=self.person.telegram_user_id
            )
            if customer is None:
                raise TicketNotFound()
            if latest:
                return (await tickets.get_latest_for_customer(session, customer_id=customer.id)).id
            ticket = await tickets.get_active_for_customer(session, customer_id=customer.id)
        if ticket is None:
            raise TicketNotFound()
        return ticket.id

    async def agent_says(self, text: str) -> None:
        ticket_id = await self._ticket_id()
        services = self.services
        spot = StaffSpot(CONSOLE_STAFF_CHAT, None, None)
        await self._run(
            lambda s: flows.agent_wrote(
                s,
                desk=services.desk,
                member=self.member,
                spot=spot,
                text=text,
                media=None,
                now=services.now(),
                ticket_id=ticket_id,
            )
        )

    async def _staff_command(
        self, command: str, argument: str = "", *, latest: bool = False
    ) -> None:
        ticket_id = await self._ticket_id(latest=latest)
        services = self.services
        spot = StaffSpot(CONSOLE_STAFF_CHAT, None, None)
        await self._run(
            lambda s: flows.staff_command(
                s,
                desk=services.desk,
                member=self.member,
                spot=spot,
                command=command,
                argument=argument,
                ticket_id=ticket_id,
                now=services.now(),
            )
        )

    async def rate(self, argument: str) -> None:
        """/rate N [comment]: the rating buttons' stand-in; a comment is the customer's reply
        to the invitation, as in Telegram."""
        score_text, _, comment = argument.partition(" ")
        try:
            score = int(score_text)
        except ValueError:
            score = 0
        ticket_id = await self._ticket_id(latest=True)
        services = self.services
        outcome = await self._run(
            lambda s: flows.rated(
                s,
                desk=services.desk,
                person=self.person,
                tap=None,
                ticket_id=ticket_id,
                score=score,
                now=services.now(),
            )
        )
        prompt = next(
            (e for e in outcome.effects if isinstance(e, ToCustomer) and e.remember), None
        )
        if comment.strip() and prompt is not None and prompt.remember_id is not None:
            await self.customer_says(comment.strip(), reply_to=-prompt.remember_id)

    # ------------------------------------------------------------------ effects as text

    async def show(self, effect: Effect) -> None:
        tz = self.services.settings.tz
        if isinstance(effect, ToCustomer):
            self.bot(render.say(effect.say, tz))
            if effect.remember == "rating_prompt" and effect.remember_id is not None:
                # The console's invitation has no Telegram message id: a stand-in one.
                async with self.services.session() as session:
                    await ratings.set_comment_prompt(
                        session, rating_id=effect.remember_id, message_id=-effect.remember_id
                    )
            hint = KEYBOARD_HINTS.get(effect.keyboard.kind) if effect.keyboard else None
            if hint:
                self.out("bot → customer", hint)
        elif isinstance(effect, CustomerStatus):
            async with self.services.session() as session:
                active = await tickets.list_active_for_customer(
                    session, customer_id=effect.customer_id
                )
            self.bot(texts.status_list(effect.language, active, tz))
        elif isinstance(effect, OpenStaffPlace):
            async with self.services.session() as session:
                card = await tickets.card(session, ticket_id=effect.ticket_id)
            record = await self.services.customer_record(card.customer.id)
            self.staff(texts.staff_card(card, tz, record))
        elif isinstance(effect, RelayToStaff):
            async with self.services.session() as session:
                row = await messages.get(session, message_id=effect.message_id)
                info = MessageInfo.of(row)
                customer = CustomerInfo.of(await session.get_one(Customer, row.customer_id))
                number = (await tickets.get(session, ticket_id=effect.ticket_id)).number or 0
            self.staff(texts.relay_header(customer, number) + "\n" + texts.escape(info.text))
        elif isinstance(effect, NotifyThread | ToStaffChat):
            self.staff(render.say(effect.say, tz))
        elif isinstance(effect, RelayToCustomer):
            async with self.services.session() as session:
                text = (await messages.get(session, message_id=effect.message_id)).text
            signature = render.say(effect.signature, tz) if effect.signature else None
            self.out("bot → customer", f"{text}\n\n{plain(signature)}" if signature else text)
        elif isinstance(effect, StaffQueue):
            async with self.services.session() as session:
                items = await tickets.queue(session)
            self.staff(texts.queue(items, self.services.now()))
        elif isinstance(effect, Post):
            for part in effect.html:
                (self.bot if effect.for_customer else self.staff)(part)
        elif isinstance(
            effect,
            RefreshCard | AnswerButton | AnswerStaffButton | EditKeyboard | EditStaffKeyboard,
        ):
            pass  # buttons and card refreshes have no text of their own


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
