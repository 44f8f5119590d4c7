"""Extractive summaries and key phrases.

A ticket's customer messages are split into sentences by the spaCy pipeline; each sentence becomes a
TF-IDF vector of its content words (lemmas; for Chinese, character bigrams), with IDF weights from
the category model's training data. A sentence's score is its centrality (mean cosine similarity to
the other sentences: what the customer keeps coming back to) plus how much content it carries; the
best one or two sentences, in their original order and within 300 characters, are the summary.

Key phrases are runs of content words (RAKE-style: stop words and punctuation split them), scored by
the IDF of their words and how often they occur.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from spacy.lang.en.stop_words import STOP_WORDS
from spacy.tokens import Doc, Span, Token

from nlp.entities import Entity

MAX_SUMMARY_CHARS = 300
MAX_SUMMARY_SENTENCES = 2
MAX_KEY_PHRASES = 5
IdfLookup = Callable[[str], float | None]
LemmaOf = Callable[[Token], str]

_EN_STOP = frozenset(STOP_WORDS) | {
    "hi",
    "hello",
    "hey",
    "thanks",
    "thank",
    "pls",
    "plz",
    "ok",
    "okay",
    "yes",
    "dear",
    "team",
    "sir",
    "madam",
    "want",
    "need",
    "like",
    "know",
    "help",
    "get",
    "got",
    "still",
    "u",
    "im",
}
_ZH_STOP = frozenset(
    "的了是我你他她它们在吗呢吧啊呀哦嗯就都也还又很太和与及或但而把被给让从对向于这那哪么什怎为个"
    "请帮能可以要想会说得地已经该啦呗嘛一您咱谁啥吗"
)
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_SPACE = re.compile(r"\s+")
_CJK_END = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uff00-\uffef]$")
_CJK_START = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")


@dataclass(frozen=True)
class TicketSummary:
    """A summary of a ticket's customer messages.

    ``entities`` are deduplicated by label and text; their offsets refer to the message they were
    found in. ``masked_summary`` is ``summary`` with card numbers, e-mail addresses and phone
    numbers masked, ready to quote to staff.
    """

    summary: str
    key_phrases: tuple[str, ...]
    entities: tuple[Entity, ...]
    masked_summary: str


def _is_han(text: str) -> bool:
    return bool(text) and _HAN.match(text) is not None


def _content_terms(sent: Span, lemma_of: LemmaOf) -> list[str]:
    """The words a sentence is about: content lemmas, and for Chinese, character bigrams."""
    terms: list[str] = []
    prev_han: str | None = None
    for tok in sent:
        text = tok.text
        if _is_han(text):
            if prev_han is not None and prev_han not in _ZH_STOP and text not in _ZH_STOP:
                terms.append(prev_han + " " + text)
            prev_han = text
            continue
        prev_han = None
        if tok.is_space or tok.is_punct or not any(c.isalnum() for c in text):
            continue
        lemma = lemma_of(tok)
        if lemma in _EN_STOP or len(lemma) < 2:
            continue
        terms.append(lemma)
    return terms


def _vector(terms: Sequence[str], idf: IdfLookup, default_idf: float) -> dict[str, float]:
    counts = Counter(terms)
    vec = {t: (1.0 + math.log(c)) * (idf(t) or default_idf) for t, c in counts.items()}
    norm = math.sqrt(sum(v * v for v in vec.values()))
    return {t: v / norm for t, v in vec.items()} if norm > 0 else {}


def _cosine(a: dict[str, float], b: dict[str, float]) -> float:
    if len(a) > len(b):
        a, b = b, a
    return sum(v * b.get(t, 0.0) for t, v in a.items())


def tidy(text: str) -> str:
    """Whitespace collapsed to single spaces."""
    return _SPACE.sub(" ", text).strip()


def shorten(text: str, limit: int = MAX_SUMMARY_CHARS) -> str:
    """``text`` cut at a word boundary to at most ``limit`` characters (with an ellipsis)."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space >= limit * 0.6:
        cut = cut[:space]
    return cut.rstrip(" ,;:-") + "…"


def summarize_docs(
    docs: Sequence[Doc],
    *,
    idf: IdfLookup,
    lemma_of: LemmaOf,
    max_sentences: int = MAX_SUMMARY_SENTENCES,
    max_chars: int = MAX_SUMMARY_CHARS,
) -> str:
    """At most ``max_sentences`` sentences and ``max_chars`` characters that best cover the docs."""
    sentences: list[tuple[str, list[str]]] = []
    for doc in docs:
        for sent in doc.sents:
            text = tidy(sent.text)
            if text:
                sentences.append((text, _content_terms(sent, lemma_of)))
    if not sentences:
        return ""
    whole = _join_sentences([s for s, _ in sentences])
    if len(sentences) <= max_sentences and len(whole) <= max_chars:
        return whole
    default_idf = _default_idf(idf, [t for _, terms in sentences for t in terms])
    vectors = [_vector(terms, idf, default_idf) for _, terms in sentences]
    n = len(sentences)
    # Mean cosine similarity to the other sentences, through the sum of all vectors (linear time,
    # so a digest can summarise thousands of messages): v_i . (sum_j v_j) - v_i . v_i.
    total: dict[str, float] = {}
    for vec in vectors:
        for t, v in vec.items():
            total[t] = total.get(t, 0.0) + v
    scores: list[float] = []
    for i, (text, terms) in enumerate(sentences):
        self_similarity = 1.0 if vectors[i] else 0.0
        centrality = (_cosine(vectors[i], total) - self_similarity) / (n - 1) if n > 1 else 1.0
        weight = sum((idf(t) or default_idf) for t in set(terms))
        informativeness = min(1.0, weight / 25.0)
        too_long = 0.3 if len(text) > max_chars else 0.0
        first = 0.05 if i == 0 else 0.0
        scores.append(centrality + 0.5 * informativeness + first - too_long)
    ranked = sorted(range(n), key=lambda i: (-scores[i], i))
    chosen: list[int] = []
    length = 0
    for i in ranked:
        if len(chosen) >= max_sentences:
            break
        extra = len(sentences[i][0]) + (1 if chosen else 0)
        if length + extra <= max_chars:
            chosen.append(i)
            length += extra
    if not chosen:
        return shorten(sentences[ranked[0]][0], max_chars)
    return _join_sentences([sentences[i][0] for i in sorted(chosen)])


def _join_sentences(sentences: Sequence[str]) -> str:
    """Sentences joined by a space, or by nothing between Chinese sentences (which use no
    spaces); a sentence that ended at a line break gets a full stop."""
    out = ""
    for s in sentences:
        if out:
            cjk = _CJK_END.search(out) is not None and _CJK_START.match(s) is not None
            if out[-1].isalnum():
                out += "。" if cjk else "."
            if not cjk:
                out += " "
        out += s
    return out


def _default_idf(idf: IdfLookup, terms: Sequence[str]) -> float:
    """The IDF given to words the model never saw: as rare as its rarest known word."""
    known = [v for v in (idf(t) for t in set(terms)) if v is not None]
    return max(known) if known else 1.0


def key_phrases(
    docs: Sequence[Doc],
    *,
    idf: IdfLookup,
    lemma_of: LemmaOf,
    entity_spans: Sequence[Sequence[tuple[str, int, int]]] = (),
    limit: int = MAX_KEY_PHRASES,
) -> tuple[str, ...]:
    """Up to ``limit`` key phrases, best first."""
    candidates: Counter[tuple[str, ...]] = Counter()
    surface: dict[tuple[str, ...], str] = {}
    for d, doc in enumerate(docs):
        spans = entity_spans[d] if d < len(entity_spans) else ()
        for run in _runs(doc, spans):
            for piece in _pieces(run):
                key = tuple(k for k, _ in piece)
                candidates[key] += 1
                surface.setdefault(key, _join(piece))
    if not candidates:
        return ()
    all_terms = [t for key in candidates for t in _terms_of(key)]
    default_idf = _default_idf(idf, all_terms)
    scored = []
    for key, count in candidates.items():
        terms = _terms_of(key)
        if not terms:
            continue
        weight = sum(idf(t) or default_idf for t in terms) / math.sqrt(len(terms))
        scored.append((weight * (1.0 + math.log(count)), key))
    scored.sort(key=lambda x: (-x[0], surface[x[1]]))
    out: list[str] = []
    for _, key in scored:
        phrase = surface[key]
        low = phrase.casefold()
        if any(low in p.casefold() or p.casefold() in low for p in out):
            continue
        out.append(phrase)
        if len(out) >= limit:
            break
    return tuple(out)


def _terms_of(key: tuple[str, ...]) -> list[str]:
    """IDF terms of a candidate: the lemma itself, or character bigrams for a Chinese run."""
    terms: list[str] = []
    for k in key:
        if _is_han(k[:1]) and len(k) > 1:
            terms += [k[i] + " " + k[i + 1] for i in range(len(k) - 1)]
        else:
            terms.append(k)
    return terms


def _runs(doc: Doc, spans: Sequence[tuple[str, int, int]]) -> list[list[tuple[str, str]]]:
    """Runs of (lemma, surface) content units: English words, or runs of Chinese characters."""
    runs: list[list[tuple[str, str]]] = []
    current: list[tuple[str, str]] = []
    han = ""

    def flush_han() -> None:
        nonlocal han
        if len(han) >= 2:
            current.append((han, han))
        elif han:
            close()
        han = ""

    def close() -> None:
        nonlocal current
        if current:
            runs.append(current)
        current = []

    letters = [c for c in doc.text[:2000] if c.isalpha() and c.isascii()]
    shouting = len(letters) >= 12 and sum(c.isupper() for c in letters) > 0.6 * len(letters)
    covered = bytearray(len(doc.text) + 1)
    for _, s, e in spans:
        covered[s:e] = b"\x01" * (e - s)
    for tok in doc:
        inside_entity = covered[tok.idx] == 1
        text = tok.text
        if _is_han(text) and not inside_entity:
            if text in _ZH_STOP:
                flush_han()
                close()
            else:
                han += text
            continue
        flush_han()
        lemma = tok.lemma_.lower() if tok.lemma_ else tok.lower_
        if (
            inside_entity
            or tok.is_space
            or tok.is_punct
            or not text.isalpha()
            or lemma in _EN_STOP
            or tok.lower_ in _EN_STOP
            or len(text) < 2
        ):
            close()
            continue
        # Keep names and acronyms ("Samsung", "PIN"); lower-case sentence starts and shouting.
        lower = (
            shouting or (text.isupper() and len(text) > 5) or (tok.is_sent_start and text.istitle())
        )
        current.append((lemma, text.lower() if lower or text.islower() else text))
        if tok.whitespace_ == "" and tok.i + 1 < len(doc) and _is_han(doc[tok.i + 1].text):
            close()
    flush_han()
    close()
    return runs


def _pieces(run: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    """Split a long run into phrases of at most three words (Chinese runs: at most 6 characters)."""
    out: list[list[tuple[str, str]]] = []
    words: list[tuple[str, str]] = []
    for unit in run:
        if _is_han(unit[0][:1]):
            if words:
                out += [words[i : i + 3] for i in range(0, len(words), 3)]
                words = []
            text = unit[0]
            if len(text) <= 6:
                out.append([unit])
            else:
                out += [[(text[i : i + 4], text[i : i + 4])] for i in range(0, len(text) - 3, 2)]
        else:
            words.append(unit)
    if words:
        out += [words[i : i + 3] for i in range(0, len(words), 3)]
    return out


def _join(piece: list[tuple[str, str]]) -> str:
    return " ".join(s for _, s in piece)
