"""Understanding a customer message before its flow runs: analysis and the ticket's summary.

CPU work (spaCy, the classifiers, the summary) runs in a worker thread *before* the flow's
transaction opens, so no database connection waits on it; the flow then stores the result.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

from crm import conversation, customers, tickets
from crm.db import SessionFactory, session_scope
from crm.schemas import MessageAnalysis
from nlp.analysis import Analysis, Analyzer
from nlp.entities import Entity
from nlp.knowledge import KnowledgeBase

SUPPORTED_REPLY_LANGUAGES = ("en", "zh")


@dataclass(frozen=True, slots=True)
class Understanding:
    analysis: Analysis
    ticket_summary: str | None  # masked summary of the ticket with this message, if any


def stored_entity(entity: Entity) -> dict[str, object]:
    """An entity as stored with the message; card numbers keep only their last four digits."""
    text = entity.text
    if entity.label == "CARD":
        digits = "".join(ch for ch in text if ch.isdigit())
        text = f"•••• {digits[-4:]}"
    return {"label": entity.label, "text": text, "start": entity.start, "end": entity.end}


def message_analysis(analysis: Analysis) -> MessageAnalysis:
    return MessageAnalysis(
        language=analysis.language,
        category=analysis.category,
        category_confidence=analysis.category_confidence,
        sentiment=str(analysis.sentiment),
        sentiment_confidence=analysis.sentiment_confidence,
        urgency=str(analysis.urgency),
        entities=[stored_entity(e) for e in analysis.entities],
        summary=analysis.summary,
    )


async def prepare(
    factory: SessionFactory,
    analyzer: Analyzer | None,
    *,
    telegram_user_id: int,
    text: str,
    now: datetime,
) -> Understanding | None:
    """Analyse ``text`` in the light of the customer's current ticket (read, not locked)."""
    if analyzer is None or not text.strip():
        return None
    texts: list[str] = []
    repeated = 0
    async with session_scope(factory) as session:
        customer = await customers.get_by_telegram_id(session, telegram_user_id=telegram_user_id)
        if customer is not None:
            current = await tickets.get_current_for_customer(session, customer_id=customer.id)
            if current is not None:
                context = await conversation.ticket_context(session, ticket_id=current.id, now=now)
                texts, repeated = context.texts, context.repeated_contact
            else:
                repeated = await tickets.count_unresolved_recent(
                    session,
                    customer_id=customer.id,
                    since=now - conversation.REPEATED_CONTACT_WINDOW,
                    excluding=-1,
                )
    return await asyncio.to_thread(_understand, analyzer, text, texts, repeated)


def _understand(analyzer: Analyzer, text: str, earlier: list[str], repeated: int) -> Understanding:
    analysis = analyzer.analyze(text, repeated_contact=repeated)
    summary = analyzer.summarize_ticket([*earlier, text])
    return Understanding(analysis, summary.masked_summary or None)


def reply_language(customer_language: str, understood: Understanding | None) -> str:
    """Answer in the language the customer wrote in when we speak it, else their chosen one."""
    if understood is not None and understood.analysis.language in SUPPORTED_REPLY_LANGUAGES:
        return understood.analysis.language
    return customer_language


def automatic_answer(
    knowledge: KnowledgeBase | None,
    understood: Understanding | None,
    language: str,
    *,
    enabled: bool,
    min_confidence: float,
) -> str | None:
    """The knowledge base's answer when the category is confident enough and has one."""
    if understood is None or knowledge is None or not enabled:
        return None
    analysis = understood.analysis
    if analysis.category == "other" or analysis.urgency == "high":
        return None  # out of scope, or urgent (legal threats, anger): a person answers
    if analysis.category_confidence < min_confidence:
        return None
    return knowledge.answer(analysis.category, language)
