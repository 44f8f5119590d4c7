"""``Analyzer.analyze(text) -> Analysis``: language, category, sentiment, urgency, entities, a short
summary and key phrases for one customer message.

The analyzer builds the spaCy pipelines and loads the two models (category and sentiment) once; when
a model is missing (first start) it trains the default one from ``nlp/data`` (a few seconds). Each
message is tokenised once and the tokens serve the classifiers, the entity rules and the summary.
``analyze`` is synchronous CPU work (about a millisecond); from async code call ``aanalyze`` (or
``asyncio.to_thread``). It never raises: a failure is logged and a neutral analysis returned.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from nlp.classify import OTHER, ModelFormatError, ModelStore, TextClassifier
from nlp.entities import Entity, EntityRules, mask_entities, mask_text, to_entities
from nlp.language import UNDETERMINED, detect_language
from nlp.pipeline import Pipelines, Prepared, clean_text, doc_entity_spans
from nlp.summarize import TicketSummary, key_phrases, shorten, summarize_docs, tidy
from nlp.training import (
    DEFAULT_DATA,
    MAX_TEXT_CHARS,
    SENTIMENT_LABELS,
    default_examples,
    examples_sha256,
    fit,
    train_default,
)

__all__ = [
    "Analysis",
    "Analyzer",
    "Entity",
    "Sentiment",
    "TicketSummary",
    "Urgency",
    "assess_urgency",
    "mask_entities",
]

logger = logging.getLogger(__name__)

MAX_ANALYZE_CHARS = 20_000  # longer messages are analysed on their first 20,000 characters
MAX_TOKENS = 2_000  # the classifiers read at most this many tokens (and MAX_TEXT_CHARS characters)


class Sentiment(StrEnum):
    NEGATIVE = "negative"
    NEUTRAL = "neutral"
    POSITIVE = "positive"


class Urgency(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"


@dataclass(frozen=True)
class Analysis:
    """What Kefu understood of one message.

    ``language`` is an ISO 639-1 code (``"en"``, ``"zh"``, ...) or ``"und"`` when the message has no
    letters. ``category`` is one of ``Analyzer.categories``; ``"other"`` means out of scope (also
    when the model's confidence is below its tuned threshold). ``urgency_reasons`` are codes:
    ``legal``, ``threat_to_leave``, ``urgent_words``, ``all_caps``, ``repeated_contact``,
    ``negative_sentiment``. Entity offsets refer to the analysed text.
    """

    language: str
    category: str
    category_confidence: float
    sentiment: Sentiment
    sentiment_confidence: float
    urgency: Urgency
    urgency_reasons: tuple[str, ...]
    entities: tuple[Entity, ...]
    summary: str
    key_phrases: tuple[str, ...]


# --- urgency ----------------------------------------------------------------------------------

_LEGAL = re.compile(
    r"\b(?:lawyers?|attorneys?|solicitors?|sue|suing|lawsuit|legal action|take (?:you|this|it) to "
    r"court|see you in court|small claims|ombudsman|consumer protection|trading standards|"
    r"regulator|chargeback|bbb|better business bureau|fraud|scam)\b"
    r"|律师|起诉|法院|诉讼|消协|消费者协会|12315|工商局|市场监管|报警|维权|媒体曝光|骗子|诈骗",
    re.IGNORECASE,
)
_LEAVE = re.compile(
    r"\b(?:switch(?:ing)? to (?:a |another |your )?competitors?|"
    r"switch(?:ing)? to (?:another|a different) (?:company|provider|bank|shop|store|airline)|"
    r"go(?:ing)? (?:to )?(?:a )?(?:competitor|elsewhere)|take my business elsewhere|"
    r"(?:never|not) (?:going to )?(?:buy|order|shop|fly|use you)\w* (?:\w+ )?(?:again|anymore)|"
    r"never again|last time i (?:buy|order|use|shop)|close my account|leaving you|"
    r"i(?:'m| am) done with (?:you|this)|find another (?:company|provider|shop|store))\b"
    r"|换一家|换别家|去别家|再也不(?:买|来|用|会)|不再(?:购买|使用|光顾)|销户|注销账[号户]|"
    r"最后一次(?:买|用|来)",
    re.IGNORECASE,
)
_URGENT = re.compile(
    r"\b(?:urgent(?:ly)?|asap|emergency|immediately|right now|right away|"
    r"as soon as possible|critical|time[- ]sensitive)\b"
    r"|紧急|加急|急用|着急|十万火急|马上|立刻|立即|尽快|赶紧|急！|急急",
    re.IGNORECASE,
)
_REPEAT = re.compile(
    r"\b(?:(?:second|third|fourth|fifth|2nd|3rd|4th|5th|\d+th) time|again and again|"
    r"(?:already|have) (?:contacted|called|emailed|written|wrote|asked|messaged)|"
    r"how many times|keep (?:asking|calling|writing|chasing)|still (?:no|not|waiting|haven't|"
    r"hasn't)|no one (?:has )?(?:replied|answered|responded))\b"
    r"|第[二三四五六七八九十\d]+次|多次|好几次|又一次|一直没|还是没|再次联系|催了",
    re.IGNORECASE,
)
_LOW_CATEGORIES = frozenset({"praise", OTHER, "product"})


def _all_caps(text: str) -> bool:
    letters = [c for c in text if c.isascii() and c.isalpha()]
    if len(letters) < 12:
        return False
    upper = sum(1 for c in letters if c.isupper())
    words = [w for w in re.findall(r"[A-Za-z]{2,}", text) if w.isupper()]
    return upper / len(letters) >= 0.7 and len(words) >= 3


def assess_urgency(
    text: str,
    *,
    sentiment: Sentiment,
    sentiment_confidence: float,
    category: str,
    repeated_contact: int = 0,
) -> tuple[Urgency, tuple[str, ...]]:
    """Urgency from rules and sentiment.

    Points: legal words 2, a threat to leave 2, "urgent" words 1, all capitals 1, repeated contact 1
    (2 from the third contact on; ``repeated_contact`` counts earlier contacts about the same issue,
    and phrases such as "third time" count too), negative sentiment (confidence >= 0.6) 1.
    Two points or more is HIGH. No point at all is LOW for praise, product questions, out-of-scope
    messages and positive messages; everything else is NORMAL.
    """
    reasons: list[str] = []
    points = 0
    sample = text[:5000]
    if _LEGAL.search(sample):
        reasons.append("legal")
        points += 2
    if _LEAVE.search(sample):
        reasons.append("threat_to_leave")
        points += 2
    if _URGENT.search(sample):
        reasons.append("urgent_words")
        points += 1
    if _all_caps(sample):
        reasons.append("all_caps")
        points += 1
    if repeated_contact >= 1 or _REPEAT.search(sample):
        reasons.append("repeated_contact")
        points += 2 if repeated_contact >= 2 else 1
    if sentiment is Sentiment.NEGATIVE and sentiment_confidence >= 0.6:
        reasons.append("negative_sentiment")
        points += 1
    if points >= 2:
        return Urgency.HIGH, tuple(reasons)
    if points == 0 and (sentiment is Sentiment.POSITIVE or category in _LOW_CATEGORIES):
        return Urgency.LOW, ()
    return Urgency.NORMAL, tuple(reasons)


# --- the analyzer -----------------------------------------------------------------------------


class Analyzer:
    """Loads the pipelines and models once; analyses messages and tickets."""

    def __init__(
        self,
        *,
        models_dir: Path,
        pipeline_name: str | None = None,
        order_pattern: str | None = None,
    ) -> None:
        self.models_dir = Path(models_dir)
        self._rules = EntityRules.create(order_pattern)
        self._pipelines = Pipelines(pipeline_name=pipeline_name, order_pattern=order_pattern)
        self._store = ModelStore(self.models_dir)
        self._reload_lock = threading.Lock()
        self._category, self._category_meta = self._ensure_model("category")
        self._sentiment, self._sentiment_meta = self._ensure_model("sentiment")
        self._stamps = {task: self._store.stamp(task) for task in ("category", "sentiment")}

    # --- models ---------------------------------------------------------------------------
    @property
    def categories(self) -> tuple[str, ...]:
        """The category labels of the current model (``"other"`` included)."""
        return self._category.labels

    @property
    def pipelines(self) -> Pipelines:
        return self._pipelines

    def model_info(self) -> dict[str, dict[str, Any]]:
        """Version, source, creation date and validation scores of the current models."""
        out: dict[str, dict[str, Any]] = {}
        for task, meta in (("category", self._category_meta), ("sentiment", self._sentiment_meta)):
            metrics = meta.get("metrics") or {}
            out[task] = {
                "version": meta.get("version"),
                "source": meta.get("source"),
                "created": meta.get("created"),
                "labels": meta.get("labels"),
                "accuracy": metrics.get("accuracy"),
                "macro_f1": metrics.get("macro_f1"),
            }
        return out

    def _ensure_model(self, task: str) -> tuple[TextClassifier, dict[str, Any]]:
        """The current model, or a freshly trained default one when there is none (or it cannot be
        read, or it is the default model trained from older shipped data)."""
        if self._store.current_version(task) is not None:
            try:
                clf, meta = self._store.load(task)
            except ModelFormatError as exc:
                logger.warning("retraining the default %s model: %s", task, exc)
            else:
                if meta.get("source") != "default" or meta.get("data_sha256") == examples_sha256(
                    default_examples(task)
                ):
                    return clf, meta
                logger.info("the shipped %s data changed; retraining the default model", task)
        logger.info("training the default %s model from %s", task, DEFAULT_DATA[task].name)
        try:
            train_default(task, models_dir=self.models_dir, pipelines=self._pipelines)
            return self._store.load(task)
        except OSError as exc:
            logger.warning(
                "cannot save models in %s (%s); keeping it in memory", self.models_dir, exc
            )
            result, _, _ = fit(default_examples(task), task=task, pipelines=self._pipelines)
            return result.classifier, {"source": "default", "version": None}

    def reload_if_changed(self) -> bool:
        """Load models that were made current since the last check (a ``stat`` per task when
        nothing changed). True when a model was replaced."""
        changed = False
        with self._reload_lock:
            for task in ("category", "sentiment"):
                stamp = self._store.stamp(task)
                if stamp == self._stamps.get(task):
                    continue
                self._stamps[task] = stamp
                if stamp is None:
                    continue
                try:
                    clf, meta = self._store.load(task)
                except ModelFormatError as exc:
                    logger.warning("keeping the current %s model: %s", task, exc)
                    continue
                if task == "category":
                    self._category, self._category_meta = clf, meta
                else:
                    self._sentiment, self._sentiment_meta = clf, meta
                logger.info("loaded %s model %s", task, meta.get("version"))
                changed = True
        return changed

    # --- analysis -------------------------------------------------------------------------
    def analyze(self, text: str, *, repeated_contact: int = 0) -> Analysis:
        """Analyse one message. Never raises."""
        try:
            return self._analyze(text, repeated_contact)
        except Exception:
            logger.exception("analysis failed; returning a neutral analysis")
            return self._fallback(text)

    async def aanalyze(self, text: str, *, repeated_contact: int = 0) -> Analysis:
        """:meth:`analyze` in a worker thread, for async code."""
        return await asyncio.to_thread(self.analyze, text, repeated_contact=repeated_contact)

    def analyze_many(self, texts: Sequence[str]) -> list[Analysis]:
        """Analyse many messages (faster per message than :meth:`analyze` one by one)."""
        try:
            return self._analyze_many(texts)
        except Exception:
            logger.exception("batch analysis failed; analysing one by one")
            return [self.analyze(t) for t in texts]

    def mask(self, text: str) -> str:
        """``text`` with card numbers, e-mail addresses and phone numbers masked."""
        try:
            return mask_text(clean_text(text), self._rules)
        except Exception:
            logger.exception("masking failed; hiding every digit")
            return re.sub(r"\d", "•", text)

    def _analyze(self, text: str, repeated_contact: int) -> Analysis:
        work = clean_text(text if isinstance(text, str) else str(text))[:MAX_ANALYZE_CHARS]
        language = detect_language(work)
        doc = self._pipelines.doc(work, language)
        return self._finish(work, language, doc, repeated_contact, None, None)

    def _analyze_many(self, texts: Sequence[str]) -> list[Analysis]:
        work = [clean_text(t if isinstance(t, str) else str(t))[:MAX_ANALYZE_CHARS] for t in texts]
        languages = [detect_language(t) for t in work]
        docs = self._pipelines.docs(work, languages)
        category, sentiment = self._category, self._sentiment
        prepared = [self._prepared(d) for d in docs]
        if not prepared:
            return []
        cat_proba = category.proba(prepared)
        sent_proba = sentiment.proba(prepared)
        return [
            self._finish(t, lang, d, 0, (category, cat_proba[i]), (sentiment, sent_proba[i]))
            for i, (t, lang, d) in enumerate(zip(work, languages, docs, strict=True))
        ]

    def _prepared(self, doc: Any) -> Prepared:
        prepared = self._pipelines.prepare_doc(doc)
        if len(prepared.text) > MAX_TEXT_CHARS:
            prepared = Prepared(prepared.tokens[:MAX_TOKENS], prepared.text[:MAX_TEXT_CHARS])
        return prepared

    def _finish(
        self,
        work: str,
        language: str,
        doc: Any,
        repeated_contact: int,
        cat: tuple[TextClassifier, Any] | None,
        sent: tuple[TextClassifier, Any] | None,
    ) -> Analysis:
        if cat is None or sent is None:
            prepared = self._prepared(doc)
            category_model, sentiment_model = self._category, self._sentiment  # one snapshot
            cat = (category_model, category_model.proba_one(prepared))
            sent = (sentiment_model, sentiment_model.proba_one(prepared))
        category, category_conf = cat[0].decide(cat[1])
        sentiment_label, sentiment_conf = sent[0].decide(sent[1])
        if not _has_content(work):
            # Nothing to understand (empty, spaces, punctuation): say so instead of guessing.
            category, category_conf = OTHER, 1.0
            sentiment_label, sentiment_conf = Sentiment.NEUTRAL.value, 1.0
        sentiment = (
            Sentiment(sentiment_label) if sentiment_label in SENTIMENT_LABELS else Sentiment.NEUTRAL
        )
        spans = doc_entity_spans(doc)
        entities = to_entities(work, spans)
        idf = cat[0].unigram_idf
        summary = summarize_docs([doc], idf=idf, lemma_of=self._pipelines.lemma)
        phrases = key_phrases([doc], idf=idf, lemma_of=self._pipelines.lemma, entity_spans=[spans])
        urgency, reasons = assess_urgency(
            work,
            sentiment=sentiment,
            sentiment_confidence=sentiment_conf,
            category=category,
            repeated_contact=repeated_contact,
        )
        return Analysis(
            language=language,
            category=category,
            category_confidence=round(category_conf, 4),
            sentiment=sentiment,
            sentiment_confidence=round(sentiment_conf, 4),
            urgency=urgency,
            urgency_reasons=reasons,
            entities=entities,
            summary=summary,
            key_phrases=phrases,
        )

    def _fallback(self, text: Any) -> Analysis:
        try:
            safe = clean_text(text) if isinstance(text, str) else ""
            language = detect_language(safe)
            summary = shorten(tidy(safe))
        except Exception:  # the last resort must not raise either
            language, summary = UNDETERMINED, ""
        return Analysis(
            language=language,
            category=OTHER,
            category_confidence=0.0,
            sentiment=Sentiment.NEUTRAL,
            sentiment_confidence=0.0,
            urgency=Urgency.NORMAL,
            urgency_reasons=(),
            entities=(),
            summary=summary,
            key_phrases=(),
        )

    # --- tickets --------------------------------------------------------------------------
    def summarize_ticket(self, texts: Sequence[str]) -> TicketSummary:
        """A summary (at most two sentences and 300 characters) of a ticket's customer messages,
        with key phrases and entities. Never raises."""
        try:
            return self._summarize_ticket(texts)
        except Exception:
            logger.exception("ticket summary failed")
            joined = shorten(tidy(" ".join(t for t in texts if isinstance(t, str))))
            return TicketSummary(joined, (), (), self.mask(joined))

    async def asummarize_ticket(self, texts: Sequence[str]) -> TicketSummary:
        return await asyncio.to_thread(self.summarize_ticket, texts)

    def _summarize_ticket(self, texts: Sequence[str]) -> TicketSummary:
        work = [
            clean_text(t)[:MAX_ANALYZE_CHARS] for t in texts if isinstance(t, str) and t.strip()
        ]
        if not work:
            return TicketSummary("", (), (), "")
        docs = self._pipelines.docs(work)
        idf = self._category.unigram_idf
        summary = summarize_docs(docs, idf=idf, lemma_of=self._pipelines.lemma)
        spans = [doc_entity_spans(d) for d in docs]
        phrases = key_phrases(docs, idf=idf, lemma_of=self._pipelines.lemma, entity_spans=spans)
        entities = _unique_entities(to_entities(t, s) for t, s in zip(work, spans, strict=True))
        return TicketSummary(summary, phrases, entities, self.mask(summary))


def _has_content(text: str) -> bool:
    """True when the text has a letter, a digit or a symbol such as an emoji."""
    return any(ch.isalnum() or unicodedata.category(ch) == "So" for ch in text)


def _unique_entities(groups: Iterable[tuple[Entity, ...]]) -> tuple[Entity, ...]:
    seen: set[tuple[str, str]] = set()
    out: list[Entity] = []
    for group in groups:
        for e in group:
            key = (e.label, e.text)
            if key not in seen:
                seen.add(key)
                out.append(e)
    return tuple(out)
