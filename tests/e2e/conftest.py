"""End-to-end harness: the real PTB Application, polling the fake Bot API over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot import runtime
from bot.app import KefuApplication, build_services
from bot.services import AppServices
from nlp.analysis import Analyzer
from settings import Settings, load_settings
from tests.fakebotapi import JSON, FakeBotAPI

TOKEN = "123456789:AAE2eTestTokenForKefu_abcdefghijkl"


@dataclass
class Kefu:
    """A running bot and the fake Telegram around it."""

    api: FakeBotAPI
    app: KefuApplication
    services: AppServices
    settings: Settings
    running: runtime.Kefu


def make_settings(
    api: FakeBotAPI, database_url: str, data_dir: Path, **overrides: object
) -> Settings:
    values: dict[str, object] = {
        "_env_file": None,
        "telegram_token": TOKEN,
        "telegram_api_url": api.url,
        "database_url": database_url,
        "data_dir": data_dir,
        "telegram_rate_limits": "off",
        "auto_answer": False,  # the understanding tests switch automatic answers on
    }
    values.update(overrides)
    return load_settings(**values)


@asynccontextmanager
async def running_kefu(
    settings: Settings, api: FakeBotAPI, analyzer: Analyzer | None = None
) -> AsyncIterator[Kefu]:
    """Kefu as ``run`` starts it (inbox, dispatcher, delivery, polling), inside the test's loop."""
    services = build_services(settings, analyzer=analyzer)
    running = await runtime.start(settings, services)
    try:
        yield Kefu(api=api, app=running.app, services=services, settings=settings, running=running)
    finally:
        await api.wait_idle(quiet=0.1)
        await runtime.stop(running)


@pytest.fixture
async def api() -> AsyncIterator[FakeBotAPI]:
    async with FakeBotAPI(token=TOKEN) as server:
        yield server


@pytest.fixture
def start_kefu(api: FakeBotAPI, database_url: str, tmp_path: Path) -> Callable[..., Any]:
    """``async with start_kefu(staff_chat_id=..., agent_ids=[...]) as kefu:`` runs the bot."""

    def start(**overrides: object) -> Any:
        return running_kefu(make_settings(api, database_url, tmp_path / "data", **overrides), api)

    return start


def texts_of(messages: list[JSON]) -> list[str]:
    return [m.get("text") or m.get("caption") or "" for m in messages]


async def wait_text(
    api: FakeBotAPI,
    chat_id: int,
    fragment: str,
    *,
    thread_id: int | None = None,
    timeout: float = 10.0,  # noqa: ASYNC109 - a deadline for the fake server's polling
) -> JSON:
    """Wait for a bot message in the chat whose text contains ``fragment``; return it."""
    found: list[JSON] = []

    def seen() -> bool:
        found[:] = [
            m
            for m in api.messages_in(chat_id, thread_id=thread_id)
            if fragment in (m.get("text") or m.get("caption") or "")
        ]
        return bool(found)

    await api.wait_for(seen, timeout)
    return found[-1]


async def settle(api: FakeBotAPI) -> None:
    await api.wait_idle(quiet=0.15)
