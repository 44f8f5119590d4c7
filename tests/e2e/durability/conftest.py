"""Fixtures of the durability tests: a desk (fake Telegram + database + work dir) whose bot
processes are always ended, and whose logs are checked, when a test ends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from nlp.analysis import Analyzer
from tests.e2e.conftest import TOKEN
from tests.e2e.durability.harness import Desk
from tests.fakebotapi import FakeBotAPI


@pytest.fixture
async def desk(
    api: FakeBotAPI, database_url: str, tmp_path: Path, analyzer: Analyzer
) -> AsyncIterator[Desk]:
    """A support desk; the test starts the bot with ``await desk.start()``.

    On the way out every process still running is stopped (SIGKILL when a test failed
    half-way; a passing test stops them itself with ``desk.stop_all()``).
    """
    workdir = tmp_path / "desk"
    workdir.mkdir()
    desk = Desk(
        api=api,
        database_url=database_url,
        workdir=workdir,
        models_dir=analyzer.models_dir,
        token=TOKEN,
    )
    try:
        yield desk
    finally:
        await desk.kill_all()
