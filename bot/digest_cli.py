"""``python main.py digest``: print (or send) a service-quality digest on demand.

Registered on the Typer app by ``main.py``: ``bot.digest_cli.register(app, settings_or_exit)``.
Without ``--date`` it reports what the schedule would send now: yesterday, or last week. It lives
in ``bot/`` because it prints the managers' digest (the bot's texts, NLP hooks and need outlook)
and can send it; ``quality`` only computes figures.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from settings import Settings

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # NumPy, SciPy and matplotlib load only when the command runs
    from bot.digests import Rendered


class PeriodOption(StrEnum):
    DAY = "day"
    WEEK = "week"


@dataclass(frozen=True, slots=True)
class DigestRequest:
    kind: str  # quality.digest.PeriodKind
    day: date | None
    as_json: bool
    chart: Path | None
    send: bool


def default_day(kind: str, now: datetime, settings: Settings) -> date:
    """Yesterday for a daily digest; the Monday of last week for a weekly one."""
    today = now.astimezone(settings.tz).date()
    if kind == "week":
        return today - timedelta(days=today.weekday() + 7)
    return today - timedelta(days=1)


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(code=code)


async def _run(settings: Settings, request: DigestRequest, now: datetime) -> tuple[Rendered, int]:
    # The same digest the managers get: themes with key phrases and masked quotes, at-risk
    # customers and the staffing forecast when a need model exists.
    from bot import digests
    from bot.app import build_services
    from quality.digest import PeriodKind

    kind = PeriodKind(request.kind)
    day = request.day or default_day(kind, now, settings)
    services = await asyncio.to_thread(build_services, settings)
    services.clock = lambda: now
    factory = services.session_factory
    try:
        rendered = await digests.build(
            services, kind=kind, day=day, chart=request.chart is not None or request.send
        )
        sent = 0
        if request.send:
            sent = await _send(settings, rendered, factory)
        return rendered, sent
    finally:
        await services.aclose()


async def _send(settings: Settings, rendered: Rendered, factory: Any) -> int:
    from sqlalchemy.exc import IntegrityError

    from crm.db import session_scope
    from crm.models import DigestRun

    assert settings.telegram_token is not None  # noqa: S101 - checked before
    sent = await _deliver(settings, rendered)
    period = rendered.digest.period
    if period.partial or sent == 0:
        return sent  # a period still running (or not delivered): the schedule sends it in full
    try:  # recorded so that the schedule does not send the same digest again
        async with session_scope(factory) as session:
            session.add(
                DigestRun(
                    kind=period.kind.value,
                    period_start=period.first,
                    sent_at=rendered.digest.generated_at,
                    recipients=sent,
                )
            )
    except IntegrityError:
        log.info("the %s digest for %s was already recorded", period.kind.value, period.first)
    return sent


def run_digest(settings: Settings, request: DigestRequest, now: datetime) -> None:
    """The command's body (separate from Typer for tests)."""
    if request.send:
        token = (
            settings.telegram_token.get_secret_value().strip() if settings.telegram_token else ""
        )
        if not token:
            raise _fail(
                "Cannot send: KEFU_TELEGRAM_TOKEN is not set. Set it (see `python main.py run`) "
                "or leave out --send to print the digest."
            )
        if not settings.manager_chat_ids:
            raise _fail(
                "Cannot send: KEFU_MANAGER_CHAT_IDS is empty. Set it to the chat ids that "
                "should receive digests (comma-separated)."
            )
    from crm.migrate import upgrade

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.resolved_database_url)
    rendered, sent = asyncio.run(_run(settings, request, now))
    if request.chart is not None:
        request.chart.parent.mkdir(parents=True, exist_ok=True)
        request.chart.write_bytes(rendered.png)
    if request.as_json:
        payload = rendered.digest.to_json()
        if request.chart is not None:
            payload["chart_file"] = str(request.chart)
        if request.send:
            payload["sent_to"] = sent
        sys.stdout.write(json.dumps(payload, ensure_ascii=False) + "\n")
        return
    typer.echo(_plain(rendered.text))
    if request.chart is not None:
        typer.echo(f"\nChart written to {request.chart}", err=True)
    if request.send:
        total = len(settings.manager_chat_ids)
        typer.echo(f"Sent to {sent} of {total} manager chats.", err=True)
        if sent < total:
            raise typer.Exit(code=1)


def register(app: typer.Typer, settings_factory: Callable[[], Settings]) -> None:
    """Add the ``digest`` command to ``app``."""

    @app.command()
    def digest(
        period: Annotated[
            PeriodOption, typer.Option("--period", help="day, or week (Monday to Sunday).")
        ] = PeriodOption.DAY,
        day: Annotated[
            str | None,
            typer.Option(
                "--date",
                help="A day (YYYY-MM-DD) in the period; default: yesterday / last week.",
            ),
        ] = None,
        as_json: Annotated[
            bool, typer.Option("--json", help="Print one JSON object with every figure.")
        ] = False,
        chart: Annotated[
            Path | None, typer.Option("--chart", help="Write the chart to this PNG file.")
        ] = None,
        send: Annotated[
            bool, typer.Option("--send", help="Send it to every chat in KEFU_MANAGER_CHAT_IDS.")
        ] = False,
    ) -> None:
        """Service-quality digest: volume, satisfaction, response times, agents, themes."""
        settings = settings_factory()
        parsed: date | None = None
        if day is not None:
            try:
                parsed = date.fromisoformat(day)
            except ValueError:
                raise _fail(f"--date must look like 2026-03-01, not {day!r}.") from None
        request = DigestRequest(period.value, parsed, as_json, chart, send)
        run_digest(settings, request, datetime.now(settings.tz))


def _plain(html_text: str) -> str:
    """The digest's Telegram HTML as terminal text."""
    return html.unescape(re.sub(r"<[^>]+>", "", html_text))


async def _deliver(settings: Settings, rendered: Rendered) -> int:
    """Through the outbox like every send: stored, then carried out by delivery (with its
    retries) until the outbox is empty or a minute has passed. Returns the chats reached."""
    import asyncio

    from telegram import Bot

    from bot.app import build_services
    from bot.delivery import Delivery
    from bot.digests import posts
    from crm.support.outcomes import Outcome

    assert settings.telegram_token is not None  # noqa: S101 - checked by the caller
    api = settings.telegram_api_url.rstrip("/")
    bot = Bot(
        settings.telegram_token.get_secret_value(),
        base_url=f"{api}/bot",
        base_file_url=f"{api}/file/bot",
    )
    services = build_services(settings)
    from crm.support import outbox

    try:
        async with services.session() as session:
            failed_before = (await outbox.counts(session)).get("failed", 0)
        ids = settings.manager_chat_ids
        await services.runner.effects_only(Outcome(list(posts(ids, rendered))))
        async with bot:
            delivery = Delivery(services, bot)
            await delivery.start()
            try:
                for _ in range(600):
                    if await delivery.idle():
                        break
                    await asyncio.sleep(0.1)
            finally:
                await delivery.stop()
        async with services.session() as session:
            counts = await outbox.counts(session)
        delivered = counts.get("pending", 0) == 0 and counts.get("failed", 0) == failed_before
        return len(ids) if delivered else 0
    finally:
        await services.aclose()
