"""The knowledge base: automatic answers per category and language, from a YAML file a business
edits (``nlp/data/knowledge_base.yaml`` is the default; a setting can point at another file).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_PATH = Path(__file__).with_name("data") / "knowledge_base.yaml"


class KnowledgeBaseError(ValueError):
    """The knowledge base file cannot be used; the message says why."""


def normalise_language(code: str) -> str:
    """``"zh-Hans"``, ``"zh_CN"`` -> ``"zh"``; ``"EN-us"`` -> ``"en"``."""
    return code.strip().replace("_", "-").split("-")[0].lower()


@dataclass(frozen=True)
class KnowledgeBase:
    """Answers by category and language."""

    answers: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    fallback_language: str | None = None
    source: Path | None = None

    @classmethod
    def load(cls, path: Path | str | None = None) -> KnowledgeBase:
        """Read a knowledge base; :class:`KnowledgeBaseError` names the problem in a bad file."""
        path = Path(path) if path is not None else DEFAULT_PATH
        try:
            raw = yaml.safe_load(path.read_text("utf-8"))
        except OSError as exc:
            raise KnowledgeBaseError(f"{path}: cannot read the knowledge base ({exc})") from exc
        except yaml.YAMLError as exc:
            raise KnowledgeBaseError(f"{path}: not valid YAML ({exc})") from exc
        return cls.from_dict(raw or {}, source=path)

    @classmethod
    def default(cls) -> KnowledgeBase:
        return cls.load(DEFAULT_PATH)

    @classmethod
    def from_dict(cls, raw: Any, *, source: Path | None = None) -> KnowledgeBase:
        where = str(source) if source else "knowledge base"
        if not isinstance(raw, Mapping):
            raise KnowledgeBaseError(f"{where}: the top level must be a mapping with 'answers'")
        answers_raw = raw.get("answers") or {}
        if not isinstance(answers_raw, Mapping):
            raise KnowledgeBaseError(f"{where}: 'answers' must map categories to languages")
        answers: dict[str, dict[str, str]] = {}
        for category, by_language in answers_raw.items():
            if by_language is None:
                continue
            if not isinstance(by_language, Mapping):
                raise KnowledgeBaseError(
                    f"{where}: answers for {category!r} must map language codes to text"
                )
            texts: dict[str, str] = {}
            for language, text in by_language.items():
                if text is None:
                    continue
                if not isinstance(text, str):
                    raise KnowledgeBaseError(
                        f"{where}: the {language!r} answer for {category!r} must be text"
                    )
                if text.strip():
                    texts[normalise_language(str(language))] = text.strip()
            if texts:
                answers[str(category)] = texts
        fallback = raw.get("fallback_language")
        if fallback is not None and not isinstance(fallback, str):
            raise KnowledgeBaseError(f"{where}: 'fallback_language' must be a language code")
        return cls(
            answers=answers,
            fallback_language=normalise_language(fallback) if fallback else None,
            source=source,
        )

    @property
    def categories(self) -> tuple[str, ...]:
        """Categories with at least one answer."""
        return tuple(self.answers)

    def languages(self, category: str) -> tuple[str, ...]:
        return tuple(self.answers.get(category, {}))

    def answer(self, category: str, language: str) -> str | None:
        """The answer for ``category`` in ``language`` (then in the fallback language), or None
        when the message should go to an agent."""
        by_language = self.answers.get(category)
        if not by_language:
            return None
        found = by_language.get(normalise_language(language)) if language else None
        if found is None and self.fallback_language:
            found = by_language.get(self.fallback_language)
        return found
