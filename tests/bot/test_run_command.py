"""`python main.py run` as a user starts it: a real process polling the fake Bot API over HTTP."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from tests.e2e.conftest import TOKEN, wait_text
from tests.fakebotapi import FakeBotAPI

ROOT = Path(__file__).resolve().parents[2]


async def test_run_serves_customers_and_never_logs_the_token(tmp_path: Path) -> None:
    async with FakeBotAPI(token=TOKEN) as api:
        agent = api.add_user("Alice")
        customer = api.add_user("Bob")
        staff = api.add_supergroup("Support", members=[agent])
        env = {k: v for k, v in os.environ.items() if not k.startswith("KEFU_")}
        env.update(
            KEFU_TELEGRAM_TOKEN=TOKEN,
            KEFU_TELEGRAM_API_URL=api.url,
            KEFU_DATA_DIR=str(tmp_path / "data"),
            KEFU_STAFF_CHAT_ID=str(staff["id"]),
            KEFU_AGENT_IDS=str(agent["id"]),
            KEFU_TELEGRAM_RATE_LIMITS="off",
            KEFU_LOG_LEVEL="DEBUG",
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(ROOT / "main.py"),
            "run",
            cwd=str(tmp_path),
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            api.user_sends_text(customer, "I want to complain about your rude driver")
            # The first start trains the text models before polling: allow for a slow machine.
            await wait_text(api, customer["id"], "#1001", timeout=60)
            await wait_text(api, staff["id"], "Ticket #1001", timeout=30)
            assert (tmp_path / "data" / "kefu.db").exists()  # migrated by `run` itself
            commands = api.commands
            assert commands, "the command menu was registered"
        finally:
            process.send_signal(signal.SIGINT)
            output, _ = await asyncio.wait_for(process.communicate(), timeout=30)
        log = output.decode()
        assert process.returncode == 0, log[-2000:]
        assert TOKEN not in log
        assert TOKEN.split(":")[1] not in log
        assert "Traceback" not in log
