"""Kefu's conversation pipeline under a burst, side by side with a bare PTB echo bot.

Both bots run as separate processes polling the test suite's fake Bot API (tests/fakebotapi.py),
each on a fresh fake server: the echo bot (bench/echo_bot.py) and ``python main.py run`` with a
fresh database (SQLite in a temporary data dir, or a fresh PostgreSQL database that is dropped
afterwards). When a bot asks for updates for the first time, C customers x M distinct support
texts (each with a unique tag such as ``c0042m007``) are queued at once. Done when

* echo bot: every message has been echoed back;
* Kefu: every customer has the acknowledgement of their ticket (``#<number>``) and every message
  has been relayed into the staff chat (a forum supergroup; a message there without buttons that
  carries the tag).

Reported per bot and Bot API latency: messages/s, Kefu/echo ratio, p50/p99 latency from queueing
the update to its relay (or echo) reaching the fake server, acknowledgement latency, whether each
customer's messages arrived in order, duplicates, start-up time (process start to first getUpdates)
and errors in the bot's log. A run that stops making progress (``--stall``) or exceeds
``--timeout`` is reported as partial. ``--profile`` samples the Kefu process with py-spy during
the burst (see ``Profiler``) and summarises where the time goes; ``--summarise DIR`` summarises
the kept output again.

    python bench/bench_pipeline.py                                  # 200 x 10, SQLite, no latency
    python bench/bench_pipeline.py --latency 0 0.05                 # both, in one run
    python bench/bench_pipeline.py --db postgres --json
    python bench/bench_pipeline.py --profile --profile-dir /tmp/kefu-profile
    python bench/bench_pipeline.py --kefu-commit 328cb4f            # a committed version of Kefu

``--kefu-commit`` runs a commit of this repository (``git archive`` into a temporary directory),
so uncommitted work in the checkout does not leak into a measurement. Progress goes to stderr,
the table (or ``--json``) to stdout; ``--save FILE`` keeps the JSON as well. Bot API latency needs
``FakeBotAPI.set_latency``; without it those runs are skipped with a note.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import platform
import re
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, SupportsIndex

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.fakebotapi import FakeBotAPI  # noqa: E402

TOKEN = "123456789:AABenchPipelineTokenForKefu_abcdefgh"  # noqa: S105 - the fake server's
ECHO_BOT = Path(__file__).resolve().parent / "echo_bot.py"
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

SUPPORT_TEXTS = (
    "Hi, my order still hasn't arrived and the tracking page hasn't changed for three days",
    "I was charged twice for the same purchase, could you refund one of the payments?",
    "How do I change the delivery address on the order I placed this morning?",
    "The blender I received is broken, the lid is cracked. I'd like a replacement please",
    "Can I return a jacket that I bought two weeks ago? It is too small",
    "I can't log in to my account, the password reset email never comes",
    "Your courier left the parcel outside in the rain and everything is wet",
    "Is there any discount for ordering more than ten items at once?",
    "The app keeps crashing when I open my order history on Android",
    "I cancelled my subscription last month but you charged my card again",
    "When will the grey version of the running shoes be back in stock?",
    "The invoice is missing my company's VAT number, can you send a corrected one?",
    "I got the wrong size, I ordered a medium and received a large",
    "Please delete my account and all the data you have about me",
    "The promo code from your newsletter says it is invalid at checkout",
    "My refund was approved ten days ago but I still don't see the money",
    "Can you deliver to a pickup point instead of my home address?",
    "The driver was really rude to my mother when he delivered the package",
    "I need to add one more item to my order before it ships, is that possible?",
    "The warranty card was not in the box, how do I register the product?",
    "Thank you, but the problem is still there after restarting the device",
    "Could someone call me back? It is easier to explain on the phone",
    "Why does the checkout page show a different price than the product page?",
    "I am still waiting for an answer, this is quite urgent for me",
)
TAG = re.compile(r"\bc(\d{4})m(\d{3})\b")
TICKET_NUMBER = re.compile(r"#\d+")

JSONDict = dict[str, Any]
Key = tuple[int, int]  # (customer index, message index)


def tag(customer: int, message: int) -> str:
    return f"c{customer:04d}m{message:03d}"


def support_text(customer: int, message: int) -> str:
    body = SUPPORT_TEXTS[(customer * 7 + message * 3) % len(SUPPORT_TEXTS)]
    return f"{body} (ref {tag(customer, message)})"


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of unsorted values; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def spread_ms(values: list[float]) -> JSONDict:
    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 1)

    return {
        "p50": ms(percentile(values, 50)),
        "p99": ms(percentile(values, 99)),
        "max": ms(max(values) if values else None),
    }


# ------------------------------------------------------------------------------ observing the fake


class StampedList(list[Any]):
    """A list that remembers when (``time.perf_counter``) each item was appended.

    It replaces ``FakeBotAPI.sent`` and ``FakeBotAPI.requests`` from the outside, so the time a
    message reached the fake server is exact without touching the server's code.
    """

    def __init__(self, items: Iterable[Any] = ()) -> None:
        super().__init__(items)
        now = time.perf_counter()
        self.stamps: list[float] = [now] * len(self)

    def append(self, item: Any) -> None:
        self.stamps.append(time.perf_counter())
        super().append(item)

    def extend(self, items: Iterable[Any]) -> None:
        for item in items:
            self.append(item)

    def insert(self, index: SupportsIndex, item: Any) -> None:  # keeps stamps aligned
        self.stamps.insert(index, time.perf_counter())
        super().insert(index, item)


def observe(api: FakeBotAPI) -> tuple[StampedList, StampedList]:
    sent = StampedList(api.sent)
    requests = StampedList(api.requests)
    api.sent = sent
    api.requests = requests
    return sent, requests


@dataclass
class Tracker:
    """Reads what the bot sent (incrementally) and keeps the figures of one run."""

    kind: str  # "echo" or "kefu"
    customers: int
    messages: int
    chat_to_customer: dict[int, int]
    staff_chat_id: int | None
    enqueued: dict[Key, float] = field(default_factory=dict)
    relayed: dict[Key, float] = field(default_factory=dict)
    relay_copies: Counter[Key] = field(default_factory=Counter)
    arrival: dict[int, list[int]] = field(default_factory=lambda: defaultdict(list))
    acked: dict[int, float] = field(default_factory=dict)
    ack_copies: Counter[int] = field(default_factory=Counter)
    ticket_numbers: dict[int, set[str]] = field(default_factory=lambda: defaultdict(set))
    other_replies: Counter[str] = field(default_factory=Counter)
    unknown_chats: int = 0
    cursor: int = 0

    @property
    def total(self) -> int:
        return self.customers * self.messages

    def scan(self, sent: StampedList) -> None:
        stamps = sent.stamps if len(sent.stamps) == len(sent) else None
        now = time.perf_counter()
        while self.cursor < len(sent):
            message = sent[self.cursor]
            when = stamps[self.cursor] if stamps is not None else now
            self.cursor += 1
            self._seen(message, when)

    def _seen(self, message: JSONDict, when: float) -> None:
        chat_id = int(message.get("chat", {}).get("id", 0))
        text = str(message.get("text") or message.get("caption") or "")
        customer = self.chat_to_customer.get(chat_id)
        if self.kind == "echo":
            if customer is not None:
                self._relay(text, when, customer)
            return
        if chat_id == self.staff_chat_id:
            keyboard = (message.get("reply_markup") or {}).get("inline_keyboard")
            if not keyboard:  # the ticket card has buttons (and may quote the first message)
                self._relay(text, when, None)
        elif customer is not None:
            if number := TICKET_NUMBER.search(text):
                self.ack_copies[customer] += 1
                self.ticket_numbers[customer].add(number[0])
                self.acked.setdefault(customer, when)
            else:  # anything else a customer was told (apologies, questions, ...)
                self.other_replies[text[:70]] += 1
        else:
            self.unknown_chats += 1

    def _relay(self, text: str, when: float, expected_customer: int | None) -> None:
        for match in TAG.finditer(text):
            key = (int(match[1]), int(match[2]))
            if key not in self.enqueued:
                continue
            if expected_customer is not None and key[0] != expected_customer:
                continue
            self.relay_copies[key] += 1
            if key not in self.relayed:
                self.relayed[key] = when
                self.arrival[key[0]].append(key[1])

    def done(self) -> bool:
        if len(self.relayed) < self.total:
            return False
        return self.kind == "echo" or len(self.acked) >= self.customers

    def last_event(self) -> float:
        times = list(self.relayed.values()) + list(self.acked.values())
        return max(times) if times else time.perf_counter()

    def figures(self, started: float, finished: float) -> JSONDict:
        elapsed = max(finished - started, 1e-9)
        latencies = [self.relayed[key] - self.enqueued[key] for key in self.relayed]
        first_sent = {c: self.enqueued[(c, 0)] for c in range(self.customers)}
        ack_latencies = [when - first_sent[c] for c, when in self.acked.items()]
        out_of_order = [
            c for c, order in self.arrival.items() if order != sorted(order)
        ]  # arrival order of first copies
        complete = sum(
            1
            for c in range(self.customers)
            if len(self.arrival.get(c, ())) == self.messages
            and (self.kind == "echo" or c in self.acked)
        )
        times = sorted(when - started for when in self.relayed.values())

        def time_to(share: float) -> float | None:
            index = max(1, -(-int(self.total * share * 1000) // 1000)) - 1
            return round(times[index], 2) if index < len(times) else None

        last = max(times[-1] if times else 0.0, *(t - started for t in self.acked.values()), 0.0)
        result: JSONDict = {
            "messages": self.total,
            "relayed": len(self.relayed),
            "customers_complete": complete,
            "elapsed_s": round(elapsed, 3),
            "messages_per_s": round(len(self.relayed) / elapsed, 1),
            "last_delivery_s": round(last, 3),
            "relayed_50_percent_s": time_to(0.5),
            "relayed_90_percent_s": time_to(0.9),
            "relay_latency_ms": spread_ms(latencies),
            "in_order": not out_of_order,
            "customers_out_of_order": len(out_of_order),
            "duplicate_relays": sum(n - 1 for n in self.relay_copies.values() if n > 1),
            "missing": [tag(*key) for key in sorted(self.enqueued) if key not in self.relayed][:20],
        }
        if self.kind == "kefu":
            result["acknowledged"] = len(self.acked)
            result["ack_latency_ms"] = spread_ms(ack_latencies)
            result["duplicate_acks"] = sum(n - 1 for n in self.ack_copies.values() if n > 1)
            result["customers_with_several_tickets"] = sum(
                1 for numbers in self.ticket_numbers.values() if len(numbers) > 1
            )
            result["other_replies_to_customers"] = dict(self.other_replies.most_common(5))
        return result


# ------------------------------------------------------------------------------ profiling

FRAME = re.compile(r"^(?P<func>.*) \((?P<path>[^()]*?)(?::(?P<line>\d+))?\)$")
STDLIB = Path(sysconfig.get_paths()["stdlib"]).resolve()


class Profiler:
    """py-spy on the Kefu process during the burst, in two ways that barely slow it down.

    ``python.txt``: ``py-spy record --idle --nonblocking`` (every thread at every tick, Python
    frames only, the process is never paused), collapsed stacks.
    ``snapshots.json``: ``py-spy dump --native --json`` every few seconds. Native frames show what
    a waiting thread waits for (epoll, the GIL, SQLite's busy handler, the aiosqlite queue), but
    collecting them pauses the process; a continuous ``record --native`` (even at 20 Hz) fell
    seconds behind and slowed Kefu down 20-fold on two shared cores, snapshots do not.
    """

    def __init__(self, pid: int, out_dir: Path, rate: int, snapshot_every: float) -> None:
        self.pid = pid
        self.out_dir = out_dir
        self.rate = rate
        self.snapshot_every = snapshot_every
        self.recorder: asyncio.subprocess.Process | None = None
        self.snapshots: list[JSONDict] = []
        self.snapshot_task: asyncio.Task[None] | None = None
        self.python_file = out_dir / "python.txt"
        self.snapshot_file = out_dir / "snapshots.json"

    @staticmethod
    def executable() -> str | None:
        beside = Path(sys.executable).parent / "py-spy"
        return str(beside) if beside.exists() else shutil.which("py-spy")

    async def start(self) -> None:
        exe = self.executable()
        if exe is None:
            raise RuntimeError("py-spy is not installed (pip install py-spy)")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        command = [exe, "record", "--pid", str(self.pid), "--threads", "--full-filenames"]
        command += ["--idle", "--nonblocking", "--rate", str(self.rate), "--format", "raw"]
        command += ["--output", str(self.python_file)]
        log = (self.out_dir / "py-spy-record.log").open("wb")
        self.recorder = await asyncio.create_subprocess_exec(*command, stdout=log, stderr=log)
        if self.snapshot_every > 0:
            self.snapshot_task = asyncio.create_task(self._snapshot_loop(exe))
        await asyncio.sleep(0.5)  # attaching takes a moment; the burst starts after

    async def _snapshot_loop(self, exe: str) -> None:
        command = [exe, "dump", "--pid", str(self.pid), "--native", "--json", "--full-filenames"]
        started = time.perf_counter()
        while True:
            await asyncio.sleep(self.snapshot_every)
            process = await asyncio.create_subprocess_exec(
                *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
            )
            output, _ = await process.communicate()
            with contextlib.suppress(ValueError):
                threads = json.loads(output)
                at = round(time.perf_counter() - started, 2)
                self.snapshots.append({"t": at, "threads": threads})

    async def stop(self) -> None:
        if self.snapshot_task is not None:
            self.snapshot_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.snapshot_task
        self.snapshot_file.write_text(json.dumps(self.snapshots))
        if self.recorder is not None and self.recorder.returncode is None:
            self.recorder.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(self.recorder.wait(), 60)
            except TimeoutError:
                self.recorder.kill()
                await self.recorder.wait()


@dataclass
class Frame:
    func: str
    path: str
    line: int

    @property
    def python(self) -> bool:
        return self.path.endswith(".py")


@dataclass
class Sample:
    thread: str
    frames: list[Frame]  # from the outermost to the leaf
    count: int

    def python_frames(self) -> list[Frame]:
        return [f for f in self.frames if f.python]

    def has(self, *needles: str) -> bool:
        return any(needle in f.func for f in self.frames for needle in needles)


def parse_raw(text: str) -> list[Sample]:
    """py-spy's ``--format raw`` with ``--threads``: ``thread (tid): name;frame;...;leaf count``."""
    samples = []
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        parts = stack.split(";")
        head = parts[0]
        thread = head.split(": ", 1)[1] if head.startswith("thread (") and ": " in head else head
        frames = []
        for part in parts[1:]:
            match = FRAME.match(part)
            if match:
                frames.append(Frame(match["func"], match["path"], int(match["line"] or 0)))
            else:
                frames.append(Frame(part, "", 0))
        samples.append(Sample(thread, frames, int(count)))
    return samples


def where(path: str, kefu_dir: Path) -> str:
    """A short place name: ``sqlalchemy``, ``kefu:crm``, ``stdlib:asyncio``, ..."""
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    resolved = Path(path)
    with contextlib.suppress(ValueError):
        return "kefu:" + resolved.relative_to(kefu_dir).parts[0].removesuffix(".py")
    with contextlib.suppress(ValueError):
        return "stdlib:" + resolved.relative_to(STDLIB).parts[0].removesuffix(".py")
    return path or "?"


def short(frame: Frame, kefu_dir: Path) -> str:
    path = frame.path
    if "site-packages/" in path:
        path = path.split("site-packages/", 1)[1]
    else:
        for base in (kefu_dir, STDLIB):
            with contextlib.suppress(ValueError):
                path = str(Path(path).relative_to(base))
                break
    return f"{frame.func} ({path})"


def parse_snapshots(text: str) -> list[Sample]:
    """``py-spy dump --json`` snapshots (frames leaf first) as one-count samples."""
    samples = []
    for snapshot in json.loads(text):
        for thread in snapshot["threads"]:
            frames = [
                Frame(str(f.get("name", "")), str(f.get("filename", "")), int(f.get("line") or 0))
                for f in reversed(thread.get("frames", []))
            ]
            samples.append(Sample(str(thread.get("thread_name") or "?"), frames, 1))
    return samples


def wait_line(module: str, function: str, needle: str) -> int:
    """The line of a library function where it blocks (found in its source), or -1."""
    try:
        import importlib
        import inspect

        lines, first = inspect.getsourcelines(getattr(importlib.import_module(module), function))
    except (ImportError, AttributeError, OSError, TypeError):
        return -1
    return next((first + i for i, text in enumerate(lines) if needle in text), -1)


AIOSQLITE_WAIT_LINE = wait_line("aiosqlite.core", "_connection_worker_thread", ".get(")
POOL_WAIT_LINE = wait_line("concurrent.futures.thread", "_worker", "work_queue.get(")
MAIN = "main thread (event loop)"
AIOSQLITE = "aiosqlite worker threads"
IDLE_LEAVES = {("threading.py", "wait"), ("threading.py", "_wait_for_tstate_lock")}
IDLE_LEAVES |= {("queue.py", "get"), ("selectors.py", "select")}


def thread_kind(sample: Sample) -> str:
    if sample.thread == "MainThread":
        return MAIN
    if "_connection_worker_thread" in sample.thread or sample.has("_connection_worker_thread"):
        return AIOSQLITE
    if sample.thread.startswith("asyncio_"):
        return "asyncio.to_thread pool"
    return "other threads"


def python_state(sample: Sample, kefu_dir: Path) -> str:
    """What a thread was doing at one tick, from its Python frames only."""
    python = sample.python_frames()
    if not python:
        return "native code without Python frames"
    leaf = python[-1]
    name = Path(leaf.path).name
    if leaf.func == "_connection_worker_thread" and "aiosqlite" in leaf.path:
        if leaf.line == AIOSQLITE_WAIT_LINE:
            return "idle: waiting for the next call"
        return "in a sqlite3 call (statements, commit, lock waits)"
    if leaf.func == "_worker" and name == "thread.py" and leaf.line == POOL_WAIT_LINE:
        return "idle: waiting for work"
    if (name, leaf.func.rsplit(".", 1)[-1]) in IDLE_LEAVES:
        return "idle: waiting in epoll" if name == "selectors.py" else "idle: waiting"
    return "running Python: " + where(leaf.path, kefu_dir)


def native_state(sample: Sample, kefu_dir: Path) -> str:
    """What a thread was doing in a native snapshot: the GIL and SQLite's lock become visible."""
    if sample.has("take_gil"):
        return "waiting for the GIL"
    if sample.has("BusyHandler", "sqliteDefaultBusyCallback"):
        return "SQLite: waiting for the database lock (busy_timeout back-off)"
    state = python_state(sample, kefu_dir)
    if state.startswith("in a sqlite3 call"):
        return "SQLite: commit" if sample.has("connection_commit") else "SQLite: executing"
    if sample.has("epoll_wait"):
        return "idle: waiting in epoll"
    return state


def kefu_root(samples: list[Sample], default: Path) -> Path:
    """The directory of the ``main.py`` at the bottom of the main thread's stack."""
    for sample in samples:
        for frame in sample.frames:
            if frame.python:
                if frame.path.endswith("main.py"):
                    return Path(frame.path).parent
                break
    return default


def _share(counter: Counter[str], denominator: int, n: int) -> list[JSONDict]:
    return [
        {"name": name, "samples": count, "share": round(count / max(denominator, 1), 4)}
        for name, count in counter.most_common(n)
    ]


def states_by_kind(samples: list[Sample], state: Callable[[Sample], str]) -> JSONDict:
    """Per kind of thread: the share of its samples in each state, and how many threads were in
    each non-idle state on average at a tick (ticks = main-thread samples)."""
    threads: dict[str, set[str]] = defaultdict(set)
    states: dict[str, Counter[str]] = defaultdict(Counter)
    for sample in samples:
        kind = thread_kind(sample)
        threads[kind].add(sample.thread)
        states[kind][state(sample)] += sample.count
    ticks = sum(states[MAIN].values())
    return {
        "ticks": ticks,
        "threads": {kind: len(names) for kind, names in sorted(threads.items())},
        "states": {
            kind: _share(counter, sum(counter.values()), 12) for kind, counter in states.items()
        },
        "busy_on_average": {
            kind: {
                name: round(count / max(ticks, 1), 2)
                for name, count in counter.most_common()
                if not name.startswith("idle") and count / max(ticks, 1) >= 0.005
            }
            for kind, counter in states.items()
        },
    }


def summarise_python(python: list[Sample], kefu_dir: Path) -> JSONDict:
    """Own time (leaf frame) of threads running Python code (not idle, not inside a sqlite3
    call, not in native code), and Kefu's functions on the event loop's stack."""
    own: Counter[str] = Counter()
    kefu_inclusive: Counter[str] = Counter()
    running = 0
    for sample in python:
        if not python_state(sample, kefu_dir).startswith("running Python"):
            continue
        running += sample.count
        own[short(sample.frames[-1], kefu_dir)] += sample.count
        if thread_kind(sample) == MAIN:
            for name in {
                short(f, kefu_dir)
                for f in sample.frames
                if where(f.path, kefu_dir).startswith("kefu:")
                and where(f.path, kefu_dir) != "kefu:main"
            }:
                kefu_inclusive[name] += sample.count
    return {
        "running_samples": running,
        "own_time_by_function": _share(own, running, 15),
        "kefu_inclusive_main_thread": _share(kefu_inclusive, running, 12),
    }


def summarise_profile(python: list[Sample], native: list[Sample], kefu_dir: Path) -> JSONDict:
    kefu_dir = kefu_root(python or native, kefu_dir)
    return {
        "python_wall": states_by_kind(python, lambda s: python_state(s, kefu_dir)),
        "native_snapshots": states_by_kind(native, lambda s: native_state(s, kefu_dir)),
        "python_running": summarise_python(python, kefu_dir),
    }


# ------------------------------------------------------------------------------ one run


@dataclass
class Scenario:
    target: str  # "echo" or "kefu"
    latency: float
    profile: bool = False

    @property
    def label(self) -> str:
        return f"{self.target} · {self.latency * 1000:.0f} ms"


@dataclass
class Options:
    customers: int
    messages: int
    db: str
    timeout: float
    stall: float
    startup_timeout: float
    kefu_dir: Path
    pg_admin_url: str
    profile_dir: Path
    profile_rate: int
    profile_snapshot_every: float


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("KEFU_")}


async def create_pg_database(admin_url: str) -> str:
    import asyncpg  # only needed with --db postgres

    name = f"kefu_bench_{os.getpid()}_{secrets.token_hex(3)}"
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return name


async def drop_pg_database(admin_url: str, name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def pg_url(admin_url: str, database: str) -> str:
    base = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return f"{base}/{database}"


def log_findings(log: str) -> JSONDict:
    statements = Counter(
        line.removeprefix("[SQL: ")[:60] for line in log.splitlines() if line.startswith("[SQL: ")
    )
    return {
        "tracebacks": log.count("Traceback (most recent call last)"),
        "database_is_locked": log.count("database is locked"),
        "error_lines": sum(1 for line in log.splitlines() if "ERROR" in line),
        "failed_sql": dict(statements.most_common(5)),
    }


async def stop_process(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        await asyncio.wait_for(process.wait(), 30)
    except TimeoutError:
        process.kill()
        await process.wait()


async def first_poll(
    requests: StampedList, process: asyncio.subprocess.Process, within: float
) -> float | None:
    """When the bot first asked for updates (perf_counter), or None if it never did."""
    deadline = time.perf_counter() + within
    index = 0
    while time.perf_counter() < deadline and process.returncode is None:
        while index < len(requests):
            if requests[index][0] == "getUpdates":
                return requests.stamps[index]
            index += 1
        await asyncio.sleep(0.01)
    return None


class Run:
    """One bot on one fresh fake server: start, burst, watch, stop."""

    def __init__(
        self, scenario: Scenario, options: Options, progress: Progress, task: TaskID
    ) -> None:
        self.scenario = scenario
        self.options = options
        self.progress = progress
        self.task = task
        self.result: JSONDict = {
            "target": scenario.target,
            "api_latency_ms": round(scenario.latency * 1000),
            "db": options.db if scenario.target == "kefu" else None,
            "profiled": scenario.profile,
        }

    def note(self, info: str) -> None:
        self.progress.update(self.task, info=info)
        self.plain(info)

    def plain(self, info: str) -> None:
        """Progress as plain lines when stderr is not a terminal (Rich draws nothing live)."""
        if not self.progress.console.is_terminal:
            self.progress.console.print(f"{self.scenario.label}: {info}", highlight=False)

    async def execute(self) -> JSONDict:
        async with FakeBotAPI(token=TOKEN) as api:
            if self.scenario.latency > 0:
                set_latency = getattr(api, "set_latency", None)
                if set_latency is None:
                    self.result["status"] = "skipped"
                    self.result["note"] = (
                        "FakeBotAPI.set_latency does not exist yet: no Bot API latency available"
                    )
                    self.note("[yellow]skipped: FakeBotAPI.set_latency missing")
                    return self.result
                set_latency(self.scenario.latency)
            with tempfile.TemporaryDirectory(prefix="kefu-bench-") as tmp:
                await self._with_server(api, Path(tmp))
        return self.result

    def _env(self, api: FakeBotAPI, tmp: Path, staff_id: int, agent_id: int) -> dict[str, str]:
        env = clean_env()
        env.update(
            KEFU_TELEGRAM_TOKEN=TOKEN,
            KEFU_TELEGRAM_API_URL=api.url,
            KEFU_DATA_DIR=str(tmp / "data"),
            KEFU_STAFF_CHAT_ID=str(staff_id),
            KEFU_AGENT_IDS=str(agent_id),
            KEFU_AUTO_ANSWER="false",
            KEFU_TELEGRAM_RATE_LIMITS="off",
            KEFU_LOG_LEVEL="WARNING",
            PYTHONUNBUFFERED="1",
        )
        return env

    async def _with_server(self, api: FakeBotAPI, tmp: Path) -> None:
        options, scenario = self.options, self.scenario
        agent = api.add_user("Alice", username="alice_agent")
        staff = api.add_supergroup("Support desk", is_forum=True, members=[agent])
        users = [
            api.add_user(f"Customer {c}", last_name="Bench", username=f"bench_customer_{c}")
            for c in range(options.customers)
        ]
        sent, requests = observe(api)
        tracker = Tracker(
            kind=scenario.target,
            customers=options.customers,
            messages=options.messages,
            chat_to_customer={int(user["id"]): c for c, user in enumerate(users)},
            staff_chat_id=int(staff["id"]),
        )
        env = self._env(api, tmp, int(staff["id"]), int(agent["id"]))
        database: str | None = None
        if scenario.target == "kefu" and options.db == "postgres":
            database = await create_pg_database(options.pg_admin_url)
            env["KEFU_DATABASE_URL"] = pg_url(options.pg_admin_url, database)
        if scenario.target == "kefu":
            command = [sys.executable, str(options.kefu_dir / "main.py"), "run"]
        else:
            command = [sys.executable, str(ECHO_BOT)]
        log_path = tmp / "bot.log"
        try:
            with log_path.open("wb") as log:
                self.note("starting the bot process")
                spawned = time.perf_counter()
                process = await asyncio.create_subprocess_exec(
                    *command, cwd=str(tmp), env=env, stdout=log, stderr=subprocess.STDOUT
                )
                try:
                    await self._serve(api, process, spawned, sent, requests, tracker, users)
                finally:
                    self.note("stopping the bot process")
                    await stop_process(process)
                    self.result["exit_code"] = process.returncode
        finally:
            if database is not None:
                await drop_pg_database(options.pg_admin_url, database)
        text = log_path.read_text(errors="replace")
        self.result["log"] = log_findings(text)
        if self.result.get("status") != "done" or self.result["log"]["tracebacks"]:
            self.result["log"]["tail"] = text.splitlines()[-15:]

    async def _serve(
        self,
        api: FakeBotAPI,
        process: asyncio.subprocess.Process,
        spawned: float,
        sent: StampedList,
        requests: StampedList,
        tracker: Tracker,
        users: list[JSONDict],
    ) -> None:
        options = self.options
        polled = await first_poll(requests, process, options.startup_timeout)
        if polled is None:
            self.result["status"] = "no start"
            self.result["note"] = (
                f"the bot exited with code {process.returncode} before polling"
                if process.returncode is not None
                else f"no getUpdates within {options.startup_timeout:.0f} s"
            )
            return
        self.result["startup_s"] = round(polled - spawned, 3)
        profiler = None
        if self.scenario.profile:
            out = options.profile_dir / f"{self.scenario.target}-{self.result['api_latency_ms']}ms"
            profiler = Profiler(
                process.pid, out, options.profile_rate, options.profile_snapshot_every
            )
            self.note("attaching py-spy")
            await profiler.start()
        started = time.perf_counter()
        for m in range(options.messages):  # round robin: every customer's 1st, then 2nd, ...
            for c, user in enumerate(users):
                tracker.enqueued[(c, m)] = time.perf_counter()
                api.user_sends_text(user, support_text(c, m))
        try:
            status = await self._watch(process, sent, tracker, started)
        finally:
            if profiler is not None:
                await profiler.stop()
        stopped = time.perf_counter()
        tracker.scan(sent)
        finished = tracker.last_event() if status == "done" else stopped
        self.result["status"] = status
        self.result.update(tracker.figures(started, finished))
        if status != "done":
            r = self.result
            until = r["relayed"] / max(r["last_delivery_s"], 1e-9)
            self.result["note"] = (
                f"partial ({status} after {r['elapsed_s']:.0f} s): {r['relayed']} of "
                f"{tracker.total} messages relayed, {r.get('acknowledged', '–')} of "
                f"{tracker.customers} customers acknowledged; the last delivery came at "
                f"{r['last_delivery_s']:.1f} s ({until:.1f} msg/s until then)"
            )
        if profiler is not None:
            self.result["profile"] = self._profile_summary(profiler)

    def _profile_summary(self, profiler: Profiler) -> JSONDict:
        return summarise_dir(profiler.out_dir, self.options.kefu_dir)

    async def _watch(
        self,
        process: asyncio.subprocess.Process,
        sent: StampedList,
        tracker: Tracker,
        started: float,
    ) -> str:
        deadline = started + self.options.timeout
        progress_at, delivered, printed = started, 0, started
        while True:
            await asyncio.sleep(0.05)
            tracker.scan(sent)
            elapsed = time.perf_counter() - started
            info = f"{len(tracker.relayed) / max(elapsed, 1e-9):6.1f} msg/s"
            if tracker.kind == "kefu":
                info += f" · acks {len(tracker.acked)}/{tracker.customers}"
            self.progress.update(self.task, completed=len(tracker.relayed), info=info)
            if time.perf_counter() - printed >= 10:
                printed = time.perf_counter()
                self.plain(
                    f"{len(tracker.relayed)}/{tracker.total} relayed, {info}, {elapsed:.0f} s"
                )
            if tracker.done():
                return "done"
            now = time.perf_counter()
            if len(tracker.relayed) + len(tracker.acked) != delivered:
                progress_at, delivered = now, len(tracker.relayed) + len(tracker.acked)
            elif self.options.stall and now - progress_at > self.options.stall:
                return f"stalled ({self.options.stall:.0f} s without a delivery)"
            if process.returncode is not None:
                return f"bot exited ({process.returncode})"
            if time.perf_counter() > deadline:
                return "timeout"


# ------------------------------------------------------------------------------ report


def machine() -> JSONDict:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f"{kib / 1024 / 1024:.0f} GiB"
    import telegram

    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory": memory,
        "os": platform.platform(),
        "python": platform.python_version(),
        "python_telegram_bot": telegram.__version__,
        "sqlite": sqlite3.sqlite_version,
    }


def git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(  # noqa: S603 - fixed git commands
        ["git", "-C", str(cwd), *args],  # noqa: S607
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def kefu_version(kefu_dir: Path, commit: str | None) -> str:
    try:
        if commit:
            return git("rev-parse", "--short", f"{commit}^{{commit}}") + " (git archive)"
        head = git("rev-parse", "--short", "HEAD", cwd=kefu_dir)
        dirty = git("status", "--porcelain", "--untracked-files=no", cwd=kefu_dir)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head} + uncommitted changes" if dirty else head


def export_commit(commit: str, target: Path) -> Path:
    """The tree of a commit of this repository, unpacked into ``target`` (read-only for git)."""
    archive = subprocess.run(  # noqa: S603 - the user's own revision
        ["git", "-C", str(ROOT), "archive", "--format=tar", commit],  # noqa: S607
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    return target


def fmt(value: Any, suffix: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.1f}{suffix}"
    return f"{value}{suffix}"


def ratio_rows(results: list[JSONDict]) -> dict[int, float]:
    ratios = {}
    for latency in sorted({r["api_latency_ms"] for r in results}):
        echo = next(
            (r for r in results if r["target"] == "echo" and r["api_latency_ms"] == latency), None
        )
        kefu = next(
            (r for r in results if r["target"] == "kefu" and r["api_latency_ms"] == latency), None
        )
        if echo and kefu and echo.get("messages_per_s") and kefu.get("messages_per_s") is not None:
            ratios[latency] = round(kefu["messages_per_s"] / echo["messages_per_s"], 3)
    return ratios


def print_report(report: JSONDict, console: Console) -> None:
    results = report["results"]
    ratios = report["kefu_over_echo"]
    table = Table(
        title=f"{report['customers']} customers × {report['messages']} messages "
        f"({report['customers'] * report['messages']:,}) · Kefu on {report['db']}",
        title_justify="left",
    )
    for name, justify in (
        ("bot", "left"),
        ("API ms", "right"),
        ("status", "left"),
        ("start s", "right"),
        ("done", "right"),
        ("seconds", "right"),
        ("msg/s", "right"),
        ("×echo", "right"),
        ("relay p50/p99 ms", "right"),
        ("ack p50/p99 ms", "right"),
        ("in order", "left"),
        ("dupl.", "right"),
        ("tb / locked", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for r in results:
        latency = r.get("api_latency_ms", 0)
        ack = r.get("ack_latency_ms") or {}
        ratio = ratios.get(latency) if r["target"] == "kefu" else None
        done = f"{r['relayed']:,}/{r['messages']:,}" if "relayed" in r else "–"
        if r["target"] == "kefu" and "acknowledged" in r:
            done += f" + {r['acknowledged']} acks"
        log = r.get("log") or {}
        errors = f"{log.get('tracebacks', 0)} / {log.get('database_is_locked', 0)}"
        in_order = (
            "–"
            if "in_order" not in r
            else ("yes" if r["in_order"] else f"no ({r['customers_out_of_order']} cust.)")
        )
        relay = r.get("relay_latency_ms") or {}
        table.add_row(
            r["target"] + (" (profiled)" if r.get("profiled") else ""),
            str(latency),
            r.get("status", "?"),
            fmt(r.get("startup_s")),
            done,
            fmt(r.get("elapsed_s")),
            fmt(r.get("messages_per_s")),
            f"{ratio:.2f}×" if ratio is not None else "",
            f"{fmt(relay.get('p50'))} / {fmt(relay.get('p99'))}" if relay else "",
            f"{fmt(ack.get('p50'))} / {fmt(ack.get('p99'))}" if ack else "",
            in_order,
            fmt(r.get("duplicate_relays", 0) + r.get("duplicate_acks", 0))
            if "relayed" in r
            else "–",
            errors if log else "–",
        )
    console.print(table)
    for r in results:
        label = f"[yellow]{r['target']} · {r['api_latency_ms']} ms:[/yellow]"
        if r.get("note"):
            console.print(f"{label} {r['note']}")
        if r.get("customers_with_several_tickets"):
            several = r["customers_with_several_tickets"]
            console.print(f"{label} {several} customers were told two different ticket numbers")
        for text, count in (r.get("other_replies_to_customers") or {}).items():
            console.print(f"{label} {count} × other reply to customers: {escape(repr(text))}")
        if r.get("log", {}).get("tail") and r.get("status") != "done":
            console.print("  last lines of its log:")
            for line in r["log"]["tail"]:
                console.print(f"    {line}", markup=False, highlight=False)
    m = report["machine"]
    console.print(
        f"Kefu {report['kefu_version']} · {m['cpu']} × {m['cores']} · Python {m['python']} · "
        f"PTB {m['python_telegram_bot']} · SQLite {m['sqlite']} · load average before "
        f"{m['load_average_before'][0]}, after {m['load_average_after'][0]}"
    )
    for r in results:
        if "profile" in r:
            print_profile(r, console)


def summarise_dir(directory: Path, kefu_dir: Path) -> JSONDict:
    python_file, snapshot_file = directory / "python.txt", directory / "snapshots.json"
    if not python_file.exists():
        return {"error": f"py-spy wrote nothing; see the logs in {directory}"}
    python = parse_raw(python_file.read_text())
    native = parse_snapshots(snapshot_file.read_text()) if snapshot_file.exists() else []
    summary = summarise_profile(python, native, kefu_dir)
    summary["raw_files"] = {"python": str(python_file), "snapshots": str(snapshot_file)}
    return summary


def _share_table(title: str, rows: list[JSONDict]) -> Table:
    table = Table(title=title, title_justify="left", show_header=False, box=None)
    table.add_column("share", justify="right")
    table.add_column("name")
    for row in rows:
        table.add_row(f"{row['share']:.1%}", row["name"])
    return table


def print_profile(result: JSONDict, console: Console) -> None:
    profile = result["profile"]
    if "error" in profile:
        console.print(f"[red]profile: {profile['error']}")
        return
    wall, native = profile["python_wall"], profile["native_snapshots"]
    running = profile["python_running"]
    threads = ", ".join(f"{n} × {kind}" for kind, n in wall["threads"].items())
    console.print(
        f"\n[bold]Where the time goes[/bold] (kefu · {result['api_latency_ms']} ms): py-spy, "
        f"{wall['ticks']:,} ticks of Python stacks, {native['ticks']} native snapshots"
        f"\nthreads: {threads}"
    )
    for source, data in (("Python stacks", wall), ("native snapshots", native)):
        for kind in (MAIN, AIOSQLITE):
            if kind in data["states"]:
                console.print(_share_table(f"{kind}, {source}", data["states"][kind]))
        busy = data["busy_on_average"].get(AIOSQLITE)
        if busy:
            console.print(
                f"aiosqlite workers at a tick, on average ({source}): "
                + ", ".join(f"{n:.2f} {state}" for state, n in busy.items())
            )
    own = running["own_time_by_function"]
    console.print(_share_table("Python own time (leaf frame), samples running Python", own))
    console.print(
        _share_table(
            "Kefu functions on the event loop's stack (share of samples running Python)",
            running["kefu_inclusive_main_thread"],
        )
    )
    console.print(f"raw data: {profile['raw_files']['python']} and snapshots.json")


# ------------------------------------------------------------------------------ main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Kefu's conversation pipeline under a burst, against a bare PTB echo bot.",
    )
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--messages", type=int, default=10, help="text messages per customer")
    parser.add_argument(
        "--latency",
        type=float,
        nargs="+",
        default=[0.0],
        help="seconds added to every Bot API call but getUpdates (several values: several runs)",
    )
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--pg-admin-url", default=PG_ADMIN_URL, help="where to create the db")
    parser.add_argument("--targets", default="echo,kefu", help="comma-separated: echo, kefu")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per burst")
    parser.add_argument(
        "--stall",
        type=float,
        default=60.0,
        help="give up when nothing new arrived for this long (0 = only --timeout)",
    )
    parser.add_argument("--startup-timeout", type=float, default=120.0)
    parser.add_argument("--profile", action="store_true", help="py-spy the Kefu process")
    parser.add_argument(
        "--profile-rate", type=int, default=100, help="Python samples/s (non-blocking)"
    )
    parser.add_argument(
        "--profile-snapshot-every",
        type=float,
        default=3.0,
        help="seconds between native snapshots (py-spy dump --native; 0 = none)",
    )
    parser.add_argument("--profile-dir", type=Path, help="keep py-spy output here")
    parser.add_argument("--kefu-dir", type=Path, default=ROOT, help="the Kefu checkout to run")
    parser.add_argument("--kefu-commit", help="run this commit of Kefu (git archive to a temp dir)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument("--save", type=Path, metavar="FILE", help="also write the JSON here")
    parser.add_argument(
        "--summarise",
        type=Path,
        metavar="DIR",
        help="only summarise the py-spy output an earlier --profile kept in DIR",
    )
    args = parser.parse_args(argv)
    if not 1 <= args.customers <= 9999 or not 1 <= args.messages <= 999:
        parser.error("--customers must be 1..9999 and --messages 1..999")
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    if not targets or set(targets) - {"echo", "kefu"}:
        parser.error("--targets takes echo, kefu or both")
    args.targets = targets
    return args


def scenarios(args: argparse.Namespace) -> Iterator[Scenario]:
    for latency in args.latency:
        for target in ("echo", "kefu"):
            if target in args.targets:
                yield Scenario(target, latency, profile=args.profile and target == "kefu")


async def run_all(args: argparse.Namespace, options: Options, console: Console) -> JSONDict:
    results = []
    planned = list(scenarios(args))
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description:<16}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        for scenario in planned:
            task = progress.add_task(scenario.label, total=args.customers * args.messages, info="")
            result = await Run(scenario, options, progress, task).execute()
            progress.update(task, info=f"{result.get('status')}")
            progress.stop_task(task)
            results.append(result)
    return {"results": results, "kefu_over_echo": ratio_rows(results)}


def summarise_only(directory: Path, as_json: bool) -> int:
    summary = summarise_dir(directory, ROOT)
    if as_json:
        print(json.dumps(summary, indent=2))
    else:
        print_profile({"api_latency_ms": "?", "profile": summary}, Console(width=150))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.summarise:
        return summarise_only(args.summarise, args.json)
    console = Console(stderr=True)
    with tempfile.TemporaryDirectory(prefix="kefu-bench-src-") as src:
        kefu_dir = args.kefu_dir.resolve()
        if args.kefu_commit:
            kefu_dir = export_commit(args.kefu_commit, Path(src))
        profile_dir = args.profile_dir or Path(tempfile.gettempdir())
        if args.profile and args.profile_dir is None:
            profile_dir = Path(tempfile.mkdtemp(prefix="kefu-bench-profile-"))
        options = Options(
            customers=args.customers,
            messages=args.messages,
            db=args.db,
            timeout=args.timeout,
            stall=args.stall,
            startup_timeout=args.startup_timeout,
            kefu_dir=kefu_dir,
            pg_admin_url=args.pg_admin_url,
            profile_dir=profile_dir.resolve(),
            profile_rate=args.profile_rate,
            profile_snapshot_every=args.profile_snapshot_every,
        )
        report: JSONDict = {
            "benchmark": "conversation pipeline (issue 8)",
            "date": time.strftime("%Y-%m-%d"),
            "command": " ".join(["python", "bench/bench_pipeline.py", *(argv or sys.argv[1:])]),
            "customers": args.customers,
            "messages": args.messages,
            "db": args.db,
            "kefu_version": kefu_version(kefu_dir, args.kefu_commit),
            "machine": machine(),
        }
        report["machine"]["load_average_before"] = [round(x, 2) for x in os.getloadavg()]
        report |= asyncio.run(run_all(args, options, console))
        report["machine"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    if args.save:
        args.save.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        print_report(report, Console(width=max(Console().width, 150)))
    return 0 if all(r.get("status") in {"done", "skipped"} for r in report["results"]) else 1


if __name__ == "__main__":
    sys.exit(main())
