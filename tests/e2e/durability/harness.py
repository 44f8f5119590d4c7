"""Kefu as a separate process (``python main.py run``) against the fake Bot API, plus the
observations the durability tests make: what each person received and which rows exist.

The bot runs exactly as a user starts it (environment variables, its own migrations, long
polling); the tests kill it with SIGKILL, make the Bot API fail, delete topics, migrate the
staff chat... and then look at the fake server (what was sent, where, how often, when) and at
the database through their own SQLAlchemy engine (raw SQL on the documented tables).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.fakebotapi import JSON, FakeBotAPI

ROOT = Path(__file__).resolve().parents[3]
# Start-up imports spaCy, scikit-learn and SciPy: allow for a slow, busy CI machine.
START_TIMEOUT = 120.0
STOP_TIMEOUT = 30.0
ERROR_WORDS = re.compile(r"sorry|wrong", re.IGNORECASE)
TICKET_NUMBER = re.compile(r"#(\d+)")
CARD = re.compile(r"Ticket #\d+")  # the first line of a ticket card (it may quote the customer)


def body(message: JSON) -> str:
    return str(message.get("text") or message.get("caption") or "")


def _open_log(path: Path) -> IO[bytes]:
    return path.open("wb")


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


async def eventually(predicate: Callable[[], bool], timeout: float) -> bool:  # noqa: ASYNC109
    """Poll ``predicate`` every 50 ms for up to ``timeout`` s; whether it came true."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


@dataclass
class BotProcess:
    """One ``python main.py run``; its output goes to a file (survives SIGKILL, never blocks)."""

    process: asyncio.subprocess.Process
    log_path: Path
    killed_at: float | None = None  # time.monotonic() just before SIGKILL

    @property
    def running(self) -> bool:
        return self.process.returncode is None

    @property
    def log(self) -> str:
        return _read(self.log_path)

    async def kill(self) -> float:
        """SIGKILL (no clean-up of any kind); returns the moment it was sent."""
        self.killed_at = time.monotonic()
        if self.running:
            self.process.send_signal(signal.SIGKILL)
        await self.process.wait()
        return self.killed_at

    async def stop(self) -> int:
        """SIGINT, the way a person stops the bot with Ctrl+C; returns the exit code."""
        if self.running:
            self.process.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(self.process.wait(), STOP_TIMEOUT)
            except TimeoutError:
                await self.kill()
                raise AssertionError(
                    f"the bot did not stop within {STOP_TIMEOUT}s of SIGINT\n{self.log[-3000:]}"
                ) from None
        code = self.process.returncode
        assert code is not None
        return code


@dataclass
class Desk:
    """The fake Telegram around one support desk, and the bot processes serving it."""

    api: FakeBotAPI
    database_url: str
    workdir: Path
    models_dir: Path
    token: str
    staff: JSON | None = None
    agents: list[JSON] = field(default_factory=list)
    processes: list[BotProcess] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"<Desk staff={self.staff_id if self.staff else None} {self.database_url!r}>"

    @property
    def staff_id(self) -> int:
        assert self.staff is not None, "set up the staff chat first"
        return int(self.staff["id"])

    # ------------------------------------------------------------------ the world

    def forum_staff_chat(self, agents: int = 1) -> JSON:
        """A forum supergroup (topics on) whose members are the agents, all admins."""
        self.agents = [self.api.add_user(f"Agent{i}") for i in range(agents)]
        self.staff = self.api.add_supergroup("Support desk", is_forum=True, admins=self.agents)
        return self.staff

    def basic_group_staff_chat(self) -> JSON:
        """A basic group (no topics; Telegram may upgrade it to a supergroup later)."""
        owner = self.api.add_user("Owner")
        self.agents = [self.api.add_user("Agent0")]
        self.staff = self.api.add_group("Support desk", members=self.agents, owner=owner)
        return self.staff

    def customers(self, count: int, prefix: str = "Customer") -> list[JSON]:
        return [self.api.add_user(f"{prefix}{i:02d}") for i in range(count)]

    # ------------------------------------------------------------------ processes

    def env(self, **overrides: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KEFU_")}
        env.update(
            KEFU_TELEGRAM_TOKEN=self.token,
            KEFU_TELEGRAM_API_URL=self.api.url,
            KEFU_DATA_DIR=str(self.workdir / "data"),
            KEFU_DATABASE_URL=self.database_url,
            KEFU_STAFF_CHAT_ID=str(self.staff_id),
            KEFU_AGENT_IDS=",".join(str(a["id"]) for a in self.agents),
            KEFU_AUTO_ANSWER="false",
            KEFU_TELEGRAM_RATE_LIMITS="off",
        )
        env.update(overrides)
        return env

    async def start(self, **env_overrides: str) -> BotProcess:
        """Start ``python main.py run`` and wait until it polls for updates."""
        models = self.workdir / "data" / "models"
        if not models.exists():  # trained once per test session: no training at start-up
            shutil.copytree(self.models_dir, models)
        log_path = self.workdir / f"bot-{len(self.processes)}.log"
        log_file = _open_log(log_path)
        mark = len(self.api.requests)
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                str(ROOT / "main.py"),
                "run",
                cwd=str(self.workdir),
                env=self.env(**env_overrides),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=asyncio.subprocess.STDOUT,
            )
        finally:
            log_file.close()
        bot = BotProcess(process, log_path)
        self.processes.append(bot)

        def polling() -> bool:
            return not bot.running or any(m == "getUpdates" for m, _ in self.api.requests[mark:])

        if not await eventually(polling, START_TIMEOUT) or not bot.running:
            raise AssertionError(f"the bot did not start polling\n{bot.log[-3000:]}")
        return bot

    async def stop_all(self) -> None:
        """SIGINT every running process; it must exit cleanly."""
        for bot in self.processes:
            if bot.running:
                code = await bot.stop()
                assert code == 0, f"exit code {code}\n{bot.log[-3000:]}"

    async def kill_all(self) -> None:
        for bot in self.processes:
            if bot.running:
                await bot.kill()

    def assert_clean_logs(self) -> None:
        """No traceback and no token in any log (killed processes included)."""
        secret = self.token.split(":", 1)[1]
        for bot in self.processes:
            log = bot.log
            assert self.token not in log and secret not in log, f"token in {bot.log_path.name}"
            assert "Traceback" not in log, f"{bot.log_path.name}:\n{log[-4000:]}"

    async def quiet(self, seconds: float = 1.0, timeout: float = 60.0) -> None:  # noqa: ASYNC109
        """Wait until every update is confirmed and no request came for ``seconds``."""
        await self.api.wait_idle(quiet=seconds, timeout=timeout)

    # ------------------------------------------------------------------ what people received

    def staff_messages(self, chat_id: int | None = None) -> list[JSON]:
        """Every bot message ever posted in the staff chat (also those in deleted topics)."""
        return [m for m in self.api.sent_to(self.staff_id if chat_id is None else chat_id)]

    def relays(self, chat_id: int | None = None) -> list[JSON]:
        """Staff-chat messages that are not cards, service messages or topics."""
        return [m for m in self.staff_messages(chat_id) if body(m) and not CARD.search(body(m))]

    def relays_of(self, fragment: str, chat_id: int | None = None) -> list[JSON]:
        """Staff-chat messages carrying a customer's text (unique per message in these tests)."""
        return [m for m in self.relays(chat_id) if fragment in body(m)]

    def cards(self, number: int, chat_id: int | None = None) -> list[JSON]:
        return [m for m in self.staff_messages(chat_id) if f"Ticket #{number}" in body(m)]

    def to_customer(self, customer: JSON) -> list[JSON]:
        return self.api.sent_to(int(customer["id"]))

    def acknowledgements(self, customer: JSON) -> list[JSON]:
        """Messages to the customer that give a ticket number (``#1001``)."""
        return [m for m in self.to_customer(customer) if TICKET_NUMBER.search(body(m))]

    def acknowledged(self) -> set[int]:
        """Chat ids of every private chat that got an acknowledgement (one pass)."""
        return {
            int(m["chat"]["id"])
            for m in self.api.sent
            if m["chat"]["type"] == "private" and TICKET_NUMBER.search(body(m))
        }

    def error_texts(self, customer: JSON) -> list[str]:
        return [body(m) for m in self.to_customer(customer) if ERROR_WORDS.search(body(m))]

    def topics_created(self) -> list[int]:
        """Thread ids of the forum topics the bot created, oldest first."""
        return [
            int(m["message_thread_id"])
            for m in self.staff_messages()
            if "forum_topic_created" in m and m["from"]["id"] == self.api.bot_user["id"]
        ]


# ---------------------------------------------------------------------- the database


@dataclass(frozen=True)
class Inbound:
    id: int
    customer_chat_id: int | None
    customer_message_id: int | None
    ticket_id: int | None
    text: str


@dataclass(frozen=True)
class TicketRow:
    id: int
    number: int | None
    status: str
    telegram_user_id: int | None
    staff_chat_id: int | None
    staff_thread_id: int | None
    staff_card_message_id: int | None


async def _rows(url: str, sql: str) -> list[Any]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(text(sql))).all())
    finally:
        await engine.dispose()


async def inbound_rows(url: str) -> list[Inbound]:
    rows = await _rows(
        url,
        "SELECT id, customer_chat_id, customer_message_id, ticket_id, text FROM messages"
        " WHERE direction = 'in' ORDER BY id",
    )
    return [Inbound(r[0], r[1], r[2], r[3], r[4] or "") for r in rows]


async def ticket_rows(url: str) -> list[TicketRow]:
    rows = await _rows(
        url,
        "SELECT t.id, t.number, t.status, c.telegram_user_id, t.staff_chat_id,"
        " t.staff_thread_id, t.staff_card_message_id"
        " FROM tickets t JOIN customers c ON c.id = t.customer_id ORDER BY t.id",
    )
    return [TicketRow(*r) for r in rows]


def tickets_of(tickets: Iterable[TicketRow], customer: JSON) -> list[TicketRow]:
    return [t for t in tickets if t.telegram_user_id == customer["id"]]


def duplicates(keys: Iterable[Any]) -> dict[Any, int]:
    return {key: n for key, n in Counter(keys).items() if n > 1}
