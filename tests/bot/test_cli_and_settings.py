"""The command line and the configuration contract."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.logs import RedactFilter
from settings import RateLimits, Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]


def run_main(*args: str, env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KEFU_")}
    return subprocess.run(  # noqa: S603 - our own CLI
        [sys.executable, str(ROOT / "main.py"), *args],
        env={**clean, **env},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=env.get("CWD", str(ROOT)),
        check=False,
    )


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KEFU_AGENT_IDS", "1, 2,3")
    monkeypatch.setenv("KEFU_MANAGER_CHAT_IDS", "-100123")
    monkeypatch.setenv("KEFU_TELEGRAM_TOKEN", "42:s3cr3tvalue")
    monkeypatch.setenv("KEFU_TELEGRAM_RATE_LIMITS", "off")
    monkeypatch.setenv("KEFU_STAFF_CHAT_ID", "")
    monkeypatch.setenv("KEFU_DATA_DIR", str(tmp_path))
    settings = load_settings(_env_file=None)
    assert settings.agent_ids == [1, 2, 3]
    assert settings.manager_chat_ids == [-100123]
    assert settings.staff_chat_id is None
    assert settings.telegram_rate_limits == RateLimits.OFF
    assert "s3cr3tvalue" not in repr(settings)
    assert settings.telegram_token is not None
    assert settings.telegram_token.get_secret_value() == "42:s3cr3tvalue"
    assert (
        settings.resolved_database_url == f"sqlite+aiosqlite:///{(tmp_path / 'kefu.db').resolve()}"
    )


def test_settings_reject_unknown_timezone() -> None:
    with pytest.raises(ValueError, match="unknown time zone"):
        Settings(_env_file=None, timezone="Mars/Olympus")  # type: ignore[call-arg]


def test_run_without_token_explains_and_exits_2(tmp_path: Path) -> None:
    result = run_main("run", env={"KEFU_DATA_DIR": str(tmp_path), "CWD": str(tmp_path)})
    assert result.returncode == 2
    assert "BotFather" in result.stderr
    assert "KEFU_TELEGRAM_TOKEN" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_bad_configuration_is_reported_plainly(tmp_path: Path) -> None:
    env = {
        "KEFU_DATA_DIR": str(tmp_path),
        "KEFU_STAFF_CHAT_ID": "not-a-number",
        "CWD": str(tmp_path),
    }
    result = run_main("run", env=env)
    assert result.returncode == 2
    assert "KEFU_STAFF_CHAT_ID" in result.stderr
    assert "Traceback" not in result.stderr


def test_db_upgrade_and_console(tmp_path: Path) -> None:
    env = {"KEFU_DATA_DIR": str(tmp_path), "CWD": str(tmp_path)}
    upgraded = run_main("db", "upgrade", env=env)
    assert upgraded.returncode == 0, upgraded.stderr
    assert (tmp_path / "kefu.db").exists()
    script = (
        "Where is my parcel? It has not arrived\n/no\n/agent We are on it\n/resolve\n"
        "/rate 5 lovely\nI want to complain about your rude driver\n/quit\n"
    )
    result = run_main("console", env=env, stdin=script)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "[bot → customer] 🎫 #1001" in out  # answered from the knowledge base
    assert "Did this solve it?" in out
    assert "ticket #1001 is now with our team" in out
    assert "[staff chat] 🎫 Ticket #1001 · escalated" in out
    assert "🏷 Delivery" in out
    assert "[bot → customer] We are on it" in out
    assert "has been resolved" in out
    assert "Thank you for your rating (5/5)" in out
    assert "opened ticket #1002" in out
    assert "Earlier tickets: #1001 (★★★★★)" in out


def test_redact_filter_hides_the_token() -> None:
    record = logging.LogRecord(
        "httpx", logging.INFO, __file__, 1, "POST https://x/bot%s/getMe", ("42:secret",), None
    )
    RedactFilter("42:secret").filter(record)
    assert record.getMessage() == "POST https://x/bot[token]/getMe"


async def test_train_from_corrections_reads_the_database(tmp_path: Path) -> None:
    import json
    from datetime import UTC, datetime
    from functools import partial
    from zoneinfo import ZoneInfo

    from crm.db import create_engine, create_session_factory
    from crm.support import flows
    from crm.support.runner import FlowRunner
    from quality.stats import BusinessHours
    from tests.conftest import in_thread

    env = {"KEFU_DATA_DIR": str(tmp_path), "CWD": str(tmp_path)}
    none_yet = run_main("train", "--from-corrections", env=env)
    assert none_yet.returncode == 2
    assert "no corrections yet" in none_yet.stderr
    assert "Traceback" not in none_yet.stderr

    from crm.migrate import upgrade

    url = f"sqlite+aiosqlite:///{(tmp_path / 'kefu.db').resolve()}"
    in_thread(upgrade, url)
    engine = create_engine(url)
    now = datetime(2026, 5, 1, tzinfo=UTC)
    runner = FlowRunner(create_session_factory(engine), clock=lambda: now)
    desk = flows.Desk(
        hours=BusinessHours.parse("", ZoneInfo("UTC")),
        categories=("account", "billing", "complaint"),
    )
    agent = flows.StaffMember(900, "Alice", None, allowed=True)
    staff_chat = flows.StaffSpot(chat_id=-100, thread_id=None, reply_to_message_id=None)
    samples = [
        ("The voucher code from your newsletter is rejected at checkout", "billing"),
        ("Your courier left my parcel in the rain", "complaint"),
        ("I'd like to move my subscription to my wife's name", "account"),
    ]
    for user, (text, category) in enumerate(samples, start=1):
        incoming = flows.CustomerMessage(
            person=flows.Person(telegram_user_id=user, chat_id=user, first_name="C"),
            text=text,
            message_id=1,
        )
        written = await runner.run(
            partial(flows.customer_wrote, desk=desk, incoming=incoming, understood=None, now=now)
        )
        corrected = await runner.run(
            partial(
                flows.staff_command,
                desk=desk,
                member=agent,
                spot=staff_chat,
                command="category",
                argument=category,
                ticket_id=written.ticket_id,
                now=now,
            )
        )
        assert corrected.kinds() == ["notify_thread", "refresh_card"]
    await engine.dispose()

    trained = run_main("train", "--from-corrections", "--json", env=env)
    assert trained.returncode == 0, trained.stderr
    outcome = json.loads(trained.stdout)
    assert outcome["n_corrections"] == 3
    assert isinstance(outcome["promoted"], bool)
    assert 0.0 <= outcome["new_score"] <= 1.0 and 0.0 <= outcome["old_score"] <= 1.0

    # A business's own model is never silently replaced by one built on Kefu's examples.
    own = tmp_path / "own.csv"
    rows = [f"my voucher {i} does not work,billing" for i in range(12)]
    rows += [f"please close account number {i},account" for i in range(12)]
    rows += [f"courier lost parcel {i},complaint" for i in range(12)]
    own.write_text("text,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    custom = run_main("train", "--data", str(own), env=env)
    assert custom.returncode == 0, custom.stderr
    refused = run_main("train", "--from-corrections", env=env)
    assert refused.returncode == 2
    assert "--data" in refused.stderr and "Traceback" not in refused.stderr
    again = run_main("train", "--from-corrections", "--data", str(own), "--json", env=env)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["n_corrections"] == 3
