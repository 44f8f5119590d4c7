"""Digests, manager commands and alerts end to end: the real Application, the fake Bot API over
HTTP, a fixed clock (``services.clock``) and the real jobs run by hand instead of waiting."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from matplotlib.image import imread
from sqlalchemy import select

from bot import jobs
from crm.models import Customer, DigestRun, Message, Rating, Ticket
from quality.digest import PeriodKind
from tests.e2e.conftest import Kefu, settle, wait_text
from tests.fakebotapi import JSON, FakeBotAPI

BERLIN = ZoneInfo("Europe/Berlin")
PNG = b"\x89PNG\r\n\x1a\n"


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """A Berlin wall-clock time as an aware datetime."""
    return datetime(year, month, day, hour, minute, tzinfo=BERLIN)


def prepare(kefu: Kefu, now: datetime) -> None:
    """Fix the clock; make sure the jobs and commands are registered; no start-up catch-up."""
    kefu.services.clock = lambda: now
    queue = kefu.app.job_queue
    assert queue is not None
    if not queue.get_jobs_by_name(jobs.DAILY_JOB):
        jobs.register(kefu.app)
    for job in queue.get_jobs_by_name(jobs.CATCH_UP_JOB):
        job.schedule_removal()


def set_clock(kefu: Kefu, now: datetime) -> None:
    kefu.services.clock = lambda: now


async def run_job(kefu: Kefu, name: str) -> None:
    queue = kefu.app.job_queue
    assert queue is not None
    jobs_named = queue.get_jobs_by_name(name)
    if not jobs_named:  # the catch-up job is removed by prepare(); build an equivalent one
        job = queue.run_once(jobs.catch_up, when=3600, name=f"{name}-test")
        await job.run(kefu.app)
        job.schedule_removal()
        return
    await jobs_named[0].run(kefu.app)


async def seed(kefu: Kefu, day: date, *, tickets: int = 3, score: int = 5) -> None:
    """A few tickets, customer messages and ratings on a local day."""
    async with kefu.services.session() as session:
        customer = (
            await session.execute(select(Customer).where(Customer.telegram_user_id == 42))
        ).scalar_one_or_none()
        if customer is None:
            customer = Customer(first_name="Jane", telegram_user_id=42, telegram_chat_id=42)
            session.add(customer)
            await session.flush()
        for i in range(tickets):
            created = datetime.combine(day, datetime.min.time(), BERLIN) + timedelta(hours=10 + i)
            ticket = Ticket(
                customer_id=customer.id,
                created_at=created,
                updated_at=created,
                status="resolved",
                category="billing",
                first_response_at=created + timedelta(minutes=15),
                resolved_at=created + timedelta(hours=1),
                resolution="agent",
            )
            session.add(ticket)
            await session.flush()
            ticket.number = 1000 + ticket.id
            session.add(
                Message(
                    customer_id=customer.id,
                    ticket_id=ticket.id,
                    direction="in",
                    author_kind="customer",
                    text=f"I was charged twice <b>{i}</b>, mail me at jane@example.com",
                    category="billing",
                    sentiment="neutral",
                    created_at=created,
                )
            )
            session.add(
                Rating(
                    ticket_id=ticket.id,
                    customer_id=customer.id,
                    score=score,
                    created_at=created + timedelta(hours=2),
                )
            )


async def digest_runs(kefu: Kefu) -> list[tuple[str, date, int]]:
    async with kefu.services.session() as session:
        rows = await session.execute(
            select(DigestRun.kind, DigestRun.period_start, DigestRun.recipients).order_by(
                DigestRun.kind, DigestRun.period_start
            )
        )
        return [(k, p, r) for k, p, r in rows]


async def png_of(kefu: Kefu, message: JSON) -> bytes:
    """Download the largest size of a photo message through the real PTB file API."""
    file = await kefu.app.bot.get_file(message["photo"][-1]["file_id"])
    return bytes(await file.download_as_bytearray())


def managers(api: FakeBotAPI) -> tuple[JSON, JSON]:
    boss = api.add_user("Mia", username="mia_manager")
    group = api.add_supergroup("Managers", members=[boss])
    return boss, group


def start(start_kefu: Callable[..., Any], *chats: int, **overrides: object) -> Any:
    return start_kefu(manager_chat_ids=list(chats), timezone="Europe/Berlin", **overrides)


async def test_daily_digest_reaches_every_manager_with_a_valid_png(
    api: FakeBotAPI, start_kefu: Any
) -> None:
    boss, group = managers(api)
    async with start(start_kefu, boss["id"], group["id"]) as kefu:
        prepare(kefu, at(2026, 3, 4, 9, 0))
        await seed(kefu, date(2026, 3, 3), tickets=3, score=5)
        await seed(kefu, date(2026, 3, 2), tickets=2, score=3)
        await run_job(kefu, jobs.DAILY_JOB)
        for chat_id in (boss["id"], group["id"]):
            text_msg, photo_msg = await api.wait_for_messages(chat_id, 2)
            text = text_msg["text"]
            assert text.startswith("📊 Daily digest · Tue 3 Mar 2026")
            assert "Compared with Mon 2 Mar 2026" in text
            assert "🎫 New tickets: 3 (▲ 50%)" in text
            assert "⭐ Mean 5.00 (▲ 2.00)" in text
            assert "I was charged twice <b>" in text  # user text escaped, shown literally
            assert "jane@example.com" not in text
            assert "[email]" in text  # masked in full
            assert photo_msg["caption"] == ("Messages by category and daily mean rating · 3 Mar")
            png = await png_of(kefu, photo_msg)
            assert png[:8] == PNG
            height, width, _ = imread(io.BytesIO(png), format="png").shape
            assert (width, height) == (880, 704)
        assert await digest_runs(kefu) == [("day", date(2026, 3, 3), 2)]
        # the schedule firing again for the same day sends nothing
        await run_job(kefu, jobs.DAILY_JOB)
        await settle(api)
        assert len(api.messages_in(boss["id"])) == 2


async def test_manager_commands_and_refusals(api: FakeBotAPI, start_kefu: Any) -> None:
    boss, group = managers(api)
    customer = api.add_user("Carl", username="carl")
    async with start(start_kefu, boss["id"], group["id"]) as kefu:
        prepare(kefu, at(2026, 3, 4, 15, 30))
        await seed(kefu, date(2026, 3, 4), tickets=2)

        api.user_sends_text(customer, "/digest")
        api.user_sends_text(customer, "/stats 7d")
        await settle(api)
        replies = [m["text"] for m in api.messages_in(customer["id"])]
        assert replies == ["Only managers can do this.", "Only managers can do this."]

        api.user_sends_text(boss, "/digest")
        text_msg, photo_msg = await api.wait_for_messages(boss["id"], 2)
        assert text_msg["text"].startswith("📊 Daily digest · Wed 4 Mar 2026, so far (until 15:30)")
        assert "🎫 New tickets: 2" in text_msg["text"]
        assert (await png_of(kefu, photo_msg))[:8] == PNG

        api.user_sends_text(boss, "/digest week", chat_id=group["id"])
        week = await wait_text(api, group["id"], "Weekly digest")
        assert week["text"].startswith("📊 Weekly digest · 2 Mar – 8 Mar 2026, so far")

        api.user_sends_text(boss, "/stats 30d")
        stats = await wait_text(api, boss["id"], "Last 30 days")
        assert stats["text"].startswith("📊 Last 30 days · 3 Feb – 4 Mar 2026, so far")
        assert "🎫 New tickets: 2" in stats["text"]

        api.user_sends_text(boss, "/stats forever")
        usage = await wait_text(api, boss["id"], "/stats 7d")
        assert usage["text"] == "Use /stats 7d or /stats 30d."
        await settle(api)
        assert await digest_runs(kefu) == []  # on-demand digests are not scheduled ones


async def test_missed_digest_sent_exactly_once_after_restart(
    api: FakeBotAPI, start_kefu: Any
) -> None:
    boss, _ = managers(api)
    now = at(2026, 3, 4, 10, 0)  # the bot was down at 09:00
    async with start(start_kefu, boss["id"]) as kefu:
        prepare(kefu, now)
        await seed(kefu, date(2026, 3, 3))
        # two start-ups racing for the same missed digests
        await asyncio.gather(run_job(kefu, jobs.CATCH_UP_JOB), run_job(kefu, jobs.CATCH_UP_JOB))
        await api.wait_for_messages(boss["id"], 4)  # both digests, each a text and a chart
        await settle(api)
        sent = [m.get("text") or m.get("caption") for m in api.messages_in(boss["id"])]
        assert sum(1 for s in sent if s and s.startswith("📊 Daily digest · Tue 3 Mar")) == 1
        assert sum(1 for s in sent if s and s.startswith("📊 Weekly digest · 23 Feb")) == 1
        assert len(sent) == 4  # two texts, two charts
        assert await digest_runs(kefu) == [
            ("day", date(2026, 3, 3), 1),
            ("week", date(2026, 2, 23), 1),
        ]

    # a restart later the same day: nothing is due that was not sent
    async with start(start_kefu, boss["id"]) as kefu:
        prepare(kefu, now + timedelta(hours=2))
        await run_job(kefu, jobs.CATCH_UP_JOB)
        await settle(api)
        assert len(api.messages_in(boss["id"])) == 4

    # the next morning, down again at 09:00: the day's digest follows at the next start
    async with start(start_kefu, boss["id"]) as kefu:
        prepare(kefu, at(2026, 3, 5, 11, 0))
        await run_job(kefu, jobs.CATCH_UP_JOB)
        await run_job(kefu, jobs.CATCH_UP_JOB)
        await settle(api)
        texts = [str(m["text"]) for m in api.messages_in(boss["id"]) if m.get("text")]
        assert texts[-1].startswith("📊 Daily digest · Wed 4 Mar 2026")
        assert len(api.messages_in(boss["id"])) == 6
        assert [r[:2] for r in await digest_runs(kefu)] == [
            ("day", date(2026, 3, 3)),
            ("day", date(2026, 3, 4)),
            ("week", date(2026, 2, 23)),
        ]


async def test_a_digest_that_failed_to_build_is_tried_again(
    api: FakeBotAPI, start_kefu: Any, monkeypatch: Any
) -> None:
    boss, _ = managers(api)
    async with start(start_kefu, boss["id"]) as kefu:
        prepare(kefu, at(2026, 3, 4, 9, 0))
        real_build = jobs.build

        async def broken(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("database went away")

        monkeypatch.setattr(jobs, "build", broken)
        await run_job(kefu, jobs.DAILY_JOB)  # PTB logs the job's error
        assert await digest_runs(kefu) == []
        monkeypatch.setattr(jobs, "build", real_build)
        await run_job(kefu, jobs.DAILY_JOB)
        await api.wait_for_messages(boss["id"], 2)
        assert await digest_runs(kefu) == [("day", date(2026, 3, 3), 1)]


async def test_schedule_fires_under_a_controlled_clock(api: FakeBotAPI, start_kefu: Any) -> None:
    boss, _ = managers(api)
    async with start(start_kefu, boss["id"], digest_schedule="30 8 * * *") as kefu:
        prepare(kefu, at(2026, 3, 28, 9, 0))
        queue = kefu.app.job_queue
        assert queue is not None
        daily = queue.get_jobs_by_name(jobs.DAILY_JOB)[0].job.trigger
        weekly = queue.get_jobs_by_name(jobs.WEEKLY_JOB)[0].job.trigger
        assert queue.get_jobs_by_name(jobs.DAILY_JOB)[0].job.misfire_grace_time == 3600
        saturday = at(2026, 3, 28, 9, 0)
        # Sunday 29 March: the clocks go forward; 08:30 is still 08:30 local time
        next_daily = daily.get_next_fire_time(None, saturday)
        assert next_daily == at(2026, 3, 29, 8, 30)
        assert next_daily.astimezone(UTC) == datetime(2026, 3, 29, 6, 30, tzinfo=UTC)
        assert daily.get_next_fire_time(None, next_daily + timedelta(seconds=1)) == at(
            2026, 3, 30, 8, 30
        )
        assert weekly.get_next_fire_time(None, saturday) == at(2026, 3, 30, 8, 30)
        assert jobs.last_fire_time(weekly, saturday) == at(2026, 3, 23, 8, 30)

        # fire both at their times
        await seed(kefu, date(2026, 3, 29), tickets=1)
        set_clock(kefu, at(2026, 3, 30, 8, 30))
        await run_job(kefu, jobs.DAILY_JOB)
        await run_job(kefu, jobs.WEEKLY_JOB)
        await api.wait_for_messages(boss["id"], 4)  # two digests, each a text and a chart
        texts = [m["text"] for m in api.messages_in(boss["id"]) if "text" in m]
        assert texts[0].startswith("📊 Daily digest · Sun 29 Mar 2026")
        assert texts[1].startswith("📊 Weekly digest · 23 Mar – 29 Mar 2026")
        assert "🎫 New tickets: 1" in texts[1]
        assert [r[:2] for r in await digest_runs(kefu)] == [
            ("day", date(2026, 3, 29)),
            ("week", date(2026, 3, 23)),
        ]


async def test_alerts_reach_managers_and_the_ticket_thread(
    api: FakeBotAPI, start_kefu: Any
) -> None:
    boss, _ = managers(api)
    agent = api.add_user("Alice", username="alice")
    staff = api.add_supergroup("Support", is_forum=True, members=[agent])
    topic = api.add_forum_topic(staff["id"], "#1001 · Jane")
    now = at(2026, 3, 4, 12, 0)
    async with start(
        start_kefu, boss["id"], staff_chat_id=staff["id"], agent_ids=[agent["id"]]
    ) as kefu:
        prepare(kefu, now)
        async with kefu.services.session() as session:
            customer = Customer(first_name="Jane", telegram_user_id=42, telegram_chat_id=42)
            session.add(customer)
            await session.flush()
            waiting = Ticket(
                customer_id=customer.id,
                number=1001,
                created_at=now - timedelta(hours=2),
                updated_at=now - timedelta(hours=2),
                status="open",
                escalated_at=now - timedelta(hours=2),
                staff_chat_id=staff["id"],
                staff_thread_id=topic["message_thread_id"],
            )
            session.add(waiting)
            for day in range(1, 29):  # a calm month: 1 complaint in 10
                for i in range(10):
                    session.add(
                        Message(
                            customer_id=customer.id,
                            direction="in",
                            author_kind="customer",
                            text="x",
                            category="delivery",
                            sentiment="negative" if i == 0 else "neutral",
                            created_at=now - timedelta(days=day),
                        )
                    )
            for i in range(9):  # and today 7 of 9
                session.add(
                    Message(
                        customer_id=customer.id,
                        direction="in",
                        author_kind="customer",
                        text="x",
                        category="delivery",
                        sentiment="negative" if i < 7 else "neutral",
                        created_at=now - timedelta(minutes=30 + i),
                    )
                )
        await run_job(kefu, jobs.ALERTS_JOB)
        spikes = await api.wait_for_messages(boss["id"], 2)
        assert spikes[0]["text"].startswith("🚨 Complaint spike overall today (Wed 4 Mar)")
        assert spikes[1]["text"].startswith("🚨 Complaint spike in delivery today")
        breach = await wait_text(api, staff["id"], "#1001", thread_id=topic["message_thread_id"])
        assert breach["text"] == (
            "⏰ #1001 has waited 2h 00m (so far) for a first answer; the target is 60 min."
        )
        # a few minutes later: nothing new to announce
        set_clock(kefu, now + timedelta(minutes=5))
        await run_job(kefu, jobs.ALERTS_JOB)
        await settle(api)
        assert len(api.messages_in(boss["id"])) == 2
        assert len(api.messages_in(staff["id"], thread_id=topic["message_thread_id"])) == 1


def test_due_periods() -> None:
    from settings import load_settings

    settings = load_settings(_env_file=None, timezone="Europe/Berlin")
    monday = at(2026, 3, 2, 9, 0)
    assert jobs.due_period(PeriodKind.DAY, monday, settings) == date(2026, 3, 1)
    assert jobs.due_period(PeriodKind.WEEK, monday, settings) == date(2026, 2, 23)
    trigger = jobs.daily_trigger(settings)
    assert jobs.last_fire_time(trigger, at(2026, 3, 2, 8, 59)) == at(2026, 3, 1, 9, 0)
    assert jobs.last_fire_time(trigger, at(2026, 3, 2, 9, 0)) == at(2026, 3, 2, 9, 0)
