"""Bursts under Telegram's flood limits: the rate limiter retries 429s, nothing is lost."""

from __future__ import annotations

from typing import Any

from tests.fakebotapi import FakeBotAPI


async def test_burst_with_429s_loses_no_reply(api: FakeBotAPI, start_kefu: Any) -> None:
    customers = [api.add_user(f"C{i}") for i in range(6)]
    api.flood_limit(overall_per_second=3.0)  # stricter than Telegram: forces 429 answers
    async with start_kefu(telegram_rate_limits="telegram"):
        for c in customers:
            api.user_sends_text(c, "/help")
            api.user_sends_text(c, "/help")
        for c in customers:
            await api.wait_for_messages(c["id"], 2, timeout=30)
        assert api.flood_errors > 0  # Telegram said "retry after" and the limiter obeyed
        assert all(len(api.messages_in(c["id"])) == 2 for c in customers)
