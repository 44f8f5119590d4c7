"""Understanding customer messages inside the conversation: analysis, summaries, automatic answers.

Wiring between the Telegram handlers and ``nlp`` / ``crm``: CPU work runs in worker threads, each
database step in its own short session.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from bot.services import AppServices
from crm import conversation, tickets
from crm.conversation import Routed
from crm.schemas import MessageAnalysis, TicketCard, TicketInfo
from nlp.analysis import Analysis
from nlp.entities import Entity

SUPPORTED_REPLY_LANGUAGES = ("en", "zh")


@dataclass(frozen=True, slots=True)
class Understood:
    analysis: Analysis
    ticket: TicketInfo
    changed: bool  # category or priority changed: the staff card should be refreshed


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


async def understand(services: AppServices, routed: Routed) -> Understood | None:
    """Analyse the routed customer message and fold the result into its ticket."""
    analyzer = services.analyzer
    text = routed.message.text
    if analyzer is None or not text.strip():
        return None
    now = services.now()
    async with services.session() as session:
        context = await conversation.ticket_context(session, ticket_id=routed.ticket.id, now=now)
    analysis = await asyncio.to_thread(
        analyzer.analyze, text, repeated_contact=context.repeated_contact
    )
    summary = await asyncio.to_thread(analyzer.summarize_ticket, context.texts)
    async with services.session() as session:
        ticket = await conversation.apply_analysis(
            session,
            message_id=routed.message.id,
            analysis=message_analysis(analysis),
            ticket_summary=summary.masked_summary or None,
            now=now,
        )
    changed = (
        (ticket.category, ticket.priority) != (routed.ticket.category, routed.ticket.priority)
        or bool(analysis.entities)  # a new order number, e-mail...: agents should see it
    )
    return Understood(analysis, ticket, changed)


def reply_language(customer_language: str, understood: Understood | None) -> str:
    """Answer in the language the customer wrote in when we speak it, else their chosen one."""
    if understood is not None and understood.analysis.language in SUPPORTED_REPLY_LANGUAGES:
        return understood.analysis.language
    return customer_language


def automatic_answer(
    services: AppServices, understood: Understood | None, language: str
) -> str | None:
    """The knowledge base's answer when the category is confident enough and has one."""
    if understood is None or services.knowledge is None or not services.settings.auto_answer:
        return None
    analysis = understood.analysis
    if analysis.category == "other" or analysis.urgency == "high":
        return None  # out of scope, or urgent (legal threats, anger): a person answers
    if analysis.category_confidence < services.settings.auto_answer_min_confidence:
        return None
    return services.knowledge.answer(analysis.category, language)


async def fresh_card(services: AppServices, ticket_id: int) -> TicketCard:
    async with services.session() as session:
        return await tickets.card(session, ticket_id=ticket_id)
