"""The managers' digest as the bot delivers it: built with the NLP hooks (key phrases, masked
quotes) and the need outlook (at-risk customers, staffing forecast), then sent as text and chart.

Used by the scheduled jobs (:mod:`bot.jobs`), the managers' ``/digest`` and ``/stats`` commands
(:mod:`bot.handlers.manager`) and ``python main.py digest`` (:mod:`bot.digest_cli`).
"""

from __future__ import annotations

import asyncio
import base64
import importlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot import texts
from bot.services import AppServices
from bot.texts import digest as digest_texts
from crm import needs
from crm.support.outcomes import Post
from quality.digest import (
    AtRiskCustomer,
    Digest,
    DigestConfig,
    Masker,
    NeedsOutlook,
    PeriodKind,
    StaffingOutlook,
    Summariser,
    build_digest,
)
from quality.digest.chart import draw_chart

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, eq=False)
class Rendered:
    """A digest with its Telegram HTML text and its chart (PNG; empty when not drawn)."""

    digest: Digest
    text: str
    png: bytes


def render_chart(digest: Digest) -> bytes:
    """The digest's chart as PNG bytes, with the words of :mod:`bot.texts.digest` (CPU work)."""
    return draw_chart(digest, digest_texts.CHART_LABELS)


async def produce(
    session: AsyncSession,
    *,
    kind: PeriodKind | str,
    day: date,
    config: DigestConfig,
    now: datetime,
    days: int = 1,
    chart: bool = True,
    needs: NeedsOutlook | None = None,
) -> Rendered:
    """Build a digest, its text and (off the event loop) its chart."""
    digest = await build_digest(
        session, kind=kind, day=day, config=config, now=now, days=days, needs=needs
    )
    text = digest_texts.render_text(digest)
    png = await asyncio.to_thread(render_chart, digest) if chart else b""
    return Rendered(digest, text, png)


def nlp_hooks(services: AppServices) -> tuple[Summariser | None, Masker | None]:
    """The NLP summariser and entity masker when the understanding issue provides them."""
    analyzer = getattr(services, "analyzer", None)
    summarise = getattr(analyzer, "summarize_ticket", None)
    mask: Masker | None = None
    try:
        module = importlib.import_module("nlp.analysis")
        mask = getattr(module, "mask_entities", None)
    except ImportError:
        pass
    return summarise, mask


def digest_config(services: AppServices) -> DigestConfig:
    summarise, mask = nlp_hooks(services)
    settings = services.settings
    return DigestConfig(
        tz=settings.tz,
        hours=services.hours,
        first_response_target_minutes=float(settings.first_response_target_minutes),
        summarise=summarise,
        mask=_safe_mask(mask) if mask is not None else None,
    )


def _safe_mask(mask: Masker) -> Masker:
    def masked(text: str, entities: Sequence[Any] | None) -> str:
        try:
            return mask(text, entities or [])
        except Exception:  # stored entities in an older shape: the regex masking still runs
            log.warning("could not mask a quote with its entities", exc_info=True)
            return text

    return masked


async def build(
    services: AppServices,
    *,
    kind: PeriodKind,
    day: date,
    days: int = 1,
    chart: bool = True,
    outlook: bool = True,
) -> Rendered:
    """A digest's text, chart and need outlook, as the managers get it (and the CLI prints it)."""
    needs_part = await needs_outlook(services) if outlook else None
    async with services.session() as session:
        return await produce(
            session,
            kind=kind,
            day=day,
            config=digest_config(services),
            now=services.now(),
            days=days,
            chart=chart,
            needs=needs_part,
        )


async def needs_outlook(services: AppServices, *, top: int = 5) -> NeedsOutlook | None:
    """At-risk customers and the staffing forecast, when a need model has been trained.

    Scoring every customer is CPU work: it runs in a worker thread (its own loop and connection).
    """
    model = await services.needs_model()
    if model is None:
        return None
    now = services.now()

    async def score(
        session: AsyncSession,
    ) -> tuple[list[needs.AtRisk], needs.StaffingForecast | None]:
        scores = await needs.score(session, model=model, now=now)
        risky = await needs.at_risk(session, model=model, now=now, top=top, scores=scores)
        return risky, await needs.forecast(session, model=model, now=now, scores=scores)

    try:
        risky, forecast = await services.in_worker(score)
    except needs.NeedsError:
        log.warning("need prediction failed; the digest goes without it", exc_info=True)
        return None
    staffing = None
    if forecast is not None:
        staffing = StaffingOutlook(
            customers=forecast.customers,
            level=forecast.level,
            day_expected=forecast.day.expected,
            day_low=forecast.day.low,
            day_high=forecast.day.high,
            week_expected=forecast.week.expected,
            week_low=forecast.week.low,
            week_high=forecast.week.high,
        )
    at_risk = tuple(
        AtRiskCustomer(name=r.name, reason=texts.reasons_plain(r.reasons), score=r.probability)
        for r in risky
    )
    return NeedsOutlook(at_risk=at_risk, staffing=staffing)


def posts(chat_ids: Sequence[int], rendered: Rendered) -> list[Post]:
    """The digest as outbox effects: its text then its chart, for every chat."""
    png = base64.b64encode(rendered.png).decode() if rendered.png else None
    caption = digest_texts.photo_caption(rendered.digest) if rendered.png else None
    return [
        Post(
            chat_id=chat_id,
            html=texts.split_lines(rendered.text),
            photo_png_base64=png,
            photo_caption=caption,
        )
        for chat_id in chat_ids
    ]
