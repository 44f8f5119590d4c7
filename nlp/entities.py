"""Entities in support messages: e-mail addresses, phone numbers, order numbers, money, dates, URLs
and payment card numbers.

Two kinds of rules find them. spaCy token patterns (an ``EntityRuler``, see :func:`ruler_patterns`)
handle what is made of words: "next Monday", "March 3rd", "20 dollars", "明天". Regular expressions
(:class:`EntityRules`) handle what spaCy's tokens cannot express: card numbers (with a Luhn check),
phone numbers split over several tokens, order numbers (the pattern is configurable), and anything
glued to Chinese characters, which Chinese text does without spaces. :func:`merge_entities` resolves
overlaps, and :func:`mask_entities` hides card numbers, e-mail addresses and phone numbers before a
message is quoted to staff.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

EMAIL = "EMAIL"
PHONE = "PHONE"
ORDER = "ORDER"
MONEY = "MONEY"
DATE = "DATE"
URL = "URL"
CARD = "CARD"
KEFU_LABELS: tuple[str, ...] = (URL, EMAIL, CARD, ORDER, PHONE, MONEY, DATE)
# Lower rank wins an overlap; labels from other pipelines (PERSON, ORG, ...) come after ours.
_RANK = {label: i for i, label in enumerate(KEFU_LABELS)}


@dataclass(frozen=True)
class Entity:
    """An entity found in a text; ``start``/``end`` are character offsets (``text[start:end]``)."""

    label: str
    text: str
    start: int
    end: int


# Kefu's default order-number pattern: 2-4 capital letters, an optional dash and 5-12 digits
# ("AB-123456", "ORD20240001"), or "#" and 5-12 digits. Letters or digits may not touch it, but
# Chinese characters may ("订单AB123456").
DEFAULT_ORDER_PATTERN = r"(?<![A-Za-z0-9])(?:[A-Z]{2,4}-?\d{5,12}|#\d{5,12})(?![A-Za-z0-9])"

_NOT_ALNUM_BEFORE = r"(?<![A-Za-z0-9])"
_NOT_ALNUM_AFTER = r"(?![A-Za-z0-9])"
_NOT_DIGIT_BEFORE = r"(?<![\d.,])"
_NOT_DIGIT_AFTER = r"(?!\d|[.,]\d)"

_URL_RE = re.compile(
    r"(?:\b(?:https?|ftp)://|\bwww\.)[^\s<>\"'，。！？、；：（）【】《》“”‘’]+", re.IGNORECASE
)
_EMAIL_RE = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,24}" + _NOT_ALNUM_AFTER
)
# 13-19 digits, optionally in groups separated by single spaces or dashes.
_CARD_RE = re.compile(_NOT_DIGIT_BEFORE + r"\d(?:[ -]?\d){12,18}" + _NOT_DIGIT_AFTER)
_CARD_GROUPED_RE = re.compile(r"^\d{4}([ -])\d{4}\1\d{4}\1\d{1,7}$")
_PHONE_RES = (
    # International: +country code, then groups of digits (optionally in brackets).
    re.compile(r"(?<![\w+])\+\d{1,3}(?:[ .-]?\(?\d{1,5}\)?){1,5}[ .-]?\d{2,5}" + _NOT_DIGIT_AFTER),
    # North American style: (555) 123-4567, 555-123-4567, 555.123.4567.
    re.compile(
        _NOT_DIGIT_BEFORE + r"(?:\(\d{3}\)\s?|\d{3}[ .-])\d{3}[ .-]\d{4}" + _NOT_DIGIT_AFTER
    ),
    # Chinese mobile numbers: 13812345678, 138-1234-5678, 138 1234 5678.
    re.compile(_NOT_DIGIT_BEFORE + r"1[3-9]\d(?:[ -]?\d{4}){2}" + _NOT_DIGIT_AFTER),
    # Landlines with a trunk prefix: 010-12345678, 0755 1234 5678, 020 7946 0958.
    re.compile(_NOT_DIGIT_BEFORE + r"0\d{2,3}[ -]\d{3,4}[ -]?\d{4}" + _NOT_DIGIT_AFTER),
)
# "order number 123456", "order #A1234567", "订单号：2024050112345": a number right after the word.
_ORDER_CONTEXT_RE = re.compile(
    r"(?:\border(?:\s+(?:number|no\.?|num|id|ref(?:erence)?))?|订单(?:号|编号)?|单号)"
    r"\s*(?:is|:|：|是|为)?\s*(#?[A-Za-z0-9][A-Za-z0-9-]{3,24}[0-9][A-Za-z0-9]*)"
    + _NOT_ALNUM_AFTER,
    re.IGNORECASE,
)
_CURRENCY_WORDS = (
    r"dollars?|bucks|usd|euros?|eur|pounds?|gbp|quid|yuan|rmb|cny|yen|jpy|rupees?|inr|"
    r"元|块钱|块|美元|欧元|英镑|日元|人民币"
)
_AMOUNT = r"\d{1,3}(?:,\d{3})+(?:\.\d{1,2})?|\d+(?:\.\d{1,2})?"
_CN_NUMBER = r"[零一二两三四五六七八九十百千万]+"
_MONEY_RES = (
    re.compile(
        r"(?:(?<![A-Za-z])(?:US|HK|A|C|NZ|S)?\$|[€£¥￥₹]|\b(?:USD|EUR|GBP|RMB|CNY|JPY)\s?)"
        r"\s?(?:" + _AMOUNT + r")" + _NOT_DIGIT_AFTER,
        re.IGNORECASE,
    ),
    re.compile(
        _NOT_DIGIT_BEFORE
        + r"(?:"
        + _AMOUNT
        + r")\s?(?:k\s?)?(?:"
        + _CURRENCY_WORDS
        + r")(?![A-Za-z])",
        re.IGNORECASE,
    ),
    re.compile(_CN_NUMBER + r"(?:块钱|块|元|美元|欧元)"),
)
_MONTHS = (
    r"jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
    r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?"
)
_DATE_RES = (
    re.compile(_NOT_DIGIT_BEFORE + r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}" + _NOT_DIGIT_AFTER),
    re.compile(_NOT_DIGIT_BEFORE + r"\d{1,2}[-/.]\d{1,2}[-/.](?:\d{4}|\d{2})" + _NOT_DIGIT_AFTER),
    re.compile(
        r"\b(?:" + _MONTHS + r")\.?\s+\d{1,2}(?:st|nd|rd|th)?(?:,?\s+\d{4})?\b", re.IGNORECASE
    ),
    re.compile(
        r"\b\d{1,2}(?:st|nd|rd|th)?\s+(?:of\s+)?(?:" + _MONTHS + r")\b\.?(?:,?\s+\d{4})?",
        re.IGNORECASE,
    ),
    re.compile(
        r"(?:\d{4}\s?年\s?)?\d{1,2}\s?月\s?\d{1,2}\s?[日号]|\d{4}\s?年\s?\d{1,2}\s?月"
        r"|(?:上|下|这|本)?(?:个)?(?:周|星期|礼拜)[一二三四五六日天]"
        r"|(?:大前天|前天|昨天|今天|明天|后天|大后天|今晚|明早|昨晚)"
        r"|(?:上|下|这)(?:个)?(?:星期|周|月)"
    ),
)


# Characters without which the Chinese money and date expressions cannot occur.
_CJK_HINT = re.compile(r"[元块年月日号周星期拜天晚早]")


def luhn_valid(digits: str) -> bool:
    """True when the digit string passes the Luhn check used by payment card numbers."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


@dataclass(frozen=True)
class EntityRules:
    """The regular-expression rules, with a configurable order-number pattern."""

    order_re: re.Pattern[str]

    @classmethod
    def create(cls, order_pattern: str | None = None) -> EntityRules:
        """Compile the rules; a bad ``order_pattern`` raises ``ValueError`` naming it."""
        pattern = order_pattern or DEFAULT_ORDER_PATTERN
        try:
            compiled = re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"the order number pattern {pattern!r} is not valid: {exc}") from exc
        return cls(order_re=compiled)

    def find(self, text: str) -> list[tuple[str, int, int]]:
        """All candidate ``(label, start, end)`` matches, overlapping ones included."""
        found: list[tuple[str, int, int]] = []
        has_digit = any(ch.isdigit() for ch in text)
        if "://" in text or "www." in text.lower():
            found += [
                (URL, *_strip_trailing(text, m.start(), m.end())) for m in _URL_RE.finditer(text)
            ]
        if "@" in text:
            found += [(EMAIL, m.start(), m.end()) for m in _EMAIL_RE.finditer(text)]
        if has_digit:
            for m in _CARD_RE.finditer(text):
                raw = m.group()
                digits = raw.replace(" ", "").replace("-", "")
                if luhn_valid(digits) or _CARD_GROUPED_RE.match(raw):
                    found.append((CARD, m.start(), m.end()))
            found += [(ORDER, m.start(), m.end()) for m in self.order_re.finditer(text)]
            found += [(ORDER, m.start(1), m.end(1)) for m in _ORDER_CONTEXT_RE.finditer(text)]
            for rx in _PHONE_RES:
                for m in rx.finditer(text):
                    if 7 <= sum(ch.isdigit() for ch in m.group()) <= 15:
                        found.append((PHONE, m.start(), m.end()))
            for rx in _MONEY_RES[:2]:
                found += [(MONEY, m.start(), m.end()) for m in rx.finditer(text)]
            for rx in _DATE_RES[:4]:
                found += [(DATE, m.start(), m.end()) for m in rx.finditer(text)]
        if _CJK_HINT.search(text):
            found += [(MONEY, m.start(), m.end()) for m in _MONEY_RES[2].finditer(text)]
            found += [(DATE, m.start(), m.end()) for m in _DATE_RES[4].finditer(text)]
        return found


def _strip_trailing(text: str, start: int, end: int) -> tuple[int, int]:
    while end > start and text[end - 1] in ".,;:!?)]}'\"":
        end -= 1
    return start, end


def merge_entities(candidates: Iterable[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    """Resolve overlaps: Kefu's labels by rank (URL, EMAIL, CARD, ORDER, PHONE, MONEY, DATE), then
    longer before shorter; the survivors in text order."""
    ranked = sorted(
        {c for c in candidates if c[2] > c[1]},
        key=lambda c: (_RANK.get(c[0], len(_RANK)), -(c[2] - c[1]), c[1]),
    )
    taken: list[tuple[str, int, int]] = []
    used = bytearray(max((c[2] for c in ranked), default=0))
    for label, start, end in ranked:
        if not any(used[start:end]):
            taken.append((label, start, end))
            used[start:end] = b"\x01" * (end - start)
    taken.sort(key=lambda c: c[1])
    return taken


def ruler_patterns(language: str) -> list[dict[str, Any]]:
    """Token patterns for spaCy's ``EntityRuler`` (add them after ``nlp.initialize()``)."""
    if language == "zh":
        words = [
            "今天",
            "明天",
            "昨天",
            "前天",
            "后天",
            "今晚",
            "昨晚",
            "月底",
            "月初",
            "下周",
            "上周",
            "本周",
            "周末",
            "下个月",
            "上个月",
        ]
        patterns: list[dict[str, Any]] = [{"label": DATE, "pattern": w} for w in words]
        patterns.append({"label": URL, "pattern": [{"LIKE_URL": True}]})
        patterns.append({"label": EMAIL, "pattern": [{"LIKE_EMAIL": True}]})
        return patterns
    weekdays = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
    months = [
        "january",
        "february",
        "march",
        "april",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
        "jan",
        "feb",
        "mar",
        "apr",
        "jun",
        "jul",
        "aug",
        "sep",
        "sept",
        "oct",
        "nov",
        "dec",
    ]
    currency = ["dollar", "dollars", "usd", "euro", "euros", "eur", "pound", "pounds", "gbp"]
    currency += ["yuan", "rmb", "cny", "bucks", "quid", "yen"]
    return [
        {"label": EMAIL, "pattern": [{"LIKE_EMAIL": True}]},
        {"label": URL, "pattern": [{"LIKE_URL": True}]},
        {
            "label": DATE,
            "pattern": [{"LOWER": {"IN": ["today", "tomorrow", "yesterday", "tonight"]}}],
        },
        {
            "label": DATE,
            "pattern": [
                {"LOWER": {"IN": ["last", "next", "this"]}},
                {"LOWER": {"IN": [*weekdays, "week", "month", "year", "weekend"]}},
            ],
        },
        {
            "label": DATE,
            "pattern": [
                {"LOWER": {"IN": ["on", "since", "until", "by"]}, "OP": "?"},
                {"LOWER": {"IN": weekdays}},
            ],
        },
        {"label": DATE, "pattern": [{"LOWER": {"IN": months}}, {"LIKE_NUM": True}]},
        {
            "label": DATE,
            "pattern": [
                {"LIKE_NUM": True},
                {"LOWER": {"IN": ["days", "weeks", "months"]}},
                {"LOWER": "ago"},
            ],
        },
        {"label": MONEY, "pattern": [{"IS_CURRENCY": True}, {"LIKE_NUM": True}]},
        {"label": MONEY, "pattern": [{"LIKE_NUM": True}, {"LOWER": {"IN": currency}}]},
    ]


def to_entities(text: str, spans: Sequence[tuple[str, int, int]]) -> tuple[Entity, ...]:
    """Entities from ``(label, start, end)`` character spans of ``text``."""
    return tuple(Entity(label, text[s:e], s, e) for label, s, e in spans)


def mask_value(label: str, value: str) -> str:
    """The masked form of one entity's text (unchanged for labels that are not sensitive)."""
    if label == CARD:
        digits = [ch for ch in value if ch.isdigit()]
        return "•••• " + "".join(digits[-4:])
    if label == EMAIL:
        local, _, domain = value.partition("@")
        keep = 1 if len(local) <= 3 else 2
        return local[:keep] + "•" * max(1, len(local) - keep) + "@" + domain
    if label == PHONE:
        digit_positions = [i for i, ch in enumerate(value) if ch.isdigit()]
        hide = set(digit_positions[2:-2]) if len(digit_positions) > 6 else set(digit_positions[:-2])
        # Keep a leading "+" country code visible when there is one.
        if value.startswith("+"):
            prefix = re.match(r"\+\d{1,3}", value)
            if prefix:
                hide -= set(range(prefix.end()))
        return "".join("•" if i in hide else ch for i, ch in enumerate(value))
    return value


def _field(entity: Any, name: str) -> Any:
    if isinstance(entity, Mapping):
        return entity.get(name)
    return getattr(entity, name, None)


def mask_entities(text: str, entities: Iterable[Entity | Mapping[str, Any] | Any] | None) -> str:
    """``text`` with card numbers masked (``•••• 1234``) and e-mail addresses and phone numbers
    partly masked (``jo••••••@example.com``, ``+44 •• •••• ••58``); other entities are left alone.

    ``entities`` are :class:`Entity` objects, or mappings / objects with ``label``, ``start``,
    ``end`` and ``text`` (as stored in a database). When an entity's offsets no longer point at its
    text (the quote was trimmed), its text is masked wherever it occurs. The regular-expression
    rules then run over the result too, so a card number, e-mail address or phone number is masked
    even when ``entities`` is empty or stale.
    """
    if not text:
        return text
    spans: list[tuple[str, int, int]] = []
    for e in entities or ():
        label = _field(e, "label")
        if label not in (CARD, EMAIL, PHONE):
            continue
        start, end, value = _field(e, "start"), _field(e, "end"), _field(e, "text")
        if (
            isinstance(start, int)
            and isinstance(end, int)
            and 0 <= start < end <= len(text)
            and (value is None or text[start:end] == value)
        ):
            spans.append((str(label), start, end))
        elif isinstance(value, str) and value:
            pos = text.find(value)
            while pos >= 0:
                spans.append((str(label), pos, pos + len(value)))
                pos = text.find(value, pos + len(value))
    spans += [c for c in _default_rules().find(text) if c[0] in (CARD, EMAIL, PHONE)]
    out = text
    for label, start, end in sorted(merge_entities(spans), key=lambda c: c[1], reverse=True):
        out = out[:start] + mask_value(label, text[start:end]) + out[end:]
    return out


_DEFAULT_RULES: list[EntityRules] = []


def _default_rules() -> EntityRules:
    """The rules with the default order pattern, compiled on first use."""
    if not _DEFAULT_RULES:
        _DEFAULT_RULES.append(EntityRules.create())
    return _DEFAULT_RULES[0]


def mask_text(text: str, rules: EntityRules | None = None) -> str:
    """Find and mask sensitive entities in ``text`` with the regular-expression rules alone."""
    rules = rules or _default_rules()
    found = [c for c in rules.find(text) if c[0] in (CARD, EMAIL, PHONE)]
    return mask_entities(text, to_entities(text, merge_entities(found)))
