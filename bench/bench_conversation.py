"""Throughput of the conversation loop when every Bot API call takes real-world time.

Telegram answers a Bot API call in 50-100 ms. This benchmark puts the same latency (75 ms) into the
fake Bot API server from the test suite, lets N customers write M messages each at once, and times
how long Kefu needs until every message is stored, acknowledged and relayed to the staff chat —
once with updates processed one at a time and once with Kefu's per-chat concurrency, in one run.

    python bench/bench_conversation.py [--customers 40] [--messages 3] [--latency 0.075]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from aiohttp import web
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.app import build_application, build_services
from crm.migrate import upgrade
from crm.models import Message
from settings import load_settings
from tests.fakebotapi import FakeBotAPI

TOKEN = "123456789:AABenchTokenForKefu_abcdefghijklmn"  # noqa: S105 - the fake server's


class SlowBotAPI(FakeBotAPI):
    """The fake server with Telegram-like latency on every call except long polling."""

    def __init__(self, latency: float) -> None:
        super().__init__(token=TOKEN)
        self.latency = latency

    async def _handle_method(self, request: web.Request) -> web.Response:
        if request.match_info["method"].lower() != "getupdates":
            await asyncio.sleep(self.latency)
        return await super()._handle_method(request)


async def run_once(customers: int, messages: int, latency: float, concurrent: int) -> float:
    async with SlowBotAPI(latency) as api:
        agent = api.add_user("Agent")
        staff = api.add_supergroup("Support", is_forum=True, members=[agent])
        users = [api.add_user(f"Customer {i}") for i in range(customers)]
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite+aiosqlite:///{tmp}/bench.db"
            await asyncio.to_thread(upgrade, url)
            settings = load_settings(
                _env_file=None,
                telegram_token=TOKEN,
                telegram_api_url=api.url,
                database_url=url,
                data_dir=Path(tmp),
                staff_chat_id=staff["id"],
                agent_ids=[agent["id"]],
                telegram_rate_limits="off",
            )
            services = build_services(settings)
            app = build_application(settings, services, max_concurrent_updates=concurrent)
            await app.initialize()
            await app.start()
            assert app.updater is not None
            await app.updater.start_polling(poll_interval=0.0, timeout=1)
            expected_staff = customers * (1 + messages)  # card + each relayed message
            started = time.perf_counter()
            for step in range(messages):
                for user in users:
                    api.user_sends_text(user, f"message {step} from {user['first_name']}")
            await api.wait_for(
                lambda: len(api.messages_in(staff["id"])) >= expected_staff, timeout=600
            )
            elapsed = time.perf_counter() - started
            async with services.session() as session:
                stored = await session.scalar(select(func.count(Message.id)))
            assert stored == customers * messages, stored
            await app.updater.stop()
            await app.stop()
            await app.shutdown()
            await services.aclose()
            return elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=40)
    parser.add_argument("--messages", type=int, default=3)
    parser.add_argument("--latency", type=float, default=0.075)
    args = parser.parse_args()
    total = args.customers * args.messages
    print(
        f"{args.customers} customers x {args.messages} messages = {total} messages, "
        f"Bot API latency {args.latency * 1000:.0f} ms per call"
    )
    print(f"{'processing':<28}{'seconds':>10}{'messages/s':>14}")
    results = {}
    for label, concurrent in (("one update at a time", 1), ("per-chat concurrent (64)", 64)):
        elapsed = await run_once(args.customers, args.messages, args.latency, concurrent)
        results[label] = elapsed
        print(f"{label:<28}{elapsed:>10.2f}{total / elapsed:>14.1f}")
    sequential, concurrent_time = results.values()
    print(f"speed-up: {sequential / concurrent_time:.1f}x")


if __name__ == "__main__":
    asyncio.run(main())
