"""Benchmark: one daily and one weekly service-quality digest over a year of support.

Builds (once) a database with 1,000,000 messages, 200,000 tickets and 100,000 ratings over a
year, with seeded, realistic distributions (weekday and hour seasonality, lognormal response
and resolution times, ratings skewed to 4-5, Zipf-like customers, categories and sentiment),
on SQLite (a file under /tmp) and PostgreSQL (database ``kefu_bench``). Then, in a fresh process
per backend, times ``build_digest + render_text + render_chart`` and reports peak memory
(tracemalloc peak of the digest and the process's maximum resident set size).

    .venv/bin/python bench/bench_digest.py                   # build what is missing, measure
    .venv/bin/python bench/bench_digest.py --backends sqlite --rebuild
    .venv/bin/python bench/bench_digest.py --json            # one JSON object with every figure

Building takes a few minutes per backend; measuring seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import func, insert, select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from crm.db import create_engine  # noqa: E402
from crm.migrate import upgrade  # noqa: E402
from crm.models import Agent, Customer, Message, Rating, Ticket  # noqa: E402

TZ = ZoneInfo("Europe/Berlin")
BUSINESS_HOURS = "mon-fri 08:00-20:00, sat 10:00-16:00"
FIRST_DAY = date(2025, 3, 1)
DAYS = 365
DAILY_DAY = date(2026, 2, 25)  # a Wednesday
DAILY_NOW = datetime(2026, 2, 26, 9, 0, tzinfo=TZ)
WEEKLY_DAY = date(2026, 2, 16)  # Monday .. Sunday 22 Feb
WEEKLY_NOW = datetime(2026, 2, 23, 9, 0, tzinfo=TZ)

SQLITE_PATH = Path("/tmp/kefu_bench.db")  # noqa: S108 - a scratch benchmark file
POSTGRES_ADMIN = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
POSTGRES_DB = "kefu_bench"

CATEGORIES = ("delivery", "billing", "returns", "account", "technical", "product", "other")
CATEGORY_P = np.array([0.28, 0.2, 0.15, 0.12, 0.1, 0.1, 0.05])
NEGATIVE_P = np.array([0.35, 0.3, 0.25, 0.2, 0.3, 0.1, 0.15])  # per category
POSITIVE_P = 0.2
WEEKDAY_W = np.array([1.25, 1.15, 1.1, 1.05, 1.0, 0.6, 0.5])
HOUR_W = np.array(
    [1, 0.6, 0.4, 0.3, 0.3, 0.5, 1, 2, 4, 6, 7, 7, 6, 6, 6, 5.5, 5, 5, 5, 5.5, 6, 5, 3.5, 2]
)
PHRASES = {
    "delivery": ["my parcel is late", "tracking has not moved", "courier never came"],
    "billing": ["I was charged twice", "refund has not arrived", "invoice is wrong"],
    "returns": ["how do I return this", "return label does not work", "exchange for a size"],
    "account": ["cannot log in", "reset my password", "change my email address"],
    "technical": ["the app crashes", "payment page error", "website is very slow"],
    "product": ["is this in stock", "which size should I buy", "does it come with a charger"],
    "other": ["thank you", "just a question", "where is your shop"],
}

N_MESSAGES = 1_000_000
N_TICKETS = 200_000
N_RATINGS = 100_000
N_CUSTOMERS = 60_000
N_AGENTS = 25
CHUNK = 20_000


# --------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------


def _ts(seconds: np.ndarray) -> list[datetime]:
    return [datetime.fromtimestamp(float(s), UTC) for s in seconds]


def arrival_times(rng: np.random.Generator, n: int) -> np.ndarray:
    """Epoch seconds of ticket arrivals: weekday and hour seasonality, mild growth."""
    days = np.arange(DAYS)
    weekday = np.array([(FIRST_DAY + timedelta(days=int(d))).weekday() for d in days])
    weights = WEEKDAY_W[weekday] * (1.0 + 0.3 * days / DAYS)
    day = rng.choice(DAYS, size=n, p=weights / weights.sum())
    hour = rng.choice(24, size=n, p=HOUR_W / HOUR_W.sum())
    second = rng.integers(0, 3600, size=n)
    midnights = np.array(
        [
            datetime.combine(
                FIRST_DAY + timedelta(days=int(d)), datetime.min.time(), TZ
            ).timestamp()
            for d in days
        ]
    )
    return np.sort(midnights[day] + hour * 3600.0 + second)


def generate(rng: np.random.Generator) -> dict[str, list[dict[str, Any]]]:
    """All rows, as dictionaries for Core executemany inserts."""
    created = arrival_times(rng, N_TICKETS)
    ticket_ids = np.arange(1, N_TICKETS + 1)
    zipf = rng.zipf(1.6, size=N_TICKETS)
    customer = (zipf - 1) % N_CUSTOMERS + 1
    category_idx = rng.choice(len(CATEGORIES), size=N_TICKETS, p=CATEGORY_P)
    assignee = (
        rng.choice(
            N_AGENTS,
            size=N_TICKETS,
            p=np.linspace(2, 1, N_AGENTS) / np.linspace(2, 1, N_AGENTS).sum(),
        )
        + 1
    )
    self_served = rng.random(N_TICKETS) < 0.15
    escalated = ~self_served & (rng.random(N_TICKETS) < 0.2)
    # lognormal first response (median 25 min), slower at night: answered tickets only
    first_response = created + rng.lognormal(np.log(25 * 60), 1.1, N_TICKETS)
    answered = ~self_served & (rng.random(N_TICKETS) < 0.97)
    first_response = np.where(answered, first_response, np.nan)
    resolved_offset = rng.lognormal(np.log(6 * 3600), 1.3, N_TICKETS)
    resolved = np.where(self_served, created + rng.lognormal(np.log(120), 0.8, N_TICKETS), np.nan)
    resolved = np.where(
        answered, np.maximum(first_response + 60, created + resolved_offset), resolved
    )
    is_resolved = ~np.isnan(resolved) & (rng.random(N_TICKETS) < 0.95)
    reopened = is_resolved & (rng.random(N_TICKETS) < 0.03)

    tickets = []
    created_dt = _ts(created)
    fr_dt = [None if np.isnan(x) else datetime.fromtimestamp(float(x), UTC) for x in first_response]
    res_dt = [
        datetime.fromtimestamp(float(x), UTC) if ok else None
        for x, ok in zip(resolved, is_resolved, strict=True)
    ]
    for i in range(N_TICKETS):
        cat = CATEGORIES[category_idx[i]]
        done = bool(is_resolved[i])
        tickets.append(
            {
                "id": int(ticket_ids[i]),
                "number": 1000 + int(ticket_ids[i]),
                "customer_id": int(customer[i]),
                "status": "resolved" if done else ("pending" if answered[i] else "open"),
                "subject": PHRASES[cat][0],
                "category": cat,
                "sentiment": None,
                "priority": 2,
                "assignee_id": None if self_served[i] else int(assignee[i]),
                "resolution": ("self_served" if self_served[i] else "agent") if done else None,
                "reopened_count": int(reopened[i]),
                "created_at": created_dt[i],
                "updated_at": res_dt[i] or created_dt[i],
                "last_customer_message_at": created_dt[i],
                "escalated_at": created_dt[i] + timedelta(minutes=3) if escalated[i] else None,
                "first_response_at": fr_dt[i],
                "resolved_at": res_dt[i],
            }
        )

    # messages: at least one per ticket, the rest spread with a lognormal per-ticket weight
    weights = rng.lognormal(0, 0.7, N_TICKETS)
    extra = rng.multinomial(N_MESSAGES - N_TICKETS, weights / weights.sum())
    counts = 1 + extra
    owner = np.repeat(np.arange(N_TICKETS), counts)
    position = np.arange(N_MESSAGES) - np.repeat(np.cumsum(counts) - counts, counts)
    gaps = rng.lognormal(np.log(8 * 60), 1.2, N_MESSAGES)
    gaps[position == 0] = 0.0
    offsets = np.zeros(N_MESSAGES)
    starts = np.cumsum(counts) - counts
    cum = np.cumsum(gaps)
    offsets = cum - np.repeat(cum[starts], counts)
    msg_time = created[owner] + offsets
    inbound = (position == 0) | (rng.random(N_MESSAGES) < 0.55)
    msg_cat = category_idx[owner]
    u = rng.random(N_MESSAGES)
    sentiment = np.where(
        u < NEGATIVE_P[msg_cat], 0, np.where(u < NEGATIVE_P[msg_cat] + POSITIVE_P, 2, 1)
    )
    sentiments = ("negative", "neutral", "positive")
    phrase_pick = rng.integers(0, 3, N_MESSAGES)
    order_no = rng.integers(10_000_000, 99_999_999, N_MESSAGES)
    msg_dt = _ts(msg_time)
    messages = []
    for j in range(N_MESSAGES):
        t = int(owner[j])
        cat = CATEGORIES[msg_cat[j]]
        row: dict[str, Any]
        if inbound[j]:
            text_ = f"{PHRASES[cat][phrase_pick[j]]}, order AB-{order_no[j]}"
            row = {
                "direction": "in",
                "author_kind": "customer",
                "agent_id": None,
                "category": cat,
                "sentiment": sentiments[sentiment[j]],
            }
        else:
            text_ = "Thanks for waiting, let me check that for you."
            row = {
                "direction": "out",
                "author_kind": "bot" if self_served[t] else "agent",
                "agent_id": None if self_served[t] else int(assignee[t]),
                "category": None,
                "sentiment": None,
            }
        row.update(
            {
                "id": j + 1,
                "customer_id": int(customer[t]),
                "ticket_id": t + 1,
                "text": text_,
                "created_at": msg_dt[j],
            }
        )
        messages.append(row)

    rated = rng.choice(np.flatnonzero(is_resolved), size=N_RATINGS, replace=False)
    rated.sort()
    scores = rng.choice(5, size=N_RATINGS, p=[0.05, 0.05, 0.1, 0.3, 0.5]) + 1
    ratings = []
    for k, t in enumerate(rated):
        when = res_dt[t]
        assert when is not None
        ratings.append(
            {
                "id": k + 1,
                "ticket_id": int(t) + 1,
                "customer_id": int(customer[t]),
                "agent_id": None if self_served[t] else int(assignee[t]),
                "score": int(scores[k]),
                "comment": None,
                "created_at": when + timedelta(seconds=float(rng.lognormal(np.log(600), 1.0))),
            }
        )
    customers = [
        {
            "id": c,
            "telegram_user_id": 10_000_000 + c,
            "telegram_chat_id": 10_000_000 + c,
            "first_name": f"Customer {c}",
            "language": "en",
            "tags": [],
            "attributes": {},
            "created_at": datetime.fromtimestamp(float(created[0]), UTC),
        }
        for c in range(1, N_CUSTOMERS + 1)
    ]
    agents = [
        {
            "id": a,
            "telegram_user_id": 900_000 + a,
            "first_name": f"Agent{a:02d}",
            "created_at": datetime.fromtimestamp(float(created[0]), UTC),
        }
        for a in range(1, N_AGENTS + 1)
    ]
    return {
        "customers": customers,
        "agents": agents,
        "tickets": tickets,
        "messages": messages,
        "ratings": ratings,
    }


async def _count(url: str) -> int:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(Message))).scalar_one())
    except Exception:
        return -1
    finally:
        await engine.dispose()


async def _postgres_admin(statement: str) -> None:
    engine = create_engine(POSTGRES_ADMIN)
    try:
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(statement))
    finally:
        await engine.dispose()


def backend_url(backend: str, postgres_base: str) -> str:
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{SQLITE_PATH}"
    return make_url(postgres_base).set(database=POSTGRES_DB).render_as_string(hide_password=False)


async def load(url: str, rows: dict[str, list[dict[str, Any]]]) -> None:
    engine = create_engine(url)
    tables: dict[str, Any] = {
        "customers": Customer.__table__,
        "agents": Agent.__table__,
        "tickets": Ticket.__table__,
        "messages": Message.__table__,
        "ratings": Rating.__table__,
    }
    try:
        for name, table in tables.items():
            data = rows[name]
            started = time.perf_counter()
            for i in range(0, len(data), CHUNK):
                async with engine.begin() as conn:
                    await conn.execute(insert(table), data[i : i + CHUNK])
            print(
                f"  {name}: {len(data):,} rows in {time.perf_counter() - started:.0f} s", flush=True
            )
        async with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                for name in tables:
                    statement = (
                        f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "  # noqa: S608
                        f"(SELECT max(id) FROM {name}))"
                    )
                    await conn.execute(text(statement))
        if engine.dialect.name == "postgresql":
            async with engine.connect() as conn:
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.execute(text("VACUUM ANALYZE"))
        else:
            async with engine.begin() as conn:
                await conn.execute(text("ANALYZE"))
    finally:
        await engine.dispose()


def build(backend: str, postgres_base: str, rebuild: bool, seed: int) -> None:
    url = backend_url(backend, postgres_base)
    if not rebuild and asyncio.run(_count(url)) == N_MESSAGES:
        print(f"{backend}: database already built", flush=True)
        upgrade(url)
        return
    print(f"{backend}: building {url.split('@')[-1]}", flush=True)
    if backend == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            Path(f"{SQLITE_PATH}{suffix}").unlink(missing_ok=True)
    else:
        asyncio.run(_postgres_admin(f'DROP DATABASE IF EXISTS "{POSTGRES_DB}" WITH (FORCE)'))
        asyncio.run(_postgres_admin(f'CREATE DATABASE "{POSTGRES_DB}"'))
    upgrade(url)
    started = time.perf_counter()
    rows = generate(np.random.default_rng(seed))
    print(f"  generated in {time.perf_counter() - started:.0f} s", flush=True)
    asyncio.run(load(url, rows))


# --------------------------------------------------------------------------------------
# Measure (in a fresh process per backend)
# --------------------------------------------------------------------------------------


async def _measure(url: str, repeat: int) -> dict[str, Any]:
    from bot.digests import render_chart
    from bot.texts.digest import render_text
    from crm.db import create_session_factory
    from quality.digest import DigestConfig, build_digest
    from quality.stats import BusinessHours

    engine = create_engine(url)
    factory = create_session_factory(engine)
    config = DigestConfig(tz=TZ, hours=BusinessHours.parse(BUSINESS_HOURS, TZ))
    render_chart_warm = None
    results: dict[str, Any] = {}
    try:
        for kind, day, now in (("day", DAILY_DAY, DAILY_NOW), ("week", WEEKLY_DAY, WEEKLY_NOW)):
            times: list[float] = []
            peaks: list[int] = []
            figures: dict[str, Any] = {}
            for i in range(repeat + 1):
                traced = i == repeat  # the last run measures Python's peak allocation
                if traced:
                    tracemalloc.start()
                started = time.perf_counter()
                async with factory() as session:
                    digest = await build_digest(session, kind=kind, day=day, config=config, now=now)
                text_ = render_text(digest)
                png = await asyncio.to_thread(render_chart, digest)
                if traced:
                    peaks.append(tracemalloc.get_traced_memory()[1])
                    tracemalloc.stop()
                else:
                    times.append(time.perf_counter() - started)
                render_chart_warm = png
                figures = {
                    "tickets": digest.current.volume.tickets,
                    "customer_messages": digest.current.volume.customer_messages,
                    "ratings": digest.current.csat.count,
                    "text_chars": len(text_),
                    "png_bytes": len(png),
                }
            results[kind] = {
                "first_s": times[0],
                "median_s": statistics.median(times),
                "max_s": max(times),
                "tracemalloc_peak_mb": max(peaks) / 2**20,
                **figures,
            }
        assert render_chart_warm is not None
    finally:
        await engine.dispose()
    results["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return results


def measure(backend: str, postgres_base: str, repeat: int) -> dict[str, Any]:
    out = asyncio.run(_measure(backend_url(backend, postgres_base), repeat))
    out["backend"] = backend
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--postgres", default=POSTGRES_ADMIN, help="server URL (any database)")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the databases")
    parser.add_argument("--build-only", action="store_true")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=20260225)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--measure", metavar="BACKEND", help=argparse.SUPPRESS)
    args = parser.parse_args()
    pg = (
        make_url(args.postgres)
        .set(drivername="postgresql+asyncpg")
        .render_as_string(hide_password=False)
    )
    if args.measure:
        print(json.dumps(measure(args.measure, pg, args.repeat)))
        return
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    for backend in backends:
        build(backend, pg, args.rebuild, args.seed)
    if args.build_only:
        return
    results = []
    for backend in backends:
        proc = subprocess.run(  # noqa: S603 - our own script, fixed arguments
            [
                sys.executable,
                __file__,
                "--measure",
                backend,
                "--postgres",
                pg,
                "--repeat",
                str(args.repeat),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    if args.json:
        print(json.dumps({"results": results}, indent=2))
        return
    print()
    print(f"{N_MESSAGES:,} messages, {N_TICKETS:,} tickets, {N_RATINGS:,} ratings over a year")
    print(
        f"{'backend':<10} {'digest':<7} {'first s':>8} {'median s':>9} {'max s':>7} "
        f"{'py peak MB':>11} {'max RSS MB':>11}"
    )
    for r in results:
        for kind in ("day", "week"):
            m = r[kind]
            print(
                f"{r['backend']:<10} {kind:<7} {m['first_s']:>8.3f} {m['median_s']:>9.3f} "
                f"{m['max_s']:>7.3f} {m['tracemalloc_peak_mb']:>11.1f} {r['max_rss_mb']:>11.0f}"
            )


if __name__ == "__main__":
    main()
