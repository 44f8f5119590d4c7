"""What customers wrote about: key phrases and masked quotes per category."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from quality.fetch import CustomerText


class TicketSummaryLike(Protocol):
    @property
    def summary(self) -> str: ...

    @property
    def key_phrases(self) -> Sequence[str]: ...


Summariser = Callable[[Sequence[str]], TicketSummaryLike]

Masker = Callable[[str, Sequence[Any] | None], str]

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")

_CARD = re.compile(r"\b(?:\d[ -]?){12,18}\d\b")

_PHONE = re.compile(r"(?<![\w])\+?\d[\d ()./-]{6,}\d(?![\w])")

_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){3,7}(?: ?[A-Z0-9]{1,3})?\b")


def mask_personal_data(text: str, entities: Sequence[Any] | None = None) -> str:
    """Replace e-mail addresses, card and account numbers and phone numbers with placeholders."""
    text = _EMAIL.sub("[email]", text)
    text = _IBAN.sub("[account]", text)
    text = _CARD.sub("[card]", text)
    return _PHONE.sub("[phone]", text)


@dataclass(frozen=True, slots=True)
class Theme:
    """What customers wrote about in one category."""

    category: str
    messages: int
    key_phrases: tuple[str, ...]
    quotes: tuple[str, ...]


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0]
    return (cut or text[: limit - 1]) + "…"


def themes(
    texts: Sequence[CustomerText],
    *,
    summarise: Summariser | None = None,
    mask: Masker | None = None,
    max_categories: int = 3,
    max_phrases: int = 5,
    max_quotes: int = 3,
    quote_length: int = 140,
) -> list[Theme]:
    """Per category (most messages first): key phrases and two or three representative quotes.

    ``summarise`` (e.g. ``nlp.analysis.Analyzer.summarize_ticket``) gives the key phrases of a
    category's texts; a quote is a customer text that contains the most key phrases (one per
    ticket, of readable length). Without a summariser the quotes are the readable texts of
    distinct tickets, latest first. Every quote is masked by ``mask`` (given the message's
    entities) and then by :func:`mask_personal_data`.
    """
    by_category: dict[str, list[CustomerText]] = {}
    for item in texts:
        if item.text.strip():
            by_category.setdefault(item.category, []).append(item)
    ordered = sorted(by_category.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    result: list[Theme] = []
    for category, items in ordered[:max_categories]:
        phrases: tuple[str, ...] = ()
        if summarise is not None:
            summary = summarise([i.text for i in items])
            phrases = tuple(p for p in summary.key_phrases if p.strip())[:max_phrases]
        lowered = [p.lower() for p in phrases]

        def score(item: CustomerText, lowered: list[str] = lowered) -> tuple[int, int]:
            text = item.text.lower()
            hits = sum(1 for p in lowered if p in text)
            readable = 1 if 20 <= len(item.text) <= 300 else 0
            return hits, readable

        ranked = sorted(enumerate(items), key=lambda iv: (*(-s for s in score(iv[1])), iv[0]))
        quotes: list[str] = []
        seen_tickets: set[int | None] = set()
        for _, item in ranked:
            if len(quotes) >= max_quotes:
                break
            if item.ticket_id is not None and item.ticket_id in seen_tickets:
                continue
            # Full placeholders first (a digest needs no part of an address or number), then the
            # entity masking of nlp/ for what the patterns do not know.
            masked = mask_personal_data(item.text)
            masked = mask(masked, item.entities) if mask is not None else masked
            quote = _shorten(masked, quote_length)
            if len(quote) < 3 or quote in quotes:
                continue
            seen_tickets.add(item.ticket_id)
            quotes.append(quote)
        result.append(Theme(category, len(items), phrases, tuple(quotes)))
    return result
