"""The spaCy pipelines: tokens, lemmas, sentences and entity rules, for English and Chinese.

The official pretrained pipelines are not on the package index, so by default Kefu builds
``spacy.blank`` pipelines:

* English: spaCy's tokenizer, a sentencizer, the lookup lemmatizer (tables from
  ``spacy-lookups-data``), an ``EntityRuler`` and Kefu's regular-expression entity component.
* Chinese: spaCy's ``zh`` language with a tokenizer that makes each Chinese character a token and
  hands runs of other text (English words, numbers, e-mail addresses) to the English tokenizer; then
  the same sentencizer, ruler and entity component. No word segmenter (jieba, pkuseg) is needed: the
  classifier looks at character n-grams.

A setting (``nlp_pipeline``) may name an installed pipeline (``en_core_web_sm``, ...) to use for its
language instead; Kefu then adds its entity rules to it.

Every text is run through a pipeline once; :class:`Prepared` keeps what the classifier needs (lower
case lemmas and a normalised text for character n-grams), so the classifier, the entity rules and
the summary share one tokenisation.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import spacy
from spacy.attrs import SENT_START
from spacy.language import Language
from spacy.pipeline import EntityRuler
from spacy.pipeline.sentencizer import Sentencizer
from spacy.tokens import Doc, Span
from spacy.util import filter_spans

from nlp.entities import EntityRules, merge_entities, ruler_patterns
from nlp.language import detect_language, pipeline_language

ENTITY_COMPONENT = "kefu_entities"
LINE_BREAKS = "kefu_line_breaks"
USER_DATA_KEY = "kefu_entities"
_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")
_DIGIT = re.compile(r"\d")
_SPACES = re.compile(r"\s+")
_CJK_CHAR = re.compile(
    r"[\u2e80-\u2fdf\u3005-\u3007\u3021-\u3029\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff"
    r"\uf900-\ufaff\U00020000-\U0002fa1f\u3000-\u303f\uff01-\uff0f\uff1a-\uff20]"
)
# Components that lemmas do not depend on (skipped when preparing training data).
_NOT_FOR_LEMMAS = frozenset(
    {"sentencizer", "senter", "parser", "ner", "entity_ruler", LINE_BREAKS, ENTITY_COMPONENT}
)
_PUNCT_CHARS = [*Sentencizer.default_punct_chars, "\n", "…"]


class PipelineError(ValueError):
    """The configured spaCy pipeline cannot be used (not installed, wrong language)."""


def clean_text(text: str) -> str:
    """``text`` with lone surrogates (which cannot be encoded) replaced; the length is kept."""
    if _LONE_SURROGATE.search(text):
        return _LONE_SURROGATE.sub("\ufffd", text)
    return text


def normalise_for_chars(text: str) -> str:
    """The text the character n-grams are taken from: lower case, digits as 0, single spaces."""
    return _SPACES.sub(" ", _DIGIT.sub("0", text.lower())).strip()


@dataclass(frozen=True, slots=True)
class Prepared:
    """One text as the classifier sees it."""

    tokens: tuple[str, ...]  # lower-case lemmas (Chinese: characters), no whitespace tokens
    text: str  # normalised text for character n-grams


class ChunkedTokenizer:
    """Wraps a spaCy tokenizer so that very long runs without whitespace are tokenised in pieces.

    spaCy's affix splitting is quadratic in the length of a whitespace-free chunk (ten thousand
    punctuation marks take seconds); chunks longer than ``max_chunk`` characters are cut into pieces
    first. Ordinary text goes straight to the wrapped tokenizer.
    """

    def __init__(self, inner: Any, vocab: Any, max_chunk: int = 200) -> None:
        self.inner = inner
        self.vocab = vocab
        self.max_chunk = max_chunk
        self._long = re.compile(r"\S{" + str(max_chunk + 1) + ",}")

    def __call__(self, text: str) -> Doc:
        if not self._long.search(text):
            return self.inner(text)
        words: list[str] = []
        spaces: list[bool] = []
        pos = 0
        for m in self._long.finditer(text):
            self._add(text[pos : m.start()], words, spaces)
            for i in range(m.start(), m.end(), self.max_chunk):
                self._add(text[i : min(i + self.max_chunk, m.end())], words, spaces)
            pos = m.end()
        self._add(text[pos:], words, spaces)
        return Doc(self.vocab, words=words, spaces=spaces)

    def _add(self, segment: str, words: list[str], spaces: list[bool]) -> None:
        if not segment:
            return
        for token in self.inner(segment):
            words.append(token.text)
            spaces.append(bool(token.whitespace_))

    def pipe(self, texts: Iterable[str], batch_size: int = 1000) -> Iterator[Doc]:
        for text in texts:
            yield self(text)


class CjkTokenizer:
    """Each Chinese/Japanese character is a token; other runs go to a Latin tokenizer."""

    def __init__(self, vocab: Any, latin: Any) -> None:
        self.vocab = vocab
        self._latin = latin

    def __call__(self, text: str) -> Doc:
        words: list[str] = []
        spaces: list[bool] = []
        pos = 0
        for m in _CJK_CHAR.finditer(text):
            if m.start() > pos:
                self._add_run(text[pos : m.start()], words, spaces)
            words.append(m.group())
            spaces.append(False)
            pos = m.end()
        if pos < len(text):
            self._add_run(text[pos:], words, spaces)
        return Doc(self.vocab, words=words, spaces=spaces)

    def _add_run(self, run: str, words: list[str], spaces: list[bool]) -> None:
        if run.isspace():
            # Whitespace between two characters: attach one space to the previous token when
            # possible, keep the rest as a whitespace token (spaCy's own convention).
            if words and not spaces[-1] and run[0] == " ":
                spaces[-1] = True
                run = run[1:]
            if run:
                words.append(run)
                spaces.append(False)
            return
        for token in self._latin(run):
            words.append(token.text)
            spaces.append(bool(token.whitespace_))

    def pipe(self, texts: Iterable[str], batch_size: int = 1000) -> Iterator[Doc]:
        for text in texts:
            yield self(text)

    def to_bytes(self, **kwargs: Any) -> bytes:
        return b""

    def from_bytes(self, data: bytes, **kwargs: Any) -> CjkTokenizer:
        return self

    def to_disk(self, path: Any, **kwargs: Any) -> None:
        return None

    def from_disk(self, path: Any, **kwargs: Any) -> CjkTokenizer:
        return self


class KefuEntityComponent:
    """Adds Kefu's regular-expression entities to those of the ruler (and of any NER), resolves
    overlaps, stores exact character spans in ``doc.user_data`` and sets ``doc.ents``."""

    def __init__(self, rules: EntityRules) -> None:
        self.rules = rules

    def __call__(self, doc: Doc) -> Doc:
        candidates = [(e.label_, e.start_char, e.end_char) for e in doc.ents]
        candidates += self.rules.find(doc.text)
        merged = merge_entities(candidates)
        doc.user_data[USER_DATA_KEY] = merged
        spans: list[Span] = []
        for label, start, end in merged:
            span = doc.char_span(start, end, label=label, alignment_mode="expand")
            if span is not None:
                spans.append(span)
        doc.ents = filter_spans(spans)
        return doc


@Language.component(LINE_BREAKS)
def _line_breaks(doc: Doc) -> Doc:
    """A line break ends a sentence (chat messages often have no full stops)."""
    starts = [t.i + 1 for t in doc[:-1] if t.is_space and "\n" in t.text]
    if starts:
        # Set the boundaries in one go: Token.is_sent_start checks the whole doc on every call.
        values = np.asarray(doc.to_array([SENT_START]), dtype=np.uint64)
        values[starts] = 1
        doc.from_array([SENT_START], cast(Any, values))
    return doc


@Language.factory(ENTITY_COMPONENT, default_config={"order_pattern": ""})
def _make_entity_component(nlp: Language, name: str, order_pattern: str) -> KefuEntityComponent:
    return KefuEntityComponent(EntityRules.create(order_pattern or None))


def build_blank(lang: str, *, order_pattern: str | None = None) -> Language:
    """A ``spacy.blank`` pipeline for ``"en"`` or ``"zh"`` with Kefu's components."""
    if lang == "zh":
        nlp = spacy.blank("zh")
        latin = spacy.blank("en")
        nlp.tokenizer = CjkTokenizer(nlp.vocab, ChunkedTokenizer(latin.tokenizer, latin.vocab))
    else:
        nlp = spacy.blank("en")
        nlp.tokenizer = ChunkedTokenizer(nlp.tokenizer, nlp.vocab)
        nlp.add_pipe("lemmatizer", config={"mode": "lookup"})
    nlp.add_pipe("sentencizer", config={"punct_chars": _PUNCT_CHARS})
    nlp.add_pipe(LINE_BREAKS)
    nlp.add_pipe("entity_ruler", config={"phrase_matcher_attr": "LOWER"})
    nlp.add_pipe(ENTITY_COMPONENT, config={"order_pattern": order_pattern or ""})
    # initialize() loads the lemma tables and clears the ruler: add the patterns afterwards.
    nlp.initialize()
    _add_ruler_patterns(nlp, lang)
    return nlp


def load_installed(name: str, *, order_pattern: str | None = None) -> Language:
    """An installed pipeline (``en_core_web_sm``, ...) with Kefu's entity rules added."""
    try:
        nlp = spacy.load(name)
    except (OSError, ImportError, ValueError) as exc:
        raise PipelineError(
            f"the spaCy pipeline {name!r} could not be loaded ({exc}); install it or unset "
            "KEFU_NLP_PIPELINE to use the built-in rules"
        ) from exc
    nlp.tokenizer = ChunkedTokenizer(nlp.tokenizer, nlp.vocab)
    if nlp.lang not in {"en", "zh"}:
        raise PipelineError(f"the spaCy pipeline {name!r} is for {nlp.lang!r}; Kefu needs en or zh")
    if not ({"parser", "senter", "sentencizer"} & set(nlp.pipe_names)):
        nlp.add_pipe("sentencizer", config={"punct_chars": _PUNCT_CHARS})
    ruler_args: dict[str, Any] = {"before": "ner"} if "ner" in nlp.pipe_names else {}
    nlp.add_pipe("entity_ruler", config={"phrase_matcher_attr": "LOWER"}, **ruler_args)
    nlp.add_pipe(ENTITY_COMPONENT, config={"order_pattern": order_pattern or ""})
    _add_ruler_patterns(nlp, nlp.lang)
    return nlp


def _add_ruler_patterns(nlp: Language, lang: str) -> None:
    ruler = nlp.get_pipe("entity_ruler")
    assert isinstance(ruler, EntityRuler)  # noqa: S101 - narrowing for mypy
    ruler.add_patterns(ruler_patterns(lang))


class Pipelines:
    """The English and Chinese pipelines, built once, plus the shared lemma lookup table.

    spaCy objects are not documented as thread-safe, so processing holds a lock; a chat message
    takes tens of microseconds.
    """

    def __init__(self, *, pipeline_name: str | None = None, order_pattern: str | None = None):
        self.order_pattern = order_pattern
        self.pipeline_name = pipeline_name
        self._lock = threading.Lock()
        self._nlp: dict[str, Language] = {}
        if pipeline_name:
            installed = load_installed(pipeline_name, order_pattern=order_pattern)
            self._nlp[str(installed.lang)] = installed
        for lang in ("en", "zh"):
            if lang not in self._nlp:
                self._nlp[lang] = build_blank(lang, order_pattern=order_pattern)
        self._lemma_table = _lookup_table(self._nlp["en"])

    def nlp(self, language: str) -> Language:
        """The pipeline for a detected language (``zh``/``ja`` get the Chinese one)."""
        return self._nlp[pipeline_language(language)]

    def doc(self, text: str, language: str | None = None) -> Doc:
        language = language or detect_language(text)
        nlp = self.nlp(language)
        with self._lock:
            return nlp(text)

    def docs(
        self,
        texts: Sequence[str],
        languages: Sequence[str] | None = None,
        *,
        light: bool = False,
        batch_size: int = 256,
    ) -> list[Doc]:
        """Docs for many texts, in order; ``light`` skips sentences and entities (for training)."""
        if languages is None:
            languages = [detect_language(t) for t in texts]
        groups: dict[str, list[int]] = {}
        for i, lang in enumerate(languages):
            groups.setdefault(pipeline_language(lang), []).append(i)
        out: list[Doc | None] = [None] * len(texts)
        for lang, idx in groups.items():
            nlp = self._nlp[lang]
            disable = [p for p in nlp.pipe_names if p in _NOT_FOR_LEMMAS] if light else []
            with self._lock:
                for i, doc in zip(
                    idx,
                    nlp.pipe((texts[i] for i in idx), batch_size=batch_size, disable=disable),
                    strict=True,
                ):
                    out[i] = doc
        return [d for d in out if d is not None]

    def lemma(self, token: Any) -> str:
        """The lower-case lemma of a token; the lookup table also catches capitalised words."""
        lower: str = token.lower_
        lemma: str = token.lemma_
        if lemma and lemma != token.text:
            return lemma.lower()
        if self._lemma_table is None:
            return lower
        found = self._lemma_table.get(lower)
        return found if isinstance(found, str) else lower

    def prepare_doc(self, doc: Doc) -> Prepared:
        tokens = tuple(self.lemma(t) for t in doc if not t.is_space)
        return Prepared(tokens=tokens, text=normalise_for_chars(doc.text))

    def prepare(
        self, texts: Sequence[str], languages: Sequence[str] | None = None
    ) -> list[Prepared]:
        """:class:`Prepared` inputs for many texts (training and evaluation)."""
        cleaned = [clean_text(t) for t in texts]
        return [self.prepare_doc(d) for d in self.docs(cleaned, languages, light=True)]


def _lookup_table(nlp: Language) -> Any:
    """The English lemma lookup table (a spaCy ``Table``), or None."""
    if "lemmatizer" not in nlp.pipe_names:
        return None
    lemmatizer = nlp.get_pipe("lemmatizer")
    lookups = getattr(lemmatizer, "lookups", None)
    if lookups is None or not lookups.has_table("lemma_lookup"):
        return None
    return lookups.get_table("lemma_lookup")


def doc_entity_spans(doc: Doc) -> list[tuple[str, int, int]]:
    """The merged ``(label, start, end)`` entity spans a pipeline stored on ``doc``."""
    spans = doc.user_data.get(USER_DATA_KEY)
    if spans is None:
        return [(e.label_, e.start_char, e.end_char) for e in doc.ents]
    return list(spans)
